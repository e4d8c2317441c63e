"""TFT `preprocessing_fn`: raw JPEG bytes to the model's input image.

Transform runs with `materialize=False`: the graph is saved and applied inside
the Trainer's input pipeline and the exported model, so decoded images (about
30x the JPEG bytes as floats) are never stored. The output is the cropped
image with whole-number pixel values in [0, 255] (float32, since TFT stores
no uint8): the Trainer caches it losslessly as uint8, and the model itself
normalises it, so training and serving see the very same values.
"""

from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf

from flowers import features
from flowers.config import IMAGE_SIZE_KEY
from flowers.images import decode_and_crop


def preprocessing_fn(inputs: Mapping[str, tf.Tensor], custom_config: Mapping[str, Any]) -> dict[str, tf.Tensor]:
    size = int(custom_config[IMAGE_SIZE_KEY])
    images = tf.map_fn(
        lambda jpeg: tf.round(decode_and_crop(jpeg, size)),
        tf.reshape(inputs[features.IMAGE_KEY], [-1]),
        fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
    )
    return {
        features.TRANSFORMED_IMAGE_KEY: images,
        features.TRANSFORMED_CLASS_KEY: tf.reshape(inputs[features.CLASS_KEY], [-1]),
    }
