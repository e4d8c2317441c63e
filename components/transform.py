"""TFT `preprocessing_fn`: raw JPEG bytes to normalised model input.

Transform runs with `materialize=False`: the graph is saved and applied inside
the Trainer's input pipeline and the exported model, so decoded float images
(about 30x the JPEG bytes) are never stored.
"""
from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf

from flowers.components.images import decode_and_crop, normalize
from flowers.pipeline import features


def preprocessing_fn(inputs: Mapping[str, tf.Tensor], custom_config: Mapping[str, Any]) -> dict[str, tf.Tensor]:
    size = int(custom_config["image_size"])
    images = tf.map_fn(
        lambda jpeg: normalize(decode_and_crop(jpeg, size)),
        tf.reshape(inputs[features.IMAGE_KEY], [-1]),
        fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
    )
    return {
        features.TRANSFORMED_IMAGE_KEY: images,
        features.TRANSFORMED_CLASS_KEY: tf.reshape(inputs[features.CLASS_KEY], [-1]),
    }
