"""`flowers kubeflow ...`: compile the pipeline for Kubeflow Pipelines, submit
a run, schedule retraining, list runs. The pipeline options are the ones of
`flowers run`; what differs is where things live (URIs, an image)."""
from __future__ import annotations

import functools
import os
import shlex
from typing import Sequence

import click

from flowers.kubeflow.client import DEFAULT_EXPERIMENT, KubeflowError  # light: kfp loads on use
from flowers.pipeline.options import build_config, config_options


@click.group()
def kubeflow() -> None:
    """Kubeflow Pipelines: compile (KFP v2 spec), submit, schedule, runs."""

DEFAULT_PACKAGE = "outputs/kubeflow/flowers.yaml"


def pipeline_options(fn):
    """The pipeline's configuration, as for `flowers run`, plus the image and
    the Beam arguments the data components run with."""
    options = [
        click.option("--image", help="Container image built from kubeflow/Dockerfile (default: the image setting)."),
        click.option(
            "--beam-arg",
            "beam_args",
            multiple=True,
            metavar="ARG",
            help="A Beam pipeline argument, passed through unchanged; repeat it, e.g. "
            "--beam-arg=--runner=DataflowRunner --beam-arg=--project=P --beam-arg=--region=R. "
            "Replaces the default (DirectRunner, multi-processing, inside each pod).",
        ),
        click.option(
            "--package",
            default=DEFAULT_PACKAGE,
            show_default=True,
            type=click.Path(dir_okay=False),
            help="Where the compiled spec is written: .yaml is the KFP package, .json the Vertex AI PipelineJob.",
        ),
    ]
    fn = config_options(fn)
    for option in reversed(options):
        fn = option(fn)
    return fn


def connection_options(fn):
    options = [
        click.option(
            "--host",
            envvar="KF_PIPELINES_ENDPOINT",
            help="KFP API endpoint, e.g. http://localhost:8080 after `kubectl port-forward`, or the "
            "Kubeflow / AI Platform Pipelines URL [env KF_PIPELINES_ENDPOINT; else the kube config].",
        ),
        click.option("--namespace", help="Kubernetes namespace of a multi-user Kubeflow."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


SETTINGS_ENV = "FLOWERS_SETTINGS"


def config_from_env():
    """The config of a pipeline file run by the `tfx` CLI, which passes no
    arguments: $FLOWERS_SETTINGS holds `--set` style KEY=VALUE items, shell-quoted."""
    return build_config(settings=shlex.split(os.environ.get(SETTINGS_ENV, "")))


def _config(image, beam_args, **options):
    config = build_config(**options)
    if image:
        config = config.override({"image": image})
    if beam_args:
        config = config.override({"beam_args": tuple(beam_args)})
    return config


def _compile(package: str, image, beam_args, **options):
    from flowers.kubeflow import runner

    config = _config(image, beam_args, **options)
    runner.compile_pipeline(config, package)
    return config, runner.runtime_values(config)


def _parameters(values: dict, params: Sequence[str]) -> dict:
    values = dict(values)
    for item in params:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        if name not in values:
            raise click.BadParameter(f"unknown runtime parameter {name!r}; known: {', '.join(sorted(values))}", param_hint="--param")
        values[name] = value
    return values


def _kubeflow_errors(fn):
    """kfp's refusals as one clean message."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KubeflowError as e:
            raise click.ClickException(str(e)) from e

    return wrapper


@kubeflow.command("compile")
@pipeline_options
def compile_command(package: str, image, beam_args, **options) -> None:
    """Compile the pipeline into a KFP v2 pipeline spec (KubeflowV2DagRunner)."""
    config, values = _compile(package, image, beam_args, **options)
    click.echo(f"wrote {package} (pipeline {config.pipeline_name}, image {config.image})")
    click.echo(f"pipeline root: {config.pipeline_root}")
    click.echo(f"runtime parameters: {', '.join(values)}")


@kubeflow.command()
@pipeline_options
@connection_options
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True)
@click.option("--run-name", help="Display name of the run (default: package name and time).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Set a runtime parameter of this run directly.")
@_kubeflow_errors
def submit(package, image, beam_args, host, namespace, experiment, run_name, params, **options) -> None:
    """Compile, then start one run on Kubeflow Pipelines."""
    from flowers.kubeflow import client as kfp_client

    config, values = _compile(package, image, beam_args, **options)
    values = _parameters(values, params)
    client = kfp_client.connect(host, namespace)
    run = kfp_client.submit(client, package, values, config.pipeline_root, experiment, run_name, namespace)
    click.echo(f"run {run.run_id} submitted ({run.display_name})")


@kubeflow.command()
@pipeline_options
@connection_options
@click.option("--cron", required=True, help="6 fields, seconds first: '0 0 3 * * *' is every day at 03:00.")
@click.option("--name", help="Display name of the recurring run (default: PIPELINE retraining).")
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True)
@click.option("--max-concurrency", default=1, show_default=True, help="Runs of this schedule allowed at once.")
@click.option("--catchup/--no-catchup", default=False, show_default=True, help="Backfill the runs missed while paused.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Set a runtime parameter of every run directly.")
@_kubeflow_errors
def schedule(package, image, beam_args, host, namespace, cron, name, experiment, max_concurrency, catchup, params, **options) -> None:
    """Compile, then create a recurring run (scheduled retraining)."""
    from flowers.kubeflow import client as kfp_client

    kfp_client.check_cron(cron)
    config, values = _compile(package, image, beam_args, **options)
    values = _parameters(values, params)
    client = kfp_client.connect(host, namespace)
    job = kfp_client.schedule(
        client,
        package,
        values,
        config.pipeline_root,
        cron,
        name or f"{config.pipeline_name} retraining",
        experiment,
        max_concurrency,
        catchup,
        namespace,
    )
    click.echo(f"recurring run {job.recurring_run_id} created ({job.display_name}, cron '{cron}')")


@kubeflow.command()
@connection_options
@click.option("--experiment", help="Only the runs of this experiment.")
@click.option("--limit", default=10, show_default=True)
@_kubeflow_errors
def runs(host, namespace, experiment, limit) -> None:
    """The most recent runs, newest first."""
    from flowers.kubeflow import client as kfp_client

    client = kfp_client.connect(host, namespace)
    found = kfp_client.recent_runs(client, limit, experiment, namespace)
    if not found:
        click.echo("no runs")
    for run in found:
        created = run.created_at.isoformat(timespec="seconds") if run.created_at else "-"
        click.echo(f"{run.run_id}  {run.state or '-':<10}  {created}  {run.display_name}")
