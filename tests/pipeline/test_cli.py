"""User errors end in one actionable message and exit code 2, not a traceback."""
import pytest

from flowers.pipeline.cli import main


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
    main(["data", "convert", str(tmp_path / "photos"), str(tmp_path / "out"), "--image-size", "32"])
    out = capsys.readouterr()
    assert "wrote 15 examples in 2 shard(s)" in out.out
    assert "skipped 1 file(s)" in out.err and "readme.jpg" in out.err


def test_predict_before_any_run(capsys, tmp_path, sample_jpeg):
    image = tmp_path / "x.jpg"
    image.write_bytes(sample_jpeg)
    code, out = run_cli(capsys, "predict", str(image), "--output-dir", str(tmp_path / "none"))
    assert code == 2 and "run the pipeline first" in out.err


def test_bundled_weights_only_for_alpha_half(capsys):
    code, out = run_cli(capsys, "run", "--set", "alpha=0.35", "--output-dir", "/nonexistent/never-created")
    assert code == 2 and "weights=imagenet" in out.err


def test_run_on_a_folder_without_shards(capsys, tmp_path):
    code, out = run_cli(capsys, "run", "--data-root", str(tmp_path), "--output-dir", str(tmp_path / "out"))
    assert code == 2 and str(tmp_path) in out.err and "flowers data convert" in out.err
