"""A compiled KFP package as preflight reads it: the PipelineSpec (from a
`.yaml` package or a `.json` PipelineJob with its runtime config), its
runtime parameters, and its tasks in dependency order."""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import yaml
from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2 as pb


class PreflightError(ValueError):
    """The package cannot be preflighted as given (the message says why)."""


@dataclasses.dataclass
class Package:
    spec: pb.PipelineSpec
    deployment: pb.PipelineDeploymentConfig
    parameters: dict[str, struct_pb2.Value]  # the runtime parameters' values
    output_directory: str | None = None  # a PipelineJob's gcsOutputDirectory


def load(path: str) -> Package:
    """A `.yaml` KFP package (bare PipelineSpec) or a `.json` PipelineJob."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise PreflightError(f"{path}: not a KFP pipeline spec (binary, not YAML or JSON text)") from None
    runtime, output_directory = {}, None
    try:
        if path.endswith(".json"):
            job = json_format.Parse(text, pb.PipelineJob())
            spec = json_format.ParseDict(json_format.MessageToDict(job.pipeline_spec), pb.PipelineSpec())
            runtime = dict(job.runtime_config.parameter_values)
            output_directory = job.runtime_config.gcs_output_directory or None
        else:
            spec = json_format.ParseDict(yaml.safe_load(text), pb.PipelineSpec())
    except (json_format.ParseError, yaml.YAMLError) as e:
        raise PreflightError(f"{path}: not a KFP pipeline spec: {e}") from None
    if not spec.schema_version.startswith("2.1"):
        raise PreflightError(
            f"{path}: pipeline spec schema {spec.schema_version}; preflight reads 2.1 (parameter values)"
        )
    deployment = json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec), pb.PipelineDeploymentConfig())
    parameters = {name: p.default_value for name, p in spec.root.input_definitions.parameters.items()}
    parameters.update(runtime)
    return Package(spec, deployment, parameters, output_directory)


def set_parameters(package: Package, items: Sequence[str]) -> None:
    """Apply `NAME=VALUE` overrides, typed as the spec declares each parameter."""
    definitions = package.spec.root.input_definitions.parameters
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise PreflightError(f"--param {item!r} is not NAME=VALUE")
        if name not in definitions:
            raise PreflightError(f"unknown runtime parameter {name!r}; known: {', '.join(sorted(definitions))}")
        kind = definitions[name].parameter_type
        value = text if kind == pb.ParameterType.STRING else json.loads(text)
        package.parameters[name] = json_format.ParseDict(value, struct_pb2.Value())


def task_order(spec: pb.PipelineSpec) -> list[str]:
    """The root DAG's tasks, each after every task it depends on (ties by name)."""
    tasks = spec.root.dag.tasks
    needs = {name: set(task.dependent_tasks) | _producers(task) for name, task in tasks.items()}
    order: list[str] = []
    while needs:
        ready = sorted(name for name, deps in needs.items() if deps <= set(order))
        if not ready:
            raise PreflightError(f"the tasks {', '.join(sorted(needs))} depend on each other in a cycle")
        order.append(ready[0])
        del needs[ready[0]]
    return order


def _producers(task: pb.PipelineTaskSpec) -> set[str]:
    found = {
        a.task_output_artifact.producer_task
        for a in task.inputs.artifacts.values()
        if a.HasField("task_output_artifact")
    }
    found |= {
        p.task_output_parameter.producer_task
        for p in task.inputs.parameters.values()
        if p.HasField("task_output_parameter")
    }
    return found
