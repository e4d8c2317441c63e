"""The Trainer's (and the Tuner's) input pipeline: raw examples decoded by
the Transform graph once per run, cached, shuffled and batched."""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor  # (not tfx.v1: pipeline/pipeline.py says why)
from tfx_bsl.public import tfxio

from flowers import features, progress
from flowers.config import TrainingConfig

# Transformed images are cached as uint8: whole-number pixel values (see
# components/transform.py), so the cache is exact at a quarter of float32.
_CACHE_DTYPE = tf.uint8


def image_size(tft_output: tft.TFTransformOutput) -> int:
    """The side of the images the Transform graph produces: the model's input
    is built from it, so no setting can make the two disagree."""
    shape = tft_output.transformed_feature_spec()[features.TRANSFORMED_IMAGE_KEY].shape
    return int(shape[0])


def count_examples(file_pattern: list[str]) -> int:
    """Records in ExampleGen's (gzipped) shards: a read without decoding."""
    files = [f for pattern in file_pattern for f in tf.io.gfile.glob(pattern)]
    return int(tf.data.TFRecordDataset(files, compression_type="GZIP").reduce(0, lambda n, _: n + 1))


@dataclasses.dataclass(frozen=True)
class Split:
    dataset: tf.data.Dataset
    count: int  # examples in one pass
    decoded: tf.data.Dataset  # the cached (uint8 image, class id) pairs, unbatched


def combined(first: Split, second: Split, cfg: TrainingConfig) -> Split:
    """Both splits as one shuffled training set, read from the caches the
    first fit filled (no JPEG is decoded again)."""
    decoded = first.decoded.concatenate(second.decoded)
    count = first.count + second.count
    return Split(_batches(decoded, count, cfg, training=True), count, decoded)


def input_dataset(*args, **kwargs) -> tf.data.Dataset:
    """`input_split`'s dataset alone."""
    return input_split(*args, **kwargs).dataset


def input_split(
    file_pattern: list[str],
    data_accessor: DataAccessor,
    tft_output: tft.TFTransformOutput,
    cfg: TrainingConfig,
    training: bool,
    cache_file: str = "",
    carve: tuple[int, bool] | None = None,
) -> Split:
    """Batches of ([0, 255] image, one-hot class), decoded by the Transform graph.

    Each JPEG is decoded and cropped once per run: the decoded images are
    cached (in memory up to `cfg.cache_memory_mb`, else in `cache_file`), and
    every epoch after the first reads the cache. Shuffling and the model's
    augmentation still change every epoch. `carve` = (percent, validation):
    keep only the examples whose image hashes into the first `percent` of
    100 buckets (validation) or only the others (train).
    """
    schema = tft_output.raw_metadata.schema
    wanted = [f for f in schema.feature if f.name in (features.IMAGE_KEY, features.CLASS_KEY)]
    del schema.feature[:]
    schema.feature.extend(wanted)
    raw = data_accessor.tf_dataset_factory(
        file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=cfg.batch_size, num_epochs=1, shuffle=False), schema
    )
    tft_layer = tft_output.transform_features_layer()

    def decode(batch):
        xf = tft_layer(batch)
        return tf.cast(xf[features.TRANSFORMED_IMAGE_KEY], _CACHE_DTYPE), xf[features.TRANSFORMED_CLASS_KEY]

    count = (
        count_examples(file_pattern)
        if not carve
        else int(raw.reduce(0, lambda n, b: n + tf.shape(b[features.CLASS_KEY])[0]))
    )
    size = image_size(tft_output)
    image_bytes = size * size * 3
    in_memory = count * image_bytes <= cfg.cache_memory_mb * 2**20 or not cache_file
    progress.say(
        f"{'train' if training else 'validation'} examples: {count} "
        f"(decoded once, cached {'in memory' if in_memory else 'in ' + cache_file}, "
        f"{count * image_bytes / 2**20:.0f} MiB)"
    )
    if carve:
        percent, validation = carve

        def keep(example):
            bucket = tf.strings.to_hash_bucket_fast(tf.reshape(example[features.IMAGE_KEY], []), 100)
            return bucket < percent if validation else bucket >= percent

        raw = raw.unbatch().filter(keep).batch(cfg.batch_size)
    dataset = raw.map(decode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    dataset = dataset.cache() if in_memory else dataset.cache(cache_file)
    return Split(_batches(dataset, count, cfg, training), count, dataset)


def _batches(decoded: tf.data.Dataset, count: int, cfg: TrainingConfig, training: bool) -> tf.data.Dataset:
    """Float batches with one-hot classes; shuffled each epoch in training."""
    image_bytes = int(decoded.element_spec[0].shape.num_elements() or 1)
    if training:
        # A full shuffle when it fits the memory budget.
        buffer = max(1, min(count, cfg.cache_memory_mb * 2**20 // image_bytes))
        decoded = decoded.shuffle(buffer, seed=cfg.seed, reshuffle_each_iteration=True)

    def to_xy(images, classes):
        return tf.cast(images, tf.float32), tf.one_hot(classes, features.NUM_CLASSES)

    batches = decoded.batch(cfg.batch_size).map(to_xy, num_parallel_calls=tf.data.AUTOTUNE)
    if training and cfg.mixup > 0:
        batches = batches.map(lambda x, y: mixup(x, y, cfg.mixup), num_parallel_calls=tf.data.AUTOTUNE)
    if training and cfg.cutmix > 0:
        batches = batches.map(lambda x, y: cutmix(x, y, cfg.cutmix), num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def mixup(images: tf.Tensor, labels: tf.Tensor, alpha: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Each example blended with another of its batch, images and one-hot
    labels alike, by a weight drawn from Beta(alpha, alpha) (Zhang et al.,
    mixup, 2018); the larger share stays the example's own."""
    n = tf.shape(images)[0]
    a, b = tf.random.gamma([n], alpha), tf.random.gamma([n], alpha)
    weight = tf.maximum(a, b) / (a + b)
    other = tf.random.shuffle(tf.range(n))
    w = weight[:, None]
    mixed_labels = w * labels + (1 - w) * tf.gather(labels, other)
    w = tf.reshape(weight, [-1, 1, 1, 1])
    return w * images + (1 - w) * tf.gather(images, other), mixed_labels


def cutmix(images: tf.Tensor, labels: tf.Tensor, alpha: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Each example with a box of another of its batch pasted in, the
    labels mixed by the box's share of the image (Yun et al., CutMix, 2019).
    The box covers 1 - w of the image, w from Beta(alpha, alpha), centred at
    a random point and clipped at the edges (the share is what remains)."""
    n, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    a, b = tf.random.gamma([n], alpha), tf.random.gamma([n], alpha)
    side = tf.sqrt(1.0 - a / (a + b))  # the box's side, as a share of the image's

    def span(length):
        cut = tf.cast(side * tf.cast(length, tf.float32), tf.int32)
        centre = tf.random.uniform([n], 0, length, dtype=tf.int32)
        low, high = tf.maximum(centre - cut // 2, 0), tf.minimum(centre + cut - cut // 2, length)
        at = tf.range(length)[None, :]
        return (at >= low[:, None]) & (at < high[:, None])

    box = span(height)[:, :, None] & span(width)[:, None, :]  # [n, height, width]
    other = tf.random.shuffle(tf.range(n))
    pasted = tf.where(box[..., None], tf.gather(images, other), images)
    own = 1.0 - tf.reduce_mean(tf.cast(box, tf.float32), axis=[1, 2])[:, None]
    return pasted, own * labels + (1.0 - own) * tf.gather(labels, other)
