"""Compile the one pipeline definition for Kubeflow Pipelines (KFP v2 spec).

`KubeflowV2DagRunner` turns `create_pipeline(config)` into a pipeline spec:
a `.yaml` package holds the bare KFP `PipelineSpec` that `kfp.Client` uploads;
a `.json` file holds the Vertex AI style `PipelineJob` (displayName,
pipelineSpec, runtimeConfig). Nothing else differs from a local run:

* the container image is `config.kubeflow.image` (built from kubeflow/Dockerfile);
* `config.run.beam_args` reach every component's container unchanged (DirectRunner
  with multi-processing inside the pod by default; DataflowRunner, Flink or
  Spark runner arguments for a cluster);
* three values are TFX RuntimeParameters that a run may override. TFX 1.16's
  Kubeflow V2 compiler links a RuntimeParameter only when it is a component's
  whole execution property (one nested in a dict or proto is serialised as
  text, never substituted), so epochs and the accuracy gate travel inside the
  Trainer's custom_config and the Evaluator's eval_config, as JSON strings
  whose defaults are exactly what the local pipeline passes;
* the Trainer (and Tuner), Transform and Evaluator get CPU/memory requests
  and limits, and the Trainer an optional accelerator, from the config's
  resource settings, through TFX's platform config (`ResourceSpec`);
* ExampleValidator's custom validations, a `make_proto` placeholder locally
  that the V2 compiler refuses, are written as JSON for an executor that
  parses them back (kubeflow/executors.py);
* every task's container command is this project's entrypoint
  (kubeflow/entrypoint.py), which repairs what open-source Kubeflow Pipelines
  hands a task and then runs TFX's own executor runner.

Two backends run the spec, and they differ (flowers.kubeflow.preflight has
the rules, with the backend source of each): `kfp`, open-source Kubeflow
Pipelines 2.x (a `.yaml` package), and `vertex`, Vertex AI Pipelines (a
`.json` PipelineJob). For `kfp` the compile refuses what that backend cannot
run and turns off the cache of ImportExampleGen, whose cache key there holds
nothing the data root's contents change.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os

from flowers.components import names
from flowers.config import PipelineConfig, Resources

# TFX, TensorFlow and the pipeline definition load on use, so the CLI checks
# settings, parameters and endpoints before paying for them.

# Where kubeflow/Dockerfile installs the project (its WORKDIR); the editable
# install keeps the bundled data under IMAGE_PROJECT_DIR/data.
IMAGE_PROJECT_DIR = "/flowers"
IMAGE_DATA_DIR = f"{IMAGE_PROJECT_DIR}/data"

BACKENDS = ("kfp", "vertex")
# The container command of every task (KubeflowV2DagRunnerConfig's
# default_commands); kubeflow/Dockerfile installs the module.
ENTRYPOINT_MODULE = "flowers.kubeflow.entrypoint"
ENTRYPOINT_COMMAND = ("python", "-m", ENTRYPOINT_MODULE)

# Object stores the image reads. TensorFlow 2.16 reads gs:// itself; it has no
# S3 file system (tensorflow-io's, which uv.lock does not hold), and Beam
# reads s3:// only with apache-beam[aws] (boto3, not locked either).
# `minio://` is Kubeflow Pipelines' own name for its MinIO store (the
# default store of a Kubeflow install), which neither TensorFlow nor Beam reads.
STORE_SCHEMES = ("gs://",)
UNREADABLE_STORES = {
    "s3://": "TensorFlow 2.16 in the image has no S3 file system (tensorflow-io's, not in uv.lock) and Beam "
    "reads s3:// only with apache-beam[aws] (boto3, not locked)",
    "minio://": "minio:// is Kubeflow Pipelines' name for its MinIO store, which neither TensorFlow nor Beam "
    "in the image reads (nor s3://, MinIO's protocol: no S3 file system is locked)",
}

# Runtime parameter name (also the create_pipeline argument it is passed
# as) -> (component id, execution property) it replaces.
DATA_ROOT = "data_root"
TRAINER_CONFIG = "trainer_config"
EVAL_CONFIG = "eval_config"
PARAMETERS = {
    DATA_ROOT: (names.EXAMPLE_GEN, "input_base"),
    TRAINER_CONFIG: (names.TRAINER, "custom_config"),
    EVAL_CONFIG: (names.EVALUATOR, "eval_config"),
}

# Key of `kubeflow.resources` -> the component ids that get those pod
# resources. The Tuner trains like the Trainer.
RESOURCE_NODES = {
    "trainer": (names.TRAINER, names.TUNER),
    "transform": (names.TRANSFORM,),
    "evaluator": (names.EVALUATOR,),
}


def in_image(path: str) -> str:
    """A path into the bundled package data, as the image sees it; any other
    path or URI unchanged."""
    local = str(importlib.resources.files("flowers.data"))
    if path == local or path.startswith(local + os.sep):
        return IMAGE_DATA_DIR + path[len(local) :].replace(os.sep, "/")
    return path


def check_config(config: PipelineConfig, backend: str = "kfp") -> None:
    """What a cluster needs that a laptop does not, and what `backend` cannot run."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: one of {', '.join(BACKENDS)}")
    check_store("output_dir", config.output_dir, backend)
    check_store("data.data_root", config.data.data_root, backend, bundled_ok=True)
    if config.data.schema_dir:
        check_store("data.schema_dir", config.data.schema_dir, backend, bundled_ok=True)
    if not config.kubeflow.image:
        raise ValueError("image is empty: set the image built from kubeflow/Dockerfile (--image)")
    if config.data.span_window:
        raise ValueError(
            f"span_window={config.data.span_window}: a window of spans is TFX's rolling span range, a resolver "
            "function that TFX 1.16's Kubeflow V2 compiler cannot compile; on Kubeflow every run reads all "
            "spans of the data root (leave span_window at 0)"
        )
    if backend == "kfp" and config.run.warm_start:
        raise ValueError(
            "run.warm_start: TFX's latest-blessed-model Resolver compiles into `resolver` tasks, and open-source "
            'Kubeflow Pipelines refuses the whole run ("non-container and non-importer executor not implemented", '
            "its backend/src/v2/compiler/visitor.go); turn warm_start off for --backend kfp (Vertex AI runs it: "
            "--backend vertex)"
        )


