"""Use a pushed model: find it through ML Metadata and classify image files."""
from __future__ import annotations

import os
from typing import Iterator, Sequence

from flowers import features
from flowers.config import PipelineConfig
from flowers.pipeline import results


class ModelError(ValueError):
    """The model folder cannot be used; the message names it."""


def newest_pushed_model(config: PipelineConfig) -> str:
    """The serving directory of the most recently pushed (blessed) model."""
    store = results.store_for(config)
    pushed = [a for a in store.get_artifacts_by_type("PushedModel") if a.custom_properties["pushed"].int_value]
    if not pushed:
        raise LookupError(f"{config.metadata_path}: no model has been pushed yet (none was blessed)")
    return max(pushed, key=lambda a: a.id).custom_properties["pushed_destination"].string_value


def load(model_dir: str):
    """The model's raw-bytes signature; a clear error if the folder is not a flowers SavedModel."""
    import tensorflow as tf

    if not tf.saved_model.contains_saved_model(model_dir):
        raise ModelError(f"{model_dir} is not a SavedModel folder (no saved_model.pb); pass a pushed version folder")
    model = tf.saved_model.load(model_dir)
    if features.BYTES_SIGNATURE not in model.signatures:
        raise ModelError(f"{model_dir} has no {features.BYTES_SIGNATURE!r} signature: not a flowers model")
    return model.signatures[features.BYTES_SIGNATURE]


def predict_files(model_dir: str, paths: Sequence[str]) -> Iterator[dict]:
    """One row per file, in order: class name, id and probabilities, and the
    model version; a file that is not a readable image gets an "error"
    instead, and the others are still classified."""
    import tensorflow as tf

    predict = load(model_dir)
    version = os.path.basename(os.path.normpath(model_dir))
    for path in paths:
        try:
            image = tf.io.read_file(path)
            # Checks the bytes decode as an image before the batch call.
            tf.io.decode_image(image, channels=3, expand_animations=False)
            out = predict(**{features.SERVING_BYTES_INPUT: tf.reshape(image, [1])})
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.UnknownError) as error:
            message = error.message.splitlines()[0] if error.message else type(error).__name__
            yield {"file": path, "model_version": version, "error": f"not a readable image: {message}"}
            continue
        yield {
            "file": path,
            "model_version": version,
            "class": out[features.CLASS_NAME_OUTPUT][0].numpy().decode(),
            "class_id": int(out[features.CLASS_ID_OUTPUT][0]),
            "probabilities": dict(zip(features.CLASS_NAMES, map(float, out[features.PROBABILITIES_OUTPUT][0].numpy()))),
        }
