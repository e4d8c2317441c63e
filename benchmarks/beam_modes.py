"""StatisticsGen's work under both DirectRunner modes, alternating, in one
invocation: the figures behind `run.beam_multiprocessing_above_mb`.

    .venv/bin/python benchmarks/beam_modes.py [DATA_ROOT] [--repeat N]

Computes TFDV statistics of every shard under DATA_ROOT (default: the bundled
sample) in-memory and on worker processes, N times each, and prints one JSON
line: the shards' MB, the seconds of each mode and the ratio of the fastest
of each. Not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from common import commit, say


def main(argv=None) -> None:
    from flowers.config import IN_MEMORY_BEAM_ARGS, LOCAL_BEAM_ARGS, SAMPLE_DATA
    from flowers.data import layout

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_root", nargs="?", default=SAMPLE_DATA)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)

    import tensorflow_data_validation as tfdv
    from apache_beam.options.pipeline_options import PipelineOptions

    pattern = f"{args.data_root.rstrip('/')}/{layout.SPAN_PREFIX}*/*{layout.SHARD_SUFFIX}"
    modes = {"in_memory": IN_MEMORY_BEAM_ARGS, "multi_processing": LOCAL_BEAM_ARGS}
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.repeat):
        for mode, beam_args in modes.items():
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                tfdv.generate_statistics_from_tfrecord(
                    pattern, output_path=f"{out}/stats", pipeline_options=PipelineOptions(list(beam_args))
                )
            seconds[mode].append(round(time.perf_counter() - start, 1))
            say(f"{mode}: {seconds[mode][-1]} s")
    print(
        json.dumps(
            {
                "commit": commit(),
                "data_root": args.data_root,
                "shards_mb": round(layout.input_mb(args.data_root), 1),
                "seconds": seconds,
                "multi_processing_over_in_memory": round(
                    min(seconds["multi_processing"]) / min(seconds["in_memory"]), 2
                ),
            }
        )
    )


if __name__ == "__main__":
    import flowers  # noqa: F401  (Keras 2 before TensorFlow loads)

    main()
