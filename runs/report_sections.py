"""The report's sections, each built from a run's record and the artifacts
it names (StatisticsGen's counts, the Trainer's history, TFMA's output, the
eval split through the serving signature)."""

from __future__ import annotations

import base64
import html
import json

from flowers import features
from flowers.components import names
from flowers.config import TRAINING_CONFIG_KEY
from flowers.runs import records, results
from flowers.runs import report_data as data
from flowers.runs import report_html as h

# ---------------------------------------------------------------------------
# Sections.


def data_section(run: records.RunRecord, summary: results.RunSummary) -> str:
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
    parts.append(h.facts(facts))
    statistics = run.output_of_type("ExampleStatistics")
    if statistics is None:
        parts.append(h.note("StatisticsGen produced no statistics in this run."))
    else:
        counts = data.class_counts(statistics[1].uri)
        named = json.loads(statistics[1].properties.get("split_names") or "[]")
        splits = [s for s in named if s in counts] + [s for s in counts if s not in named]
        class_names = [n for n in counts[splits[0]] if n != "(all)"] if splits else []
        rows = []
        for name in class_names + ["(all)"]:
            cells = [h.td(html.escape(name), header=True)]
            for split in splits:
                value = counts[split].get(name, 0)
                cells.append(h.td(str(value), key="examples", split=split, cls=name, value=value))
            rows.append(cells)
        parts.append(h.table(["class"] + splits, rows, caption="Examples per class and split (StatisticsGen)"))
        parts.append(
            h.img(
                h.class_counts_plot({s: counts[s] for s in splits}, class_names),
                "examples per class and split",
                "plot-data",
            )
        )
    anomalies = summary.anomalies
    if anomalies:
        items = "".join(
            f'<li data-key="anomaly" data-split="{h.a(split)}">{html.escape(split)}: {html.escape(line)}</li>'
            for split, lines in anomalies.items()
            for line in lines
        )
        parts.append(f'<p class="bad">ExampleValidator found anomalies:</p><ul>{items}</ul>')
    elif run.output_of_type("ExampleAnomalies") is not None:
        parts.append('<p class="good" data-key="anomalies" data-value="0">ExampleValidator found no anomalies.</p>')
    else:
        parts.append(h.note("ExampleValidator did not run."))
    return "".join(parts)


def training_section(store, run: records.RunRecord) -> str:
    model = run.output(names.TRAINER, "model")
    if model is None:
        return h.note("The Trainer produced no model in this run.")
    history = records.read_history(model.uri)
    if history is None:
        return h.note(f"No {features.HISTORY_FILE} next to the model ({model.uri}).")
    trainer = run.execution(names.TRAINER)
    parts = []
    if trainer is not None and trainer.state == "CACHED":
        origin = records.producing_run(store, model.id)
        parts.append(
            h.note(
                "The Trainer was cached: this model and its history come from "
                + (f"run {origin}." if origin else "an earlier run.")
            )
        )
    epochs = len(history.get("loss", []))
    phases = history.get("phase") or ["head"] * epochs
    parts.append(h.img(h.training_plot(history), "loss and accuracy per epoch", "plot-training"))
    best = max(range(epochs), key=lambda i: history.get("val_accuracy", [0] * epochs)[i]) if epochs else -1
    columns = [
        ("loss", "loss"),
        ("accuracy", "accuracy"),
        ("val_loss", "validation loss"),
        ("val_accuracy", "validation accuracy"),
        ("lr", "learning rate"),
        ("epoch_seconds", "seconds"),
    ]
    present = [(k, t) for k, t in columns if len(history.get(k, [])) == epochs]
    rows = []
    for i in range(epochs):
        cells = [h.td(str(i + 1), key="epoch", value=i + 1), h.td(html.escape(phases[i]), key="phase", value=phases[i])]
        for k, _ in present:
            v = history[k][i]
            text = f"{v:.4g}" if k in ("lr",) else (f"{v:.1f}" if k == "epoch_seconds" else f"{v:.4f}")
            cells.append(h.td(text, key=k, epoch=i + 1, value=v))
        rows.append((cells, "best" if i == best else ""))
    parts.append(
        h.table(
            ["epoch", "phase"] + [t for _, t in present],
            rows,
            caption="Keras history, both phases (bold: best validation accuracy)",
        )
    )
    facts = [("weights kept", _kept(history, phases), True)]
    if history.get(names.FINAL_FIT_HISTORY):
        facts.append(("exported after", _final_fit(history[names.FINAL_FIT_HISTORY]), True))
    parts.append(h.facts([*facts, ("model", model.uri)]))
    return "".join(parts)


