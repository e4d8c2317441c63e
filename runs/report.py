"""The run report: one self-contained HTML page per pipeline run.

Everything on it is found through ML Metadata (the run's executions, their
properties and the artifacts they read and wrote), never by guessing paths:

* the data: examples per class and split (StatisticsGen), span, anomalies;
* the training curves of both phases (the Trainer's `history.json`);
* the confusion matrix and per-class precision / recall (the Evaluator's own
  TFMA output), the candidate against the baseline with each gate's verdict;
* the eval images the model got wrong (predicted again through the run's
  serving signature);
* the settings (the Trainer's execution properties) and the time each
  component took.

Plots are PNGs (matplotlib) embedded as base64, thumbnails as JPEG data: the
page needs no network and no other file. Numbers a program may want carry
`data-key` / `data-value` attributes (the tests read them).
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import io
import json
import os
import shlex
import sys
from typing import Callable

from flowers import features, outputs
from flowers.components import names
from flowers.config import TRAINING_CONFIG_KEY, PipelineConfig
from flowers.runs import records, results

REPORT_FILE = "report.html"
# Eval examples predicted again for the grid of mistakes (the rest are
# counted by TFMA only), and how many mistakes the grid shows.
MAX_EVAL_PREDICTIONS = 5000
MAX_WRONG_SHOWN = 60
THUMBNAIL_PX = 128



def report_path(config: PipelineConfig, run_id: str) -> str:
    """`<output_dir>/runs/<run id, ':' as '-'>/report.html`, the run's folder."""
    root = config.output_dir if "://" in config.output_dir else os.path.abspath(config.output_dir)
    return f"{outputs.run_dir(root, run_id)}/{REPORT_FILE}"


def write_report(config: PipelineConfig, run_id: str | None = None) -> str:
    """Write the report of `run_id` (default: the newest run) into the run's
    folder; returns its path. A part the run did not produce (it failed, or
    the data was refused) says so on the page."""
    store = records.store_for(config)
    run_id = records.resolve_run_id(store, run_id, config)
    page = render(gather(config, store, run_id))
    import tensorflow as tf  # gfile: a gs:// output dir too

    path = report_path(config, run_id)
    tf.io.gfile.makedirs(os.path.dirname(path))
    partial = f"{path}.partial"
    with tf.io.gfile.GFile(partial, "w") as f:
        f.write(page)
    tf.io.gfile.rename(partial, path, overwrite=True)
    return path


def tensorboard_command(config: PipelineConfig, run_id: str) -> str:
    """`tensorboard --logdir_spec RUN:DIR` for the run: DIR is the Trainer's ModelRun
    artifact, where Keras' TensorBoard callback wrote both phases. LookupError
    if the run has no Trainer output (it stopped before training)."""
    store = records.store_for(config)
    run = records.RunRecord.load(store, records.resolve_run_id(store, run_id, config))
    model_run = run.output(names.TRAINER, "model_run")
    if model_run is None:
        raise LookupError(f"run {run.run_id} has no TensorBoard logs: its Trainer did not produce a model_run artifact")
    # The venv's own TensorBoard (runs as printed, activated or not); the run
    # is named by its id in TensorBoard's run list (":" is the spec's separator).
    program = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    return f"{shlex.quote(program)} --logdir_spec {shlex.quote(run.run_id.replace(':', '-') + ':' + model_run.uri)}"


# ---------------------------------------------------------------------------
# Reading the artifacts.


@dataclasses.dataclass
class Report:
    config: PipelineConfig
    run: records.RunRecord
    summary: results.RunSummary
    sections: list[tuple[str, str, str]]  # (anchor, title, html)
    previous: results.RunSummary | None = None  # the run before this one, if any


def gather(config: PipelineConfig, store, run_id: str) -> Report:
    run = records.RunRecord.load(store, run_id)
    summary = results.summarize(store, run_id, live_run=outputs.RunLock.live_run(config.output_dir))
    earlier = records.run_ids(store)[: records.run_ids(store).index(run_id)]
    previous = results.summarize(store, earlier[-1]) if earlier else None
    report = Report(config, run, summary, [], previous)
    baseline = run.input(names.EVALUATOR, "baseline_model")
    parts: list[tuple[str, str, Callable[[], str]]] = [
        ("data", "Data", lambda: _data_section(run, summary)),
        ("training", "Training", lambda: _training_section(store, run)),
        ("evaluation", "Evaluation", lambda: _evaluation_section(run)),
        ("gates", "Candidate against baseline, and the gates", lambda: _gates_section(store, run, summary, baseline)),
        ("mistakes", "Eval images the model got wrong", lambda: _mistakes_section(run)),
        ("settings", "Settings", lambda: _settings_section(run, summary)),
        ("timing", "Time per component", lambda: _timing_section(run)),
    ]
    if previous is not None:
        parts.append(("previous", "Compared with the previous run", lambda: _compare_section(previous, summary)))
    for anchor, title, build in parts:
        try:
            body = build()
        except Exception as error:  # one unreadable part never costs the whole page
            body = _note(f"This part could not be read: {type(error).__name__}: {error}", kind="error")
        report.sections.append((anchor, title, body))
    return report


