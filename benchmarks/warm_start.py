"""Warm start against cold start, on two spans of real photos.

    .venv/bin/python benchmarks/warm_start.py [PHOTOS_DIR] [--per-class N] [--work DIR] [--set KEY=VALUE ...]

Splits PHOTOS_DIR (default ../shared/flowers/flower_photos) into two disjoint
spans, N photos per class each (default: half of each class each), then:

1. runs the pipeline on span 1 alone: the first pushed model;
2. adds span 2 and copies that output folder twice (ML Metadata, pushed
   versions and all), so both retrains start from the very same state;
3. retrains on both spans in one copy as a cold start (ImageNet weights) and
   in the other with `warm_start=true` (the last blessed model's weights).

Both retrains read the same spans, split the same way by hash, and are graded
by the Evaluator on the same eval examples. Prints one JSON line: per run, eval
accuracy, epochs, the Keras fit seconds, the Trainer's and the whole run's
seconds, and the warm-start line the Trainer logged. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from common import DEFAULT_PHOTOS, REPO, commit, component_seconds, say


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="?", default=DEFAULT_PHOTOS)
    parser.add_argument(
        "--per-class", type=int, default=0, help="photos per class in each span (0: half of each class)"
    )
    parser.add_argument("--work", default="/tmp/flowers-warm-start")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    from flowers.data import convert

    started = time.perf_counter()
    if os.path.exists(args.work):
        raise SystemExit(f"{args.work}: already exists; choose a new --work folder")
    halves = _split_photos(args.photos, args.per_class, os.path.join(args.work, "photos"))
    data_root = os.path.join(args.work, "data")
    sets = [arg for item in args.settings for arg in ("--set", item)]
    convert.convert(halves[0], data_root)
    first = os.path.join(args.work, "span-1-run")
    line = {"benchmark": "warm_start", "commit": commit(), "photos_per_span": _count(halves), "settings": args.settings}
    line["span_1"] = _run(first, data_root, sets)
    convert.add_span(halves[1], data_root)
    for name, extra in (("cold", []), ("warm", ["--set", "warm_start=true"])):
        out = os.path.join(args.work, f"spans-1-2-{name}")
        shutil.copytree(first, out, symlinks=True)
        line[name] = _run(out, data_root, sets + extra)
    line["warm_minus_cold"] = {
        "accuracy_points": round(100 * (line["warm"]["accuracy"] - line["cold"]["accuracy"]), 2),
        "trainer_seconds": round(line["warm"]["trainer_seconds"] - line["cold"]["trainer_seconds"], 1),
        "epochs": line["warm"]["epochs"] - line["cold"]["epochs"],
    }
    line["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(line), flush=True)


def _split_photos(photos: str, per_class: int, out: str) -> tuple[str, str]:
    """Two photo folders of symlinks: the first and the next `per_class`
    photos of each class, in name order."""
    from flowers.data.convert import list_photos

    by_class: dict[str, list[str]] = {}
    for path, class_name in list_photos(photos):
        by_class.setdefault(class_name, []).append(path)
    halves = (os.path.join(out, "span-1"), os.path.join(out, "span-2"))
    for class_name, paths in sorted(by_class.items()):
        paths.sort()
        n = per_class or len(paths) // 2
        for half, chunk in zip(halves, (paths[:n], paths[n : 2 * n])):
            os.makedirs(os.path.join(half, class_name), exist_ok=True)
            for path in chunk:
                os.symlink(os.path.abspath(path), os.path.join(half, class_name, os.path.basename(path)))
    return halves


def _count(halves) -> list[int]:
    return [sum(len(files) for _, _, files in os.walk(half)) for half in halves]


def _run(out: str, data_root: str, sets: list[str]) -> dict:
    """`flowers run` into `out`, then its figures from ML Metadata."""
    from flowers import features
    from flowers.config import PipelineConfig
    from flowers.runs import records, results

    say(f"flowers run into {out} {' '.join(sets)}")
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowers.cli.main",
            "run",
            "--no-cache",
            "--data-root",
            data_root,
            "--output-dir",
            out,
            *sets,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = round(time.perf_counter() - start, 1)
    if done.returncode not in (0, 3):
        raise SystemExit(f"{out}: the run failed (exit {done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    store = records.store_for(PipelineConfig(output_dir=out))
    summary = results.summarize(store, records.run_ids(store)[-1])
    with open(os.path.join(summary.model_uri, features.HISTORY_FILE)) as f:
        history = json.load(f)
    warm_lines = [line.strip() for line in done.stdout.splitlines() if "warm start:" in line]
    result = {
        "exit": done.returncode,
        "spans": summary.spans,
        "train_examples": summary.train_examples,
        "eval_examples": summary.eval_examples,
        "accuracy": summary.accuracy,
        "baseline_accuracy": summary.baseline_accuracy,
        "state": summary.state,
        "epochs": len(history["loss"]),
        "fit_seconds": round(sum(history["epoch_seconds"]), 1),
        "trainer_seconds": component_seconds(store).get("Trainer"),
        "run_seconds": wall,
        "warm_start_log": warm_lines,
    }
    say(f"{out}: accuracy {summary.accuracy} in {wall} s ({result['epochs']} epochs)")
    return result


if __name__ == "__main__":
    main()
