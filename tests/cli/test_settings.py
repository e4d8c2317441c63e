"""`flowers config show/docs` and a settings file read by the commands."""

import os
import subprocess
import sys

import pytest

from flowers import settings


def flowers_in(folder, *args):
    env = {k: v for k, v in os.environ.items() if k != settings.FILE_ENV}
    return subprocess.run(
        [sys.executable, "-m", "flowers.cli.main", *args], cwd=folder, env=env, capture_output=True, text=True
    )


@pytest.fixture
def project(tmp_path):
    (tmp_path / "flowers.toml").write_text('output_dir = "elsewhere"\n[training]\nepochs = 7\n')
    return tmp_path


def test_show_names_each_source(project):
    done = flowers_in(project, "config", "show", "--set", "gates.min_accuracy=0.5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"# settings file: {os.path.join('.', 'flowers.toml')}"
    assert "training.epochs = 7  # file" in lines and "gates.min_accuracy = 0.5  # flag" in lines
    assert "training.batch_size = 32  # default" in lines


def test_reading_commands_take_the_output_dir_from_the_file(project):
    done = flowers_in(project, "history")
    assert done.returncode == 2 and os.path.join("elsewhere", "metadata.sqlite") in done.stderr


def test_a_bad_file_is_refused_by_name(project):
    (project / "flowers.toml").write_text("[training]\nepochs = -1\n")
    done = flowers_in(project, "run")
    assert done.returncode == 2 and "flowers.toml: setting training.epochs=-1 is out of range" in done.stderr


def test_docs_prints_the_reference():
    done = flowers_in(".", "config", "docs")
    assert done.returncode == 0 and done.stdout.strip() == settings.reference_markdown()
