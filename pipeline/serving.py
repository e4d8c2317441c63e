"""Use a pushed model: find it through ML Metadata and classify image files."""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from flowers.pipeline import features, results
from flowers.pipeline.config import PipelineConfig


def newest_pushed_model(config: PipelineConfig) -> str:
    """The serving directory of the most recently pushed (blessed) model."""
    store = results.store_for(config)
    pushed = [
        a
        for a in store.get_artifacts_by_type("PushedModel")
        if a.custom_properties["pushed"].int_value
    ]
    if not pushed:
        raise LookupError(f"{config.metadata_path}: no model has been pushed yet (none was blessed)")
    return max(pushed, key=lambda a: a.id).custom_properties["pushed_destination"].string_value


def predict_files(model_dir: str, paths: Sequence[str]) -> list[dict]:
    """Class name, id and probabilities for each image file."""
    model = tf.saved_model.load(model_dir)
    predict = model.signatures[features.BYTES_SIGNATURE]
    images = [tf.io.read_file(p) for p in paths]
    out = predict(**{features.SERVING_BYTES_INPUT: tf.stack(images)})
    return [
        {
            "class": out[features.CLASS_NAME_OUTPUT][i].numpy().decode(),
            "class_id": int(out[features.CLASS_ID_OUTPUT][i]),
            "probabilities": dict(zip(features.CLASS_NAMES, map(float, out[features.PROBABILITIES_OUTPUT][i].numpy()))),
        }
        for i in range(len(paths))
    ]
