"""The transfer model: an ImageNet MobileNetV2 backbone and a softmax head.

Nothing here knows about data files; inputs are square RGB images with
values in [0, 255] (what the Transform graph gives), normalised inside the
model.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from flowers import autograph, features
from flowers import weights as bundled_weights
from flowers.config import TrainingConfig

autograph.leave_tf_keras_alone()  # every traced step of the model: flowers/autograph.py


def build_model(cfg: TrainingConfig, image_size: int) -> keras.Model:
    """Frozen backbone + head, compiled for the first (head-only) phase."""
    shape = (image_size, image_size, 3)
    inputs = keras.Input(shape=shape, name=features.TRANSFORMED_IMAGE_KEY)
    # [0, 255] to [-1, 1], the range MobileNetV2's ImageNet weights expect.
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="normalize")(inputs)
    x = augmentation(cfg)(x) if cfg.augment else x
    backbone = keras.applications.MobileNetV2(
        input_shape=shape,
        alpha=cfg.alpha,
        include_top=False,
        weights=bundled_weights.resolve(cfg.weights, cfg.alpha),
    )
    backbone.trainable = False
    # training=False keeps BatchNormalization in inference mode, also once the
    # top of the backbone is unfrozen for fine-tuning.
    x = backbone(x, training=False)
    if cfg.head == "flatten":
        x = keras.layers.Flatten()(x)
    else:
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dropout(cfg.dropout, seed=cfg.seed)(x)
    outputs = keras.layers.Dense(features.NUM_CLASSES, activation="softmax", name=features.PROBABILITIES_OUTPUT)(x)
    model = keras.Model(inputs, outputs, name=f"flowers_{cfg.head}")
    _compile(model, cfg, cfg.learning_rate)
    return model


def augmentation(cfg: TrainingConfig) -> keras.Sequential:
    """Random flips, rotation, zoom/crop and small colour changes; active only
    in training (Keras preprocessing layers pass inputs through at inference)."""
    seed = cfg.seed
    layers = [keras.layers.RandomFlip("horizontal", seed=seed)]
    if cfg.augment_rotation > 0:
        layers.append(keras.layers.RandomRotation(cfg.augment_rotation, fill_mode="reflect", seed=seed))
    if cfg.augment_zoom > 0:
        # Zoom in or out by up to the factor: objects keep their test-time
        # scale on average.
        layers.append(keras.layers.RandomZoom(cfg.augment_zoom, fill_mode="reflect", seed=seed))
    if cfg.augment_color > 0:
        layers.append(keras.layers.RandomBrightness(cfg.augment_color, value_range=(-1.0, 1.0), seed=seed))
        layers.append(RandomContrast(cfg.augment_color, seed=seed))
    if cfg.augment_degrade > 0:
        layers.append(RandomDegrade(cfg.augment_degrade, seed=seed))
    return keras.Sequential(layers, name="augmentation")


class RandomDegrade(keras.layers.Layer):
    """What phones, chat apps and thumbnails do to photos, on a random
    `rate` of the training images each: downscale (to 40-100% of the side)
    and back, JPEG recompression (quality 40-95), or a mild blur. For images
    in [-1, 1]; only in training."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed

    def call(self, images, training=None):
        if not training:
            return images
        return tf.map_fn(self._one, images, fn_output_signature=images.dtype)

    def _one(self, image):
        side = tf.shape(image)[:2]
        pick = tf.random.uniform([3], seed=self.seed)
        scale = tf.random.uniform([], 0.4, 1.0, seed=self.seed)
        small = tf.maximum(tf.cast(tf.cast(side, tf.float32) * scale, tf.int32), 8)
        image = tf.cond(
            pick[0] < self.rate,
            lambda: tf.image.resize(tf.image.resize(image, small, antialias=True), side),
            lambda: image,
        )
        unit = (image + 1.0) / 2.0
        quality = tf.random.uniform([], 40, 96, dtype=tf.int32, seed=self.seed)
        unit = tf.cond(pick[1] < self.rate, lambda: tf.image.adjust_jpeg_quality(unit, quality), lambda: unit)
        kernel = tf.constant([1.0, 2.0, 1.0]) / 4.0
        kernel = tf.tile((kernel[:, None] * kernel[None, :])[:, :, None, None], [1, 1, 3, 1])
        blurred = lambda: tf.nn.depthwise_conv2d(unit[None], kernel, [1, 1, 1, 1], "SAME")[0]  # noqa: E731
        unit = tf.cond(pick[2] < self.rate, blurred, lambda: unit)
        return tf.reshape(unit * 2.0 - 1.0, tf.shape(image))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class RandomContrast(keras.layers.Layer):
    """Scale each image's deviation from its mean by a random factor in
    [1 - factor, 1 + factor], for images in [-1, 1]; only in training.

    `keras.layers.RandomContrast` clips its output to [0, 255], which on
    [-1, 1] inputs zeroes every negative value: training images would no
    longer look like the ones the model is evaluated on.
    """

    def __init__(self, factor: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
        self.seed = seed

    def call(self, images, training=None):
        if not training:
            return images
        scale = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], 1.0 - self.factor, 1.0 + self.factor, seed=self.seed)
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        return tf.clip_by_value((images - mean) * scale + mean, -1.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


def backbone_of(model: keras.Model) -> keras.Model:
    return next(
        layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name.startswith("mobilenet")
    )


def freeze_backbone(model: keras.Model, cfg: TrainingConfig) -> None:
    """Back to the first phase: the whole backbone frozen, the head's
    learning rate; recompiles (a fresh optimizer)."""
    backbone_of(model).trainable = False
    _compile(model, cfg, cfg.learning_rate)


def unfreeze_top(model: keras.Model, cfg: TrainingConfig) -> None:
    """Second phase: train the top `fine_tune_layers` of the backbone (not its
    BatchNormalization layers) at `fine_tune_learning_rate`; recompiles."""
    backbone = backbone_of(model)
    backbone.trainable = True
    cut = len(backbone.layers) - cfg.fine_tune_layers
    for i, layer in enumerate(backbone.layers):
        layer.trainable = i >= cut and not isinstance(layer, keras.layers.BatchNormalization)
    _compile(model, cfg, cfg.fine_tune_learning_rate)


def _compile(model: keras.Model, cfg: TrainingConfig, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
