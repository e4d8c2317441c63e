"""`flowers kubeflow submit / schedule / runs` up to the HTTP boundary: the kfp
2.x client talks to a loopback server that records its requests (no Kubeflow
cluster can run here)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click
import pytest
import yaml
from click.testing import CliRunner

from flowers.cli.kubeflow import kubeflow
from flowers.config import TRAINING_CONFIG_KEY, PipelineConfig
from flowers.kubeflow import client as kfp_client
from flowers.kubeflow import runner

OUTPUT_DIR = "gs://flowers-test/kfp"
IMAGE = "registry.example/flowers:test"


def invoke(*args: str):
    return CliRunner().invoke(kubeflow, list(args), catch_exceptions=False)


def pipeline_args(package) -> list[str]:
    return ["--output-dir", OUTPUT_DIR, "--image", IMAGE, "--package", str(package)]


def same_spec(uploaded: dict, package) -> bool:
    """The uploaded spec is the package (as protos: kfp drops fields at their
    default, e.g. `enableCache: false`)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    def parse(d):
        return json_format.ParseDict(d, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=True)

    return parse(uploaded) == parse(yaml.safe_load(package.read_text()))


def epochs_of(parameters: dict) -> int:
    return json.loads(json.loads(parameters["trainer_config"])[TRAINING_CONFIG_KEY])["epochs"]


def test_submit_uploads_the_compiled_spec_with_the_run_parameters(kfp_server, tmp_path):
    package = tmp_path / "flowers.yaml"
    result = invoke(
        "submit",
        "--host",
        kfp_server.url,
        *pipeline_args(package),
        "--epochs",
        "3",
        "--run-name",
        "nightly",
        "--param",
        "data_root=gs://flowers-test/new-photos",
    )
    assert result.exit_code == 0, result.output
    [run] = kfp_server.bodies("POST", "/runs")
    assert run["display_name"] == "nightly"
    assert same_spec(run["pipeline_spec"], package)
    parameters = run["runtime_config"]["parameters"]
    assert parameters["data_root"] == "gs://flowers-test/new-photos"
    assert epochs_of(parameters) == 3
    assert parameters["eval_config"] == runner.runtime_values(PipelineConfig(output_dir=OUTPUT_DIR))["eval_config"]
    assert run["runtime_config"]["pipeline_root"] == f"{OUTPUT_DIR}/tfx"
    [experiment] = kfp_server.bodies("POST", "/experiments")
    assert (
        experiment["display_name"] == "flowers"
        and run["experiment_id"] == kfp_server.experiments["flowers"]["experiment_id"]
    )
    assert "run run-" in result.output
    # No credentials configured, none sent: kfp's conventions, not ours, decide.
    assert all("Authorization" not in r["headers"] and "Cookie" not in r["headers"] for r in kfp_server.requests)


