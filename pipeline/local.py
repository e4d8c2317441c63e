"""Run the pipeline here: TFX LocalDagRunner, Beam DirectRunner, ML Metadata in SQLite.

`python -m flowers.pipeline.local RUN_ID` is the worker process that
`flowers.pipeline.supervisor` starts: it reads the config from
$FLOWERS_CONFIG, runs every component in this process under the given run
id, and writes one progress line per component to file descriptor
`flowers.progress` (everything else goes to its stdout/stderr, the run log).
It ends with its supervisor, however that ends (`flowers.pipeline.lifeline`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import time
import traceback
from typing import Callable

from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.compiler import compiler, constants
from tfx.orchestration import metadata
from tfx.orchestration.local import runner_utils
from tfx.orchestration.portable import launcher, runtime_parameter_utils

from flowers import progress
from flowers.components import names
from flowers.config import PipelineConfig
from flowers.data import layout
from flowers.pipeline import lifeline
from flowers.pipeline.pipeline import create_pipeline

CONFIG_ENV = "FLOWERS_CONFIG"


def metadata_config(config: PipelineConfig):
    return metadata.sqlite_metadata_connection_config(config.metadata_path)


def run(config: PipelineConfig, run_id: str, report: Callable[[str], None] = progress.say) -> None:
    """Every component in order, under `run_id`, as TFX's LocalDagRunner
    does, reporting each one's end (ran / cached / failed, seconds). A failed
    component raises: no later component starts."""
    ir = compiler.Compiler().compile(create_pipeline(config, metadata_config(config)))
    runtime_parameter_utils.substitute_runtime_parameter(ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
    deployment = runner_utils.extract_local_deployment_config(ir)
    connection = getattr(
        deployment.metadata_connection_config, deployment.metadata_connection_config.WhichOneof("connection_config")
    )
    for node in ir.nodes:
        pipeline_node = node.pipeline_node
        node_id = pipeline_node.node_info.id
        if node_id == names.BASELINE:  # what was pushed since the last run counts
            pipeline_node.execution_options.caching_options.enable_cache = False
        component = launcher.Launcher(
            pipeline_node=pipeline_node,
            mlmd_connection=metadata.Metadata(connection),
            pipeline_info=ir.pipeline_info,
            pipeline_runtime_spec=ir.runtime_spec,
            executor_spec=runner_utils.extract_executor_spec(deployment, node_id),
            custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment, node_id),
        )
        lifeline.check()  # no component starts for a supervisor that is gone
        report(f"starting {node_id}")  # (a line that starts with the id says how it ended)
        start = time.monotonic()
        # The push commits (rename, then ML Metadata's record) or not at all.
        committing = lifeline.stops_deferred() if node_id == names.PUSHER else contextlib.nullcontext()
        try:
            with committing, progress.heartbeat(node_id, start, report):
                info = component.launch()
        except Exception as error:
            report(f"{node_id:<32} failed  {time.monotonic() - start:6.1f} s  {_first_line(error)}")
            raise
        state = _state(connection, info)
        report(f"{node_id:<32} {state:<7} {time.monotonic() - start:6.1f} s")
        served = already_served(config, info) if node_id == names.TRAINER and state == "cached" else None
        if served:
            from flowers.runs import records, results

            results.mark_unchanged(records.store_for(config), run_id, served)
            report(
                f"nothing new: the cached Trainer's model is version {served}, the one served; "
                "no evaluation, no push (`flowers run --force` trains and evaluates anyway)"
            )
            return


def already_served(config: PipelineConfig, info) -> str | None:
    """The served version, when it was pushed from the model this (cached)
    Trainer hands on by a run with these same settings: the data, the
    settings and everything upstream are what produced it, so nothing is new."""
    import json

    from flowers import settings
    from flowers.runs import records, results, rollback

    store = records.store_for(config)
    versions = rollback.pushed_versions(config.serving_dir)
    models = records.output_ids(store, info.execution_id, "model")
    if not models or not versions or records.pushed_version(store, models[-1]) != versions[-1]:
        return None
    pusher = next(
        (
            s
            for s in map(lambda r: results.summarize(store, r), reversed(records.run_ids(store)))
            if s.pushed_version == versions[-1]
        ),
        None,
    )
    now = json.loads(json.dumps(settings.values(config)))  # as recorded: lists, not tuples

    def what(values: dict) -> dict:  # where the run writes is not what it makes
        return {k: v for k, v in values.items() if k != "output_dir"}

    return versions[-1] if pusher is not None and what(pusher.settings) == what(now) else None


def _state(connection, info) -> str:
    """ "ran" or "cached", as ML Metadata recorded the node's execution."""
    if info is None or not getattr(info, "execution_id", None):
        return "done"
    with metadata.Metadata(connection) as m:
        (execution,) = m.store.get_executions_by_id([info.execution_id])
    return "cached" if execution.last_known_state == metadata_store_pb2.Execution.CACHED else "ran"


def _first_line(error: BaseException) -> str:
    """The line that says what went wrong: Beam wraps a worker's error in a
    traceback, whose last "...Error: ..." line is the cause."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Refused)\b.*:", line)]
    cause = causes[-1] if causes else f"{type(error).__name__}: {lines[0] if lines else ''}"
    return cause.split(": b'")[0][:300]  # no hex dump of the bytes at fault


def main() -> None:
    lifeline.watch_supervisor()
    progress.when_closed = lifeline.die
    run_id = sys.argv[1]
    config = PipelineConfig.from_json(os.environ[CONFIG_ENV])
    spans = layout.spans(config.data.data_root)  # as the supervisor reads them, at the start
    finished = False
    try:
        run(config, run_id)
        finished = True
    except Exception:
        traceback.print_exc()  # into the run log
    finally:
        record_run(config, run_id, spans, finished)
        if config.run.report:
            write_report(config, run_id)
    exit_now(0 if finished else 1)


def exit_now(code: int) -> None:
    """Exit without tearing the interpreter down: with TensorFlow, Beam and
    TFX loaded that took 3.5 s of every run, after its last line. What an
    exit owes is done first: atexit handlers (temporary folders' cleanup,
    absl's log flush) and the buffered output."""
    atexit._run_exitfuncs()  # CPython's own: what a normal exit runs first
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def record_run(config: PipelineConfig, run_id: str, spans: list[int], finished: bool) -> None:
    """The run's spans and settings (which the report shows) and, once every
    component has ended, its summary: summarized here, where TensorFlow and
    TFMA are loaded already, the supervisor and the report read it instead of
    loading them again (10 s at the end of every run)."""
    from flowers.runs import records, results

    try:
        store = records.store_for(config)
        results.record_run(store, run_id, config, spans)
        if finished:
            results.record_summary(store, results.summarize(store, run_id, live_run=None))
    except Exception:
        traceback.print_exc()  # the supervisor summarizes the run itself


def write_report(config: PipelineConfig, run_id: str) -> None:
    """The run's HTML report and TensorBoard command, as progress lines; a
    report that cannot be written is noted in the log, never a failed run."""
    from flowers.runs import report

    try:
        progress.say("writing the report")
        with progress.heartbeat("report", time.monotonic()):
            path = report.write_report(config, run_id)
        progress.say(f"report: {path}")
        progress.say(f"tensorboard: {report.tensorboard_command(config, run_id)}")
    except Exception:
        traceback.print_exc()


if __name__ == "__main__":
    main()
