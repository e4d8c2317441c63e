"""The output dir's own layout: one folder per run, and the lock that lets one
run at a time write there. Pure standard library: the supervisor takes the
lock, and every reader of finished runs asks it who is running now."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os

LOCK_FILE = ".flowers-run.lock"
RUNS_DIR = "runs"
# A version being pushed into serving/: hidden (versions are digits) until
# it is renamed into place whole (components/push.py).
PUSH_TEMP_PREFIX = ".push-"


def run_dir(output_dir: str, run_id: str) -> str:
    """`<output_dir>/runs/<run id, ':' as '-'>`: the run's log and report."""
    return os.path.join(output_dir, RUNS_DIR, run_id.replace(":", "-"))


class OutputDirBusy(RuntimeError):
    """Another run holds the output dir; the message names it."""


class RunLock:
    """One run at a time per output dir: an exclusive flock on the output dir
    itself, so deleting the record file cannot free it. The supervisor's
    worker inherits it (`fd`): the kernel drops it only when the supervisor
    and its worker are both gone, and a killed run's lock is taken over as
    soon as nothing of it is left. The record file beside it names the
    holder: pid, run id, start time."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LOCK_FILE)
        self.fd: int | None = None

    def acquire(self, run_id: str) -> dict:
        """Take the lock; returns what the previous holder wrote (a killed
        run's record, or {})."""
        fd = os.open(self.output_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read(self.path)
            who = (
                f"run {holder['run_id']} (pid {holder.get('pid', '?')}, started {holder.get('started', '?')})"
                if holder.get("run_id")
                else f"another run (its record {LOCK_FILE} was deleted)"
            )
            raise OutputDirBusy(
                f"{self.output_dir} is in use by {who}; wait for it to end or choose another --output-dir"
            ) from None
        previous = _read(self.path)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        _write(self.path, {"pid": os.getpid(), "run_id": run_id, "started": started})
        self.fd = fd
        return previous

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):  # a full disk must not keep the lock
                _write(self.path, {})  # ended: nothing for the next run to recover
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    @staticmethod
    def live_run(output_dir: str) -> str | None:
        """The run id of the run holding the lock now, if any."""
        if not os.path.isdir(output_dir):
            return None
        fd = os.open(output_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(os.path.join(output_dir, LOCK_FILE)).get("run_id", "?")
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            return json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return {}


def _write(path: str, record: dict) -> None:
    with open(path, "w") as f:
        f.write(json.dumps(record))
