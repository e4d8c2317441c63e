"""The `flowers` command line: the root group, thin commands over the modules
below it, and the `kubeflow` group registered from flowers.cli.kubeflow.

Imports only light modules at load time (click, the config): a bad setting is
refused before TensorFlow or TFX is imported.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Sequence

import click

from flowers import outcome, outputs
from flowers.cli.kubeflow import kubeflow
from flowers.cli.options import build_config, config_options, output_config, output_dir_option
from flowers.cli.settings import config as config_group
from flowers.config import DEFAULT_SHARDS, DataConfig, PipelineConfig, bounds
from flowers.outputs import OutputDirBusy
from flowers.runs import serving_settings  # light: the server loads on use

# Errors a user can act on (bad settings and input files, an unreadable or
# busy output dir): one message and exit code 2, never a stack trace.
USER_ERRORS = (ValueError, LookupError, OSError, OutputDirBusy)


def quiet_libraries() -> None:
    """This process prints only the project's lines: TensorFlow's C++ logs
    and Python warnings of the libraries stay out (a run keeps them in its
    log file; `run --verbose` shows them)."""
    import logging
    import os
    import warnings

    os.environ.setdefault("FLOWERS_USER_TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1"))
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    warnings.simplefilter("ignore")
    # Processes this one starts (Beam's SDK workers of `predict --beam`) too.
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    # TensorFlow's Python deprecation notices; Beam's relayed worker warnings.
    for name in ("tensorflow", "absl", "apache_beam"):
        logging.getLogger(name).setLevel(logging.ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """flowers: a TFX pipeline from labelled flower photos to a validated classifier."""


cli.add_command(kubeflow)
cli.add_command(config_group)


@cli.command(epilog=outcome.HELP)
@config_options
@click.option(
    "--no-cache",
    "--force",
    "no_cache",
    is_flag=True,
    help="Run every component again, even if its inputs are unchanged (a run with nothing new pushes nothing).",
)
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
    from flowers.pipeline import supervisor
    from flowers.runs import results

    result = supervisor.run(config, echo=click.echo, verbose=verbose)
    if result.summary is not None:
        for line in results.summary_lines(result.summary):
            click.echo(line)
    if result.exit_code == outcome.FAILED:
        click.echo(f"the run failed; details in {result.log_file}", err=True)
    return result.exit_code


@cli.command()
@output_dir_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
@click.option(
    "--columns",
    "-c",
    default="",
    metavar="KEY,...",
    help="Settings to show as columns, e.g. training.epochs,gates.min_accuracy (`flowers config docs` lists them).",
)
def history(output_dir: str | None, as_json: bool, columns: str) -> None:
    """Past runs from ML Metadata: state, accuracy, duration, settings and where each model went."""
    from flowers.config import setting_keys
    from flowers.runs import records, results

    shown = tuple(c.strip() for c in columns.split(",") if c.strip())
    unknown = [c for c in shown if c not in setting_keys()]
    if unknown:
        raise click.BadParameter(
            f"unknown setting {unknown[0]} (`flowers config docs` lists them)", param_hint="--columns"
        )
    config = output_config(output_dir)
    store = records.store_for(config)
    live = outputs.RunLock.live_run(config.output_dir)
    if not as_json:
        click.echo(results.history_header(shown))
    for run_id in records.run_ids(store):
        try:
            summary = results.summary_kept(store, run_id, live_run=live)
        except Exception as e:  # one unreadable run never hides the others
            click.echo(
                json.dumps({"run_id": run_id, "state": "unreadable", "error": str(e)})
                if as_json
                else f"{run_id}  unreadable: {e}"
            )
            continue
        click.echo(json.dumps(dataclasses.asdict(summary)) if as_json else results.history_row(summary, shown))


@cli.command()
@click.argument("run_id", required=False)
@output_dir_option
def report(run_id: str | None, output_dir: str | None) -> None:
    """Write the HTML report of a run (default: the newest) into its folder
    under OUTPUT_DIR/runs/ and print its path: data, training curves,
    confusion matrix, gates, wrong eval images, settings, times."""
    from flowers.runs import report as run_report

    click.echo(run_report.write_report(output_config(output_dir), run_id))


@cli.command()
@click.argument("run_a", required=False)
@click.argument("run_b", required=False)
@output_dir_option
def compare(run_a: str | None, run_b: str | None, output_dir: str | None) -> None:
    """Two runs side by side (default: the newest and the one before it):
    outcome, accuracy, per-class recall, gates, time and the settings that differ."""
    from flowers.runs import compare as comparing
    from flowers.runs import records, results

    config = output_config(output_dir)
    store = records.store_for(config)
    ids = records.run_ids(store)
    if run_a is None and run_b is None:
        if len(ids) < 2:
            raise LookupError(f"{config.metadata_path}: {len(ids)} run(s) recorded; compare needs two")
        run_a, run_b = ids[-2], ids[-1]
    elif run_b is None:
        run_b = ids[-1] if ids else None
    first, second = (results.summarize(store, records.resolve_run_id(store, r, config)) for r in (run_a, run_b))
    for line in comparing.text(first, second):
        click.echo(line)


@cli.command()
@click.argument("version", required=False)
@output_dir_option
def rollback(version: str | None, output_dir: str | None) -> None:
    """Serve an older pushed VERSION again (default: the one pushed before the
    served one): copied as the newest version, recorded in ML Metadata and history."""
    from flowers.runs import rollback as rolling

    click.echo(rolling.describe(rolling.rollback(output_config(output_dir), version)))


@cli.command(
    epilog='Exit codes: 0 every file was classified; 1 some file could not be (its row has an "error"); 2 bad usage.'
)
@click.argument("inputs", metavar="PATH...", nargs=-1, required=True)
@click.option("--model", "model_dir", help="A SavedModel folder (default: the newest pushed model).")
@output_dir_option
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    help="Write the rows to this file (with a progress bar) instead of stdout.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    help="Row format  [default: csv if --out ends in .csv, else jsonl]",
)
@click.option(
    "--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096), help="Images per call of the model."
)
@click.option(
    "--beam",
    is_flag=True,
    help="Run as an Apache Beam job (RunInference); needs --out. For large folders, or Dataflow.",
)
@click.option(
    "--beam-arg",
    "beam_args",
    multiple=True,
    help="A Beam pipeline argument for --beam (repeatable; default: the local DirectRunner).",
)
@click.option(
    "--tflite", is_flag=True, help="Use the model's model.tflite (what a phone runs) instead of the SavedModel."
)
@click.option(
    "--unsure-below",
    type=click.FloatRange(0, 1),
    metavar="P",
    help='Mark rows whose top probability is under P as "unsure" (the report\'s calibration says how far to trust it).',
)
def predict(
    inputs: tuple[str, ...],
    model_dir: str | None,
    output_dir: str | None,
    out_file: str | None,
    fmt: str | None,
    batch_size: int,
    beam: bool,
    beam_args: tuple[str, ...],
    tflite: bool,
    unsure_below: float | None,
) -> None:
    """Classify image files with a pushed model: files, and folders searched
    recursively for .jpg/.jpeg/.png/.gif/.bmp files. One row per file, JSON
    lines or CSV, to stdout or --out; a file that cannot be read as an image
    gets a row with an "error" and the others are still classified."""
    from flowers.config import LOCAL_BEAM_ARGS
    from flowers.runs import predict

    if beam and not out_file:
        raise click.UsageError("--beam writes its rows to a file: give --out")
    if beam and tflite:
        raise click.UsageError("--beam runs the SavedModel: leave out --tflite")
    if beam and unsure_below is not None:
        raise click.UsageError("--unsure-below marks rows classified here: leave out --beam")
    model_dir = model_dir or predict.newest_pushed_model(output_config(output_dir))
    paths, passed_over = predict.list_images(inputs)
    if passed_over:
        click.echo(f"passed over {passed_over} file(s) without an image extension in the folder(s)", err=True)
    if not paths:
        raise click.UsageError(f"no images to classify in {', '.join(inputs)} (.jpg, .jpeg, .png, .gif or .bmp files)")
    fmt = predict.format_for(out_file, fmt)
    if beam:
        rows, failed = predict.predict_with_beam(
            model_dir, paths, out_file, fmt, beam_args or LOCAL_BEAM_ARGS, batch_size
        )
        click.echo(f"wrote {rows} row(s) to {out_file}", err=True)
    else:
        if tflite:
            from flowers.runs import tflite as tflite_rows

            classify = tflite_rows.predict_files
        else:
            classify = predict.predict_files
        if unsure_below is not None:
            plain = classify

            def classify(*args):
                return predict.mark_unsure(plain(*args), unsure_below)

        rows, failed = _predict_rows(predict, classify, model_dir, paths, out_file, fmt, batch_size)
    if failed:
        click.echo(f"{failed} of {rows} file(s) could not be classified", err=True)
        sys.exit(outcome.FAILED)


def _predict_rows(
    predict, classify, model_dir: str, paths: list[str], out_file: str | None, fmt: str, batch_size: int
) -> tuple[int, int]:
    """Rows to stdout, or to `out_file` under a progress bar (stderr); (rows, failed)."""
    rows = failed = 0
    out = open(out_file, "w", newline="") if out_file else None
    try:
        write = (lambda line: out.write(line + "\n")) if out else click.echo
        if fmt == "csv":
            write(predict.csv_header())
        predictions = classify(model_dir, paths, batch_size)
        with click.progressbar(length=len(paths), label="classifying", file=sys.stderr) if out else _no_bar() as bar:
            for row in predictions:
                rows += 1
                failed += "error" in row
                write(predict.format_row(row, fmt))
                bar.update(1)
    finally:
        if out:
            out.close()
    if out_file:
        click.echo(f"wrote {rows} row(s) to {out_file}", err=True)
    return rows, failed


class _no_bar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        pass


@cli.command(epilog="Stops on SIGTERM or Ctrl-C once the requests in flight are answered (exit 0). docs/serving.md")
@output_dir_option
@click.option("--host", default=serving_settings.DEFAULT_HOST, show_default=True)
@click.option(
    "--port",
    default=serving_settings.DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="TF Serving's REST port by default.",
)
@click.option(
    "--versions",
    "policy",
    default="latest",
    show_default=True,
    help="Which versions: latest, latest:N, all, or numbers like 3,5 (TF Serving's version policy).",
)
@click.option(
    "--poll-seconds",
    default=serving_settings.POLL_SECONDS,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="How often serving/ is checked for new or removed versions.",
)
@click.option(
    "--max-batch-size",
    default=serving_settings.BatchingSettings.max_batch_size,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Images per model call; a larger request is refused.",
)
@click.option(
    "--batch-timeout-ms",
    default=serving_settings.BatchingSettings.timeout_s * 1000,
    show_default=True,
    type=click.FloatRange(0, 10000),
    help="Longest wait for a batch to fill.",
)
@click.option(
    "--batch-threads",
    default=serving_settings.BatchingSettings.threads,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Batches run at once.",
)
@click.option(
    "--model-name", default=serving_settings.MODEL_NAME, show_default=True, help="The name in /v1/models/NAME."
)
def serve(
    output_dir: str | None,
    host: str,
    port: int,
    policy: str,
    poll_seconds: float,
    max_batch_size: int,
    batch_timeout_ms: float,
    batch_threads: int,
    model_name: str,
) -> None:
    """Serve the pushed model with TensorFlow Serving's REST API, and a web page at /."""
    from flowers.runs import server

    settings = serving_settings.ServeSettings(
        serving_dir=output_config(output_dir).serving_dir,  # OUTPUT_DIR/serving/<version>/, where the Pusher writes
        policy=serving_settings.VersionPolicy.parse(policy),
        batching=serving_settings.BatchingSettings(max_batch_size, batch_timeout_ms / 1000, batch_threads),
        poll_seconds=poll_seconds,
        model_name=model_name,
    )
    server.serve(settings, host, port)


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
    fn = click.option(
        "--shards",
        default=DEFAULT_SHARDS,
        show_default=True,
        type=click.IntRange(1, 10000),
        help="Number of TFRecord shards.",
    )(fn)
    return click.option(
        "--image-size",
        default=DataConfig.image_size,
        show_default=True,
        type=click.IntRange(*bounds(DataConfig, "image_size")),
        help="Side of the square crop, in pixels.",
    )(fn)


@data.command()
@click.argument("photos_dir", type=click.Path(file_okay=False))
@click.argument("data_root", type=click.Path(file_okay=False))
@shard_options
def convert(photos_dir: str, data_root: str, image_size: int, shards: int) -> None:
    """Start DATA_ROOT: PHOTOS_DIR/<class>/*.jpg become labs-format TFRecord
    shards in DATA_ROOT/span-1. An existing, non-empty DATA_ROOT is refused:
    add new photos with `data add-span`. Exits 1 if any file was skipped
    (the rest are written)."""
    from flowers.data import convert as converter

    _report(converter.convert(photos_dir, data_root, image_size=image_size, num_shards=shards))


@data.command("add-span")
@click.argument("photos_dir", type=click.Path(file_okay=False))
@click.argument("data_root", type=click.Path(file_okay=False))
@shard_options
def add_span(photos_dir: str, data_root: str, image_size: int, shards: int) -> None:
    """Convert new photos into DATA_ROOT/span-N+1, the span the next run
    ingests (the run trains on the latest span_window spans, default all)."""
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
    quiet_libraries()
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
