"""The baseline component and the Evaluator around it (components/baseline.py,
components/evaluator.py): the candidate alone before the first push, the
pushed version read in place after it, nothing copied, on the suite's shared
runs (the first pushed, the second compared with that push)."""

from __future__ import annotations

import base64
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.evaluator import constants

from flowers import features
from flowers.components import eval_predictions, evaluator, names
from flowers.runs import records, results

BASELINE_URI = constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY  # what TFX's Evaluator writes on the blessing


def test_a_pushed_version_folder_is_read_in_place(tmp_path):
    pushed = tmp_path / "serving" / "1700000000"
    pushed.mkdir(parents=True)
    (pushed / "saved_model.pb").write_bytes(b"")
    # TFX asks for <artifact uri>/Format-Serving; the pushed folder has its SavedModel at the top.
    model = evaluator.custom_eval_shared_model(str(pushed / names.SERVING_FOLDER), "baseline", None)
    assert model.model_path == str(pushed) and model.model_name == "baseline"
    trained = tmp_path / "Trainer" / "model" / "7" / names.SERVING_FOLDER
    trained.mkdir(parents=True)
    (trained / "saved_model.pb").write_bytes(b"")
    assert evaluator.custom_eval_shared_model(str(trained), "candidate", None).model_path == str(trained)


def test_a_row_holds_the_candidates_probabilities_and_a_thumbnail_when_wrong(sample_jpeg):
    right, wrong = np.eye(features.NUM_CLASSES, dtype=np.float32)[[2, 0]]
    extract = {
        "features": {features.CLASS_KEY: np.array([2]), features.IMAGE_KEY: np.array([sample_jpeg], dtype=object)},
        # Candidate and baseline, each a dict of the signature's outputs (TFMA's multi-model extracts).
        "predictions": {
            "candidate": {features.PROBABILITIES_OUTPUT: wrong},
            "baseline": {features.PROBABILITIES_OUTPUT: right},
        },
    }
    row = json.loads(eval_predictions.row(extract, "candidate"))
    assert row["class"] == 2 and row["probabilities"] == wrong.tolist()
    thumbnail = tf.io.decode_jpeg(base64.b64decode(row["thumbnail"]))
    assert max(thumbnail.shape[:2]) == eval_predictions.THUMBNAIL_PX
    extract["predictions"] = right  # one model, one output
    assert "thumbnail" not in json.loads(eval_predictions.row(extract, ""))


@pytest.fixture(scope="module")
def evaluated(refused_run):
    """(config, first run, second run, first run's summary)."""
    config, second, first_id, second_id = refused_run
    store = records.store_for(config)
    return (
        config,
        records.RunRecord.load(store, first_id),
        records.RunRecord.load(store, second_id),
        results.summarize(store, first_id),
    )


def _files_under(folder: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]


@pytest.mark.slow
def test_first_run_evaluates_the_candidate_alone(evaluated):
    _, first, _, _ = evaluated
    base = first.input(names.EVALUATOR, "baseline_model")
    assert base.properties[names.PUSHED_VERSION] == ""
    assert _files_under(base.uri) == []  # nothing copied in
    evaluation = records.read_evaluation(first.output(names.EVALUATOR, "evaluation").uri)
    # TFMA ran one model (no baseline ModelSpec) and without the change threshold.
    assert [s.is_baseline for s in evaluation.eval_config.model_specs] == [False]
    assert "baseline" not in evaluation.metrics and evaluation.diffs == {}
    thresholds = [t.threshold for m in evaluation.eval_config.metrics_specs[0].metrics for t in m.per_slice_thresholds]
    assert thresholds and not any(t.HasField("change_threshold") for t in thresholds)
    blessing = first.output(names.EVALUATOR, "blessing")
    assert blessing.properties["blessed"] == 1 and BASELINE_URI not in blessing.properties


@pytest.mark.slow
def test_second_run_reads_the_pushed_version_in_place(evaluated):
    config, first, second, first_summary = evaluated
    base = second.input(names.EVALUATOR, "baseline_model")
    pushed = os.path.join(config.serving_dir, first_summary.pushed_version)
    assert first_summary.pushed_to == pushed and base.properties[names.PUSHED_VERSION] == first_summary.pushed_version
    assert base.uri == pushed
    blessing = second.output(names.EVALUATOR, "blessing")
    assert blessing.properties[BASELINE_URI] == pushed
    evaluation = records.read_evaluation(second.output(names.EVALUATOR, "evaluation").uri)
    assert sorted(s.is_baseline for s in evaluation.eval_config.model_specs) == [False, True]
    assert evaluation.baseline_accuracy is not None and features.ACCURACY_METRIC in evaluation.diffs
    # Neither run copied a model into the baseline component's own folders.
    assert _files_under(os.path.join(config.pipeline_root, names.BASELINE)) == []


@pytest.mark.slow
def test_each_evaluation_holds_its_per_example_predictions(evaluated):
    """One line per eval example beside TFMA's output, agreeing with TFMA's
    accuracy, for the candidate alone and for candidate and baseline."""
    _, first, second, first_summary = evaluated
    for run in (first, second):
        path = os.path.join(run.output(names.EVALUATOR, "evaluation").uri, eval_predictions.FILE)
        with open(path) as f:
            rows = [json.loads(line) for line in f]
        assert len(rows) == first_summary.eval_examples
        right = [int(np.argmax(r["probabilities"])) == r["class"] for r in rows]
        assert sum(right) / len(rows) == pytest.approx(first_summary.accuracy, abs=1e-6)
        assert [("thumbnail" in r) for r in rows] == [not ok for ok in right]
