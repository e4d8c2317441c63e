"""What open-source Kubeflow Pipelines 2.x does to a task's inputs and
outputs, reproduced from its source (kubeflow/pipelines, backend/src/v2/;
each rule names its file and function), and the resolver filter clauses TFX
writes for Vertex AI. `flowers.kubeflow.preflight` applies them task by task."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Callable

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from flowers.kubeflow.package import PreflightError

KFP_VERSIONS = ("2.0", "2.5")  # 2.0-2.4 and 2.5+ hand tasks different outputs
KFP_LOG_OUTPUT = "executor-logs"  # driver/driver.go `provisionOutputs`, 2.5+
KFP_LOG_TYPE = "system.Artifact"
# launcher_v2.go `OutputMetadataFilepath` (2.0.3, 2.5.0): a path in the pod's
# own file system, here under each task's `pod/` folder.
KFP_OUTPUT_FILE = "tmp/kfp_outputs/output_metadata.json"
KFP_OUTPUT_PARAMETERS = "tmp/kfp/outputs"  # driver.go `provisionOutputs`


def mlmd_round_trip(metadata: dict) -> dict:
    """Artifact metadata as the next task reads it after ML Metadata: stored
    by converter.go `StructValueToMLMDValue` (bool -> int, list -> struct
    {"list": ...}, struct -> struct {"struct": ...}, null refused) and read
    back by `toRuntimeArtifact` (int and double -> number)."""
    stored = {}
    for key, value in metadata.items():
        if isinstance(value, bool):
            stored[key] = float(value)
        elif isinstance(value, (int, float, str)):
            stored[key] = float(value) if not isinstance(value, str) else value
        elif isinstance(value, list):
            stored[key] = {"list": value}
        elif isinstance(value, dict):
            stored[key] = {"struct": value}
        else:
            raise ValueError(f"metadata {key!r}: unknown/unsupported value type {type(value).__name__}")
    return stored


def cache_key(executor_input: pb.ExecutorInput, component: pb.ComponentSpec, container) -> str:
    """The fields cacheutils/cache.go `GenerateCacheKey` puts in a task's key
    (driver.go `getFingerPrint` passes command + args and the image): input
    artifact names, input parameter values, output artifact name, type and
    metadata (the URI wiped), output parameter types, image, command and
    args. Nothing the data root holds is in it. (Hashed here as sorted JSON;
    the backend hashes the proto: the same fields, another digest.)"""
    outputs = {}
    for key, artifacts in executor_input.outputs.artifacts.items():
        if artifacts.artifacts:
            wiped = pb.RuntimeArtifact()
            wiped.CopyFrom(artifacts.artifacts[0])
            wiped.ClearField("uri")
            outputs[key] = json_format.MessageToDict(wiped)
    key = {
        "inputArtifactNames": {k: [a.name for a in v.artifacts] for k, v in executor_input.inputs.artifacts.items()},
        "inputParameterValues": {
            k: json_format.MessageToDict(v) for k, v in executor_input.inputs.parameter_values.items()
        },
        "outputArtifactsSpec": outputs,
        "outputParametersSpec": {
            k: pb.ParameterType.ParameterTypeEnum.Name(v.parameter_type)
            for k, v in component.output_definitions.parameters.items()
        },
        "containerSpec": {"image": container.image, "cmdArgs": list(container.command) + list(container.args)},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def type_title(artifact_type: pb.ArtifactTypeSchema) -> str:
    if artifact_type.schema_title:
        return artifact_type.schema_title
    return (yaml.safe_load(artifact_type.instance_schema) or {}).get("title", "")


def matches(artifact: pb.RuntimeArtifact, clause: str) -> bool:
    """One clause of a resolver's artifact filter: the forms TFX writes
    (schema_title="...", state=LIVE, name="...", metadata.KEY.number_value=N)."""
    key, sep, value = clause.partition("=")
    if not sep:
        raise PreflightError(f"resolver filter clause {clause!r} is not KEY=VALUE")
    key, value = key.strip(), value.strip().strip('"')
    if key == "schema_title":
        return type_title(artifact.type) == value
    if key == "state":
        return value == "LIVE"  # every recorded artifact is live
    if key == "name":
        return artifact.name == value
    field = re.fullmatch(r"metadata\.(\w+)\.(number_value|string_value|bool_value)", key)
    if field:
        if field[1] not in artifact.metadata:
            return False
        actual = artifact.metadata[field[1]]
        if field[2] == "number_value":
            return isinstance(actual, (int, float)) and float(actual) == float(value)
        if field[2] == "bool_value":
            return actual is (value.lower() == "true")
        return actual == value
    raise PreflightError(f"resolver filter clause {clause!r} is not one preflight can answer")


def recorded_outputs(
    executor_input: pb.ExecutorInput, output: pb.ExecutorOutput, kfp_version: str, next_id: Callable[[], int]
) -> dict[str, pb.ArtifactList]:
    """What the launcher records in ML Metadata and the next driver reads
    back (launcher_v2.go `uploadOutputArtifacts`, `mergeRuntimeArtifacts`;
    metadata/client.go `RecordArtifact`; converter.go `toRuntimeArtifact`),
    each artifact named by the id `next_id` gives it. The type is kept for
    preflight's own reading; inputs drop it."""
    produced = {}
    for key, planned in executor_input.outputs.artifacts.items():
        if not planned.artifacts:
            continue
        artifact = pb.RuntimeArtifact()
        artifact.CopyFrom(planned.artifacts[0])
        if output.artifacts[key].artifacts:
            source = output.artifacts[key].artifacts[0]
            if source.uri:
                artifact.uri = source.uri
            for field, value in source.metadata.items():
                artifact.metadata[field] = value
        try:
            metadata = mlmd_round_trip(json_format.MessageToDict(artifact.metadata))
        except ValueError as e:
            raise PreflightError(f'unable to produce MLMD artifact for output "{key}": {e}') from None
        metadata.setdefault("display_name", key)
        if kfp_version != "2.0":
            metadata.setdefault("store_session_info", json.dumps({"Provider": "local", "Params": {}}))
        artifact.ClearField("metadata")
        artifact.metadata.update(metadata)
        artifact.name = str(next_id())
        produced[key] = pb.ArtifactList(artifacts=[artifact])
    return produced
