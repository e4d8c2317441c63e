"""The `flowers` command line: the root group, thin commands over the modules
below it, and the `kubeflow` group registered from flowers.kubeflow.cli.

Imports only light modules at load time (click, the config): a bad setting is
refused before TensorFlow or TFX is imported.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from typing import Sequence

import click

from flowers import outcome
from flowers.config import DEFAULT_SHARDS, PipelineConfig
from flowers.kubeflow.cli import kubeflow
from flowers.pipeline.options import build_config, config_options
from flowers.pipeline.supervisor import OutputDirBusy

# Errors a user can act on (bad settings and input files, an unreadable or
# busy output dir): one message and exit code 2, never a stack trace.
USER_ERRORS = (ValueError, LookupError, OSError, OutputDirBusy)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """flowers: a TFX pipeline from labelled flower photos to a validated classifier."""


cli.add_command(kubeflow)


@cli.command(epilog=outcome.HELP)
@config_options
@click.option("--no-cache", is_flag=True, help="Run every component again, even if its inputs are unchanged.")
@click.option("--tune", is_flag=True, help="Add the Tuner (KerasTuner) stage before the Trainer.")
@click.option("--verbose", is_flag=True, help="Show TensorFlow, TFX and Beam logs live (always in the run log).")
def run(no_cache: bool, tune: bool, verbose: bool, **options) -> None:
    """Run the whole pipeline locally (LocalDagRunner, Beam DirectRunner)."""
    # The flags only switch on: `--set tune=true` works as well.
    flags = {"enable_cache": False} if no_cache else {}
    if tune:
        flags["tune"] = True
    config = build_config(**options).override(flags)
    sys.exit(run_and_report(config, verbose))


def run_and_report(config: PipelineConfig, verbose: bool = False) -> int:
    """Run under the supervisor, print the run's summary; the exit code."""
    from flowers.pipeline import results, supervisor

    result = supervisor.run(config, echo=click.echo, verbose=verbose)
    if result.summary is not None:
        for line in results.summary_lines(result.summary):
            click.echo(line)
    if result.exit_code == outcome.FAILED:
        click.echo(f"the run failed; details in {result.log_file}", err=True)
    return result.exit_code


@cli.command()
@click.option("--output-dir", default=PipelineConfig.output_dir, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
def history(output_dir: str, as_json: bool) -> None:
    """Past runs from ML Metadata: state, accuracy and where each model went."""
    from flowers.pipeline import results, supervisor

    config = PipelineConfig(output_dir=output_dir)
    store = results.store_for(config)
    live = supervisor.RunLock.live_run(output_dir)
    if not as_json:
        click.echo(f"{'run':<28} {'state':<13} {'accuracy':>8}  pushed to / why")
    for run_id in results.run_ids(store):
        summary = results.summarize(store, run_id, live_run=live)
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(summary)))
            continue
        acc = "n/a" if summary.accuracy is None else f"{summary.accuracy:.4f}"
        why = summary.pushed_to or "; ".join(summary.gate_failures) or (
            f"{summary.failed_component} failed" if summary.failed_component else "-"
        )
        click.echo(f"{run_id:<28} {summary.state:<13} {acc:>8}  {why}")


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False), help="A SavedModel folder (default: the newest pushed model).")
@click.option("--output-dir", default=PipelineConfig.output_dir, show_default=True)
def predict(images: tuple[str, ...], model_dir: str | None, output_dir: str) -> None:
    """Classify image files with a pushed model; one JSON line each (a file
    that cannot be read as an image gets a line with an "error"). Exits 1 if
    any file failed."""
    from flowers.pipeline import serving

    model_dir = model_dir or serving.newest_pushed_model(PipelineConfig(output_dir=output_dir))
    failed = 0
    for row in serving.predict_files(model_dir, images):
        failed += "error" in row
        click.echo(json.dumps(row))
    if failed:
        click.echo(f"{failed} of {len(images)} file(s) could not be classified", err=True)
        sys.exit(outcome.FAILED)


@cli.group()
def data() -> None:
    """Make TFRecord shards from photo folders."""


def _report(result) -> None:
    click.echo(f"wrote {result.converted} examples in {len(result.shards)} shard(s) to {result.out_dir}")
    if result.skipped:
        click.echo(f"skipped {len(result.skipped)} file(s) that are not images:", err=True)
        for path in result.skipped:
            click.echo(f"  {path}", err=True)
        sys.exit(outcome.FAILED)


def shard_options(fn):
    """Shard-writing options shared by `data convert` and `data add-span`."""
    fn = click.option("--shards", default=DEFAULT_SHARDS, show_default=True, type=click.IntRange(1, 10000), help="Number of TFRecord shards.")(fn)
    return click.option(
        "--image-size", default=PipelineConfig.image_size, show_default=True, type=click.IntRange(32, 1024),
        help="Side of the square crop, in pixels.",
    )(fn)


@data.command()
@click.argument("photos_dir", type=click.Path(file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@shard_options
def convert(photos_dir: str, out_dir: str, image_size: int, shards: int) -> None:
    """PHOTOS_DIR/<class>/*.jpg into labs-format TFRecord shards in OUT_DIR.
    Exits 1 if any file was skipped (the rest are written)."""
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
@click.option("--per-class", default=50, show_default=True, type=click.IntRange(1))
def sample(photos_dir: str, out_dir: str, per_class: int) -> None:
    """A small stratified data root (span-1) with the photographers' credits."""
    from flowers.data import sample as sampler

    _report(sampler.make_sample(photos_dir, out_dir, per_class))


def main(argv: Sequence[str] | None = None) -> None:
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(outcome.SIGINT)
    except click.ClickException as e:
        e.show()
        sys.exit(outcome.USAGE if isinstance(e, click.UsageError) else e.exit_code)
    except USER_ERRORS as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(outcome.USAGE)

if __name__ == "__main__":
    main()