def class_counts(statistics_uri: str) -> dict[str, dict[str, int]]:
    """split -> class name -> examples, and split -> "(all)" -> examples,
    from StatisticsGen's FeatureStats.pb (the class feature's histogram, or
    the label feature's when the class was not counted as categorical)."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import statistics_pb2

    counts: dict[str, dict[str, int]] = {}
    for path in sorted(tf.io.gfile.glob(f"{statistics_uri}/Split-*/FeatureStats.pb")):
        split = os.path.basename(os.path.dirname(path))[len("Split-"):]
        with tf.io.gfile.GFile(path, "rb") as f:
            stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
        dataset = stats.datasets[0]
        per_class: dict[str, int] = {}
        by_feature = {".".join(f.path.step) or f.name: f for f in dataset.features}
        cls = by_feature.get(features.CLASS_KEY)
        label = by_feature.get(features.LABEL_KEY)
        if cls is not None and cls.HasField("string_stats"):
            for bucket in cls.string_stats.rank_histogram.buckets:
                index = int(bucket.label)
                name = features.CLASS_NAMES[index] if 0 <= index < features.NUM_CLASSES else f"class {index}"
                per_class[name] = int(bucket.sample_count)
        elif label is not None and label.HasField("string_stats"):
            for bucket in label.string_stats.rank_histogram.buckets:
                per_class[bucket.label] = int(bucket.sample_count)
        ordered = {n: per_class[n] for n in features.CLASS_NAMES if n in per_class}
        ordered.update({n: v for n, v in per_class.items() if n not in ordered})
        ordered["(all)"] = int(dataset.num_examples)
        counts[split] = ordered
    return counts


@dataclasses.dataclass
class Mistake:
    index: int  # position in the eval split
    true_class: str
    predicted_class: str
    confidence: float
    thumbnail: bytes  # JPEG


@dataclasses.dataclass
class EvalPredictions:
    checked: int  # eval examples predicted
    mistakes: list[Mistake]  # the wrong ones, most confident first
    confidence: list[float]  # per readable example: the top class's probability
    correct: list[bool]  # and whether the top class was right


def find_mistakes(examples_uri: str, model_uri: str, limit: int = MAX_EVAL_PREDICTIONS) -> EvalPredictions:
    """The eval split's images through the model's serving signature: the
    wrong ones for the grid, and every confidence for the calibration."""
    import tensorflow as tf

    from flowers.runs import predict

    files = sorted(tf.io.gfile.glob(f"{examples_uri}/Split-eval/*.gz"))
    if not files:
        raise LookupError(f"{examples_uri} has no eval split")
    model = predict.load(f"{model_uri}/{names.SERVING_FOLDER}")
    checked = 0
    mistakes: list[Mistake] = []
    confidence: list[float] = []
    correct: list[bool] = []
    batch: list[tuple[str, bytes]] = []
    truth: dict[str, int] = {}

    def flush():
        images = dict(batch)
        for row in predict.classify_batch(model, names.SERVING_FOLDER, batch):
            actual = features.CLASS_NAMES[truth.pop(row["file"])]
            if "error" in row:
                mistakes.append(Mistake(int(row["file"]), actual, "(unreadable)", 0.0, b""))
                continue
            confidence.append(row["confidence"])
            correct.append(row["class"] == actual)
            if row["class"] != actual:
                mistakes.append(Mistake(int(row["file"]), actual, row["class"], row["confidence"], images[row["file"]]))
        batch.clear()
        # Only the most confident mistakes are shown: keep their images only.
        mistakes.sort(key=lambda m: -m.confidence)
        for m in mistakes[MAX_WRONG_SHOWN:]:
            m.thumbnail = b""

    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit):
        f = tf.train.Example.FromString(record.numpy()).features.feature
        key = str(checked)
        truth[key] = int(f[features.CLASS_KEY].int64_list.value[0])
        batch.append((key, f[features.IMAGE_KEY].bytes_list.value[0]))
        checked += 1
        if len(batch) == 64:
            flush()
    flush()
    for m in mistakes[:MAX_WRONG_SHOWN]:
        m.thumbnail = _thumbnail(m.thumbnail) if m.thumbnail else b""
    return EvalPredictions(checked, mistakes, confidence, correct)


CALIBRATION_BINS = 10


def calibration(confidence: list[float], correct: list[bool], bins: int = CALIBRATION_BINS):
    """(expected calibration error, [(bin low, bin high, examples, mean confidence,
    accuracy)] for the non-empty bins): how far the model's confidence is from
    how often it is right, weighted by the examples in each bin."""
    rows = []
    total = len(confidence)
    ece = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidence) if low < c <= high or (b == 0 and c == 0.0)]
        if not members:
            continue
        mean_confidence = sum(confidence[i] for i in members) / len(members)
        accuracy = sum(correct[i] for i in members) / len(members)
        ece += len(members) / total * abs(mean_confidence - accuracy)
        rows.append((low, high, len(members), mean_confidence, accuracy))
    return ece, rows


def _thumbnail(image: bytes) -> bytes:
    import tensorflow as tf

    decoded = tf.io.decode_image(image, channels=3, expand_animations=False)
    small = tf.image.resize(decoded, [THUMBNAIL_PX, THUMBNAIL_PX], preserve_aspect_ratio=True)
    return tf.io.encode_jpeg(tf.cast(tf.round(small), tf.uint8), quality=85).numpy()


# ---------------------------------------------------------------------------
# Sections.


def _data_section(run: records.RunRecord, summary: results.RunSummary) -> str:
    parts = []
    example_gen = next((e for n, e in run.executions.items() if "ExampleGen" in n), None)
    facts = []
    if example_gen is not None:
        props = example_gen.properties
        examples = next(iter(example_gen.outputs.get("examples", [])), None)
        facts.append(("data root", props.get("input_base", "?")))
        if props.get("input_config"):
            patterns = [split.get("pattern", "") for split in json.loads(props["input_config"]).get("splits", [])]
            facts.append(("files read", ", ".join(p for p in patterns if p)))
        spans = list(getattr(summary, "spans", None) or [])
        if not spans:
            span = examples.properties.get("span") if examples else props.get("span")
            spans = [span] if span is not None else []
        shown = ", ".join(map(str, spans)) if spans != [0] else "every span folder of the data root (span-*/)"
        facts.append(("spans" if len(spans) > 1 else "span", shown or "?"))
        if examples and examples.properties.get("version") is not None:
            facts.append(("version", examples.properties["version"]))
        if examples:
            facts.append(("split names", ", ".join(json.loads(examples.properties.get("split_names", "[]")))))
            facts.append(("examples artifact", examples.uri))
    parts.append(_facts(facts))
    statistics = run.output_of_type("ExampleStatistics")
    if statistics is None:
        parts.append(_note("StatisticsGen produced no statistics in this run."))
    else:
        counts = class_counts(statistics[1].uri)
        named = json.loads(statistics[1].properties.get("split_names") or "[]")
        splits = [s for s in named if s in counts] + [s for s in counts if s not in named]
        class_names = [n for n in counts[splits[0]] if n != "(all)"] if splits else []
        rows = []
        for name in class_names + ["(all)"]:
            cells = [_td(html.escape(name), header=True)]
            for split in splits:
                value = counts[split].get(name, 0)
                cells.append(_td(str(value), key="examples", split=split, cls=name, value=value))
            rows.append(cells)
        parts.append(_table(["class"] + splits, rows, caption="Examples per class and split (StatisticsGen)"))
        parts.append(_img(_class_counts_plot({s: counts[s] for s in splits}, class_names), "examples per class and split", "plot-data"))
    anomalies = summary.anomalies
    if anomalies:
        items = "".join(
            f'<li data-key="anomaly" data-split="{_a(split)}">{html.escape(split)}: {html.escape(line)}</li>'
            for split, lines in anomalies.items() for line in lines
        )
        parts.append(f'<p class="bad">ExampleValidator found anomalies:</p><ul>{items}</ul>')
    elif run.output_of_type("ExampleAnomalies") is not None:
        parts.append('<p class="good" data-key="anomalies" data-value="0">ExampleValidator found no anomalies.</p>')
    else:
        parts.append(_note("ExampleValidator did not run."))
    return "".join(parts)


def _training_section(store, run: records.RunRecord) -> str:
    model = run.output(names.TRAINER, "model")
    if model is None:
        return _note("The Trainer produced no model in this run.")
    history = records.read_history(model.uri)
    if history is None:
        return _note(f"No {features.HISTORY_FILE} next to the model ({model.uri}).")
    trainer = run.execution(names.TRAINER)
    parts = []
    if trainer is not None and trainer.state == "CACHED":
        origin = records.producing_run(store, model.id)
        parts.append(_note("The Trainer was cached: this model and its history come from "
                           + (f"run {origin}." if origin else "an earlier run.")))
    epochs = len(history.get("loss", []))
    phases = history.get("phase") or ["head"] * epochs
    parts.append(_img(_training_plot(history), "loss and accuracy per epoch", "plot-training"))
    best = max(range(epochs), key=lambda i: history.get("val_accuracy", [0] * epochs)[i]) if epochs else -1
    columns = [("loss", "loss"), ("accuracy", "accuracy"), ("val_loss", "validation loss"),
               ("val_accuracy", "validation accuracy"), ("lr", "learning rate"), ("epoch_seconds", "seconds")]
    present = [(k, t) for k, t in columns if len(history.get(k, [])) == epochs]
    rows = []
    for i in range(epochs):
        cells = [_td(str(i + 1), key="epoch", value=i + 1), _td(html.escape(phases[i]), key="phase", value=phases[i])]
        for k, _ in present:
            v = history[k][i]
            text = f"{v:.4g}" if k in ("lr",) else (f"{v:.1f}" if k == "epoch_seconds" else f"{v:.4f}")
            cells.append(_td(text, key=k, epoch=i + 1, value=v))
        rows.append((cells, "best" if i == best else ""))
    parts.append(_table(["epoch", "phase"] + [t for _, t in present], rows,
                        caption="Keras history, both phases (bold: best validation accuracy)"))
    parts.append(_facts([("weights kept", _kept(history, phases), True), ("model", model.uri)]))
    return "".join(parts)


def _kept(history: dict, phases: list[str]) -> str:
    """Which phase's weights were exported, and why (the Trainer keeps the
    head-only weights when fine-tuning never beats them on validation)."""
    scores = history.get("val_accuracy", [])
    best = {phase: max((s for s, p in zip(scores, phases) if p == phase), default=None) for phase in ("head", "fine_tune")}
    if best["fine_tune"] is None:
        return '<span data-key="kept" data-value="head">head only (no fine-tuning phase)</span>'
    if best["head"] is not None and best["fine_tune"] <= best["head"]:
        return (f'<span data-key="kept" data-value="head">head-only weights: fine-tuning\'s best validation accuracy '
                f"{best['fine_tune']:.4f} did not beat the head's {best['head']:.4f}</span>")
    return (f'<span data-key="kept" data-value="fine_tune">fine-tuned weights: best validation accuracy '
            f"{best['fine_tune']:.4f} against the head's {_num(best['head'])}</span>")


def _evaluation_section(run: records.RunRecord) -> str:
    evaluation_artifact = run.output(names.EVALUATOR, "evaluation")
    if evaluation_artifact is None:
        return _note("The Evaluator did not run in this run.")
    ev = records.read_evaluation(evaluation_artifact.uri)
    n = features.NUM_CLASSES
    class_names = features.CLASS_NAMES
    total = sum(map(sum, ev.confusion)) + sum(ev.no_prediction)
    parts = []
    rows = []
    for a in range(n):
        cells = [_td(html.escape(class_names[a]), header=True)]
        support = sum(ev.confusion[a]) or 1.0
        for p in range(n):
            v = ev.confusion[a][p]
            # Shaded by the share of the true class: the table is the heat map.
            shade = f"rgba({'46,125,50' if a == p else '198,40,40'},{0.08 + 0.6 * v / support:.2f})" if v else ""
            cells.append(_td(_count(v), key="confusion", actual=class_names[a], predicted=class_names[p], value=v,
                             style=shade))
        rows.append(cells)
    header = ["true \\ predicted"] + list(class_names)
    parts.append(_table(header, rows, caption=f"Confusion matrix: {_count(total)} eval examples (TFMA MultiClassConfusionMatrixPlot)"))
    if any(ev.no_prediction):
        parts.append(_note(f"{_count(sum(ev.no_prediction))} example(s) had no predicted class."))
    rows = []
    for i, name in enumerate(class_names):
        support = sum(ev.confusion[i]) + ev.no_prediction[i]
        predicted = sum(ev.confusion[a][i] for a in range(n))
        top1_precision = ev.confusion[i][i] / predicted if predicted else None
        top1_recall = ev.confusion[i][i] / support if support else None
        binarized = ev.per_class.get(name, {})
        cells = [_td(html.escape(name), header=True), _td(_count(support), key="support", cls=name, value=support)]
        for key, value in (("precision_top1", top1_precision), ("recall_top1", top1_recall),
                           ("precision", binarized.get("precision")), ("recall", binarized.get("recall")),
                           ("auc", binarized.get("auc"))):
            cells.append(_td(_num(value), key=key, cls=name, value=value))
        rows.append(cells)
    parts.append(_table(
        ["class", "eval examples", "precision (top class)", "recall (top class)",
         "precision (one-vs-rest, 0.5)", "recall (one-vs-rest, 0.5)", "AUC (one-vs-rest)"],
        rows,
        caption="Per class. Top class: from the confusion matrix (the predicted class is the most probable one; "
                "recall is the accuracy on the class's slice). One-vs-rest: TFMA's binarized Precision, Recall "
                "and AUC of the class's probability, at a 0.5 threshold.",
    ))
    return "".join(parts)


def _gates_section(store, run: records.RunRecord, summary: results.RunSummary, baseline) -> str:
    evaluation_artifact = run.output(names.EVALUATOR, "evaluation")
    parts = []
    gate_rows = []
    data_gate = run.execution(names.DATA_GATE)
    if data_gate is not None:
        found = sum(len(v) for v in summary.anomalies.values())
        verdict = "pass" if data_gate.state in ("COMPLETE", "CACHED") and not found else (
            "fail" if found or data_gate.state == "FAILED" else data_gate.state.lower())
        gate_rows.append(_gate_row("data", "no anomalies in any split (ExampleValidator, curated schema)",
                                   f"{found} anomal{'y' if found == 1 else 'ies'}", verdict))
    if evaluation_artifact is None:
        parts.append(_note("The Evaluator did not run in this run: no model gate was applied."))
        if gate_rows:
            parts.append(_table(["gate", "rule", "measured", "verdict"], gate_rows))
        return "".join(parts)
    ev = records.read_evaluation(evaluation_artifact.uri)
    candidate = ev.metrics.get(records.CANDIDATE if baseline is not None else "", ev.metrics.get("", {}))
    base_values = ev.metrics.get("baseline", {}) if baseline is not None else {}
    itself = False
    if baseline is not None:
        # components/baseline.py's LatestPushedModel names the pushed version it
        # copied ("" before the first push: the candidate is its own baseline);
        # a Resolver's baseline is a model an earlier run trained.
        version = baseline.properties.get("pushed_version")
        if version == "":
            itself = True
            described = "none yet: no model was pushed before, so the candidate was compared with itself (every change is 0)"
        elif version:
            described = f"pushed version {version}, the newest model in the serving folder ({baseline.uri})"
        else:
            origin = records.producing_run(store, baseline.id)
            described = f"the last blessed model, {baseline.uri}" + (f" (trained in run {origin})" if origin else "")
        candidate_model = run.output(names.TRAINER, "model")
        shown = f'<span data-key="baseline_model" data-version="{_a(version or "")}" data-uri="{_a(baseline.uri)}">{html.escape(described)}</span>'
        parts.append(_facts([("baseline", shown, True), ("candidate", candidate_model.uri if candidate_model else "?")]))
    else:
        parts.append(_note("No baseline (compare_to_blessed is off): only the absolute gate applies."))
    rows = []
    for name in sorted(set(candidate) | set(base_values)):
        c, b = candidate.get(name), base_values.get(name)
        d = ev.diffs.get(name)
        show = _count if name == "example_count" else _num
        cells = [_td(html.escape(name), header=True), _td(show(c), key="candidate", metric=name, value=c)]
        if baseline is not None:
            cells += [_td(show(b), key="baseline", metric=name, value=b),
                      _td("" if d is None else (f"{d:+.0f}" if name == "example_count" else f"{d:+.4f}"),
                          key="diff", metric=name, value=d)]
        rows.append(cells)
    headers = ["metric (all eval examples)", "candidate"] + (["baseline", "change"] if baseline is not None else [])
    parts.append(_table(headers, rows))
    gate_rows += _model_gates(run, ev, candidate, baseline is not None, itself)
    blessing = run.output(names.EVALUATOR, "blessing")
    blessed = bool(blessing and blessing.properties.get("blessed"))
    parts.append(_table(["gate", "rule", "measured", "verdict"], gate_rows, caption="Gates"))
    parts.append(
        f'<p class="{"good" if blessed else "bad"}" data-key="blessed" data-value="{int(blessed)}">'
        f'{"Blessed: every model gate passed." if blessed else "Not blessed."} '
        f'{"Pushed to " + html.escape(summary.pushed_to) if summary.pushed_to else "Not pushed."}</p>'
    )
    return "".join(parts)


def _model_gates(run: records.RunRecord, ev: records.Evaluation, candidate: dict, has_baseline: bool, itself: bool = False) -> list:
    """One row per threshold configured on the Evaluator (its execution's
    eval_config), judged by TFMA's validation result; a change threshold
    TFMA did not apply (no baseline) says so."""
    import tensorflow_model_analysis as tfma
    from google.protobuf import json_format

    evaluator = run.execution(names.EVALUATOR)
    configured = tfma.EvalConfig()
    if evaluator is not None and evaluator.properties.get("eval_config"):
        json_format.Parse(evaluator.properties["eval_config"], configured, ignore_unknown_fields=True)
    elif ev.eval_config is not None:
        configured = ev.eval_config
    failures = {}
    if ev.validation is not None:
        for per_slice in ev.validation.metric_validations_per_slice:
            if per_slice.slice_key.single_slice_keys:  # a class under the recall floor: listed with the failed gates
                continue
            for f in per_slice.failures:
                failures[(f.metric_key.name, f.metric_key.is_diff)] = f
    metric_names = _metric_names()
    rows = []
    for spec in configured.metrics_specs:
        for metric in spec.metrics:
            thresholds = [t.threshold for t in metric.per_slice_thresholds if _overall(t.slicing_specs)]
            if metric.HasField("threshold"):
                thresholds.append(metric.threshold)
            name = metric_names.get(metric.class_name, metric.class_name)
            for threshold in thresholds:
                if threshold.HasField("value_threshold"):
                    vt = threshold.value_threshold
                    rule = " and ".join(
                        [f"{name} ≥ {vt.lower_bound.value:.4f}"] * vt.HasField("lower_bound")
                        + [f"{name} ≤ {vt.upper_bound.value:.4f}"] * vt.HasField("upper_bound")
                    )
                    value = candidate.get(name)
                    verdict = "fail" if (name, False) in failures else ("pass" if value is not None else "not measured")
                    rows.append(_gate_row(f"{name} (absolute)", rule, _num(value), verdict))
                if threshold.HasField("change_threshold"):
                    ct = threshold.change_threshold
                    allowed = ct.absolute.value if ct.HasField("absolute") else None
                    if allowed is None:
                        rule = "change against the baseline"
                    elif abs(allowed) < 5e-5:  # the Evaluator's tiny slack for "no drop"
                        rule = "no lower than the baseline's (change ≥ 0)"
                    else:
                        rule = f"change against the baseline ≥ {allowed:+.4f}"
                    if not has_baseline:
                        rows.append(_gate_row(f"{name} (against baseline)", rule, "-", "not applied (no baseline)"))
                        continue
                    if itself:  # nothing pushed yet: the candidate was its own baseline
                        rows.append(_gate_row(f"{name} (against baseline)", rule, "- (first model: nothing pushed to compare with)", "pass"))
                        continue
                    diff = ev.diffs.get(name)
                    verdict = "fail" if (name, True) in failures else ("pass" if diff is not None else "not measured")
                    measured = "" if diff is None else f"{diff:+.4f}"
                    rows.append(_gate_row(f"{name} (against baseline)", rule, measured, verdict))
    return rows


def _metric_names() -> dict[str, str]:
    return {"SparseCategoricalAccuracy": features.ACCURACY_METRIC, "ExampleCount": "example_count"}


def _overall(slicing_specs) -> bool:
    return not slicing_specs or any(not s.feature_keys and not s.feature_values and not s.slice_keys_sql for s in slicing_specs)


def _gate_row(gate: str, rule: str, measured: str, verdict: str):
    kind = {"pass": "good", "fail": "bad"}.get(verdict, "")
    return [
        _td(html.escape(gate), header=True),
        _td(html.escape(rule)),
        _td(html.escape(measured)),
        _td(html.escape(verdict), key="gate", gate=gate, value=verdict, measured=measured, cls_=kind),
    ]


def _mistakes_section(run: records.RunRecord) -> str:
    model = run.output(names.TRAINER, "model")
    examples = run.output_of_type("Examples")
    if model is None or examples is None:
        return _note("No model was trained in this run.")
    predicted = find_mistakes(examples[1].uri, model.uri)
    checked, mistakes = predicted.checked, predicted.mistakes
    shown = mistakes[:MAX_WRONG_SHOWN]
    head = (
        f'<p data-key="mistakes" data-value="{len(mistakes)}" data-checked="{checked}">'
        f"{len(mistakes)} of {checked} eval images are wrong "
        f"(top-class accuracy {1 - len(mistakes) / checked if checked else 0:.4f})"
        + (f"; the {len(shown)} most confident mistakes are shown." if len(shown) < len(mistakes) else ".")
        + " Predicted through the model's serving signature.</p>"
    )
    cards = []
    for m in shown:
        image = (f'<img alt="eval image {m.index}" src="data:image/jpeg;base64,{base64.b64encode(m.thumbnail).decode()}">'
                 if m.thumbnail else '<div class="noimg">unreadable</div>')
        cards.append(
            f'<figure data-key="wrong" data-index="{m.index}" data-true="{_a(m.true_class)}" '
            f'data-predicted="{_a(m.predicted_class)}" data-confidence="{m.confidence:.6f}">{image}'
            f'<figcaption>true <b>{html.escape(m.true_class)}</b><br>predicted <b>{html.escape(m.predicted_class)}</b>'
            f"<br>confidence {m.confidence:.2f}</figcaption></figure>"
        )
    return head + f'<div class="grid">{"".join(cards)}</div>' + _calibration_part(predicted)


def _calibration_part(predicted: EvalPredictions) -> str:
    """The reliability diagram and the expected calibration error (ECE)."""
    if not predicted.confidence:
        return ""
    ece, rows = calibration(predicted.confidence, predicted.correct)
    table = _table(
        ["confidence", "eval images", "mean confidence", "accuracy"],
        [[_td(f"{low:.1f}–{high:.1f}", header=True), _td(str(n), value=n), _td(f"{c:.3f}", value=c),
          _td(f"{a:.3f}", key="calibration_bin", low=low, value=a)] for low, high, n, c, a in rows],
        caption="Reliability: in a well-calibrated model each bin's accuracy matches its mean confidence",
    )
    return (
        "<h3>Calibration</h3>"
        f'<p>Expected calibration error <span data-key="ece" data-value="{ece:.6f}">{ece:.4f}</span> '
        f"over {len(predicted.confidence)} eval images ({CALIBRATION_BINS} confidence bins); "
        "<code>flowers predict --unsure-below P</code> flags answers less confident than P.</p>"
        + _img(_reliability_plot(rows), "reliability diagram", "plot-reliability")
        + table
    )

def _settings_section(run: records.RunRecord, summary: results.RunSummary) -> str:
    parts = []
    if summary.settings:
        rows = [[_td(html.escape(k), header=True), _td(html.escape(_show(v)), key="run_setting", name=k, value=_show(v))]
                for k, v in summary.settings.items()]
        parts.append(_table(["setting", "value"], rows, caption="Every setting of the run (docs/settings.md)"))
    trainer = run.execution(names.TRAINER)
    if trainer is None:
        return "".join(parts) or _note("The Trainer did not run in this run.")
    props = dict(trainer.properties)
    custom = props.pop("custom_config", None)
    training = {}
    if custom:
        decoded = json.loads(custom) if isinstance(custom, str) else custom
        raw = decoded.get(TRAINING_CONFIG_KEY) if isinstance(decoded, dict) else None
        training = json.loads(raw) if isinstance(raw, str) else (raw or {})
        others = {k: v for k, v in decoded.items() if k != TRAINING_CONFIG_KEY} if isinstance(decoded, dict) else {}
        props.update({f"custom_config.{k}": v for k, v in others.items()})
    rows = [[_td(html.escape(k), header=True), _td(html.escape(_show(v)), key="setting", name=k, value=_show(v))]
            for k, v in sorted(training.items())]
    parts.append(_table(["training setting", "value"], rows, caption="The Trainer's custom_config (TrainingConfig)"))
    hyper = run.input(names.TRAINER, "hyperparameters")
    if hyper is not None:
        tuned = _tuned_values(hyper.uri)
        if tuned:
            rows = [[_td(html.escape(k), header=True), _td(html.escape(_show(v)), key="tuned", name=k, value=_show(v))]
                    for k, v in sorted(tuned.items())]
            parts.append(_table(["tuned hyperparameter", "value"], rows, caption="Used instead of the settings above (Tuner)"))
    rows = [[_td(html.escape(k), header=True), _td(f"<code>{html.escape(_show(v))}</code>")]
            for k, v in sorted(props.items()) if not k.startswith("__")]
    parts.append(_table(["Trainer execution property", "value"], rows))
    evaluator = run.execution(names.EVALUATOR)
    if evaluator is not None and evaluator.properties.get("eval_config"):
        parts.append(f'<details><summary>The Evaluator\'s eval_config</summary><pre>{html.escape(evaluator.properties["eval_config"])}</pre></details>')
    return "".join(parts)


def _tuned_values(uri: str) -> dict:
    import tensorflow as tf

    files = tf.io.gfile.glob(f"{uri}/*.txt")
    if not files:
        return {}
    with tf.io.gfile.GFile(files[0]) as f:
        return json.load(f).get("values", {})


def _timing_section(run: records.RunRecord) -> str:
    if not run.executions:
        return _note("No component ran.")
    longest = max(e.seconds for e in run.executions.values()) or 1.0
    rows = []
    for node, e in run.executions.items():
        width = 100 * e.seconds / longest
        bar = f'<div class="bar" style="width:{width:.1f}%"></div>'
        rows.append([
            _td(html.escape(node), header=True),
            _td(html.escape(e.state.lower()), key="component_state", component=node, value=e.state),
            _td(_clock(e.created_ms)),
            _td(f"{e.seconds:.1f}", key="seconds", component=node, value=e.seconds),
            _td(bar, cls_="barcell"),
        ])
    start = min(e.created_ms for e in run.executions.values())
    end = max(e.updated_ms for e in run.executions.values())
    caption = (f"From ML Metadata (execution created / last updated); first component to last: "
               f"{(end - start) / 1000:.1f} s. Cached components took no work.")
    return _table(["component", "state", "started", "seconds", ""], rows, caption=caption)


# ---------------------------------------------------------------------------
# Plots (matplotlib's object API: no pyplot state, no display needed).


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _class_counts_plot(counts: dict[str, dict[str, int]], names: list[str]) -> bytes:
    figure = _figure(7, 2.8)
    ax = figure.subplots()
    splits = list(counts)
    width = 0.8 / max(1, len(splits))
    for j, split in enumerate(splits):
        xs = [i + (j - (len(splits) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [counts[split].get(n, 0) for n in names], width, label=split)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("examples")
    # Above the axes: inside, it covered the tallest bar.
    ax.legend(frameon=False, ncol=len(splits), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def _training_plot(history: dict) -> bytes:
    epochs = len(history.get("loss", []))
    xs = list(range(1, epochs + 1))
    phases = history.get("phase") or ["head"] * epochs
    boundary = next((i for i in range(1, epochs) if phases[i] != phases[i - 1]), None)
    figure = _figure(10, 3.4)
    axes = figure.subplots(1, 2)
    for ax, metric, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        if history.get(metric):
            ax.plot(xs, history[metric], "o-", label="train")
        if history.get(f"val_{metric}"):
            ax.plot(xs, history[f"val_{metric}"], "s-", label="validation")
        if boundary is not None:
            ax.axvline(boundary + 0.5, color="grey", linestyle="--", linewidth=1)
            ax.text(boundary + 0.5, 0.02, " fine-tuning →", transform=ax.get_xaxis_transform(),
                    va="bottom", ha="left", fontsize=8, color="grey")
            ax.text(boundary + 0.5, 0.02, "← head ", transform=ax.get_xaxis_transform(),
                    va="bottom", ha="right", fontsize=8, color="grey")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.set_xticks(xs if epochs <= 20 else xs[:: max(1, epochs // 10)])
        ax.legend(frameon=False, loc="best")
        ax.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def _reliability_plot(rows) -> bytes:
    figure = _figure(4, 3.4)
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfectly calibrated")
    ax.plot([r[3] for r in rows], [r[4] for r in rows], "o-", label="this model")
    ax.set_xlabel("mean confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(frameon=False, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    return _png(figure)


# ---------------------------------------------------------------------------
# HTML.

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
nav a{margin-right:12px} table{border-collapse:collapse;margin:8px 0 12px;background:#fff}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top} td.n{text-align:right} th{background:#f0f0f0}
td.h{text-align:left;font-weight:600;background:#f7f7f7} caption{caption-side:bottom;text-align:left;color:#666;font-size:12px;padding-top:4px}
td.good{color:#1b5e20;font-weight:600} td.bad{color:#b71c1c;font-weight:600}
tr.best td{font-weight:700} p.good{color:#1b5e20} p.bad{color:#b71c1c} p.note{color:#555;font-style:italic} p.error{color:#b71c1c}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:8px 0} dt{font-weight:600} dd{margin:0;word-break:break-all}
img.plot{max-width:100%;background:#fff;border:1px solid #eee}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:10px}
figure{margin:0;background:#fff;border:1px solid #ddd;padding:6px;font-size:12px} figure img{width:128px;height:128px;object-fit:cover;display:block}
.noimg{width:128px;height:128px;background:#eee} td.barcell{width:40%;text-align:left} .bar{height:10px;background:#5c85d6}
p.verdict{color:#fff;font-size:17px;font-weight:600;padding:8px 12px;border-radius:4px;margin:8px 0}
p.warn{background:#fff8e1;border-left:4px solid #f9a825;padding:4px 8px;margin:4px 0}
pre{white-space:pre-wrap;font-size:12px;background:#fff;border:1px solid #ddd;padding:8px} code{font-size:12px}
"""


