"""Run the local pipeline so that a scheduler can trust it.

The supervisor (this process, light: no TensorFlow) checks what it can at
once, takes the output dir's lock, and runs the pipeline in a worker process
(`flowers.pipeline.local`) of its own session. It prints the worker's
progress lines, keeps everything else in the run's log file, and ends with
the run's own summary and an exit code (`flowers.outcome`). On SIGINT or
SIGTERM it stops the worker's whole process group (Beam workers included),
so no later component starts and nothing is pushed; the run is recorded as
interrupted.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from typing import Callable

from flowers import outcome, outputs, progress, weights
from flowers.outputs import OutputDirBusy, RunLock  # noqa: F401 (the CLI's names for them)
from flowers.config import PipelineConfig
from flowers.data import layout

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
        if previous.get("run_id"):
            _after_kill(config, previous["run_id"], echo)
        return _supervise(config, run_id, echo, verbose)
    finally:
        lock.release()


def _after_kill(config: PipelineConfig, run_id: str, echo) -> None:
    """The last holder of the lock died without releasing it: record its run
    as interrupted and drop anything it half-pushed."""
    echo(f"note: run {run_id} was killed before it ended; recorded as interrupted")
    _record_interrupted(config, run_id)


def _supervise(config: PipelineConfig, run_id: str, echo, verbose: bool) -> RunResult:
    run_dir = outputs.run_dir(config.output_dir, run_id)
    os.makedirs(run_dir, exist_ok=True)
    log_file = os.path.join(run_dir, "run.log")
    echo(f"run {run_id}: data {config.data.data_root} -> {config.output_dir}")
    echo(f"log: {log_file}")
    read_end, write_end = os.pipe()
    env = {
        **os.environ,
        "FLOWERS_CONFIG": config.to_json(),
        progress.FD_ENV: str(write_end),
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
            pass_fds=(write_end,),
            start_new_session=True,  # its own process group: stopped as one
        )
    os.close(write_end)
    spans = layout.spans(config.data.data_root)
    received: list[int] = []
    with _forward_signals(worker, received):
        with os.fdopen(read_end, "r", buffering=1) as lines:
            for line in lines:
                echo(line.rstrip("\n"))
        worker.wait()
    if received:
        _stop(worker)
        _record_interrupted(config, run_id)
        code = outcome.SIGINT if received[0] == signal.SIGINT else outcome.SIGTERM
        echo(f"interrupted by {signal.Signals(received[0]).name}: no later component ran, nothing was pushed")
        return RunResult(run_id, code, None, log_file)
    with stderr_to(log_file):  # TensorFlow's and TFMA's import noise
        from flowers.runs import records, results

        store = records.store_for(config)
        if run_id not in records.run_ids(store):
            echo(f"the pipeline did not start; see {log_file}")
            return RunResult(run_id, outcome.FAILED, None, log_file)
        if not config.data.span_window:
            results.record_spans(store, run_id, spans)
        results.record_settings(store, run_id, config)
        summary = results.summarize(store, run_id, live_run=None)
        results.record_summary(store, summary)
    code = outcome.EXIT_CODES[outcome.State(summary.state)]
    if worker.returncode != 0 and code == outcome.PUSHED:
        code = outcome.FAILED
    if code == outcome.PUSHED and config.run.keep_versions:
        for version in prune_versions(config.serving_dir, config.run.keep_versions, keep=summary.pushed_to):
            echo(f"pruned pushed version {version} (keep_versions={config.run.keep_versions})")
    return RunResult(run_id, code, summary, log_file)


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
    """SIGINT / SIGTERM stop the worker's whole process group at once."""

    def handler(signum, frame):
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _stop(worker: subprocess.Popen) -> None:
    """SIGTERM the group, then SIGKILL what is left of it after a grace period."""
    deadline = time.monotonic() + _GRACE_SECONDS
    while time.monotonic() < deadline:
        try:
            os.killpg(worker.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)


def _record_interrupted(config: PipelineConfig, run_id: str) -> None:
    """Mark the run interrupted in ML Metadata and remove serving folders a
    stopped Pusher may have half-written (those it never recorded as pushed)."""
    from flowers.runs import records, results

    if not os.path.exists(config.metadata_path):
        return
    store = records.store_for(config)
    results.mark_interrupted(store, run_id)
    if os.path.isdir(config.serving_dir):
        recorded = records.pushed_destinations(store)
        for name in os.listdir(config.serving_dir):
            path = os.path.join(config.serving_dir, name)
            if name.isdigit() and path not in recorded and os.path.isdir(path):
                import shutil

                shutil.rmtree(path, ignore_errors=True)
