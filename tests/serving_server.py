"""`flowers serve` in a subprocess on a loopback port, and a small client
(the standard library's, so the tests speak plain HTTP as any client does)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

MODEL_URL = "/v1/models/flowers"
# The shared server's --max-batch-size: small, so that a batch over the limit is a cheap request.
MAX_BATCH_SIZE = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


class Server:
    """A running `flowers serve`; `stop()` sends SIGTERM and returns the exit code."""

    def __init__(self, output_dir: str, log_dir: str, *args: str, wait_for_version: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(log_dir, f"serve-{self.port}.log"), "w+")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flowers.cli.main",
                "serve",
                "--output-dir",
                output_dir,
                "--port",
                str(self.port),
                *args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"flowers serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                status, body, _ = self.get(MODEL_URL)
                if not wait_for_version or any(v["state"] == "AVAILABLE" for v in body.get("model_version_status", [])):
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise AssertionError(f"flowers serve did not serve a version in 180 s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-5000:]

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 120
    ) -> tuple[int, dict, dict]:
        """(status, JSON body, headers)."""
        request = urllib.request.Request(self.url + path, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read()), {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read()), {k.lower(): v for k, v in error.headers.items()}

    def get(self, path: str) -> tuple[int, dict, dict]:
        return self.request("GET", path)

    def post(self, path: str, payload) -> tuple[int, dict, dict]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request("POST", path, body)

    def predict(self, images: list[bytes], version: str | None = None) -> tuple[int, dict, dict]:
        path = MODEL_URL + (f"/versions/{version}" if version else "") + ":predict"
        return self.post(path, {"instances": [b64(image) for image in images]})

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode
