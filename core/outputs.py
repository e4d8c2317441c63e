"""The output dir's own layout: one folder per run, and the lock that lets one
run at a time write there. Pure standard library: the supervisor takes the
lock, and every reader of finished runs asks it who is running now."""
from __future__ import annotations

import datetime
import fcntl
import json
import os

LOCK_FILE = ".flowers-run.lock"
RUNS_DIR = "runs"


def run_dir(output_dir: str, run_id: str) -> str:
    """`<output_dir>/runs/<run id, ':' as '-'>`: the run's log and report."""
    return os.path.join(output_dir, RUNS_DIR, run_id.replace(":", "-"))


class OutputDirBusy(RuntimeError):
    """Another run holds the output dir; the message names it."""


class RunLock:
    """One run at a time per output dir: an exclusive flock, which the kernel
    drops when its holder dies (a killed run's lock is taken over at once).
    The file names the holder: pid, run id, start time."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, LOCK_FILE)
        self.fd: int | None = None

    def acquire(self, run_id: str) -> dict:
        """Take the lock; returns what the previous holder wrote (a killed
        run's record, or {})."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise OutputDirBusy(
                f"{os.path.dirname(self.path)} is in use by run {holder.get('run_id', '?')} "
                f"(pid {holder.get('pid', '?')}, started {holder.get('started', '?')}); "
                "wait for it to end or choose another --output-dir"
            ) from None
        previous = _read(fd)
        os.ftruncate(fd, 0)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "run_id": run_id, "started": started}).encode(), 0)
        self.fd = fd
        return previous

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    @staticmethod
    def live_run(output_dir: str) -> str | None:
        """The run id of the run holding the lock now, if any."""
        path = os.path.join(output_dir, LOCK_FILE)
        if not os.path.exists(path):
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd).get("run_id")
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _read(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except ValueError:
        return {}