def check_store(setting: str, value: str, backend: str, bundled_ok: bool = False) -> None:
    """A path every pod of a cluster backend reads: an object store URI the
    image reads, or (`bundled_ok`) the data bundled in the image."""
    if value.startswith(STORE_SCHEMES):
        return
    for scheme, why in UNREADABLE_STORES.items():
        if value.startswith(scheme):
            raise ValueError(f"{setting} {value!r}: {why}; use a gs:// bucket")
    if "://" in value:
        raise ValueError(f"{setting} {value!r}: the image reads no such scheme; use a gs:// bucket")
    if bundled_ok and in_image(value).startswith(IMAGE_DATA_DIR + "/"):
        return
    raise ValueError(
        f"{setting} {value!r} is a path on this machine, which the pods of a {backend} run cannot reach "
        "(the pipeline root must be an object store, and nothing mounts local folders in every pod): use a "
        "gs:// URI (preflight reads such a URI from a local folder: --path-map gs://bucket/path=FOLDER)"
    )


def runtime_values(config: PipelineConfig) -> dict[str, str]:
    """Each runtime parameter's value for this config: exactly the execution
    property the local pipeline gives that component (a local data root that
    is bundled package data becomes the image's copy of it)."""
    from flowers.pipeline.pipeline import create_components

    components = {c.id: c for c in create_components(_resolved(config))}
    values = {name: components[cid].exec_properties[prop] for name, (cid, prop) in PARAMETERS.items()}
    values[DATA_ROOT] = in_image(values[DATA_ROOT])
    for name, value in values.items():
        if not isinstance(value, str):
            raise TypeError(f"runtime parameter {name}: expected a string execution property, got {type(value)}")
    return values


def _resolved(config: PipelineConfig) -> PipelineConfig:
    """The config with its data layout read from the data root (at compile
    time: the spec's shape cannot change with what a later run finds)."""
    from flowers.data import layout

    return config if config.data.presplit is not None else layout.resolve(config)


