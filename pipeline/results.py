"""What a pipeline run produced, read back from ML Metadata (not from guessed paths)."""
from __future__ import annotations

import dataclasses
import os

import ml_metadata as mlmd
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.compiler import constants
from tfx.orchestration import metadata

from flowers.components import evaluation
from flowers.pipeline import features
from flowers.pipeline.config import PipelineConfig


CANDIDATE = "candidate"  # TFMA's name for the evaluated model when a baseline is present


@dataclasses.dataclass(frozen=True)
class RunSummary:
    run_id: str
    accuracy: float | None
    per_class_recall: dict[str, float]
    eval_examples: int | None
    blessed: bool
    pushed_to: str | None
    model_uri: str | None
    executions: dict[str, str]  # component id -> last known state
    anomalies: dict[str, list[str]]  # split -> "feature: description" found by ExampleValidator
    gate_failures: list[str]  # why the Evaluator did not bless, one line per failed threshold


def store_for(config: PipelineConfig) -> mlmd.MetadataStore:
    if not os.path.exists(config.metadata_path):
        raise FileNotFoundError(f"{config.metadata_path}: no ML Metadata here; run the pipeline first")
    return mlmd.MetadataStore(metadata.sqlite_metadata_connection_config(config.metadata_path))


def run_ids(store: mlmd.MetadataStore) -> list[str]:
    """Pipeline runs, oldest first."""
    runs = store.get_contexts_by_type(constants.PIPELINE_RUN_CONTEXT_TYPE_NAME)
    return [c.name for c in sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id))]


def summarize(store: mlmd.MetadataStore, run_id: str) -> RunSummary:
    context = store.get_context_by_type_and_name(constants.PIPELINE_RUN_CONTEXT_TYPE_NAME, run_id)
    executions = store.get_executions_by_context(context.id)
    states = {_node_id(store, e): mlmd.proto.Execution.State.Name(e.last_known_state) for e in executions}
    outputs = _outputs_by_type(store, executions)
    evaluation_uri = _last(outputs.get("ModelEvaluation"))
    accuracy, recall, count = _metrics(evaluation_uri) if evaluation_uri else (None, {}, None)
    blessing = _last_artifact(outputs.get("ModelBlessing"))
    pushed = _last_artifact(outputs.get("PushedModel"))
    model = _last_artifact(outputs.get("Model"))
    return RunSummary(
        run_id=run_id,
        accuracy=accuracy,
        per_class_recall=recall,
        eval_examples=count,
        blessed=bool(blessing and blessing.custom_properties["blessed"].int_value),
        pushed_to=(
            pushed.custom_properties["pushed_destination"].string_value
            if pushed and pushed.custom_properties["pushed"].int_value
            else None
        ),
        model_uri=model.uri if model else None,
        executions=states,
        anomalies=_anomalies(_last(outputs.get("ExampleAnomalies"))),
        gate_failures=_gate_failures(evaluation_uri),
    )


def latest(config: PipelineConfig) -> RunSummary:
    store = store_for(config)
    ids = run_ids(store)
    if not ids:
        raise LookupError(f"{config.metadata_path}: no pipeline run recorded yet")
    return summarize(store, ids[-1])


def _node_id(store: mlmd.MetadataStore, execution) -> str:
    """The component id, from the execution's node context ("<pipeline>.<id>")."""
    for context in store.get_contexts_by_execution(execution.id):
        if store.get_context_types_by_id([context.type_id])[0].name == constants.NODE_CONTEXT_TYPE_NAME:
            return context.name.split(".", 1)[-1]
    return store.get_execution_types_by_id([execution.type_id])[0].name


def _outputs_by_type(store: mlmd.MetadataStore, executions) -> dict[str, list]:
    events = store.get_events_by_execution_ids([e.id for e in executions])
    ids = [ev.artifact_id for ev in events if ev.type in (mlmd.proto.Event.OUTPUT, mlmd.proto.Event.DECLARED_OUTPUT)]
    artifacts = store.get_artifacts_by_id(sorted(set(ids)))
    type_names = {t.id: t.name for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts}))}
    grouped: dict[str, list] = {}
    for artifact in sorted(artifacts, key=lambda a: a.id):
        grouped.setdefault(type_names[artifact.type_id], []).append(artifact)
    return grouped


def _last_artifact(artifacts):
    return artifacts[-1] if artifacts else None


def _last(artifacts) -> str | None:
    return artifacts[-1].uri if artifacts else None


def _anomalies(uri: str | None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in tf.io.gfile.glob(f"{uri}/Split-*/SchemaDiff.pb") if uri else []:
        anomalies = anomalies_pb2.Anomalies.FromString(tf.io.gfile.GFile(path, "rb").read())
        split = os.path.basename(os.path.dirname(path))[len("Split-"):]
        found[split] = [f"{name}: {info.description}" for name, info in sorted(anomalies.anomaly_info.items())]
    return {split: lines for split, lines in found.items() if lines}


def _gate_failures(uri: str | None) -> list[str]:
    if not uri or not tf.io.gfile.glob(f"{uri}/validations*"):
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
    """Overall accuracy, recall per class (accuracy in its true-class slice), example count."""
    accuracy, count, recall = None, None, {}
    for record in tfma.load_metrics(uri):
        slice_key = tfma.slicer.deserialize_slice_key(record.slice_key)
        values = {}
        for kv in record.metric_keys_and_values:
            # Skip the baseline's own figures and diffs against it.
            if kv.key.HasField("sub_key") or kv.key.is_diff or kv.key.model_name not in ("", CANDIDATE):
                continue
            values[kv.key.name] = kv.value.double_value.value
        if not slice_key:
            accuracy = values.get(evaluation.ACCURACY)
            count = int(values["example_count"]) if "example_count" in values else None
        elif len(slice_key) == 1 and slice_key[0][0] == features.CLASS_KEY:
            recall[features.CLASS_NAMES[int(slice_key[0][1])]] = values.get(evaluation.ACCURACY)
    ordered = {name: recall[name] for name in features.CLASS_NAMES if name in recall}
    return accuracy, ordered, count
