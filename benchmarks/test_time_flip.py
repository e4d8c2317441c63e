"""What `training.test_time_flip` buys and costs, on one finished run's model.

    .venv/bin/python benchmarks/test_time_flip.py OUTPUT_DIR [--requests N]

OUTPUT_DIR is a finished run (e.g. `benchmarks/accuracy.py --work W` leaves
one in W/production). Its model (the run's settings, its weights file and its
Transform graph) is exported twice, as the Trainer does, without and with
the flip; each SavedModel's `serving_default` then classifies the run's eval
split (accuracy) and answers N one-photo requests and the eval split in
batches of 32 (latency p50/p95 and images/s), in this process, one after the
other. Prints one JSON line. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from common import commit, say, split_examples


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir")
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args(argv)

    import tensorflow as tf
    import tensorflow_transform as tft

    from flowers import features
    from flowers.components import export, inputs
    from flowers.components import model as model_lib
    from flowers.config import PipelineConfig
    from flowers.runs import records, results

    store = records.store_for(PipelineConfig(output_dir=args.output_dir))
    summary = results.summarize(store, records.run_ids(store)[-1])
    config = PipelineConfig(output_dir=args.output_dir).override(
        {k: str(v) for k, v in summary.settings.items() if k.startswith("training.")}
    )
    tft_output = tft.TFTransformOutput(store.get_artifacts_by_type("TransformGraph")[-1].uri)
    model = model_lib.build_model(config.training, inputs.image_size(tft_output))
    model.load_weights(os.path.join(summary.model_uri, export.WEIGHTS_FILE))
    jpegs, truth = map(list, zip(*split_examples(store)["eval"]))
    say(f"model of run {summary.run_id}: {len(truth)} eval photos, {args.requests} one-photo requests")

    result = {
        "commit": commit(),
        "run": summary.run_id,
        "eval_images": len(truth),
        "settings": config.training.__dict__,
    }
    for flip in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            export.export(model, tft_output, folder, flip)
            serve = tf.saved_model.load(folder).signatures[features.BYTES_SIGNATURE]
            result["flip" if flip else "plain"] = _measure(serve, jpegs, truth, args.requests, features)
    plain, flipped = result["plain"], result["flip"]
    result["ratios"] = {
        "latency_p50": round(flipped["latency_p50_ms"] / plain["latency_p50_ms"], 2),
        "images_per_s": round(flipped["batch32_images_per_s"] / plain["batch32_images_per_s"], 2),
        "accuracy_points": round(100 * (flipped["accuracy"] - plain["accuracy"]), 2),
    }
    print(json.dumps(result, default=str))


def _measure(serve, jpegs: list[bytes], truth: list[int], requests: int, features) -> dict:
    import numpy as np
    import tensorflow as tf

    def call(batch):
        return serve(**{features.SERVING_BYTES_INPUT: tf.constant(batch)})

    call(jpegs[:1]), call(jpegs[:32])  # traced and warm
    start, ids = time.perf_counter(), []
    for i in range(0, len(jpegs), 32):
        ids.extend(call(jpegs[i : i + 32])[features.CLASS_ID_OUTPUT].numpy())
    batch_seconds = time.perf_counter() - start
    latencies = []
    for i in range(requests):
        one = time.perf_counter()
        call(jpegs[i % len(jpegs) : i % len(jpegs) + 1])
        latencies.append(1000 * (time.perf_counter() - one))
    return {
        "accuracy": round(float(np.mean(np.array(ids) == np.array(truth))), 4),
        "latency_p50_ms": round(statistics.median(latencies), 1),
        "latency_p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "batch32_images_per_s": round(len(jpegs) / batch_seconds, 1),
    }


if __name__ == "__main__":
    main()
