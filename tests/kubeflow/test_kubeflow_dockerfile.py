"""kubeflow/Dockerfile cannot be built here (no Docker engine): these checks
keep it consistent with the lock file, the Makefile and the Kubeflow runner."""

from __future__ import annotations

import json
import os
import re
import shlex

import pytest
import yaml
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from flowers.kubeflow import runner

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from setuptools._vendor import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(runner.__file__)))


def read(name: str) -> str:
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", read("kubeflow/Dockerfile"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def args(dockerfile) -> dict[str, str]:
    return dict(a.split("=", 1) for kind, a in dockerfile if kind == "ARG" and "=" in a)


def env(dockerfile) -> dict[str, str]:
    found = {}
    for kind, a in dockerfile:
        if kind == "ENV":
            found.update(item.split("=", 1) for item in shlex.split(a))
    return found


def locked(name: str) -> str:
    lock = tomllib.loads(read("uv.lock"))
    [version] = [p["version"] for p in lock["package"] if p["name"] == name]
    return version


def test_versions_are_the_locked_ones(dockerfile):
    assert args(dockerfile)["TFX_VERSION"] == locked("tfx")
    assert args(dockerfile)["BEAM_VERSION"] == locked("apache-beam")
    python = read(".python-version").split()[0]
    assert args(dockerfile)["PYTHON_VERSION"] == python
    assert tomllib.loads(read("pyproject.toml"))["project"]["requires-python"].startswith(f">={python}")
    assert args(dockerfile)["UV_VERSION"] == re.search(r"^UV_VERSION := (\S+)$", read("Makefile"), re.M).group(1)


def test_base_images(dockerfile):
    images = [a.split()[0] for kind, a in dockerfile if kind == "FROM"]
    assert images == [
        "apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}",
        "gcr.io/tfx-oss-public/tfx:${TFX_VERSION}",
    ]
    # The image TFX's own Kubeflow V2 runner would use, for this TFX.
    assert kubeflow_v2_dag_runner._KUBEFLOW_TFX_IMAGE == f"gcr.io/tfx-oss-public/tfx:{locked('tfx')}"


def test_installed_like_the_readme_from_the_lock(dockerfile):
    runs = [a for kind, a in dockerfile if kind == "RUN"]
    assert runs[0] == 'python3 -m pip install --no-cache-dir "uv==${UV_VERSION}"'
    assert runs[1:] == [
        "python3 -m uv sync --locked --no-dev --no-install-project",
        "python3 -m uv sync --locked --no-dev",
    ]
    assert env(dockerfile)["UV_PYTHON_DOWNLOADS"] == "never"  # as the Makefile


def test_copies_what_the_project_build_needs(dockerfile):
    pyproject = tomllib.loads(read("pyproject.toml"))
    copied = set()
    for kind, a in dockerfile:
        if kind == "COPY" and not a.startswith("--from"):
            *sources, _ = a.split()
            copied.update(sources)
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    assert folders <= copied
    assert {"pyproject.toml", "uv.lock", ".python-version", pyproject["project"]["readme"]} <= copied
    for source in copied - {pyproject["project"]["readme"]}:  # the README is written separately
        assert os.path.exists(os.path.join(ROOT, source)), source


def test_paths_and_environment_the_spec_relies_on(dockerfile):
    [workdir] = [a for kind, a in dockerfile if kind == "WORKDIR"]
    assert workdir == runner.IMAGE_PROJECT_DIR
    data_folder = tomllib.loads(read("pyproject.toml"))["tool"]["setuptools"]["package-dir"]["flowers.data"]
    assert runner.IMAGE_DATA_DIR == f"{workdir}/{data_folder}"
    assert env(dockerfile)["TF_USE_LEGACY_KERAS"] == "1"
    assert env(dockerfile)["PATH"].startswith(f"{workdir}/.venv/bin:")


def module_file(dotted: str) -> str | None:
    """The file (relative to the repository) of the longest importable prefix
    of a dotted `flowers...` path, by pyproject's package folders; None if
    no prefix is a module there."""
    folders = tomllib.loads(read("pyproject.toml"))["tool"]["setuptools"]["package-dir"]
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        package = ".".join(parts[:end])
        for base, folder in sorted(folders.items(), key=lambda item: -len(item[0])):
            if package == base or package.startswith(base + "."):
                rest = package[len(base) :].lstrip(".").replace(".", "/")
                for candidate in (
                    f"{folder}/{rest}.py",
                    f"{folder}/{rest}/__init__.py" if rest else f"{folder}/__init__.py",
                ):
                    if os.path.exists(os.path.join(ROOT, candidate)):
                        return candidate
                break
    return None


def test_the_image_holds_the_entrypoint_and_every_module_the_tasks_import(dockerfile, kfp_package):
    """The spec's container command runs a module of this project, and its
    tasks name executors and user functions by module path: each must be a
    file in a folder the Dockerfile copies into the image."""
    copied = {
        s.rstrip("/") for kind, a in dockerfile if kind == "COPY" and not a.startswith("--from") for s in a.split()[:-1]
    }
    with open(kfp_package[1]) as f:
        spec = yaml.safe_load(f)
    executors = spec["deploymentSpec"]["executors"]
    commands = {tuple(e["container"]["command"]) for e in executors.values() if "container" in e}
    assert commands == {runner.ENTRYPOINT_COMMAND}
    module = runner.ENTRYPOINT_COMMAND[-1]
    named = set(re.findall(r"flowers(?:\.\w+)+", json.dumps(spec))) | {module}
    assert {"flowers.kubeflow.entrypoint", "flowers.components.trainer.run_fn"} <= named
    for dotted in sorted(named):
        found = module_file(dotted)
        assert found, f"{dotted}: no module of this project"
        assert found.split("/")[0] in copied, f"{dotted}: {found} is not copied into the image"
    # python -m runs the entrypoint: it must be a module with a main guard.
    assert 'if __name__ == "__main__":' in read(module_file(module))
