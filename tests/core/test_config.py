import json

import pytest

from flowers.config import PipelineConfig, TrainingConfig


def test_overrides_are_typed_and_reach_training():
    config = PipelineConfig().override({"epochs": "3", "min_accuracy": "0.9", "augment": "false", "head": "flatten"})
    assert config.training.epochs == 3 and config.training.augment is False and config.training.head == "flatten"
    assert config.min_accuracy == 0.9
    assert PipelineConfig().training.epochs != 3  # the default is untouched


def test_beam_args_split_into_a_tuple():
    config = PipelineConfig().override({"beam_args": "--runner=DataflowRunner --project=p"})
    assert config.beam_args == ("--runner=DataflowRunner", "--project=p")


@pytest.mark.parametrize(
    "values, message",
    [({"epoch": "3"}, "unknown setting.*epoch"), ({"epochs": "three"}, "epochs='three' is not a valid int"), ({"augment": "maybe"}, "augment")],
)
def test_bad_overrides_name_the_setting(values, message):
    with pytest.raises(ValueError, match=message):
        PipelineConfig().override(values)


def test_training_config_round_trips_through_json():
    cfg = TrainingConfig(alpha=0.35, weights="imagenet")
    assert TrainingConfig.from_json(cfg.to_json()) == cfg
    assert json.loads(cfg.to_json())["alpha"] == 0.35


def test_paths_derive_from_the_output_dir():
    config = PipelineConfig(output_dir="gs://bucket/flowers")
    assert config.pipeline_root == "gs://bucket/flowers/tfx"
    assert config.serving_dir == "gs://bucket/flowers/serving"
