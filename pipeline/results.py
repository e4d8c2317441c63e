"""What a pipeline run produced, read back from ML Metadata (not from guessed paths).

Light to import (ml_metadata only): TensorFlow and TFMA load when an
evaluation has to be read.
"""
from __future__ import annotations

import dataclasses
import datetime
import os

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from flowers import features
from flowers.config import PipelineConfig
from flowers.outcome import State

CANDIDATE = "candidate"  # TFMA's name for the evaluated model when a baseline is present
RUN_CONTEXT = "pipeline_run"  # TFX's context type of one pipeline run
NODE_CONTEXT = "node"
DATA_GATE = "DataGate"
# The run's final state, written by the supervisor where the executions alone
# cannot tell (an interrupted run).
STATE_PROPERTY = "flowers_state"
_UNFINISHED = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)
Execution = metadata_store_pb2.Execution


@dataclasses.dataclass(frozen=True)
class RunSummary:
    run_id: str
    state: str  # a flowers.outcome.State value
    started: str | None  # ISO time of the run context
    accuracy: float | None
    per_class_recall: dict[str, float]
    eval_examples: int | None
    blessed: bool
    pushed_to: str | None
    model_uri: str | None
    executions: dict[str, str]  # component id -> last known state
    anomalies: dict[str, list[str]]  # split -> "feature: what is wrong", found by ExampleValidator
    gate_failures: list[str]  # why the Evaluator did not bless, one line per failed threshold
    failed_component: str | None  # the component that failed, if one did


def store_for(config: PipelineConfig) -> mlmd.MetadataStore:
    if not os.path.exists(config.metadata_path):
        raise FileNotFoundError(f"{config.metadata_path}: no ML Metadata here; run the pipeline first")
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return mlmd.MetadataStore(connection)


def run_ids(store: mlmd.MetadataStore) -> list[str]:
    """Pipeline runs, oldest first."""
    runs = store.get_contexts_by_type(RUN_CONTEXT)
    return [c.name for c in sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id))]


def summarize(store: mlmd.MetadataStore, run_id: str, live_run: str | None = None) -> RunSummary:
    """`live_run`: the run holding the output dir's lock, if any; any other
    run with executions left running was killed."""
    context = store.get_context_by_type_and_name(RUN_CONTEXT, run_id)
    executions = store.get_executions_by_context(context.id)
    names = {e.id: _node_id(store, e) for e in executions}
    states = {names[e.id]: Execution.State.Name(e.last_known_state) for e in executions}
    outputs = _outputs_by_type(store, executions)
    evaluation = _last(outputs.get("ModelEvaluation"))
    accuracy, recall, count = _metrics(evaluation.uri) if evaluation else (None, {}, None)
    blessing = _last(outputs.get("ModelBlessing"))
    pushed = _last(outputs.get("PushedModel"))
    model = _last(outputs.get("Model"))
    anomalies = _last(outputs.get("ExampleAnomalies"))
    failed = next((names[e.id] for e in executions if e.last_known_state == Execution.FAILED), None)
    pushed_to = (
        pushed.custom_properties["pushed_destination"].string_value
        if pushed and pushed.custom_properties["pushed"].int_value
        else None
    )
    blessed = bool(blessing and blessing.custom_properties["blessed"].int_value)
    unfinished = any(e.last_known_state in _UNFINISHED for e in executions)
    recorded = context.custom_properties[STATE_PROPERTY].string_value if STATE_PROPERTY in context.custom_properties else ""
    if recorded:
        state = State(recorded)
    elif pushed_to:
        state = State.PUSHED
    elif failed == DATA_GATE:
        state = State.DATA_REFUSED
    elif failed:
        state = State.FAILED
    elif unfinished:
        state = State.RUNNING if run_id == live_run else State.INTERRUPTED
    elif blessing is not None and not blessed:
        state = State.REFUSED
    else:
        state = State.FAILED
    return RunSummary(
        run_id=run_id,
        state=state.value,
        started=_time(context.create_time_since_epoch),
        accuracy=accuracy,
        per_class_recall=recall,
        eval_examples=count,
        blessed=blessed,
        pushed_to=pushed_to,
        model_uri=model.uri if model else None,
        executions=states,
        anomalies=_anomalies(anomalies.uri) if anomalies else {},
        gate_failures=_gate_failures(evaluation.uri) if evaluation else [],
        failed_component=failed,
    )


def mark_interrupted(store: mlmd.MetadataStore, run_id: str) -> None:
    """Record that `run_id` was stopped: its unfinished executions become
    CANCELED and the run context says interrupted."""
    try:
        context = store.get_context_by_type_and_name(RUN_CONTEXT, run_id)
    except mlmd.errors.NotFoundError:
        return
    if context is None:
        return
    stale = [e for e in store.get_executions_by_context(context.id) if e.last_known_state in _UNFINISHED]
    for execution in stale:
        execution.last_known_state = Execution.CANCELED
    if stale:
        store.put_executions(stale)
    context.custom_properties[STATE_PROPERTY].string_value = State.INTERRUPTED.value
    store.put_contexts([context])


