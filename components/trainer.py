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

from flowers.components import model as model_lib
from flowers.components.strategy import choose_strategy
from flowers.pipeline import features
from flowers.pipeline.config import TrainingConfig

log = logging.getLogger(__name__)
HISTORY_FILE = "history.json"
TRAINING_CONFIG_KEY = "training"
# custom_config key of the Tuner's number of trials.
TRIALS_KEY = "trials"


def training_config(fn_args: tfx.components.FnArgs) -> TrainingConfig:
    """The pipeline's TrainingConfig, with any tuned hyperparameters applied."""
    cfg = TrainingConfig.from_json(fn_args.custom_config[TRAINING_CONFIG_KEY])
    if fn_args.hyperparameters:
        tuned = fn_args.hyperparameters.get("values", {})
        cfg = cfg.with_values(tuned)
        log.info("using tuned hyperparameters %s", tuned)
    return cfg


def input_dataset(
    file_pattern: list[str],
    data_accessor: tfx.components.DataAccessor,
    tft_output: tft.TFTransformOutput,
    cfg: TrainingConfig,
    training: bool,
) -> tf.data.Dataset:
    """Batches of (normalised image, one-hot class), decoded by the Transform graph."""
    schema = tft_output.raw_metadata.schema
    wanted = [f for f in schema.feature if f.name in (features.IMAGE_KEY, features.CLASS_KEY)]
    del schema.feature[:]
    schema.feature.extend(wanted)
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=cfg.batch_size, num_epochs=1, shuffle=training, shuffle_seed=cfg.seed
        ),
        schema,
    )
    tft_layer = tft_output.transform_features_layer()

    def to_xy(raw):
        xf = tft_layer(raw)
        label = tf.one_hot(xf[features.TRANSFORMED_CLASS_KEY], features.NUM_CLASSES)
        return xf[features.TRANSFORMED_IMAGE_KEY], label

    return dataset.map(to_xy, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


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
        head_only = _snapshot(model)
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
            _restore(model, head_only)
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


def _snapshot(model: keras.Model) -> dict:
    # Keyed by variable, so restoring never depends on the order of model.weights.
    return {v.ref(): v.numpy() for v in model.weights}


def _restore(model: keras.Model, snapshot: dict) -> None:
    for v in model.weights:
        v.assign(snapshot[v.ref()])


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
    train = input_dataset(fn_args.train_files, fn_args.data_accessor, tft_output, cfg, training=True)
    val = input_dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, cfg, training=False)
    with strategy.scope():
        model = model_lib.build_model(cfg)
    history = fit(model, train, val, cfg, fn_args.model_run_dir)
    export(model, tft_output, fn_args.serving_model_dir)
    for folder in (fn_args.model_run_dir, os.path.dirname(fn_args.serving_model_dir)):
        with tf.io.gfile.GFile(os.path.join(folder, HISTORY_FILE), "w") as f:
            json.dump(history, f, indent=1)