def render(report: Report) -> str:
    s = report.summary
    acc = "n/a" if s.accuracy is None else f"{s.accuracy:.4f}"
    if s.accuracy is not None and s.eval_examples:
        low, high = wilson_interval(s.accuracy, s.eval_examples)
        acc += f' (<span data-key="eval_interval" data-low="{low}" data-high="{high}">95% interval {low:.3f}–{high:.3f}</span>)'
    facts = [
        ("state", f'<span data-key="state" data-value="{_a(s.state)}">{html.escape(s.state)}</span>', True),
        ("started", html.escape(s.started or "?"), True),
        ("eval accuracy", f'<span data-key="eval_accuracy" data-value="{s.accuracy if s.accuracy is not None else ""}">{acc}</span>'
         + (f' on <span data-key="eval_examples" data-value="{s.eval_examples}">{s.eval_examples}</span> eval examples'
            if s.eval_examples is not None else ""), True),
        ("blessed", "yes" if s.blessed else "no", True),
        ("pushed to", html.escape(s.pushed_to or "not pushed"), True),
        *([("tflite", f'<span data-key="tflite_accuracy" data-value="{s.tflite["accuracy"]}">'
            f'{html.escape(results.tflite_line(s.tflite))}</span>', True)] if s.tflite else []),
        ("output dir", html.escape(os.path.abspath(report.config.output_dir)), True),
    ]
    if s.failed_component:
        facts.append(("failed", html.escape(s.failed_component) + " (details in the run log)", True))
    for failure in s.gate_failures:
        facts.append(("gate failed", html.escape(failure), True))
    if report.run.output(names.TRAINER, "model_run") is not None:
        facts.append(("TensorBoard", f"<code>{html.escape(tensorboard_command(report.config, s.run_id))}</code>", True))
    links = ['<a href="run.log" data-key="run_log">run log</a>']
    if report.previous is not None:
        links.append(f'<a href="../{_a(report.previous.run_id.replace(":", "-"))}/{REPORT_FILE}" data-key="previous_report">'
                     f"previous run ({html.escape(report.previous.run_id)})</a>")
    facts.append(("see also", " · ".join(links), True))
    nav = "".join(f'<a href="#{anchor}">{html.escape(title.split(",")[0])}</a>' for anchor, title, _ in report.sections)
    body = "".join(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{content}</section>'
                   for anchor, title, content in report.sections)
    generated = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>flowers run {html.escape(s.run_id)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_STYLE}</style></head><body><main>"
        f'<h1 data-key="run_id" data-value="{_a(s.run_id)}">flowers run {html.escape(s.run_id)}</h1>'
        f"{_verdict(s)}{_warnings(s)}{_facts(facts)}<nav>{nav}</nav>{body}"
        f'<p class="note">Written {generated} by <code>flowers report</code> from ML Metadata '
        f"({html.escape(os.path.abspath(report.config.metadata_path))}).</p>"
        "</main></body></html>\n"
    )


