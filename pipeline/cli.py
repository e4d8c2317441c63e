"""The `flowers` command line: thin click commands over the project's modules."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Sequence

import click

from flowers.pipeline.config import DEFAULT_SHARDS, PipelineConfig, TrainingConfig

# Errors a user can act on: printed as one message, never as a stack trace.
USER_ERRORS = (ValueError, FileNotFoundError, LookupError, PermissionError)


def config_options(fn):
    """Options that build the run's PipelineConfig (any field via --set)."""
    options = [
        click.option("--data-root", help="Folder or URI of TFRecord shards (default: the bundled sample)."),
        click.option("--output-dir", help="Where artifacts, ML Metadata and pushed models go (default: outputs)."),
        click.option("--epochs", type=int, help="Head-training epochs."),
        click.option("--min-accuracy", type=float, help="Evaluator gate: lowest eval accuracy to bless."),
        click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Any configuration field, e.g. --set head=flatten."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_config(data_root=None, output_dir=None, epochs=None, min_accuracy=None, settings: Sequence[str] = ()) -> PipelineConfig:
    values = {k: v for k, v in dict(data_root=data_root, output_dir=output_dir, epochs=epochs, min_accuracy=min_accuracy).items() if v is not None}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        values[key.strip()] = value.strip()
    return PipelineConfig().override(values)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """flowers: a TFX pipeline from labelled flower photos to a validated classifier."""


@cli.command()
@config_options
@click.option("--no-cache", is_flag=True, help="Run every component again, even if its inputs are unchanged.")
@click.option("--tune", is_flag=True, help="Add the Tuner (KerasTuner) stage before the Trainer.")
def run(no_cache: bool, tune: bool, **options) -> None:
    """Run the whole pipeline locally (LocalDagRunner, Beam DirectRunner)."""
    from flowers.pipeline import local, results

    # The flags only switch on: `--set tune=true` works as well.
    flags = {"enable_cache": False} if no_cache else {}
    if tune:
        flags["tune"] = True
    config = build_config(**options).override(flags)
    _show_progress()
    local.run(config)
    _print_summary(results.latest(config))


def _show_progress() -> None:
    """Print TFX's "Component X is running/finished" lines and nothing else of its INFO log."""
    import logging

    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    logging.getLogger("absl").addFilter(
        lambda record: record.levelno >= logging.WARNING or record.getMessage().startswith("Component ")
    )


def _print_summary(summary) -> None:
    acc = "n/a" if summary.accuracy is None else f"{summary.accuracy:.4f}"
    click.echo(f"run:            {summary.run_id}")
    click.echo(f"eval accuracy:  {acc} on {summary.eval_examples} eval examples")
    for name, recall in summary.per_class_recall.items():
        click.echo(f"  recall {name:<11} {recall:.4f}")
    for split, problems in summary.anomalies.items():
        click.echo(f"data anomalies in {split}: " + "; ".join(problems))
    click.echo(f"blessed:        {'yes' if summary.blessed else 'no'}")
    for failure in summary.gate_failures:
        click.echo(f"  gate failed:  {failure}")
    click.echo(f"pushed to:      {summary.pushed_to or 'not pushed (model not blessed)'}")


@cli.command()
@click.option("--output-dir", default=PipelineConfig.output_dir, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
def history(output_dir: str, as_json: bool) -> None:
    """Past runs from ML Metadata: accuracy, blessing and where each model went."""
    from flowers.pipeline import results

    config = PipelineConfig(output_dir=output_dir)
    store = results.store_for(config)
    for run_id in results.run_ids(store):
        summary = results.summarize(store, run_id)
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(summary)))
        else:
            acc = "   n/a" if summary.accuracy is None else f"{summary.accuracy:.4f}"
            click.echo(f"{run_id}  accuracy {acc}  {'blessed' if summary.blessed else 'not blessed':<11}  {summary.pushed_to or '-'}")


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False), help="A SavedModel folder (default: the newest pushed model).")
@click.option("--output-dir", default=PipelineConfig.output_dir, show_default=True)
def predict(images: tuple[str, ...], model_dir: str | None, output_dir: str) -> None:
    """Classify image files with a pushed model; prints one JSON line each."""
    from flowers.pipeline import serving

    model_dir = model_dir or serving.newest_pushed_model(PipelineConfig(output_dir=output_dir))
    for path, result in zip(images, serving.predict_files(model_dir, images)):
        click.echo(json.dumps({"file": path, **result}))


@cli.group()
def data() -> None:
    """Make TFRecord shards from photo folders."""


def _report(result) -> None:
    click.echo(f"wrote {result.converted} examples in {len(result.shards)} shard(s) to {result.out_dir}")
    if result.skipped:
        click.echo(f"skipped {len(result.skipped)} file(s) that are not images:", err=True)
        for path in result.skipped:
            click.echo(f"  {path}", err=True)


def shard_options(fn):
    """Shard-writing options shared by `data convert` and `data add-span`."""
    fn = click.option("--shards", default=DEFAULT_SHARDS, show_default=True, help="Number of TFRecord shards.")(fn)
    return click.option(
        "--image-size", default=TrainingConfig().image_size, show_default=True, help="Side of the square crop, in pixels."
    )(fn)


@data.command()
@click.argument("photos_dir", type=click.Path(file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@shard_options
def convert(photos_dir: str, out_dir: str, image_size: int, shards: int) -> None:
    """PHOTOS_DIR/<class>/*.jpg into labs-format TFRecord shards in OUT_DIR."""
    from flowers.data import convert as converter

    _report(converter.convert(photos_dir, out_dir, image_size=image_size, num_shards=shards))


@data.command("add-span")
@click.argument("photos_dir", type=click.Path(file_okay=False))
@click.argument("data_root", type=click.Path(file_okay=False))
@shard_options
def add_span(photos_dir: str, data_root: str, image_size: int, shards: int) -> None:
    """Convert new photos into DATA_ROOT/span-N+1, the span the next run trains on."""
    from flowers.data import convert as converter

    _report(converter.add_span(photos_dir, data_root, image_size=image_size, num_shards=shards))


@data.command()
@click.argument("photos_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--per-class", default=50, show_default=True)
def sample(photos_dir: str, out_dir: str, per_class: int) -> None:
    """A small stratified data root (span-1) with the photographers' credits."""
    from flowers.data import sample as sampler

    _report(sampler.make_sample(photos_dir, out_dir, per_class))


from flowers.kubeflow.cli import kubeflow as kubeflow_commands  # noqa: E402  (compile, submit, schedule, runs)
cli.add_command(kubeflow_commands)


def main(argv: Sequence[str] | None = None) -> None:
    # TensorFlow's C++ INFO lines drown the output a user needs; errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except USER_ERRORS as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
