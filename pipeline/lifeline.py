"""A worker never outlives its supervisor, and a push is never cut in half.

Both sides of the tie between `flowers.pipeline.supervisor` and its worker
(`flowers.pipeline.local`), standard library only:

- the kernel kills the worker when the supervisor dies, however it dies
  (Linux's parent-death signal, set between fork and exec);
- a thread in the worker waits on a pipe whose only write end the supervisor
  holds, and kills the worker's whole process group (Beam workers too) when
  it reads end-of-file;
- the worker checks before every component that its supervisor is still its
  parent, and its progress pipe breaking ends it as well;
- SIGINT / SIGTERM / SIGHUP that arrive while the Pusher commits take
  effect right after it, so a version is pushed and recorded, or neither.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from typing import Callable, Iterator

FD_ENV = "FLOWERS_LIFELINE_FD"
SUPERVISOR_ENV = "FLOWERS_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for the worker: SIGKILL from the kernel when the process
    that started it ends (None where there is no prctl)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child only calls it

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return preexec


def die() -> None:
    """End this worker's process group (itself and its Beam workers) at once."""
    os.killpg(os.getpgid(0), signal.SIGKILL)


def supervisor_alive() -> bool:
    """True while the supervisor that started this worker is its parent (a
    worker started some other way has none to lose)."""
    expected = os.environ.get(SUPERVISOR_ENV)
    return expected is None or os.getppid() == int(expected)


def check() -> None:
    """Before each component: a worker whose supervisor is gone stops here."""
    if not supervisor_alive():
        die()


def watch_supervisor() -> None:
    """Start the watchdog thread (the supervisor may already be gone: the
    parent-death signal only covers deaths after it was set)."""
    check()
    fd = os.environ.get(FD_ENV)
    if fd is None:
        return

    def wait() -> None:
        with contextlib.suppress(OSError):
            while os.read(int(fd), 1):
                pass
        die()

    threading.Thread(target=wait, name="supervisor-watchdog", daemon=True).start()


@contextlib.contextmanager
def stops_deferred() -> Iterator[None]:
    """Hold SIGINT / SIGTERM / SIGHUP until the block ends, then die of the
    first one received."""
    received: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in STOPS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if received:
            signal.signal(received[0], signal.SIG_DFL)
            os.kill(os.getpid(), received[0])
