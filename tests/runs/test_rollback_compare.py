"""Day two on a finished run: history with settings columns, compare, and
rollback, on a copy of the suite's shared pushed run (real ML Metadata, a
real SavedModel)."""

import filecmp
import json
import os
import shutil

import pytest
from conftest import flowers_cli

from flowers import outputs
from flowers.config import PipelineConfig
from flowers.runs import predict

pytestmark = pytest.mark.slow


@pytest.fixture
def copied_run(pipeline_run, tmp_path):
    """The shared run's output dir, copied (rollback writes to it)."""
    config, _ = pipeline_run
    out = tmp_path / "out"
    shutil.copytree(config.output_dir, out, ignore=shutil.ignore_patterns(outputs.LOCK_FILE))
    return PipelineConfig(output_dir=str(out))


def test_history_shows_the_settings_a_run_used(pipeline_run):
    config, _ = pipeline_run
    done = flowers_cli("history", "--output-dir", config.output_dir, "-c", "training.epochs,training.fine_tune_epochs")
    assert done.returncode == 0, done.stderr[-2000:]
    header, row = done.stdout.splitlines()[:2]
    assert "training.epochs" in header.split() and "time" in header.split()
    cells = row.split()
    assert cells[header.split().index("training.epochs")] == "3"  # TINY_RUN_SETTINGS
    recorded = json.loads(flowers_cli("history", "--output-dir", config.output_dir, "--json").stdout.splitlines()[0])
    assert recorded["settings"]["training.epochs"] == 3 and recorded["settings"]["output_dir"] == config.output_dir
    bad = flowers_cli("history", "--output-dir", config.output_dir, "-c", "training.epoch")
    assert bad.returncode == 2 and "unknown setting training.epoch" in bad.stderr


def test_rollback_serves_an_older_version_again_and_is_recorded(copied_run):
    serving = copied_run.serving_dir
    (served,) = sorted(os.listdir(serving))
    alone = flowers_cli("rollback", "--output-dir", copied_run.output_dir)
    assert alone.returncode == 2 and f"only version {served} was pushed" in alone.stderr
    older = str(int(served) - 100)  # an earlier push of the same model
    shutil.copytree(os.path.join(serving, served), os.path.join(serving, older))
    missing = flowers_cli("rollback", "42", "--output-dir", copied_run.output_dir)
    assert missing.returncode == 2 and f"no pushed version 42 in {serving}; pushed: {older}, {served}" in missing.stderr

    done = flowers_cli("rollback", older, "--output-dir", copied_run.output_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    new = max(os.listdir(serving), key=lambda v: int(v) if v.isdigit() else -1)
    assert int(new) > int(served) and f"version {older} is served again as version {new}" in done.stdout
    assert [n for n in os.listdir(serving) if n.startswith(".")] == []  # no staging folder left
    comparison = filecmp.dircmp(os.path.join(serving, older), os.path.join(serving, new))
    assert comparison.left_only == comparison.right_only == comparison.diff_files == []
    assert predict.newest_pushed_model(copied_run) == os.path.join(serving, new)  # what predict serves now

    rows = [
        json.loads(line)
        for line in flowers_cli("history", "--output-dir", copied_run.output_dir, "--json").stdout.splitlines()
    ]
    assert rows[-1]["state"] == "rolled back" and rows[-1]["pushed_version"] == new
    compared = flowers_cli("compare", rows[0]["run_id"], rows[-1]["run_id"], "--output-dir", copied_run.output_dir)
    assert compared.returncode == 0, compared.stderr[-2000:]
    state = next(line for line in compared.stdout.splitlines() if line.startswith("state"))
    assert state.split()[1:] == ["pushed", "rolled", "back"]


def test_rollback_waits_for_no_run(copied_run):
    serving = copied_run.serving_dir
    (served,) = os.listdir(serving)
    shutil.copytree(os.path.join(serving, served), os.path.join(serving, str(int(served) - 1)))
    lock = outputs.RunLock(copied_run.output_dir)
    lock.acquire("a-run")
    try:
        busy = flowers_cli("rollback", "--output-dir", copied_run.output_dir)
    finally:
        lock.release()
    assert busy.returncode == 2 and "in use by run a-run" in busy.stderr
    assert sorted(os.listdir(serving)) == sorted([served, str(int(served) - 1)])


def test_compare_names_a_missing_run(pipeline_run):
    config, _ = pipeline_run
    done = flowers_cli("compare", "no-such-run", "--output-dir", config.output_dir)
    assert done.returncode == 2 and "no run 'no-such-run'" in done.stderr
