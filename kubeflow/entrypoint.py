"""The container command of every task of the compiled spec:
`python -m flowers.kubeflow.entrypoint` + TFX's own arguments.

It repairs what the open-source Kubeflow Pipelines backend hands a task, then
runs TFX's own executor runner (`kubeflow_v2_run_executor`). Vertex AI hands
tasks what TFX expects; for it nothing is changed (the runner gets the very
ExecutorInput text the backend wrote). The repairs, each tied to the backend
code that makes it necessary (kubeflow/pipelines, backend/src/v2/):

* input artifacts with an empty type schema get the type from the task's own
  input spec (`--json_serialized_inputs_spec_args`, which TFX compiles into
  every task's args). metadata/client.go `GetOutputArtifactsByExecutionId`
  records `Schema: ""` and `OutputArtifact.ToRuntimeArtifact` copies it into
  the input (2.0.3, 2.5.0 and main); TFX's `_retrieve_class_path` then fails
  on `yaml.safe_load("")` (TFX issue 7768);
* the `executor-logs` output (`system.Artifact`) that driver/driver.go
  `provisionOutputs` adds to every task from 2.5 on (publish_logs defaults to
  true) is kept from TFX, which cannot import a class for `system.Artifact`;
  the launcher writes that log itself (launcher_v2.go `getLogWriter`);
* ExampleGen's driver (span, version, input fingerprint; TFX's own
  `file_based_example_gen.driver`) runs here when no `preCacheCheck` hook ran:
  nothing in the open-source backend reads the lifecycle hook;
* after the executor, the zero-byte "directory marker" objects (`.../dir/`)
  that TensorFlow's GCS file system writes for every `makedirs` are removed
  from the task's gs:// outputs: the launcher of the next task downloads each
  input artifact object by object (component/launcher_v2.go
  `downloadArtifacts`, objectstore/object_store.go `DownloadBlob`), makes a
  file of the marker `dir/` and then cannot write `dir/x` (KFP issue 13476).
  TensorFlow and Beam find gs:// directories by prefix, without markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Sequence

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

# driver/driver.go `provisionOutputs` (KFP 2.5+): the launcher's own log output.
KFP_LOG_OUTPUT = "executor-logs"
KFP_OWN_TYPE_PREFIX = "system."  # KFP's artifact types; TFX's are `tfx.*`
EXAMPLES = "examples"  # standard_component_specs.EXAMPLES_KEY
FINGERPRINT = "input_fingerprint"  # example_gen utils.FINGERPRINT_PROPERTY_NAME
INPUT_BASE = "input_base"  # standard_component_specs.INPUT_BASE_KEY


class EntrypointError(ValueError):
    """The task's input cannot be repaired (the message says which part)."""


@dataclasses.dataclass
class Repair:
    executor_input: pb.ExecutorInput
    typed_inputs: list[str]  # input keys given their type from the input spec
    dropped_outputs: list[str]  # backend outputs kept from TFX

    @property
    def changed(self) -> bool:
        return bool(self.typed_inputs or self.dropped_outputs)


def _untyped(artifact_type: pb.ArtifactTypeSchema) -> bool:
    kind = artifact_type.WhichOneof("kind")
    return kind is None or not getattr(artifact_type, kind).strip()


def repair(executor_input: pb.ExecutorInput, inputs_spec: pb.ComponentInputsSpec | None) -> Repair:
    """The ExecutorInput TFX's runner can read (a copy; the argument is untouched)."""
    fixed = pb.ExecutorInput()
    fixed.CopyFrom(executor_input)
    typed, dropped = [], []
    for key, artifacts in fixed.inputs.artifacts.items():
        for artifact in artifacts.artifacts:
            if not _untyped(artifact.type):
                continue
            if inputs_spec is None or key not in inputs_spec.artifacts:
                raise EntrypointError(
                    f"input artifact {key!r} reached the task without a type, and the task's input spec "
                    "(--json_serialized_inputs_spec_args) does not declare it: recompile with "
                    "`flowers kubeflow compile` (schema 2.1)"
                )
            artifact.type.CopyFrom(inputs_spec.artifacts[key].artifact_type)
            if key not in typed:
                typed.append(key)
    for key in list(fixed.outputs.artifacts):
        types = [a.type for a in fixed.outputs.artifacts[key].artifacts]
        if key == KFP_LOG_OUTPUT and all(t.schema_title.startswith(KFP_OWN_TYPE_PREFIX) for t in types):
            del fixed.outputs.artifacts[key]
            dropped.append(key)
    return Repair(fixed, typed, dropped)


