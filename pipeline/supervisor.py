"""Run the local pipeline so that a scheduler can trust it.

The supervisor (this process, light: no TensorFlow) checks what it can at
once, takes the output dir's lock, and runs the pipeline in a worker process
(`flowers.pipeline.local`) of its own session. It prints the worker's
progress lines, keeps everything else in the run's log file, and ends with
the run's own summary and an exit code (`flowers.outcome`).

The worker never outlives it (`flowers.pipeline.lifeline`), and the output
dir stays locked until the worker is gone. On SIGINT, SIGTERM or SIGHUP, or
when its own output closes (`flowers run | head`), it stops the worker's
whole process group (Beam workers included): no later component starts and
the run is recorded as interrupted. The push is the commit point: a run
whose Pusher committed is pushed (exit 0), whatever came after. A worker
killed by a signal this process never received (the out-of-memory killer)
is a failure, not an interruption.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable

from flowers import outcome, outputs, progress, weights
from flowers.config import PipelineConfig
from flowers.data import layout
from flowers.outputs import OutputDirBusy, RunLock  # noqa: F401 (the CLI's names for them)
from flowers.pipeline import lifeline

_GRACE_SECONDS = 10


@dataclasses.dataclass
class RunResult:
    run_id: str
    exit_code: int
    summary: object | None  # results.RunSummary, when the run got that far
    log_file: str


def check_inputs(config: PipelineConfig) -> None:
    """What can be refused at once, before any component (or TensorFlow) starts."""
    weights.resolve(config.training.weights, config.training.alpha)
    layout.check_data_root(config.data.data_root, config.data.span)
    layout.check_shards(config.data.data_root, config.data.span)


def run(config: PipelineConfig, echo: Callable[[str], None] = print, verbose: bool = False) -> RunResult:
    """Run the pipeline under supervision; returns its exit code and summary."""
    check_inputs(config)
    config, beam_mode = layout.choose_beam_mode(layout.resolve(config))  # once: the worker builds the DAG from it
    echo(beam_mode)
    # Absolute, so that paths recorded in ML Metadata work from any folder.
    config = dataclasses.replace(config, output_dir=os.path.abspath(config.output_dir))
    os.makedirs(config.output_dir, exist_ok=True)
    if not os.access(config.output_dir, os.W_OK):
        raise PermissionError(f"output dir {config.output_dir} is not writable")
    run_id = datetime.datetime.now().isoformat()
    lock = RunLock(config.output_dir)
    previous = lock.acquire(run_id)
    try:
        if os.path.exists(config.metadata_path):
            from flowers.runs import records

            records.store_for(config)  # a corrupt store is named now, not after the run
        if previous.get("run_id"):
            _after_kill(config, previous["run_id"], echo)
        return _supervise(config, run_id, lock, echo, verbose)
    finally:
        lock.release()


def _after_kill(config: PipelineConfig, run_id: str, echo) -> None:
    """The last holder of the lock died without releasing it: record its run
    as interrupted and drop anything it half-pushed."""
    echo(f"note: run {run_id} was killed before it ended; recorded as interrupted")
    _record_stopped(config, run_id, outcome.State.INTERRUPTED)


def _supervise(config: PipelineConfig, run_id: str, lock: RunLock, echo, verbose: bool) -> RunResult:
    run_dir = outputs.run_dir(config.output_dir, run_id)
    os.makedirs(run_dir, exist_ok=True)
    log_file = os.path.join(run_dir, "run.log")
    echo(f"run {run_id}: data {config.data.data_root} -> {config.output_dir}")
    echo(f"log: {log_file}")
    read_end, write_end = os.pipe()
    # Its write end stays here alone: the worker reads end-of-file from it
    # the moment this process is gone, however it went.
    lifeline_read, lifeline_write = os.pipe()
    env = {
        **os.environ,
        "FLOWERS_CONFIG": config.to_json(),
        progress.FD_ENV: str(write_end),
        lifeline.FD_ENV: str(lifeline_read),
        lifeline.SUPERVISOR_ENV: str(os.getpid()),
        # The worker's log keeps TensorFlow's warnings (the CLI silences its own).
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("FLOWERS_USER_TF_CPP_MIN_LOG_LEVEL", "1"),
    }
    with open(log_file, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "flowers.pipeline.local", run_id],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=None if verbose else log,
            stderr=None if verbose else log,
            # The lock too: the output dir stays locked while the worker lives.
            pass_fds=(write_end, lifeline_read, lock.fd),
            start_new_session=True,  # its own process group: stopped as one
            preexec_fn=lifeline.die_with_parent(),
        )
    os.close(write_end)
    os.close(lifeline_read)
    spans = layout.spans(config.data.data_root)
    received: list[int] = []
    output_error: OSError | None = None
    try:
        with _forward_signals(worker, received):
            with os.fdopen(read_end, "r", buffering=1) as lines:
                for line in lines:
                    try:
                        echo(line.rstrip("\n"))
                    except OSError as error:  # stdout closed (`flowers run | head`) or unwritable
                        output_error = error
                        _stdout_to_devnull()
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(worker.pid, signal.SIGTERM)
                        break
            _stop(worker)
    finally:
        # Nothing of the worker outlives this function: the lock is released after it.
        if worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        os.close(lifeline_write)
    if output_error is not None:
        echo = functools.partial(print, file=sys.stderr)
    said: list[str] = []  # printed once stderr is back from the log
    try:
        with stderr_to(log_file):  # TensorFlow's and TFMA's import noise
            result = _conclude(config, run_id, worker.returncode, received, output_error, spans, log_file, said.append)
    except Exception as error:
        full = _disk_full(config, error)
        if full is None:
            raise
        said.append(full)
        result = RunResult(run_id, outcome.FAILED, None, log_file)
    for line in said:
        echo(line)
    return result


def _conclude(
    config: PipelineConfig,
    run_id: str,
    returncode: int,
    received: list[int],
    output_error: OSError | None,
    spans: list[int],
    log_file: str,
    say: Callable[[str], None],
) -> RunResult:
    """How the run ended, from what ML Metadata recorded and how the worker
    ended; records it and returns the exit code and summary."""
    from flowers.runs import records, results

    store = records.store_for(config) if os.path.exists(config.metadata_path) else None
    started = store is not None and run_id in records.run_ids(store)
    pushed = bool(started and results.pushed_by(store, run_id))
    if received or output_error:
        if not pushed:
            _record_stopped(config, run_id, outcome.State.INTERRUPTED)
            if received:
                say(f"interrupted by {signal.Signals(received[0]).name}: no later component ran, nothing was pushed")
                return RunResult(run_id, outcome.interrupted_by(received[0]), None, log_file)
            closed = output_error.strerror
            say(f"stopped: the run's output closed ({closed}); no later component ran, nothing was pushed")
            return RunResult(run_id, outcome.OUTPUT_CLOSED, None, log_file)
        # The push had committed: the run is pushed, whatever came after it.
        how = signal.Signals(received[0]).name if received else "the output closing"
        say(f"note: {how} came after the push, which stands; the run's report may be missing")
    if not started:
        say(f"the pipeline did not start; see {log_file}")
        return RunResult(run_id, outcome.FAILED, None, log_file)
    if returncode < 0 and not pushed:
        # Killed by a signal sent to it, not to this process (the
        # out-of-memory killer, `kill`): a failure, not an interruption.
        say(f"worker died: signal {-returncode} ({signal.Signals(-returncode).name}); nothing was pushed")
        _record_stopped(config, run_id, outcome.State.FAILED)
    results.record_run(store, run_id, config, spans)
    # A worker that got to its end recorded the summary (flowers.pipeline.local
    # `record_run`); otherwise reading TFMA's output loads TensorFlow here.
    with progress.heartbeat("summary", time.monotonic(), say):
        summary = results.summarize(store, run_id, live_run=None)
    results.record_summary(store, summary)
    code = outcome.EXIT_CODES[outcome.State(summary.state)]
    if returncode != 0 and code == outcome.PUSHED and not pushed:
        code = outcome.FAILED
    if code == outcome.PUSHED and config.run.keep_versions:
        for version in prune_versions(config.serving_dir, config.run.keep_versions, keep=summary.pushed_to):
            say(f"pruned pushed version {version} (keep_versions={config.run.keep_versions})")
    return RunResult(run_id, code, summary, log_file)


def _disk_full(config: PipelineConfig, error: BaseException) -> str | None:
    """One line for a full disk (an OSError, or SQLite's words through ML
    Metadata), naming the output dir and its free space; None for anything else."""
    if not (
        getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        or "disk is full" in str(error)
        or "No space left" in str(error)
    ):
        return None
    free = shutil.disk_usage(config.output_dir).free
    return (
        f"disk full: {config.output_dir} has {free / 1e6:.1f} MB free, too little to record the run's end in "
        f"{os.path.basename(config.metadata_path)}; free some space there and run again"
    )


def _stdout_to_devnull() -> None:
    """Nothing more can reach a closed stdout; writing there (Python's own
    flush at exit too) would only raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def prune_versions(serving_dir: str, keep_versions: int, keep: str | None = None) -> list[str]:
    """Delete the oldest pushed versions beyond `keep_versions`; never the
    newest, nor `keep`. Returns the versions deleted."""
    import shutil

    versions = sorted((n for n in os.listdir(serving_dir) if n.isdigit()), key=int)
    doomed = [v for v in versions[:-keep_versions] if os.path.join(serving_dir, v) != keep]
    for version in doomed:
        shutil.rmtree(os.path.join(serving_dir, version))
    return doomed


