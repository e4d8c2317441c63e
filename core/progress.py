"""One-line progress messages for the person watching a run.

A local run's worker process gets a pipe from the supervisor
($FLOWERS_PROGRESS_FD) whose lines the supervisor prints; everything else a
run writes goes to its log file. Elsewhere (a Kubeflow pod, a test) the lines
go to the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Callable

FD_ENV = "FLOWERS_PROGRESS_FD"
_log = logging.getLogger("flowers.progress")
_stream = None
# What the worker does when its progress pipe breaks (the supervisor is gone):
# set by flowers.pipeline.local to end the worker.
when_closed: Callable[[], None] | None = None
# When this process last said something (time.monotonic), for the heartbeat.
last_said = time.monotonic()


def say(line: str) -> None:
    global _stream, last_said
    last_said = time.monotonic()
    _log.info(line)
    fd = os.environ.get(FD_ENV)
    if not fd:
        return
    if _stream is None:
        try:
            _stream = os.fdopen(int(fd), "w", buffering=1, closefd=False)
        except OSError:  # not this process's pipe (a subprocess that inherited the variable)
            os.environ.pop(FD_ENV, None)
            return
    try:
        print(line, file=_stream, flush=True)
    except OSError:
        if when_closed is not None:
            when_closed()


# Longest silence while a component runs: then a line says it still is.
HEARTBEAT_SECONDS = 15.0


@contextlib.contextmanager
def heartbeat(node_id: str, start: float, report: Callable[[str], None] | None = None):
    """While the block runs, a line every HEARTBEAT_SECONDS without any other
    progress line (the Evaluator, Transform, Beam components say nothing)."""
    report = report or say
    stop = threading.Event()

    last_beat = start

    def beat():
        nonlocal last_beat
        while not stop.wait(1.0):
            if time.monotonic() - max(last_said, last_beat) >= HEARTBEAT_SECONDS:
                last_beat = time.monotonic()
                report(f"  {node_id} still running ({last_beat - start:.0f} s)")

    thread = threading.Thread(target=beat, name=f"heartbeat-{node_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