def resource_spec(resources: Resources):
    """One component's pod resources (TFX's platform config for the
    Kubeflow V2 runner: the spec's `PipelineContainerSpec.resources`); None
    when every setting is 0 (none)."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
        cpu_request=resources.cpu,
        cpu_limit=resources.cpu_limit,
        memory_request=resources.memory_gb,  # the proto's unit is GB, as kfp's own setters write it
        memory_limit=resources.memory_limit_gb,
    )
    if resources.accelerator != "none":
        spec.accelerator.type = resources.accelerator
        spec.accelerator.count = resources.accelerator_count
    return spec if spec.ByteSize() else None


def create_kubeflow_pipeline(config: PipelineConfig, values: dict[str, str]):
    """The local pipeline definition, with the runtime parameters (these
    values their defaults), its bundled paths pointing into the image, and
    the configured pod resources."""
    from tfx import v1 as tfx

    from flowers.pipeline.pipeline import create_pipeline

    parameters = {
        name: tfx.dsl.experimental.RuntimeParameter(name=name, ptype=str, default=value)
        for name, value in values.items()
    }
    # The layout (spans, train/eval folders) is read from config.data.data_root
    # here, at compile time; the schema file is read by the component, in the pod.
    config = _resolved(config)
    in_pod = dataclasses.replace(
        config, data=dataclasses.replace(config.data, schema_dir=in_image(config.data.schema_dir))
    )
    pipeline = create_pipeline(in_pod, **parameters)
    nodes = {c.id: c for c in pipeline.components}
    for component in pipeline.components:
        _proto_properties_as_json(component)
    for key, resources in config.kubeflow.resources.items():
        spec = resource_spec(resources)
        for node_id in RESOURCE_NODES[key]:
            if spec is not None and node_id in nodes:
                nodes[node_id].with_platform_config(spec)
    return pipeline


def _proto_properties_as_json(component) -> None:
    """TFX 1.16 hands some proto execution properties to executors as
    `make_proto` placeholders, which its Kubeflow V2 compiler refuses. The
    one this pipeline uses (ExampleValidator's custom_validation_config)
    compiles as the proto's JSON, read back by an executor that parses it."""
    from tfx.dsl.components.base import executor_spec
    from tfx.dsl.placeholder import proto_placeholder
    from tfx.utils import proto_utils

    for name, value in component.exec_properties.items():
        if not isinstance(value, proto_placeholder.MakeProtoPlaceholder):
            continue
        if component.id != names.EXAMPLE_VALIDATOR or name != "custom_validation_config" or value._fields:
            raise ValueError(f"{component.id}.{name}: a proto placeholder the Kubeflow V2 compiler cannot write")
        from flowers.kubeflow.executors import ExampleValidatorExecutor

        component.exec_properties[name] = proto_utils.proto_to_json(value._base_message)
        component.executor_spec = executor_spec.ExecutorClassSpec(ExampleValidatorExecutor)


def compile_pipeline(config: PipelineConfig, package_path: str, backend: str | None = None) -> str:
    """Compile with KubeflowV2DagRunner and write the spec: the KFP package
    (bare PipelineSpec) for a .yaml/.yml path, the Vertex AI PipelineJob for a
    .json path. `backend` (default: vertex for .json, else kfp) is the one
    the spec is checked and shaped for. Returns the path written."""
    from flowers.kubeflow.client import check_readable

    if not package_path.endswith((".yaml", ".yml", ".json")):
        raise ValueError(f"{package_path}: the package must end in .yaml (KFP) or .json (Vertex AI PipelineJob)")
    backend = backend or ("vertex" if package_path.endswith(".json") else "kfp")
    if backend == "kfp" and package_path.endswith(".json"):
        raise ValueError(
            f"{package_path}: a .json package is a Vertex AI PipelineJob; for Kubeflow Pipelines write .yaml"
        )
    check_config(config, backend)
    # The data layout is read now (unless given): fail in seconds, not after
    # TensorFlow's credential and connection retries, when the data root
    # cannot be read.
    if config.data.presplit is None:
        check_readable(config.data.data_root)
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    values = runtime_values(config)
    pipeline = create_kubeflow_pipeline(config, values)
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=config.kubeflow.image,
            # Schema 2.1 writes parameter values as `constant` / `parameterType`,
            # which KFP 2.x backends read; the 2.0 default writes the retired
            # `constantValue` / `type` fields (and cannot be written as YAML
            # once runtime parameters exist).
            use_pipeline_spec_2_1=True,
            default_commands=list(ENTRYPOINT_COMMAND),
        ),
        output_dir=os.path.dirname(os.path.abspath(package_path)),
        output_filename=os.path.basename(package_path),
    )
    if package_path.endswith(".json"):
        # The PipelineJob carries the defaults in runtimeConfig.parameterValues.
        # (Written by the runner itself, so that the tfx CLI, which patches
        # it, keeps its own copy.)
        runner.run(pipeline, parameter_values=values)
        if os.path.exists(package_path):
            with open(package_path) as f:
                job = json.load(f)
            _set_caching(job["pipelineSpec"], backend)
            with open(package_path, "w") as f:
                json.dump(job, f, indent=2, sort_keys=True)
        return package_path
    job = runner.run(pipeline, parameter_values=values, write_out=False)
    spec = job["pipelineSpec"]
    _set_caching(spec, backend)
    # A KFP package has no runtimeConfig, and TFX 1.16 leaves the root's
    # parameter definitions without defaults: put them where KFP reads them.
    for name, value in values.items():
        spec["root"]["inputDefinitions"]["parameters"][name]["defaultValue"] = value
    _write_yaml(spec, package_path)
    return package_path


def _set_caching(spec: dict, backend: str) -> None:
    """Tasks that must read their source afresh in every run. The baseline:
    what was pushed since. On Kubeflow Pipelines also ImportExampleGen: the
    backend's cache key (cacheutils/cache.go `GenerateCacheKey`) holds input
    parameters, image and command, nothing the data root's contents change,
    so a cached ImportExampleGen would hand every later run the first run's
    examples. (Vertex AI runs its driver hook before the cache lookup, and
    the input fingerprint it computes keys the cache.) Downstream tasks stay
    cached by key: new examples are a new input artifact, so a new key."""
    tasks = spec["root"]["dag"]["tasks"]
    fresh = [names.BASELINE] + ([names.EXAMPLE_GEN] if backend == "kfp" else [])
    for name in fresh:
        if name in tasks:
            tasks[name]["cachingOptions"] = {"enableCache": False}


def _write_yaml(spec: dict, package_path: str) -> None:
    import yaml

    os.makedirs(os.path.dirname(os.path.abspath(package_path)), exist_ok=True)
    with open(package_path, "w") as f:
        f.write(f"# KFP pipeline spec of {spec['pipelineInfo']['name']}, compiled by {spec['sdkVersion']}\n")
        f.write("# KubeflowV2DagRunner; written by `flowers kubeflow compile`.\n")
        yaml.safe_dump(spec, f, sort_keys=True)
