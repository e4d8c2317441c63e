"""The report's HTML pieces and plots: table cells with data-key attributes
(what programs and the tests read), fact lists, embedded PNGs (matplotlib),
and the page's style. No I/O but rendering."""

from __future__ import annotations

import base64
import datetime
import html
import io
import json


def td(text: str, header: bool = False, key: str | None = None, value=None, cls_: str = "", **data) -> str:
    attrs = []
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    classes = " ".join(c for c in ("h" if header else "", "n" if numeric else "", cls_) if c)
    if classes:
        attrs.append(f'class="{classes}"')
    if key:
        attrs.append(f'data-key="{a(key)}"')
        attrs.append(f'data-value="{a("" if value is None else value)}"')
    style = data.pop("style", "")
    if style:
        attrs.append(f'style="background:{a(style)}"')
    for name, v in data.items():
        # `cls` stands for data-class (a Python keyword).
        attrs.append(f'data-{"class" if name == "cls" else name}="{a(v)}"')
    return f"<td {' '.join(attrs)}>{text}</td>" if attrs else f"<td>{text}</td>"


def table(headers: list[str], rows: list, caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells, css = (row, "") if isinstance(row, list) else row
        lines.append(f'<tr class="{css}">' + "".join(cells) + "</tr>" if css else "<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def facts(items) -> str:
    out = []
    for item in items:
        key, value = item[0], item[1]
        trusted = len(item) > 2 and item[2]
        out.append(f"<dt>{html.escape(key)}</dt><dd>{value if trusted else html.escape(str(value))}</dd>")
    return f"<dl>{''.join(out)}</dl>"


def img(png: bytes, alt: str, key: str) -> str:
    return f'<p><img class="plot" data-key="{key}" alt="{a(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'


def note(text: str, kind: str = "note") -> str:
    return f'<p class="{kind}">{html.escape(text)}</p>'


def a(value) -> str:
    return html.escape(str(value), quote=True)


def num(value) -> str:
    """4 decimals; "n/a" where there is nothing to divide by (TFMA's NaN,
    e.g. the precision of a class never predicted)."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.4f}"


def count(value) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def show(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def clock(millis: int) -> str:
    if not millis:
        return ""
    return datetime.datetime.fromtimestamp(millis / 1000).astimezone().strftime("%H:%M:%S")


# ---------------------------------------------------------------------------
# Plots (matplotlib's object API: no pyplot state, no display needed).


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def class_counts_plot(counts: dict[str, dict[str, int]], names: list[str]) -> bytes:
    figure = new_figure(7, 2.8)
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
    return png(figure)


def training_plot(history: dict) -> bytes:
    epochs = len(history.get("loss", []))
    xs = list(range(1, epochs + 1))
    phases = history.get("phase") or ["head"] * epochs
    boundary = next((i for i in range(1, epochs) if phases[i] != phases[i - 1]), None)
    figure = new_figure(10, 3.4)
    axes = figure.subplots(1, 2)
    for ax, metric, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        if history.get(metric):
            ax.plot(xs, history[metric], "o-", label="train")
        if history.get(f"val_{metric}"):
            ax.plot(xs, history[f"val_{metric}"], "s-", label="validation")
        if boundary is not None:
            ax.axvline(boundary + 0.5, color="grey", linestyle="--", linewidth=1)
            for label, side in ((" fine-tuning →", "left"), ("← head ", "right")):
                ax.text(
                    boundary + 0.5,
                    0.02,
                    label,
                    transform=ax.get_xaxis_transform(),
                    va="bottom",
                    ha=side,
                    fontsize=8,
                    color="grey",
                )
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.set_xticks(xs if epochs <= 20 else xs[:: max(1, epochs // 10)])
        ax.legend(frameon=False, loc="best")
        ax.spines[["top", "right"]].set_visible(False)
    return png(figure)


def reliability_plot(rows) -> bytes:
    figure = new_figure(4, 3.4)
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfectly calibrated")
    ax.plot([r[3] for r in rows], [r[4] for r in rows], "o-", label="this model")
    ax.set_xlabel("mean confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(frameon=False, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    return png(figure)


# ---------------------------------------------------------------------------
# HTML.

STYLE = """
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
