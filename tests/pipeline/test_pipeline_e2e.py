"""The whole chain on the bundled sample, run the way a user runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from flowers.components.trainer import HISTORY_FILE
from flowers import features
from flowers.pipeline import results, serving
from flowers.config import PipelineConfig
from flowers.pipeline.pipeline import create_components

# Well above chance (0.2) yet safe for a 51-photo eval split.
MIN_ACCURACY = "0.6"


def flowers_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowers.pipeline.cli", *args], capture_output=True, text=True, timeout=1500
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("e2e"))
    done = flowers_cli("run", "--output-dir", out, "--min-accuracy", MIN_ACCURACY)
    assert done.returncode == 0, done.stderr[-5000:]
    return PipelineConfig(output_dir=out, min_accuracy=float(MIN_ACCURACY)), done.stdout


def test_every_component_completed(run):
    config, _ = run
    summary = results.latest(config)
    expected = {c.id for c in create_components(config)}
    assert set(summary.executions) == expected
    assert set(summary.executions.values()) == {"COMPLETE"}


def test_model_was_blessed_and_pushed_into_a_versioned_dir(run):
    config, stdout = run
    summary = results.latest(config)
    assert summary.blessed
    assert summary.accuracy >= config.min_accuracy
    assert summary.eval_examples > 0
    assert set(summary.per_class_recall) == set(features.CLASS_NAMES)
    assert os.path.dirname(summary.pushed_to) == os.path.abspath(config.serving_dir)
    assert os.path.basename(summary.pushed_to).isdigit()
    assert tf.saved_model.contains_saved_model(summary.pushed_to)
    assert f"eval accuracy:  {summary.accuracy:.4f}" in stdout
    assert "blessed:        yes" in stdout
    assert f"pushed to:      {summary.pushed_to}" in stdout


def test_pushed_model_classifies_raw_jpeg_bytes(run, sample_jpeg):
    config, _ = run
    model = tf.saved_model.load(serving.newest_pushed_model(config))
    out = model.signatures[features.BYTES_SIGNATURE](**{features.SERVING_BYTES_INPUT: tf.constant([sample_jpeg, sample_jpeg])})
    probabilities = out[features.PROBABILITIES_OUTPUT].numpy()
    assert probabilities.shape == (2, features.NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert out[features.CLASS_NAME_OUTPUT].numpy()[0].decode() in features.CLASS_NAMES


def test_examples_signature_agrees_with_bytes_signature(run, sample_jpeg):
    config, _ = run
    model = tf.saved_model.load(serving.newest_pushed_model(config))
    example = tf.train.Example(
        features=tf.train.Features(
            feature={features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[sample_jpeg]))}
        )
    )
    from_examples = model.signatures[features.EXAMPLES_SIGNATURE](
        **{features.SERVING_EXAMPLES_INPUT: tf.constant([example.SerializeToString()])}
    )
    from_bytes = model.signatures[features.BYTES_SIGNATURE](**{features.SERVING_BYTES_INPUT: tf.constant([sample_jpeg])})
    np.testing.assert_allclose(
        from_examples[features.PROBABILITIES_OUTPUT].numpy(), from_bytes[features.PROBABILITIES_OUTPUT].numpy(), rtol=1e-5
    )


def test_training_history_and_tensorboard_logs_are_kept(run):
    config, _ = run
    model_uri = results.latest(config).model_uri
    with open(os.path.join(model_uri, HISTORY_FILE)) as f:
        history = json.load(f)
    epochs = len(history["loss"])
    assert epochs >= 1 and len(history["val_accuracy"]) == epochs and len(history["phase"]) == epochs
    run_dir = os.path.join(os.path.dirname(os.path.dirname(model_uri)), "model_run")
    event_files = [f for _, _, files in os.walk(run_dir) for f in files if f.startswith("events.out.tfevents")]
    assert event_files


def test_history_and_predict_commands(run, photos_dir):
    config, _ = run
    listed = flowers_cli("history", "--output-dir", config.output_dir, "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert rows[-1]["blessed"] and rows[-1]["pushed_to"]
    photo = os.path.join(photos_dir, "tulips", "photo1.jpg")
    predicted = flowers_cli("predict", photo, "--output-dir", config.output_dir)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    row = json.loads(predicted.stdout.splitlines()[-1])
    assert row["file"] == photo and row["class"] in features.CLASS_NAMES
    assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_a_model_below_the_gate_is_not_pushed(run):
    """Last in this file: a second run in the same place, with a gate the model
    cannot pass. Caching reuses everything up to the Trainer."""
    config, _ = run
    first_push = serving.newest_pushed_model(config)
    done = flowers_cli("run", "--output-dir", config.output_dir, "--min-accuracy", "0.999")
    assert done.returncode == 0, done.stderr[-5000:]

    store = results.store_for(config)
    first_id, second_id = results.run_ids(store)[-2:]
    second = results.summarize(store, second_id)
    assert not second.blessed and second.pushed_to is None
    assert any("below the threshold 0.9990" in line for line in second.gate_failures)
    assert "blessed:        no" in done.stdout and "gate failed:  sparse_categorical_accuracy" in done.stdout
    assert second.model_uri == results.summarize(store, first_id).model_uri  # the Trainer was cached
    assert serving.newest_pushed_model(config) == first_push
    assert os.listdir(config.serving_dir) == [os.path.basename(first_push)]
