"""How `flowers serve` holds up under load, against offline batch prediction.

    .venv/bin/python benchmarks/serving.py --output-dir OUTPUT_DIR [--requests N] [--seconds S]

OUTPUT_DIR is a finished run with a pushed model. Loopback only, bounded in
requests and time. One invocation:

1. classifies the bundled sample's photos offline, in this process, in
   batches of 32 through the same signature (`flowers predict`'s path):
   the images/s to compare with;
2. starts `flowers serve` on a free loopback port, warms it up, then sends
   N one-photo requests (at most S seconds) at concurrency 1, 4 and 16 on
   keep-alive connections: p50/p95/p99 latency and images/s;
3. sends 2,000 requests at concurrency 16 with a malformed one (bad JSON,
   bad base64, not an image, in turn) every tenth: each malformed one must
   get its 400 error, each good one the class offline prediction gave;
   the server's resident memory before and after;
4. sends SIGTERM while requests are in flight: they must be answered and
   the server exit 0.

Prints one JSON line with the figures, the ratios and whether the goals hold
(concurrency 16 >= 0.7x offline images/s; at concurrency 1, p99 < 3x p50;
no failed good request; resident memory growth <= 10%). The client runs on
the same cores as the server: on a small machine it takes part of the
throughput it measures. Not a test.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

from flowers import features
from flowers.config import PipelineConfig

GOALS = {"min_c16_vs_offline": 0.7, "max_c1_p99_over_p50": 3.0, "max_rss_growth": 0.10}
MALFORMED = (
    b'{"instances": [',
    b'{"instances": [{"b64": "no*base64"}]}',
    json.dumps({"instances": [{"b64": base64.b64encode(b"not an image").decode()}]}).encode(),
)
PREDICT = "/v1/models/flowers:predict"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True, help="a finished run's output dir (with serving/<version>/)")
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    parser.add_argument("--seconds", type=float, default=60, help="at most this long per level")
    parser.add_argument("--mixed-requests", type=int, default=2000)
    args = parser.parse_args(argv)
    images = _sample_images(64)
    model_dir = _newest_version(args.output_dir)
    offline, offline_classes = _offline(model_dir, images)
    _say(f"offline: {offline:.1f} images/s")
    server = _Server(args.output_dir)
    try:
        bodies = [_body(image) for image in images]
        _load(server.port, bodies, 4, 32, 30)  # warm-up
        levels = {}
        for concurrency in (1, 4, 16):
            levels[concurrency] = _load(server.port, bodies, concurrency, args.requests, args.seconds)
            _say(f"concurrency {concurrency}: {levels[concurrency]}")
        rss_before = server.rss_mb()
        mixed = _mixed(server.port, bodies, offline_classes, args.mixed_requests)
        rss_after = server.rss_mb()
        _say(f"mixed: {mixed}; RSS {rss_before:.0f} -> {rss_after:.0f} MiB")
        drain = _sigterm(server, bodies)
    finally:
        server.kill()
    result = {
        "benchmark": "serving",
        "images": len(images),
        "offline_images_per_s": round(offline, 1),
        "levels": {str(c): v for c, v in levels.items()},
        "c16_vs_offline": round(levels[16]["images_per_s"] / offline, 3),
        "c1_p99_over_p50": round(levels[1]["p99_ms"] / levels[1]["p50_ms"], 2),
        "mixed": mixed,
        "rss_mb": [round(rss_before, 1), round(rss_after, 1)],
        "rss_growth": round(rss_after / rss_before - 1, 4),
        "sigterm": drain,
        "cpus": os.cpu_count(),
    }
    result["goals_met"] = {
        "c16_vs_offline": result["c16_vs_offline"] >= GOALS["min_c16_vs_offline"],
        "c1_p99": result["c1_p99_over_p50"] < GOALS["max_c1_p99_over_p50"],
        "no_error": all(v["errors"] == 0 for v in levels.values())
        and mixed["good_failed"] == 0
        and mixed["malformed_not_400"] == 0,
        "rss": result["rss_growth"] <= GOALS["max_rss_growth"],
        "sigterm": drain["exit_code"] == 0 and drain["answered"] == drain["sent"],
    }
    print(json.dumps(result))


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _sample_images(count: int) -> list[bytes]:
    import tensorflow as tf

    from flowers.config import SAMPLE_DATA

    files = sorted(tf.io.gfile.glob(os.path.join(SAMPLE_DATA, "span-1", "*.tfrec")))
    found = []
    for record in tf.data.TFRecordDataset(files).take(count):
        example = tf.train.Example.FromString(record.numpy())
        found.append(example.features.feature[features.IMAGE_KEY].bytes_list.value[0])
    return found


def _newest_version(output_dir: str) -> str:
    serving = PipelineConfig(output_dir=output_dir).serving_dir
    versions = sorted((v for v in os.listdir(serving) if v.isdigit()), key=int)
    if not versions:
        raise SystemExit(f"{serving}: no pushed version; run `flowers run --output-dir {output_dir}` first")
    return os.path.join(serving, versions[-1])


def _offline(model_dir: str, images: list[bytes]) -> tuple[float, list[str]]:
    """Images/s of batch prediction in this process (best of three passes), and each image's class."""
    from flowers.runs import predict

    signature = predict.load(model_dir)
    batch = [(str(i), image) for i, image in enumerate(images)]
    rows = []
    for chunk in range(0, len(batch), 32):  # warm-up pass, and the classes
        rows += predict.classify_batch(signature, "", batch[chunk : chunk + 32])
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for chunk in range(0, len(batch), 32):
            predict.classify_batch(signature, "", batch[chunk : chunk + 32])
        best = max(best, len(batch) / (time.perf_counter() - start))
    return best, [row["class"] for row in rows]