def _final_fit(record: dict) -> str:
    """What the final fit on train + validation did (the exported weights)."""
    accuracy = record.get("accuracy") or [float("nan")]
    return (
        f'<span data-key="final_fit" data-value="{record["head_epochs"]}+{record["fine_tune_epochs"]}">'
        f"a final fit from the start on train + validation ({record['examples']} examples): "
        f"{record['head_epochs']} head + {record['fine_tune_epochs']} fine-tuning epoch(s), the epochs "
        f"validation chose above, at their learning rates; last training accuracy {accuracy[-1]:.4f}</span>"
    )


def _kept(history: dict, phases: list[str]) -> str:
    """Which phase's weights were exported, and why (the Trainer keeps the
    head-only weights when fine-tuning never beats them on validation)."""
    scores = history.get("val_accuracy", [])
    best = {
        phase: max((s for s, p in zip(scores, phases) if p == phase), default=None) for phase in ("head", "fine_tune")
    }
    if best["fine_tune"] is None:
        return '<span data-key="kept" data-value="head">head only (no fine-tuning phase)</span>'
    if best["head"] is not None and best["fine_tune"] <= best["head"]:
        return (
            f'<span data-key="kept" data-value="head">head-only weights: fine-tuning\'s best validation accuracy '
            f"{best['fine_tune']:.4f} did not beat the head's {best['head']:.4f}</span>"
        )
    return (
        f'<span data-key="kept" data-value="fine_tune">fine-tuned weights: best validation accuracy '
        f"{best['fine_tune']:.4f} against the head's {h.num(best['head'])}</span>"
    )


def evaluation_section(run: records.RunRecord) -> str:
    evaluation_artifact = run.output(names.EVALUATOR, "evaluation")
    if evaluation_artifact is None:
        return h.note("The Evaluator did not run in this run.")
    ev = records.read_evaluation(evaluation_artifact.uri)
    n = features.NUM_CLASSES
    class_names = features.CLASS_NAMES
    total = sum(map(sum, ev.confusion)) + sum(ev.no_prediction)
    parts = []
    rows = []
    for a in range(n):
        cells = [h.td(html.escape(class_names[a]), header=True)]
        support = sum(ev.confusion[a]) or 1.0
        for p in range(n):
            v = ev.confusion[a][p]
            # Shaded by the share of the true class: the table is the heat map.
            shade = f"rgba({'46,125,50' if a == p else '198,40,40'},{0.08 + 0.6 * v / support:.2f})" if v else ""
            cells.append(
                h.td(h.count(v), key="confusion", actual=class_names[a], predicted=class_names[p], value=v, style=shade)
            )
        rows.append(cells)
    header = ["true \\ predicted"] + list(class_names)
    parts.append(
        h.table(
            header,
            rows,
            caption=f"Confusion matrix: {h.count(total)} eval examples (TFMA MultiClassConfusionMatrixPlot)",
        )
    )
    if any(ev.no_prediction):
        parts.append(h.note(f"{h.count(sum(ev.no_prediction))} example(s) had no predicted class."))
    rows = []
    for i, name in enumerate(class_names):
        support = sum(ev.confusion[i]) + ev.no_prediction[i]
        predicted = sum(ev.confusion[a][i] for a in range(n))
        top1_precision = ev.confusion[i][i] / predicted if predicted else None
        top1_recall = ev.confusion[i][i] / support if support else None
        binarized = ev.per_class.get(name, {})
        cells = [h.td(html.escape(name), header=True), h.td(h.count(support), key="support", cls=name, value=support)]
        for key, value in (
            ("precision_top1", top1_precision),
            ("recall_top1", top1_recall),
            ("precision", binarized.get("precision")),
            ("recall", binarized.get("recall")),
            ("auc", binarized.get("auc")),
        ):
            cells.append(h.td(h.num(value), key=key, cls=name, value=value))
        rows.append(cells)
    parts.append(
        h.table(
            [
                "class",
                "eval examples",
                "precision (top class)",
                "recall (top class)",
                "precision (one-vs-rest, 0.5)",
                "recall (one-vs-rest, 0.5)",
                "AUC (one-vs-rest)",
            ],
            rows,
            caption="Per class. Top class: from the confusion matrix (the predicted class is the most probable one; "
            "recall is the accuracy on the class's slice). One-vs-rest: TFMA's binarized Precision, Recall "
            "and AUC of the class's probability, at a 0.5 threshold.",
        )
    )
    return "".join(parts)


