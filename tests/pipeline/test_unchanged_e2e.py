"""A rerun with nothing new (same data, same settings) pushes nothing: the
cached Trainer's model is already the served version (issue: no duplicate
pushes from a daily schedule with no new photos). Its own output dir: runs
of other tests in the shared one (other Beam settings) would re-ingest."""

import json
import os

import pytest
from conftest import flowers_cli

from flowers import outcome

pytestmark = pytest.mark.slow

ONE_EPOCH = (
    "--set", "training.epochs=1", "--set", "training.fine_tune_epochs=0", "--min-accuracy", "0",
    "--set", "gates.min_class_recall=0",
)  # fmt: skip


def test_a_rerun_with_nothing_new_pushes_nothing(tmp_path):
    out = str(tmp_path / "out")
    first = flowers_cli("run", "--output-dir", out, *ONE_EPOCH)
    assert first.returncode == outcome.PUSHED, first.stdout[-3000:] + first.stderr[-3000:]
    served = sorted(os.listdir(os.path.join(out, "serving")))
    done = flowers_cli("run", "--output-dir", out, *ONE_EPOCH)
    assert done.returncode == outcome.PUSHED, done.stdout[-3000:] + done.stderr[-3000:]
    assert "nothing new: the cached Trainer's model is version" in done.stdout
    assert "state:          unchanged" in done.stdout
    assert sorted(os.listdir(os.path.join(out, "serving"))) == served  # no duplicate version
    assert "starting Evaluator" not in done.stdout  # nothing after the Trainer ran
    last = json.loads(flowers_cli("history", "--output-dir", out, "--json").stdout.splitlines()[-1])
    assert last["state"] == "unchanged" and last["note"] == f"version {served[-1]} is already this model"
    # Another gate is another setting: the model is judged again (and refused).
    stricter = flowers_cli("run", "--output-dir", out, *ONE_EPOCH, "--min-accuracy", "0.999")
    assert stricter.returncode == outcome.REFUSED, stricter.stdout[-3000:]
