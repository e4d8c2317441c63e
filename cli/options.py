"""Click options shared by every command that builds a pipeline config
(`flowers run`, `flowers kubeflow ...`): light, so a bad setting is refused
before TensorFlow or TFX is imported."""
from __future__ import annotations

from typing import Sequence

import click

from flowers.config import PipelineConfig


def config_options(fn):
    """Options that build the run's PipelineConfig (any field via --set)."""
    options = [
        click.option("--data-root", help="Folder or URI of TFRecord shards (default: the bundled sample)."),
        click.option("--output-dir", help="Where artifacts, ML Metadata and pushed models go (default: outputs)."),
        click.option("--epochs", type=int, help="Head-training epochs."),
        click.option("--min-accuracy", type=float, help="Evaluator gate: lowest eval accuracy to bless (0..1)."),
        click.option(
            "--set", "settings", multiple=True, metavar="KEY=VALUE",
            help="Any setting as section.field=value, e.g. --set training.head=flatten (docs/settings.md).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_config(data_root=None, output_dir=None, epochs=None, min_accuracy=None, settings: Sequence[str] = ()) -> PipelineConfig:
    """The defaults, then the named options, then each --set in order."""
    named = {"data.data_root": data_root, "output_dir": output_dir, "training.epochs": epochs, "gates.min_accuracy": min_accuracy}
    values = {k: v for k, v in named.items() if v is not None}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        values[key.strip()] = value.strip()
    return PipelineConfig().override(values)