_VERDICT_COLOURS = {"pushed": "#1b5e20", "refused": "#b71c1c", "data refused": "#e65100", "failed": "#b71c1c"}


def _verdict(s: results.RunSummary) -> str:
    """The banner at the top: what became of the run and what decided it."""
    if s.state == "pushed":
        why = f"pushed as version {s.pushed_version}: every gate passed"
    elif s.state == "refused":
        why = "refused: " + (s.gate_failures[0] if s.gate_failures else "a model gate did not pass")
    elif s.state == "data refused":
        first = next((f"{split}: {lines[0]}" for split, lines in s.anomalies.items() if lines), "the data gate")
        why = f"data refused before training: {first}"
    elif s.state == "failed":
        why = f"failed in {s.failed_component or 'a component'} (see the run log)"
    else:
        why = s.state
    colour = _VERDICT_COLOURS.get(s.state, "#555")
    return (f'<p class="verdict" data-key="verdict" data-value="{_a(s.state)}" '
            f'style="background:{colour}">{html.escape(why)}</p>')


def _warnings(s: results.RunSummary) -> str:
    """Splits too thin for their figures to mean much."""
    found = []
    if s.eval_examples is not None and s.accuracy is not None and s.eval_examples < 200:
        low, high = wilson_interval(s.accuracy, s.eval_examples)
        found.append(f"only {s.eval_examples} eval examples: the accuracy is known to about "
                     f"±{50 * (high - low):.0f} points (95%); add photos or raise data.eval_percent")
    if s.validation_examples is not None and s.validation_examples < 100:
        found.append(f"only {s.validation_examples} validation examples: early stopping picks its epoch on few photos")
    return "".join(f'<p class="warn" data-key="warning">{html.escape(w)}</p>' for w in found)


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of an accuracy `p` measured on `n` examples."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    spread = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - spread), min(1.0, centre + spread)


