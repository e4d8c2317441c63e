"""The one reader of finished runs: what ML Metadata recorded of a run (its
executions by component id, the artifacts they read and wrote), and what
those artifacts hold (the Trainer's history, the Evaluator's TFMA output).

Summary, history, report, preflight and the benchmarks all read runs through
this module. Light to import (ml_metadata only): TensorFlow and TFMA load
when an artifact's contents are read, and files are read through
`tf.io.gfile`, so a `gs://` output dir reads like a local one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from flowers import features
from flowers.config import PipelineConfig

RUN_CONTEXT = "pipeline_run"  # TFX's context type of one pipeline run
NODE_CONTEXT = "node"  # and of one component ("<pipeline>.<component id>")
CANDIDATE = "candidate"  # TFMA's names for the evaluated model and its baseline
BASELINE = "baseline"
Event = metadata_store_pb2.Event
Execution = metadata_store_pb2.Execution
_INPUTS = (Event.INPUT, Event.DECLARED_INPUT)
_OUTPUTS = (Event.OUTPUT, Event.DECLARED_OUTPUT)
UNFINISHED = (Execution.NEW, Execution.RUNNING)


class CorruptMetadata(ValueError):
    """The output dir's ML Metadata file cannot be read; the message says what to do."""


def store_for(config: PipelineConfig) -> mlmd.MetadataStore:
    if not os.path.exists(config.metadata_path):
        raise FileNotFoundError(f"{config.metadata_path}: no ML Metadata here; run the pipeline first")
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    try:
        return mlmd.MetadataStore(connection)
    except RuntimeError as error:  # ML Metadata's words for SQLite's: "file is not a database", ...
        found = re.search(r"executing query: (.*?) query:", str(error))
        path = config.metadata_path
        raise CorruptMetadata(
            f"{path} is not a readable ML Metadata store ({found.group(1) if found else str(error)[:200]}); "
            f"move it aside (mv {path} {path}.broken) to start a new history: the pushed models in "
            f"{config.serving_dir} stay usable"
        ) from None


def run_ids(store: mlmd.MetadataStore) -> list[str]:
    """Pipeline runs, oldest first."""
    runs = store.get_contexts_by_type(RUN_CONTEXT)
    return [c.name for c in sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id))]


def run_context(store: mlmd.MetadataStore, run_id: str):
    """The run's context (None if there is no such run)."""
    return store.get_context_by_type_and_name(RUN_CONTEXT, run_id)


def resolve_run_id(store: mlmd.MetadataStore, run_id: str | None, config: PipelineConfig) -> str:
    """`run_id`, or the newest run when None; LookupError naming the store otherwise."""
    ids = run_ids(store)
    if not ids:
        raise LookupError(f"{config.metadata_path}: no runs recorded yet; run the pipeline first")
    if run_id is None:
        return ids[-1]
    if run_id not in ids:
        raise LookupError(f"no run {run_id!r} in {config.metadata_path}; `flowers history` lists the runs")
    return run_id


@dataclasses.dataclass
class ArtifactRecord:
    id: int
    type: str
    uri: str
    properties: dict  # properties and custom properties, as Python values


@dataclasses.dataclass
class ExecutionRecord:
    id: int
    node: str  # the component id
    state: str  # COMPLETE, CACHED, FAILED, ...
    created_ms: int
    updated_ms: int
    properties: dict  # execution (exec) properties, as Python values
    inputs: dict[str, list[ArtifactRecord]]
    outputs: dict[str, list[ArtifactRecord]]  # live artifacts only

    @property
    def seconds(self) -> float:
        return max(0.0, (self.updated_ms - self.created_ms) / 1000)


