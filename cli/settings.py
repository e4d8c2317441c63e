"""`flowers config`: the effective settings and where each came from, and
the reference of every setting (generated from core/config.py)."""

from __future__ import annotations

import click

from flowers import settings
from flowers.cli.options import config_options, effective_settings


@click.group()
def config() -> None:
    """Settings: flowers.toml (or [tool.flowers] in pyproject.toml), then options and --set."""


@config.command()
@config_options
def show(**options) -> None:
    """Print every setting's effective value and its source (default, file, flag)."""
    effective, sources, path = effective_settings(**options)
    click.echo(f"# settings file: {path or 'none (flowers.toml or [tool.flowers] in pyproject.toml)'}")
    for key, value in settings.values(effective).items():
        shown = " ".join(value) if isinstance(value, tuple) else value
        click.echo(f"{key} = {shown!r}  # {sources.get(key, settings.DEFAULT)}")


@config.command()
def docs() -> None:
    """Print the reference of every setting (Markdown): type, default, allowed values, meaning."""
    click.echo(settings.reference_markdown())