def pushed_destinations(store: mlmd.MetadataStore) -> set[str]:
    """Every serving folder a Pusher recorded as pushed."""
    return {
        a.custom_properties["pushed_destination"].string_value
        for a in store.get_artifacts_by_type("PushedModel")
        if a.custom_properties["pushed"].int_value
    }


def summary_lines(summary: RunSummary) -> list[str]:
    """The summary a run prints at its end."""
    acc = "n/a" if summary.accuracy is None else f"{summary.accuracy:.4f}"
    lines = [f"run:            {summary.run_id}", f"state:          {summary.state}"]
    if summary.accuracy is not None:
        lines.append(f"eval accuracy:  {acc} on {summary.eval_examples} eval examples")
    for name, recall in summary.per_class_recall.items():
        lines.append(f"  recall {name:<11} {recall:.4f}")
    for split, problems in summary.anomalies.items():
        for problem in problems:
            lines.append(f"data anomaly in {split}: {problem}")
    if summary.failed_component:
        lines.append(f"failed:         {summary.failed_component} (details in the run log)")
    lines.append(f"blessed:        {'yes' if summary.blessed else 'no'}")
    for failure in summary.gate_failures:
        lines.append(f"  gate failed:  {failure}")
    lines.append(f"pushed to:      {summary.pushed_to or 'not pushed'}")
    return lines


def _time(millis: int) -> str | None:
    if not millis:
        return None
    return datetime.datetime.fromtimestamp(millis / 1000, datetime.timezone.utc).isoformat(timespec="seconds")


def _node_id(store: mlmd.MetadataStore, execution) -> str:
    """The component id, from the execution's node context ("<pipeline>.<id>")."""
    for context in store.get_contexts_by_execution(execution.id):
        if store.get_context_types_by_id([context.type_id])[0].name == NODE_CONTEXT:
            return context.name.split(".", 1)[-1]
    return store.get_execution_types_by_id([execution.type_id])[0].name


def _outputs_by_type(store: mlmd.MetadataStore, executions) -> dict[str, list]:
    if not executions:
        return {}
    events = store.get_events_by_execution_ids([e.id for e in executions])
    ids = [ev.artifact_id for ev in events if ev.type in (mlmd.proto.Event.OUTPUT, mlmd.proto.Event.DECLARED_OUTPUT)]
    artifacts = [a for a in store.get_artifacts_by_id(sorted(set(ids))) if a.state == mlmd.proto.Artifact.LIVE]
    if not artifacts:
        return {}
    type_names = {t.id: t.name for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts}))}
    grouped: dict[str, list] = {}
    for artifact in sorted(artifacts, key=lambda a: a.id):
        grouped.setdefault(type_names[artifact.type_id], []).append(artifact)
    return grouped


def _last(artifacts):
    return artifacts[-1] if artifacts else None


def _anomalies(uri: str) -> dict[str, list[str]]:
    from flowers.components.gates import describe_anomalies

    return describe_anomalies(uri)


def _gate_failures(uri: str) -> list[str]:
    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    if not tf.io.gfile.glob(f"{uri}/validations*"):
        return []
    lines = []
    for failure in tfma.load_validation_result(uri).metric_validations_per_slice:
        for f in failure.failures:
            value = f.metric_value.double_value.value
            if f.metric_key.is_diff:
                allowed = f.metric_threshold.change_threshold.absolute.value
                lines.append(f"{f.metric_key.name} changed by {value:+.4f} against the last blessed model (allowed: {allowed:+.4f})")
            else:
                floor = f.metric_threshold.value_threshold.lower_bound.value
                lines.append(f"{f.metric_key.name} {value:.4f} is below the threshold {floor:.4f}")
    return lines


def _metrics(uri: str) -> tuple[float | None, dict[str, float], int | None]:
    """Overall accuracy, recall per class (accuracy in its true-class slice),
    example count. Slices of class ids outside the class list are skipped."""
    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    accuracy, count, recall = None, None, {}
    if not tf.io.gfile.glob(f"{uri}/metrics*"):
        return accuracy, recall, count
    for record in tfma.load_metrics(uri):
        slice_key = tfma.slicer.deserialize_slice_key(record.slice_key)
        values = {}
        for kv in record.metric_keys_and_values:
            # Skip the baseline's own figures and diffs against it.
            if kv.key.HasField("sub_key") or kv.key.is_diff or kv.key.model_name not in ("", CANDIDATE):
                continue
            values[kv.key.name] = kv.value.double_value.value
        if not slice_key:
            accuracy = values.get(features.ACCURACY_METRIC)
            count = int(values["example_count"]) if "example_count" in values else None
        elif len(slice_key) == 1 and slice_key[0][0] == features.CLASS_KEY:
            index = int(slice_key[0][1])
            if 0 <= index < features.NUM_CLASSES:
                recall[features.CLASS_NAMES[index]] = values.get(features.ACCURACY_METRIC)
    ordered = {name: recall[name] for name in features.CLASS_NAMES if name in recall}
    return accuracy, ordered, count
