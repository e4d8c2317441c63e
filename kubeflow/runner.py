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
  parses them back (kubeflow/executors.py).
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os

from flowers.config import PipelineConfig, Resources
from flowers.components import names

# TFX, TensorFlow and the pipeline definition load on use, so the CLI checks
# settings, parameters and endpoints before paying for them.

# Where kubeflow/Dockerfile installs the project (its WORKDIR); the editable
# install keeps the bundled data under IMAGE_PROJECT_DIR/data.
IMAGE_PROJECT_DIR = "/flowers"
IMAGE_DATA_DIR = f"{IMAGE_PROJECT_DIR}/data"

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
        return IMAGE_DATA_DIR + path[len(local):].replace(os.sep, "/")
    return path


def check_config(config: PipelineConfig) -> None:
    """What a cluster needs that a laptop does not."""
    if "://" not in config.output_dir and not os.path.isabs(config.output_dir):
        raise ValueError(
            f"output_dir {config.output_dir!r} is relative: on Kubeflow it must be a URI every pod can "
            "write (gs://bucket/flowers) or an absolute path mounted in every pod"
        )
    if not config.kubeflow.image:
        raise ValueError("image is empty: set the image built from kubeflow/Dockerfile (--image)")
    if config.data.span_window:
        raise ValueError(
            f"span_window={config.data.span_window}: a window of spans is TFX's rolling span range, a resolver "
            "function that TFX 1.16's Kubeflow V2 compiler cannot compile; on Kubeflow every run reads all "
            "spans of the data root (leave span_window at 0)"
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

    check_config(config)
    parameters = {
        name: tfx.dsl.experimental.RuntimeParameter(name=name, ptype=str, default=value)
        for name, value in values.items()
    }
    # The layout (spans, train/eval folders) is read from config.data.data_root
    # here, at compile time; the schema file is read by the component, in the pod.
    config = _resolved(config)
    in_pod = dataclasses.replace(config, data=dataclasses.replace(config.data, schema_dir=in_image(config.data.schema_dir)))
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


def compile_pipeline(config: PipelineConfig, package_path: str) -> str:
    """Compile with KubeflowV2DagRunner and write the spec: the KFP package
    (bare PipelineSpec) for a .yaml/.yml path, the Vertex AI PipelineJob for a
    .json path. Returns the path written."""
    from flowers.kubeflow.client import check_readable

    if not package_path.endswith((".yaml", ".yml", ".json")):
        raise ValueError(f"{package_path}: the package must end in .yaml (KFP) or .json (Vertex AI PipelineJob)")
    check_config(config)
    # The data layout is read now: fail in seconds, not after TensorFlow's
    # credential and connection retries, when the data root cannot be read.
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
            _never_cache_baseline(job["pipelineSpec"])
            with open(package_path, "w") as f:
                json.dump(job, f, indent=2, sort_keys=True)
        return package_path
    job = runner.run(pipeline, parameter_values=values, write_out=False)
    spec = job["pipelineSpec"]
    _never_cache_baseline(spec)
    # A KFP package has no runtimeConfig, and TFX 1.16 leaves the root's
    # parameter definitions without defaults: put them where KFP reads them.
    for name, value in values.items():
        spec["root"]["inputDefinitions"]["parameters"][name]["defaultValue"] = value
    _write_yaml(spec, package_path)
    return package_path


def _never_cache_baseline(spec: dict) -> None:
    """The baseline must be read afresh in every run (what was pushed since)."""
    tasks = spec["root"]["dag"]["tasks"]
    if names.BASELINE in tasks:
        tasks[names.BASELINE]["cachingOptions"] = {"enableCache": False}


def _write_yaml(spec: dict, package_path: str) -> None:
    import yaml

    os.makedirs(os.path.dirname(os.path.abspath(package_path)), exist_ok=True)
    with open(package_path, "w") as f:
        f.write(f"# KFP pipeline spec of {spec['pipelineInfo']['name']}, compiled by {spec['sdkVersion']}\n")
        f.write("# KubeflowV2DagRunner; written by `flowers kubeflow compile`.\n")
        yaml.safe_dump(spec, f, sort_keys=True)

