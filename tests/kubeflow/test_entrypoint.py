"""The container entrypoint repairs what open-source Kubeflow Pipelines hands a
task and changes nothing Vertex AI hands it. The ExecutorInputs are built by
preflight from the compiled spec, shaped as each backend shapes them (the
rules and their backend sources are in flowers.kubeflow.preflight)."""

from __future__ import annotations

import json
import os

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as tfx_entrypoint

from flowers.kubeflow import entrypoint, preflight
from flowers.kubeflow import package as package_lib


def task_input(kfp_package, backend: str, task: str, root, upstream: dict[str, dict[str, pb.ArtifactList]]):
    """(ExecutorInput, inputs spec JSON, executor class path) of one task as
    `backend` hands it to the pod, with `upstream` as the producers' outputs."""
    config, package = kfp_package
    loaded = package_lib.load(package)
    mapping = {**preflight.default_path_map(), config.output_dir: str(root / "out")}
    run = preflight.Preflight(loaded, str(root), mapping, echo=lambda _: None, verbose=False, backend=backend)
    for producer, outputs in upstream.items():
        run.outputs[producer] = outputs
    spec = loaded.spec.root.dag.tasks[task]
    component = loaded.spec.components[spec.component_ref.name]
    executor_input = run._executor_input(task, spec, component, str(root / task))
    args = list(loaded.deployment.executors[component.executor_label].container.args)
    inputs_spec = args[args.index("--json_serialized_inputs_spec_args") + 1]
    class_path = args[args.index("--executor_class_path") + 1]
    # Through JSON, as the launcher substitutes {{$}}.
    as_json = json.dumps(preflight.executor_input_utils.executor_input_to_dict(executor_input, component))
    return json_format.Parse(as_json, pb.ExecutorInput()), inputs_spec, class_path


def recorded_examples() -> dict[str, pb.ArtifactList]:
    """ImportExampleGen's output as the next task's producer record holds it."""
    artifact = pb.RuntimeArtifact(name="7", uri="/nowhere/examples")
    artifact.type.CopyFrom(pb.ArtifactTypeSchema(instance_schema="title: tfx.Examples\ntype: object\n"))
    artifact.metadata.update(
        {"split_names": '["train", "validation", "eval"]', "span": 0.0, "display_name": "examples"}
    )
    return {"ImportExampleGen": {"examples": pb.ArtifactList(artifacts=[artifact])}}


def test_kfp_input_types_come_from_the_task_input_spec(kfp_package, tmp_path):
    executor_input, inputs_spec, _ = task_input(kfp_package, "kfp", "StatisticsGen", tmp_path, recorded_examples())
    # As the backend hands it: TFX's own parser fails (TFX issue 7768, KFP's `Schema: ""`) ...
    assert executor_input.inputs.artifacts["examples"].artifacts[0].type == pb.ArtifactTypeSchema(instance_schema="")
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'get'"):
        tfx_entrypoint.parse_raw_artifact_dict(executor_input.inputs.artifacts)
    # ... and the 2.5+ log output is a class TFX cannot import.
    assert (
        executor_input.outputs.artifacts[entrypoint.KFP_LOG_OUTPUT].artifacts[0].type.schema_title == "system.Artifact"
    )
    with pytest.raises(ImportError):
        tfx_entrypoint.parse_raw_artifact_dict(executor_input.outputs.artifacts)

    spec = json_format.Parse(inputs_spec, pb.ComponentInputsSpec())
    repaired = entrypoint.repair(executor_input, spec)
    assert repaired.typed_inputs == ["examples"] and repaired.dropped_outputs == [entrypoint.KFP_LOG_OUTPUT]
    inputs = tfx_entrypoint.parse_raw_artifact_dict(repaired.executor_input.inputs.artifacts)
    [examples] = inputs["examples"]
    assert type(examples).__name__ == "Examples" and examples.split_names == '["train", "validation", "eval"]'
    assert examples.uri == "/nowhere/examples"
    outputs = tfx_entrypoint.parse_raw_artifact_dict(repaired.executor_input.outputs.artifacts)
    assert sorted(outputs) == ["statistics"]
    # The argument is left as it was.
    assert entrypoint.KFP_LOG_OUTPUT in executor_input.outputs.artifacts


