import json
import re

import pytest

from flowers.config import PipelineConfig, TrainingConfig


def test_overrides_are_typed_and_reach_training():
    config = PipelineConfig().override({"epochs": "3", "min_accuracy": "0.9", "augment": "false", "head": "flatten"})
    assert config.training.epochs == 3 and config.training.augment is False and config.training.head == "flatten"
    assert config.gates.min_accuracy == 0.9
    assert PipelineConfig().training.epochs != 3  # the default is untouched


def test_beam_args_split_into_a_tuple():
    config = PipelineConfig().override({"beam_args": "--runner=DataflowRunner --project=p"})
    assert config.run.beam_args == ("--runner=DataflowRunner", "--project=p")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epoch": "3"}, "unknown setting.*epoch"),
        ({"epochs": "three"}, "epochs='three' is not a valid int"),
        ({"augment": "maybe"}, "augment"),
    ],
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


@pytest.mark.parametrize(
    "values, named",
    [
        ({"batch_size": "0"}, "batch_size=0 is out of range"),
        ({"image_size": "16"}, "image_size=16 is out of range"),
        ({"min_accuracy": "1.5"}, "min_accuracy=1.5"),
        ({"head": "mlp"}, "head='mlp': allowed one of pooling, flatten"),
        ({"alpha": "0.35"}, "alpha=0.35: no bundled weights"),
        ({"alpha": "0.6", "weights": "imagenet"}, "alpha=0.6: allowed one of"),
        ({"validation_percent": "45", "eval_percent": "46"}, "leave under 10% for training"),
        ({"span": "3"}, "span=3 needs span_window"),
        ({"pipeline_name": "a b"}, "pipeline_name"),
    ],
)
def test_every_setting_has_a_range_and_a_bad_one_is_named(values, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        PipelineConfig().override(values)


def test_config_round_trips_through_json_for_the_worker_process():
    config = PipelineConfig().override({"epochs": "3", "beam_args": "--a --b", "span_window": "2"})
    assert PipelineConfig.from_json(config.to_json()) == config
