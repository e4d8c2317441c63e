"""Bad data never becomes a pushed model: each case is a real run on a small
data root made from the bundled sample, stopped by the data gate (exit 4)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tensorflow as tf
from conftest import IN_PROCESS_BEAM
from samples import sample_examples

from flowers import features, outcome
from flowers.config import PipelineConfig
from flowers.runs import records, results

pytestmark = pytest.mark.slow


def write_root(root, examples) -> str:
    os.makedirs(os.path.join(root, "span-1"))
    with tf.io.TFRecordWriter(os.path.join(root, "span-1", "flowers-00000-of-00001.tfrec")) as w:
        for example in examples:
            w.write(example.SerializeToString())
    return str(root)


def class_seven(examples):
    """One class's records say class 7 (out of range)."""
    for e in examples:
        if e.features.feature[features.CLASS_KEY].int64_list.value[0] == 1:
            e.features.feature[features.CLASS_KEY].int64_list.value[0] = 7
    return examples


def no_tulips(examples):
    tulips = features.class_id("tulips")
    return [e for e in examples if e.features.feature[features.CLASS_KEY].int64_list.value[0] != tulips]


def no_class_feature(examples):
    for e in examples:
        del e.features.feature[features.CLASS_KEY]
    return examples


def unbalanced(examples):
    """Every daisy of the sample and three photos of each other class: the
    span that trained a model blind to four classes (issue 22)."""
    daisy = features.class_id("daisy")
    kept, others = [], {}
    for e in sample_examples():
        label = e.features.feature[features.CLASS_KEY].int64_list.value[0]
        others[label] = others.get(label, 0) + 1
        if label == daisy or others[label] <= 3:
            kept.append(e)
    return kept


def not_a_jpeg(examples):
    """The whole sample, one record's image text: every class is there and
    the statistics see non-empty bytes, so only the decode check refuses it."""
    examples = sample_examples()
    examples[7].features.feature[features.IMAGE_KEY].bytes_list.value[0] = b"this is no JPEG"
    return examples


CASES = {
    "class_seven": class_seven,
    "no_tulips": no_tulips,
    "no_class_feature": no_class_feature,
    "unbalanced": unbalanced,
    "not_a_jpeg": not_a_jpeg,
}


@pytest.fixture(scope="module")
def refused_runs(tmp_path_factory):
    """Every case at once (they only run up to the data gate)."""
    started = {}
    for name, spoil in CASES.items():
        base = tmp_path_factory.mktemp(name)
        root = write_root(base / "data", spoil(sample_examples(60)))
        out = str(base / "out")
        started[name] = (
            out,
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flowers.cli.main",
                    "run",
                    "--data-root",
                    root,
                    "--output-dir",
                    out,
                    "--set",
                    "report=false",
                    *IN_PROCESS_BEAM,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    return {name: (out, *p.communicate(timeout=900), p.returncode) for name, (out, p) in started.items()}


@pytest.mark.parametrize(
    "case, expected",
    [
        ("class_seven", "class: Unexpectedly large value: 7"),
        # (on so few photos other classes miss a split too; each is named)
        ("no_tulips", "tulips has fewer than 1 example(s) in this split (gates.min_class_examples)"),
        ("no_class_feature", "class: Column is completely missing"),
        ("not_a_jpeg", "): image does not decode ("),
        (
            "unbalanced",
            "class: classes out of balance: the largest class has over 8 times the examples of the "
            "smallest (gates.max_class_ratio)",
        ),
    ],
)
def test_bad_data_ends_with_exit_4_and_no_model(refused_runs, case, expected):
    out, stdout, stderr, code = refused_runs[case]
    assert code == outcome.DATA_REFUSED, stdout[-3000:] + stderr[-3000:]
    assert expected in stdout and "state:          data refused" in stdout
    assert "Transform" not in [line.split()[0] for line in stdout.splitlines() if line.strip()]
    assert not os.path.exists(os.path.join(out, "serving"))
    store = records.store_for(PipelineConfig(output_dir=out))
    summary = results.summarize(store, records.run_ids(store)[-1])
    assert summary.state == "data refused" and summary.failed_component == "DataGate"
    assert "Trainer" not in summary.executions and summary.model_uri is None
    if case == "not_a_jpeg":  # the statistics saw nothing wrong; the gate's decode check did
        assert summary.anomalies == {}
        assert any(
            line.startswith("DataGate") and "DataRefused: data refused:" in line and expected in line
            for line in stdout.splitlines()
        )
    else:
        assert any(expected in line for lines in summary.anomalies.values() for line in lines)