def test_schedule_creates_a_recurring_run_from_the_cron_expression(kfp_server, tmp_path):
    package = tmp_path / "flowers.yaml"
    result = invoke(
        "schedule",
        "--host",
        kfp_server.url,
        *pipeline_args(package),
        "--cron",
        "0 0 3 * * 1",
        "--min-accuracy",
        "0.8",
        "--experiment",
        "retraining",
    )
    assert result.exit_code == 0, result.output
    [job] = kfp_server.bodies("POST", "/recurringruns")
    assert job["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert job["mode"] == "ENABLE" and job["max_concurrency"] == 1 and job["no_catchup"] is True
    assert job["display_name"] == "flowers retraining"
    assert same_spec(job["pipeline_spec"], package)
    assert job["runtime_config"]["pipeline_root"] == f"{OUTPUT_DIR}/tfx"
    parameters = job["runtime_config"]["parameters"]
    assert '"lower_bound": 0.8' in parameters["eval_config"]
    assert parameters == runner.runtime_values(
        PipelineConfig(output_dir=OUTPUT_DIR).override({"gates.min_accuracy": 0.8})
    )
    assert job["experiment_id"] == kfp_server.experiments["retraining"]["experiment_id"]
    assert "cron '0 0 3 * * 1'" in result.output


def test_runs_lists_the_newest_runs(kfp_server, tmp_path):
    for name in ("first", "second"):
        assert (
            invoke(
                "submit", "--host", kfp_server.url, *pipeline_args(tmp_path / "p.yaml"), "--run-name", name
            ).exit_code
            == 0
        )
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
    kfp_requests = [r for r in kfp_server.requests if r["headers"].get("User-Agent") != kfp_client.PROBE_AGENT]
    assert {r["headers"].get("Cookie") for r in kfp_requests} == {"authservice_session=abc"}
    # The reachability probe before it carries no credential.
    [probe] = [r for r in kfp_server.requests if r not in kfp_requests]
    assert probe["path"] == kfp_client.HEALTHZ and "Cookie" not in probe["headers"]
    assert context.read_text() == json.dumps(
        {"namespace": "", "client_authentication_cookie": "authservice_session=abc"}
    )


def test_no_command_takes_a_secret():
    names = {p.name for command in kubeflow.commands.values() for p in command.params}
    assert not {n for n in names if any(word in n for word in ("token", "secret", "cookie", "password", "credential"))}


def test_refusals_and_bad_input_are_clean_messages(kfp_server, tmp_path):
    args = pipeline_args(tmp_path / "p.yaml")
    refused = CliRunner().invoke(
        kubeflow, ["submit", "--host", kfp_server.url, *args, "--experiment", kfp_server.REFUSED_EXPERIMENT]
    )
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
    from flowers.cli.main import cli

    assert cli.commands["kubeflow"] is kubeflow
    assert isinstance(kubeflow, click.Group) and set(kubeflow.commands) == {
        "compile",
        "preflight",
        "submit",
        "schedule",
        "runs",
        "kserve",
    }
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "flowers.cli.main", "kubeflow", "--help"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "schedule" in done.stdout


def test_compile_command_writes_the_package(tmp_path):
    package = tmp_path / "out" / "flowers.yaml"
    result = invoke(
        "compile", *pipeline_args(package), "--beam-arg=--runner=DataflowRunner", "--beam-arg", "--region=r"
    )
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(package.read_text())
    trainer = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    assert trainer["args"][-2:] == ["--runner=DataflowRunner", "--region=r"]
    assert f"pipeline root: {OUTPUT_DIR}/tfx" in result.output


# -- offline: fail in seconds, before compiling -------------------------------


@pytest.fixture
def no_google_credentials(kfp_home, tmp_path, monkeypatch):
    """No credential file, and a metadata server that is not there."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    return os.environ.copy()


def test_submit_to_an_unreachable_host_fails_before_compiling(kfp_home, tmp_path):
    package = tmp_path / "p.yaml"
    started = time.monotonic()
    result = CliRunner().invoke(kubeflow, ["submit", "--host", "http://127.0.0.1:9", *pipeline_args(package)])
    assert result.exit_code == 1 and "cannot reach Kubeflow Pipelines at http://127.0.0.1:9" in result.output
    assert time.monotonic() - started < 5
    assert not package.exists()  # nothing compiled


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_host_that_does_not_answer_times_out_in_seconds(silent_port):
    started = time.monotonic()
    with pytest.raises(kfp_client.KubeflowError, match="cannot reach Kubeflow Pipelines"):
        kfp_client.check_host(f"http://127.0.0.1:{silent_port}", timeout=1)
    assert time.monotonic() - started < 4


def test_a_server_that_is_not_kfp_is_named_at_once():
    class NotFound(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(404 if self.path.endswith("/healthz") else 200)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(kfp_client.KubeflowError, match="answered 404 .* not a reachable KFP 2.x API"):
            kfp_client.check_host(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


def test_an_iap_host_without_google_credentials_is_refused_at_once(no_google_credentials):
    started = time.monotonic()
    with pytest.raises(kfp_client.KubeflowError, match="none are configured"):
        kfp_client.check_host("https://abc-dot-europe-west4.pipelines.googleusercontent.com")
    assert time.monotonic() - started < 3


def test_compiling_a_gs_data_root_without_credentials_fails_in_seconds(no_google_credentials, tmp_path):
    package = tmp_path / "p.yaml"
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowers.cli.main",
            "kubeflow",
            "compile",
            *pipeline_args(package),
            "--data-root",
            "gs://flowers-test/data",
        ],
        capture_output=True,
        text=True,
        env=no_google_credentials,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr[-3000:]
    assert "cannot read gs://flowers-test/data: no Google credentials are configured" in done.stderr
    assert elapsed < 60, (
        elapsed
    )  # before: 1 min 50 s of TensorFlow's token and request retries (loose: a loaded CI machine)
    assert not package.exists()


def test_gcs_out_of_reach_is_named_at_once(no_google_credentials, tmp_path, monkeypatch):
    key = tmp_path / "key.json"
    key.write_text("{}")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.setattr(kfp_client, "GCS_ENDPOINT", ("127.0.0.1", 9))
    assert kfp_client.google_credentials() == [str(key)]
    with pytest.raises(kfp_client.KubeflowError, match="does not answer"):
        kfp_client.check_readable("gs://flowers-test/data", timeout=1)
    kfp_client.check_readable("/local/path")  # local paths are the file system's business


def test_no_endpoint_at_all_is_named_at_once(kfp_home, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    started = time.monotonic()
    result = CliRunner().invoke(kubeflow, ["runs"])
    assert result.exit_code == 1 and "no Kubeflow Pipelines endpoint: pass --host" in result.output
    assert time.monotonic() - started < 3
