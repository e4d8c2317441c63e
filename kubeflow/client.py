"""Submit and schedule compiled pipelines with the kfp 2.x client.

Authentication is kfp's own: the endpoint comes from the `host` argument or
$KF_PIPELINES_ENDPOINT (else the kube config / in-cluster service account),
and credentials from what kfp already finds (IAP client id in
$KF_PIPELINES_IAP_OAUTH2_CLIENT_ID, the session cookie in
~/.config/kfp/context.json, Google credentials for *.googleusercontent.com
hosts, the pod's service-account token). Nothing here takes or writes a secret.
"""
from __future__ import annotations

import datetime
import os
from typing import Mapping

DEFAULT_EXPERIMENT = "flowers"


class KubeflowError(RuntimeError):
    """The endpoint refused or could not be reached; the message says which."""


def connect(host: str | None = None, namespace: str | None = None):
    import warnings

    import kfp

    with warnings.catch_warnings():
        # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later".
        warnings.simplefilter("ignore", FutureWarning)
        with _errors(host):
            return kfp.Client(host=host, namespace=namespace or "kubeflow")


def check_cron(cron: str) -> str:
    """KFP takes 6-field cron expressions, seconds first ('0 0 3 * * *' is 03:00 daily)."""
    fields = cron.split()
    if len(fields) != 6:
        raise ValueError(
            f"cron {cron!r} has {len(fields)} field(s); Kubeflow Pipelines wants 6, seconds first, "
            "e.g. '0 0 3 * * *' for 03:00 every day or '0 0 3 * * 1' for Mondays"
        )
    return " ".join(fields)


def submit(
    client,
    package_path: str,
    parameters: Mapping[str, str],
    pipeline_root: str,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    namespace: str | None = None,
):
    """One run of the compiled package, with these parameter values."""
    with _errors(_host(client)):
        experiment_id = client.create_experiment(name=experiment, namespace=namespace).experiment_id
        return client.run_pipeline(
            experiment_id=experiment_id,
            job_name=run_name or _default_name(package_path),
            pipeline_package_path=package_path,
            params=dict(parameters),
            pipeline_root=pipeline_root,
        )


def schedule(
    client,
    package_path: str,
    parameters: Mapping[str, str],
    pipeline_root: str,
    cron: str,
    name: str,
    experiment: str = DEFAULT_EXPERIMENT,
    max_concurrency: int = 1,
    catchup: bool = False,
    namespace: str | None = None,
):
    """A recurring run of the compiled package on a cron schedule."""
    cron = check_cron(cron)
    with _errors(_host(client)):
        experiment_id = client.create_experiment(name=experiment, namespace=namespace).experiment_id
        return client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=name,
            cron_expression=cron,
            max_concurrency=max_concurrency,
            no_catchup=not catchup,
            params=dict(parameters),
            pipeline_package_path=package_path,
            pipeline_root=pipeline_root,
        )


def recent_runs(client, limit: int = 10, experiment: str | None = None, namespace: str | None = None) -> list:
    """The newest runs first (of one experiment when named)."""
    with _errors(_host(client)):
        experiment_id = None
        if experiment:
            experiment_id = client.get_experiment(experiment_name=experiment, namespace=namespace).experiment_id
        response = client.list_runs(
            page_size=limit, sort_by="created_at desc", experiment_id=experiment_id, namespace=namespace
        )
    return list(response.runs or [])


def _default_name(package_path: str) -> str:
    stem = os.path.splitext(os.path.basename(package_path))[0]
    return f"{stem} {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def _host(client) -> str | None:
    config = getattr(client, "_existing_config", None)  # the kfp_server_api Configuration in use
    return getattr(config, "host", None)


class _errors:
    """Turn the client's transport and API errors into one KubeflowError."""

    def __init__(self, host: str | None):
        self.host = host or "the configured endpoint"

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None:
            return False
        import kfp_server_api
        import urllib3

        if isinstance(error, kfp_server_api.ApiException):
            body = error.body.decode() if isinstance(error.body, bytes) else error.body
            raise KubeflowError(
                f"Kubeflow Pipelines at {self.host} answered {error.status} {error.reason}: {(body or '').strip()[:2000]}"
            ) from error
        if isinstance(error, (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError)):
            raise KubeflowError(f"cannot reach Kubeflow Pipelines at {self.host}: {error}") from error
        return False
