"""What the report computes from a run's artifacts: examples per class and
split (StatisticsGen), the eval split through the serving signature (the
mistakes and the calibration)."""

from __future__ import annotations

import dataclasses
import os

from flowers import features
from flowers.components import names

# Eval examples predicted again for the grid of mistakes (the rest are
# counted by TFMA only), and how many mistakes the grid shows.
MAX_EVAL_PREDICTIONS = 5000
MAX_WRONG_SHOWN = 60
THUMBNAIL_PX = 128


def class_counts(statistics_uri: str) -> dict[str, dict[str, int]]:
    """split -> class name -> examples, and split -> "(all)" -> examples,
    from StatisticsGen's FeatureStats.pb (the class feature's histogram, or
    the label feature's when the class was not counted as categorical)."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import statistics_pb2

    counts: dict[str, dict[str, int]] = {}
    for path in sorted(tf.io.gfile.glob(f"{statistics_uri}/Split-*/FeatureStats.pb")):
        split = os.path.basename(os.path.dirname(path))[len("Split-") :]
        with tf.io.gfile.GFile(path, "rb") as f:
            stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
        dataset = stats.datasets[0]
        per_class: dict[str, int] = {}
        by_feature = {".".join(f.path.step) or f.name: f for f in dataset.features}
        cls = by_feature.get(features.CLASS_KEY)
        label = by_feature.get(features.LABEL_KEY)
        if cls is not None and cls.HasField("string_stats"):
            for bucket in cls.string_stats.rank_histogram.buckets:
                index = int(bucket.label)
                name = features.CLASS_NAMES[index] if 0 <= index < features.NUM_CLASSES else f"class {index}"
                per_class[name] = int(bucket.sample_count)
        elif label is not None and label.HasField("string_stats"):
            for bucket in label.string_stats.rank_histogram.buckets:
                per_class[bucket.label] = int(bucket.sample_count)
        ordered = {n: per_class[n] for n in features.CLASS_NAMES if n in per_class}
        ordered.update({n: v for n, v in per_class.items() if n not in ordered})
        ordered["(all)"] = int(dataset.num_examples)
        counts[split] = ordered
    return counts


@dataclasses.dataclass
class Mistake:
    index: int  # position in the eval split
    true_class: str
    predicted_class: str
    confidence: float
    thumbnail: bytes  # JPEG


@dataclasses.dataclass
class EvalPredictions:
    checked: int  # eval examples predicted
    mistakes: list[Mistake]  # the wrong ones, most confident first
    confidence: list[float]  # per readable example: the top class's probability
    correct: list[bool]  # and whether the top class was right


def find_mistakes(examples_uri: str, model_uri: str, limit: int = MAX_EVAL_PREDICTIONS) -> EvalPredictions:
    """The eval split's images through the model's serving signature: the
    wrong ones for the grid, and every confidence for the calibration."""
    import tensorflow as tf

    from flowers.runs import predict

    files = sorted(tf.io.gfile.glob(f"{examples_uri}/Split-eval/*.gz"))
    if not files:
        raise LookupError(f"{examples_uri} has no eval split")
    model = predict.load(f"{model_uri}/{names.SERVING_FOLDER}")
    checked = 0
    mistakes: list[Mistake] = []
    confidence: list[float] = []
    correct: list[bool] = []
    batch: list[tuple[str, bytes]] = []
    truth: dict[str, int] = {}

    def flush():
        images = dict(batch)
        for row in predict.classify_batch(model, names.SERVING_FOLDER, batch):
            actual = features.CLASS_NAMES[truth.pop(row["file"])]
            if "error" in row:
                mistakes.append(Mistake(int(row["file"]), actual, "(unreadable)", 0.0, b""))
                continue
            confidence.append(row["confidence"])
            correct.append(row["class"] == actual)
            if row["class"] != actual:
                mistakes.append(Mistake(int(row["file"]), actual, row["class"], row["confidence"], images[row["file"]]))
        batch.clear()
        # Only the most confident mistakes are shown: keep their images only.
        mistakes.sort(key=lambda m: -m.confidence)
        for m in mistakes[MAX_WRONG_SHOWN:]:
            m.thumbnail = b""

    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit):
        f = tf.train.Example.FromString(record.numpy()).features.feature
        key = str(checked)
        truth[key] = int(f[features.CLASS_KEY].int64_list.value[0])
        batch.append((key, f[features.IMAGE_KEY].bytes_list.value[0]))
        checked += 1
        if len(batch) == 64:
            flush()
    flush()
    for m in mistakes[:MAX_WRONG_SHOWN]:
        m.thumbnail = _thumbnail(m.thumbnail) if m.thumbnail else b""
    return EvalPredictions(checked, mistakes, confidence, correct)


CALIBRATION_BINS = 10


def calibration(confidence: list[float], correct: list[bool], bins: int = CALIBRATION_BINS):
    """(expected calibration error, [(bin low, bin high, examples, mean confidence,
    accuracy)] for the non-empty bins): how far the model's confidence is from
    how often it is right, weighted by the examples in each bin."""
    rows = []
    total = len(confidence)
    ece = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidence) if low < c <= high or (b == 0 and c == 0.0)]
        if not members:
            continue
        mean_confidence = sum(confidence[i] for i in members) / len(members)
        accuracy = sum(correct[i] for i in members) / len(members)
        ece += len(members) / total * abs(mean_confidence - accuracy)
        rows.append((low, high, len(members), mean_confidence, accuracy))
    return ece, rows


def _thumbnail(image: bytes) -> bytes:
    import tensorflow as tf

    decoded = tf.io.decode_image(image, channels=3, expand_animations=False)
    small = tf.image.resize(decoded, [THUMBNAIL_PX, THUMBNAIL_PX], preserve_aspect_ratio=True)
    return tf.io.encode_jpeg(tf.cast(tf.round(small), tf.uint8), quality=85).numpy()
