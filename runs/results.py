"""A run's summary (what `flowers run` prints, `history` lists and the report
heads with), built from the run's record (runs/records.py) and kept on its
ML Metadata context when it ends; and the few things the supervisor writes
there (spans read, interrupted).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os

import ml_metadata as mlmd

from flowers.components import names
from flowers.components.anomalies import describe_anomalies
from flowers.outcome import State
from flowers.runs import records

# The run's final state, written by the supervisor where the executions alone
# cannot tell (an interrupted run).
STATE_PROPERTY = "flowers_state"
# A finished run's RunSummary as JSON, so that reading it back needs no TFMA.
SUMMARY_PROPERTY = "flowers_summary"
SPANS_PROPERTY = "flowers_spans"
SETTINGS_PROPERTY = "flowers_settings"
NOTE_PROPERTY = "flowers_note"  # why a run ended as it did, where no artifact says (unchanged)


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
    # The run's effective settings (section.field -> value), as recorded at its start.
    settings: dict = dataclasses.field(default_factory=dict)
    note: str | None = None  # what a rollback did
    # The Trainer's TFLite check (components/tflite.py's TfliteCheck as a dict);
    # None when it wrote no TFLite model (training.tflite off, or older runs).
    tflite: dict | None = None


def summarize(store: mlmd.MetadataStore, run_id: str, live_run: str | None = None, recorded: bool = True) -> RunSummary:
    """`live_run`: the run holding the output dir's lock, if any; any other
    run with executions left running was killed. `recorded`: use the summary
    kept when the run finished, if there is one."""
    context = records.run_context(store, run_id)
    if recorded and SUMMARY_PROPERTY in context.custom_properties:
        return RunSummary(**json.loads(context.custom_properties[SUMMARY_PROPERTY].string_value))
    run = records.RunRecord.load(store, run_id)
    evaluation_artifact = run.output(names.EVALUATOR, "evaluation")
    evaluation = records.read_evaluation(evaluation_artifact.uri) if evaluation_artifact else None
    blessing = run.output(names.EVALUATOR, "blessing")
    pushed = run.output(names.PUSHER, "pushed_model")
    model = run.output(names.TRAINER, "model")  # the Trainer's own (the baseline component outputs a Model too)
    baseline = run.input(names.EVALUATOR, "baseline_model")
    counts = (records.read_history(model.uri) or {}) if model else {}
    baseline_version = _baseline_version(store, baseline) if baseline else None
    anomalies = run.output(names.EXAMPLE_VALIDATOR, "anomalies")
    pushed_to = pushed.properties["pushed_destination"] if pushed and pushed.properties.get("pushed") else None
    blessed = bool(blessing and blessing.properties.get("blessed"))
    state = _state(context, run, run_id, live_run, pushed_to, blessing, blessed)
    return RunSummary(
        run_id=run_id,
        state=state.value,
        started=_time(context.create_time_since_epoch),
        accuracy=evaluation.accuracy if evaluation else None,
        per_class_recall=evaluation.recall if evaluation else {},
        eval_examples=evaluation.example_count if evaluation else None,
        blessed=blessed,
        pushed_to=pushed_to,
        model_uri=model.uri if model else None,
        executions=run.states,
        anomalies=describe_anomalies(anomalies.uri) if anomalies else {},
        gate_failures=evaluation.gate_failures if evaluation else [],
        failed_component=run.failed_component,
        spans=_spans(context, run.inputs(names.TRAINER, "examples")),
        train_examples=counts.get("train_examples"),
        validation_examples=counts.get("validation_examples"),
        baseline_version=baseline_version,
        baseline_accuracy=evaluation.baseline_accuracy if evaluation and baseline_version else None,
        pushed_version=os.path.basename(pushed_to) if pushed_to else None,
        seconds=run.seconds,
        settings=recorded_settings(context),
        tflite=counts.get("tflite"),
        note=context.custom_properties[NOTE_PROPERTY].string_value
        if NOTE_PROPERTY in context.custom_properties
        else None,
    )


def summary_kept(store: mlmd.MetadataStore, run_id: str, live_run: str | None = None) -> RunSummary:
    """The run's summary, kept on its context once computed for a run that
    has ended (a run killed before it kept one): the next `history` reads it
    without loading TensorFlow."""
    context = records.run_context(store, run_id)
    if SUMMARY_PROPERTY in context.custom_properties:
        return summarize(store, run_id)
    summary = summarize(store, run_id, live_run=live_run, recorded=False)
    if summary.state != State.RUNNING.value:
        record_summary(store, summary)
    return summary


def _state(context, run: records.RunRecord, run_id: str, live_run, pushed_to, blessing, blessed: bool) -> State:
    """What became of the run: recorded by the supervisor where the executions
    alone cannot tell (an interrupted run), else read from them."""
    recorded = (
        context.custom_properties[STATE_PROPERTY].string_value if STATE_PROPERTY in context.custom_properties else ""
    )
    if recorded:
        return State(recorded)
    if pushed_to:
        return State.PUSHED
    if run.failed_component == names.DATA_GATE:
        return State.DATA_REFUSED
    if run.failed_component:
        return State.FAILED
    if run.unfinished or SETTINGS_PROPERTY not in context.custom_properties:
        # Settings are recorded where a run ends (its worker's end, or its
        # supervisor's conclusion): a run without them that holds no lock was
        # killed, maybe between two components, where no execution is unfinished.
        return State.RUNNING if run_id == live_run else State.INTERRUPTED
    if blessing is not None and not blessed:
        return State.REFUSED
    return State.FAILED


def _baseline_version(store: mlmd.MetadataStore, model: records.ArtifactRecord) -> str | None:
    """The pushed version a baseline Model holds; None when the candidate was
    its own baseline (nothing pushed yet)."""
    if names.PUSHED_VERSION in model.properties:  # components/baseline.py
        return model.properties[names.PUSHED_VERSION] or None
    return records.pushed_version(store, model.id)


def _spans(context, examples: list[records.ArtifactRecord]) -> list[int]:
    """The spans the Trainer read: its Examples artifacts' spans, or (when one
    artifact holds every span folder) what the run recorded at its start."""
    spans = {int(a.properties["span"]) for a in examples if "span" in a.properties}
    if spans - {0}:
        return sorted(spans)
    recorded = (
        context.custom_properties[SPANS_PROPERTY].string_value if SPANS_PROPERTY in context.custom_properties else ""
    )
    return [int(s) for s in recorded.split(",") if s]


def record_spans(store: mlmd.MetadataStore, run_id: str, spans: list[int]) -> None:
    """Note on the run which span folders it read (the data root's at its start)."""
    context = records.run_context(store, run_id)
    if context is not None:
        context.custom_properties[SPANS_PROPERTY].string_value = ",".join(map(str, spans))
        store.put_contexts([context])


def record_run(store: mlmd.MetadataStore, run_id: str, config, spans: list[int]) -> None:
    """What a run read and ran with: its span folders (unless a span window
    chose them: then the Trainer's Examples say) and its settings."""
    if not config.data.span_window:
        record_spans(store, run_id, spans)
    record_settings(store, run_id, config)


def record_settings(store: mlmd.MetadataStore, run_id: str, config) -> None:
    """Note on the run the settings it ran with (every key, effective values)."""
    from flowers import settings

    context = records.run_context(store, run_id)
    if context is not None:
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.values(config).items()}
        context.custom_properties[SETTINGS_PROPERTY].string_value = json.dumps(values)
        store.put_contexts([context])


