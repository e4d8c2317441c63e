"""What the report computes from a run's artifacts: examples per class and
split (StatisticsGen), the Evaluator's per-example predictions (the mistakes
and the calibration)."""

from __future__ import annotations

import base64
import dataclasses
import os

from flowers import features

# How many mistakes the grid shows (the most confident ones).
MAX_WRONG_SHOWN = 60


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
    index: int  # line of the Evaluator's eval_predictions.jsonl
    true_class: str
    predicted_class: str
    confidence: float
    thumbnail: bytes  # JPEG


@dataclasses.dataclass
class EvalPredictions:
    checked: int  # eval examples the Evaluator predicted
    mistakes: list[Mistake]  # the wrong ones, most confident first
    confidence: list[float]  # per readable example: the top class's probability
    correct: list[bool]  # and whether the top class was right


def read_predictions(evaluation_uri: str) -> EvalPredictions | None:
    """The Evaluator's per-example predictions of the eval split
    (components/eval_predictions.py): the wrong ones for the grid, and every
    confidence for the calibration. None for an evaluation written without
    them (by a version of flowers before they were written)."""
    import json

    import tensorflow as tf

    from flowers.components import eval_predictions

    path = f"{evaluation_uri}/{eval_predictions.FILE}"
    if not tf.io.gfile.exists(path):
        return None
    mistakes: list[Mistake] = []
    confidence: list[float] = []
    correct: list[bool] = []
    with tf.io.gfile.GFile(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for index, row in enumerate(rows):
        probabilities = row["probabilities"]
        top = max(range(len(probabilities)), key=probabilities.__getitem__)
        confidence.append(probabilities[top])
        correct.append(top == row["class"])
        if top != row["class"]:
            thumbnail = base64.b64decode(row.get("thumbnail", ""))
            mistakes.append(Mistake(index, _name(row["class"]), _name(top), probabilities[top], thumbnail))
    mistakes.sort(key=lambda m: -m.confidence)
    return EvalPredictions(len(rows), mistakes, confidence, correct)


def _name(index: int) -> str:
    return features.CLASS_NAMES[index] if 0 <= index < features.NUM_CLASSES else f"class {index}"


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
