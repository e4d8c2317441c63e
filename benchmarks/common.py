"""What every benchmark shares: where the repository and the shared photos
are, the commit measured, per-component seconds of the last run, and the
progress lines (stderr; the JSON result goes to stdout). The benchmarks run
as scripts (`python benchmarks/NAME.py`), so this folder is on sys.path."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PHOTOS = os.path.join(os.path.dirname(REPO), "shared", "flowers", "flower_photos")


def component_seconds(store) -> dict[str, float]:
    """Seconds from start to finish of each component of the store's last run."""
    from flowers.runs import records

    run = records.RunRecord.load(store, records.run_ids(store)[-1])
    return {node: round(e.seconds, 1) for node, e in run.executions.items()}


def split_examples(store) -> dict[str, list[tuple[bytes, int]]]:
    """(JPEG bytes, class id) of each split of the newest Examples artifact
    in the store (what ExampleGen wrote), in file order."""
    import tensorflow as tf

    from flowers import features

    uri = store.get_artifacts_by_type("Examples")[-1].uri
    spec = {
        features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
        features.CLASS_KEY: tf.io.FixedLenFeature([], tf.int64),
    }
    split = {}
    names = ("train", "validation", "eval") if tf.io.gfile.glob(f"{uri}/Split-validation") else ("train", "eval")
    for name in names:
        files = tf.io.gfile.glob(f"{uri}/Split-{name}/*")
        rows = tf.data.TFRecordDataset(files, compression_type="GZIP").map(
            lambda r: tf.io.parse_single_example(r, spec)
        )
        split[name] = [(r[features.IMAGE_KEY].numpy(), int(r[features.CLASS_KEY])) for r in rows]
    return split


def commit() -> str | None:
    """The checked-out commit, marked "+dirty" when tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=REPO).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def say(message: str) -> None:
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)
