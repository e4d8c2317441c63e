"""Submit and schedule compiled pipelines with the kfp 2.x client.

Authentication is kfp's own: the endpoint comes from the `host` argument or
$KF_PIPELINES_ENDPOINT (else the kube config / in-cluster service account),
and credentials from what kfp already finds (IAP client id in
$KF_PIPELINES_IAP_OAUTH2_CLIENT_ID, the session cookie in
~/.config/kfp/context.json, Google credentials for *.googleusercontent.com
hosts, the pod's service-account token). Nothing here takes or writes a secret.

Offline, the libraries retry for a long time: kfp polls the health endpoint
5 times, 5 s apart, TensorFlow's GCS file system asks the GCE metadata
server for a token and then retries the request itself (over a minute with
no credentials). `check_host` and `check_readable` ask once, with a short
timeout, before any of that starts.
"""

from __future__ import annotations

import datetime
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Mapping

DEFAULT_EXPERIMENT = "flowers"
HEALTHZ = "/apis/v2beta1/healthz"
TIMEOUT_S = 5.0
GCS_ENDPOINT = ("storage.googleapis.com", 443)
PROBE_AGENT = "flowers-reachability-check"


class KubeflowError(RuntimeError):
    """The endpoint refused or could not be reached; the message says which."""


def connect(host: str | None = None, namespace: str | None = None, check: bool = True):
    """A kfp client for `host` (None: $KF_PIPELINES_ENDPOINT, else the kube
    config); `check` first asks the endpoint once, with a short timeout."""
    import warnings

    import kfp

    if check:
        check_host(host or os.environ.get("KF_PIPELINES_ENDPOINT"))
    with warnings.catch_warnings():
        # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later".
        warnings.simplefilter("ignore", FutureWarning)
        with _errors(host):
            return kfp.Client(host=host, namespace=namespace or "kubeflow")


def check_host(host: str | None, timeout: float = TIMEOUT_S) -> None:
    """Fail in seconds unless `host` answers HTTP on the KFP health endpoint.

    Any answer from a server counts (an auth proxy's 302/401/403 too: kfp's
    own credentials decide what comes next), except 404 and 5xx, which kfp
    would retry for some 25 s before giving up. No host is left to kfp (the
    kube config, or the in-cluster service) unless there is neither. An
    `*.googleusercontent.com` host needs Google credentials; with none
    configured this says so at once."""
    if not host:
        kube_configs = os.environ.get("KUBECONFIG") or os.path.join(os.path.expanduser("~"), ".kube", "config")
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        if not in_cluster and not any(os.path.isfile(p) for p in kube_configs.split(os.pathsep) if p):
            raise KubeflowError(
                "no Kubeflow Pipelines endpoint: pass --host (or set KF_PIPELINES_ENDPOINT); "
                "there is no kube config and this is not a pod in a cluster"
            )
        return
    url = (host if host.startswith(("http://", "https://")) else f"https://{host}").rstrip("/")
    if re.match(r"https?://\S+\.googleusercontent\.com$", url) and not google_credentials():
        raise KubeflowError(
            f"{host} is reached with Google credentials, and none are configured "
            "(GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, or a GCE/GKE metadata server)"
        )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    try:
        # Unauthenticated on purpose: it asks whether a server answers, and
        # sends no credential anywhere.
        probe = urllib.request.Request(url + HEALTHZ, headers={"User-Agent": PROBE_AGENT})
        with opener.open(probe, timeout=timeout):
            return
    except urllib.error.HTTPError as e:
        if e.code == 404 or e.code >= 500:
            raise KubeflowError(
                f"Kubeflow Pipelines at {host} answered {e.code} {e.reason} on {HEALTHZ}: "
                "not a reachable KFP 2.x API endpoint"
            ) from None
    except urllib.error.URLError as e:
        if "SSL" in type(e.reason).__name__ or "CERTIFICATE" in str(e.reason):
            return  # a TLS server answered; kfp's own TLS settings decide
        raise KubeflowError(f"cannot reach Kubeflow Pipelines at {host}: {e.reason}") from None
    except OSError as e:  # timeouts, resets
        raise KubeflowError(f"cannot reach Kubeflow Pipelines at {host} within {timeout:.0f} s: {e}") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect (e.g. to a login page) is an answer


def google_credentials() -> list[str]:
    """Where Google's client libraries (and TensorFlow's GCS file system)
    would find credentials here: the files they read, or the GCE/GKE metadata
    server when it answers within a second. Empty when there are none."""
    found = []
    env_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if env_file and os.path.isfile(env_file):
        found.append(env_file)
    config_dir = os.environ.get("CLOUDSDK_CONFIG") or os.path.join(os.path.expanduser("~"), ".config", "gcloud")
    well_known = os.path.join(config_dir, "application_default_credentials.json")
    if os.path.isfile(well_known):
        found.append(well_known)
    if not found:
        metadata = (
            os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_IP") or "metadata.google.internal"
        )
        name, _, port = metadata.partition(":")
        if _answers(name, int(port or 80), 1.0):
            found.append(f"metadata server {metadata}")
    return found


def check_readable(uri: str, timeout: float = TIMEOUT_S) -> None:
    """Fail in seconds when a gs:// URI cannot be read from here: no Google
    credentials configured, or Cloud Storage unreachable. Local paths and
    other schemes are left to the file system."""
    if not uri.startswith("gs://"):
        return
    if not google_credentials():
        raise KubeflowError(
            f"cannot read {uri}: no Google credentials are configured here (GOOGLE_APPLICATION_CREDENTIALS, "
            "`gcloud auth application-default login`, or a GCE/GKE metadata server); the data layout is read "
            "at compile time"
        )
    if not _answers(*GCS_ENDPOINT, timeout):
        raise KubeflowError(f"cannot read {uri}: {GCS_ENDPOINT[0]} does not answer within {timeout:.0f} s")


def _answers(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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
                f"Kubeflow Pipelines at {self.host} answered {error.status} {error.reason}: "
                f"{(body or '').strip()[:2000]}"
            ) from error
        if isinstance(error, (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError)):
            raise KubeflowError(f"cannot reach Kubeflow Pipelines at {self.host}: {error}") from error
        return False
