"""The data gate's own checks on real inputs: TFDV running the class-balance
validation over statistics, and the decode check over ExampleGen-style
output (gzipped TFRecords per split)."""

from __future__ import annotations

import tensorflow as tf
from samples import sample_examples
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from flowers import features
from flowers.components import gates


def class_statistics(counts: list[int]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """One split's statistics of `class` as StatisticsGen writes them (rank histogram)."""
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = statistics.datasets.add(num_examples=sum(counts))
    feature = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.INT)
    feature.path.step.append(features.CLASS_KEY)
    feature.string_stats.common_stats.num_non_missing = sum(counts)
    for index, count in enumerate(counts):
        feature.string_stats.rank_histogram.buckets.add(label=str(index), sample_count=count)
    return statistics


def anomalies(counts: list[int], ratio: float) -> list[str]:
    import tensorflow_data_validation as tfdv

    schema = schema_pb2.Schema()
    schema.feature.add(name=features.CLASS_KEY, type=schema_pb2.INT)
    found = tfdv.validate_statistics(
        class_statistics(counts), schema, custom_validation_config=gates.custom_validations(1, ratio)
    )
    return [r.short_description for info in found.anomaly_info.values() for r in info.reason]


def test_a_split_out_of_balance_is_an_anomaly():
    # The bundled sample's validation split (11 vs 3), and issue 22's span (train split).
    assert anomalies([9, 8, 6, 3, 11], 8.0) == []
    (found,) = anomalies([113, 8, 8, 9, 8], 8.0)
    assert found.startswith("classes out of balance: the largest class has over 8 times")
    assert anomalies([113, 8, 8, 9, 8], 0.0) == []  # the check off
    assert anomalies([16, 2, 2, 2, 2], 8.0) == []  # exactly the ratio passes


def test_images_that_do_not_decode_are_named_by_split_shard_and_record(tmp_path):
    good, bad, cut = sample_examples(3)
    bad.features.feature[features.IMAGE_KEY].bytes_list.value[0] = b"this is no JPEG"
    jpeg = cut.features.feature[features.IMAGE_KEY].bytes_list.value[0]
    cut.features.feature[features.IMAGE_KEY].bytes_list.value[0] = jpeg[: len(jpeg) // 2]  # a photo cut short
    for split, records in (("train", [good, good, cut]), ("eval", [good, bad])):
        (tmp_path / f"Split-{split}").mkdir()
        with tf.io.TFRecordWriter(str(tmp_path / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz"), "GZIP") as w:
            for example in records:
                w.write(example.SerializeToString())
    examples = tf_examples(str(tmp_path), ["train", "eval"])
    label = bad.features.feature[features.LABEL_KEY].bytes_list.value[0].decode()
    cut_label = cut.features.feature[features.LABEL_KEY].bytes_list.value[0].decode()
    train_line, eval_line = gates.undecodable_images(examples)
    assert train_line.startswith(f"train: Split-train/data_tfrecord-00000-of-00001.gz record 2 ({cut_label}): ")
    line = eval_line
    assert line.startswith(
        f"eval: Split-eval/data_tfrecord-00000-of-00001.gz record 1 ({label}): image does not decode ("
    )


def tf_examples(uri: str, splits: list[str]):
    from tfx.types import artifact_utils, standard_artifacts

    examples = standard_artifacts.Examples()
    examples.uri = uri
    examples.split_names = artifact_utils.encode_split_names(splits)
    return examples


def test_a_missing_or_thin_class_is_named():
    """Issue 20: the gate names the class, not "some class"."""
    assert anomalies([9, 8, 6, 3, 11], 0.0) == []
    (found,) = anomalies([9, 0, 6, 3, 11], 0.0)
    assert found.startswith("dandelion has fewer than 1 example(s) in this split (gates.min_class_examples)")
    assert "data.validation_percent" in found
