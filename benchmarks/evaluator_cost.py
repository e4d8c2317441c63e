"""The Evaluator's and the report's fixed costs, before and after issue 19,
side by side in one invocation.

    .venv/bin/python benchmarks/evaluator_cost.py OUTPUT_DIR [--repeat N]

OUTPUT_DIR holds a finished run that pushed a model (a tiny `flowers run` on
the bundled sample). On its eval split and its Trainer's model, in-memory
Beam, alternating, N times each:

* Evaluator, first run (nothing pushed): before, the baseline component
  copied the candidate in as its own baseline and TFX's Evaluator ran both
  models; after, the candidate alone (components/evaluator.py).
* Evaluator, with a pushed baseline: before, the pushed version copied into
  the baseline artifact; after, read in place.
* The report's eval predictions: before (to 8d89be6), the report predicted
  the eval split again (`find_mistakes`: 4.0-5.3 CPU s on the sample's eval
  split, docs/performance.md); after, it reads the Evaluator's per-example
  output (runs/report_data.py `read_predictions`), timed here.

Prints one JSON line: wall and CPU seconds per case (the copies included).
Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from common import commit, say


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)

    import tfx
    from tfx.components.evaluator import executor as tfx_evaluator
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import artifact_utils, standard_artifacts
    from tfx.utils import io_utils, proto_utils

    from flowers.components import baseline, evaluation, evaluator, names
    from flowers.config import IN_MEMORY_BEAM_ARGS, PipelineConfig
    from flowers.pipeline.pipeline import beam_pipeline_args
    from flowers.runs import records, report_data

    config = PipelineConfig(output_dir=args.output_dir)
    store = records.store_for(config)
    run = records.RunRecord.load(store, records.run_ids(store)[-1])
    trained = run.output(names.TRAINER, "model")
    examples = run.output_of_type("Examples")[1]
    version = baseline.newest_version(config.serving_dir)
    if trained is None or version is None:
        raise SystemExit(f"{args.output_dir}: needs a run with a Trainer model and a pushed version")
    pushed = f"{config.serving_dir}/{version}"

    def artifact(kind, uri: str, **strings):
        made = kind()
        made.uri = uri
        made.set_string_custom_property("tfx_version", tfx.__version__)  # TFX's current model layout
        for key, value in strings.items():
            made.set_string_custom_property(key, value)
        return made

    def evaluate(executor_class, baseline_model, work: str) -> None:
        data = artifact(standard_artifacts.Examples, examples.uri)
        data.split_names = artifact_utils.encode_split_names(["train", "eval"])
        inputs = {"examples": [data], "model": [artifact(standard_artifacts.Model, trained.uri)]}
        if baseline_model is not None:
            inputs["baseline_model"] = [baseline_model]
        outputs = {
            "evaluation": [artifact(standard_artifacts.ModelEvaluation, f"{work}/evaluation")],
            "blessing": [artifact(standard_artifacts.ModelBlessing, f"{work}/blessing")],
        }
        properties = {
            "eval_config": proto_utils.proto_to_json(evaluation.eval_config(config)),
            "example_splits": '["eval"]',
        }
        if executor_class is evaluator.Executor:
            properties["module_path"] = evaluator.__name__
        context = base_beam_executor.BaseBeamExecutor.Context(
            # As the pipeline's Beam components get them: naming a package spares TFX's sdist.
            beam_pipeline_args=beam_pipeline_args(IN_MEMORY_BEAM_ARGS),
            tmp_dir=f"{work}/tmp",
            unique_id="benchmark",
        )
        executor_class(context).Do(inputs, outputs, properties)

    def copied(source: str, work: str):
        """The baseline component before: a copy of `source` in the artifact."""
        io_utils.copy_dir(source, f"{work}/baseline/{names.SERVING_FOLDER}")
        return artifact(standard_artifacts.Model, f"{work}/baseline", **{names.PUSHED_VERSION: version})

    cases = {
        "evaluator_first_run_before": lambda w: evaluate(
            tfx_evaluator.Executor, copied(f"{trained.uri}/{names.SERVING_FOLDER}", w), w
        ),
        "evaluator_first_run_after": lambda w: evaluate(
            evaluator.Executor, artifact(standard_artifacts.Model, f"{w}/baseline", **{names.PUSHED_VERSION: ""}), w
        ),
        "evaluator_with_baseline_before": lambda w: evaluate(tfx_evaluator.Executor, copied(pushed, w), w),
        "evaluator_with_baseline_after": lambda w: evaluate(
            evaluator.Executor, artifact(standard_artifacts.Model, pushed, **{names.PUSHED_VERSION: version}), w
        ),
        "report_predictions": lambda w: report_data.read_predictions(f"{written}/evaluation"),
    }
    kept = tempfile.TemporaryDirectory(prefix="flowers-evaluation-")  # an evaluation for the report to read
    written = kept.name
    evaluate(
        evaluator.Executor,
        artifact(standard_artifacts.Model, f"{written}/baseline", **{names.PUSHED_VERSION: ""}),
        written,
    )
    # CPU seconds of this process (in-memory Beam runs in it) as well as wall
    # seconds: on a shared machine the CPU time moves far less with the load.
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, case in cases.items():
            with tempfile.TemporaryDirectory() as work:
                start, cpu = time.perf_counter(), time.process_time()
                case(work)
                seconds[name].append(round(time.perf_counter() - start, 1))
                cpu_seconds[name].append(round(time.process_time() - cpu, 1))
            say(f"{name}: {seconds[name][-1]} s ({cpu_seconds[name][-1]} s CPU)")
    print(
        json.dumps(
            {
                "commit": commit(),
                "output_dir": os.path.abspath(args.output_dir),
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
