"""`flowers kubeflow ...`: compile the pipeline for Kubeflow Pipelines,
preflight the compiled spec here, submit a run, schedule retraining, list
runs. The pipeline options are the ones of `flowers run`; what differs is
where things live (URIs, an image).

Submit and schedule check their input and ask the endpoint once (a few
seconds at most) before compiling, so a typo or an unreachable host fails
before TensorFlow loads."""

from __future__ import annotations

import functools
import os
import shlex
import sys
from typing import Sequence

import click

from flowers.cli.options import build_config, config_options
from flowers.kubeflow.client import DEFAULT_EXPERIMENT, KubeflowError  # light: kfp loads on use


@click.group()
def kubeflow() -> None:
    """Kubeflow Pipelines: compile (KFP v2 spec), preflight, submit, schedule, runs."""


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
        config = config.override({"kubeflow.image": image})
    if beam_args:
        config = config.override({"run.beam_args": tuple(beam_args)})
    return config


def _compile(package: str, image, beam_args, backend=None, **options):
    from flowers.kubeflow import runner

    config = _config(image, beam_args, **options)
    runner.compile_pipeline(config, package, backend)
    return config, runner.runtime_values(config)


def _parameters(values: dict, params: Sequence[str]) -> dict:
    values = dict(values)
    for name, value in _check_parameters(params).items():
        values[name] = value
    return values


def _check_parameters(params: Sequence[str]) -> dict:
    """NAME=VALUE items of the runtime parameters, checked before anything is compiled."""
    from flowers.kubeflow.runner import PARAMETERS  # light: no TFX at import

    found = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        if name not in PARAMETERS:
            raise click.BadParameter(
                f"unknown runtime parameter {name!r}; known: {', '.join(sorted(PARAMETERS))}", param_hint="--param"
            )
        found[name] = value
    return found


