"""Settings from a file, and the reference of every setting.

A project keeps its settings in `flowers.toml` (or the `[tool.flowers]`
table of its `pyproject.toml`) in the folder a command runs from, or in the
file $FLOWERS_SETTINGS_FILE names. Sections are the config's: `[data]`,
`[gates]`, `[training]`, `[run]`, `[kubeflow]` and `[kubeflow.resources.trainer]`;
top-level keys are `pipeline_name` and `output_dir`. Command-line options
and `--set` go on top of the file.

The reference (`flowers config docs`) is generated from core/config.py
itself: each field's type, default, rule and the comment above it.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import typing
from typing import Any, Mapping

from flowers import config as config_module
from flowers.config import SECTIONS, KubeflowConfig, PipelineConfig, Resources, SettingsError, allowed, setting_keys

FILE_ENV = "FLOWERS_SETTINGS_FILE"
FILE_NAME = "flowers.toml"
DEFAULT, FILE, FLAG = "default", "file", "flag"


def find_file(folder: str = ".") -> tuple[str, str] | None:
    """(path, table) of the settings file a command in `folder` reads:
    $FLOWERS_SETTINGS_FILE, else ./flowers.toml, else ./pyproject.toml when
    it has a [tool.flowers] table. The table is "" or "tool.flowers"."""
    named = os.environ.get(FILE_ENV)
    if named:
        if not os.path.isfile(named):
            raise FileNotFoundError(f"{FILE_ENV}={named}: no such settings file")
        return named, "tool.flowers" if os.path.basename(named) == "pyproject.toml" else ""
    own = os.path.join(folder, FILE_NAME)
    if os.path.isfile(own):
        return own, ""
    project = os.path.join(folder, "pyproject.toml")
    if os.path.isfile(project) and "tool" in _load(project) and "flowers" in _load(project)["tool"]:
        return project, "tool.flowers"
    return None


def read_file(path: str, table: str = "") -> dict[str, Any]:
    """The file's settings as dotted keys (`training.epochs`), as the file wrote them."""
    tree: Any = _load(path)
    for part in filter(None, table.split(".")):
        tree = tree.get(part, {})
    flat: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value

    walk(tree, "")
    return flat


def _load(path: str) -> dict:
    import tomli

    try:
        with open(path, "rb") as f:
            return tomli.load(f)
    except tomli.TOMLDecodeError as error:
        raise SettingsError(f"{path}: not valid TOML ({error})") from None


def effective(flags: Mapping[str, Any], folder: str = ".") -> tuple[PipelineConfig, dict[str, str], str | None]:
    """(config, source of each key set: "file" or "flag", settings file read):
    the defaults, then the settings file, then the command line."""
    found = find_file(folder)
    from_file = read_file(*found) if found else {}
    try:
        config = PipelineConfig().override(from_file)
    except SettingsError as error:
        raise SettingsError(f"{found[0]}: {error}") from None
    config = config.override(flags)
    sources = {_dotted(k): FILE for k in from_file} | {_dotted(k): FLAG for k in flags}
    return config, sources, found[0] if found else None


def _dotted(key: str) -> str:
    keys = setting_keys()
    return key if key in keys else {flat: dotted for dotted, flat in keys.items()}.get(key, key)


def values(config: PipelineConfig) -> dict[str, Any]:
    """Every settable key's value in `config`."""
    out = {}
    for key in setting_keys():
        node: Any = config
        for part in key.split("."):
            node = node[part] if isinstance(node, dict) else getattr(node, part)
        out[key] = node
    return out


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str
    type: str
    default: Any
    allowed: str
    meaning: str


def reference() -> list[Setting]:
    """Every setting, from the config's own code: type, default, rule, comment."""
    defaults = values(PipelineConfig())
    rows = []
    for key in setting_keys():
        cls, name = _owner(key)
        kind = typing.get_type_hints(cls)[name]
        rows.append(Setting(key, _type_name(kind), defaults[key], allowed(cls, name), _comments(cls).get(name, "")))
    return rows


def _owner(key: str) -> tuple[type, str]:
    parts = key.split(".")
    if len(parts) == 1:
        return PipelineConfig, parts[0]
    if parts[:2] == ["kubeflow", "resources"]:
        return Resources, parts[-1]
    if parts[0] == "kubeflow":
        return KubeflowConfig, parts[-1]
    return SECTIONS[parts[0]], parts[-1]


def _type_name(kind) -> str:
    return {tuple[str, ...]: "list of strings"}.get(kind, getattr(kind, "__name__", str(kind)))


def _comments(cls: type) -> dict[str, str]:
    """Field name -> the comment above it in the class body; a comment covers
    the run of fields right below it (a group such as span and span_window)."""
    found: dict[str, str] = {}
    comment: list[str] = []
    in_run = False
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment = comment + [stripped.lstrip("#").strip()] if not in_run else [stripped.lstrip("#").strip()]
            in_run = False
            continue
        field = re.match(r"    (\w+)\s*:", line)
        if field and not line.startswith("     "):
            found[field.group(1)] = " ".join(comment)
            in_run = True
        else:
            comment, in_run = [], False
    return found


def reference_markdown() -> str:
    """docs/settings.md's table (and `flowers config docs`)."""
    lines = [
        "| setting | type | default | allowed | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in reference():
        default = " ".join(s.default) if isinstance(s.default, tuple) else s.default
        if isinstance(default, str) and os.path.isabs(default):
            default = os.path.relpath(default, os.path.dirname(os.path.dirname(config_module.__file__)))
        lines.append(f"| `{s.key}` | {s.type} | `{default}` | {s.allowed} | {s.meaning.replace('|', '/')} |")
    return "\n".join(lines)