def mistakes_section(run: records.RunRecord) -> str:
    evaluation = run.output(names.EVALUATOR, "evaluation")
    if evaluation is None:
        return h.note("The Evaluator did not run in this run: no predictions to show.")
    predicted = data.read_predictions(evaluation.uri)
    if predicted is None:
        return h.note(
            "This run's Evaluator wrote no per-example predictions (it ran before they were written): no grid."
        )
    checked, mistakes = predicted.checked, predicted.mistakes
    shown = mistakes[: data.MAX_WRONG_SHOWN]
    head = (
        f'<p data-key="mistakes" data-value="{len(mistakes)}" data-checked="{checked}">'
        f"{len(mistakes)} of {checked} eval images are wrong "
        f"(top-class accuracy {1 - len(mistakes) / checked if checked else 0:.4f})"
        + (f"; the {len(shown)} most confident mistakes are shown." if len(shown) < len(mistakes) else ".")
        + " Predicted by the Evaluator (TFMA, through the model's serving_examples signature).</p>"
    )
    cards = []
    for m in shown:
        image = (
            f'<img alt="eval image {m.index}" src="data:image/jpeg;base64,{base64.b64encode(m.thumbnail).decode()}">'
            if m.thumbnail
            else '<div class="noimg">unreadable</div>'
        )
        cards.append(
            f'<figure data-key="wrong" data-index="{m.index}" data-true="{h.a(m.true_class)}" '
            f'data-predicted="{h.a(m.predicted_class)}" data-confidence="{m.confidence:.6f}">{image}'
            f"<figcaption>true <b>{html.escape(m.true_class)}</b><br>predicted <b>{html.escape(m.predicted_class)}</b>"
            f"<br>confidence {m.confidence:.2f}</figcaption></figure>"
        )
    return head + f'<div class="grid">{"".join(cards)}</div>' + _calibration_part(predicted)


def _calibration_part(predicted: data.EvalPredictions) -> str:
    """The reliability diagram and the expected calibration error (ECE)."""
    if not predicted.confidence:
        return ""
    ece, rows = data.calibration(predicted.confidence, predicted.correct)
    table = h.table(
        ["confidence", "eval images", "mean confidence", "accuracy"],
        [
            [
                h.td(f"{low:.1f}–{high:.1f}", header=True),
                h.td(str(n), value=n),
                h.td(f"{c:.3f}", value=c),
                h.td(f"{a:.3f}", key="calibration_bin", low=low, value=a),
            ]
            for low, high, n, c, a in rows
        ],
        caption="Reliability: in a well-calibrated model each bin's accuracy matches its mean confidence",
    )
    return (
        "<h3>Calibration</h3>"
        f'<p>Expected calibration error <span data-key="ece" data-value="{ece:.6f}">{ece:.4f}</span> '
        f"over {len(predicted.confidence)} eval images ({data.CALIBRATION_BINS} confidence bins); "
        "<code>flowers predict --unsure-below P</code> flags answers less confident than P.</p>"
        + h.img(h.reliability_plot(rows), "reliability diagram", "plot-reliability")
        + table
    )


