"""A TFLite copy of every trained model, checked against the SavedModel.

Phones cannot run the SavedModel's JPEG decoding and Transform graph (those
ops are not TFLite built-ins), so the TFLite model starts one step later,
with the contract of the SavedModel's `serving_image` signature: one
RGB image, float32 [1, side, side, 3], values in [0, 255], decoded and
centre-cropped as `flowers.images.decode_and_crop` does; it answers the five
class probabilities in `features.CLASS_NAMES` order. Weights are stored as
float16 (half the size, computed in float32: no accuracy lost in practice;
dynamic-range int8 is smaller still but moves predictions more, see
docs/serving.md). Its accuracy on the validation split (the Trainer never reads the eval
split: it is the Evaluator's alone) is measured against the
Keras model's on the same decoded images; when it falls more than
`MAX_ACCURACY_DROP` below, the file is not written (a phone app must not ship
a model that disagrees with the served one) and the run says why; the
SavedModel is still pushed, since the server does not depend on it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from flowers import features, progress

# Inside the SavedModel's folder, so that the Pusher copies it to
# serving/<version>/ with the model it was converted from.
TFLITE_FILE = "model.tflite"
# Under this key of the Trainer's history.json: what the summary and report show.
HISTORY_KEY = "tflite"
MAX_ACCURACY_DROP = 0.005  # 0.5 point


def allowed_drop(examples: int) -> float:
    """Half a point, or one image where half a point is less than one (fewer
    than 200 images): a single borderline image flipping between float16
    and float32 is not a worse model."""
    return max(MAX_ACCURACY_DROP, 1 / max(examples, 1))


@dataclasses.dataclass(frozen=True)
class TfliteCheck:
    written: bool
    bytes: int
    accuracy: float
    savedmodel_accuracy: float
    examples: int
    quantization: str = "float16"
    reason: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _convert(saved_model_dir: str, quantization: str) -> bytes:
    """The SavedModel's `serving_image` signature (image in [0, 255] ->
    probabilities) as TFLite flatbuffer bytes. Read from the SavedModel just
    written, whose signatures are already traced: `from_keras_model` saved
    and reloaded the whole Keras model first (43 s, then 7 s through a
    module of its own; 2.5 s this way, docs/performance.md)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[features.IMAGE_SIGNATURE])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization != "dynamic":
        raise ValueError(f"TFLite quantization {quantization!r}: float16 or dynamic")
    return converter.convert()


class Classifier:
    """A TFLite model answering probabilities for a batch of decoded images."""

    def __init__(self, model: bytes | str):
        content = model if isinstance(model, bytes) else None
        path = None if content else model
        self.interpreter = tf.lite.Interpreter(model_content=content, model_path=path)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    @property
    def image_size(self) -> int:
        return int(self.input["shape"][1])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """float32 [n, side, side, 3] in [0, 255] -> [n, classes]."""
        out = []
        for image in images:  # the converted graph has a batch of one
            self.interpreter.set_tensor(self.input["index"], image[None].astype(np.float32))
            self.interpreter.invoke()
            out.append(self.interpreter.get_tensor(self.output["index"])[0].copy())
        return np.stack(out) if out else np.zeros([0, 0], np.float32)


def accuracies(
    model: Callable[[tf.Tensor], np.ndarray], lite: Classifier, batches: tf.data.Dataset
) -> tuple[float, float, int]:
    """(Keras accuracy, TFLite accuracy, examples) on the same (image, one-hot) batches."""
    right_keras = right_lite = count = 0
    for images, one_hot in batches:
        truth = np.argmax(one_hot.numpy(), axis=-1)
        right_keras += int(np.sum(np.argmax(model(images), axis=-1) == truth))
        right_lite += int(np.sum(np.argmax(lite(images.numpy()), axis=-1) == truth))
        count += len(truth)
    return right_keras / max(count, 1), right_lite / max(count, 1), count


def write_checked(
    served: Callable[[tf.Tensor], np.ndarray],
    validation_batches: tf.data.Dataset,
    model_dir: str,
    quantization: str = "float16",
) -> TfliteCheck:
    """Convert the SavedModel in `model_dir`, measure on the validation split
    against `served` (its traced `serving_image`: eager calls of the Keras
    model took 8 s more), write `model.tflite` beside it if within
    `allowed_drop` of the SavedModel's accuracy."""
    content = _convert(model_dir, quantization)
    keras_accuracy, lite_accuracy, count = accuracies(served, Classifier(content), validation_batches)
    drop = keras_accuracy - lite_accuracy
    allowed = allowed_drop(count)
    written = drop <= allowed + 1e-9  # exactly the allowance is within
    reason = (
        ""
        if written
        else (
            f"TFLite accuracy {lite_accuracy:.4f} is {drop * 100:.1f} points below "
            f"the SavedModel's {keras_accuracy:.4f} "
            f"(allowed {allowed * 100:.1f}): {TFLITE_FILE} not written"
        )
    )
    check = TfliteCheck(written, len(content), lite_accuracy, keras_accuracy, count, quantization, reason)
    if written:
        with tf.io.gfile.GFile(os.path.join(model_dir, TFLITE_FILE), "wb") as f:
            f.write(content)
    progress.say(
        reason
        or f"TFLite ({quantization}): {len(content) / 2**20:.2f} MiB, validation accuracy {lite_accuracy:.4f} "
        f"(SavedModel {keras_accuracy:.4f}, {count} images)"
    )
    return check
