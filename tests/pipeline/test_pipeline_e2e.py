"""The whole chain on the bundled sample, run the way a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import MULTI_PROCESS_BEAM, TINY_RUN_SETTINGS, flowers_cli

from flowers import features, outcome
from flowers.components import names
from flowers.data import layout
from flowers.features import HISTORY_FILE
from flowers.images import decode_and_crop
from flowers.pipeline import supervisor
from flowers.pipeline.pipeline import create_components
from flowers.runs import predict, records, results

pytestmark = pytest.mark.slow


def test_every_component_ran_once_and_completed(pipeline_run):
    config, _ = pipeline_run
    store = records.store_for(config)
    run_id = records.run_ids(store)[0]  # the shared run (`refused_run` may have added a second)
    summary = results.summarize(store, run_id)
    expected = {c.id for c in create_components(layout.resolve(config))}
    assert set(summary.executions) == expected
    assert set(summary.executions.values()) == {"COMPLETE"}
    context = store.get_context_by_type_and_name(records.RUN_CONTEXT, run_id)
    assert len(store.get_executions_by_context(context.id)) == len(expected)


def test_model_was_blessed_and_pushed_into_a_versioned_dir(pipeline_run):
    config, done = pipeline_run
    summary = results.summarize(records.store_for(config), records.run_ids(records.store_for(config))[0])
    assert summary.state == "pushed" and summary.blessed
    assert summary.accuracy >= config.gates.min_accuracy
    assert summary.eval_examples > 0
    assert set(summary.per_class_recall) == set(features.CLASS_NAMES)
    assert os.path.dirname(summary.pushed_to) == os.path.abspath(config.serving_dir)
    assert os.path.basename(summary.pushed_to).isdigit()
    assert tf.saved_model.contains_saved_model(summary.pushed_to)
    assert f"eval accuracy:  {summary.accuracy:.4f}" in done.stdout
    assert "state:          pushed" in done.stdout
    assert f"pushed to:      {summary.pushed_to}" in done.stdout


def test_terminal_shows_progress_not_library_noise(pipeline_run):
    _, done = pipeline_run
    lines = done.stdout.splitlines() + done.stderr.splitlines()
    assert any(line.startswith("beam: in-memory DirectRunner (") for line in lines)  # the sample is small
    for component in ("ImportExampleGen", "DataGate", "Trainer", "Evaluator", "Pusher"):
        assert any(line.startswith(component) and line.rstrip().endswith(" s") for line in lines), component
    assert any("head      epoch   1" in line for line in lines)
    assert any(line.startswith("train examples:") for line in lines)
    assert any(line.startswith("distribution strategy:") for line in lines)
    assert not [line for line in lines if "Warning" in line or "tensorflow/" in line or "Traceback" in line]
    # Besides the heartbeat (a line per 15 s of a silent component, more on a busy machine).
    assert len([line for line in lines if " still running (" not in line]) < 70
    assert any(line == "starting Evaluator" for line in lines)
    log_line = next(line for line in lines if line.startswith("log: "))
    with open(log_line[len("log: ") :]) as f:
        assert "Epoch 1/" in f.read()  # Keras' own lines are in the run's log file


def test_pushed_model_classifies_raw_jpeg_bytes(pipeline_run, sample_jpeg):
    config, _ = pipeline_run
    model = tf.saved_model.load(predict.newest_pushed_model(config))
    out = model.signatures[features.BYTES_SIGNATURE](
        **{features.SERVING_BYTES_INPUT: tf.constant([sample_jpeg, sample_jpeg])}
    )
    probabilities = out[features.PROBABILITIES_OUTPUT].numpy()
    assert probabilities.shape == (2, features.NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert out[features.CLASS_NAME_OUTPUT].numpy()[0].decode() in features.CLASS_NAMES


def test_examples_signature_agrees_with_bytes_signature(pipeline_run, sample_jpeg):
    config, _ = pipeline_run
    model = tf.saved_model.load(predict.newest_pushed_model(config))
    example = tf.train.Example(
        features=tf.train.Features(
            feature={features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[sample_jpeg]))}
        )
    )
    from_examples = model.signatures[features.EXAMPLES_SIGNATURE](
        **{features.SERVING_EXAMPLES_INPUT: tf.constant([example.SerializeToString()])}
    )
    from_bytes = model.signatures[features.BYTES_SIGNATURE](
        **{features.SERVING_BYTES_INPUT: tf.constant([sample_jpeg])}
    )
    np.testing.assert_allclose(
        from_examples[features.PROBABILITIES_OUTPUT].numpy(),
        from_bytes[features.PROBABILITIES_OUTPUT].numpy(),
        rtol=1e-5,
    )


def test_image_signature_is_the_bytes_signature_after_the_transform_step(pipeline_run, sample_jpeg):
    """`serving_image` (what the TFLite file is converted from) takes the
    documented Transform output: decode_and_crop's image in [0, 255]."""
    config, _ = pipeline_run
    model = tf.saved_model.load(predict.newest_pushed_model(config))
    image = tf.round(decode_and_crop(tf.constant(sample_jpeg), config.data.image_size))[None]
    from_image = model.signatures[features.IMAGE_SIGNATURE](**{features.TRANSFORMED_IMAGE_KEY: image})
    from_bytes = model.signatures[features.BYTES_SIGNATURE](
        **{features.SERVING_BYTES_INPUT: tf.constant([sample_jpeg])}
    )
    np.testing.assert_allclose(
        from_image[features.PROBABILITIES_OUTPUT].numpy(),
        from_bytes[features.PROBABILITIES_OUTPUT].numpy(),
        atol=1e-4,
    )


