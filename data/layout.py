"""How TFRecord shards lie under a data root, and how ExampleGen reads them.

A data root holds shards directly, or one folder per span (`span-1/`,
`span-2/`, ...; ExampleGen takes the latest), and either may hold `train/` and
`eval/` folders, which are then used as the split instead of a 4:1 hash split.
"""
from __future__ import annotations

import glob
import os
import re

SHARD_SUFFIX = ".tfrec"
SPAN_PREFIX = "span-"
SPLIT_DIRS = ("train", "eval")
HASH_SPLIT = (("train", 4), ("eval", 1))


def _is_uri(path: str) -> bool:
    return "://" in path


def _isdir(path: str) -> bool:
    if not _is_uri(path):  # local paths without TensorFlow: settings errors stay fast
        return os.path.isdir(path)
    import tensorflow as tf

    return tf.io.gfile.isdir(path)


def _listdir(path: str) -> list[str]:
    if not _is_uri(path):
        return os.listdir(path)
    import tensorflow as tf

    return tf.io.gfile.listdir(path)


def _glob(pattern: str) -> list[str]:
    if not _is_uri(pattern):
        return glob.glob(pattern)
    import tensorflow as tf

    return tf.io.gfile.glob(pattern)


def spans(data_root: str) -> list[int]:
    """Span numbers present under `data_root`, ascending."""
    if not _isdir(data_root):
        return []
    found = (re.fullmatch(rf"{SPAN_PREFIX}(\d+)/?", n) for n in _listdir(data_root))
    return sorted(int(m.group(1)) for m in found if m)


def span_dir(data_root: str, span: int) -> str:
    return f"{data_root.rstrip('/')}/{SPAN_PREFIX}{span}"


def check_data_root(data_root: str) -> None:
    """A clear error unless ExampleGen will find shards under `data_root`."""
    inputs, _ = example_gen_configs(data_root)
    span = spans(data_root)
    for split in inputs.splits:
        pattern = split.pattern.replace("{SPAN}", str(span[-1]) if span else "")
        if not _glob(f"{data_root.rstrip('/')}/{pattern}"):
            raise FileNotFoundError(
                f"{data_root}: no {SHARD_SUFFIX} shards match {pattern}; "
                "make some with `flowers data convert PHOTOS_DIR OUT_DIR`"
            )


def example_gen_configs(data_root: str):
    """ImportExampleGen's input config, and its output config (None when the
    input already carries its split)."""
    from tfx.proto import example_gen_pb2

    prefix = f"{SPAN_PREFIX}{{SPAN}}/" if spans(data_root) else ""
    first = span_dir(data_root, spans(data_root)[-1]) if prefix else data_root
    if all(_isdir(f"{first}/{s}") for s in SPLIT_DIRS):
        splits = [
            example_gen_pb2.Input.Split(name=s, pattern=f"{prefix}{s}/*{SHARD_SUFFIX}")
            for s in SPLIT_DIRS
        ]
        return example_gen_pb2.Input(splits=splits), None
    single = example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name="single_split", pattern=f"{prefix}*{SHARD_SUFFIX}")]
    )
    hashed = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[example_gen_pb2.SplitConfig.Split(name=n, hash_buckets=b) for n, b in HASH_SPLIT]
        )
    )
    return single, hashed