@dataclasses.dataclass
class RunRecord:
    """One run as ML Metadata has it, executions by component id."""

    run_id: str
    created_ms: int
    executions: dict[str, ExecutionRecord]  # by component id, in execution order

    @classmethod
    def load(cls, store: mlmd.MetadataStore, run_id: str) -> "RunRecord":
        context = run_context(store, run_id)
        executions = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
        events = store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
        artifact_ids = sorted({ev.artifact_id for ev in events})
        artifacts = {a.id: a for a in store.get_artifacts_by_id(artifact_ids)} if artifact_ids else {}
        type_ids = list({a.type_id for a in artifacts.values()})
        type_names = {t.id: t.name for t in store.get_artifact_types_by_id(type_ids)} if type_ids else {}
        records: dict[str, ExecutionRecord] = {}
        for execution in executions:
            inputs: dict[str, list[ArtifactRecord]] = {}
            outputs: dict[str, list[ArtifactRecord]] = {}
            for ev in events:
                if ev.execution_id != execution.id or ev.artifact_id not in artifacts:
                    continue
                a = artifacts[ev.artifact_id]
                key = ev.path.steps[0].key if ev.path.steps else ""
                record = ArtifactRecord(
                    a.id,
                    type_names.get(a.type_id, ""),
                    a.uri,
                    {**_values(a.properties), **_values(a.custom_properties)},
                )
                if ev.type in _INPUTS:
                    inputs.setdefault(key, []).append(record)
                elif ev.type in _OUTPUTS and a.state == metadata_store_pb2.Artifact.LIVE:
                    outputs.setdefault(key, []).append(record)
            node = node_id(store, execution)
            records[node] = ExecutionRecord(
                id=execution.id,
                node=node,
                state=Execution.State.Name(execution.last_known_state),
                created_ms=execution.create_time_since_epoch,
                updated_ms=execution.last_update_time_since_epoch,
                properties={**_values(execution.properties), **_values(execution.custom_properties)},
                inputs=inputs,
                outputs=outputs,
            )
        return cls(run_id, context.create_time_since_epoch, records)

    def execution(self, node: str) -> ExecutionRecord | None:
        return self.executions.get(node)

    def outputs(self, node: str, key: str) -> list[ArtifactRecord]:
        execution = self.executions.get(node)
        return list(execution.outputs.get(key, [])) if execution else []

    def inputs(self, node: str, key: str) -> list[ArtifactRecord]:
        execution = self.executions.get(node)
        return list(execution.inputs.get(key, [])) if execution else []

    def output(self, node: str, key: str) -> ArtifactRecord | None:
        found = self.outputs(node, key)
        return found[-1] if found else None

    def input(self, node: str, key: str) -> ArtifactRecord | None:
        found = self.inputs(node, key)
        return found[-1] if found else None

    def output_of_type(self, type_name: str) -> tuple[str, ArtifactRecord] | None:
        """(component, artifact) of the run's last output of that type."""
        found = None
        for node, execution in self.executions.items():
            for artifacts in execution.outputs.values():
                for a in artifacts:
                    if a.type == type_name:
                        found = (node, a)
        return found

    @property
    def states(self) -> dict[str, str]:
        """Component id -> its execution's last known state."""
        return {node: e.state for node, e in self.executions.items()}

    @property
    def failed_component(self) -> str | None:
        return next((node for node, e in self.executions.items() if e.state == "FAILED"), None)

    @property
    def unfinished(self) -> bool:
        return any(e.state in {Execution.State.Name(s) for s in UNFINISHED} for e in self.executions.values())

    @property
    def seconds(self) -> float | None:
        """From the first component's start to the last one's end."""
        if not self.executions:
            return None
        start = min(e.created_ms for e in self.executions.values())
        end = max(e.updated_ms for e in self.executions.values())
        return round((end - start) / 1000, 1)


def node_id(store: mlmd.MetadataStore, execution) -> str:
    """The component id, from the execution's node context ("<pipeline>.<id>")."""
    for context in store.get_contexts_by_execution(execution.id):
        if store.get_context_types_by_id([context.type_id])[0].name == NODE_CONTEXT:
            return context.name.split(".", 1)[-1]
    return store.get_execution_types_by_id([execution.type_id])[0].name.rsplit(".", 1)[-1]


def _values(properties) -> dict:
    out = {}
    for key, value in properties.items():
        kind = value.WhichOneof("value")
        if kind == "proto_value":
            continue
        if kind == "struct_value":
            from google.protobuf import json_format

            out[key] = json_format.MessageToDict(value.struct_value)
        else:
            out[key] = getattr(value, kind) if kind else None
    return out


def producing_run(store: mlmd.MetadataStore, artifact_id: int) -> str | None:
    """The run whose execution first wrote the artifact."""
    events = [ev for ev in store.get_events_by_artifact_ids([artifact_id]) if ev.type in _OUTPUTS]
    if not events:
        return None
    first = min(ev.execution_id for ev in events)
    for context in store.get_contexts_by_execution(first):
        if store.get_context_types_by_id([context.type_id])[0].name == RUN_CONTEXT:
            return context.name
    return None


