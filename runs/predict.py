"""Use a pushed model: find it through ML Metadata and classify image files.

Files are classified in batches through the model's `serving_default`
signature (raw image bytes in), in this process (`predict_files`) or as an
Apache Beam job (`predict_with_beam`: RunInference, for folders too large for
one machine, e.g. on Dataflow). Either way a file that cannot be read as an
image becomes a row with an "error" and every other file is still classified.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Iterable, Iterator, Sequence

from flowers import features
from flowers.config import PipelineConfig
from flowers.runs import records

# What a folder walk picks up (case-insensitive); files named on the command
# line are always tried, whatever their name.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
DEFAULT_BATCH_SIZE = 32
FORMATS = ("jsonl", "csv")
PROBABILITY_PREFIX = "p_"
CSV_COLUMNS = (
    "file",
    "model_version",
    "class",
    "class_id",
    "confidence",
    *(PROBABILITY_PREFIX + name for name in features.CLASS_NAMES),
    "error",
    "unsure",
)


def mark_unsure(rows, below: float):
    """Rows with `unsure` true where the top class's probability is under
    `below` (the report's calibration section shows how far to trust it)."""
    for row in rows:
        if "confidence" in row:
            row["unsure"] = row["confidence"] < below
        yield row


class ModelError(ValueError):
    """The model folder cannot be used; the message names it."""


def newest_pushed_model(config: PipelineConfig) -> str:
    """The serving directory of the most recently pushed (blessed) model."""
    store = records.store_for(config)
    pushed = [a for a in store.get_artifacts_by_type("PushedModel") if a.custom_properties["pushed"].int_value]
    if not pushed:
        raise LookupError(f"{config.metadata_path}: no model has been pushed yet (none was blessed)")
    return max(pushed, key=lambda a: a.id).custom_properties["pushed_destination"].string_value


def load(model_dir: str):
    """The model's raw-bytes signature; a clear error if the folder is not a flowers SavedModel."""
    import tensorflow as tf

    if not tf.saved_model.contains_saved_model(model_dir):
        raise ModelError(f"{model_dir} is not a SavedModel folder (no saved_model.pb); pass a pushed version folder")
    model = tf.saved_model.load(model_dir)
    if features.BYTES_SIGNATURE not in model.signatures:
        raise ModelError(f"{model_dir} has no {features.BYTES_SIGNATURE!r} signature: not a flowers model")
    return model.signatures[features.BYTES_SIGNATURE]


def model_version(model_dir: str) -> str:
    """The name rows carry: the pushed version folder's name."""
    return os.path.basename(os.path.normpath(model_dir))


def list_images(inputs: Sequence[str]) -> tuple[list[str], int]:
    """The files to classify, and how many files a folder walk passed over.

    Files are taken as given, in order; a folder is walked recursively for
    files with an image extension (IMAGE_EXTENSIONS, any case; hidden files
    and folders skipped), sorted. Local paths or any URI TensorFlow reads
    (gs://). A path that does not exist is an error (FileNotFoundError).
    """
    import tensorflow as tf

    found: list[str] = []
    passed_over = 0
    for path in inputs:
        if tf.io.gfile.isdir(path):
            for folder, subfolders, files in tf.io.gfile.walk(path):
                subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                        found.append(os.path.join(folder, name))
                    else:
                        passed_over += 1
        elif tf.io.gfile.exists(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found, passed_over


def predict_files(model_dir: str, paths: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[dict]:
    """One row per file, in order: class name, id, confidence and
    probabilities, and the model version; a file that cannot be read or is
    not an image gets an "error" instead, and the others are still
    classified. Files go through the signature `batch_size` at a time."""
    predict = load(model_dir)  # now, not at the first row: a bad folder is refused at once
    return _predict_rows(predict, model_version(model_dir), paths, batch_size)


def _predict_rows(predict, version: str, paths: Sequence[str], batch_size: int) -> Iterator[dict]:
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        readable, rows = [], {}
        for path in chunk:
            image, error = read_file(path)
            if error:
                rows[path] = error_row(path, version, error)
            else:
                readable.append((path, image))
        for row in classify_batch(predict, version, readable):
            rows[row["file"]] = row
        for path in chunk:
            yield rows[path]


def read_file(path: str) -> tuple[bytes | None, str | None]:
    """The file's bytes, or why it cannot be read."""
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read(), None
    except (OSError, tf.errors.OpError) as error:
        return None, f"cannot read the file: {_first_line(getattr(error, 'message', '') or str(error))}"


def classify_batch(predict, version: str, batch: Sequence[tuple[str, bytes]]) -> list[dict]:
    """Rows for (path, image bytes) pairs, in order, from one call of the
    signature. If the call fails (some file is not an image) the batch is
    halved until each bad file stands alone: it gets an error row, and the
    rest are classified."""
    import tensorflow as tf

    if not batch:
        return []
    try:
        out = predict(**{features.SERVING_BYTES_INPUT: tf.constant([image for _, image in batch])})
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        if len(batch) == 1:
            path, image = batch[0]
            return [error_row(path, version, f"not a readable image: {_image_error(image, error)}")]
        half = len(batch) // 2
        return classify_batch(predict, version, batch[:half]) + classify_batch(predict, version, batch[half:])
    names = out[features.CLASS_NAME_OUTPUT].numpy()
    ids = out[features.CLASS_ID_OUTPUT].numpy()
    probabilities = out[features.PROBABILITIES_OUTPUT].numpy()
    return [
        {
            "file": path,
            "model_version": version,
            "class": names[i].decode(),
            "class_id": int(ids[i]),
            "confidence": float(probabilities[i].max()),
            "probabilities": dict(zip(features.CLASS_NAMES, map(float, probabilities[i]))),
        }
        for i, (path, _) in enumerate(batch)
    ]


def error_row(path: str, version: str, error: str) -> dict:
    return {"file": path, "model_version": version, "error": error}


def _image_error(image: bytes, graph_error) -> str:
    """Why the bytes are not an image, in the decoder's own words."""
    import tensorflow as tf

    try:
        tf.io.decode_image(image, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        return _clean(error.message) or type(error).__name__
    return _clean(graph_error.message) or type(graph_error).__name__


def _clean(message: str | None) -> str:
    """TensorFlow's message without function / node names and op tags."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", message or "")
    return re.sub(r"\s*\[Op:\w+\]", "", _first_line(text)).strip()


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


# Output files: JSON lines (one row as `predict_files` yields it) or CSV (one
# column per class probability).


def format_for(out_file: str | None, fmt: str | None) -> str:
    """The output format: as asked, else by the file's extension (.csv is CSV)."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
        return fmt
    return "csv" if out_file and out_file.lower().endswith(".csv") else "jsonl"


def csv_header() -> str:
    return _csv_line(CSV_COLUMNS)


def format_row(row: dict, fmt: str) -> str:
    """One line, without its newline."""
    if fmt == "jsonl":
        return json.dumps(row)
    probabilities = row.get("probabilities", {})
    values = {**row, **{PROBABILITY_PREFIX + k: v for k, v in probabilities.items()}}
    return _csv_line(["" if values.get(c) is None else values[c] for c in CSV_COLUMNS])


def _csv_line(values: Iterable) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def read_rows(path: str) -> list[dict]:
    """Rows back from a JSON lines or CSV file this module wrote (for checks)."""
    with open(path, newline="") as f:
        if path.lower().endswith(".csv"):
            return list(csv.DictReader(f))
        return [json.loads(line) for line in f if line.strip()]


# The same classification as a Beam job.


def _handler_class():
    """A RunInference model handler over the serving signature (Beam's own
    TFModelHandlerTensor loads Keras models through tensorflow_hub, which
    does not import with TF 2.16, and calls the model, not a signature)."""
    from apache_beam.ml.inference.base import ModelHandler

    class ServingSignatureHandler(ModelHandler):
        def __init__(self, model_dir: str, batch_size: int):
            super().__init__(min_batch_size=1, max_batch_size=batch_size)
            self.model_dir = model_dir

        def load_model(self):
            return load(self.model_dir)

        def run_inference(self, batch, model, inference_args=None):
            return classify_batch(model, model_version(self.model_dir), batch)

        def get_num_bytes(self, batch) -> int:
            return sum(len(image) for _, image in batch)

        def get_metrics_namespace(self) -> str:
            return "flowers_predict"

    return ServingSignatureHandler


class _ReadFiles:
    """Beam step: path -> (path, bytes), or an error row on the "errors" output."""

    def __init__(self, version: str):
        self.version = version

    def __call__(self, path: str):
        import apache_beam as beam

        image, error = read_file(path)
        if error:
            yield beam.pvalue.TaggedOutput("errors", error_row(path, self.version, error))
        else:
            yield path, image


def _count(row: dict) -> dict:
    from apache_beam.metrics import Metrics

    Metrics.counter("flowers_predict", "rows").inc()
    if "error" in row:
        Metrics.counter("flowers_predict", "errors").inc()
    return row


def predict_with_beam(
    model_dir: str,
    paths: Sequence[str],
    out_file: str,
    fmt: str = "jsonl",
    beam_args: Sequence[str] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[int, int]:
    """Classify `paths` in a Beam pipeline (RunInference, batches of up to
    `batch_size`) and write one row per file to `out_file` (one file, rows in
    no particular order). Runs on the runner `beam_args` name (DirectRunner
    by default; Dataflow with its usual arguments, the model and files then
    on gs://). Returns (rows, rows with an error)."""
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.options.pipeline_options import PipelineOptions

    load(model_dir)  # a bad model folder is refused before the job starts
    version = model_version(model_dir)
    handler = _handler_class()(model_dir, batch_size)
    pipeline = beam.Pipeline(options=PipelineOptions(list(beam_args)))
    read = (
        pipeline
        | "Files" >> beam.Create(list(paths))
        | "Spread" >> beam.Reshuffle()
        | "Read" >> beam.FlatMap(_ReadFiles(version)).with_outputs("errors", main="images")
    )
    predicted = read.images | "Classify" >> RunInference(handler)
    _ = (
        (predicted, read.errors)
        | "Rows" >> beam.Flatten()
        | "Count" >> beam.Map(_count)
        | "Format" >> beam.Map(format_row, fmt)
        | "Write"
        >> beam.io.WriteToText(out_file, shard_name_template="", header=csv_header() if fmt == "csv" else None)
    )
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace("flowers_predict"))["counters"]
    }
    return int(counters.get("rows", 0)), int(counters.get("errors", 0))