def test_training_history_and_tensorboard_logs_are_kept(pipeline_run):
    config, _ = pipeline_run
    store = records.store_for(config)
    model_uri = results.summarize(store, records.run_ids(store)[0]).model_uri
    with open(os.path.join(model_uri, HISTORY_FILE)) as f:
        history = json.load(f)
    epochs = len(history["loss"])
    assert epochs >= 1 and len(history["val_accuracy"]) == epochs and len(history["phase"]) == epochs
    # The exported model is the final fit's: train + validation, for the epochs validation chose.
    chosen, final = history[names.CHOSEN_EPOCHS_HISTORY], history[names.FINAL_FIT_HISTORY]
    assert final["examples"] == history["train_examples"] + history["validation_examples"]
    assert [final["head_epochs"], final["fine_tune_epochs"]] == [
        chosen["head"]["epochs"],
        chosen["fine_tune"]["epochs"],
    ]
    assert len(final["loss"]) == final["head_epochs"] + final["fine_tune_epochs"] >= 1
    run_dir = os.path.join(os.path.dirname(os.path.dirname(model_uri)), "model_run")
    event_files = [f for _, _, files in os.walk(run_dir) for f in files if f.startswith("events.out.tfevents")]
    assert event_files


def test_predict_reports_each_bad_file_and_still_classifies_the_good_ones(pipeline_run, photos_dir, tmp_path):
    config, _ = pipeline_run
    good = os.path.join(photos_dir, "tulips", "photo1.jpg")
    good2 = os.path.join(photos_dir, "roses", "photo1.jpg")
    text = tmp_path / "notimg.txt"
    text.write_text("hello")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    done = flowers_cli("predict", good, str(text), good2, str(empty), "--output-dir", config.output_dir)
    assert done.returncode == outcome.FAILED and "2 of 4 file(s) could not be classified" in done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"] for r in rows] == [good, str(text), good2, str(empty)]
    version = os.path.basename(predict.newest_pushed_model(config))
    assert {r["model_version"] for r in rows} == {version}
    assert rows[0]["class"] in features.CLASS_NAMES and rows[2]["class"] in features.CLASS_NAMES
    assert sum(rows[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert "error" in rows[1] and "error" in rows[3] and "class" not in rows[1]
    assert "Traceback" not in done.stderr


def test_the_summary_kept_with_the_run_is_what_ml_metadata_says(pipeline_run):
    config, _ = pipeline_run
    store = records.store_for(config)
    run_id = records.run_ids(store)[0]
    kept = results.summarize(store, run_id)
    assert kept == results.summarize(store, run_id, recorded=False)
    assert kept.state == "pushed" and kept.accuracy is not None and kept.per_class_recall


def test_history_lists_the_run(pipeline_run):
    config, _ = pipeline_run
    listed = flowers_cli("history", "--output-dir", config.output_dir, "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert rows[0]["state"] == "pushed" and rows[0]["pushed_to"]
    table = flowers_cli("history", "--output-dir", config.output_dir)
    header, row = table.stdout.splitlines()[:2]
    assert header.split()[:5] == ["run", "spans", "train/val/eval", "accuracy", "baseline"]
    assert row.split()[1] == "1" and "pushed" in row.split()


def test_a_model_below_the_gate_exits_3_and_is_not_pushed(refused_run):
    """A second run in the same place, with a gate the model cannot pass.
    Caching reuses everything up to the Trainer."""
    config, done, first_id, second_id = refused_run
    assert done.returncode == outcome.REFUSED, done.stdout[-3000:] + done.stderr[-3000:]
    store = records.store_for(config)
    first_push = results.summarize(store, first_id).pushed_to
    second = results.summarize(store, second_id)
    assert second.state == "refused" and not second.blessed and second.pushed_to is None
    assert any("below the threshold 0.9990" in line for line in second.gate_failures)
    assert "state:          refused" in done.stdout and "gate failed:  sparse_categorical_accuracy" in done.stdout
    assert second.model_uri == results.summarize(store, first_id).model_uri  # the Trainer was cached
    # ... but not the baseline: it is what was pushed since, read afresh.
    assert second.executions["LatestPushedModel"] == "COMPLETE"
    assert second.baseline_version == os.path.basename(first_push)
    assert predict.newest_pushed_model(config) == first_push
    assert os.listdir(config.serving_dir) == [os.path.basename(first_push)]
    rows = [
        json.loads(line)
        for line in flowers_cli("history", "--output-dir", config.output_dir, "--json").stdout.splitlines()
    ]
    assert rows[1]["state"] == "refused" and rows[1]["gate_failures"]


def test_a_second_run_is_refused_and_sigint_stops_the_first_without_a_push(pipeline_run, tmp_path):
    config, _ = pipeline_run
    pushed_before = sorted(os.listdir(config.serving_dir))
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flowers.cli.main",
            "run",
            "--output-dir",
            config.output_dir,
            "--no-cache",
            *TINY_RUN_SETTINGS,
            *MULTI_PROCESS_BEAM,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    try:
        for line in first.stdout:  # wait until the run is in Transform
            seen.append(line)
            if line.startswith("DataGate"):
                break
        second = flowers_cli("run", "--output-dir", config.output_dir, *TINY_RUN_SETTINGS, timeout=60)
        assert second.returncode == outcome.USAGE
        assert "is in use by run" in second.stderr and f"pid {first.pid}" in second.stderr

        time.sleep(3)
        first.send_signal(signal.SIGINT)
        rest, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    output = "".join(seen) + rest
    assert first.returncode == outcome.SIGINT, output[-3000:]
    assert "interrupted by SIGINT" in output
    assert "beam: multi-processing DirectRunner (" in output  # Beam's worker processes were stopped too
    assert sorted(os.listdir(config.serving_dir)) == pushed_before
    store = records.store_for(config)
    last = results.summarize(store, records.run_ids(store)[-1])
    assert last.state == "interrupted" and last.pushed_to is None
    assert "Trainer" not in last.executions or last.executions["Trainer"] != "COMPLETE"
    run_id = records.run_ids(store)[-1]
    leftover = subprocess.run(["pgrep", "-f", f"flowers.pipeline.local {run_id}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
    assert supervisor.RunLock.live_run(config.output_dir) is None