def _compare_section(previous: results.RunSummary, summary: results.RunSummary) -> str:
    from flowers.runs import compare

    rows = [[_td(html.escape(what), header=True), _td(html.escape(a)), _td(html.escape(b), key="compare", name=what, value=b)]
            for what, a, b in compare.rows(previous, summary)]
    return _table(["", "previous run", "this run"], rows, caption="`flowers compare` of the two runs")


def _td(text: str, header: bool = False, key: str | None = None, value=None, cls_: str = "", **data) -> str:
    attrs = []
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    classes = " ".join(c for c in ("h" if header else "", "n" if numeric else "", cls_) if c)
    if classes:
        attrs.append(f'class="{classes}"')
    if key:
        attrs.append(f'data-key="{_a(key)}"')
        attrs.append(f'data-value="{_a("" if value is None else value)}"')
    style = data.pop("style", "")
    if style:
        attrs.append(f'style="background:{_a(style)}"')
    for name, v in data.items():
        # `cls` stands for data-class (a Python keyword).
        attrs.append(f'data-{"class" if name == "cls" else name}="{_a(v)}"')
    return f"<td {' '.join(attrs)}>{text}</td>" if attrs else f"<td>{text}</td>"


def _table(headers: list[str], rows: list, caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells, css = (row, "") if isinstance(row, list) else row
        lines.append(f'<tr class="{css}">' + "".join(cells) + "</tr>" if css else "<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _facts(items) -> str:
    out = []
    for item in items:
        key, value = item[0], item[1]
        trusted = len(item) > 2 and item[2]
        out.append(f"<dt>{html.escape(key)}</dt><dd>{value if trusted else html.escape(str(value))}</dd>")
    return f"<dl>{''.join(out)}</dl>"


def _img(png: bytes, alt: str, key: str) -> str:
    return f'<p><img class="plot" data-key="{key}" alt="{_a(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'


def _note(text: str, kind: str = "note") -> str:
    return f'<p class="{kind}">{html.escape(text)}</p>'


def _a(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value) -> str:
    """4 decimals; "n/a" where there is nothing to divide by (TFMA's NaN,
    e.g. the precision of a class never predicted)."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.4f}"


def _count(value) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _show(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _clock(millis: int) -> str:
    if not millis:
        return ""
    return datetime.datetime.fromtimestamp(millis / 1000).astimezone().strftime("%H:%M:%S")
