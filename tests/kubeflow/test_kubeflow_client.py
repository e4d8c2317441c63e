"""`flowers kubeflow submit / schedule / runs` up to the HTTP boundary: the kfp
2.x client talks to a loopback server that records its requests (no Kubeflow
cluster can run here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
import yaml
from click.testing import CliRunner

from flowers.config import TRAINING_CONFIG_KEY
from flowers.kubeflow import runner
from flowers.kubeflow.cli import kubeflow
from flowers.config import PipelineConfig

OUTPUT_DIR = "gs://flowers-test/kfp"
IMAGE = "registry.example/flowers:test"


def invoke(*args: str):
    return CliRunner().invoke(kubeflow, list(args), catch_exceptions=False)


def pipeline_args(package) -> list[str]:
    return ["--output-dir", OUTPUT_DIR, "--image", IMAGE, "--package", str(package)]


def epochs_of(parameters: dict) -> int:
    return json.loads(json.loads(parameters["trainer_config"])[TRAINING_CONFIG_KEY])["epochs"]


def test_submit_uploads_the_compiled_spec_with_the_run_parameters(kfp_server, tmp_path):
    package = tmp_path / "flowers.yaml"
    result = invoke(
        "submit", "--host", kfp_server.url, *pipeline_args(package),
        "--epochs", "3", "--run-name", "nightly", "--param", "data_root=gs://flowers-test/new-photos",
    )
    assert result.exit_code == 0, result.output
    [run] = kfp_server.bodies("POST", "/runs")
    assert run["display_name"] == "nightly"
    assert run["pipeline_spec"] == yaml.safe_load(package.read_text())
    parameters = run["runtime_config"]["parameters"]
    assert parameters["data_root"] == "gs://flowers-test/new-photos"
    assert epochs_of(parameters) == 3
    assert parameters["eval_config"] == runner.runtime_values(PipelineConfig(output_dir=OUTPUT_DIR))["eval_config"]
    assert run["runtime_config"]["pipeline_root"] == f"{OUTPUT_DIR}/tfx"
    [experiment] = kfp_server.bodies("POST", "/experiments")
    assert experiment["display_name"] == "flowers" and run["experiment_id"] == kfp_server.experiments["flowers"]["experiment_id"]
    assert "run run-" in result.output
    # No credentials configured, none sent: kfp's conventions, not ours, decide.
    assert all("Authorization" not in r["headers"] and "Cookie" not in r["headers"] for r in kfp_server.requests)


def test_schedule_creates_a_recurring_run_from_the_cron_expression(kfp_server, tmp_path):
    package = tmp_path / "flowers.yaml"
    result = invoke(
        "schedule", "--host", kfp_server.url, *pipeline_args(package),
        "--cron", "0 0 3 * * 1", "--min-accuracy", "0.8", "--experiment", "retraining",
    )
    assert result.exit_code == 0, result.output
    [job] = kfp_server.bodies("POST", "/recurringruns")
    assert job["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert job["mode"] == "ENABLE" and job["max_concurrency"] == 1 and job["no_catchup"] is True
    assert job["display_name"] == "flowers retraining"
    assert job["pipeline_spec"] == yaml.safe_load(package.read_text())
    assert job["runtime_config"]["pipeline_root"] == f"{OUTPUT_DIR}/tfx"
    parameters = job["runtime_config"]["parameters"]
    assert '"lower_bound": 0.8' in parameters["eval_config"]
    assert parameters == runner.runtime_values(PipelineConfig(output_dir=OUTPUT_DIR, min_accuracy=0.8))
    assert job["experiment_id"] == kfp_server.experiments["retraining"]["experiment_id"]
    assert "cron '0 0 3 * * 1'" in result.output


def test_runs_lists_the_newest_runs(kfp_server, tmp_path):
    for name in ("first", "second"):
        assert invoke("submit", "--host", kfp_server.url, *pipeline_args(tmp_path / "p.yaml"), "--run-name", name).exit_code == 0
    result = invoke("runs", "--host", kfp_server.url, "--limit", "5")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("run-")]
    assert [line.split()[-1] for line in lines] == ["second", "first"]
    assert "PENDING" in lines[0] and "2026-01-02T03:04:05" in lines[0]
    [listing] = [r for r in kfp_server.requests if r["method"] == "GET" and r["path"] == f"{kfp_server.API}/runs"]
    assert listing["query"]["sort_by"] == "created_at desc" and listing["query"]["page_size"] == "5"


def test_existing_kfp_credentials_are_used_as_kfp_finds_them(kfp_server, kfp_home, tmp_path):
    # kfp keeps a session cookie (e.g. from a Dex login) in ~/.config/kfp/context.json.
    context = kfp_home / ".config" / "kfp" / "context.json"
    context.parent.mkdir(parents=True)
    context.write_text(json.dumps({"namespace": "", "client_authentication_cookie": "authservice_session=abc"}))
    assert invoke("runs", "--host", kfp_server.url).exit_code == 0
    assert {r["headers"].get("Cookie") for r in kfp_server.requests} == {"authservice_session=abc"}
    assert context.read_text() == json.dumps({"namespace": "", "client_authentication_cookie": "authservice_session=abc"})


def test_no_command_takes_a_secret():
    names = {p.name for command in kubeflow.commands.values() for p in command.params}
    assert not {n for n in names if any(word in n for word in ("token", "secret", "cookie", "password", "credential"))}


def test_refusals_and_bad_input_are_clean_messages(kfp_server, tmp_path):
    args = pipeline_args(tmp_path / "p.yaml")
    refused = CliRunner().invoke(kubeflow, ["submit", "--host", kfp_server.url, *args, "--experiment", kfp_server.REFUSED_EXPERIMENT])
    assert refused.exit_code == 1 and isinstance(refused.exception, SystemExit)
    assert "answered 500" in refused.output and "experiment store unavailable" in refused.output
    assert not kfp_server.bodies("POST", "/runs")

    before = len(kfp_server.requests)
    bad_cron = CliRunner().invoke(kubeflow, ["schedule", "--host", kfp_server.url, *args, "--cron", "0 3 * * *"])
    assert isinstance(bad_cron.exception, ValueError) and "wants 6, seconds first" in str(bad_cron.exception)
    bad_param = CliRunner().invoke(kubeflow, ["submit", "--host", kfp_server.url, *args, "--param", "epochs=3"])
    assert bad_param.exit_code == 2 and "unknown runtime parameter 'epochs'" in bad_param.output
    assert len(kfp_server.requests) == before  # nothing was sent


def test_unreachable_endpoint_is_a_clean_message(kfp_home, tmp_path):
    closed = "http://127.0.0.1:9"  # discard port: nothing listens on loopback
    result = CliRunner().invoke(kubeflow, ["runs", "--host", closed])
    assert result.exit_code == 1 and "cannot reach Kubeflow Pipelines at http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output


def test_registered_on_the_main_cli():
    from flowers.pipeline.cli import cli

    assert cli.commands["kubeflow"] is kubeflow
    assert isinstance(kubeflow, click.Group) and set(kubeflow.commands) == {"compile", "submit", "schedule", "runs"}
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-m", "flowers.pipeline.cli", "kubeflow", "--help"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "schedule" in done.stdout


def test_compile_command_writes_the_package(tmp_path):
    package = tmp_path / "out" / "flowers.yaml"
    result = invoke("compile", *pipeline_args(package), "--beam-arg=--runner=DataflowRunner", "--beam-arg", "--region=r")
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(package.read_text())
    trainer = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    assert trainer["args"][-2:] == ["--runner=DataflowRunner", "--region=r"]
    assert f"pipeline root: {OUTPUT_DIR}/tfx" in result.output