@contextlib.contextmanager
def stderr_to(log_file: str):
    """Send this process's stderr (file descriptor 2, so C++ logs too) to the log."""
    import warnings

    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_file, "ab") as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def _forward_signals(worker: subprocess.Popen, received: list[int]):
    """SIGINT / SIGTERM / SIGHUP stop the worker's whole process group at once."""

    def handler(signum, frame):
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)

    old = {s: signal.signal(s, handler) for s in lifeline.STOPS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _stop(worker: subprocess.Popen) -> None:
    """Wait for the worker and then the rest of its process group (Beam
    workers) to end; SIGKILL whatever is left after a grace period."""
    deadline = time.monotonic() + _GRACE_SECONDS
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=_GRACE_SECONDS)
    while time.monotonic() < deadline:
        try:
            os.killpg(worker.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)


def _record_stopped(config: PipelineConfig, run_id: str, state: outcome.State) -> None:
    """Mark the run `state` in ML Metadata (its unfinished executions end)
    and remove serving folders a stopped Pusher may have left: hidden ones
    it was writing, and versions it never recorded as pushed."""
    import shutil

    from flowers.runs import records, results

    if not os.path.exists(config.metadata_path):
        return
    store = records.store_for(config)
    results.mark_stopped(store, run_id, state)
    if run_id in records.run_ids(store):  # kept, so `history` reads it without TFMA
        results.record_summary(store, results.summarize(store, run_id, recorded=False))
    if os.path.isdir(config.serving_dir):
        recorded = records.pushed_destinations(store)
        for name in os.listdir(config.serving_dir):
            path = os.path.join(config.serving_dir, name)
            unrecorded = name.isdigit() and path not in recorded
            if (unrecorded or name.startswith(outputs.PUSH_TEMP_PREFIX)) and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
