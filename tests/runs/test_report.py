"""The run report: its numbers against ML Metadata, read as a program reads
the page (the `data-key` / `data-value` attributes of the HTML), and
TensorBoard starting from the locked environment."""

from __future__ import annotations

import base64
import html.parser
import json
import math
import os
import shlex
import subprocess
import sys

import pytest
from conftest import flowers_cli

from flowers import features, outcome
from flowers.cli.main import main
from flowers.runs import records, report, report_data, report_html, results

SAMPLE_EXAMPLES = 250  # data/sample: 50 photos per class


def run_cli(capsys, *args):
    try:
        main(list(args))
    except SystemExit as exit:
        return exit.code, capsys.readouterr()
    return 0, capsys.readouterr()


class Page(html.parser.HTMLParser):
    """Every element with a data-key, its attributes and text; external
    references (which a self-contained page must not have)."""

    def __init__(self, text: str):
        super().__init__()
        self.items: list[dict] = []
        self.external: list[str] = []
        self.sections: list[str] = []
        self.thumbnails: list[bytes] = []
        self._open: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag in ("link", "script") or (tag == "style" and attrs.get("src")):
            self.external.append(tag)
        if tag == "img" and (attrs.get("src") or "").startswith("data:image/jpeg;base64,"):
            self.thumbnails.append(base64.b64decode(attrs["src"].split(",", 1)[1]))
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if "data-key" in attrs:
            item = {
                "tag": tag,
                **{k[5:]: v for k, v in attrs.items() if k.startswith("data-")},
                "text": "",
                "attrs": attrs,
            }
            self.items.append(item)
            if tag not in ("img",):
                self._open.append(item)

    def handle_endtag(self, tag):
        if self._open and self._open[-1]["tag"] == tag:
            self._open.pop()

    def handle_data(self, data):
        for item in self._open:
            item["text"] += data

    def all(self, key: str, **where) -> list[dict]:
        return [i for i in self.items if i["key"] == key and all(i.get(k) == v for k, v in where.items())]

    def one(self, key: str, **where) -> dict:
        found = self.all(key, **where)
        assert len(found) == 1, (key, where, found)
        return found[0]

    def value(self, key: str, **where) -> float:
        return float(self.one(key, **where)["value"])


# ---------------------------------------------------------------------------
# Without a run.


def test_report_before_any_run_is_one_line(capsys, tmp_path):
    code, out = run_cli(capsys, "report", "--output-dir", str(tmp_path))
    assert code == outcome.USAGE and "run the pipeline first" in out.err and "Traceback" not in out.err


def test_training_plot_marks_the_phase_boundary():
    history = {
        "loss": [2.0, 1.5, 1.2, 1.0],
        "accuracy": [0.3, 0.5, 0.6, 0.7],
        "val_loss": [1.8, 1.4, 1.3, 1.1],
        "val_accuracy": [0.4, 0.5, 0.6, 0.65],
        "phase": ["head", "head", "fine_tune", "fine_tune"],
    }
    png = report_html.training_plot(history)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_tensorboard_starts():
    """`tensorboard --version` from the venv: TensorBoard 2.16 imports
    pkg_resources at start, which setuptools 81+ no longer has."""
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--version"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import tensorboard

    assert done.stdout.strip().splitlines()[-1] == tensorboard.__version__
    from tensorboard import main as tensorboard_main  # noqa: F401  (what the console script runs)


# ---------------------------------------------------------------------------
# Two tiny runs in one output dir: the first is pushed (no baseline yet),
# the second reuses every component up to the Trainer and is refused by the
# absolute gate while passing the one against the first run's model.


@pytest.fixture(scope="module")
def runs(refused_run):
    """The suite's shared runs: one pushed, then one refused by the gate."""
    config, second, first_id, second_id = refused_run
    assert second.returncode == outcome.REFUSED, second.stdout[-3000:] + second.stderr[-3000:]
    return config, records.store_for(config), first_id, second_id


