"""TFX Tuner `tuner_fn`: a KerasTuner random search over the training config.

Opt-in (`tune=true`, `flowers run --tune`). Each trial builds the Trainer's
model and runs the Trainer's own two-phase `fit` on the same input pipeline,
so a trial scores exactly what the Trainer would produce. Hyperparameters are
named after `TrainingConfig` fields: the Trainer applies the best trial's
values over the pipeline's configuration (`trainer.training_config`).

KerasTuner here drives Keras 3 while the model is tf.keras (tf_keras), so
trials run through `run_trial` instead of a KerasTuner HyperModel: none of
KerasTuner's Keras 3 callbacks ever meet the tf.keras model.
"""

from __future__ import annotations

import logging
import os

import keras_tuner
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs  # (not tfx.v1: pipeline/pipeline.py says why)
from tfx.components.tuner.component import TunerFnResult

from flowers.components import inputs
from flowers.components import model as model_lib
from flowers.components.fit import fit
from flowers.config import TRAINING_CONFIG_KEY, TRIALS_KEY, VALIDATION_FROM_TRAIN_KEY, TrainingConfig

log = logging.getLogger(__name__)
OBJECTIVE = "val_accuracy"


def search_space(cfg: TrainingConfig) -> keras_tuner.HyperParameters:
    """What a trial may change, each named after its TrainingConfig field; the
    configured value is every choice's default, so trial 0 is the baseline."""
    hp = keras_tuner.HyperParameters()
    hp.Choice("learning_rate", _with(cfg.learning_rate, [3e-4, 1e-3, 3e-3]), default=cfg.learning_rate)
    hp.Choice("dropout", _with(cfg.dropout, [0.2, 0.5]), default=cfg.dropout)
    hp.Choice("fine_tune_layers", _with(cfg.fine_tune_layers, [0, 30, 60]), default=cfg.fine_tune_layers)
    hp.Choice(
        "fine_tune_learning_rate",
        _with(cfg.fine_tune_learning_rate, [3e-5, 1e-4]),
        default=cfg.fine_tune_learning_rate,
    )
    return hp


class BaselineFirstOracle(keras_tuner.oracles.RandomSearchOracle):
    """Random search whose first trial is the configured values, so the best
    trial is never worse than the untuned configuration scored the same way."""

    def populate_space(self, trial_id):
        response = super().populate_space(trial_id)
        if not self.trials and response["values"] is not None:
            response["values"] = self.hyperparameters.copy().values
        return response


class TrainingConfigSearch(keras_tuner.Tuner):
    """Random search whose trials are the Trainer's build_model + fit."""

    def __init__(self, base: TrainingConfig, image_size: int, trials: int, directory: str, **kwargs):
        oracle = BaselineFirstOracle(
            objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
            max_trials=trials,
            hyperparameters=search_space(base),
            tune_new_entries=False,
            seed=base.seed,
        )
        super().__init__(oracle=oracle, directory=directory, project_name="flowers", overwrite=True, **kwargs)
        self.base = base
        self.image_size = image_size

    def run_trial(self, trial, train, val, log_root: str, train_examples: int | None = None) -> dict[str, float]:
        cfg = self.base.with_values(trial.hyperparameters.values)
        log.info("trial %s: %s", trial.trial_id, trial.hyperparameters.values)
        keras.backend.clear_session()
        keras.utils.set_random_seed(cfg.seed)
        model = model_lib.build_model(cfg, self.image_size)
        history = fit(model, train, val, cfg, os.path.join(log_root, f"trial_{trial.trial_id}"), train_examples)
        # fit() restores the best epoch's weights: that is the trial's score.
        return {OBJECTIVE: max(history[OBJECTIVE])}


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    base = TrainingConfig.from_json(fn_args.custom_config[TRAINING_CONFIG_KEY])
    trials = int(fn_args.custom_config[TRIALS_KEY])
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    tuner = TrainingConfigSearch(base, inputs.image_size(tft_output), trials, directory=fn_args.working_dir)
    percent = fn_args.custom_config.get(VALIDATION_FROM_TRAIN_KEY)
    # batch_size is not searched: every trial reads these batches.
    train = inputs.input_split(
        fn_args.train_files, fn_args.data_accessor, tft_output, base, True, carve=(percent, False) if percent else None
    )
    val = inputs.input_dataset(
        fn_args.eval_files, fn_args.data_accessor, tft_output, base, False, carve=(percent, True) if percent else None
    )
    return TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "train": train.dataset,
            "val": val,
            "log_root": os.path.join(fn_args.working_dir, "logs"),
            "train_examples": train.count,
        },
    )


def _with(value, choices: list) -> list:
    """`choices` plus the configured value, sorted, without duplicates."""
    return sorted({type(choices[0])(value), *choices})
