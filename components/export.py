"""What the Trainer leaves behind: the SavedModel with the Transform graph
inside (raw JPEG bytes in, class names and probabilities out), and the
weights file a later run warm-starts from.

The exported SavedModel's signatures take raw JPEG bytes (`serving_default`)
or serialized tf.Examples (`serving_examples`, used by the Evaluator), so
serving cannot drift from training.
"""

from __future__ import annotations

import os
import tempfile

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from flowers import features, progress
from flowers.components import model as model_lib

# Beside the SavedModel's folder: what a warm-started Trainer loads.
WEIGHTS_FILE = "weights.h5"


def export(model: keras.Model, tft_output: tft.TFTransformOutput, path: str) -> None:
    """Save with the Transform graph inside and both serving signatures.

    Without each layer's traced call (`save_traces=False`: 12.7 s -> 3.9 s
    for a MobileNetV2 export here): everything that reads the model (serving,
    predict, TFMA, the TFLite check) calls its signatures; loading it back as
    a Keras model takes `custom_objects` for our layers (components/model.py).
    """
    model.tft_layer = tft_output.transform_features_layer()
    image_spec = {features.IMAGE_KEY: tft_output.raw_feature_spec()[features.IMAGE_KEY]}
    class_names = tf.constant(features.CLASS_NAMES)

    def predict(jpegs):
        xf = model.tft_layer({features.IMAGE_KEY: tf.reshape(jpegs, [-1, 1])})
        probabilities = model(xf[features.TRANSFORMED_IMAGE_KEY], training=False)
        ids = tf.argmax(probabilities, axis=-1)
        return {
            features.PROBABILITIES_OUTPUT: probabilities,
            features.CLASS_ID_OUTPUT: ids,
            features.CLASS_NAME_OUTPUT: tf.gather(class_names, ids),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_BYTES_INPUT)])
    def serve_bytes(image_bytes):
        return predict(image_bytes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_EXAMPLES_INPUT)])
    def serve_examples(examples):
        parsed = tf.io.parse_example(examples, image_spec)
        return predict(parsed[features.IMAGE_KEY])

    signatures = {
        features.BYTES_SIGNATURE: serve_bytes.get_concrete_function(),
        features.EXAMPLES_SIGNATURE: serve_examples.get_concrete_function(),
    }
    model.save(path, save_format="tf", signatures=signatures, save_traces=False)


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
