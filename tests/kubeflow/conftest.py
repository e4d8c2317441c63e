"""Fixtures for the Kubeflow tests: a loopback stand-in for the KFP API server
that records what the kfp client sends, and a kfp environment with no
credentials or context of the machine's user."""

from __future__ import annotations

import itertools
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

API = "/apis/v2beta1"
CREATED_AT = "2026-01-02T03:04:05Z"
REFUSED_EXPERIMENT = "refused"  # creating it answers HTTP 500


class RecordingKfpServer:
    """Answers the few KFP v2beta1 REST calls the client makes and keeps every request."""

    API = API
    REFUSED_EXPERIMENT = REFUSED_EXPERIMENT

    def __init__(self):
        self.requests: list[dict] = []
        self.experiments: dict[str, dict] = {}
        self.runs: list[dict] = []
        self._ids = itertools.count(1)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server._handle(self, "GET")

            def do_POST(self):
                server._handle(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def bodies(self, method: str, path: str) -> list[dict]:
        return [r["body"] for r in self.requests if r["method"] == method and r["path"] == API + path]

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        record = {
            "method": method,
            "path": url.path,
            "query": dict(urllib.parse.parse_qsl(url.query)),
            "headers": dict(handler.headers),
            "body": json.loads(raw) if raw else None,
        }
        self.requests.append(record)
        status, answer = self._answer(record)
        payload = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _answer(self, r: dict) -> tuple[int, dict]:
        route = (r["method"], r["path"])
        if route == ("GET", f"{API}/healthz"):
            return 200, {"multi_user": False}
        if route == ("GET", f"{API}/experiments"):
            predicate = json.loads(r["query"].get("filter", "{}")).get("predicates", [{}])[0]
            wanted = predicate.get("stringValue", predicate.get("string_value"))
            found = [e for name, e in self.experiments.items() if name == wanted]
            return 200, ({"experiments": found, "total_size": len(found)} if found else {})
        if route == ("POST", f"{API}/experiments"):
            if r["body"]["display_name"] == REFUSED_EXPERIMENT:
                return 500, {"error": "experiment store unavailable", "code": 13}
            experiment = {**r["body"], "experiment_id": f"experiment-{next(self._ids)}", "created_at": CREATED_AT}
            self.experiments[experiment["display_name"]] = experiment
            return 200, experiment
        if route == ("POST", f"{API}/runs"):
            run = {**r["body"], "run_id": f"run-{next(self._ids)}", "state": "PENDING", "created_at": CREATED_AT}
            self.runs.insert(0, run)
            return 200, run
        if route == ("GET", f"{API}/runs"):
            runs = self.runs[: int(r["query"].get("page_size", 10))]
            return 200, ({"runs": runs, "total_size": len(runs)} if runs else {})
        if route == ("POST", f"{API}/recurringruns"):
            return 200, {**r["body"], "recurring_run_id": f"recurring-{next(self._ids)}", "status": "ENABLED"}
        return 404, {"error": f"no route {r['method']} {r['path']}", "code": 5}


@pytest.fixture
def kfp_server(kfp_home):
    with RecordingKfpServer() as server:
        yield server


# One small package for every test that reads or preflights a compiled spec
# for open-source Kubeflow Pipelines (it runs in `--backend vertex` preflight
# too: no resolver tasks). One head epoch, no fine-tuning, Beam in process,
# a gate a one-epoch model passes. The output dir is a bucket, as a cluster
# needs; preflight reads it from a local folder (--path-map BUCKET=FOLDER).
PREFLIGHT_SETTINGS = {
    "training.epochs": "1",
    "training.fine_tune_epochs": "0",
    "gates.min_accuracy": "0",
    # A 1-epoch model misses whole classes: the per-class recall floor is off here.
    "gates.min_class_recall": "0",
    "run.beam_args": "--direct_running_mode=in_memory",
    "training.tflite": "false",  # (tests/conftest.py NO_TFLITE)
}
PREFLIGHT_BUCKET = "gs://flowers-preflight/out"


@pytest.fixture(scope="session")
def kfp_package(tmp_path_factory):
    """(config, package path), compiled once for --backend kfp."""
    from flowers.config import PipelineConfig
    from flowers.kubeflow import runner

    root = tmp_path_factory.mktemp("kfp_package")
    config = PipelineConfig(output_dir=PREFLIGHT_BUCKET).override(PREFLIGHT_SETTINGS)
    package = str(root / "flowers.yaml")
    runner.compile_pipeline(config, package, "kfp")
    return config, package
