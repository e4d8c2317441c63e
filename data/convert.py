"""Convert a `flower_photos`-style folder into TFRecord shards (labs' format).

    PHOTOS_DIR/<class name>/<photo>.jpg  ->  DATA_ROOT/span-N/flowers-0000i-of-0000n.tfrec

Runs as a Beam pipeline. Shards are written into a staging folder and moved
into place only once every shard is complete, so an error leaves no partial
output behind. Files that do not decode as images are skipped and named.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from typing import Iterable, Sequence

import apache_beam as beam
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from flowers import features
from flowers.config import DEFAULT_SHARDS, DataConfig
from flowers.data import layout
from flowers.images import decode_and_crop

SHARD_PREFIX = "flowers"
_SKIPPED = "skipped"


class ConversionError(ValueError):
    """The photo folder cannot be converted; the message says why."""


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    out_dir: str
    shards: list[str]
    converted: int
    skipped: list[str]


def list_photos(photos_dir: str) -> list[tuple[str, str]]:
    """(path, class name) for every file under the class folders, sorted."""
    if not os.path.isdir(photos_dir):
        raise ConversionError(f"{photos_dir}: no such folder")
    folders = sorted(e for e in os.listdir(photos_dir) if os.path.isdir(os.path.join(photos_dir, e)))
    unknown = [f for f in folders if f not in features.CLASS_NAMES]
    if unknown:
        raise ConversionError(
            f"{photos_dir}: unknown class folder(s) {', '.join(unknown)}; "
            f"class folders must be among {', '.join(features.CLASS_NAMES)}"
        )
    photos = []
    for c in folders:
        folder = os.path.join(photos_dir, c)
        names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
        nested = [n for n in names if os.path.isdir(os.path.join(folder, n))]
        if nested:
            raise ConversionError(
                f"{folder}: holds sub-folder(s) {', '.join(nested)}; photos must lie directly in <class>/"
            )
        if not names:
            raise ConversionError(f"{folder}: class folder is empty; add photos or remove the folder")
        dangling = [n for n in names if not os.path.exists(os.path.join(folder, n))]
        if dangling:
            raise ConversionError(
                f"{folder}: broken link(s) {', '.join(dangling)} point at nothing; remove them or point them at photos"
            )
        photos.extend((os.path.join(folder, n), c) for n in names)
    if not photos:
        raise ConversionError(
            f"{photos_dir}: no images found; expected <class>/<photo>.jpg "
            f"with classes {', '.join(features.CLASS_NAMES)}"
        )
    return photos


def to_example(image_bytes: bytes, class_name: str, size: int) -> tf.train.Example:
    """One photo as a labs-format tf.Example, centre-cropped to size x size."""
    pixels = decode_and_crop(tf.constant(image_bytes), size)
    jpeg = tf.io.encode_jpeg(tf.cast(tf.round(pixels), tf.uint8), quality=95).numpy()
    index = features.class_id(class_name)
    feature = {
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
        features.CLASS_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
        features.LABEL_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[class_name.encode()])),
        features.SIZE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[size, size])),
        features.ONE_HOT_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=features.one_hot(index))),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


class _ToExample(beam.DoFn):
    def __init__(self, size: int):
        self._size = size

    def process(self, item: tuple[str, str]) -> Iterable:
        path, class_name = item
        with open(path, "rb") as f:
            data = f.read()
        try:
            example = to_example(data, class_name, self._size)
        except tf.errors.InvalidArgumentError:
            beam.metrics.Metrics.counter("convert", "skipped").inc()
            yield beam.pvalue.TaggedOutput(_SKIPPED, path)
            return
        yield example.SerializeToString()


def convert(photos_dir: str, data_root: str, **kwargs) -> ConversionResult:
    """Start a data root: `photos_dir` becomes `data_root/span-1/`. An
    existing, non-empty data root is refused: new photos go in with `add_span`."""
    if os.path.isdir(data_root) and [n for n in os.listdir(data_root) if not n.startswith(".")]:
        raise ConversionError(
            f"{data_root}: already exists and is not empty; add new photos as the next span with "
            f"`flowers data add-span {photos_dir} {data_root}`, or choose a new folder"
        )
    return write_span(photos_dir, layout.span_dir(data_root, 1), **kwargs)


def add_span(photos_dir: str, data_root: str, **kwargs) -> ConversionResult:
    """Convert `photos_dir` into the next `span-N/` folder under `data_root`,
    the span the next run ingests."""
    layout.refuse_flat(data_root)
    existing = layout.spans(data_root)
    return write_span(photos_dir, layout.span_dir(data_root, existing[-1] + 1 if existing else 1), **kwargs)


def write_span(
    photos_dir: str,
    out_dir: str,
    image_size: int = DataConfig.image_size,
    num_shards: int = DEFAULT_SHARDS,
    beam_args: Sequence[str] = (),
) -> ConversionResult:
    """Convert `photos_dir` into shards in the new folder `out_dir`; on any
    error nothing is left behind."""
    photos = list_photos(photos_dir)
    if os.path.exists(out_dir):
        raise ConversionError(f"{out_dir}: already exists; choose a new span folder")
    os.makedirs(out_dir)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=out_dir)
    try:
        _run(photos, staging, image_size, num_shards, beam_args)
        skipped = _read_skipped(staging)
        if len(skipped) == len(photos):
            raise ConversionError(f"{photos_dir}: none of the {len(photos)} files decode as images")
        shards = sorted(n for n in os.listdir(staging) if n.endswith(layout.SHARD_SUFFIX))
        for name in shards:
            os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ConversionResult(
        out_dir=out_dir,
        shards=[os.path.join(out_dir, n) for n in shards],
        converted=len(photos) - len(skipped),
        skipped=skipped,
    )


def _run(photos, staging: str, size: int, num_shards: int, beam_args: Sequence[str]) -> None:
    with beam.Pipeline(options=PipelineOptions(list(beam_args))) as p:
        results = (
            p
            | "ListPhotos" >> beam.Create(photos)
            | "ToExample" >> beam.ParDo(_ToExample(size)).with_outputs(_SKIPPED, main="examples")
        )
        _ = results.examples | "WriteShards" >> beam.io.WriteToTFRecord(
            os.path.join(staging, SHARD_PREFIX),
            file_name_suffix=layout.SHARD_SUFFIX,
            num_shards=num_shards,
        )
        _ = results[_SKIPPED] | "WriteSkipped" >> beam.io.WriteToText(
            os.path.join(staging, _SKIPPED), shard_name_template=""
        )


def _read_skipped(staging: str) -> list[str]:
    path = os.path.join(staging, _SKIPPED)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return sorted(line.strip() for line in f if line.strip())
