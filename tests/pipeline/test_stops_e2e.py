"""A run never outlives its supervisor, and says truly how it ended: real runs
on the bundled sample, stopped from outside once the worker is busy in its
first components (the supervisor SIGKILLed with its group as a scheduler
does, SIGHUP, its output closed, the worker killed as the out-of-memory
killer does). The cases run side by side, each in its own output dir."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import IN_PROCESS_BEAM, flowers_cli

from flowers import outcome
from flowers.outputs import RunLock

pytestmark = pytest.mark.slow

# Epochs do not matter: every case is stopped before the Trainer ends.
SETTINGS = ("--set", "training.fine_tune_epochs=0", "--set", "run.report=false", *IN_PROCESS_BEAM)


def start(out: str, **popen) -> subprocess.Popen:
    """`flowers run` in a session of its own (as `setsid flowers run` is)."""
    return subprocess.Popen(
        [sys.executable, "-m", "flowers.cli.main", "run", "--output-dir", out, *SETTINGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **popen,
    )


def read_until_first_component(run: subprocess.Popen) -> list[str]:
    """The run's lines up to the first component's end: the worker is busy then."""
    seen = []
    for line in run.stdout:
        seen.append(line)
        if line.startswith("ImportExampleGen"):
            return seen
    raise AssertionError("".join(seen) + run.stderr.read())


def worker_of(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        (child,) = map(int, f.read().split())
    return child


def session_members(sid: int) -> list[int]:
    """Processes whose session is `sid` (the worker's session holds its Beam workers too)."""
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(name))
    return members


def gone_within(sid: int, seconds: float) -> float | None:
    """Seconds until nothing of session `sid` is left, or None."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not session_members(sid):
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def history(out: str) -> list[dict]:
    done = flowers_cli("history", "--output-dir", out, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def supervisor_killed(out: str) -> dict:
    run = start(out)
    seen = read_until_first_component(run)
    worker = worker_of(run.pid)
    holds_lock = os.path.realpath(out) in {
        os.path.realpath(f"/proc/{worker}/fd/{fd}") for fd in os.listdir(f"/proc/{worker}/fd")
    }
    second = flowers_cli("run", "--output-dir", out, *SETTINGS, timeout=120)
    os.killpg(run.pid, signal.SIGKILL)  # `kill -KILL -- -PID`: the supervisor's group, as `timeout -s KILL` does
    run.wait()
    return dict(
        code=run.returncode,
        seen=seen,
        worker=worker,
        holds_lock=holds_lock,
        second=second,
        gone=gone_within(worker, 15),
    )


def supervisor_hung_up(out: str) -> dict:
    run = start(out)
    seen = read_until_first_component(run)
    worker = worker_of(run.pid)
    run.send_signal(signal.SIGHUP)
    rest, err = run.communicate(timeout=120)
    return dict(code=run.returncode, out="".join(seen) + rest, err=err, worker=worker, gone=gone_within(worker, 15))


def output_closed(out: str) -> dict:
    """`flowers run | head`: the reader of its output goes away."""
    run = start(out)
    seen = read_until_first_component(run)
    worker = worker_of(run.pid)
    run.stdout.close()
    err = run.stderr.read()
    run.wait(timeout=120)
    return dict(code=run.returncode, out="".join(seen), err=err, worker=worker, gone=gone_within(worker, 15))


def worker_killed(out: str) -> dict:
    """The worker's group SIGKILLed, as the out-of-memory killer ends a process."""
    run = start(out)
    seen = read_until_first_component(run)
    worker = worker_of(run.pid)
    os.killpg(worker, signal.SIGKILL)
    rest, err = run.communicate(timeout=120)
    return dict(code=run.returncode, out="".join(seen) + rest, err=err, worker=worker, gone=gone_within(worker, 15))


CASES = {f.__name__: f for f in (supervisor_killed, supervisor_hung_up, output_closed, worker_killed)}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """case name -> (output dir, what was seen)."""
    outs = {name: str(tmp_path_factory.mktemp(name)) for name in CASES}
    with concurrent.futures.ThreadPoolExecutor(len(CASES)) as pool:
        futures = {name: pool.submit(case, outs[name]) for name, case in CASES.items()}
        return {name: (outs[name], future.result()) for name, future in futures.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_nothing_of_the_run_is_left_and_nothing_was_pushed(stopped, case):
    out, seen = stopped[case]
    assert seen["gone"] is not None, (
        f"worker {seen['worker']}'s processes still there: {session_members(seen['worker'])}"
    )
    assert not os.path.exists(os.path.join(out, "serving"))
    assert RunLock.live_run(out) is None
    (row,) = history(out)
    assert row["pushed_to"] is None
    assert row["state"] == ("failed" if case == "worker_killed" else "interrupted")


def test_the_worker_holds_the_lock_and_a_second_run_is_refused(stopped):
    out, seen = stopped["supervisor_killed"]
    assert seen["holds_lock"]
    assert seen["second"].returncode == outcome.USAGE and "is in use by run" in seen["second"].stderr
    assert seen["code"] == -signal.SIGKILL


def test_after_a_killed_run_the_next_one_may_start_and_learns_of_it(stopped):
    out, _ = stopped["supervisor_killed"]
    lock = RunLock(out)
    killed = history(out)[0]["run_id"]
    try:
        assert lock.acquire("next")["run_id"] == killed
    finally:
        lock.release()


def test_sighup_is_an_interruption_by_sighup(stopped):
    _, seen = stopped["supervisor_hung_up"]
    assert seen["code"] == 128 + signal.SIGHUP, seen["out"][-3000:] + seen["err"][-3000:]
    assert "interrupted by SIGHUP: no later component ran, nothing was pushed" in seen["out"]


def test_a_closed_output_stops_the_run_and_says_so_on_stderr(stopped):
    _, seen = stopped["output_closed"]
    assert seen["code"] == outcome.OUTPUT_CLOSED, seen["err"][-3000:]
    assert "output closed" in seen["err"] and "nothing was pushed" in seen["err"]
    assert "Traceback" not in seen["err"]


def test_a_killed_worker_is_a_failure_not_an_interruption(stopped):
    out, seen = stopped["worker_killed"]
    assert seen["code"] == outcome.FAILED, seen["out"][-3000:] + seen["err"][-3000:]
    assert "worker died: signal 9 (SIGKILL)" in seen["out"]
    assert "state:          failed" in seen["out"] and "interrupted" not in seen["out"]
