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

import dataclasses
import datetime
import html
import os
import shlex
import sys
from typing import Callable

from flowers import outputs
from flowers.components import names
from flowers.config import PipelineConfig
from flowers.runs import records, report_gates, results
from flowers.runs import report_html as h
from flowers.runs import report_sections as sections

REPORT_FILE = "report.html"


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
        ("data", "Data", lambda: sections.data_section(run, summary)),
        ("training", "Training", lambda: sections.training_section(store, run)),
        ("evaluation", "Evaluation", lambda: sections.evaluation_section(run)),
        (
            "gates",
            "Candidate against baseline, and the gates",
            lambda: report_gates.gates_section(store, run, summary, baseline),
        ),
        ("mistakes", "Eval images the model got wrong", lambda: sections.mistakes_section(run)),
        ("settings", "Settings", lambda: sections.settings_section(run, summary)),
        ("timing", "Time per component", lambda: sections.timing_section(run)),
    ]
    if previous is not None:
        parts.append(
            ("previous", "Compared with the previous run", lambda: sections.compare_section(previous, summary))
        )
    for anchor, title, build in parts:
        try:
            body = build()
        except Exception as error:  # one unreadable part never costs the whole page
            body = h.note(f"This part could not be read: {type(error).__name__}: {error}", kind="error")
        report.sections.append((anchor, title, body))
    return report


def render(report: Report) -> str:
    s = report.summary
    acc = "n/a" if s.accuracy is None else f"{s.accuracy:.4f}"
    if s.accuracy is not None and s.eval_examples:
        low, high = wilson_interval(s.accuracy, s.eval_examples)
        acc += (
            f' (<span data-key="eval_interval" data-low="{low}" data-high="{high}">95% interval '
            f"{low:.3f}–{high:.3f}</span>)"
        )
    facts = [
        ("state", f'<span data-key="state" data-value="{h.a(s.state)}">{html.escape(s.state)}</span>', True),
        ("started", html.escape(s.started or "?"), True),
        (
            "eval accuracy",
            f'<span data-key="eval_accuracy" data-value="{s.accuracy if s.accuracy is not None else ""}">{acc}</span>'
            + (
                f' on <span data-key="eval_examples" '
                f'data-value="{s.eval_examples}">{s.eval_examples}</span> eval examples'
                if s.eval_examples is not None
                else ""
            ),
            True,
        ),
        ("blessed", "yes" if s.blessed else "no", True),
        ("pushed to", html.escape(s.pushed_to or "not pushed"), True),
        *(
            [
                (
                    "tflite",
                    f'<span data-key="tflite_accuracy" data-value="{s.tflite["accuracy"]}">'
                    f"{html.escape(results.tflite_line(s.tflite))}</span>",
                    True,
                )
            ]
            if s.tflite
            else []
        ),
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
        links.append(
            f'<a href="../{h.a(report.previous.run_id.replace(":", "-"))}/{REPORT_FILE}" data-key="previous_report">'
            f"previous run ({html.escape(report.previous.run_id)})</a>"
        )
    facts.append(("see also", " · ".join(links), True))
    nav = "".join(f'<a href="#{anchor}">{html.escape(title.split(",")[0])}</a>' for anchor, title, _ in report.sections)
    body = "".join(
        f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{content}</section>'
        for anchor, title, content in report.sections
    )
    generated = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>flowers run {html.escape(s.run_id)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{h.STYLE}</style></head><body><main>"
        f'<h1 data-key="run_id" data-value="{h.a(s.run_id)}">flowers run {html.escape(s.run_id)}</h1>'
        f"{_verdict(s)}{_warnings(s)}{h.facts(facts)}<nav>{nav}</nav>{body}"
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
    return (
        f'<p class="verdict" data-key="verdict" data-value="{h.a(s.state)}" '
        f'style="background:{colour}">{html.escape(why)}</p>'
    )


def _warnings(s: results.RunSummary) -> str:
    """Splits too thin for their figures to mean much."""
    found = []
    if s.eval_examples is not None and s.accuracy is not None and s.eval_examples < 200:
        low, high = wilson_interval(s.accuracy, s.eval_examples)
        found.append(
            f"only {s.eval_examples} eval examples: the accuracy is known to about "
            f"±{50 * (high - low):.0f} points (95%); add photos or raise data.eval_percent"
        )
    if s.validation_examples is not None and s.validation_examples < 100:
        found.append(f"only {s.validation_examples} validation examples: early stopping picks its epoch on few photos")
    return "".join(f'<p class="warn" data-key="warning">{html.escape(w)}</p>' for w in found)


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of an accuracy `p` measured on `n` examples."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    spread = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - spread), min(1.0, centre + spread)
