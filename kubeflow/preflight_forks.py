"""Preflight's tasks started as forks of a warm process.

Each task of the compiled spec is `python -m flowers.kubeflow.entrypoint ...`,
and on a cluster each one is a fresh container that imports TensorFlow, Beam
and TFX before it does anything: 12-17 s of CPU per task here, most of a tiny
run's preflight. A fork server imports those third-party libraries once; each
task is then a fork of it that runs the spec's own `-m` module with the
spec's own arguments, writing to the pipe preflight reads. The project's
own modules are dropped from the fork before the task starts, so a task
still imports the project's code itself, as its container does. What is not
the same as a fresh process: the task finds the libraries below already
imported (`preflight --fresh-processes` starts each task as its own process).

The server is a child of preflight (`python -m flowers.kubeflow.preflight_forks`)
started with the tasks' environment; a task whose environment differs, or
whose command is not `python -m MODULE`, starts as its own process.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import traceback
from typing import Callable, Sequence

# What every task's executor imports (TFX's container entrypoint and the
# libraries of the standard components): the cost a fork saves.
PRELOAD = (
    "tensorflow",
    "tf_keras",
    "apache_beam",
    "tensorflow_data_validation",
    "tensorflow_transform",
    "tensorflow_model_analysis",
    "tfx.components",
    "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
)
PROJECT = "flowers"
MESSAGE_BYTES = 1 << 22  # a request: module, argv and working folder (the environment is the server's)


def forkable(command: list[str]) -> str | None:
    """The module of `python -m MODULE ...` (python being this interpreter), else None."""
    if len(command) >= 3 and command[0] == sys.executable and command[1] == "-m":
        return command[2]
    return None


class ForkServer:
    """A warm process that forks one task at a time on request."""

    def __init__(self, env: dict[str, str], preload: Sequence[str] = PRELOAD):
        self.env = dict(env)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno()), ",".join(preload)],
            env=self.env,
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        theirs.close()
        self.socket = ours

    def start(self, command: list[str], output_fd: int) -> None:
        """Fork a task running `command`, its stdout and stderr on output_fd."""
        request = json.dumps({"argv": command[3:], "module": forkable(command), "cwd": os.getcwd()}).encode()
        socket.send_fds(self.socket, [request], [output_fd])

    def wait(self) -> int:
        """The exit code of the task started last."""
        answer = self.socket.recv(MESSAGE_BYTES)
        if not answer:
            raise RuntimeError(f"preflight's fork server ended (exit code {self.process.wait()})")
        return int(json.loads(answer)["code"])

    def close(self) -> None:
        self.socket.close()  # the server ends at end of file
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Launcher:
    """Runs a task's command: a fork of the server where it can, else a process."""

    def __init__(self, fresh_processes: bool = False, preload: Sequence[str] = PRELOAD):
        self.fresh_processes = fresh_processes
        self.preload = preload
        self.forks: ForkServer | None = None  # started by the first task it can start

    def run(self, command: list[str], env: dict[str, str], line: Callable[[str], None]) -> int:
        """The command's exit code; each line of its output goes to `line`."""
        if self.fresh_processes or not forkable(command) or (self.forks and self.forks.env != env):
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
            )
            assert process.stdout is not None
            for text in process.stdout:
                line(text)
            return process.wait()
        if self.forks is None:
            self.forks = ForkServer(env, self.preload)
        read, write = os.pipe()
        self.forks.start(command, write)
        os.close(write)  # the fork holds the only writer: end of file when it exits
        with os.fdopen(read, errors="replace") as output:
            for text in output:
                line(text)
        return self.forks.wait()

    def close(self) -> None:
        if self.forks is not None:
            self.forks.close()
            self.forks = None


def _serve(sock: socket.socket, preload: Sequence[str]) -> None:
    # Ctrl-C reaches the whole process group: it stops the task and preflight,
    # whose closed socket then ends the server.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in preload:
        importlib.import_module(module)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, MESSAGE_BYTES, 1)
        except ConnectionError:
            return
        if not message:
            return
        pid = os.fork()
        if pid == 0:
            sock.close()
            _task(json.loads(message), fds[0])
        os.close(fds[0])
        _, status = os.waitpid(pid, 0)
        try:
            sock.send(json.dumps({"code": os.waitstatus_to_exitcode(status)}).encode())
        except OSError:  # preflight is gone
            return


def _task(request: dict, output_fd: int) -> None:
    """In the fork: run the module as `python -m` would, then exit with its code."""
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(output_fd)
    os.chdir(request["cwd"])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in [n for n in sys.modules if n == PROJECT or n.startswith(PROJECT + ".")]:
        del sys.modules[name]
    sys.argv = [request["module"], *request["argv"]]
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if isinstance(e.code, int) or e.code is None:
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()  # as interpreter exit would
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve(socket.socket(fileno=int(sys.argv[1])), [m for m in sys.argv[2].split(",") if m])