def _body(image: bytes) -> bytes:
    return json.dumps({"instances": [{"b64": base64.b64encode(image).decode()}]}).encode()


def _post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, dict]:
    connection.request("POST", PREDICT, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def _load(port: int, bodies: list[bytes], concurrency: int, requests: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = [0]
    counter = iter(range(requests))
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            status, _ = _post(connection, bodies[i % len(bodies)])
            took = time.perf_counter() - start
            with lock:
                latencies.append(took)
                errors[0] += status != 200

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    elapsed = time.perf_counter() - start
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "images_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49] * 1000, 1),
        "p95_ms": round(q[94] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "errors": errors[0],
    }


def _mixed(port: int, bodies: list[bytes], classes: list[str], requests: int) -> dict:
    counts = {"good": 0, "good_failed": 0, "malformed": 0, "malformed_not_400": 0}
    counter = iter(range(requests))
    lock = threading.Lock()

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            if i % 10 == 9:
                status, answer = _post(connection, MALFORMED[(i // 10) % len(MALFORMED)])
                with lock:
                    counts["malformed"] += 1
                    counts["malformed_not_400"] += status != 400 or set(answer) != {"error"}
            else:
                status, answer = _post(connection, bodies[i % len(bodies)])
                ok = status == 200 and answer["predictions"][0][features.CLASS_NAME_OUTPUT] == classes[i % len(bodies)]
                with lock:
                    counts["good"] += 1
                    counts["good_failed"] += not ok

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(client) for _ in range(16)]:
            future.result()
    return counts


def _sigterm(server: "_Server", bodies: list[bytes]) -> dict:
    answered = []

    def send(i: int):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        body = json.dumps({"instances": [json.loads(bodies[i % len(bodies)])["instances"][0]] * 8}).encode()
        status, _ = _post(connection, body)
        answered.append(status)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    start = time.perf_counter()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(120)
    for thread in threads:
        thread.join()
    return {
        "sent": len(threads),
        "answered": answered.count(200),
        "exit_code": code,
        "exit_s": round(time.perf_counter() - start, 2),
    }


class _Server:
    def __init__(self, output_dir: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flowers.cli.main", "serve", "--output-dir", output_dir, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"flowers serve exited with {self.process.returncode}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/v1/models/flowers")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        raise SystemExit("flowers serve did not start in 180 s")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    main()
