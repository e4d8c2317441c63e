"""Settings files, sources and the generated reference (core/settings.py)."""

import pathlib

import pytest

from flowers import settings
from flowers.config import PipelineConfig, SettingsError, setting_keys

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.delenv(settings.FILE_ENV, raising=False)
    return tmp_path


def test_a_flowers_toml_is_read_and_flags_go_on_top(folder):
    (folder / "flowers.toml").write_text(
        'output_dir = "/srv/flowers"\n[training]\nepochs = 7\nhead = "flatten"\n'
        "[gates]\nmin_accuracy = 0.5\n[kubeflow.resources.trainer]\ncpu = 2\ncpu_limit = 2\n"
    )
    config, sources, path = settings.effective({"training.epochs": "3"}, str(folder))
    assert path == str(folder / "flowers.toml")
    assert config.output_dir == "/srv/flowers" and config.training.head == "flatten"
    assert config.training.epochs == 3  # the flag wins
    assert config.gates.min_accuracy == 0.5 and config.kubeflow.resources["trainer"].cpu == 2
    assert sources["training.epochs"] == settings.FLAG and sources["training.head"] == settings.FILE
    assert "training.batch_size" not in sources  # a default


def test_pyproject_tool_flowers_table(folder):
    (folder / "pyproject.toml").write_text('[project]\nname = "mine"\n[tool.flowers.data]\nimage_size = 128\n')
    config, _, path = settings.effective({}, str(folder))
    assert path.endswith("pyproject.toml") and config.data.image_size == 128


def test_a_pyproject_without_the_table_is_no_settings_file(folder):
    (folder / "pyproject.toml").write_text('[project]\nname = "mine"\n')
    assert settings.find_file(str(folder)) is None
    assert settings.effective({}, str(folder))[0] == PipelineConfig()


def test_the_environment_names_a_file(folder, monkeypatch):
    named = folder / "elsewhere.toml"
    named.write_text("[run]\nkeep_versions = 3\n")
    monkeypatch.setenv(settings.FILE_ENV, str(named))
    assert settings.effective({}, "/")[0].run.keep_versions == 3
    monkeypatch.setenv(settings.FILE_ENV, str(folder / "missing.toml"))
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        settings.effective({}, "/")


@pytest.mark.parametrize(
    "text, named",
    [
        ("[training]\nepoch = 3\n", r"flowers.toml: unknown setting\(s\) training.epoch.*did you mean training.epochs"),
        ("[training]\nepochs = 0\n", r"flowers.toml: setting training.epochs=0 is out of range"),
        ("[training\nepochs = 3\n", r"flowers.toml: not valid TOML"),
    ],
)
def test_a_bad_file_is_named_with_the_setting(folder, text, named):
    (folder / "flowers.toml").write_text(text)
    with pytest.raises(SettingsError, match=named):
        settings.effective({}, str(folder))


def test_every_setting_has_a_type_default_rule_and_meaning():
    rows = settings.reference()
    assert [r.key for r in rows] == list(setting_keys())
    assert all(r.meaning for r in rows), [r.key for r in rows if not r.meaning]
    epochs = next(r for r in rows if r.key == "training.epochs")
    assert (epochs.type, epochs.default, epochs.allowed) == ("int", 15, "[1, 1000]")


def test_the_settings_page_holds_the_generated_reference():
    """docs/settings.md cannot drift from the config code."""
    assert settings.reference_markdown() in (ROOT / "docs" / "settings.md").read_text()
