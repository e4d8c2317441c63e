"""How TFRecord shards lie under a data root, and how ExampleGen reads them.

A data root is a series of spans, `span-1/`, `span-2/`, ... Each span holds
shards, split by hash into train / validation / eval (70/15/15 by default),
or `train/` and `eval/` folders (validation is then carved from train). A run
ingests the newest span (ExampleGen's `{SPAN}`); the Trainer and Evaluator
see the latest `span_window` spans ingested so far (pipeline/pipeline.py).
"""

from __future__ import annotations

import glob
import os
import re

SHARD_SUFFIX = ".tfrec"
SPAN_PREFIX = "span-"
TRAIN, VALIDATION, EVAL = "train", "validation", "eval"
# Folders a span may hold instead of shards, when its split is given.
SPLIT_DIRS = (TRAIN, EVAL)


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


def flat_shards(data_root: str) -> list[str]:
    """Shards lying directly in the data root (the old layout)."""
    return _glob(f"{data_root.rstrip('/')}/*{SHARD_SUFFIX}")


def is_presplit(span_folder: str) -> bool:
    """True when a span holds `train/` and `eval/` folders instead of shards."""
    return all(_isdir(f"{span_folder}/{s}") for s in SPLIT_DIRS)


def refuse_flat(data_root: str) -> None:
    """Shards directly in the root (the old layout) would be ignored: say how to move them."""
    if flat_shards(data_root):
        root = data_root.rstrip("/")
        name = root.rsplit("/", 1)[-1]
        if re.fullmatch(rf"{SPAN_PREFIX}\d+", name):  # a span folder given as the data root
            raise FileNotFoundError(
                f"{data_root} is a span folder; the data root is the folder that holds the spans: "
                f"--data-root {root.rsplit('/', 1)[0] if '/' in root else '.'}"
            )
        raise FileNotFoundError(
            f"{data_root}: holds {SHARD_SUFFIX} shards directly, the old flat layout; a data root is now "
            f"a series of span folders. Move them into the first span: "
            f"mkdir {root}/{SPAN_PREFIX}1 && mv {root}/*{SHARD_SUFFIX} {root}/{SPAN_PREFIX}1/"
        )


def check_data_root(data_root: str, span: int = 0) -> None:
    """A clear error unless ExampleGen will find shards in the span a run
    ingests (`span`, or the newest when 0)."""
    refuse_flat(data_root)
    found = spans(data_root)
    if not found:
        raise FileNotFoundError(
            f"{data_root}: no {SPAN_PREFIX}N folders with {SHARD_SUFFIX} shards; "
            "make the first with `flowers data convert PHOTOS_DIR DATA_ROOT`"
        )
    if span and span not in found:
        raise FileNotFoundError(f"{data_root}: no {SPAN_PREFIX}{span} (spans here: {', '.join(map(str, found))})")
    folder = span_dir(data_root, span or found[-1])
    patterns = [f"{s}/*{SHARD_SUFFIX}" for s in SPLIT_DIRS] if is_presplit(folder) else [f"*{SHARD_SUFFIX}"]
    for pattern in patterns:
        if not _glob(f"{folder}/{pattern}"):
            raise FileNotFoundError(
                f"{folder}: no {SHARD_SUFFIX} shards match {pattern}; "
                "add photos with `flowers data add-span PHOTOS_DIR DATA_ROOT`"
            )


def check_shards(data_root: str, span: int = 0) -> None:
    """A clear error naming the shard when a (local, uncompressed) shard of
    the spans a run reads is truncated: its TFRecord framing (8-byte length,
    4-byte CRC, data, 4-byte CRC) is walked without reading the data."""
    if _is_uri(data_root):
        return
    folders = [span_dir(data_root, span)] if span else [span_dir(data_root, s) for s in spans(data_root)]
    for folder in folders:
        for path in sorted(_glob(f"{folder}/*{SHARD_SUFFIX}") + _glob(f"{folder}/*/*{SHARD_SUFFIX}")):
            _check_framing(path)


