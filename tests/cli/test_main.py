"""User errors end in one actionable message and exit code 2, not a traceback."""

import subprocess
import sys
import time

import pytest

from flowers.cli.main import main


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code, capsys.readouterr()


def test_unknown_setting(capsys):
    code, out = run_cli(capsys, "run", "--set", "epoch=3")
    assert code == 2 and "error: unknown setting(s) epoch" in out.err and "Traceback" not in out.err


def test_convert_names_the_bad_folder(capsys, tmp_path):
    (tmp_path / "photos" / "orchids").mkdir(parents=True)
    code, out = run_cli(capsys, "data", "convert", str(tmp_path / "photos"), str(tmp_path / "out"))
    assert code == 2 and "orchids" in out.err


def test_convert_reports_counts_and_skipped_files(capsys, photos_dir, tmp_path):
    import shutil

    shutil.copytree(photos_dir, tmp_path / "photos")
    (tmp_path / "photos" / "daisy" / "readme.jpg").write_text("hello")
    code, out = run_cli(
        capsys, "data", "convert", str(tmp_path / "photos"), str(tmp_path / "out"), "--image-size", "32"
    )
    # The good photos are written; the exit code says one input failed.
    assert code == 1
    assert "wrote 15 examples in 2 shard(s)" in out.out
    assert "skipped 1 file(s)" in out.err and "readme.jpg" in out.err


def test_predict_before_any_run(capsys, tmp_path, sample_jpeg):
    image = tmp_path / "x.jpg"
    image.write_bytes(sample_jpeg)
    code, out = run_cli(capsys, "predict", str(image), "--output-dir", str(tmp_path / "none"))
    assert code == 2 and "run the pipeline first" in out.err


def test_bundled_weights_only_for_alpha_half_and_one(capsys):
    code, out = run_cli(capsys, "run", "--set", "alpha=0.35", "--output-dir", "/nonexistent/never-created")
    assert code == 2 and "weights=imagenet" in out.err


def test_run_on_a_folder_without_shards(capsys, tmp_path):
    code, out = run_cli(capsys, "run", "--data-root", str(tmp_path), "--output-dir", str(tmp_path / "out"))
    assert code == 2 and str(tmp_path) in out.err and "flowers data convert" in out.err


@pytest.mark.parametrize(
    "args, named",
    [
        (["--set", "batch_size=0"], "batch_size=0 is out of range: allowed [1, 4096]"),
        (["--set", "image_size=0"], "image_size=0 is out of range"),
        (["--set", "head=flaten"], "head='flaten': allowed one of pooling, flatten"),
        (["--min-accuracy", "1.5"], "min_accuracy=1.5 is out of range: allowed [0.0, 1.0]"),
        (["--set", "alpha=0.75"], "alpha=0.75: no bundled weights"),
        (["--set", "weights=imagenet.txt"], "weights='imagenet.txt'"),
    ],
)
def test_bad_settings_are_refused_at_once_by_name(args, named, tmp_path):
    """As a user runs it: a fresh process, refused before TensorFlow loads."""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "flowers.cli.main", "run", "--output-dir", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.monotonic() - start
    assert done.returncode == 2 and named in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    # Generous against machine load; the point is "no TensorFlow import" (tens of seconds).
    assert seconds < 3, seconds


def test_predict_with_a_folder_that_is_not_a_saved_model(capsys, tmp_path, sample_jpeg):
    image = tmp_path / "x.jpg"
    image.write_bytes(sample_jpeg)
    (tmp_path / "model").mkdir()
    code, out = run_cli(capsys, "predict", str(image), "--model", str(tmp_path / "model"))
    assert code == 2 and "is not a SavedModel folder" in out.err and "Traceback" not in out.err


def test_read_only_output_dir_is_one_line(capsys, tmp_path):
    import os

    if os.geteuid() == 0:
        target = "/proc/flowers-out"  # not even root can create this
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        target = str(tmp_path / "ro" / "out")
    code, out = run_cli(capsys, "run", "--output-dir", target)
    assert code == 2 and out.err.startswith("error:") and "Traceback" not in out.err


def test_a_truncated_shard_is_named_before_anything_runs(capsys, tmp_path):
    from samples import SAMPLE_SHARDS

    (tmp_path / "data" / "span-1").mkdir(parents=True)
    shard = tmp_path / "data" / "span-1" / "flowers-00000-of-00001.tfrec"
    shard.write_bytes(open(SAMPLE_SHARDS[0], "rb").read()[:20000])
    code, out = run_cli(capsys, "run", "--data-root", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out"))
    assert code == 2 and f"{shard}: truncated" in out.err and "Traceback" not in out.err
    assert len(out.err) < 400  # one line, no dump of the bytes


def test_predict_on_a_folder_without_images_says_so(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out = run_cli(capsys, "predict", str(tmp_path / "empty"), "--model", str(tmp_path))
    assert code == 2 and f"no images to classify in {tmp_path / 'empty'}" in out.err and out.out == ""