@pytest.fixture(scope="module")
def first(runs):
    """(summary, page, path) of the first run, written by `flowers report RUN_ID`."""
    config, store, first_id, _ = runs
    done = flowers_cli("report", first_id, "--output-dir", config.output_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    path = done.stdout.strip().splitlines()[-1]
    with open(path, encoding="utf-8") as f:
        return results.summarize(store, first_id), Page(f.read()), path


@pytest.fixture(scope="module")
def second(runs):
    """The refused run's report, through write_report (what the supervisor calls)."""
    config, store, _, second_id = runs
    path = report.write_report(config, second_id)
    with open(path, encoding="utf-8") as f:
        return results.summarize(store, second_id), Page(f.read()), path


@pytest.mark.slow
def test_written_in_the_run_folder_and_self_contained(runs, first, second):
    config, _, first_id, second_id = runs
    for (_, page, path), run_id in ((first, first_id), (second, second_id)):
        assert path == os.path.join(os.path.abspath(config.output_dir), "runs", run_id.replace(":", "-"), "report.html")
        assert page.one("run_id")["value"] == run_id
        # Self-contained: nothing loads from elsewhere; the only links are to
        # the run's own log beside the page and to the previous run's report.
        assert [e for e in page.external if e != "run.log" and not e.endswith("/report.html")] == []
        assert all(not e.startswith(("http", "/")) for e in page.external)
        sections = ["data", "training", "evaluation", "gates", "mistakes", "settings", "timing"]
        assert page.sections == sections + (["previous"] if run_id == second_id else [])
        assert "could not be read" not in "".join(i["text"] for i in page.items)
        for plot in ("plot-data", "plot-training"):
            src = page.one(plot)["attrs"]["src"]
            assert src.startswith("data:image/png;base64,")
            assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")


@pytest.mark.slow
def test_headline_numbers_are_those_of_ml_metadata(first, second):
    for summary, page, _ in (first, second):
        assert page.one("state")["value"] == summary.state
        assert page.value("eval_accuracy") == pytest.approx(summary.accuracy, abs=1e-12)
        assert int(page.value("eval_examples")) == summary.eval_examples
    assert first[0].state == "pushed" and second[0].state == "refused"


@pytest.mark.slow
def test_examples_per_class_and_split(first):
    summary, page, _ = first
    per_split = {}
    for item in page.all("examples"):
        per_split.setdefault(item["split"], {})[item["class"]] = int(item["value"])
    assert {"train", "eval"} <= set(per_split)
    for counts in per_split.values():
        assert set(counts) == set(features.CLASS_NAMES) | {"(all)"}
        assert sum(v for k, v in counts.items() if k != "(all)") == counts["(all)"]
    assert per_split["eval"]["(all)"] == summary.eval_examples
    assert sum(counts["(all)"] for counts in per_split.values()) == SAMPLE_EXAMPLES
    if getattr(summary, "train_examples", None) is not None:
        assert per_split["train"]["(all)"] == summary.train_examples
    assert page.one("anomalies")["value"] == "0" and not summary.anomalies


@pytest.mark.slow
def test_training_curves_are_the_trainer_history(runs, first):
    _, store, first_id, _ = runs
    _, page, _ = first
    model = records.RunRecord.load(store, first_id).output("Trainer", "model")
    with open(os.path.join(model.uri, "history.json")) as f:
        history = json.load(f)
    epochs = [int(i["value"]) for i in page.all("epoch")]
    assert epochs == list(range(1, len(history["loss"]) + 1))
    assert [i["value"] for i in page.all("phase")] == history["phase"]
    assert "head" in history["phase"] and "fine_tune" in history["phase"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"):
        shown = [float(i["value"]) for i in page.all(key) if "epoch" in i]
        assert shown == pytest.approx(history[key], abs=1e-9), key


@pytest.mark.slow
def test_confusion_matrix_and_per_class_figures(first):
    summary, page, _ = first
    cells = {(i["actual"], i["predicted"]): float(i["value"]) for i in page.all("confusion")}
    assert len(cells) == features.NUM_CLASSES**2
    total = sum(cells.values())
    assert total == summary.eval_examples
    correct = sum(cells[(c, c)] for c in features.CLASS_NAMES)
    assert correct / total == pytest.approx(summary.accuracy, abs=1e-6)
    for name, recall in summary.per_class_recall.items():
        # Top-class recall from the matrix is TFMA's accuracy on the class's slice.
        assert page.value("recall_top1", **{"class": name}) == pytest.approx(recall, abs=1e-6)
        row = sum(cells[(name, p)] for p in features.CLASS_NAMES)
        assert page.value("support", **{"class": name}) == row
        for key in ("precision", "recall", "auc"):
            value = page.value(key, **{"class": name})
            # TFMA's precision of a class the model never predicts is NaN ("n/a" on the page).
            assert 0.0 <= value <= 1.0 or (math.isnan(value) and page.one(key, **{"class": name})["text"] == "n/a")


@pytest.mark.slow
def test_mistakes_are_the_eval_images_the_model_got_wrong(first):
    summary, page, _ = first
    head = page.one("mistakes")
    wrong, checked = int(head["value"]), int(head["attrs"]["data-checked"])
    assert checked == summary.eval_examples
    # The Evaluator's per-example predictions agree with TFMA's accuracy.
    assert wrong == round((1 - summary.accuracy) * checked)
    figures = page.all("wrong")
    assert len(figures) == min(wrong, report_data.MAX_WRONG_SHOWN)
    confidences = [float(f["confidence"]) for f in figures]
    assert confidences == sorted(confidences, reverse=True)
    for f in figures:
        assert f["true"] != f["predicted"] and {f["true"], f["predicted"]} <= set(features.CLASS_NAMES)
        assert 0.0 < float(f["confidence"]) <= 1.0
    assert len(page.thumbnails) == len(figures)


@pytest.mark.slow
def test_gates_of_the_first_run_and_of_a_refused_one(first, second):
    accuracy = features.ACCURACY_METRIC
    _, page, _ = first
    gates = {i["gate"]: i["value"] for i in page.all("gate")}
    assert gates == {"data": "pass", f"{accuracy} (absolute)": "pass", f"{accuracy} (against baseline)": "pass"}
    # Nothing was pushed before the first run: the change gate has nothing to compare with.
    assert "first model: nothing pushed" in page.one("gate", gate=f"{accuracy} (against baseline)")["measured"]
    assert page.one("blessed")["value"] == "1"
    summary, page, _ = second
    gates = {i["gate"]: i["value"] for i in page.all("gate")}
    assert gates == {"data": "pass", f"{accuracy} (absolute)": "fail", f"{accuracy} (against baseline)": "pass"}
    assert len(summary.gate_failures) == 1 and "below the threshold 0.99" in summary.gate_failures[0]
    assert page.one("blessed")["value"] == "0"
    # The Trainer was cached: the baseline (the first run's pushed model) is the same model.
    assert page.value("candidate", metric=accuracy) == pytest.approx(summary.accuracy)
    assert page.value("baseline", metric=accuracy) == pytest.approx(summary.accuracy)
    assert page.value("diff", metric=accuracy) == pytest.approx(0.0, abs=1e-9)
    for summary, page, _ in (first, second):
        # The baseline named on the page is the one ML Metadata recorded.
        assert (page.one("baseline_model")["version"] or None) == summary.baseline_version


@pytest.mark.slow
def test_settings_and_component_times(runs, first, second):
    config, _, _, _ = runs
    summary, page, _ = first
    settings = {i["name"]: i["value"] for i in page.all("setting")}
    assert settings["epochs"] == "3" and settings["fine_tune_epochs"] == "1" and settings["head"] == "pooling"
    for summary, page, _ in (first, second):
        states = {i["component"]: i["value"] for i in page.all("component_state")}
        assert states == summary.executions
        seconds = {i["component"]: float(i["value"]) for i in page.all("seconds")}
        assert set(seconds) == set(summary.executions) and min(seconds.values()) >= 0
    _, page, _ = second
    states = {i["component"]: i["value"] for i in page.all("component_state")}
    assert states["Trainer"] == "CACHED" and states["Evaluator"] == "COMPLETE"


@pytest.mark.slow
def test_tensorboard_command_names_the_trainer_logs(runs):
    config, _, first_id, _ = runs
    command = shlex.split(report.tensorboard_command(config, first_id))
    # The venv's TensorBoard, so the printed command runs without activating the venv.
    assert command[:2] == [os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir_spec"]
    name, logdir = command[2].split(":", 1)
    assert name == first_id.replace(":", "-")  # the run is named by its id in TensorBoard
    events = [f for _, _, files in os.walk(logdir) for f in files if f.startswith("events.out.tfevents")]
    assert {"train", "validation"} <= set(os.listdir(logdir)) and events


@pytest.mark.slow
def test_the_top_says_what_decided_and_how_sure(runs, first, second):
    """Verdict in colour with the deciding gate, accuracy with its 95%
    interval, warnings for thin splits, links to the log and the previous run."""
    _, _, first_id, _ = runs
    summary, page, _ = first
    assert page.one("verdict")["value"] == "pushed" and "every gate passed" in page.one("verdict")["text"]
    low, high = report.wilson_interval(summary.accuracy, summary.eval_examples)
    assert page.one("eval_interval")["text"] == f"95% interval {low:.3f}–{high:.3f}"
    warnings = [w["text"] for w in page.all("warning")]
    assert any(f"only {summary.eval_examples} eval examples" in w for w in warnings)  # the tiny sample
    assert page.one("run_log")["attrs"]["href"] == "run.log"
    assert page.all("previous_report") == []
    assert page.one("kept")["value"] in ("head", "fine_tune")
    head, fine_tune = map(int, page.one("final_fit")["value"].split("+"))  # the shared run's final fit
    assert head >= 1 and "train + validation" in page.one("final_fit")["text"]
    settings = {i["name"]: i["value"] for i in page.all("run_setting")}
    assert settings["training.epochs"] == "3" and "kubeflow.image" in settings
    refused, page, _ = second
    assert page.one("verdict")["value"] == "refused" and refused.gate_failures[0] in page.one("verdict")["text"]
    assert page.one("previous_report")["attrs"]["href"] == f"../{first_id.replace(':', '-')}/report.html"
    compared = {i["name"]: i["value"] for i in page.all("compare")}
    assert compared["state"] == "refused" and compared["gates.min_accuracy"] == "0.999"


def test_wilson_interval_matches_the_textbook():
    low, high = report.wilson_interval(0.9, 100)
    assert (round(low, 4), round(high, 4)) == (0.8256, 0.9448)


def test_predictions_are_read_from_the_evaluators_file(tmp_path):
    from flowers.components import eval_predictions

    assert report_data.read_predictions(str(tmp_path)) is None  # an evaluation from before the file was written
    rows = [
        {"class": 0, "probabilities": [0.9, 0.1, 0, 0, 0]},
        {"class": 1, "probabilities": [0.6, 0.4, 0, 0, 0], "thumbnail": base64.b64encode(b"jpeg").decode()},
        {"class": 2, "probabilities": [0, 0, 0.2, 0.8, 0], "thumbnail": ""},
    ]
    (tmp_path / eval_predictions.FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    predicted = report_data.read_predictions(str(tmp_path))
    assert predicted.checked == 3 and predicted.correct == [True, False, False]
    assert predicted.confidence == [0.9, 0.6, 0.8]
    # The wrong ones, most confident first, each with its line in the file.
    assert [(m.index, m.true_class, m.predicted_class, m.thumbnail) for m in predicted.mistakes] == [
        (2, "roses", "sunflowers", b""),
        (1, "dandelion", "daisy", b"jpeg"),
    ]


def test_calibration_bins_and_expected_error():
    """Two bins: 0.95-confident and always right, 0.55-confident and right half the time."""
    confidence = [0.95] * 4 + [0.55] * 4
    correct = [True] * 4 + [True, False, True, False]
    ece, rows = report_data.calibration(confidence, correct)
    assert [(round(low, 1), n) for low, _, n, _, _ in rows] == [(0.5, 4), (0.9, 4)]
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)


@pytest.mark.slow
def test_the_report_shows_calibration(first):
    summary, page, path = first
    assert 0.0 <= float(page.one("ece")["value"]) <= 1.0
    with open(path, encoding="utf-8") as f:
        assert "Expected calibration error" in f.read()
    assert page.all("calibration_bin") and page.one("plot-reliability")["attrs"]["src"].startswith("data:image/png")