def _kubeflow_errors(fn):
    """kfp's refusals as one clean message."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KubeflowError as e:
            raise click.ClickException(str(e)) from e

    return wrapper


BACKEND_HELP = (
    "kfp: open-source Kubeflow Pipelines 2.x; vertex: Vertex AI Pipelines "
    "[default: vertex for a .json package, else kfp]."
)


@kubeflow.command("compile")
@pipeline_options
@click.option("--backend", type=click.Choice(["kfp", "vertex"]), help="The backend the spec is for. " + BACKEND_HELP)
@_kubeflow_errors
def compile_command(package: str, image, beam_args, backend, **options) -> None:
    """Compile the pipeline into a KFP v2 pipeline spec (KubeflowV2DagRunner)."""
    config, values = _compile(package, image, beam_args, backend, **options)
    click.echo(f"wrote {package} (pipeline {config.pipeline_name}, image {config.kubeflow.image})")
    click.echo(f"pipeline root: {config.pipeline_root}")
    click.echo(f"runtime parameters: {', '.join(values)}")


@kubeflow.command()
@click.argument("package", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="Set a runtime parameter of this run, as for submit."
)
@click.option(
    "--pipeline-root",
    type=click.Path(file_okay=False),
    help="Local folder for the runs' artifacts [default: preflight/ beside the package, or a .json "
    "PipelineJob's output directory when local]. Resolver tasks look here for earlier blessed models.",
)
@click.option(
    "--path-map",
    "path_maps",
    multiple=True,
    metavar="IMAGE_PATH=LOCAL_PATH",
    help="Read a path the image holds from here instead (repeatable; /flowers/data is this checkout's data/).",
)
@click.option(
    "--backend",
    type=click.Choice(["kfp", "vertex"]),
    default="kfp",
    show_default=True,
    help="Hand each task what this backend hands its pod: kfp, open-source Kubeflow Pipelines (no lifecycle "
    "hook, untyped inputs from ML Metadata, its log output, its cache); vertex, Vertex AI Pipelines.",
)
@click.option(
    "--kfp-version",
    type=click.Choice(["2.0", "2.5"]),
    default="2.5",
    show_default=True,
    help="With --backend kfp: 2.0 for KFP 2.0-2.4 (Kubeflow 1.8), 2.5 for 2.5 and later (adds its log output).",
)
@click.option("--verbose", is_flag=True, help="Stream every task's output (always kept in the task's log).")
@click.option(
    "--fresh-processes",
    is_flag=True,
    help="Start each task as a process of its own, as each is a pod on a cluster (slower: every task "
    "imports TensorFlow and TFX again). By default tasks are forks of a process that imported them once.",
)
def preflight(package, params, pipeline_root, path_maps, backend, kfp_version, verbose, fresh_processes) -> None:
    """Run a compiled spec (.yaml or .json) here, task by task, handing each
    task what the backend's launcher hands its pod: a check before `submit`,
    not an orchestrator."""
    from flowers.kubeflow import preflight as pf

    mapping = {}
    for item in path_maps:
        image_path, sep, local = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not IMAGE_PATH=LOCAL_PATH", param_hint="--path-map")
        mapping[image_path] = local
    result = pf.run(
        package,
        pipeline_root,
        params,
        mapping,
        echo=click.echo,
        verbose=verbose,
        backend=backend,
        kfp_version=kfp_version,
        fresh_processes=fresh_processes,
    )
    if result.failed_task:
        failed = result.tasks[-1]
        click.echo(f"task {result.failed_task} failed; the end of {failed.log}:", err=True)
        for line in pf.tail(failed.log):
            click.echo(f"  {line}", err=True)
        click.echo(
            f"preflight failed at task {result.failed_task}" + (" (data refused)" if result.data_refused else "")
        )
    else:
        click.echo(f"blessed:    {'n/a' if result.blessed is None else ('yes' if result.blessed else 'no')}")
        for failure in result.gate_failures:
            click.echo(f"  gate failed:  {failure}")
        click.echo(f"pushed to:  {result.pushed_to or 'not pushed (model not blessed)'}")
    sys.exit(result.exit_code)


@kubeflow.command()
@pipeline_options
@connection_options
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True)
@click.option("--run-name", help="Display name of the run (default: package name and time).")
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="Set a runtime parameter of this run directly."
)
@_kubeflow_errors
def submit(package, image, beam_args, host, namespace, experiment, run_name, params, **options) -> None:
    """Compile, then start one run on Kubeflow Pipelines."""
    from flowers.kubeflow import client as kfp_client

    _check_parameters(params)
    kfp_client.check_host(host)
    config, values = _compile(package, image, beam_args, **options)
    values = _parameters(values, params)
    client = kfp_client.connect(host, namespace, check=False)
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
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="Set a runtime parameter of every run directly."
)
@_kubeflow_errors
def schedule(
    package, image, beam_args, host, namespace, cron, name, experiment, max_concurrency, catchup, params, **options
) -> None:
    """Compile, then create a recurring run (scheduled retraining)."""
    from flowers.kubeflow import client as kfp_client

    kfp_client.check_cron(cron)
    _check_parameters(params)
    kfp_client.check_host(host)
    config, values = _compile(package, image, beam_args, **options)
    values = _parameters(values, params)
    client = kfp_client.connect(host, namespace, check=False)
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


@kubeflow.command()
@click.option(
    "--output-dir",
    required=True,
    help="The pipeline's output dir on Kubeflow (gs://...); the model is its serving/ folder.",
)
@click.option("--name", default="flowers", show_default=True, help="The InferenceService's name.")
@click.option("--namespace", help="Kubernetes namespace (default: kubectl's).")
@click.option("--service-account", help="A service account that can read --output-dir (e.g. with GCS credentials).")
@click.option("--runtime-version", help="TF Serving image tag (default: the cluster's serving runtime's).")
def kserve(
    output_dir: str, name: str, namespace: str | None, service_account: str | None, runtime_version: str | None
) -> None:
    """Print a KServe InferenceService (TensorFlow predictor) that serves the
    pushed versions with TF Serving's REST API, as `flowers serve` does
    locally. Apply it with `kubectl apply -f -`."""
    from flowers.config import PipelineConfig
    from flowers.kubeflow import kserve as kserve_lib

    manifest = kserve_lib.inference_service(
        name,
        PipelineConfig(output_dir=output_dir).serving_dir,
        namespace or "",
        service_account or "",
        runtime_version or "",
    )
    click.echo(kserve_lib.to_yaml(manifest), nl=False)
