"""Two runs side by side: outcome, metrics, per-class recall, gates, time and
the settings that differ (`flowers compare`, and the report's section on the
previous run). Reads only recorded summaries: no TensorFlow."""

from __future__ import annotations

from flowers.runs.results import RunSummary

Row = tuple[str, str, str]  # (what, run A, run B)


def rows(a: RunSummary, b: RunSummary) -> list[Row]:
    """What differs or matters between two runs, A first."""
    out: list[Row] = [
        ("run", a.run_id, b.run_id),
        ("state", a.state, b.state),
        ("spans", _spans(a), _spans(b)),
        ("train/val/eval", _counts(a), _counts(b)),
        ("eval accuracy", _num(a.accuracy), _num(b.accuracy) + _change(a.accuracy, b.accuracy)),
        ("baseline accuracy", _num(a.baseline_accuracy), _num(b.baseline_accuracy)),
    ]
    for name in dict.fromkeys([*a.per_class_recall, *b.per_class_recall]):
        ra, rb = a.per_class_recall.get(name), b.per_class_recall.get(name)
        out.append((f"recall {name}", _num(ra), _num(rb) + _change(ra, rb)))
    out += [
        ("gates failed", "; ".join(a.gate_failures) or "-", "; ".join(b.gate_failures) or "-"),
        ("pushed version", a.pushed_version or "-", b.pushed_version or "-"),
        ("duration", _seconds(a.seconds), _seconds(b.seconds)),
    ]
    return out + settings_rows(a, b)


def settings_rows(a: RunSummary, b: RunSummary) -> list[Row]:
    """The settings whose values differ ("?" where a run recorded none)."""
    if not a.settings and not b.settings:
        return [("settings", "not recorded", "not recorded")]
    keys = dict.fromkeys([*a.settings, *b.settings])
    differ = [k for k in keys if a.settings.get(k, "?") != b.settings.get(k, "?")]
    if not differ:
        return [("settings", "the same", "the same")]
    return [(key, _value(a.settings.get(key, "?")), _value(b.settings.get(key, "?"))) for key in differ]


def text(a: RunSummary, b: RunSummary) -> list[str]:
    """`flowers compare`'s lines: a column per run."""
    table = rows(a, b)
    first = max(len(r[0]) for r in table)
    second = max(len(r[1]) for r in table)
    return [f"{what:<{first}}  {va:<{second}}  {vb}" for what, va, vb in table]


def _value(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _change(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None else f" ({b - a:+.4f})"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def _spans(s: RunSummary) -> str:
    return ",".join(map(str, s.spans)) or "-"


def _counts(s: RunSummary) -> str:
    return "/".join("-" if n is None else str(n) for n in (s.train_examples, s.validation_examples, s.eval_examples))
