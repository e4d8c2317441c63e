"""Click options shared by every command that builds a pipeline config
(`flowers run`, `flowers kubeflow ...`): light, so a bad setting is refused
before TensorFlow or TFX is imported."""

from __future__ import annotations

from typing import Sequence

import click

from flowers import settings as flowers_settings
from flowers.config import PipelineConfig


def config_options(fn):
    """Options that build the run's PipelineConfig (any field via --set)."""
    options = [
        click.option("--data-root", help="Folder or URI of TFRecord shards (default: the bundled sample)."),
        click.option("--output-dir", help="Where artifacts, ML Metadata and pushed models go (default: outputs)."),
        click.option("--epochs", type=int, help="Head-training epochs."),
        click.option("--min-accuracy", type=float, help="Evaluator gate: lowest eval accuracy to bless (0..1)."),
        click.option(
            "--set",
            "settings",
            multiple=True,
            metavar="KEY=VALUE",
            help="Any setting as section.field=value, e.g. --set training.head=flatten (docs/settings.md).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_config(
    data_root=None, output_dir=None, epochs=None, min_accuracy=None, settings: Sequence[str] = ()
) -> PipelineConfig:
    """The defaults, then the settings file (flowers.toml), then the named
    options, then each --set in order."""
    return effective_settings(data_root, output_dir, epochs, min_accuracy, settings)[0]


def effective_settings(data_root=None, output_dir=None, epochs=None, min_accuracy=None, settings: Sequence[str] = ()):
    """`flowers.settings.effective` for these options: (config, sources, file)."""
    named = {
        "data.data_root": data_root,
        "output_dir": output_dir,
        "training.epochs": epochs,
        "gates.min_accuracy": min_accuracy,
    }
    values = {k: v for k, v in named.items() if v is not None}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        values[key.strip()] = value.strip()
    return flowers_settings.effective(values)


def output_dir_option(fn):
    """--output-dir for commands that read a finished run: the settings
    file's output_dir, else outputs."""
    return click.option(
        "--output-dir", help="The pipeline's output dir  [default: the settings file's output_dir, else outputs]"
    )(fn)


def output_config(output_dir: str | None) -> PipelineConfig:
    """The config a reading command works on: --output-dir, or the settings file's."""
    return build_config(output_dir=output_dir)
