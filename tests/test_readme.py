"""The README is the door and docs/ the rooms, and both stay true to the code:
every `flowers ...` command they show exists in the CLI, every `--set` is a
known setting, every repository file they name exists, every relative link
leads somewhere, and the README stays short. A renamed command, setting or
module fails here, not in a user's shell."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = (README, *sorted((ROOT / "docs").glob("*.md")))
# The README is a door: what it is, the two commands, the next five things.
MAX_README_LINES = 150

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A subcommand name; the first word that is not one (an option, a path, a
# placeholder such as PHOTOS_DIR, a run id) ends the command path.
SUBCOMMAND = re.compile(r"[a-z][a-z0-9-]*")
# `ExecStart=/opt/.../flowers` in a unit file, `X=1 flowers` in a shell line.
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def code_snippets(text: str) -> list[str]:
    """Fenced code blocks (continuation lines joined) and inline code spans."""
    snippets = [block.replace("\\\n", " ") for block in FENCE.findall(text)]
    snippets += INLINE.findall(FENCE.sub("", text))
    return snippets


def command_paths(text: str) -> set[tuple[str, ...]]:
    """The subcommand path of every `flowers ...` invocation shown in `text`."""
    paths = set()
    for snippet in code_snippets(text):
        for line in snippet.splitlines():
            words = line.split()
            for i, word in enumerate(words):
                program = ASSIGNMENT.sub("", word)
                if program != "flowers" and not program.endswith("/bin/flowers"):
                    continue
                path = []
                for arg in words[i + 1 :]:
                    if not SUBCOMMAND.fullmatch(arg):
                        break
                    path.append(arg)
                paths.add(tuple(path))
    return paths


def shown_commands() -> dict[tuple[str, ...], str]:
    """Each distinct command path, with the first page that shows it."""
    found: dict[tuple[str, ...], str] = {}
    for page in PAGES:
        for path in sorted(command_paths(page.read_text())):
            found.setdefault(path, page.relative_to(ROOT).as_posix())
    return found


SHOWN = shown_commands()


def test_extraction_reads_commands_and_stops_at_arguments():
    text = (
        "```sh\n.venv/bin/flowers kubeflow compile \\\n    --output-dir gs://B/flowers\n"
        "flowers data convert ~/photos data/mine\nflowers report 2026-11-29T08:58:11 --output-dir x\n```\n"
        "`ExecStart=/opt/flowers/.venv/bin/flowers run --data-root /srv` and `flowers.runs.report`"
    )
    assert command_paths(text) == {("kubeflow", "compile"), ("data", "convert"), ("report",), ("run",)}


def test_readme_shows_the_quick_start_and_next_commands():
    readme = command_paths(README.read_text())
    for path in [("run",), ("data", "convert"), ("history",), ("report",), ("predict",), ("kubeflow", "compile")]:
        assert path in readme, f"README.md shows no `flowers {' '.join(path)}`"


@pytest.mark.parametrize("path", sorted(SHOWN), ids=lambda path: " ".join(("flowers", *path)))
def test_shown_command_exists(path: tuple[str, ...]):
    done = subprocess.run(
        [sys.executable, "-m", "flowers.cli.main", *path, "--help"], capture_output=True, text=True, timeout=120
    )
    shown = f"`flowers {' '.join(path)}` (shown in {SHOWN[path]})"
    assert done.returncode == 0, f"{shown} does not exist: {done.stdout[-1000:]}{done.stderr[-2000:]}"
    usage = done.stdout.splitlines()[0] if done.stdout else ""
    assert usage.startswith("Usage:") and " ".join(path) in usage, f"{shown}: --help printed {usage!r}"


SETTING = re.compile(r"--set[= ]+['\"]?([\w.]+)=")
# The one page that shows a flat name of an earlier release, to show its note.
FLAT_NAME_EXAMPLE_PAGE = "docs/settings.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_shown_settings_exist(page: pathlib.Path):
    from flowers.config import setting_keys

    keys = setting_keys()
    flat = set(keys.values()) - set(keys)
    name = page.relative_to(ROOT).as_posix()
    shown = {key for snippet in code_snippets(page.read_text()) for key in SETTING.findall(snippet)}
    # Placeholders in capitals (KEY, training.FIELD) and `section.field` stand for any setting.
    shown = {key for key in shown if key == key.lower() and key != "section.field"}
    unknown = sorted(key for key in shown if key not in keys and not (key in flat and name == FLAT_NAME_EXAMPLE_PAGE))
    assert not unknown, f"{name} shows --set with unknown or old-style settings: {', '.join(unknown)}"


# A path into the repository's own folders, written as one (not a URI or an
# image path such as /flowers/data/..., not a user's data/mine in a command).
REPO_PATH = re.compile(
    r"(?<![\w/.~$-])((?:core|components|data|runs|pipeline|kubeflow|cli|tests|benchmarks|docs)(?:/[\w.-]+)+)"
)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_named_repository_files_exist(page: pathlib.Path):
    """Paths named in inline code (`components/strategy.py`) are where the page says."""
    text = FENCE.sub("", page.read_text())
    named = {match for span in INLINE.findall(text) for match in REPO_PATH.findall(span)}
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {', '.join(missing)}"


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES}): move detail to docs/"


def heading_anchors(page: pathlib.Path) -> set[str]:
    """GitHub's anchors for the page's headings."""
    anchors = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower().replace("`", "")
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_relative_links_lead_to_files_and_headings(page: pathlib.Path):
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not this test's business
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target} (no file {linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked})")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
            broken.append(f"{target} (no heading #{anchor} in {linked.name})")
    assert not broken, f"{page.relative_to(ROOT)} links to: " + "; ".join(broken)
