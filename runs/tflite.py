"""`flowers predict --tflite`: the same rows as `predict_files`, from the
model's `model.tflite` (what a phone runs). Each photo is decoded and
cropped with `flowers.images.decode_and_crop`, the TFLite model's
documented input (components/tflite.py)."""

from __future__ import annotations

import os
from typing import Iterator, Sequence

from flowers import features
from flowers.runs import predict


def predict_files(model_dir: str, paths: Sequence[str], batch_size: int = predict.DEFAULT_BATCH_SIZE) -> Iterator[dict]:
    """One row per file, in order, as `predict.predict_files` yields them."""
    import numpy as np
    import tensorflow as tf

    from flowers import images
    from flowers.components import tflite

    path = os.path.join(model_dir, tflite.TFLITE_FILE)
    if not tf.io.gfile.exists(path):
        raise predict.ModelError(
            f"{path} does not exist: its run refused it (the TFLite model disagreed with the SavedModel; "
            "the run's summary says by how much), its run had training.tflite off, or the model predates TFLite files"
        )
    classifier = tflite.Classifier(path)
    version = predict.model_version(model_dir)

    def rows() -> Iterator[dict]:
        for file in paths:
            data, error = predict.read_file(file)
            if error:
                yield predict.error_row(file, version, error)
                continue
            try:
                image = images.decode_and_crop(data, classifier.image_size).numpy()
            except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as bad:
                yield predict.error_row(file, version, f"not a readable image: {predict._clean(bad.message)}")
                continue
            probabilities = classifier(image[None])[0]
            best = int(np.argmax(probabilities))
            yield {
                "file": file,
                "model_version": version,
                "class": features.CLASS_NAMES[best],
                "class_id": best,
                "confidence": float(probabilities[best]),
                "probabilities": dict(zip(features.CLASS_NAMES, map(float, probabilities), strict=True)),
            }

    return rows()