def recorded_settings(context) -> dict:
    if SETTINGS_PROPERTY not in context.custom_properties:
        return {}
    return json.loads(context.custom_properties[SETTINGS_PROPERTY].string_value)


def mark_unchanged(store: mlmd.MetadataStore, run_id: str, version: str) -> None:
    """Record that the run stopped after a cached Trainer whose model is the served `version`."""
    context = records.run_context(store, run_id)
    context.custom_properties[STATE_PROPERTY].string_value = State.UNCHANGED.value
    context.custom_properties[NOTE_PROPERTY].string_value = f"version {version} is already this model"
    store.put_contexts([context])


def record_summary(store: mlmd.MetadataStore, summary: RunSummary) -> None:
    """Keep a finished run's summary on its context: `history` and `report`
    then read it without loading TensorFlow and TFMA for every run."""
    context = records.run_context(store, summary.run_id)
    context.custom_properties[SUMMARY_PROPERTY].string_value = json.dumps(dataclasses.asdict(summary))
    store.put_contexts([context])


def mark_stopped(store: mlmd.MetadataStore, run_id: str, state: State) -> None:
    """Record how `run_id` ended when its worker was stopped: its unfinished
    executions become CANCELED (interrupted) or FAILED (the worker died in
    them), and the run context keeps `state`."""
    try:
        context = records.run_context(store, run_id)
    except mlmd.errors.NotFoundError:
        return
    if context is None:
        return
    ended = records.Execution.FAILED if state == State.FAILED else records.Execution.CANCELED
    stale = [e for e in store.get_executions_by_context(context.id) if e.last_known_state in records.UNFINISHED]
    for execution in stale:
        execution.last_known_state = ended
    if stale:
        store.put_executions(stale)
    context.custom_properties[STATE_PROPERTY].string_value = state.value
    store.put_contexts([context])


