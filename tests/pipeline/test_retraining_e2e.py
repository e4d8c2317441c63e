"""Scheduled retraining on accumulating data, as a cron job would run it, in
one output dir: five real runs, three of which train (one head epoch: the
gates, the push and the caching are under test, not the accuracy).

1. span 1 (the bundled sample's photos), SIGINT once its Pusher has ended,
   while the report is written: the push is the run's commit point;
2. the same again: nothing new, the cached Trainer's model is already the
   served version, so nothing is pushed (no duplicate pushes from a daily
   schedule with no new photos);
3. the same with the default per-class recall floor, cached up to the
   Trainer: another gate is another setting, the model is judged again, and a
   one-epoch model blind to a class is refused, each such class named;
4. span 2 added, with a worse configuration: trains on both spans, judged
   against the first model and refused against it;
5. a window of one span: pushed against the first model, and pruning of
   old versions.

Span 2 holds the sample's photos again: what is under test is which spans a
run reads, not what is in them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import tensorflow as tf
from conftest import IN_PROCESS_BEAM, NO_TFLITE, flowers_cli

from flowers import outcome
from flowers.config import SAMPLE_DATA, PipelineConfig
from flowers.outputs import PUSH_TEMP_PREFIX
from flowers.runs import records, results

pytestmark = pytest.mark.slow

# One head epoch misses whole classes: the per-class recall floor is off
# except in the run that tests it.
UNFLOORED = ("--set", "gates.min_class_recall=0")
ONE_EPOCH = (
    "--set",
    "training.epochs=1",
    "--set",
    "training.fine_tune_epochs=0",
    "--min-accuracy",
    "0",
    *IN_PROCESS_BEAM,
    *NO_TFLITE,
)
NO_REPORT = ("--set", "run.report=false")


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


def interrupted_after_the_push(*args: str) -> subprocess.CompletedProcess:
    first = subprocess.Popen(
        [sys.executable, "-m", "flowers.cli.main", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in first.stdout:
        seen.append(line)
        # The line after the push: the worker is now writing the report (the
        # run's last step, half a second on the sample), so the signal comes
        # after the push and before the run's end.
        if line.startswith("writing the report"):
            first.send_signal(signal.SIGINT)
            break
    rest, err = first.communicate(timeout=600)
    return subprocess.CompletedProcess(first.args, first.returncode, "".join(seen) + rest, err)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    base = tmp_path_factory.mktemp("retraining")
    root, out = str(base / "data"), str(base / "out")
    shutil.copytree(os.path.join(SAMPLE_DATA, "span-1"), os.path.join(root, "span-1"))
    where = ("--data-root", root, "--output-dir", out)
    runs = {"first": interrupted_after_the_push(*where, *ONE_EPOCH, *UNFLOORED)}
    served = sorted(os.listdir(os.path.join(out, "serving")))
    # (read now: the last run prunes this version)
    whole = [tf.saved_model.contains_saved_model(os.path.join(out, "serving", version)) for version in served]
    runs["unchanged"] = flowers_cli("run", *where, *ONE_EPOCH, *UNFLOORED)
    served_after = sorted(os.listdir(os.path.join(out, "serving")))
    # The default floor (0.5), with everything else as before.
    runs["floored"] = flowers_cli("run", *where, *ONE_EPOCH, *NO_REPORT)
    shutil.copytree(os.path.join(SAMPLE_DATA, "span-1"), os.path.join(root, "span-2"))
    runs["second"] = flowers_cli(
        "run",
        *where,
        *ONE_EPOCH,
        *UNFLOORED,
        *NO_REPORT,
        "--set",
        "training.weights=none",
        "--set",
        "training.learning_rate=1e-7",
    )
    runs["window"] = flowers_cli(
        "run",
        *where,
        *ONE_EPOCH,
        *UNFLOORED,
        *NO_REPORT,
        "--set",
        "data.span_window=1",
        "--set",
        "gates.max_accuracy_drop=1",
        "--set",
        "run.keep_versions=1",
    )
    return out, runs, (served, served_after, whole)


# Their order in `flowers history`.
FIRST, UNCHANGED, FLOORED, SECOND, WINDOW = range(5)


def test_first_run_pushes_with_no_baseline(scenario):
    out, runs, _ = scenario
    done = runs["first"]
    assert done.returncode == outcome.PUSHED, done.stdout[-3000:] + done.stderr[-3000:]
    assert "baseline:       none (first model)" in done.stdout
    assert "spans:          1" in done.stdout
    first = history(out)[FIRST]
    assert first["state"] == "pushed" and first["spans"] == [1] and first["baseline_version"] is None


def test_a_signal_after_the_push_leaves_a_pushed_run(scenario):
    out, runs, (served, _, whole) = scenario
    done = runs["first"]
    assert done.returncode == outcome.PUSHED, done.stdout[-3000:] + done.stderr[-3000:]
    assert "note: SIGINT came after the push, which stands" in done.stdout
    assert "state:          pushed" in done.stdout and "nothing was pushed" not in done.stdout
    first = history(out)[FIRST]
    assert first["state"] == "pushed" and first["blessed"] and first["pushed_to"]
    # The pushed version is whole and alone: no hidden half-copied folder beside it.
    (version,) = served
    assert version.isdigit() and not version.startswith(PUSH_TEMP_PREFIX)
    assert whole == [True]
    assert os.path.join(out, "serving", version) == first["pushed_to"]


def test_a_rerun_with_nothing_new_pushes_nothing(scenario):
    out, runs, (served, served_after, _) = scenario
    done = runs["unchanged"]
    assert done.returncode == outcome.PUSHED, done.stdout[-3000:] + done.stderr[-3000:]
    assert "nothing new: the cached Trainer's model is version" in done.stdout
    assert "state:          unchanged" in done.stdout
    assert "starting Evaluator" not in done.stdout  # nothing after the Trainer ran
    rerun = history(out)[UNCHANGED]
    assert rerun["state"] == "unchanged" and rerun["note"] == f"version {served[-1]} is already this model"
    assert served_after == served  # no duplicate version


def test_a_model_under_the_recall_floor_is_refused_with_each_class_named(scenario):
    out, runs, _ = scenario
    done = runs["floored"]
    assert done.returncode == outcome.REFUSED, done.stdout[-3000:] + done.stderr[-3000:]
    assert "starting Evaluator" in done.stdout  # judged again, though the Trainer was cached
    store = records.store_for(PipelineConfig(output_dir=out))
    run_id = records.run_ids(store)[FLOORED]
    summary = results.summarize(store, run_id)
    assert summary.model_uri == history(out)[FIRST]["model_uri"]  # the Trainer was cached
    below = [name for name, recall in summary.per_class_recall.items() if recall < 0.5]
    assert below, summary.per_class_recall  # one epoch: some class is still missed
    floor_failures = [line for line in summary.gate_failures if "gates.min_class_recall" in line]
    assert [line.split()[2] for line in floor_failures] == below
    for name in below:
        assert f"gate failed:  recall of {name} " in done.stdout
    refused = history(out)[FLOORED]
    assert refused["state"] == "refused" and refused["pushed_to"] is None


def test_a_worse_second_run_trains_on_both_spans_and_is_refused_against_the_first_model(scenario):
    out, runs, _ = scenario
    done = runs["second"]
    assert done.returncode == outcome.REFUSED, done.stdout[-3000:] + done.stderr[-3000:]
    rows = history(out)
    first, second = rows[FIRST], rows[SECOND]
    assert second["spans"] == [1, 2]
    assert second["baseline_version"] == first["pushed_version"]
    assert second["baseline_accuracy"] is not None
    assert f"baseline:       version {first['pushed_version']}" in done.stdout
    store = records.store_for(PipelineConfig(output_dir=out))
    # Both spans' train share: twice the first run's (span 2 is span 1's photos again).
    assert second["train_examples"] == split_count(store, second["run_id"], "train")
    assert second["train_examples"] == 2 * first["train_examples"]
    assert second["state"] == "refused" and second["pushed_version"] is None
    assert any("against the last blessed model" in f for f in second["gate_failures"])
    assert "gate failed:" in done.stdout


def test_a_window_of_one_span_and_pruning(scenario):
    out, runs, _ = scenario
    done = runs["window"]
    assert done.returncode == outcome.PUSHED, done.stdout[-3000:] + done.stderr[-3000:]
    rows = history(out)
    window = rows[WINDOW]
    assert window["spans"] == [2]
    assert window["baseline_version"] == rows[FIRST]["pushed_version"]  # not the refused second model
    store = records.store_for(PipelineConfig(output_dir=out))
    assert window["train_examples"] == split_count(store, window["run_id"], "train")
    serving = os.path.join(out, "serving")
    assert os.listdir(serving) == [window["pushed_version"]]
    assert "pruned pushed version" in done.stdout


def test_history_table_has_a_header_and_a_row_per_run(scenario):
    out, _, _ = scenario
    done = flowers_cli("history", "--output-dir", out)
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["run", "spans", "train/val/eval", "accuracy"]
    rows = lines[1:]
    assert len(rows) == 5
    assert [row.split()[1] for row in rows] == ["1", "1", "1", "1,2", "2"]
    assert "pushed" in rows[FIRST] and "unchanged" in rows[UNCHANGED]
    assert "refused" in rows[FLOORED] and "refused" in rows[SECOND]
