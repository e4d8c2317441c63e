"""Shared fixtures: real photos and shards taken from the bundled sample, so
the suite needs neither network nor ../shared."""

from __future__ import annotations

import pytest
from samples import sample_examples

from flowers import features  # first: flowers selects Keras 2 before TensorFlow loads


@pytest.fixture(scope="session")
def photos_dir(tmp_path_factory) -> str:
    """flower_photos layout: 3 real JPEGs per class, from the bundled sample."""
    root = tmp_path_factory.mktemp("photos")
    per_class: dict[int, int] = {}
    for example in sample_examples():
        f = example.features.feature
        index = f[features.CLASS_KEY].int64_list.value[0]
        if per_class.get(index, 0) == 3:
            continue
        per_class[index] = per_class.get(index, 0) + 1
        folder = root / features.CLASS_NAMES[index]
        folder.mkdir(exist_ok=True)
        (folder / f"photo{per_class[index]}.jpg").write_bytes(f[features.IMAGE_KEY].bytes_list.value[0])
    return str(root)


@pytest.fixture(scope="session")
def sample_jpeg() -> bytes:
    return sample_examples(1)[0].features.feature[features.IMAGE_KEY].bytes_list.value[0]


# One small real pipeline run shared by every test that only reads what a run
# produced (ML Metadata, the pushed model, the report): a few epochs on the
# bundled sample, a gate it passes.
# A 3-epoch model on 37 eval photos may still miss most of one class: the
# per-class recall floor (default 0.5) is off for the shared tiny run.
TINY_RUN_SETTINGS = (
    "--set",
    "training.epochs=3",
    "--set",
    "training.fine_tune_epochs=1",
    "--min-accuracy",
    "0.3",
    "--set",
    "gates.min_class_recall=0",
    # Off by default; the shared run's history and report show it.
    "--set",
    "training.final_fit=true",
)
# Every run of the suite runs Beam inside its component's process: on a few
# hundred records, starting DirectRunner's worker processes for each Beam
# component costs more than the work. The shared runs get it from the default
# (run.beam_multiprocessing_above_mb: the sample is far below it); other runs
# on made-up data roots say it. The SIGINT test forces multi-processing
# (MULTI_PROCESS_BEAM), so that path and the stopping of its workers stay tested.
IN_PROCESS_BEAM = ("--set", "run.beam_args=--direct_running_mode=in_memory")
MULTI_PROCESS_BEAM = ("--set", "run.beam_multiprocessing_above_mb=0")
# The TFLite conversion and its check cost a tiny run's Trainer tens of
# seconds: only the shared run (tests/components/test_tflite.py reads its
# model.tflite) writes one; every other run that trains says this.
NO_TFLITE = ("--set", "training.tflite=false")


def flowers_cli(*args: str, timeout: int = 1500):
    """`flowers ...` in a fresh process, as a user runs it."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "flowers.cli.main", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """(PipelineConfig, CompletedProcess) of the shared run."""
    from flowers.config import PipelineConfig

    out = str(tmp_path_factory.mktemp("shared-run"))
    done = flowers_cli("run", "--output-dir", out, *TINY_RUN_SETTINGS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return PipelineConfig(output_dir=out).override({"gates.min_accuracy": 0.3}), done


@pytest.fixture(scope="session")
def refused_run(pipeline_run):
    """The shared run's folder run again with a gate no model passes: cached up
    to the Trainer, then refused. (config, CompletedProcess, first run id,
    refused run id); the first run's id comes first in ML Metadata."""
    from flowers.runs import records

    config, _ = pipeline_run
    done = flowers_cli("run", "--output-dir", config.output_dir, *TINY_RUN_SETTINGS, "--min-accuracy", "0.999")
    ids = records.run_ids(records.store_for(config))
    return config, done, ids[0], ids[-1]


@pytest.fixture
def kfp_home(tmp_path, monkeypatch):
    """A HOME with no kfp context, and no KF_PIPELINES_* settings of the user."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "KF_PIPELINES_ENDPOINT",
        "KF_PIPELINES_UI_ENDPOINT",
        "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID",
        "KF_PIPELINES_APP_OAUTH2_CLIENT_ID",
        "KF_PIPELINES_APP_OAUTH2_CLIENT_SECRET",
        "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME",
        "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    import kfp

    # kfp resolves ~/.config/kfp/context.json when it is imported, not per client.
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(home / ".config" / "kfp" / "context.json"))
    return home


def _xdist_group(item) -> str:
    """The worker group of a test under `pytest -n N --dist loadgroup` (the
    Makefile's test targets): tests that read one expensive fixture share a
    worker, so the run behind it happens once. Every reader of the shared run
    is one group; the Vertex AI preflight run is split from its file's kfp runs
    (the two largest items of the suite then run side by side); every other
    test goes with its file, as module-scoped fixtures need."""
    if "pipeline_run" in item.fixturenames:
        return "shared-run"
    if "vertex_run" in item.fixturenames:
        return "preflight-vertex"
    return item.nodeid.split("::")[0]


# The longest groups, longest first: xdist (`--no-loadscope-reorder`,
# Makefile) hands the groups out in the order of their first test, the next
# one to whichever worker is nearly done with its own, so these start first
# and the short ones fill in behind. On a quiet machine (docs/testing.md):
# the shared run and its readers about 600 s, the retraining scenario 510 s,
# the two kfp preflight runs 440 s, the Vertex AI preflight 100 s.
LONGEST_GROUPS = (
    "shared-run",
    "tests/pipeline/test_retraining_e2e.py",
    "tests/kubeflow/test_preflight.py",
    "preflight-vertex",
    "tests/pipeline/test_data_gate_e2e.py",
    "tests/pipeline/test_stops_e2e.py",
)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items) -> None:
    groups = {}
    for item in items:
        groups[item.nodeid] = _xdist_group(item)
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    rank = {name: i for i, name in enumerate(LONGEST_GROUPS)}
    items.sort(key=lambda item: rank.get(groups[item.nodeid], len(rank)))  # stable: file order within a group