def pushed_by(store: mlmd.MetadataStore, run_id: str) -> str | None:
    """The serving folder the run's Pusher committed, as ML Metadata
    recorded it; None when the run pushed nothing."""
    context = records.run_context(store, run_id)
    if context is None:
        return None
    for artifact in store.get_artifacts_by_context(context.id):
        if "pushed" in artifact.custom_properties and artifact.custom_properties["pushed"].int_value:
            return artifact.custom_properties["pushed_destination"].string_value
    return None


def history_header(columns: tuple[str, ...] = ()) -> str:
    """The header of `flowers history`; `columns`: settings shown as columns."""
    shown = "".join(f"{c:<{_width(c)}}  " for c in columns)
    return (
        f"{'run':<26}  {'spans':<7} {'train/val/eval':<15} {'accuracy':>8} {'baseline':>8}  {'state':<12}  "
        f"{'time':>6}  {shown}version or why"
    )


def history_row(summary: RunSummary, columns: tuple[str, ...] = ()) -> str:
    """One line of `flowers history`."""

    def fmt(value):
        return "-" if value is None else f"{value:.4f}"

    counts = "/".join(
        "-" if n is None else str(n)
        for n in (summary.train_examples, summary.validation_examples, summary.eval_examples)
    )
    why = summary.pushed_version or "; ".join(summary.gate_failures)
    if summary.note:
        why = f"{why} ({summary.note})"
    if not why and summary.anomalies:
        why = next(f"{split}: {lines[0]}" for split, lines in summary.anomalies.items())
    if not why and summary.failed_component:
        why = f"{summary.failed_component} failed"
    spans = ",".join(map(str, summary.spans)) or "-"
    seconds = "-" if summary.seconds is None else f"{summary.seconds:.0f}s"
    shown = "".join(f"{_setting(summary, c):<{_width(c)}}  " for c in columns)
    return (
        f"{summary.run_id[:26]:<26}  {spans:<7} {counts:<15} {fmt(summary.accuracy):>8} "
        f"{fmt(summary.baseline_accuracy):>8}  "
        f"{summary.state:<12}  {seconds:>6}  {shown}{why or '-'}"
    )


def _width(column: str) -> int:
    return max(len(column), 10)


def _setting(summary: RunSummary, key: str) -> str:
    value = summary.settings.get(key, "-")
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def tflite_line(check: dict) -> str:
    """The TFLite model's size and accuracy against the SavedModel's, or why it was not written."""
    if not check["written"]:
        return check["reason"]
    return (
        f"{check['bytes'] / 2**20:.2f} MiB ({check['quantization']}), accuracy {check['accuracy']:.4f} "
        f"on {check['examples']} validation images (SavedModel {check['savedmodel_accuracy']:.4f})"
    )


def summary_lines(summary: RunSummary) -> list[str]:
    """The summary a run prints at its end."""
    acc = "n/a" if summary.accuracy is None else f"{summary.accuracy:.4f}"
    lines = [f"run:            {summary.run_id}", f"state:          {summary.state}"]
    if summary.note:
        lines.append(f"note:           {summary.note}")
    if summary.spans:
        lines.append(f"spans:          {', '.join(map(str, summary.spans))}")
    if summary.train_examples is not None:
        lines.append(
            f"examples:       {summary.train_examples} train, {summary.validation_examples} validation, "
            f"{summary.eval_examples} eval"
        )
    if summary.accuracy is not None:
        lines.append(f"eval accuracy:  {acc} on {summary.eval_examples} eval examples")
    if summary.tflite:
        lines.append(f"tflite:         {tflite_line(summary.tflite)}")
    if summary.accuracy is not None and summary.baseline_version and summary.baseline_accuracy is not None:
        change = summary.accuracy - summary.baseline_accuracy
        lines.append(
            f"baseline:       version {summary.baseline_version}, accuracy "
            f"{summary.baseline_accuracy:.4f} ({change:+.4f})"
        )
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
