"""The push is the run's commit point, a rerun with nothing new pushes
nothing, and no model blind to a class is pushed. One tiny real run (one
epoch: a poor model, which is the point), SIGINT two seconds after its
Pusher ended (while the report is written); then the same folder again with
the same settings (nothing new: the cached Trainer's model is already the
served version, issue: no duplicate pushes from a daily schedule with no new
photos); then again with the default per-class recall floor, cached up to the
Trainer (another gate is another setting: the model is judged again, and
refused). One output dir of their own: runs of other tests in the shared one
(other Beam settings) would re-ingest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from conftest import IN_PROCESS_BEAM, NO_TFLITE, flowers_cli

from flowers import outcome
from flowers.config import PipelineConfig
from flowers.outputs import PUSH_TEMP_PREFIX
from flowers.runs import records, results

pytestmark = pytest.mark.slow

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
UNFLOORED = ("--set", "gates.min_class_recall=0")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("push"))
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flowers.cli.main",
            "run",
            "--output-dir",
            out,
            *ONE_EPOCH,
            *UNFLOORED,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in first.stdout:
        seen.append(line)
        if line.startswith("Pusher"):
            time.sleep(2)
            first.send_signal(signal.SIGINT)
            break
    rest, err = first.communicate(timeout=600)
    interrupted = subprocess.CompletedProcess(first.args, first.returncode, "".join(seen) + rest, err)
    served = sorted(os.listdir(os.path.join(out, "serving")))
    rerun = flowers_cli("run", "--output-dir", out, *ONE_EPOCH, *UNFLOORED)
    # The default floor (0.5), with report and everything else as before.
    floored = flowers_cli("run", "--output-dir", out, *ONE_EPOCH, "--set", "run.report=false")
    return out, interrupted, floored, rerun, served


def test_a_signal_after_the_push_leaves_a_pushed_run(runs):
    out, done, *_ = runs
    assert done.returncode == outcome.PUSHED, done.stdout[-3000:] + done.stderr[-3000:]
    assert "note: SIGINT came after the push, which stands" in done.stdout
    assert "state:          pushed" in done.stdout and "nothing was pushed" not in done.stdout
    first = history(out)[0]
    assert first["state"] == "pushed" and first["blessed"] and first["pushed_to"]


def test_the_pushed_version_is_whole_and_alone(runs):
    out, *_ = runs
    serving = os.path.join(out, "serving")
    (version,) = os.listdir(serving)  # no hidden half-copied folder beside it
    assert version.isdigit() and not version.startswith(PUSH_TEMP_PREFIX)
    assert tf.saved_model.contains_saved_model(os.path.join(serving, version))
    assert os.path.join(serving, version) == history(out)[0]["pushed_to"]


def test_a_model_under_the_recall_floor_is_refused_with_each_class_named(runs):
    out, _, done, *_ = runs
    assert done.returncode == outcome.REFUSED, done.stdout[-3000:] + done.stderr[-3000:]
    store = records.store_for(PipelineConfig(output_dir=out))
    summary = results.summarize(store, records.run_ids(store)[-1])
    below = [name for name, recall in summary.per_class_recall.items() if recall < 0.5]
    assert below, summary.per_class_recall  # one epoch: some class is still missed
    floor_failures = [line for line in summary.gate_failures if "gates.min_class_recall" in line]
    assert [line.split()[2] for line in floor_failures] == below
    for name in below:
        assert f"gate failed:  recall of {name} " in done.stdout
    assert "starting Evaluator" in done.stdout  # judged again, though the Trainer was cached
    refused = history(out)[-1]
    assert refused["state"] == "refused" and refused["pushed_to"] is None
    assert os.listdir(os.path.join(out, "serving")) == [os.path.basename(history(out)[0]["pushed_to"])]


def test_a_rerun_with_nothing_new_pushes_nothing(runs):
    out, _, _, done, served = runs
    assert done.returncode == outcome.PUSHED, done.stdout[-3000:] + done.stderr[-3000:]
    assert "nothing new: the cached Trainer's model is version" in done.stdout
    assert "state:          unchanged" in done.stdout
    assert sorted(os.listdir(os.path.join(out, "serving"))) == served  # no duplicate version
    assert "starting Evaluator" not in done.stdout  # nothing after the Trainer ran
    rerun = history(out)[1]
    assert rerun["state"] == "unchanged" and rerun["note"] == f"version {served[-1]} is already this model"


def history(out: str) -> list[dict]:
    listed = flowers_cli("history", "--output-dir", out, "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    return [json.loads(line) for line in listed.stdout.splitlines()]