def needs_example_gen_driver(executor_class_path: str, executor_input: pb.ExecutorInput) -> bool:
    """A file-based ExampleGen whose driver did not run: no hook output file
    (Vertex AI's `preCacheCheck` writes it before the executor) and no input
    fingerprint on the Examples output (Vertex AI copies the driver's
    metadata there)."""
    from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
    from tfx.utils import import_utils

    if INPUT_BASE not in executor_input.inputs.parameter_values or EXAMPLES not in executor_input.outputs.artifacts:
        return False
    if not issubclass(import_utils.import_class_by_path(executor_class_path), BaseExampleGenExecutor):
        return False
    if _exists(executor_input.outputs.output_file):
        return False
    return not any(FINGERPRINT in a.metadata for a in executor_input.outputs.artifacts[EXAMPLES].artifacts)


def _exists(path: str) -> bool:
    from tfx.dsl.io import fileio

    return bool(path) and fileio.exists(path)


def run_example_gen_driver(executor_input: pb.ExecutorInput, inputs_spec_json: str | None) -> pb.ExecutorInput:
    """TFX's own ExampleGen driver for Kubeflow V2, in this process; its
    ExecutorOutput (updated parameters, Examples metadata) is left in the
    output file, where TFX's runner reads the parameters, and the Examples
    metadata is merged into the planned output as a launcher merges an
    executor output (launcher_v2.go `mergeRuntimeArtifacts`)."""
    from tfx.dsl.io import fileio
    from tfx.orchestration.kubeflow.v2.file_based_example_gen import driver

    driver.main(
        argparse.Namespace(
            json_serialized_invocation_args=json_format.MessageToJson(executor_input),
            json_serialized_inputs_spec_args=inputs_spec_json,
        )
    )
    with fileio.open(executor_input.outputs.output_file, "rb") as f:
        hook = json_format.Parse(f.read(), pb.ExecutorOutput(), ignore_unknown_fields=True)
    merged = pb.ExecutorInput()
    merged.CopyFrom(executor_input)
    produced = hook.artifacts[EXAMPLES].artifacts
    if produced:
        merged.outputs.artifacts[EXAMPLES].artifacts[0].metadata.update(json_format.MessageToDict(produced[0].metadata))
    return merged


def remove_directory_markers(uris: Sequence[str], client=None) -> list[str]:
    """Delete the zero-byte `.../` objects under each gs:// URI (other
    schemes: nothing to do); the URIs of the objects removed."""
    stores = [uri for uri in uris if uri.startswith("gs://")]
    if not stores:
        return []
    if client is None:
        from google.cloud import storage

        client = storage.Client()
    removed = []
    for uri in stores:
        bucket, _, path = uri[len("gs://") :].partition("/")
        prefix = path.rstrip("/") + "/" if path.strip("/") else ""
        for blob in client.list_blobs(bucket, prefix=prefix):
            if blob.name.endswith("/") and not blob.size:
                blob.delete()
                removed.append(f"gs://{bucket}/{blob.name}")
    return removed


def main(argv: Sequence[str] | None = None) -> None:
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    args, beam_args = kubeflow_v2_run_executor._parse_flags(list(sys.argv if argv is None else argv))
    executor_input = json_format.Parse(
        args.json_serialized_invocation_args, pb.ExecutorInput(), ignore_unknown_fields=True
    )
    inputs_spec = None
    if getattr(args, "json_serialized_inputs_spec_args", None):
        inputs_spec = json_format.Parse(
            args.json_serialized_inputs_spec_args, pb.ComponentInputsSpec(), ignore_unknown_fields=True
        )
    fixed = repair(executor_input, inputs_spec)
    changed = fixed.changed
    current = fixed.executor_input
    if needs_example_gen_driver(args.executor_class_path, current):
        current = run_example_gen_driver(current, args.json_serialized_inputs_spec_args)
        changed = True
    if changed:
        print(
            f"flowers entrypoint: typed inputs {fixed.typed_inputs or '-'}, dropped outputs "
            f"{fixed.dropped_outputs or '-'}, ExampleGen driver run here: {current is not fixed.executor_input}",
            flush=True,
        )
        args.json_serialized_invocation_args = json_format.MessageToJson(current)
    kubeflow_v2_run_executor.main((args, beam_args))
    outputs = [a.uri for artifacts in current.outputs.artifacts.values() for a in artifacts.artifacts]
    removed = remove_directory_markers(outputs)
    if removed:
        print(f"flowers entrypoint: removed {len(removed)} zero-byte directory marker(s) from the outputs", flush=True)


if __name__ == "__main__":
    main()
