"""A `flowers serve` of the shared run's pushed model, shared by the REST
and browser tests (starting one costs TensorFlow's import and a load)."""

from __future__ import annotations

import os

import pytest
from serving_server import MAX_BATCH_SIZE, Server


@pytest.fixture(scope="session")
def pushed(pipeline_run) -> tuple[str, str]:
    """(output dir, the version the shared run pushed)."""
    config, _ = pipeline_run
    versions = sorted(os.listdir(config.serving_dir), key=int)
    return config.output_dir, versions[-1]


@pytest.fixture(scope="session")
def served(pushed, tmp_path_factory):
    output_dir, _ = pushed
    server = Server(output_dir, str(tmp_path_factory.mktemp("serve-logs")), "--max-batch-size", str(MAX_BATCH_SIZE))
    yield server
    server.stop()
