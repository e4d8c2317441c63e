"""What TFX 1.16's own `tfx` CLI does with this pipeline: every claim the
README makes about it, run here. The CLI's click group runs in-process (its
handlers import TensorFlow once per process); `tfx run create` starts the
pipeline file in a child Python, as it does for users."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.tools.cli.cli_main import cli_group

import flowers.cli as cli_package
from flowers.cli.kubeflow import SETTINGS_ENV
from flowers.config import PipelineConfig
from flowers.kubeflow import runner

CLI_DIR = os.path.dirname(cli_package.__file__)
LOCAL_FILE = os.path.join(CLI_DIR, "tfx_local_runner.py")
KUBEFLOW_V2_FILE = os.path.join(CLI_DIR, "tfx_kubeflow_v2_runner.py")


@pytest.fixture
def tfx_env(kfp_home, tmp_path, monkeypatch):
    """A working folder, a HOME for the CLI's pipeline registry, and a `pip`.

    `tfx` runs `pip freeze --local` before any command and looks for `kfp` in
    it. A uv-made venv has no pip; users add it with `uv pip install pip`.
    Here a stand-in prints this venv's packages the way `pip freeze` does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pip = bin_dir / "pip"
    pip.write_text(
        f"#!{sys.executable}\n"
        "import importlib.metadata as m\n"
        "for d in m.distributions():\n"
        "    print(f\"{d.metadata['Name']}=={d.version}\")\n"
    )
    pip.chmod(pip.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def tfx(*args: str):
    return CliRunner().invoke(cli_group, list(args))


def test_local_engine_pipeline_create_update_compile_list_delete(tfx_env, kfp_home, monkeypatch):
    output_dir = tfx_env / "out"
    monkeypatch.setenv(SETTINGS_ENV, f"output_dir={output_dir} epochs=1")
    created = tfx("pipeline", "create", "--engine=local", f"--pipeline_path={LOCAL_FILE}")
    assert created.exit_code == 0, created.output
    assert 'Pipeline "flowers" created successfully.' in created.output
    registered = json.loads((kfp_home / "tfx" / "local" / "flowers" / "pipeline_args.json").read_text())
    assert registered == {
        "pipeline_name": "flowers",
        "pipeline_root": f"{output_dir}/tfx",
        "pipeline_dsl_path": LOCAL_FILE,
    }
    again = tfx("pipeline", "create", "--engine=local", f"--pipeline_path={LOCAL_FILE}")
    assert again.exit_code != 0 and 'Pipeline "flowers" already exists.' in again.output

    updated = tfx("pipeline", "update", "--engine=local", f"--pipeline_path={LOCAL_FILE}")
    assert updated.exit_code == 0 and 'Pipeline "flowers" updated successfully.' in updated.output
    compiled = tfx("pipeline", "compile", "--engine=local", f"--pipeline_path={LOCAL_FILE}")
    assert compiled.exit_code == 0 and "Pipeline compiled successfully." in compiled.output
    listed = tfx("pipeline", "list", "--engine=local")
    assert listed.exit_code == 0 and "\nflowers\n" in listed.output
    deleted = tfx("pipeline", "delete", "--engine=local", "--pipeline_name=flowers")
    assert deleted.exit_code == 0 and 'Pipeline "flowers" deleted successfully.' in deleted.output
    # Building the pipeline ran nothing.
    assert not (output_dir / "tfx").exists()


def test_local_engine_run_create_runs_the_pipeline_file_with_the_settings(tfx_env, monkeypatch, capfd):
    """`tfx run create` starts `python cli/tfx_local_runner.py`, i.e.
    `flowers run` with $FLOWERS_SETTINGS (the whole run is what
    tests/pipeline/test_pipeline_e2e.py checks). A setting it must refuse
    shows the file ran with them, without a run of several minutes."""
    monkeypatch.setenv(SETTINGS_ENV, f"output_dir={tfx_env / 'out'}")
    assert tfx("pipeline", "create", "--engine=local", f"--pipeline_path={LOCAL_FILE}").exit_code == 0
    monkeypatch.setenv(SETTINGS_ENV, "no_such_setting=1")
    capfd.readouterr()
    started = tfx("run", "create", "--engine=local", "--pipeline_name=flowers")
    child = capfd.readouterr()
    assert started.exit_code != 0
    assert f'Error while running "{sys.executable} {LOCAL_FILE}"' in started.output
    assert "unknown setting(s) no_such_setting" in child.err


def test_vertex_engine_compiles_the_kubeflow_v2_spec(tfx_env, kfp_home, monkeypatch):
    config = PipelineConfig(output_dir="gs://flowers-test/tfx-cli").override(
        {"kubeflow.image": "registry.example/flowers:cli"}
    )
    monkeypatch.setenv(SETTINGS_ENV, f"output_dir={config.output_dir} image={config.kubeflow.image}")
    monkeypatch.setenv("FLOWERS_PACKAGE", str(tfx_env / "flowers.json"))
    compiled = tfx("pipeline", "compile", "--engine=vertex", f"--pipeline_path={KUBEFLOW_V2_FILE}")
    assert compiled.exit_code == 0, compiled.output
    assert "Pipeline flowers compiled successfully." in compiled.output
    job = json.loads((tfx_env / "flowers.json").read_text())
    json_format.ParseDict(job, pipeline_spec_pb2.PipelineJob())
    assert job["runtimeConfig"]["parameterValues"] == runner.runtime_values(config)

    # The same spec as `flowers kubeflow compile` writes.
    runner.compile_pipeline(config, str(tfx_env / "ours.yaml"), backend="vertex")  # a .json is for Vertex AI
    assert job["pipelineSpec"]["root"]["dag"] == yaml.safe_load((tfx_env / "ours.yaml").read_text())["root"]["dag"]

    created = tfx("pipeline", "create", "--engine=vertex", f"--pipeline_path={KUBEFLOW_V2_FILE}")
    assert created.exit_code == 0 and 'Pipeline "flowers" created successfully.' in created.output
    kept = json.loads((kfp_home / "tfx" / "vertex" / "flowers" / "pipeline.json").read_text())
    # The CLI writes its own copy through the runner it patches, before our
    # compile turns caching off for the baseline task (README: tfx CLI table).
    assert job["pipelineSpec"]["root"]["dag"]["tasks"]["LatestPushedModel"]["cachingOptions"] == {"enableCache": False}
    kept["pipelineSpec"]["root"]["dag"]["tasks"]["LatestPushedModel"]["cachingOptions"] = {"enableCache": False}
    assert kept["pipelineSpec"] == job["pipelineSpec"]


def test_kubeflow_engine_is_broken_in_tfx_1_16(tfx_env, monkeypatch):
    """Its handler imports the KFP v1 runner that TFX 1.16 removed."""
    monkeypatch.setenv(SETTINGS_ENV, "output_dir=gs://flowers-test/x")
    result = tfx(
        "pipeline",
        "create",
        "--engine=kubeflow",
        f"--pipeline_path={KUBEFLOW_V2_FILE}",
        "--endpoint=http://127.0.0.1:9",
    )
    assert isinstance(result.exception, ImportError)
    assert "kubeflow_dag_runner" in str(result.exception)


def test_without_this_venvs_pip_the_cli_stops(kfp_home, tmp_path, monkeypatch):
    """Why the README says `uv pip install pip`: the CLI asks `pip freeze`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no pip at all
    result = tfx("pipeline", "list", "--engine=local")
    assert isinstance(result.exception, FileNotFoundError) and "'pip'" in str(result.exception)

    other = tmp_path / "other"
    other.mkdir()
    (other / "pip").write_text("#!/bin/sh\necho click==8.1.7\n")  # another Python's packages
    (other / "pip").chmod(0o755)
    monkeypatch.setenv("PATH", str(other))
    result = tfx("pipeline", "compile", "--engine=vertex", f"--pipeline_path={KUBEFLOW_V2_FILE}")
    assert result.exit_code != 0 and "`kfp` python pacakge is required for Vertex." in result.output
    result = tfx("pipeline", "create", "--engine=kubeflow", f"--pipeline_path={KUBEFLOW_V2_FILE}")
    assert result.exit_code != 0 and "Kubeflow not found." in result.output