def test_an_input_the_spec_does_not_declare_is_named(kfp_package, tmp_path):
    executor_input, _, _ = task_input(kfp_package, "kfp", "StatisticsGen", tmp_path, recorded_examples())
    with pytest.raises(entrypoint.EntrypointError, match="input artifact 'examples' reached the task without a type"):
        entrypoint.repair(executor_input, pb.ComponentInputsSpec())


def test_vertex_input_is_handed_on_unchanged(kfp_package, tmp_path):
    executor_input, inputs_spec, class_path = task_input(
        kfp_package, "vertex", "StatisticsGen", tmp_path, recorded_examples()
    )
    repaired = entrypoint.repair(executor_input, json_format.Parse(inputs_spec, pb.ComponentInputsSpec()))
    assert not repaired.changed and repaired.executor_input == executor_input
    # ImportExampleGen after Vertex AI ran its preCacheCheck hook: the driver's
    # output file is there, so the driver does not run again.
    gen_input, _, gen_class = task_input(kfp_package, "vertex", "ImportExampleGen", tmp_path, {})
    assert entrypoint.needs_example_gen_driver(gen_class, gen_input)
    os.makedirs(os.path.dirname(gen_input.outputs.output_file), exist_ok=True)
    with open(gen_input.outputs.output_file, "w") as f:
        f.write("{}")
    assert not entrypoint.needs_example_gen_driver(gen_class, gen_input)
    assert not entrypoint.needs_example_gen_driver(class_path, executor_input)  # not an ExampleGen


def test_kfp_import_example_gen_runs_tfx_driver_in_the_task(kfp_package, tmp_path):
    executor_input, inputs_spec, class_path = task_input(kfp_package, "kfp", "ImportExampleGen", tmp_path, {})
    repaired = entrypoint.repair(executor_input, json_format.Parse(inputs_spec, pb.ComponentInputsSpec()))
    assert entrypoint.needs_example_gen_driver(class_path, repaired.executor_input)
    driven = entrypoint.run_example_gen_driver(repaired.executor_input, inputs_spec)
    metadata = driven.outputs.artifacts["examples"].artifacts[0].metadata
    # TFX's driver: span 0 for the every-span glob (`custom:` as TFX names a
    # custom property that shadows a property), the fingerprint of the sample's files.
    assert metadata["custom:span"] == 0 and metadata["input_fingerprint"].startswith("split:single_split,num_files:2,")
    with open(driven.outputs.output_file) as f:
        hook = json.load(f)
    assert hook["parameterValues"]["input_fingerprint"] == metadata["input_fingerprint"]
    assert not entrypoint.needs_example_gen_driver(class_path, driven)  # once is enough


@pytest.fixture
def gcs(tmp_path):
    """A Cloud Storage emulator on loopback (gcp-storage-emulator) and a
    google-cloud-storage client of it, without credentials."""
    import socket

    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield storage.Client(
            project="flowers-test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{port}"},
        )
    finally:
        server.stop()


def test_directory_markers_are_removed_from_gs_outputs_and_nothing_else(gcs):
    bucket = gcs.create_bucket("flowers-test")
    # As TensorFlow's GCS file system leaves a SavedModel: a zero-byte object
    # for each directory it made, beside the files.
    objects = {
        "root/Trainer/model/": b"",
        "root/Trainer/model/Format-Serving/": b"",
        "root/Trainer/model/Format-Serving/saved_model.pb": b"graph",
        "root/Trainer/model/Format-Serving/variables/": b"",
        "root/Trainer/model/Format-Serving/variables/variables.index": b"index",
        "root/Trainer/model/Format-Serving/assets/empty.txt": b"",  # an empty file, not a marker
        "root/Trainer/model_run/": b"",  # another artifact's marker: not under this URI
        "root/Transform/transform_graph/": b"",  # not an output of this task
    }
    for name, data in objects.items():
        bucket.blob(name).upload_from_string(data)
    removed = entrypoint.remove_directory_markers(
        ["gs://flowers-test/root/Trainer/model", "/local/ignored"], client=gcs
    )
    assert sorted(removed) == [
        "gs://flowers-test/root/Trainer/model/",
        "gs://flowers-test/root/Trainer/model/Format-Serving/",
        "gs://flowers-test/root/Trainer/model/Format-Serving/variables/",
    ]
    left = sorted(b.name for b in gcs.list_blobs("flowers-test"))
    assert left == sorted(set(objects) - {u[len("gs://flowers-test/") :] for u in removed})
    assert entrypoint.remove_directory_markers(["/local/only"]) == []  # no client needed without gs://
