"""The Trainer takes its input size from the Transform graph it is given."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from samples import sample_examples
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from flowers import features
from flowers.components import inputs, trainer
from flowers.components.transform import preprocessing_fn
from flowers.config import IMAGE_SIZE_KEY, TRAINING_CONFIG_KEY, PipelineConfig, SettingsError, TrainingConfig


def transform_output(size: int, folder) -> tft.TFTransformOutput:
    """A real Transform graph (tf.Transform's Beam implementation) at `size` px, written under `folder`."""
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
    out = str(folder / "transform_graph")
    with tft_beam.Context(temp_dir=str(folder / "tft-tmp")):
        _, transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, {IMAGE_SIZE_KEY: size})
        )
        _ = transform_fn | tft_beam.WriteTransformFn(out)
    metadata_io.write_metadata(metadata, f"{out}/{tft.TFTransformOutput.RAW_METADATA_DIR}")  # as TFX's Transform does
    return tft.TFTransformOutput(out)


def test_model_input_size_is_the_transform_graphs(tmp_path):
    assert inputs.image_size(transform_output(64, tmp_path)) == 64


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


@pytest.mark.slow  # two exports of a MobileNetV2 with its Transform graph: 15-20 s
def test_the_exported_signatures_serve_the_model_with_and_without_test_time_flip(tmp_path):
    """`serving_image` is the model (or, with `test_time_flip`, the mean over
    each image and its mirror image); `serving_default` is `serving_image`
    after the Transform graph."""
    from flowers.components import export
    from flowers.components import model as model_lib
    from flowers.images import decode_and_crop

    size, jpeg = 64, sample_examples(1)[0].features.feature[features.IMAGE_KEY].bytes_list.value[0]
    model, graph = model_lib.build_model(TrainingConfig(augment=False), size), transform_output(size, tmp_path)
    image = tf.round(decode_and_crop(tf.constant(jpeg), size))[None]
    plain, mirrored = model(image).numpy(), model(tf.image.flip_left_right(image)).numpy()
    assert not np.allclose(plain, mirrored, atol=1e-5)
    for flip, expected in ((False, plain), (True, (plain + mirrored) / 2)):
        export.export(model, graph, str(tmp_path / str(flip)), flip)
        served = tf.saved_model.load(str(tmp_path / str(flip)))
        from_image = served.signatures[features.IMAGE_SIGNATURE](**{features.TRANSFORMED_IMAGE_KEY: image})
        from_bytes = served.signatures[features.BYTES_SIGNATURE](**{features.SERVING_BYTES_INPUT: tf.constant([jpeg])})
        for out in (from_image, from_bytes):
            np.testing.assert_allclose(out[features.PROBABILITIES_OUTPUT].numpy(), expected, atol=1e-5)