def settings_section(run: records.RunRecord, summary: results.RunSummary) -> str:
    parts = []
    if summary.settings:
        rows = [
            [
                h.td(html.escape(k), header=True),
                h.td(html.escape(h.show(v)), key="run_setting", name=k, value=h.show(v)),
            ]
            for k, v in summary.settings.items()
        ]
        parts.append(h.table(["setting", "value"], rows, caption="Every setting of the run (docs/settings.md)"))
    trainer = run.execution(names.TRAINER)
    if trainer is None:
        return "".join(parts) or h.note("The Trainer did not run in this run.")
    props = dict(trainer.properties)
    custom = props.pop("custom_config", None)
    training = {}
    if custom:
        decoded = json.loads(custom) if isinstance(custom, str) else custom
        raw = decoded.get(TRAINING_CONFIG_KEY) if isinstance(decoded, dict) else None
        training = json.loads(raw) if isinstance(raw, str) else (raw or {})
        others = {k: v for k, v in decoded.items() if k != TRAINING_CONFIG_KEY} if isinstance(decoded, dict) else {}
        props.update({f"custom_config.{k}": v for k, v in others.items()})
    rows = [
        [h.td(html.escape(k), header=True), h.td(html.escape(h.show(v)), key="setting", name=k, value=h.show(v))]
        for k, v in sorted(training.items())
    ]
    parts.append(h.table(["training setting", "value"], rows, caption="The Trainer's custom_config (TrainingConfig)"))
    hyper = run.input(names.TRAINER, "hyperparameters")
    if hyper is not None:
        tuned = _tuned_values(hyper.uri)
        if tuned:
            rows = [
                [h.td(html.escape(k), header=True), h.td(html.escape(h.show(v)), key="tuned", name=k, value=h.show(v))]
                for k, v in sorted(tuned.items())
            ]
            parts.append(
                h.table(["tuned hyperparameter", "value"], rows, caption="Used instead of the settings above (Tuner)")
            )
    rows = [
        [h.td(html.escape(k), header=True), h.td(f"<code>{html.escape(h.show(v))}</code>")]
        for k, v in sorted(props.items())
        if not k.startswith("__")
    ]
    parts.append(h.table(["Trainer execution property", "value"], rows))
    evaluator = run.execution(names.EVALUATOR)
    if evaluator is not None and evaluator.properties.get("eval_config"):
        parts.append(
            f"<details><summary>The Evaluator's "
            f"eval_config</summary><pre>{html.escape(evaluator.properties['eval_config'])}</pre></details>"
        )
    return "".join(parts)


def _tuned_values(uri: str) -> dict:
    import tensorflow as tf

    files = tf.io.gfile.glob(f"{uri}/*.txt")
    if not files:
        return {}
    with tf.io.gfile.GFile(files[0]) as f:
        return json.load(f).get("values", {})


def timing_section(run: records.RunRecord) -> str:
    if not run.executions:
        return h.note("No component ran.")
    longest = max(e.seconds for e in run.executions.values()) or 1.0
    rows = []
    for node, e in run.executions.items():
        width = 100 * e.seconds / longest
        bar = f'<div class="bar" style="width:{width:.1f}%"></div>'
        rows.append(
            [
                h.td(html.escape(node), header=True),
                h.td(html.escape(e.state.lower()), key="component_state", component=node, value=e.state),
                h.td(h.clock(e.created_ms)),
                h.td(f"{e.seconds:.1f}", key="seconds", component=node, value=e.seconds),
                h.td(bar, cls_="barcell"),
            ]
        )
    start = min(e.created_ms for e in run.executions.values())
    end = max(e.updated_ms for e in run.executions.values())
    caption = (
        f"From ML Metadata (execution created / last updated); first component to last: "
        f"{(end - start) / 1000:.1f} s. Cached components took no work."
    )
    return h.table(["component", "state", "started", "seconds", ""], rows, caption=caption)


def compare_section(previous: results.RunSummary, summary: results.RunSummary) -> str:
    from flowers.runs import compare

    rows = [
        [
            h.td(html.escape(what), header=True),
            h.td(html.escape(a)),
            h.td(html.escape(b), key="compare", name=what, value=b),
        ]
        for what, a, b in compare.rows(previous, summary)
    ]
    return h.table(["", "previous run", "this run"], rows, caption="`flowers compare` of the two runs")
