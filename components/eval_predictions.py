"""The Evaluator's per-example output: one JSON line per eval example (its
class, the candidate's probabilities and, for a wrong answer, a thumbnail),
written beside TFMA's metrics by a last extractor, so that the report's
mistakes and calibration come from the Evaluator's own predictions instead
of predicting the eval split a second time. TFMA 0.47 writes nothing per
example, and TFX 1.16's Evaluator takes no custom writers; it does take
custom extractors (`custom_extractors` in components/evaluator.py)."""

from __future__ import annotations

import base64
import contextvars
import json
from typing import TYPE_CHECKING

import apache_beam as beam
import numpy as np

from flowers import features

if TYPE_CHECKING:
    from tensorflow_model_analysis.extractors.extractor import Extractor

FILE = "eval_predictions.jsonl"  # in the Evaluator's evaluation artifact
STAGE = "WriteEvalPredictions"
THUMBNAIL_PX = 128
# The evaluation artifact's folder while components/evaluator.py's Executor
# runs, for its `custom_extractors` (TFX calls that hook without the output
# path, in the same thread). Kept here, not in that module: TFX reloads a
# `module_path` module before taking a hook from it, which would start a
# variable of its own afresh.
EVALUATION_DIR: contextvars.ContextVar[str | None] = contextvars.ContextVar("evaluation_dir", default=None)


def row(extract: dict, model_name: str) -> str:
    """The JSON line of one per-example extract (after TFMA's unbatching)."""
    from flowers import images

    given = extract["features"]
    true_class = int(np.asarray(given[features.CLASS_KEY]).reshape(-1)[0])
    predictions = extract["predictions"]
    if isinstance(predictions, dict) and model_name in predictions:  # several models: keyed by name
        predictions = predictions[model_name]
    if isinstance(predictions, dict):  # several outputs: keyed by output name
        predictions = predictions[features.PROBABILITIES_OUTPUT]
    probabilities = [round(float(p), 6) for p in np.asarray(predictions).reshape(-1)]
    line = {"class": true_class, "probabilities": probabilities}
    if int(np.argmax(probabilities)) != true_class:
        image = np.asarray(given[features.IMAGE_KEY]).reshape(-1)[0]
        line["thumbnail"] = base64.b64encode(images.thumbnail(image, THUMBNAIL_PX)).decode()
    return json.dumps(line)


def writer(path: str, model_name: str) -> Extractor:
    """A TFMA Extractor that writes every extract's row to `path` (one file)
    and hands the extracts on unchanged."""
    from tensorflow_model_analysis.extractors import extractor

    @beam.ptransform_fn
    def write(extracts):
        _ = (
            extracts
            | "Row" >> beam.Map(row, model_name)
            | "Write" >> beam.io.WriteToText(path, shard_name_template="", num_shards=1)
        )
        return extracts

    return extractor.Extractor(stage_name=STAGE, ptransform=write())
