"""The Trainer takes its input size from the Transform graph it is given."""

import json
import tempfile

import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from samples import sample_examples
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from flowers import features
from flowers.components import inputs, trainer
from flowers.components.transform import preprocessing_fn
from flowers.config import IMAGE_SIZE_KEY, TRAINING_CONFIG_KEY, PipelineConfig, SettingsError, TrainingConfig


def transform_output(size: int) -> tft.TFTransformOutput:
    """A real Transform graph (tf.Transform's Beam implementation) at `size` px."""
    raw = [
        {
            features.IMAGE_KEY: [e.features.feature[features.IMAGE_KEY].bytes_list.value[0]],
            features.CLASS_KEY: [e.features.feature[features.CLASS_KEY].int64_list.value[0]],
        }
        for e in sample_examples(2)
    ]
    spec = {
        features.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
        features.CLASS_KEY: tf.io.FixedLenFeature([1], tf.int64),
    }
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    out = tempfile.mkdtemp()
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        _, transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, {IMAGE_SIZE_KEY: size})
        )
        _ = transform_fn | tft_beam.WriteTransformFn(out)
    return tft.TFTransformOutput(out)


def test_model_input_size_is_the_transform_graphs():
    assert inputs.image_size(transform_output(64)) == 64


def test_an_image_size_in_the_trainer_config_is_refused_by_name():
    """The Trainer's runtime parameter (Kubeflow's trainer_config) cannot
    carry an input size that differs from the Transform graph's."""
    text = json.dumps({**json.loads(TrainingConfig().to_json()), "image_size": 96})
    with pytest.raises(SettingsError, match="image_size.*Transform graph"):
        TrainingConfig.from_json(text)
    assert "image_size" not in json.loads(TrainingConfig().to_json())
    assert PipelineConfig().override({"data.image_size": "96"}).data.image_size == 96


def test_training_config_reaches_the_trainer_validated():
    from tfx import v1 as tfx

    bad = json.dumps({**json.loads(TrainingConfig().to_json()), "batch_size": 0})
    with pytest.raises(SettingsError, match="batch_size=0"):
        trainer.training_config(tfx.components.FnArgs(custom_config={TRAINING_CONFIG_KEY: bad}))
