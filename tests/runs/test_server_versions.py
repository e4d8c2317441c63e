"""Versions come and go under a running `flowers serve` while a client
streams requests: a new push takes over, a folder that is not a model is
skipped, retention deletes the served version; no request fails. SIGTERM
answers the requests in flight, then exits 0."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
from serving_server import MODEL_URL, Server

pytestmark = pytest.mark.slow
POLL = "0.3"


class Stream:
    """A client sending one photo again and again on two connections; every
    answer's status and version is kept."""

    def __init__(self, server: Server, image: bytes):
        self.answers: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(server, image)) for _ in range(2)]
        for thread in self._threads:
            thread.start()

    def _send(self, server: Server, image: bytes) -> None:
        while not self._stop.is_set():
            status, body, headers = server.predict([image])
            self.answers.append((status, headers.get("x-model-version", body.get("error", ""))))

    def wait_for_version(self, version: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers and self.answers[-1] == (200, version):
                return
            time.sleep(0.1)
        raise AssertionError(f"version {version} never answered; last answers {self.answers[-5:]}")

    def stop(self) -> list[tuple[int, str]]:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.answers


def _states(server: Server) -> dict[str, tuple[str, str]]:
    return {
        v["version"]: (v["state"], v["status"]["error_message"])
        for v in server.get(MODEL_URL)[1]["model_version_status"]
    }


def test_push_bad_folder_and_retention_under_load_fail_no_request(pushed, tmp_path, sample_jpeg):
    output_dir, version = pushed
    serving = tmp_path / "serving"
    shutil.copytree(os.path.join(output_dir, "serving", version), serving / version)
    server = Server(str(tmp_path), str(tmp_path), "--poll-seconds", POLL)
    stream = Stream(server, sample_jpeg)
    try:
        stream.wait_for_version(version)
        newer = str(int(version) + 1)
        shutil.copytree(serving / version, serving / newer)  # as the Pusher writes: file by file
        stream.wait_for_version(newer)

        broken = str(int(version) + 2)
        (serving / broken).mkdir()
        (serving / broken / "saved_model.pb").write_bytes(b"not a SavedModel")
        deadline = time.monotonic() + 60
        while _states(server).get(broken, ("", ""))[0] != "END" and time.monotonic() < deadline:
            time.sleep(0.2)
        state, error = _states(server)[broken]
        assert state == "END" and error, _states(server)
        assert "failed to load and is skipped" in server.output()

        shutil.rmtree(serving / newer)  # retention: the served version's folder goes
        stream.wait_for_version(version)
        time.sleep(1)
    finally:
        answers = stream.stop()
        server.stop()
    failed = [a for a in answers if a[0] != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed: {failed[:5]}"
    served = [v for _, v in answers]
    # Old, then new, then old again after retention. The stream's threads
    # record answers as they complete, so a request that was in flight on one
    # version at a swap may land among the other's first answers.
    assert served[0] == version and served[-1] == version and newer in served, served
    assert set(served) == {version, newer}  # the broken folder never answered


def test_sigterm_answers_requests_in_flight_then_exits_0(pushed, tmp_path, sample_jpeg):
    output_dir, _ = pushed
    server = Server(output_dir, str(tmp_path))
    results: list[tuple[int, float]] = []

    def send():
        results.append((server.predict([sample_jpeg] * 16)[0], time.monotonic()))

    # Enough queued work (12 batches) that some is still in flight at SIGTERM on a quiet machine too.
    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # the requests are in: one batch running, the others queued
    signalled = time.monotonic()
    code = server.stop()
    for thread in threads:
        thread.join()
    assert code == 0
    assert [status for status, _ in results] == [200] * 12
    assert max(done for _, done in results) > signalled  # some were answered after SIGTERM
