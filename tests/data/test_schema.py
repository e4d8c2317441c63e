from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from flowers import features
from flowers.config import CURATED_SCHEMA


def test_curated_schema_matches_feature_keys_and_classes():
    with open(f"{CURATED_SCHEMA}/schema.pbtxt") as f:
        schema = text_format.Parse(f.read(), schema_pb2.Schema())
    by_name = {f.name: f for f in schema.feature}
    assert set(by_name) == {
        features.IMAGE_KEY,
        features.CLASS_KEY,
        features.LABEL_KEY,
        features.SIZE_KEY,
        features.ONE_HOT_KEY,
    }
    assert (by_name[features.CLASS_KEY].int_domain.min, by_name[features.CLASS_KEY].int_domain.max) == (
        0,
        features.NUM_CLASSES - 1,
    )
    assert tuple(schema.string_domain[0].value) == features.CLASS_NAMES
    assert by_name[features.ONE_HOT_KEY].shape.dim[0].size == features.NUM_CLASSES


def test_curated_schema_flags_out_of_domain_classes_and_missing_images(tmp_path):
    import tensorflow as tf
    import tensorflow_data_validation as tfdv
    from samples import sample_examples

    examples = sample_examples(4)
    examples[0].features.feature[features.CLASS_KEY].int64_list.value[0] = 9
    examples[1].features.feature[features.LABEL_KEY].bytes_list.value[0] = b"orchids"
    del examples[2].features.feature[features.IMAGE_KEY]
    path = str(tmp_path / "bad.tfrec")
    with tf.io.TFRecordWriter(path) as writer:
        for example in examples:
            writer.write(example.SerializeToString())
    schema = tfdv.load_schema_text(f"{CURATED_SCHEMA}/schema.pbtxt")

    anomalies = tfdv.validate_statistics(tfdv.generate_statistics_from_tfrecord(path), schema)

    assert set(anomalies.anomaly_info) == {features.CLASS_KEY, features.LABEL_KEY, features.IMAGE_KEY}