def pushed_version(store: mlmd.MetadataStore, model_id: int) -> str | None:
    """The serving version a Model artifact was pushed as (its Pusher's output)."""
    events = store.get_events_by_artifact_ids([model_id])
    for execution_id in {e.execution_id for e in events if e.type == Event.INPUT}:
        out = store.get_events_by_execution_ids([execution_id])
        for artifact in store.get_artifacts_by_id([e.artifact_id for e in out if e.type == Event.OUTPUT]):
            if artifact.custom_properties["pushed"].int_value:
                return os.path.basename(artifact.custom_properties["pushed_destination"].string_value)
    return None


def output_ids(store: mlmd.MetadataStore, execution_id: int, key: str) -> list[int]:
    """The ids of the artifacts an execution wrote as output `key`."""
    events = store.get_events_by_execution_ids([execution_id])
    return sorted(e.artifact_id for e in events if e.type in _OUTPUTS and e.path.steps and e.path.steps[0].key == key)


def pushed_destinations(store: mlmd.MetadataStore) -> set[str]:
    """Every serving folder a Pusher recorded as pushed."""
    return {
        a.custom_properties["pushed_destination"].string_value
        for a in store.get_artifacts_by_type("PushedModel")
        if a.custom_properties["pushed"].int_value
    }


# ---------------------------------------------------------------------------
# What the artifacts hold.


def read_history(model_uri: str) -> dict | None:
    """The Trainer's fit history, kept beside its SavedModel (None if absent)."""
    import tensorflow as tf

    path = f"{model_uri}/{features.HISTORY_FILE}"
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


@dataclasses.dataclass
class Evaluation:
    """The Evaluator's TFMA output, read once."""

    metrics: dict[str, dict[str, float]]  # model ("candidate"/"baseline"/"") -> metric -> value, overall slice
    diffs: dict[str, float]  # metric -> candidate minus baseline
    per_class: dict[str, dict[str, float]]  # class -> metric (precision, recall, auc) -> value, candidate
    recall: dict[str, float]  # class -> accuracy in its own slice (the class's recall), candidate
    confusion: list[list[float]]  # [actual][predicted], candidate
    no_prediction: list[float]  # per actual class: examples no class was predicted for
    eval_config: object | None  # the EvalConfig TFMA ran with
    validation: object | None  # ValidationResult

    @property
    def candidate(self) -> dict[str, float]:
        return self.metrics.get(CANDIDATE, self.metrics.get("", {}))

    @property
    def accuracy(self) -> float | None:
        return self.candidate.get(features.ACCURACY_METRIC)

    @property
    def example_count(self) -> int | None:
        count = self.candidate.get("example_count")
        return None if count is None else int(count)

    @property
    def baseline_accuracy(self) -> float | None:
        return self.metrics.get(BASELINE, {}).get(features.ACCURACY_METRIC)

    @property
    def gate_failures(self) -> list[str]:
        """Why the Evaluator did not bless, one line per failed threshold."""
        return gate_failures(self.validation)


def read_evaluation(uri: str) -> Evaluation:
    import tensorflow as tf
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.writers import eval_config_writer

    metrics: dict[str, dict[str, float]] = {}
    diffs: dict[str, float] = {}
    per_class: dict[str, dict[str, float]] = {}
    recall: dict[str, float] = {}
    candidate_names = ("", CANDIDATE)
    if tf.io.gfile.glob(f"{uri}/metrics*"):
        for record in tfma.load_metrics(uri):
            slice_key = tfma.slicer.deserialize_slice_key(record.slice_key)
            if slice_key:
                _slice_recall(slice_key, record, candidate_names, recall)
                continue
            for kv in record.metric_keys_and_values:
                key, value = kv.key, kv.value.double_value.value
                if key.HasField("sub_key"):
                    if key.sub_key.HasField("class_id") and key.model_name in candidate_names and not key.is_diff:
                        index = key.sub_key.class_id.value
                        if 0 <= index < features.NUM_CLASSES:
                            per_class.setdefault(features.CLASS_NAMES[index], {})[key.name] = value
                    continue
                if key.is_diff:
                    diffs[key.name] = value
                else:
                    metrics.setdefault(key.model_name, {})[key.name] = value
    confusion, none = _confusion(uri, candidate_names)
    eval_config = eval_config_writer.load_eval_run(uri)[0]
    validation = tfma.load_validation_result(uri) if tf.io.gfile.glob(f"{uri}/validations*") else None
    ordered = {name: recall[name] for name in features.CLASS_NAMES if name in recall}
    return Evaluation(metrics, diffs, per_class, ordered, confusion, none, eval_config, validation)


