"""What the Trainer leaves behind: the SavedModel with the Transform graph
inside (raw JPEG bytes in, class names and probabilities out), and the
weights file a later run warm-starts from.

The exported SavedModel's signatures take raw JPEG bytes (`serving_default`)
or serialized tf.Examples (`serving_examples`, used by the Evaluator), so
serving cannot drift from training; `serving_image` takes the Transform
step's output (what the TFLite file is converted from).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from flowers import features, progress
from flowers.components import model as model_lib

# Beside the SavedModel's folder: what a warm-started Trainer loads.
WEIGHTS_FILE = "weights.h5"


class Served(tf.Module):
    """What the SavedModel holds: the model's variables, the Transform graph
    and three signatures. Each signature calls the one below it as a
    concrete function (a `tf.function` called inside another is traced
    again), so the model and the Transform graph are traced once; without
    autograph (nothing in them branches on tensors); and not in Keras's
    SavedModel format, which traced every layer and wrote Keras metadata no
    reader uses (docs/performance.md). Nothing loads it back as a Keras
    model; the warm start reads `WEIGHTS_FILE`. With `flip`, `serving_image`
    (so every signature, and the TFLite file converted from it) averages
    each image's probabilities with its mirror image's."""

    def __init__(self, model: keras.Model, tft_output: tft.TFTransformOutput, flip: bool = False):
        super().__init__()
        self.model_variables = list(model.variables)  # tracked, so that the save writes them
        self.tft_layer = tft_output.transform_features_layer()
        image_spec = {features.IMAGE_KEY: tft_output.raw_feature_spec()[features.IMAGE_KEY]}
        class_names = tf.constant(features.CLASS_NAMES)
        side = [None, *model.inputs[0].shape[1:]]

        def serve_image(images):
            probabilities = model(images, training=False)
            if flip:
                probabilities = (probabilities + model(tf.image.flip_left_right(images), training=False)) / 2
            return {features.PROBABILITIES_OUTPUT: probabilities}

        self.serve_image = _traced(serve_image, tf.TensorSpec(side, tf.float32, name=features.TRANSFORMED_IMAGE_KEY))

        def serve_bytes(image_bytes):
            xf = self.tft_layer({features.IMAGE_KEY: tf.reshape(image_bytes, [-1, 1])})
            probabilities = self.serve_image(xf[features.TRANSFORMED_IMAGE_KEY])[features.PROBABILITIES_OUTPUT]
            ids = tf.argmax(probabilities, axis=-1)
            return {
                features.PROBABILITIES_OUTPUT: probabilities,
                features.CLASS_ID_OUTPUT: ids,
                features.CLASS_NAME_OUTPUT: tf.gather(class_names, ids),
            }

        self.serve_bytes = _traced(serve_bytes, tf.TensorSpec([None], tf.string, name=features.SERVING_BYTES_INPUT))

        def serve_examples(examples):
            parsed = tf.io.parse_example(examples, image_spec)
            return self.serve_bytes(tf.reshape(parsed[features.IMAGE_KEY], [-1]))

        self.serve_examples = _traced(
            serve_examples, tf.TensorSpec([None], tf.string, name=features.SERVING_EXAMPLES_INPUT)
        )

    def signatures(self) -> dict:
        return {
            features.BYTES_SIGNATURE: self.serve_bytes,
            features.EXAMPLES_SIGNATURE: self.serve_examples,
            features.IMAGE_SIGNATURE: self.serve_image,
        }

    def probabilities(self, images: tf.Tensor) -> np.ndarray:
        """[n, side, side, 3] images in [0, 255] -> [n, classes], as served."""
        return self.serve_image(images)[features.PROBABILITIES_OUTPUT].numpy()


def _traced(fn, spec: tf.TensorSpec):
    return tf.function(fn, input_signature=[spec], autograph=False).get_concrete_function()


def export(model: keras.Model, tft_output: tft.TFTransformOutput, path: str, flip: bool = False) -> Served:
    """Save with the Transform graph inside and the serving signatures; the
    saved module, whose `serve_image` the TFLite check calls. `flip`: every
    signature averages the probabilities of each image and its mirror image
    (`training.test_time_flip`)."""
    served = Served(model, tft_output, flip)
    tf.saved_model.save(served, path, signatures=served.signatures())
    return served


def save_weights(model: keras.Model, path: str) -> None:
    """The weights a later run warm-starts from. HDF5 keeps each layer's
    weights in its trainable-first order, so they are saved with the backbone
    frozen, as every model is built: fine-tuned ones load too."""
    model_lib.backbone_of(model).trainable = False
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, WEIGHTS_FILE)
        model.save_weights(local)
        tf.io.gfile.copy(local, path, overwrite=True)


def warm_start(model: keras.Model, weights: str) -> None:
    """Start from the last blessed model's weights when they fit this model."""
    if not tf.io.gfile.exists(weights):
        progress.say(f"warm start: {weights} not found; starting from ImageNet")
        return
    try:
        with tempfile.TemporaryDirectory() as tmp:  # h5py reads local files only (weights may be on gs://)
            local = os.path.join(tmp, WEIGHTS_FILE)
            tf.io.gfile.copy(weights, local)
            model.load_weights(local)
    except (ValueError, KeyError) as error:  # another backbone, head or image size
        progress.say(
            f"warm start: the last blessed model does not fit this configuration ({error}); starting from ImageNet"
        )
        return
    progress.say(f"warm start: from {weights}")
