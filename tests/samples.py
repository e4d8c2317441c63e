"""Real examples from the bundled sample, for tests."""

from __future__ import annotations

import glob
import os

import tensorflow as tf

from flowers.config import SAMPLE_DATA

SAMPLE_SHARDS = sorted(glob.glob(os.path.join(SAMPLE_DATA, "span-1", "*.tfrec")))


def sample_examples(limit: int | None = None) -> list[tf.train.Example]:
    examples = []
    for record in tf.data.TFRecordDataset(SAMPLE_SHARDS):
        examples.append(tf.train.Example.FromString(record.numpy()))
        if limit and len(examples) == limit:
            break
    return examples