def _slice_recall(slice_key, record, candidate_names, recall: dict[str, float]) -> None:
    """A class slice's accuracy is that class's recall; class ids outside the class list are skipped."""
    if len(slice_key) != 1 or slice_key[0][0] != features.CLASS_KEY:
        return
    index = int(slice_key[0][1])
    if not 0 <= index < features.NUM_CLASSES:
        return
    for kv in record.metric_keys_and_values:
        key = kv.key
        if (
            key.name == features.ACCURACY_METRIC
            and key.model_name in candidate_names
            and not key.is_diff
            and not key.HasField("sub_key")
        ):
            recall[features.CLASS_NAMES[index]] = kv.value.double_value.value


def _confusion(uri: str, candidate_names) -> tuple[list[list[float]], list[float]]:
    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    n = features.NUM_CLASSES
    confusion = [[0.0] * n for _ in range(n)]
    none = [0.0] * n
    if not tf.io.gfile.glob(f"{uri}/plots*"):
        return confusion, none
    for record in tfma.load_plots(uri):
        if tfma.slicer.deserialize_slice_key(record.slice_key):
            continue
        for kv in record.plot_keys_and_values:
            if kv.key.model_name not in candidate_names:
                continue
            matrices = kv.value.multi_class_confusion_matrix_at_thresholds.matrices
            if not matrices:
                continue
            # One matrix per threshold; 0 (the default) is "top class wins".
            matrix = min(matrices, key=lambda m: m.threshold)
            for entry in matrix.entries:
                a, p = entry.actual_class_id, entry.predicted_class_id
                if not 0 <= a < n:
                    continue
                if 0 <= p < n:
                    confusion[a][p] += entry.num_weighted_examples
                else:
                    none[a] += entry.num_weighted_examples
    return confusion, none


def gate_failures(validation) -> list[str]:
    """The failed thresholds of a TFMA ValidationResult, one line each, in
    words: overall ones first, then the per-class recall floor in class order."""
    if validation is None:
        return []
    lines = []
    slices = sorted(
        validation.metric_validations_per_slice,
        key=lambda v: -1 if _class_of(v.slice_key) is None else features.CLASS_NAMES.index(_class_of(v.slice_key)),
    )
    for failure in slices:
        class_name = _class_of(failure.slice_key)
        for f in failure.failures:
            value = f.metric_value.double_value.value
            if f.metric_key.is_diff:
                allowed = f.metric_threshold.change_threshold.absolute.value
                lines.append(
                    f"{f.metric_key.name} changed by {value:+.4f} against the last blessed model "
                    f"(allowed: {allowed:+.4f})"
                )
            elif class_name is not None:
                floor = f.metric_threshold.value_threshold.lower_bound.value
                lines.append(
                    f"recall of {class_name} {value:.4f} is below the floor {floor:.4f} (gates.min_class_recall)"
                )
            else:
                floor = f.metric_threshold.value_threshold.lower_bound.value
                lines.append(f"{f.metric_key.name} {value:.4f} is below the threshold {floor:.4f}")
    return lines


def _class_of(slice_key) -> str | None:
    """The class a per-class slice (TFMA's SliceKey proto) is of; None for any other slice."""
    for key in slice_key.single_slice_keys:
        if key.column == features.CLASS_KEY:
            index = key.int64_value
            return features.CLASS_NAMES[index] if 0 <= index < features.NUM_CLASSES else None
    return None


def gate_failures_at(evaluation_uri: str) -> list[str]:
    """`gate_failures` of the Evaluator output at `evaluation_uri`, read alone."""
    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    if not tf.io.gfile.glob(f"{evaluation_uri}/validations*"):
        return []
    return gate_failures(tfma.load_validation_result(evaluation_uri))
