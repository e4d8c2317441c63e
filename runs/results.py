"""What a pipeline run produced, read back from ML Metadata (not from guessed paths).

Light to import (ml_metadata only): TensorFlow and TFMA load when an
evaluation has to be read.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from flowers import features
from flowers.components.anomalies import describe_anomalies
from flowers.config import PipelineConfig
from flowers.outcome import State
from flowers.components import names

CANDIDATE = "candidate"  # TFMA's names for the evaluated model and its baseline
BASELINE = "baseline"
RUN_CONTEXT = "pipeline_run"  # TFX's context type of one pipeline run
NODE_CONTEXT = "node"
# The run's final state, written by the supervisor where the executions alone
# cannot tell (an interrupted run).
STATE_PROPERTY = "flowers_state"
# A finished run's RunSummary as JSON, so that reading it back needs no TFMA.
SUMMARY_PROPERTY = "flowers_summary"
SPANS_PROPERTY = "flowers_spans"
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
    spans: list[int]  # the spans the Trainer read
    train_examples: int | None
    validation_examples: int | None
    baseline_version: str | None  # the pushed version the candidate was compared with
    baseline_accuracy: float | None
    pushed_version: str | None
    seconds: float | None  # from the first component's start to the last one's end


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


def summarize(store: mlmd.MetadataStore, run_id: str, live_run: str | None = None, recorded: bool = True) -> RunSummary:
    """`live_run`: the run holding the output dir's lock, if any; any other
    run with executions left running was killed. `recorded`: use the summary
    kept when the run finished, if there is one."""
    context = store.get_context_by_type_and_name(RUN_CONTEXT, run_id)
    if recorded and SUMMARY_PROPERTY in context.custom_properties:
        return RunSummary(**json.loads(context.custom_properties[SUMMARY_PROPERTY].string_value))
    executions = store.get_executions_by_context(context.id)
    node_ids = {e.id: _node_id(store, e) for e in executions}
    states = {node_ids[e.id]: Execution.State.Name(e.last_known_state) for e in executions}
    outputs = _outputs_by_type(store, executions)
    evaluation = _last(outputs.get("ModelEvaluation"))
    accuracy, recall, count, baseline_accuracy = _metrics(evaluation.uri) if evaluation else (None, {}, None, None)
    blessing = _last(outputs.get("ModelBlessing"))
    pushed = _last(outputs.get("PushedModel"))
    by_node = {node_ids[e.id]: e for e in executions}
    # The Trainer's own model (the baseline component outputs a Model too).
    model = _last(_artifacts(store, by_node.get(names.TRAINER), "model", mlmd.proto.Event.OUTPUT))
    examples = _inputs(store, by_node.get(names.TRAINER), "examples")
    baseline = _inputs(store, by_node.get(names.EVALUATOR), "baseline_model")
    counts = _history(model.uri) if model else {}
    baseline_version = _baseline_version(store, baseline[0]) if baseline else None
    anomalies = _last(outputs.get("ExampleAnomalies"))
    failed = next((node_ids[e.id] for e in executions if e.last_known_state == Execution.FAILED), None)
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
    elif failed == names.DATA_GATE:
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
        anomalies=describe_anomalies(anomalies.uri) if anomalies else {},
        gate_failures=_gate_failures(evaluation.uri) if evaluation else [],
        failed_component=failed,
        spans=_spans(context, examples),
        train_examples=counts.get("train_examples"),
        validation_examples=counts.get("validation_examples"),
        baseline_version=baseline_version,
        baseline_accuracy=baseline_accuracy if baseline_version else None,
        pushed_version=os.path.basename(pushed_to) if pushed_to else None,
        seconds=_seconds(executions),
    )


def _inputs(store: mlmd.MetadataStore, execution, key: str) -> list:
    """The artifacts `execution` took as input `key`."""
    return _artifacts(store, execution, key, mlmd.proto.Event.INPUT)


def _artifacts(store: mlmd.MetadataStore, execution, key: str, kind) -> list:
    """The artifacts of `execution`'s input or output (`kind`) `key`, oldest first."""
    if execution is None:
        return []
    events = store.get_events_by_execution_ids([execution.id])
    ids = [e.artifact_id for e in events if e.type == kind and e.path.steps and e.path.steps[0].key == key]
    return sorted(store.get_artifacts_by_id(ids), key=lambda a: a.id) if ids else []


def _baseline_version(store: mlmd.MetadataStore, model) -> str | None:
    """The pushed version a baseline Model holds; None when the candidate was
    its own baseline (nothing pushed yet)."""
    if "pushed_version" in model.custom_properties:  # components/baseline.py
        return model.custom_properties["pushed_version"].string_value or None
    return _pushed_version(store, model)


def _pushed_version(store: mlmd.MetadataStore, model) -> str | None:
    """The serving version a Model artifact was pushed as (its Pusher's output)."""
    events = store.get_events_by_artifact_ids([model.id])
    for execution_id in {e.execution_id for e in events if e.type == mlmd.proto.Event.INPUT}:
        out = store.get_events_by_execution_ids([execution_id])
        for artifact in store.get_artifacts_by_id([e.artifact_id for e in out if e.type == mlmd.proto.Event.OUTPUT]):
            if artifact.custom_properties["pushed"].int_value:
                return os.path.basename(artifact.custom_properties["pushed_destination"].string_value)
    return None


