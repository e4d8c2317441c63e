"""Accuracy benchmark: the production Trainer against the lab's recipe, head to head.

    .venv/bin/python benchmarks/accuracy.py [PHOTOS_DIR] [--work DIR] [--set KEY=VALUE ...]

Converts PHOTOS_DIR (default: ../shared/flowers/flower_photos beside the
repository, when present; otherwise the bundled sample's shards are used as
they are) into TFRecords once, then runs the whole TFX pipeline twice on that
one data root, each run in its own process and output folder:

- production: the pipeline configuration a user gets without flags;
- lab: the lab's recipe trained by the same pipeline (frozen backbone,
  Flatten + Dense softmax, no augmentation, no fine-tuning, no label
  smoothing, 5 epochs).

ImportExampleGen splits 70/15/15 (train / validation / eval) by a hash of each example's deterministic
serialization, so both runs (and every rerun on the same photos: the
conversion is deterministic) train and evaluate on the same split; seeds come
from the configuration. CPU training is not bit-exact between runs (threaded
kernels), so reruns agree to within about a point on 555 eval photos. Prints one JSON line: eval accuracy and
per-class recall (from the Evaluator, via ML Metadata), train/eval image
counts, epochs, training seconds (the Keras fit epochs, from the history kept
with the model), Trainer and total pipeline seconds, for both recipes, and the
head-to-head gain, and the commit it ran. Not a test: on the 2,922 photos it
takes about 13 minutes on 2 cores (production ~8, lab ~4, conversion <1).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

from common import DEFAULT_PHOTOS, REPO, commit, component_seconds, say

# The lab's recipe, expressed in the pipeline's own configuration.
LAB = {
    # The lab's MobileNetV2() with default arguments: alpha 1.0.
    "alpha": 1.0,
    "head": "flatten",
    "augment": False,
    "label_smoothing": 0.0,
    "fine_tune_epochs": 0,
    "epochs": 5,
    "learning_rate": 1e-3,
    # 5 plain epochs at 1e-3, as the lab ran them: no early stop and no
    # learning-rate drop within them (the pipeline still keeps the best epoch).
    "early_stopping_patience": 5,
}
RECIPES = {"production": {}, "lab": LAB}
# Issue 21's goals: 95% on eval, 94% on each degraded copy of it.
TARGET = {"min_accuracy": 0.95, "min_gain_points": 4.0, "max_pipeline_minutes": 25.0, "min_degraded_accuracy": 0.94}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="?", help="photo folder (<class>/<photo>.jpg)")
    parser.add_argument("--work", help="folder for shards and pipeline outputs (default: a new temp folder)")
    parser.add_argument("--recipes", default="production,lab", help="comma-separated subset of production,lab")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a production setting (the lab's recipe is fixed)",
    )
    parser.add_argument("--child", nargs=3, metavar=("OVERRIDES", "DATA_ROOT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(json.loads(args.child[0]), args.child[1], args.child[2])

    started = time.perf_counter()
    work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="flowers-benchmark-"))
    data_root, source, convert_s = _data(args.photos, work)
    overrides = dict(s.split("=", 1) for s in args.settings)
    line = {"benchmark": "accuracy", "commit": commit(), "data": source, "work_dir": work, "convert_seconds": convert_s}
    for name in args.recipes.split(","):
        recipe = {**RECIPES[name], **(overrides if name == "production" else {})}
        line[name] = _run(name, recipe, data_root, os.path.join(work, name))
    if "production" in line and "lab" in line:
        prod, lab = line["production"], line["lab"]
        gain = round(100 * (prod["eval_accuracy"] - lab["eval_accuracy"]), 2)
        line["gain_points"] = gain
        line["target"] = {
            **TARGET,
            "met": prod["eval_accuracy"] >= TARGET["min_accuracy"]
            and gain >= TARGET["min_gain_points"]
            and prod["pipeline_seconds"] <= 60 * TARGET["max_pipeline_minutes"]
            and all(v["accuracy"] >= TARGET["min_degraded_accuracy"] for v in prod["degraded_eval_accuracy"].values()),
        }
    line["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(line), flush=True)


def _data(photos: str | None, work: str) -> tuple[str, str, float | None]:
    """The data root both recipes read: converted photos, reused when `work`
    already holds them, or the bundled sample."""
    if photos is None and not os.path.isdir(DEFAULT_PHOTOS):
        from flowers.config import SAMPLE_DATA

        say(f"{DEFAULT_PHOTOS} not found; using the bundled sample")
        return SAMPLE_DATA, "bundled sample", None
    photos = os.path.abspath(photos or DEFAULT_PHOTOS)
    data_root = os.path.join(work, "data")
    if glob.glob(os.path.join(data_root, "span-*", "*.tfrec")):
        say(f"reusing the shards in {data_root}")
        return data_root, photos, None
    from flowers.data import convert

    say(f"converting {photos} into {data_root}")
    start = time.perf_counter()
    result = convert.convert(photos, data_root)
    if result.skipped:
        say(f"skipped {len(result.skipped)} file(s) that are not images")
    return data_root, photos, round(time.perf_counter() - start, 1)


def _run(name: str, overrides: dict, data_root: str, out: str) -> dict:
    """One pipeline run in a fresh process (no state shared between recipes)."""
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, "pipeline.log")
    say(f"{name}: running the pipeline {json.dumps(overrides)}; log in {log_path}")
    with open(log_path, "w") as log:
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", json.dumps(overrides), data_root, out],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    if done.returncode != 0:
        raise SystemExit(f"{name}: the pipeline failed (exit {done.returncode}); see {log_path}")
    with open(os.path.join(out, "benchmark.json")) as f:
        result = json.load(f)
    say(f"{name}: eval accuracy {result['eval_accuracy']:.4f} in {result['pipeline_seconds']:.0f} s")
    return result


def _child(overrides: dict, data_root: str, out: str) -> None:
    from flowers.config import PipelineConfig
    from flowers.pipeline import supervisor
    from flowers.runs import records

    config = (
        PipelineConfig(output_dir=os.path.abspath(out))
        .override({"data.data_root": data_root, "run.enable_cache": False})
        .override(overrides)
    )
    start = time.perf_counter()
    summary = supervisor.run(config, echo=say).summary
    pipeline_s = round(time.perf_counter() - start, 1)
    history = records.read_history(summary.model_uri)
    store = records.store_for(config)
    counts = _split_counts(store)
    phases = history["phase"]
    result = {
        "eval_accuracy": summary.accuracy,
        "per_class_recall": summary.per_class_recall,
        "train_images": counts.get("train"),
        "eval_images": summary.eval_examples,
        "epochs": len(phases),
        "head_epochs": phases.count("head"),
        "fine_tune_epochs": phases.count("fine_tune"),
        "best_val_accuracy": max(history["val_accuracy"]),
        "final_fit": {k: v for k, v in history.get("final_fit", {}).items() if k.endswith("epochs") or k == "examples"},
        "final_fit_seconds": round(sum(history.get("final_fit", {}).get("epoch_seconds", [])), 1),
        "last_train_accuracy": history["accuracy"][-1],
        "training_seconds": round(sum(history.get("epoch_seconds", [])), 1),
        "trainer_seconds": component_seconds(store).get("Trainer"),
        "pipeline_seconds": pipeline_s,
        "blessed": summary.blessed,
        "degraded_eval_accuracy": degraded_accuracy(summary.model_uri, store),
        "training": json.loads(config.training.to_json()),
    }
    with open(os.path.join(out, "benchmark.json"), "w") as f:
        json.dump(result, f)


DEGRADATIONS = ("clean", "downscale128_q60", "blur", "crop70_96_q40")


def degraded_accuracy(model_uri: str, store) -> dict[str, dict[str, float]]:
    """The model's accuracy on the eval split as stored and on degraded copies
    made on the fly from the eval JPEGs: downscaled to 128x128 (aspect not
    kept) and recompressed at JPEG quality 60; a mild (3x3 binomial) blur; and
    the hardest, like small photos of another collection: the central 70% of
    the short side, downscaled to 96x96, JPEG quality 40. `accuracy` is the
    model's; `flip_tta` averages its probabilities over the photo and its
    mirror image (re-encoded at quality 95), what test-time augmentation by
    flipping would score."""
    import tensorflow as tf

    from flowers import features
    from flowers.components import names

    predict = tf.saved_model.load(os.path.join(model_uri, names.SERVING_FOLDER)).signatures[features.BYTES_SIGNATURE]
    examples = store.get_artifacts_by_type("Examples")[-1]
    spec = {
        features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
        features.CLASS_KEY: tf.io.FixedLenFeature([], tf.int64),
    }
    files = tf.io.gfile.glob(f"{examples.uri}/Split-eval/*")
    rows = tf.data.TFRecordDataset(files, compression_type="GZIP").map(lambda r: tf.io.parse_single_example(r, spec))
    kernel = tf.tile(tf.reshape(tf.constant([1.0, 2, 1, 2, 4, 2, 1, 2, 1]) / 16.0, [3, 3, 1, 1]), [1, 1, 3, 1])

    def encode(image, quality):
        return tf.io.encode_jpeg(tf.cast(tf.round(tf.clip_by_value(image, 0, 255)), tf.uint8), quality=quality)

    def degrade(jpeg, how):
        if how == "clean":
            return jpeg
        image = tf.cast(tf.io.decode_jpeg(jpeg, channels=3), tf.float32)
        if how == "blur":
            return encode(tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "SAME")[0], 95)
        if how == "crop70_96_q40":
            side = tf.cast(tf.cast(tf.reduce_min(tf.shape(image)[:2]), tf.float32) * 0.7, tf.int32)
            image = tf.image.resize_with_crop_or_pad(image, side, side)
            return encode(tf.image.resize(image, [96, 96], antialias=True), 40)
        return encode(tf.image.resize(image, [128, 128], antialias=True), 60)

    def mirror(jpeg):
        return encode(tf.image.flip_left_right(tf.cast(tf.io.decode_jpeg(jpeg, channels=3), tf.float32)), 95)

    result = {}
    for how in DEGRADATIONS:
        right = right_tta = total = 0
        for batch in rows.batch(64):
            jpegs = tf.stack([degrade(j, how) for j in batch[features.IMAGE_KEY]])
            out = predict(**{features.SERVING_BYTES_INPUT: jpegs})
            flipped = predict(**{features.SERVING_BYTES_INPUT: tf.stack([mirror(j) for j in jpegs])})
            mean = (out[features.PROBABILITIES_OUTPUT] + flipped[features.PROBABILITIES_OUTPUT]) / 2
            truth = batch[features.CLASS_KEY]
            right += int(tf.reduce_sum(tf.cast(out[features.CLASS_ID_OUTPUT] == truth, tf.int32)))
            right_tta += int(tf.reduce_sum(tf.cast(tf.argmax(mean, axis=-1) == truth, tf.int32)))
            total += int(truth.shape[0])
        result[how] = {"accuracy": round(right / total, 4), "flip_tta": round(right_tta / total, 4)}
    return result


def _split_counts(store) -> dict[str, int]:
    """Examples per split, counted in the ExampleGen output."""
    import tensorflow as tf

    examples = store.get_artifacts_by_type("Examples")[-1]
    names = json.loads(examples.properties["split_names"].string_value)
    return {
        name: int(
            tf.data.TFRecordDataset(tf.io.gfile.glob(f"{examples.uri}/Split-{name}/*"), compression_type="GZIP")
            .reduce(0, lambda n, _: n + 1)
            .numpy()
        )
        for name in names
    }


if __name__ == "__main__":
    main()
