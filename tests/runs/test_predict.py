"""Batch prediction: folders walked, batches through the serving signature,
JSON lines / CSV files, bad files as rows, the Beam job.

Most tests use a stand-in SavedModel with the flowers serving signature
(built here in a second, it decodes the image and derives probabilities from
its mean colour); the slow test runs the same commands with the model a tiny
pipeline run pushed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from flowers import features, outcome
from flowers.cli.main import main
from flowers.runs import predict

IN_MEMORY = "--beam-arg=--direct_running_mode=in_memory"


def flowers_cli(*args: str) -> subprocess.CompletedProcess:
    """`flowers ...` in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "flowers.cli.main", *args], capture_output=True, text=True, timeout=1500
    )


def run_cli(capsys, *args):
    """(exit code, captured output) of `flowers ARGS` in this process."""
    try:
        main(list(args))
    except SystemExit as exit:
        return exit.code, capsys.readouterr()
    return 0, capsys.readouterr()


class _Stub(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_BYTES_INPUT)])
    def serve(self, image_bytes):
        def mean_colour(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return tf.reduce_mean(tf.cast(image, tf.float32), axis=[0, 1])

        means = tf.map_fn(mean_colour, image_bytes, fn_output_signature=tf.TensorSpec([3], tf.float32))
        probabilities = tf.nn.softmax(tf.concat([means, means[:, :2] * 0.5], axis=1) / 40.0)
        ids = tf.argmax(probabilities, axis=-1)
        return {
            features.PROBABILITIES_OUTPUT: probabilities,
            features.CLASS_ID_OUTPUT: ids,
            features.CLASS_NAME_OUTPUT: tf.gather(tf.constant(features.CLASS_NAMES), ids),
        }


@pytest.fixture(scope="module")
def stub_model(tmp_path_factory) -> str:
    """A SavedModel folder named like a pushed version ("7")."""
    path = str(tmp_path_factory.mktemp("stub") / "7")
    module = _Stub()
    tf.saved_model.save(module, path, signatures={features.BYTES_SIGNATURE: module.serve.get_concrete_function()})
    return path


@pytest.fixture
def folder(tmp_path, photos_dir) -> str:
    """photos/<class>/photoN.jpg (15 JPEGs), a corrupt JPEG, a text file, a
    hidden file and a PNG one level deeper."""
    root = tmp_path / "in"
    shutil.copytree(photos_dir, root)
    (root / "daisy" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("hello")
    (root / ".DS_Store").write_bytes(b"\0")
    deeper = root / "more" / "deeper"
    deeper.mkdir(parents=True)
    png = tf.io.encode_png(tf.fill([20, 30, 3], tf.constant(200, tf.uint8))).numpy()
    (deeper / "flat.PNG").write_bytes(png)
    return str(root)


def test_folders_are_walked_recursively_for_image_files(folder):
    paths, passed_over = predict.list_images([folder])
    names = [os.path.relpath(p, folder) for p in paths]
    assert len(names) == 17 and names == sorted(names)
    assert "daisy/broken.jpg" in names and "more/deeper/flat.PNG" in names
    assert passed_over == 2  # notes.txt and .DS_Store


def test_named_files_are_kept_in_order_whatever_their_name(folder):
    text = os.path.join(folder, "notes.txt")
    photo = os.path.join(folder, "roses", "photo1.jpg")
    assert predict.list_images([text, photo]) == ([text, photo], 0)
    with pytest.raises(FileNotFoundError, match="no-such"):
        predict.list_images([os.path.join(folder, "no-such.jpg")])


def test_batches_are_halved_around_a_bad_file(stub_model, folder, monkeypatch):
    """Every file gets its row, in order; the good files of a batch holding a
    bad one are still classified in batches, not one by one."""
    calls = []
    real_load = predict.load

    def counting_load(model_dir):
        signature = real_load(model_dir)

        def counted(**inputs):
            calls.append(int(inputs[features.SERVING_BYTES_INPUT].shape[0]))
            return signature(**inputs)

        return counted

    monkeypatch.setattr(predict, "load", counting_load)
    paths, _ = predict.list_images([folder])
    rows = list(predict.predict_files(stub_model, paths, batch_size=8))
    assert [r["file"] for r in rows] == paths
    bad = [r for r in rows if "error" in r]
    assert [r["file"] for r in bad] == [os.path.join(folder, "daisy", "broken.jpg")]
    assert bad[0]["error"].startswith("not a readable image:") and "{{" not in bad[0]["error"]
    good = [r for r in rows if "error" not in r]
    assert all(r["class"] in features.CLASS_NAMES and r["model_version"] == "7" for r in good)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in good)
    assert all(r["confidence"] == max(r["probabilities"].values()) for r in good)
    # 17 files in batches of 8: [8 (fails), 4, 4 (fails), 2, 2 (fails), 1, 1 (fails)], 8, 1.
    assert calls[0] == 8 and sum(1 for c in calls if c == 1) <= 3 and len(calls) <= 12
    # Batching does not change what a file gets.
    alone = {r["file"]: r for r in predict.predict_files(stub_model, paths, batch_size=1)}
    for row in good:
        assert row["class"] == alone[row["file"]]["class"]
        assert row["confidence"] == pytest.approx(alone[row["file"]]["confidence"], abs=1e-6)


def test_an_unreadable_file_is_a_row(stub_model, tmp_path, sample_jpeg):
    good = tmp_path / "good.jpg"
    good.write_bytes(sample_jpeg)
    locked = tmp_path / "locked"
    locked.mkdir()  # a folder named as a file cannot be read as one
    rows = list(predict.predict_files(stub_model, [str(good), str(locked)]))
    assert "class" in rows[0] and rows[1]["error"].startswith(("cannot read the file", "not a readable image"))


def test_cli_writes_csv_with_a_progress_bar_and_exits_1_for_a_bad_file(stub_model, folder, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    code, printed = run_cli(capsys, "predict", folder, "--model", stub_model, "--out", str(out), "--batch-size", "4")
    assert code == outcome.FAILED
    assert "classifying" in printed.err and "passed over 2 file(s)" in printed.err
    assert "1 of 17 file(s) could not be classified" in printed.err and "Traceback" not in printed.err
    assert printed.out == ""
    rows = predict.read_rows(str(out))
    assert list(rows[0]) == list(predict.CSV_COLUMNS) and len(rows) == 17
    assert [r["file"] for r in rows if r["error"]] == [os.path.join(folder, "daisy", "broken.jpg")]
    for row in (r for r in rows if not r["error"]):
        probabilities = [float(row[f"p_{name}"]) for name in features.CLASS_NAMES]
        assert features.CLASS_NAMES[probabilities.index(max(probabilities))] == row["class"]
        assert float(row["confidence"]) == pytest.approx(max(probabilities))


def test_cli_jsonl_to_stdout_without_out(stub_model, tmp_path, capsys, sample_jpeg):
    image = tmp_path / "x.jpg"
    image.write_bytes(sample_jpeg)
    code, printed = run_cli(capsys, "predict", str(image), str(tmp_path), "--model", stub_model)
    assert code == 0, printed.err
    rows = [json.loads(line) for line in printed.out.splitlines()]
    assert [r["file"] for r in rows] == [str(image), str(image)]
    assert "classifying" not in printed.err


def test_beam_needs_an_out_file(tmp_path, capsys):
    code, printed = run_cli(capsys, "predict", str(tmp_path), "--beam")
    assert code == outcome.USAGE and "--out" in printed.err


def test_beam_job_writes_the_same_rows(stub_model, folder, tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    code, printed = run_cli(
        capsys, "predict", folder, "--model", stub_model, "--out", str(out), "--beam", IN_MEMORY, "--batch-size", "4"
    )
    assert code == outcome.FAILED, printed.err[-3000:]
    assert "wrote 17 row(s)" in printed.err and "1 of 17 file(s) could not be classified" in printed.err
    from_beam = {r["file"]: r for r in predict.read_rows(str(out))}
    paths, _ = predict.list_images([folder])
    assert sorted(from_beam) == sorted(paths)
    here = {r["file"]: r for r in predict.predict_files(stub_model, paths)}
    for path, row in from_beam.items():
        assert ("error" in row) == ("error" in here[path])
        if "error" not in row:
            assert row["class"] == here[path]["class"]
            assert row["confidence"] == pytest.approx(here[path]["confidence"], abs=1e-6)


def test_beam_job_csv_has_one_header(stub_model, folder, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    code, _ = run_cli(capsys, "predict", folder, "--model", stub_model, "--out", str(out), "--beam", IN_MEMORY)
    assert code == outcome.FAILED
    lines = out.read_text().splitlines()
    assert lines[0] == predict.csv_header() and lines.count(lines[0]) == 1 and len(lines) == 18


# ---------------------------------------------------------------------------
# With the model a real (tiny) run pushed.


@pytest.fixture(scope="module")
def pushed_model(pipeline_run) -> str:
    """The model the suite's shared run pushed."""
    return predict.newest_pushed_model(pipeline_run[0])


@pytest.mark.slow
def test_pushed_model_over_a_folder_in_process_and_with_beam(pushed_model, folder, tmp_path):
    """As a user runs it: `flowers predict FOLDER --out`, then with --beam."""
    csv_out, beam_out = tmp_path / "rows.csv", tmp_path / "beam.jsonl"
    done = flowers_cli("predict", folder, "--out", str(csv_out), "--model", pushed_model, "--batch-size", "5")
    assert done.returncode == outcome.FAILED, done.stderr[-3000:]
    assert "1 of 17 file(s) could not be classified" in done.stderr and "Traceback" not in done.stderr
    rows = {r["file"]: r for r in predict.read_rows(str(csv_out))}
    version = os.path.basename(pushed_model)
    assert {r["model_version"] for r in rows.values()} == {version}
    assert [f for f, r in rows.items() if r["error"]] == [os.path.join(folder, "daisy", "broken.jpg")]
    done = flowers_cli("predict", folder, "--out", str(beam_out), "--model", pushed_model, "--beam", IN_MEMORY)
    assert done.returncode == outcome.FAILED, done.stderr[-3000:]
    from_beam = {r["file"]: r for r in predict.read_rows(str(beam_out))}
    assert sorted(from_beam) == sorted(rows)
    for path, row in from_beam.items():
        if "error" in row:
            assert rows[path]["error"]
            continue
        assert row["class"] == rows[path]["class"] and row["model_version"] == version
        assert row["confidence"] == pytest.approx(float(rows[path]["confidence"]), abs=1e-5)


def test_rows_under_the_confidence_floor_are_marked_unsure():
    rows = [{"file": "a", "confidence": 0.9}, {"file": "b", "confidence": 0.4}, {"file": "c", "error": "not an image"}]
    marked = list(predict.mark_unsure(rows, 0.5))
    assert [r.get("unsure") for r in marked] == [False, True, None]
    assert predict.CSV_COLUMNS[-1] == "unsure"