def _spans(context, examples) -> list[int]:
    """The spans the Trainer read: its Examples artifacts' spans, or (when one
    artifact holds every span folder) what the run recorded at its start."""
    spans = {a.custom_properties["span"].int_value for a in examples if "span" in a.custom_properties}
    if spans - {0}:
        return sorted(spans)
    recorded = context.custom_properties[SPANS_PROPERTY].string_value if SPANS_PROPERTY in context.custom_properties else ""
    return [int(s) for s in recorded.split(",") if s]


def record_spans(store: mlmd.MetadataStore, run_id: str, spans: list[int]) -> None:
    """Note on the run which span folders it read (the data root's at its start)."""
    context = store.get_context_by_type_and_name(RUN_CONTEXT, run_id)
    if context is not None:
        context.custom_properties[SPANS_PROPERTY].string_value = ",".join(map(str, spans))
        store.put_contexts([context])


def record_summary(store: mlmd.MetadataStore, summary: RunSummary) -> None:
    """Keep a finished run's summary on its context: `history` and `report`
    then read it without loading TensorFlow and TFMA for every run."""
    context = store.get_context_by_type_and_name(RUN_CONTEXT, summary.run_id)
    context.custom_properties[SUMMARY_PROPERTY].string_value = json.dumps(dataclasses.asdict(summary))
    store.put_contexts([context])


def _history(model_uri: str) -> dict:
    path = os.path.join(model_uri, features.HISTORY_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _seconds(executions) -> float | None:
    if not executions:
        return None
    start = min(e.create_time_since_epoch for e in executions)
    end = max(e.last_update_time_since_epoch for e in executions)
    return round((end - start) / 1000, 1)


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


HISTORY_HEADER = f"{'run':<26}  {'spans':<7} {'train/val/eval':<15} {'accuracy':>8} {'baseline':>8}  {'state':<12}  version or why"


def history_row(summary: RunSummary) -> str:
    """One line of `flowers history`."""
    def fmt(value):
        return "-" if value is None else f"{value:.4f}"

    counts = "/".join("-" if n is None else str(n) for n in (summary.train_examples, summary.validation_examples, summary.eval_examples))
    why = summary.pushed_version or "; ".join(summary.gate_failures)
    if not why and summary.anomalies:
        why = next(f"{split}: {lines[0]}" for split, lines in summary.anomalies.items())
    if not why and summary.failed_component:
        why = f"{summary.failed_component} failed"
    spans = ",".join(map(str, summary.spans)) or "-"
    return f"{summary.run_id[:26]:<26}  {spans:<7} {counts:<15} {fmt(summary.accuracy):>8} {fmt(summary.baseline_accuracy):>8}  {summary.state:<12}  {why or '-'}"


def summary_lines(summary: RunSummary) -> list[str]:
    """The summary a run prints at its end."""
    acc = "n/a" if summary.accuracy is None else f"{summary.accuracy:.4f}"
    lines = [f"run:            {summary.run_id}", f"state:          {summary.state}"]
    if summary.spans:
        lines.append(f"spans:          {', '.join(map(str, summary.spans))}")
    if summary.train_examples is not None:
        lines.append(f"examples:       {summary.train_examples} train, {summary.validation_examples} validation, {summary.eval_examples} eval")
    if summary.accuracy is not None:
        lines.append(f"eval accuracy:  {acc} on {summary.eval_examples} eval examples")
    if summary.accuracy is not None and summary.baseline_version and summary.baseline_accuracy is not None:
        change = summary.accuracy - summary.baseline_accuracy
        lines.append(f"baseline:       version {summary.baseline_version}, accuracy {summary.baseline_accuracy:.4f} ({change:+.4f})")
    elif summary.accuracy is not None:
        lines.append("baseline:       none (first model)")
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
    if summary.seconds is not None:
        lines.append(f"duration:       {summary.seconds:.0f} s")
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


def _metrics(uri: str) -> tuple[float | None, dict[str, float], int | None, float | None]:
    """Overall accuracy, recall per class (accuracy in its true-class slice),
    example count, and the baseline's accuracy on the same examples (when
    there was a baseline). Slices of class ids outside the class list are skipped."""
    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    accuracy, count, recall, baseline = None, None, {}, None
    if not tf.io.gfile.glob(f"{uri}/metrics*"):
        return accuracy, recall, count, baseline
    for record in tfma.load_metrics(uri):
        slice_key = tfma.slicer.deserialize_slice_key(record.slice_key)
        values = {}
        for kv in record.metric_keys_and_values:
            if kv.key.HasField("sub_key") or kv.key.is_diff:
                continue
            if kv.key.model_name == BASELINE and not slice_key and kv.key.name == features.ACCURACY_METRIC:
                baseline = kv.value.double_value.value
            if kv.key.model_name in ("", CANDIDATE):
                values[kv.key.name] = kv.value.double_value.value
        if not slice_key:
            accuracy = values.get(features.ACCURACY_METRIC)
            count = int(values["example_count"]) if "example_count" in values else None
        elif len(slice_key) == 1 and slice_key[0][0] == features.CLASS_KEY:
            index = int(slice_key[0][1])
            if 0 <= index < features.NUM_CLASSES:
                recall[features.CLASS_NAMES[index]] = values.get(features.ACCURACY_METRIC)
    ordered = {name: recall[name] for name in features.CLASS_NAMES if name in recall}
    return accuracy, ordered, count, baseline
