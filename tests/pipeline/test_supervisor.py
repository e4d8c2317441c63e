"""The supervisor's own rules, without a pipeline run: the output dir lock,
the worker's tie to its supervisor, and pruning of pushed versions."""

import os
import signal
import subprocess
import sys
import time

import pytest

from flowers import outputs
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


def test_the_lock_holds_without_its_record_file(tmp_path):
    """The lock is on the output dir itself: deleting the record file does not
    let a second run in."""
    first = supervisor.RunLock(str(tmp_path))
    first.acquire("run-1")
    try:
        os.remove(tmp_path / outputs.LOCK_FILE)
        with pytest.raises(
            supervisor.OutputDirBusy, match="in use by another run .its record .flowers-run.lock was deleted"
        ):
            supervisor.RunLock(str(tmp_path)).acquire("run-2")
    finally:
        first.release()
    supervisor.RunLock(str(tmp_path)).acquire("run-3")


def test_the_lock_stays_taken_while_a_child_that_inherited_it_lives(tmp_path):
    """As the worker does: the holder dies (SIGKILL), its child lives on, and
    the output dir stays locked until the child is gone too."""
    code = (
        "import os, subprocess, sys; from flowers.outputs import RunLock; "
        f"lock = RunLock({str(tmp_path)!r}); lock.acquire('killed-run'); "
        "child = subprocess.Popen(['sleep', '30'], pass_fds=(lock.fd,), stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL); print(child.pid, flush=True); "
        "os.kill(os.getpid(), 9)"
    )
    holder = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    child = int(holder.stdout)
    try:
        assert holder.returncode == -signal.SIGKILL
        with pytest.raises(supervisor.OutputDirBusy, match="in use by run killed-run"):
            supervisor.RunLock(str(tmp_path)).acquire("next-run")
    finally:
        os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while supervisor.RunLock.live_run(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    lock = supervisor.RunLock(str(tmp_path))
    assert lock.acquire("next-run")["run_id"] == "killed-run"
    lock.release()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_the_kernel_kills_the_worker_when_its_supervisor_dies():
    """A process started as the supervisor starts its worker dies the moment
    its parent is SIGKILLed (nothing in the parent runs then)."""
    code = (
        "import os, subprocess; from flowers.pipeline import lifeline; "
        "child = subprocess.Popen(['sleep', '30'], start_new_session=True, stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL, preexec_fn=lifeline.die_with_parent()); "
        "print(child.pid, flush=True); os.kill(os.getpid(), 9)"
    )
    parent = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    child = int(parent.stdout)
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, reaped by init soon, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_corrupt_metadata_store_is_named_with_the_way_out(tmp_path):
    from conftest import flowers_cli

    (tmp_path / "metadata.sqlite").write_bytes(b"\x00not sqlite" * 500)
    for command in ("run", "history"):
        done = flowers_cli(command, "--output-dir", str(tmp_path), timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        (line,) = done.stderr.splitlines()
        assert line.startswith(
            f"error: {tmp_path}/metadata.sqlite is not a readable ML Metadata store (file is not a "
            f"database); move it aside"
        )
