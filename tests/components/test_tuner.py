import json

import numpy as np
import pytest
import tensorflow as tf
from samples import sample_examples
from tfx import v1 as tfx

from flowers import features
from flowers.components import inputs, trainer
from flowers.components import tuner as tuner_lib
from flowers.config import TRAINING_CONFIG_KEY, TRIALS_KEY, TrainingConfig
from flowers.images import decode_and_crop

# Small enough for a one-trial search in seconds: 10 real photos at 96 px,
# one head epoch and one fine-tuning epoch.
TINY = TrainingConfig(batch_size=5, epochs=1, fine_tune_epochs=1)
SIZE = 96
TINY_EXAMPLES = 10  # tiny_dataset's photos


def tiny_dataset(cfg: TrainingConfig) -> tf.data.Dataset:
    images, labels = [], []
    for example in sample_examples(TINY_EXAMPLES):
        f = example.features.feature
        images.append(tf.round(decode_and_crop(f[features.IMAGE_KEY].bytes_list.value[0], SIZE)))
        labels.append(tf.one_hot(f[features.CLASS_KEY].int64_list.value[0], features.NUM_CLASSES))
    return tf.data.Dataset.from_tensor_slices((tf.stack(images), tf.stack(labels))).batch(cfg.batch_size)


@pytest.fixture
def fn_args(tmp_path, monkeypatch):
    """FnArgs as the Tuner executor makes them, with the Transform output and
    the input pipeline replaced by a handful of decoded photos."""
    monkeypatch.setattr(tuner_lib.tft, "TFTransformOutput", lambda path: None)
    monkeypatch.setattr(inputs, "image_size", lambda tft_output: SIZE)
    monkeypatch.setattr(
        inputs, "input_dataset", lambda files, accessor, tft_output, cfg, training, carve=None: tiny_dataset(cfg)
    )
    monkeypatch.setattr(
        inputs,
        "input_split",
        lambda files, accessor, tft_output, cfg, training, carve=None: inputs.Split(
            tiny_dataset(cfg), TINY_EXAMPLES, None
        ),
    )
    return tfx.components.FnArgs(
        working_dir=str(tmp_path),
        train_files=["train/*"],
        eval_files=["eval/*"],
        transform_graph_path="transform_graph",
        custom_config={TRAINING_CONFIG_KEY: TINY.to_json(), TRIALS_KEY: 1},
    )


def test_search_space_is_named_after_training_config_fields_and_defaults_to_it():
    cfg = TrainingConfig()
    hp = tuner_lib.search_space(cfg)
    fields = json.loads(cfg.to_json())
    assert set(hp.values) == {"learning_rate", "dropout", "fine_tune_layers", "fine_tune_learning_rate"}
    assert all(hp.values[name] == fields[name] for name in hp.values)
    for item in hp.space:
        assert len(item.values) > 1 and fields[item.name] in item.values
    # Every combination of choices is a valid TrainingConfig.
    assert cfg.with_values({item.name: item.values[-1] for item in hp.space}).fine_tune_layers == 60


def test_configured_values_join_the_choices():
    hp = tuner_lib.search_space(TrainingConfig(learning_rate=5e-4, fine_tune_layers=45))
    assert 5e-4 in hp.get_config()["space"][0]["config"]["values"]
    assert hp.values["fine_tune_layers"] == 45


@pytest.mark.slow  # trains a model
def test_tuner_fn_runs_a_trial_whose_best_values_the_trainer_applies(fn_args, tmp_path):
    result = tuner_lib.tuner_fn(fn_args)
    assert isinstance(result, tfx.components.TunerFnResult)
    assert result.tuner.oracle.max_trials == 1
    result.tuner.search(**result.fit_kwargs)

    best = result.tuner.get_best_hyperparameters()[0]
    # The first trial is the configured configuration.
    assert best.values == tuner_lib.search_space(TINY).values
    trial = result.tuner.oracle.get_best_trials(1)[0]
    assert 0.0 <= trial.score <= 1.0
    assert (tmp_path / "logs" / f"trial_{trial.trial_id}").is_dir()

    # What the Tuner component writes is what the Trainer reads back.
    trainer_args = tfx.components.FnArgs(
        custom_config=fn_args.custom_config, hyperparameters=json.loads(json.dumps(best.get_config()))
    )
    assert trainer.training_config(trainer_args) == TINY


def test_trainer_applies_tuned_values_over_the_configuration():
    tuned = {"space": [], "values": {"learning_rate": 3e-3, "fine_tune_layers": 60}}
    args = tfx.components.FnArgs(custom_config={TRAINING_CONFIG_KEY: TINY.to_json()}, hyperparameters=tuned)
    cfg = trainer.training_config(args)
    assert (cfg.learning_rate, cfg.fine_tune_layers, cfg.batch_size) == (3e-3, 60, TINY.batch_size)
    np.testing.assert_equal(cfg.epochs, TINY.epochs)
