"""Image ops shared by the converter and the Transform graph, so that photos
are cropped the same way when shards are made and when a model serves.
(The model normalises its [0, 255] input itself.)"""

from __future__ import annotations

import tensorflow as tf


def decode_and_crop(image_bytes: tf.Tensor, size: int) -> tf.Tensor:
    """Decode one image, resize its short side to `size`, centre-crop a square.

    Returns float32 RGB values in [0, 255], shape [size, size, 3].
    """
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(size, tf.float32) / tf.reduce_min(shape)
    # ceil keeps the short side at least `size` after rounding.
    resized = tf.cast(tf.math.ceil(shape * scale), tf.int32)
    image = tf.image.resize(image, resized, antialias=True)
    image = tf.image.resize_with_crop_or_pad(image, size, size)
    return tf.clip_by_value(image, 0.0, 255.0)


def thumbnail(image_bytes: bytes, px: int) -> bytes:
    """A JPEG of the image within px x px (aspect kept): what a report shows."""
    decoded = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    small = tf.image.resize(decoded, [px, px], preserve_aspect_ratio=True)
    return tf.io.encode_jpeg(tf.cast(tf.round(small), tf.uint8), quality=85).numpy()
