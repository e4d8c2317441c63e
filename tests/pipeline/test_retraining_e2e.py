"""Scheduled retraining on accumulating data, as a cron job would run it:
span 1, then span 2 added, a worse configuration refused, a window of one
span, and pruning of old versions. Real runs on two small spans made from the
bundled sample (few epochs: the gates, not the accuracy, are under test)."""

from __future__ import annotations

import json
import os

import pytest
import tensorflow as tf
from conftest import IN_PROCESS_BEAM, NO_TFLITE, flowers_cli
from samples import sample_examples

from flowers import outcome
from flowers.config import PipelineConfig
from flowers.runs import records

pytestmark = pytest.mark.slow
# Small spans: a class can be absent from a 15% validation split of 80
# photos, which the data gate (tested elsewhere) would rightly refuse.
# Few epochs on small uneven spans: the class-balance and per-class recall
# gates (tested elsewhere) are off too.
UNGATED_CLASSES = ("--set", "gates.max_class_ratio=0", "--set", "gates.min_class_recall=0")
FAST = (
    "--set",
    "epochs=3",
    "--set",
    "fine_tune_epochs=0",
    "--set",
    "report=false",
    "--set",
    "min_class_examples=0",
    *UNGATED_CLASSES,
    "--min-accuracy",
    "0",
    *IN_PROCESS_BEAM,
    *NO_TFLITE,
)


def write_span(root: str, span: int, examples) -> None:
    folder = os.path.join(root, f"span-{span}")
    os.makedirs(folder)
    with tf.io.TFRecordWriter(os.path.join(folder, "flowers-00000-of-00001.tfrec")) as w:
        for example in examples:
            w.write(example.SerializeToString())


def history(out: str) -> list[dict]:
    done = flowers_cli("history", "--output-dir", out, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def split_count(store, run_id: str, split: str) -> int:
    """Examples in `split` of the Examples artifacts the run's Trainer read."""
    trainer = next(
        e
        for e in store.get_executions_by_context(store.get_context_by_type_and_name(records.RUN_CONTEXT, run_id).id)
        if "Trainer" in store.get_execution_types_by_id([e.type_id])[0].name
    )
    events = store.get_events_by_execution_ids([trainer.id])
    examples = [
        a
        for a in store.get_artifacts_by_id([e.artifact_id for e in events if e.type == e.INPUT])
        if store.get_artifact_types_by_id([a.type_id])[0].name == "Examples"
    ]
    files = [f for a in examples for f in tf.io.gfile.glob(f"{a.uri}/Split-{split}/*")]
    return int(tf.data.TFRecordDataset(files, compression_type="GZIP").reduce(0, lambda n, _: n + 1))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    base = tmp_path_factory.mktemp("retraining")
    root, out = str(base / "data"), str(base / "out")
    examples = sample_examples(160)
    write_span(root, 1, examples[::2])
    runs = {"first": flowers_cli("run", "--data-root", root, "--output-dir", out, *FAST)}
    write_span(root, 2, examples[1::2])
    runs["second"] = flowers_cli("run", "--data-root", root, "--output-dir", out, *FAST)
    runs["worse"] = flowers_cli(
        "run",
        "--data-root",
        root,
        "--output-dir",
        out,
        "--min-accuracy",
        "0",
        "--set",
        "report=false",
        "--set",
        "min_class_examples=0",
        "--set",
        "weights=none",
        "--set",
        "epochs=1",
        "--set",
        "fine_tune_epochs=0",
        "--set",
        "learning_rate=1e-7",
        *UNGATED_CLASSES,
        *IN_PROCESS_BEAM,
        *NO_TFLITE,
    )
    runs["window"] = flowers_cli(
        "run",
        "--data-root",
        root,
        "--output-dir",
        out,
        *FAST,
        "--set",
        "span_window=1",
        "--set",
        "max_accuracy_drop=1",
        "--set",
        "keep_versions=1",
    )
    return root, out, runs


def test_first_run_pushes_with_no_baseline(scenario):
    _, out, runs = scenario
    done = runs["first"]
    assert done.returncode == outcome.PUSHED, done.stdout[-3000:] + done.stderr[-3000:]
    assert "baseline:       none (first model)" in done.stdout
    assert "spans:          1" in done.stdout
    first = history(out)[0]
    assert first["state"] == "pushed" and first["spans"] == [1] and first["baseline_version"] is None


def test_second_run_trains_on_both_spans_against_the_first_model(scenario):
    _, out, runs = scenario
    done = runs["second"]
    assert done.returncode == outcome.PUSHED, done.stdout[-3000:] + done.stderr[-3000:]
    first, second = history(out)[:2]
    assert second["spans"] == [1, 2]
    assert second["baseline_version"] == first["pushed_version"]
    assert second["baseline_accuracy"] is not None
    assert f"baseline:       version {first['pushed_version']}" in done.stdout
    store = records.store_for(PipelineConfig(output_dir=out))
    # Both spans' train share: more than the first run's, about twice it.
    assert second["train_examples"] == split_count(store, second["run_id"], "train")
    assert second["train_examples"] > 1.5 * first["train_examples"]


def test_a_worse_model_is_refused_with_exit_3(scenario):
    _, out, runs = scenario
    done = runs["worse"]
    assert done.returncode == outcome.REFUSED, done.stdout[-3000:] + done.stderr[-3000:]
    worse = history(out)[2]
    assert worse["state"] == "refused" and worse["pushed_version"] is None
    assert any("against the last blessed model" in f for f in worse["gate_failures"])
    assert "gate failed:" in done.stdout


def test_a_window_of_one_span_and_pruning(scenario):
    root, out, runs = scenario
    done = runs["window"]
    assert done.returncode == outcome.PUSHED, done.stdout[-3000:] + done.stderr[-3000:]
    window = history(out)[3]
    assert window["spans"] == [2]
    store = records.store_for(PipelineConfig(output_dir=out))
    assert window["train_examples"] == split_count(store, window["run_id"], "train")
    serving = os.path.join(out, "serving")
    assert os.listdir(serving) == [window["pushed_version"]]
    assert "pruned pushed version" in done.stdout


def test_history_table_has_a_header_and_a_row_per_run(scenario):
    _, out, _ = scenario
    done = flowers_cli("history", "--output-dir", out)
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["run", "spans", "train/val/eval", "accuracy"]
    assert len(lines) == 5
    assert lines[1].split()[1] == "1" and lines[2].split()[1] == "1,2" and lines[4].split()[1] == "2"
    assert "refused" in lines[3] and "pushed" in lines[1]
