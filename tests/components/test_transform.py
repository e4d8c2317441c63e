"""preprocessing_fn run through tf.Transform's Beam implementation."""

import numpy as np
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from samples import sample_examples
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from flowers import features
from flowers.components.transform import preprocessing_fn
from flowers.config import IMAGE_SIZE_KEY


def test_preprocessing_fn_decodes_and_crops_to_whole_pixel_values(tmp_path):
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
    with tft_beam.Context(temp_dir=str(tmp_path)):
        (transformed, _), _ = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, {IMAGE_SIZE_KEY: 96})
        )

    assert len(transformed) == 6
    for row, example in zip(transformed, examples):
        image = np.asarray(row[features.TRANSFORMED_IMAGE_KEY])
        assert image.shape == (96, 96, 3)
        assert 0.0 <= image.min() and image.max() <= 255.0 and image.max() > 1.0
        # Whole numbers: the Trainer caches them as uint8 without loss.
        np.testing.assert_array_equal(image, np.round(image))
        assert row[features.TRANSFORMED_CLASS_KEY] == example.features.feature[features.CLASS_KEY].int64_list.value[0]
