"""The report's gates section: the data gate, the model's metrics against
its baseline, and one row per threshold the Evaluator applied, each judged by
TFMA's validation result."""

from __future__ import annotations

import html

from flowers import features
from flowers.components import names
from flowers.runs import records, results
from flowers.runs import report_html as h


def gates_section(store, run: records.RunRecord, summary: results.RunSummary, baseline) -> str:
    evaluation_artifact = run.output(names.EVALUATOR, "evaluation")
    parts = []
    gate_rows = []
    data_gate = run.execution(names.DATA_GATE)
    if data_gate is not None:
        found = sum(len(v) for v in summary.anomalies.values())
        verdict = (
            "pass"
            if data_gate.state in ("COMPLETE", "CACHED") and not found
            else ("fail" if found or data_gate.state == "FAILED" else data_gate.state.lower())
        )
        gate_rows.append(
            _gate_row(
                "data",
                "no anomalies in any split (ExampleValidator, curated schema)",
                f"{found} anomal{'y' if found == 1 else 'ies'}",
                verdict,
            )
        )
    if evaluation_artifact is None:
        parts.append(h.note("The Evaluator did not run in this run: no model gate was applied."))
        if gate_rows:
            parts.append(h.table(["gate", "rule", "measured", "verdict"], gate_rows))
        return "".join(parts)
    ev = records.read_evaluation(evaluation_artifact.uri)
    candidate = ev.metrics.get(records.CANDIDATE if baseline is not None else "", ev.metrics.get("", {}))
    base_values = ev.metrics.get("baseline", {}) if baseline is not None else {}
    first_model = False
    if baseline is not None:
        # components/baseline.py's LatestPushedModel names the pushed version it
        # points at ("" before the first push: the Evaluator evaluated the
        # candidate alone); a Resolver's baseline is a model an earlier run trained.
        version = baseline.properties.get("pushed_version")
        if version == "":
            first_model = True
            described = "none yet: no model was pushed before, so the candidate was evaluated alone"
        elif version:
            described = f"pushed version {version}, the newest model in the serving folder ({baseline.uri})"
        else:
            origin = records.producing_run(store, baseline.id)
            described = f"the last blessed model, {baseline.uri}" + (f" (trained in run {origin})" if origin else "")
        candidate_model = run.output(names.TRAINER, "model")
        shown = (
            f'<span data-key="baseline_model" data-version="{h.a(version or "")}" '
            f'data-uri="{h.a(baseline.uri)}">{html.escape(described)}</span>'
        )
        parts.append(
            h.facts([("baseline", shown, True), ("candidate", candidate_model.uri if candidate_model else "?")])
        )
    else:
        parts.append(h.note("No baseline (compare_to_blessed is off): only the absolute gate applies."))
    compared = baseline is not None and not first_model
    rows = []
    for name in sorted(set(candidate) | set(base_values)):
        c, b = candidate.get(name), base_values.get(name)
        d = ev.diffs.get(name)
        show = h.count if name == "example_count" else h.num
        cells = [h.td(html.escape(name), header=True), h.td(show(c), key="candidate", metric=name, value=c)]
        if compared:
            cells += [
                h.td(show(b), key="baseline", metric=name, value=b),
                h.td(
                    "" if d is None else (f"{d:+.0f}" if name == "example_count" else f"{d:+.4f}"),
                    key="diff",
                    metric=name,
                    value=d,
                ),
            ]
        rows.append(cells)
    headers = ["metric (all eval examples)", "candidate"] + (["baseline", "change"] if compared else [])
    parts.append(h.table(headers, rows))
    gate_rows += _model_gates(run, ev, candidate, baseline is not None, first_model)
    blessing = run.output(names.EVALUATOR, "blessing")
    blessed = bool(blessing and blessing.properties.get("blessed"))
    parts.append(h.table(["gate", "rule", "measured", "verdict"], gate_rows, caption="Gates"))
    parts.append(
        f'<p class="{"good" if blessed else "bad"}" data-key="blessed" data-value="{int(blessed)}">'
        f"{'Blessed: every model gate passed.' if blessed else 'Not blessed.'} "
        f"{'Pushed to ' + html.escape(summary.pushed_to) if summary.pushed_to else 'Not pushed.'}</p>"
    )
    return "".join(parts)


def _model_gates(
    run: records.RunRecord, ev: records.Evaluation, candidate: dict, has_baseline: bool, first_model: bool = False
) -> list:
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
                    rows.append(_gate_row(f"{name} (absolute)", rule, h.num(value), verdict))
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
                    if first_model:  # nothing pushed yet: TFMA dropped the change threshold
                        rows.append(
                            _gate_row(
                                f"{name} (against baseline)",
                                rule,
                                "- (first model: nothing pushed to compare with)",
                                "pass",
                            )
                        )
                        continue
                    diff = ev.diffs.get(name)
                    verdict = "fail" if (name, True) in failures else ("pass" if diff is not None else "not measured")
                    measured = "" if diff is None else f"{diff:+.4f}"
                    rows.append(_gate_row(f"{name} (against baseline)", rule, measured, verdict))
    return rows


def _metric_names() -> dict[str, str]:
    return {"SparseCategoricalAccuracy": features.ACCURACY_METRIC, "ExampleCount": "example_count"}


def _overall(slicing_specs) -> bool:
    return not slicing_specs or any(
        not s.feature_keys and not s.feature_values and not s.slice_keys_sql for s in slicing_specs
    )


def _gate_row(gate: str, rule: str, measured: str, verdict: str):
    kind = {"pass": "good", "fail": "bad"}.get(verdict, "")
    return [
        h.td(html.escape(gate), header=True),
        h.td(html.escape(rule)),
        h.td(html.escape(measured)),
        h.td(html.escape(verdict), key="gate", gate=gate, value=verdict, measured=measured, cls_=kind),
    ]
