"""How a pipeline run ends: its state in `flowers history` and its exit code.

The same numbers for `flowers run`, the `tfx` local-engine entry file and
schedulers reading them (README, "Exit codes").
"""

from __future__ import annotations

import enum


class State(str, enum.Enum):
    PUSHED = "pushed"  # blessed by every gate and pushed
    REFUSED = "refused"  # trained, but a model gate refused it
    DATA_REFUSED = "data refused"  # the data gate stopped the run before training
    FAILED = "failed"  # a component failed (named in the summary), or the worker died
    INTERRUPTED = "interrupted"  # stopped by a signal to `flowers run` (or its output closing), or `flowers run` killed
    RUNNING = "running"  # still running (holds the output dir's lock)
    ROLLED_BACK = "rolled back"  # `flowers rollback`: an older version served again
    UNCHANGED = "unchanged"  # nothing new: the cached Trainer's model is already the served version


PUSHED = 0
FAILED = 1
USAGE = 2  # bad usage or settings; also: the output dir is in use by another run
REFUSED = 3
DATA_REFUSED = 4
# Stopped from outside: 128 + the signal's number, as a shell reports it.
SIGHUP = 129
SIGINT = 130
SIGTERM = 143
# The run's output (stdout) closed under it, e.g. `flowers run | head`: as SIGPIPE would end it.
OUTPUT_CLOSED = 141


def interrupted_by(signum: int) -> int:
    """The exit code of a run stopped by signal `signum`, which `flowers run` received."""
    return 128 + signum


EXIT_CODES = {
    State.PUSHED: PUSHED,
    State.UNCHANGED: PUSHED,  # the served model is what this run would have pushed
    State.REFUSED: REFUSED,
    State.DATA_REFUSED: DATA_REFUSED,
    State.FAILED: FAILED,
    State.INTERRUPTED: SIGINT,
}

HELP = (
    "Exit codes: 0 a model was blessed and pushed, or nothing changed since the served one (state "
    "unchanged); 3 the model was trained but refused "
    "by a gate (named in the output); 4 the data was refused by validation; 2 bad usage "
    "or settings, or the output dir is in use by another run; 130 / 143 / 129 interrupted by "
    "SIGINT / SIGTERM / SIGHUP (nothing pushed); 141 its output closed (nothing pushed); "
    "1 anything else (a failed component, or the worker killed: 'worker died: signal N')."
)
