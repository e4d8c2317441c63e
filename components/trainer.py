"""TFX Trainer `run_fn`: input pipeline, strategy, two-phase fit, export.

The exported SavedModel carries the Transform graph, so its signatures take
raw JPEG bytes (`serving_default`) or serialized tf.Examples
(`serving_examples`, used by the Evaluator) and return class probabilities,
ids and names: serving cannot drift from training.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from flowers import features, progress
from flowers.components import model as model_lib
from flowers.components.strategy import choose_strategy
from flowers.config import TRAINING_CONFIG_KEY, VALIDATION_FROM_TRAIN_KEY, TrainingConfig

log = logging.getLogger(__name__)
HISTORY_FILE = features.HISTORY_FILE
# Beside the SavedModel's folder: what a warm-started Trainer loads.
WEIGHTS_FILE = "weights.h5"
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


@dataclasses.dataclass(frozen=True)
class Split:
    dataset: tf.data.Dataset
    count: int  # examples in one pass


def input_dataset(*args, **kwargs) -> tf.data.Dataset:
    """`input_split`'s dataset alone."""
    return input_split(*args, **kwargs).dataset


def input_split(
    file_pattern: list[str],
    data_accessor: tfx.components.DataAccessor,
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

    count = count_examples(file_pattern) if not carve else int(raw.reduce(0, lambda n, b: n + tf.shape(b[features.CLASS_KEY])[0]))
    size = image_size(tft_output)
    image_bytes = size * size * 3
    in_memory = count * image_bytes <= cfg.cache_memory_mb * 2**20 or not cache_file
    progress.say(
        f"{'train' if training else 'validation'} examples: {count} "
        f"(decoded once, cached {'in memory' if in_memory else 'in ' + cache_file}, {count * image_bytes / 2**20:.0f} MiB)"
    )
    if carve:
        percent, validation = carve

        def keep(example):
            bucket = tf.strings.to_hash_bucket_fast(tf.reshape(example[features.IMAGE_KEY], []), 100)
            return bucket < percent if validation else bucket >= percent

        raw = raw.unbatch().filter(keep).batch(cfg.batch_size)
    dataset = raw.map(decode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    dataset = dataset.cache() if in_memory else dataset.cache(cache_file)
    if training:
        # A full shuffle when it fits the memory budget.
        buffer = max(1, min(count, cfg.cache_memory_mb * 2**20 // image_bytes))
        dataset = dataset.shuffle(buffer, seed=cfg.seed, reshuffle_each_iteration=True)

    def to_xy(images, classes):
        return tf.cast(images, tf.float32), tf.one_hot(classes, features.NUM_CLASSES)

    batches = dataset.batch(cfg.batch_size).map(to_xy, num_parallel_calls=tf.data.AUTOTUNE)
    return Split(batches.prefetch(tf.data.AUTOTUNE), count)


def fit(model: keras.Model, train: tf.data.Dataset, val: tf.data.Dataset, cfg: TrainingConfig, log_dir: str) -> dict:
    """Head-only phase, then fine-tuning of the backbone's top; the merged history.

    Each phase stops early and keeps its best epoch by eval accuracy; if
    fine-tuning never beats the head-only model, the head-only weights stay.
    """
    timer = EpochTimer()

    def callbacks(phase: str):
        stop = keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=cfg.early_stopping_patience, restore_best_weights=True
        )
        return stop, [
            stop,
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, cfg.early_stopping_patience - 1)),
            keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"),
            timer,
            EpochReport(phase, timer),
        ]

    stop, first_callbacks = callbacks("head")
    first = model.fit(train, validation_data=val, epochs=cfg.epochs, callbacks=first_callbacks, verbose=2)
    _report_stop("head", stop, first)
    history = {k: list(map(float, v)) for k, v in first.history.items()}
    if cfg.fine_tune_epochs > 0 and cfg.fine_tune_layers > 0:
        head_only = WeightsSnapshot(model)
        model_lib.unfreeze_top(model, cfg)
        done = len(first.epoch)
        stop, second_callbacks = callbacks("fine_tune")
        second = model.fit(
            train,
            validation_data=val,
            initial_epoch=done,
            epochs=done + cfg.fine_tune_epochs,
            callbacks=second_callbacks,
            verbose=2,
        )
        _report_stop("fine_tune", stop, second)
        for k, v in second.history.items():
            history.setdefault(k, []).extend(map(float, v))
        if max(second.history["val_accuracy"]) <= max(first.history.get("val_accuracy", [-1.0])):
            progress.say("fine-tuning did not beat the head-only model: keeping the head-only weights")
            head_only.restore(model)
    history["epoch_seconds"] = timer.seconds
    history["phase"] = ["head"] * len(first.epoch) + ["fine_tune"] * (len(history["loss"]) - len(first.epoch))
    return history


def _report_stop(phase: str, stop: keras.callbacks.EarlyStopping, fitted) -> None:
    scores = fitted.history.get("val_accuracy", [])
    if not scores:
        return
    best = fitted.epoch[scores.index(max(scores))] + 1
    if stop.stopped_epoch:
        progress.say(f"{phase}: early stop after epoch {stop.stopped_epoch + 1}; best epoch {best} (val_accuracy {max(scores):.4f})")
    else:
        progress.say(f"{phase}: best epoch {best} (val_accuracy {max(scores):.4f})")


class EpochReport(keras.callbacks.Callback):
    """One progress line per epoch: phase, epoch, loss, accuracies, seconds."""

    def __init__(self, phase: str, timer: "EpochTimer"):
        super().__init__()
        self.phase = phase
        self.timer = timer

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        progress.say(
            f"  {self.phase:<9} epoch {epoch + 1:>3}  loss {logs.get('loss', float('nan')):.4f}  "
            f"accuracy {logs.get('accuracy', float('nan')):.4f}  val_accuracy {logs.get('val_accuracy', float('nan')):.4f}  "
            f"{self.timer.seconds[-1] if self.timer.seconds else 0:.1f} s"
        )


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
        progress.say(f"warm start: the last blessed model does not fit this configuration ({error}); starting from ImageNet")
        return
    progress.say(f"warm start: from {weights}")


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    cfg = training_config(fn_args)
    keras.utils.set_random_seed(cfg.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    strategy = choose_strategy(cfg.tpu)
    cache = os.path.join(fn_args.model_run_dir, "decoded-cache")
    percent = fn_args.custom_config.get(VALIDATION_FROM_TRAIN_KEY)
    train = input_split(
        fn_args.train_files, fn_args.data_accessor, tft_output, cfg, True, f"{cache}-train", (percent, False) if percent else None
    )
    val = input_split(
        fn_args.eval_files, fn_args.data_accessor, tft_output, cfg, False, f"{cache}-validation", (percent, True) if percent else None
    )
    with strategy.scope():
        model = model_lib.build_model(cfg, image_size(tft_output))
        if fn_args.base_model:
            warm_start(model, os.path.join(os.path.dirname(fn_args.base_model), WEIGHTS_FILE))
    history = fit(model, train.dataset, val.dataset, cfg, fn_args.model_run_dir)
    history["train_examples"], history["validation_examples"] = train.count, val.count
    export(model, tft_output, fn_args.serving_model_dir)
    save_weights(model, os.path.join(os.path.dirname(fn_args.serving_model_dir), WEIGHTS_FILE))
    for folder in (fn_args.model_run_dir, os.path.dirname(fn_args.serving_model_dir)):
        with tf.io.gfile.GFile(os.path.join(folder, HISTORY_FILE), "w") as f:
            json.dump(history, f, indent=1)
