"""The supervisor's own rules, without a pipeline run: the output dir lock
and pruning of pushed versions."""
import os
import subprocess
import sys

import pytest

from flowers.pipeline import supervisor


def test_a_second_holder_is_refused_with_the_first_ones_name(tmp_path):
    first = supervisor.RunLock(str(tmp_path))
    first.acquire("run-1")
    try:
        with pytest.raises(supervisor.OutputDirBusy, match=rf"in use by run run-1 \(pid {os.getpid()}, started "):
            supervisor.RunLock(str(tmp_path)).acquire("run-2")
        assert supervisor.RunLock.live_run(str(tmp_path)) == "run-1"
    finally:
        first.release()
    assert supervisor.RunLock.live_run(str(tmp_path)) is None


def test_a_killed_holders_lock_is_taken_over_and_named(tmp_path):
    """A process that dies holding the lock (SIGKILL) leaves its record; the
    kernel frees the lock, and the next run learns which run was killed."""
    code = (
        "import os, sys; from flowers.pipeline import supervisor; "
        f"supervisor.RunLock({str(tmp_path)!r}).acquire('killed-run'); os.kill(os.getpid(), 9)"
    )
    subprocess.run([sys.executable, "-c", code])
    lock = supervisor.RunLock(str(tmp_path))
    previous = lock.acquire("next-run")
    try:
        assert previous["run_id"] == "killed-run"
    finally:
        lock.release()


def test_pruning_keeps_the_newest_versions(tmp_path):
    for version in ("100", "200", "300", "notaversion"):
        (tmp_path / version).mkdir()
    assert supervisor.prune_versions(str(tmp_path), 2) == ["100"]
    assert sorted(os.listdir(tmp_path)) == ["200", "300", "notaversion"]
    # Never the one just pushed, even when it is not the highest number.
    assert supervisor.prune_versions(str(tmp_path), 1, keep=str(tmp_path / "200")) == []
