"""A rerun with nothing new (same data, same settings) pushes nothing: the
cached Trainer's model is already the served version (issue: no duplicate
pushes from a daily schedule with no new photos)."""

import json
import os
import shutil

import pytest
from conftest import TINY_RUN_SETTINGS, flowers_cli

from flowers import outcome, outputs

pytestmark = pytest.mark.slow


def test_a_rerun_with_nothing_new_pushes_nothing(pipeline_run, tmp_path):
    config, _ = pipeline_run
    out = tmp_path / "out"
    shutil.copytree(config.output_dir, out, ignore=shutil.ignore_patterns(outputs.LOCK_FILE))
    served = sorted(os.listdir(out / "serving"))
    done = flowers_cli("run", "--output-dir", str(out), *TINY_RUN_SETTINGS)
    assert done.returncode == outcome.PUSHED, done.stdout[-3000:] + done.stderr[-3000:]
    assert "nothing new: the cached Trainer's model is version" in done.stdout
    assert "state:          unchanged" in done.stdout
    assert sorted(os.listdir(out / "serving")) == served  # no duplicate version
    assert "Evaluator" not in done.stdout  # nothing after the Trainer ran
    last = json.loads(flowers_cli("history", "--output-dir", str(out), "--json").stdout.splitlines()[-1])
    assert last["state"] == "unchanged" and last["note"] == f"version {served[-1]} is already this model"
    # Another gate is another setting: the model is judged again (and refused).
    stricter = flowers_cli("run", "--output-dir", str(out), *TINY_RUN_SETTINGS, "--min-accuracy", "0.999")
    assert stricter.returncode == outcome.REFUSED, stricter.stdout[-3000:]
