"""preprocessing_fn run through tf.Transform's Beam implementation."""
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from samples import sample_examples
from flowers.components.transform import preprocessing_fn
from flowers.pipeline import features


def test_preprocessing_fn_decodes_resizes_and_normalises():
    examples = sample_examples(6)
    raw = [
        {
            features.IMAGE_KEY: [e.features.feature[features.IMAGE_KEY].bytes_list.value[0]],
            features.CLASS_KEY: [e.features.feature[features.CLASS_KEY].int64_list.value[0]],
        }
        for e in examples
    ]
    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(
            {
                features.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
                features.CLASS_KEY: tf.io.FixedLenFeature([1], tf.int64),
            }
        )
    )
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (transformed, _), _ = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, {"image_size": 96})
        )

    assert len(transformed) == 6
    for row, example in zip(transformed, examples):
        image = np.asarray(row[features.TRANSFORMED_IMAGE_KEY])
        assert image.shape == (96, 96, 3)
        assert -1.0 <= image.min() < 0.0 < image.max() <= 1.0
        assert row[features.TRANSFORMED_CLASS_KEY] == example.features.feature[features.CLASS_KEY].int64_list.value[0]