def _check_framing(path: str) -> None:
    size = os.path.getsize(path)
    records = offset = 0
    with open(path, "rb") as f:
        while offset < size:
            header = f.read(12)
            length = int.from_bytes(header[:8], "little") if len(header) == 12 else -1
            if length < 0 or offset + 16 + length > size:
                raise ValueError(
                    f"{path}: truncated or not a TFRecord file after {records} record(s) (byte {offset} of {size}); "
                    "convert its photos again"
                )
            offset += 16 + length
            f.seek(offset)
            records += 1


def resolve(config):
    """`config` with its data layout read from the data root, once, so that
    building the DAG reads no disk: whether the spans hold train/ and eval/
    folders (the newest span, or `data.span`, decides)."""
    import dataclasses

    data = config.data
    found = spans(data.data_root)
    presplit = is_presplit(span_dir(data.data_root, data.span or (found[-1] if found else 1)))
    return dataclasses.replace(config, data=dataclasses.replace(data, presplit=presplit))


def example_gen_configs(
    presplit: bool, validation_percent: int, eval_percent: int, span: int = 0, every_span: bool = False
):
    """ImportExampleGen's input, output and range configs, split by hash into
    train / validation / eval unless the spans hold train/ and eval/ folders
    (the Trainer then carves validation from train). `every_span`: all span
    folders present when the run starts, in one artifact (a glob, so it works
    on every orchestrator); else the span `span` (0: the newest at run time,
    TFX's `{SPAN}` resolution)."""
    from tfx.proto import example_gen_pb2, range_config_pb2

    prefix = f"{SPAN_PREFIX}*/" if every_span else f"{SPAN_PREFIX}{{SPAN}}/"
    ranged = (
        range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
        )
        if span and not every_span
        else None
    )
    if presplit:
        splits = [example_gen_pb2.Input.Split(name=s, pattern=f"{prefix}{s}/*{SHARD_SUFFIX}") for s in SPLIT_DIRS]
        return example_gen_pb2.Input(splits=splits), None, ranged
    single = example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name="single_split", pattern=f"{prefix}*{SHARD_SUFFIX}")]
    )
    buckets = ((TRAIN, 100 - validation_percent - eval_percent), (VALIDATION, validation_percent), (EVAL, eval_percent))
    hashed = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[example_gen_pb2.SplitConfig.Split(name=n, hash_buckets=b) for n, b in buckets]
        )
    )
    return single, hashed, ranged


def input_mb(data_root: str, span_window: int = 0) -> float | None:
    """MB of the shards a run reads: the newest `span_window` spans (all when
    0). None for a remote data root (sizes not read there)."""
    if _is_uri(data_root):
        return None
    found = spans(data_root)
    read = found[-span_window:] if span_window else found
    shards = [
        p
        for s in read
        for p in _glob(f"{span_dir(data_root, s)}/*{SHARD_SUFFIX}")
        + _glob(f"{span_dir(data_root, s)}/*/*{SHARD_SUFFIX}")
    ]
    return sum(os.path.getsize(p) for p in shards) / 1e6


def choose_beam_mode(config):
    """(config, one line for the run log): a local run whose `run.beam_args`
    are the default gets the in-memory DirectRunner when its input is at most
    `run.beam_multiprocessing_above_mb` (the reason is in core/config.py), the
    multi-processing one above; beam_args set to anything else are kept."""
    import dataclasses

    from flowers.config import IN_MEMORY_BEAM_ARGS, LOCAL_BEAM_ARGS

    run = config.run
    if tuple(run.beam_args) != LOCAL_BEAM_ARGS:
        return config, f"beam: {' '.join(run.beam_args) or 'Beam defaults'} (run.beam_args as set)"
    mb = input_mb(config.data.data_root, config.data.span_window)
    limit = f"run.beam_multiprocessing_above_mb={run.beam_multiprocessing_above_mb:g}"
    if mb is None:
        return config, "beam: multi-processing DirectRunner (a remote data root: its size is not read)"
    if mb > run.beam_multiprocessing_above_mb:
        return config, f"beam: multi-processing DirectRunner ({mb:.1f} MB of shards > {limit})"
    in_memory = dataclasses.replace(run, beam_args=IN_MEMORY_BEAM_ARGS)
    return (
        dataclasses.replace(config, run=in_memory),
        f"beam: in-memory DirectRunner ({mb:.1f} MB of shards <= {limit}: "
        "worker processes would cost more than they save)",
    )
