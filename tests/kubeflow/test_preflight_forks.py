"""Preflight's task launcher: a task forked from the warm server behaves as
the same command started as a process of its own (exit code, output, argv,
working folder, the project's modules imported by the task itself)."""

from __future__ import annotations

import os
import sys

import pytest

from flowers.kubeflow import preflight_forks

TASK = """
import os, sys
print("argv", sys.argv[1:])
print("cwd", os.getcwd())
print("project modules before the task", sorted(m for m in sys.modules if m.startswith("flowers.kubeflow")))
print("EXTRA", os.environ.get("EXTRA"))
print("to stderr", file=sys.stderr)
if sys.argv[1] == "raise":
    raise ValueError("bad input file x.tfrecord")
if sys.argv[1] == "words":
    sys.exit("refused: the gate")
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def task_env(tmp_path):
    (tmp_path / "flowers_fork_task.py").write_text(TASK)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}


def run(launcher, env, *args):
    lines = []
    code = launcher.run([sys.executable, "-m", "flowers_fork_task", *args], env, lines.append)
    return code, "".join(lines)


@pytest.mark.parametrize("fresh", [False, True], ids=["forked", "fresh"])
def test_a_task_ends_and_writes_as_its_own_process_would(task_env, tmp_path, monkeypatch, fresh):
    monkeypatch.chdir(tmp_path)
    launcher = preflight_forks.Launcher(fresh, preload=["json", "flowers.kubeflow.package"])
    try:
        code, out = run(launcher, task_env, "0", "--flag")
        assert code == 0
        assert "argv ['0', '--flag']" in out and f"cwd {tmp_path}" in out and "to stderr" in out
        assert "project modules before the task []" in out  # the server's own are dropped
        assert run(launcher, task_env, "3")[0] == 3
        code, out = run(launcher, task_env, "raise")
        assert code == 1 and "ValueError: bad input file x.tfrecord" in out
        code, out = run(launcher, task_env, "words")
        assert code == 1 and out.rstrip().endswith("refused: the gate")
        assert (launcher.forks is None) == fresh
    finally:
        launcher.close()


def test_a_task_with_another_environment_or_command_starts_as_a_process(task_env):
    launcher = preflight_forks.Launcher(preload=["json"])
    try:
        assert run(launcher, task_env, "0")[0] == 0
        server = launcher.forks
        assert server is not None
        code, out = run(launcher, {**task_env, "EXTRA": "1"}, "5")
        assert code == 5 and "EXTRA 1" in out  # the server's environment has none
        assert launcher.run([sys.executable, "-c", "print('plain')"], task_env, lambda line: None) == 0
        assert launcher.forks is server and server.process.poll() is None
    finally:
        launcher.close()
    assert server.process.returncode == 0
