"""TFX Trainer `run_fn`: input pipeline, strategy, two-phase fit, export.

The exported SavedModel carries the Transform graph, so its signatures take
raw JPEG bytes (`serving_default`) or serialized tf.Examples
(`serving_examples`, used by the Evaluator) and return class probabilities,
ids and names: serving cannot drift from training.
"""
from __future__ import annotations

import json
import logging
import os
import time

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from flowers import features
from flowers.components import model as model_lib
from flowers.components.strategy import choose_strategy
from flowers.config import TRAINING_CONFIG_KEY, TrainingConfig

log = logging.getLogger(__name__)
HISTORY_FILE = "history.json"
# Transformed images are cached as uint8: whole-number pixel values (see
# components/transform.py), so the cache is exact at a quarter of float32.
_CACHE_DTYPE = tf.uint8


def training_config(fn_args: tfx.components.FnArgs) -> TrainingConfig:
    """The pipeline's TrainingConfig, with any tuned hyperparameters applied."""
    cfg = TrainingConfig.from_json(fn_args.custom_config[TRAINING_CONFIG_KEY])
    if fn_args.hyperparameters:
        tuned = fn_args.hyperparameters.get("values", {})
        cfg = cfg.with_values(tuned)
        log.info("using tuned hyperparameters %s", tuned)
    return cfg


def image_size(tft_output: tft.TFTransformOutput) -> int:
    """The side of the images the Transform graph produces: the model's input
    is built from it, so no setting can make the two disagree."""
    shape = tft_output.transformed_feature_spec()[features.TRANSFORMED_IMAGE_KEY].shape
    return int(shape[0])


def count_examples(file_pattern: list[str]) -> int:
    """Records in ExampleGen's (gzipped) shards: a read without decoding."""
    files = [f for pattern in file_pattern for f in tf.io.gfile.glob(pattern)]
    return int(tf.data.TFRecordDataset(files, compression_type="GZIP").reduce(0, lambda n, _: n + 1))


def input_dataset(
    file_pattern: list[str],
    data_accessor: tfx.components.DataAccessor,
    tft_output: tft.TFTransformOutput,
    cfg: TrainingConfig,
    training: bool,
    cache_file: str = "",
) -> tf.data.Dataset:
    """Batches of ([0, 255] image, one-hot class), decoded by the Transform graph.

    Each JPEG is decoded and cropped once per run: the decoded images are
    cached (in memory up to `cfg.cache_memory_mb`, else in `cache_file`), and
    every epoch after the first reads the cache. Shuffling and the model's
    augmentation still change every epoch.
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

    count = count_examples(file_pattern)
    size = image_size(tft_output)
    image_bytes = size * size * 3
    in_memory = count * image_bytes <= cfg.cache_memory_mb * 2**20 or not cache_file
    log.info(
        "%s: %d examples, decoded once and cached %s (%.0f MiB)",
        "train" if training else "validation", count, "in memory" if in_memory else f"in {cache_file}",
        count * image_bytes / 2**20,
    )
    dataset = raw.map(decode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    dataset = dataset.cache() if in_memory else dataset.cache(cache_file)
    if training:
        # A full shuffle when it fits the memory budget.
        buffer = max(1, min(count, cfg.cache_memory_mb * 2**20 // image_bytes))
        dataset = dataset.shuffle(buffer, seed=cfg.seed, reshuffle_each_iteration=True)

    def to_xy(images, classes):
        return tf.cast(images, tf.float32), tf.one_hot(classes, features.NUM_CLASSES)

    return dataset.batch(cfg.batch_size).map(to_xy, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def fit(model: keras.Model, train: tf.data.Dataset, val: tf.data.Dataset, cfg: TrainingConfig, log_dir: str) -> dict:
    """Head-only phase, then fine-tuning of the backbone's top; the merged history.

    Each phase stops early and keeps its best epoch by eval accuracy; if
    fine-tuning never beats the head-only model, the head-only weights stay.
    """
    timer = EpochTimer()

    def callbacks():
        return [
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=cfg.early_stopping_patience, restore_best_weights=True
            ),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, cfg.early_stopping_patience - 1)),
            keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"),
            timer,
        ]

    first = model.fit(train, validation_data=val, epochs=cfg.epochs, callbacks=callbacks(), verbose=2)
    history = {k: list(map(float, v)) for k, v in first.history.items()}
    if cfg.fine_tune_epochs > 0 and cfg.fine_tune_layers > 0:
        head_only = WeightsSnapshot(model)
        model_lib.unfreeze_top(model, cfg)
        done = len(first.epoch)
        second = model.fit(
            train,
            validation_data=val,
            initial_epoch=done,
            epochs=done + cfg.fine_tune_epochs,
            callbacks=callbacks(),
            verbose=2,
        )
        for k, v in second.history.items():
            history.setdefault(k, []).extend(map(float, v))
        if max(second.history["val_accuracy"]) <= max(first.history.get("val_accuracy", [-1.0])):
            log.info("fine-tuning did not beat the head-only model; keeping the head-only weights")
            head_only.restore(model)
    history["epoch_seconds"] = timer.seconds
    history["phase"] = ["head"] * len(first.epoch) + ["fine_tune"] * (len(history["loss"]) - len(first.epoch))
    return history


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of each epoch (training and its evaluation), across phases."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self._start, 2))


class WeightsSnapshot:
    """A copy of a model's weights, keyed by variable so that restoring never
    depends on the order of model.weights."""

    def __init__(self, model: keras.Model):
        self.values = {v.ref(): v.numpy() for v in model.weights}

    def restore(self, model: keras.Model) -> None:
        for v in model.weights:
            v.assign(self.values[v.ref()])


def export(model: keras.Model, tft_output: tft.TFTransformOutput, path: str) -> None:
    """Save with the Transform graph inside and both serving signatures."""
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
    model.save(path, save_format="tf", signatures=signatures)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    cfg = training_config(fn_args)
    keras.utils.set_random_seed(cfg.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    strategy = choose_strategy(cfg.tpu)
    cache = os.path.join(fn_args.model_run_dir, "decoded-cache")
    train = input_dataset(fn_args.train_files, fn_args.data_accessor, tft_output, cfg, True, f"{cache}-train")
    val = input_dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, cfg, False, f"{cache}-validation")
    with strategy.scope():
        model = model_lib.build_model(cfg, image_size(tft_output))
    history = fit(model, train, val, cfg, fn_args.model_run_dir)
    export(model, tft_output, fn_args.serving_model_dir)
    for folder in (fn_args.model_run_dir, os.path.dirname(fn_args.serving_model_dir)):
        with tf.io.gfile.GFile(os.path.join(folder, HISTORY_FILE), "w") as f:
            json.dump(history, f, indent=1)
