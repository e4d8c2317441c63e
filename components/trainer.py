"""TFX Trainer `run_fn`: a short orchestration of named steps (the input
pipeline in inputs.py, fitting in fit.py, the SavedModel and warm-start
weights in export.py)."""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs  # (not tfx.v1: pipeline/pipeline.py says why)

from flowers import features
from flowers.components import export, inputs, names, tflite
from flowers.components import model as model_lib
from flowers.components.fit import WeightsSnapshot, final_fit, fit
from flowers.components.strategy import choose_strategy
from flowers.config import TRAINING_CONFIG_KEY, VALIDATION_FROM_TRAIN_KEY, TrainingConfig

log = logging.getLogger(__name__)


def training_config(fn_args: FnArgs) -> TrainingConfig:
    """The pipeline's TrainingConfig, with any tuned hyperparameters applied."""
    cfg = TrainingConfig.from_json(fn_args.custom_config[TRAINING_CONFIG_KEY])
    if fn_args.hyperparameters:
        tuned = fn_args.hyperparameters.get("values", {})
        cfg = cfg.with_values(tuned)
        log.info("using tuned hyperparameters %s", tuned)
    return cfg


def run_fn(fn_args: FnArgs) -> None:
    cfg = training_config(fn_args)
    keras.utils.set_random_seed(cfg.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    train, val = _splits(fn_args, tft_output, cfg)
    with choose_strategy(cfg.tpu).scope():
        model = model_lib.build_model(cfg, inputs.image_size(tft_output))
        if fn_args.base_model:
            export.warm_start(model, os.path.join(os.path.dirname(fn_args.base_model), export.WEIGHTS_FILE))
    start = WeightsSnapshot(model)
    history = fit(model, train.dataset, val.dataset, cfg, fn_args.model_run_dir, train.count)
    history["train_examples"], history["validation_examples"] = train.count, val.count
    if cfg.final_fit:
        both = inputs.combined(train, val, cfg)
        chosen = history[names.CHOSEN_EPOCHS_HISTORY]
        history[names.FINAL_FIT_HISTORY] = final_fit(model, start, both.dataset, both.count, cfg, chosen)
    served = export.export(model, tft_output, fn_args.serving_model_dir, cfg.test_time_flip)
    if cfg.tflite:
        check = tflite.write_checked(served.probabilities, val.dataset, fn_args.serving_model_dir)
        history[tflite.HISTORY_KEY] = check.as_dict()
    export.save_weights(model, os.path.join(os.path.dirname(fn_args.serving_model_dir), export.WEIGHTS_FILE))
    _write_history(history, fn_args)


def _splits(fn_args: FnArgs, tft_output: tft.TFTransformOutput, cfg: TrainingConfig):
    """(train, validation): validation is ExampleGen's split, or carved from
    train by hash when the spans came split into train/ and eval/ only."""
    cache = os.path.join(fn_args.model_run_dir, "decoded-cache")
    percent = fn_args.custom_config.get(VALIDATION_FROM_TRAIN_KEY)
    train = inputs.input_split(
        fn_args.train_files,
        fn_args.data_accessor,
        tft_output,
        cfg,
        True,
        f"{cache}-train",
        (percent, False) if percent else None,
    )
    val = inputs.input_split(
        fn_args.eval_files,
        fn_args.data_accessor,
        tft_output,
        cfg,
        False,
        f"{cache}-validation",
        (percent, True) if percent else None,
    )
    return train, val


def _write_history(history: dict, fn_args: FnArgs) -> None:
    """The fit's history beside the TensorBoard logs and beside the SavedModel
    (what finished-run readers and the report read)."""
    for folder in (fn_args.model_run_dir, os.path.dirname(fn_args.serving_model_dir)):
        with tf.io.gfile.GFile(os.path.join(folder, features.HISTORY_FILE), "w") as f:
            json.dump(history, f, indent=1)
