"""Build a small, stratified sample data root from a photo folder, keeping
the photographers' CC-BY credits (LICENSE.txt lines) beside the shards."""

from __future__ import annotations

import os
import tempfile

from flowers import features
from flowers.data import convert

LICENSE_FILE = "LICENSE.txt"


def make_sample(photos_dir: str, out_dir: str, per_class: int, **kwargs) -> convert.ConversionResult:
    """The first `per_class` photos of each class (by name) as span 1 of `out_dir`."""
    # Checked before anything is written: a sample must carry the credits,
    # and convert's hints would name the temporary folder.
    if not os.path.isfile(os.path.join(photos_dir, LICENSE_FILE)):
        raise convert.ConversionError(
            f"{photos_dir}: no {LICENSE_FILE} with the photographers' credits (the tf_flowers download has one); "
            "a sample keeps the credits of its photos"
        )
    if os.path.isdir(out_dir) and [n for n in os.listdir(out_dir) if not n.startswith(".")]:
        raise convert.ConversionError(f"{out_dir}: already exists and is not empty; choose a new folder")
    chosen = [(p, c) for c in features.CLASS_NAMES for p, _ in _first(photos_dir, c, per_class)]
    short = {c: n for c in features.CLASS_NAMES if (n := sum(1 for _, k in chosen if k == c)) < per_class}
    if short:
        found = ", ".join(f"{c} {n}" for c, n in short.items())
        raise convert.ConversionError(
            f"{photos_dir}: fewer photos than --per-class {per_class} ({found}); "
            f"pass --per-class {min(short.values())} or add photos"
        )
    with tempfile.TemporaryDirectory() as tmp:
        for path, class_name in chosen:
            os.makedirs(os.path.join(tmp, class_name), exist_ok=True)
            os.symlink(os.path.abspath(path), os.path.join(tmp, class_name, os.path.basename(path)))
        result = convert.convert(tmp, out_dir, **kwargs)
    _write_credits(photos_dir, out_dir, {f"{c}/{os.path.basename(p)}" for p, c in chosen})
    return result


def _first(photos_dir: str, class_name: str, n: int) -> list[tuple[str, str]]:
    folder = os.path.join(photos_dir, class_name)
    if not os.path.isdir(folder):
        return []
    return [(os.path.join(folder, name), class_name) for name in sorted(os.listdir(folder))[:n]]


def _write_credits(photos_dir: str, out_dir: str, photos: set[str]) -> None:
    with open(os.path.join(photos_dir, LICENSE_FILE), encoding="utf-8") as f:
        lines = f.read().splitlines()
    first_credit = next(i for i, line in enumerate(lines) if line.split("/", 1)[0] in features.CLASS_NAMES)
    header = [line for line in lines[:first_credit] if line.strip()]
    credits = [line for line in lines if line.split(" ", 1)[0] in photos]
    with open(os.path.join(out_dir, LICENSE_FILE), "w", encoding="utf-8") as f:
        f.write("\n".join(header + [""] + credits) + "\n")
