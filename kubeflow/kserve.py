"""A KServe InferenceService for the pushed model (`flowers kubeflow kserve`).

KServe's TensorFlow predictor runs TensorFlow Serving on `storageUri`, the
folder holding the numbered versions the Pusher writes (`serving/`), so the
REST API is the one `flowers serve` speaks and clients need no change.
The manifest is checked offline against KServe's CRD schema
(tests/kubeflow/test_kserve.py); it has not been applied to a real cluster.
"""

from __future__ import annotations

import re

import yaml

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
# Kubernetes names (RFC 1123 label); KServe adds suffixes, hence the shorter limit it documents.
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,43}[a-z0-9])?$")


def inference_service(
    name: str,
    storage_uri: str,
    namespace: str = "",
    service_account: str = "",
    runtime_version: str = "",
    cpu: str = "1",
    memory: str = "2Gi",
) -> dict:
    """The InferenceService (v1beta1, TensorFlow predictor) as a dict."""
    if not _NAME.match(name):
        raise ValueError(
            f"InferenceService name {name!r}: lowercase letters, digits and '-', "
            "starting with a letter, at most 45 characters"
        )
    if not storage_uri:
        raise ValueError("storage URI is empty: pass the Pusher's destination (OUTPUT_DIR/serving)")
    metadata: dict = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    tensorflow: dict = {
        "storageUri": storage_uri.rstrip("/"),
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}},
    }
    if runtime_version:
        tensorflow["runtimeVersion"] = runtime_version
    predictor: dict = {"tensorflow": tensorflow}
    if service_account:
        predictor["serviceAccountName"] = service_account
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": {"predictor": predictor}}


def to_yaml(manifest: dict) -> str:
    return yaml.safe_dump(manifest, sort_keys=False)
