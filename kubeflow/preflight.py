"""`flowers kubeflow preflight PACKAGE`: run a compiled spec on this machine,
task by task, handing each task what the chosen backend hands its pod.

A check to run before `submit`, not a second orchestrator: no retries, no
parallel tasks, no ML Metadata server; one task after the other in
dependency order, in the current Python environment instead of the image.

Two backends, because they hand a TFX task different things:

* `kfp` (the default): open-source Kubeflow Pipelines 2.x, as its own source
  does it (kubeflow/pipelines, backend/src/v2/; read at tags 2.0.3 and 2.5.0
  and at main of 2026-08). Every rule below names the file and function it
  comes from and the versions it holds for:
  - a spec with a `resolver` executor is refused before any task runs
    (compiler/visitor.go `dfs`: "non-container and non-importer executor not
    implemented", when the API server compiles the run; all versions);
  - no lifecycle hook runs: nothing in the backend reads `lifecycle`, so
    ImportExampleGen's `preCacheCheck` driver never runs (all versions);
  - input artifacts come back from ML Metadata: named by their metadata id
    (metadata/converter.go `toRuntimeArtifact`), with an EMPTY type schema
    (metadata/client.go `GetOutputArtifactsByExecutionId` records `Schema:
    ""`, `OutputArtifact.ToRuntimeArtifact` copies it; 2.0.3, 2.5.0 and main),
    their metadata after the round trip: booleans as numbers, lists and
    structs wrapped as {"list": ...} / {"struct": ...}
    (converter.go `StructValueToMLMDValue`), `display_name` added
    (client.go `RecordArtifact`, all versions) and `store_session_info`
    (2.5+);
  - every task gets an extra `executor-logs` output of type system.Artifact
    (driver/driver.go `provisionOutputs`, publish_logs on by default; 2.5+);
  - output artifacts are unnamed (2.0.3, 2.5.0; main names them by key),
    typed from the component's output spec (`provisionOutputs`);
  - the executor output file is the pod-local
    /tmp/kfp_outputs/output_metadata.json (component/launcher_v2.go
    `OutputMetadataFilepath`, 2.0.3 and 2.5.0; main puts it under the task
    root's local path): here a fresh `pod/tmp/...` under each task root;
  - the executor output is merged into the planned outputs (launcher_v2.go
    `mergeRuntimeArtifacts`: its URI if set, its metadata fields over the
    planned ones); no output file means no metadata (`getExecutorOutputFile`);
  - caching: a task whose `cachingOptions.enableCache` is on reuses the
    outputs of an earlier execution with the same cache key: input artifact
    names, input parameter values, output artifact specs without URI,
    output parameter types, image, command + args (cacheutils/cache.go
    `GenerateCacheKey`, driver/driver.go `getFingerPrint` and `Container`;
    all versions). Earlier executions are those under the same pipeline root.
* `vertex`: Vertex AI Pipelines as TFX's Kubeflow V2 runner expects it: the
  `preCacheCheck` hook runs first and its Examples metadata reaches the
  executor, artifacts keep their type and a unique name, resolver tasks are
  answered from the artifacts earlier preflight runs under the same pipeline
  root recorded in `artifacts.jsonl` (none on the first run), no caching.

For each task preflight builds the ExecutorInput (parameter values from the
spec's constants and the runtime parameters, their defaults then `--param
NAME=VALUE`), runs the container's own `command` + `args` with the
placeholders (`{{$}}`, ...) substituted, and reads the executor output back.
Paths the image holds (`/flowers/data/...`) are read from this checkout
(`--path-map` adds more, e.g. a gs:// output directory -> a local folder).

kfp 2.5's local execution (`kfp.local`) runs one lightweight Python component
without input artifacts, so its task runner cannot run these tasks; its
building blocks do the parts they can: task roots and run names
(`executor_input_utils`), placeholder substitution (`placeholder_utils`),
reading the executor output (`executor_output_utils`). The spec is read with
kfp's pipeline-spec protos.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import re
import shutil
import sys
import time
from typing import Callable, Mapping, Sequence

from google.protobuf import json_format, struct_pb2
from kfp.local import executor_input_utils, executor_output_utils, placeholder_utils
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from flowers import outcome, progress
from flowers.kubeflow import backend_rules
from flowers.kubeflow import package as package_lib
from flowers.kubeflow.package import Package, PreflightError
from flowers.kubeflow.preflight_forks import Launcher
from flowers.kubeflow.preflight_store import RootStore
from flowers.kubeflow.runner import IMAGE_DATA_DIR  # light: runner loads TFX on use

EXECUTOR_OUTPUT = "executor_output.json"
EXECUTOR_INPUT = "executor_input.json"  # each task's, as handed to it (kept for reading)
TASK_LOG = "preflight.log"
BLESSING = "tfx.ModelBlessing"
PUSHED_MODEL = "tfx.PushedModel"
EVALUATION = "tfx.ModelEvaluation"


@dataclasses.dataclass
class TaskResult:
    name: str
    status: str  # succeeded, failed, resolved, resolved none
    seconds: float
    log: str | None = None


@dataclasses.dataclass
class Result:
    run_root: str
    tasks: list[TaskResult]
    failed_task: str | None = None
    data_refused: bool = False
    blessed: bool | None = None
    pushed_to: str | None = None
    gate_failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The exit codes of `flowers run` (flowers.outcome)."""
        if self.data_refused:
            return outcome.DATA_REFUSED
        if self.failed_task:
            return outcome.FAILED
        return outcome.PUSHED if self.pushed_to else outcome.REFUSED


def default_path_map() -> dict[str, str]:
    """The image's copy of the bundled data -> this checkout's."""
    return {IMAGE_DATA_DIR: str(importlib.resources.files("flowers.data"))}


BACKENDS = ("kfp", "vertex")
POD_ROOT = "pod"


class Preflight:
    def __init__(
        self,
        package: Package,
        pipeline_root: str,
        path_map: Mapping[str, str],
        echo: Callable[[str], None],
        verbose: bool,
        backend: str = "kfp",
        kfp_version: str = "2.5",
        fresh_processes: bool = False,
    ):
        if "://" in pipeline_root:
            raise PreflightError(f"pipeline root {pipeline_root!r}: preflight writes to a local folder")
        if backend not in BACKENDS:
            raise PreflightError(f"backend {backend!r}: one of {', '.join(BACKENDS)}")
        if kfp_version not in backend_rules.KFP_VERSIONS:
            raise PreflightError(f"KFP version {kfp_version!r}: one of {', '.join(backend_rules.KFP_VERSIONS)}")
        self.package = package
        self.pipeline_root = os.path.abspath(pipeline_root)
        self.path_map = dict(path_map)
        self.echo = echo
        self.verbose = verbose
        self.backend = backend
        self.kfp_version = kfp_version
        self.launcher = Launcher(fresh_processes)
        name = package.spec.pipeline_info.name
        self.run_name = executor_input_utils.get_local_pipeline_resource_name(name)
        self.run_root = os.path.join(self.pipeline_root, self.run_name)
        self.store = RootStore(self.pipeline_root)
        # What each task produced, as recorded (typed: preflight reads them back).
        self.outputs: dict[str, dict[str, pb.ArtifactList]] = {}
        self.output_parameters: dict[str, dict[str, struct_pb2.Value]] = {}

    @property
    def kfp(self) -> bool:
        return self.backend == "kfp"

    # -- the run --------------------------------------------------------------

    def check_executors(self) -> None:
        """kfp: the API server compiles the whole spec to an Argo workflow
        when the run is created, and refuses an executor that is neither a
        container nor an importer (compiler/visitor.go `dfs`; 2.0.3, 2.5.0, main)."""
        if not self.kfp:
            return
        for label, executor in sorted(self.package.deployment.executors.items()):
            kind = executor.WhichOneof("spec")
            if kind not in ("container", "importer"):
                raise PreflightError(
                    f"executor {label} is a {kind} executor: Kubeflow Pipelines refuses the whole run "
                    f'("executor(label={label!r}): non-container and non-importer executor not implemented", '
                    "backend/src/v2/compiler/visitor.go); recompile for --backend kfp (warm_start off)"
                )

    def check_parameters(self) -> None:
        """Every task's parameter values resolve to local paths, checked
        before the first task runs (a refusal at the Pusher would come after
        the whole run)."""
        for name, task in self.package.spec.root.dag.tasks.items():
            for key, spec in task.inputs.parameters.items():
                if spec.WhichOneof("kind") != "task_output_parameter":
                    self._parameter(name, key, spec)

    def run(self) -> Result:
        self.check_executors()
        self.check_parameters()
        try:
            return self._run_tasks()
        finally:
            self.launcher.close()

    def _run_tasks(self) -> Result:
        result = Result(run_root=self.run_root, tasks=[])
        os.makedirs(self.run_root, exist_ok=True)
        self.echo(f"preflight of {self.package.spec.pipeline_info.name} ({self._backend_words()}): {self.run_root}")
        for name in package_lib.task_order(self.package.spec):
            started = time.monotonic()
            task = self.package.spec.root.dag.tasks[name]
            component = self.package.spec.components[task.component_ref.name]
            executor = self.package.deployment.executors[component.executor_label]
            if executor.HasField("resolver"):
                status, log = self._resolve(name, task, component, executor.resolver), None
            elif executor.HasField("container"):
                self.echo(f"  starting {name}")
                with progress.heartbeat(name, started, lambda line: self.echo("  " + line)):
                    status, log = self._run_container(name, task, component, executor.container)
            else:
                raise PreflightError(
                    f"task {name}: a {executor.WhichOneof('spec')} executor, which preflight does not run"
                )
            done = TaskResult(name, status, time.monotonic() - started, log)
            result.tasks.append(done)
            self.echo(f"  {name:<56} {status:<14} {done.seconds:7.1f} s")
            if status == "failed":
                result.failed_task = name
                result.data_refused = _data_refused(log)
                return result
        result.blessed = self._metadata_of(BLESSING, "blessed")
        pushed = self._metadata_of(PUSHED_MODEL, "pushed")
        if pushed:
            result.pushed_to = self._metadata_of(PUSHED_MODEL, "pushed_destination") or "?"
        if result.blessed is not None:
            result.blessed = bool(result.blessed)
        if result.blessed is False:
            result.gate_failures = _gate_failures(self._uri_of(EVALUATION))
        return result

    def _backend_words(self) -> str:
        if not self.kfp:
            return "Vertex AI"
        return f"Kubeflow Pipelines {self.kfp_version}{'' if self.kfp_version == '2.0' else '+'}"

    def _run_container(self, name, task, component, container) -> tuple[str, str]:
        task_root = executor_input_utils.construct_local_task_root(self.pipeline_root, self.run_name, name)
        os.makedirs(task_root, exist_ok=True)
        executor_input = self._executor_input(name, task, component, task_root)
        as_dict = executor_input_utils.executor_input_to_dict(executor_input, component)
        with open(os.path.join(task_root, EXECUTOR_INPUT), "w") as f:
            json.dump(as_dict, f, indent=1, sort_keys=True)  # what the pod was handed
        log = os.path.join(task_root, TASK_LOG)
        if self.kfp and backend_rules.KFP_LOG_OUTPUT in executor_input.outputs.artifacts:
            # The launcher writes the task's output to its log artifact
            # (launcher_v2.go `getLogWriter`, 2.5+).
            log = executor_input.outputs.artifacts[backend_rules.KFP_LOG_OUTPUT].artifacts[0].uri
        key = None
        if self.kfp and task.caching_options.enable_cache:
            key = backend_rules.cache_key(executor_input, component, container)
            cached = self.store.cached(key)
            if cached is not None:
                self.outputs[name] = cached
                return "cached", log
        steps = []
        if not self.kfp and container.lifecycle.pre_cache_check.command:
            hook = container.lifecycle.pre_cache_check
            steps.append(list(hook.command) + list(hook.args))
        steps.append(list(container.command) + list(container.args))
        env = {**os.environ, **{e.name: e.value for e in container.env}}
        # `python` in the spec is the image's: here, this environment's.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "w") as sink:
            for step in steps:
                command = placeholder_utils.replace_placeholders(
                    full_command=step,
                    executor_input_dict=as_dict,
                    pipeline_resource_name=self.run_name,
                    task_resource_name=name,
                    pipeline_root=self.pipeline_root,
                )
                if command and command[0] in ("python", "python3"):
                    command[0] = sys.executable
                sink.write(f"$ {' '.join(command[:3])} ...\n")
                sink.flush()
                if self._run(command, env, sink) != 0:
                    return "failed", log
                if step is not steps[-1]:
                    # What Vertex AI does with a driver's output before the
                    # executor runs: the output artifacts take its metadata
                    # (ImportExampleGen: span, version, input fingerprint); the
                    # executor reads the updated parameters from the file itself.
                    hook = executor_output_utils.load_executor_output(executor_input.outputs.output_file)
                    for out_key, artifacts in hook.artifacts.items():
                        if out_key in executor_input.outputs.artifacts and artifacts.artifacts:
                            executor_input.outputs.artifacts[out_key].artifacts[0].metadata.update(
                                json_format.MessageToDict(artifacts.artifacts[0].metadata)
                            )
                    as_dict = executor_input_utils.executor_input_to_dict(executor_input, component)
        output = executor_output_utils.load_executor_output(executor_input.outputs.output_file)
        if self.kfp:
            try:
                produced = backend_rules.recorded_outputs(executor_input, output, self.kfp_version, self.store.next_id)
            except PreflightError as e:
                with open(log, "a") as sink:
                    sink.write(f"launcher: {e}\n")
                return "failed", log
        else:
            output = executor_output_utils.add_type_to_executor_output(executor_input, output)
            produced = {}
            for out_key, planned in executor_input.outputs.artifacts.items():
                produced[out_key] = output.artifacts[out_key] if output.artifacts[out_key].artifacts else planned
        self._record(name, produced)
        if key is not None:
            self.store.cache(key, name, produced)
        self.output_parameters[name] = dict(output.parameter_values)
        return "succeeded", log

    def _run(self, command: list[str], env: dict, sink) -> int:
        def line(text: str) -> None:
            sink.write(text)
            if self.verbose:
                self.echo("    | " + text.rstrip("\n"))

        return self.launcher.run(command, env, line)

    def _executor_input(self, name, task, component, task_root) -> pb.ExecutorInput:
        executor_input = pb.ExecutorInput()
        inputs = executor_input.inputs
        for key, spec in task.inputs.parameters.items():
            inputs.parameter_values[key].CopyFrom(self._parameter(name, key, spec))
        for key, spec in task.inputs.artifacts.items():
            if not spec.HasField("task_output_artifact"):
                raise PreflightError(f"task {name}: input artifact {key} does not come from a task")
            source = spec.task_output_artifact
            produced = self.outputs.get(source.producer_task, {}).get(source.output_artifact_key)
            if produced is not None and produced.artifacts:  # a resolver may find nothing
                inputs.artifacts[key].CopyFrom(produced)
                if self.kfp:
                    for artifact in inputs.artifacts[key].artifacts:
                        # metadata/client.go `GetOutputArtifactsByExecutionId`:
                        # `Schema: ""`, left unfilled upstream in 2.0.3, 2.5.0 and main.
                        artifact.type.CopyFrom(pb.ArtifactTypeSchema(instance_schema=""))
        outputs = executor_input.outputs
        definitions = dict(component.output_definitions.artifacts)
        if self.kfp and self.kfp_version != "2.0":
            definitions[backend_rules.KFP_LOG_OUTPUT] = pb.ComponentOutputsSpec.ArtifactSpec(
                artifact_type=pb.ArtifactTypeSchema(schema_title=backend_rules.KFP_LOG_TYPE)
            )
        for key, spec in definitions.items():
            planned = executor_input_utils.make_artifact_list(key, spec.artifact_type, task_root)
            if self.kfp:
                # driver.go `provisionOutputs`: no name (2.0.3, 2.5.0), the
                # spec's metadata.
                planned.artifacts[0].name = ""
                planned.artifacts[0].metadata.CopyFrom(spec.metadata)
            else:
                planned.artifacts[0].name = f"{self.run_name}/{name}/{key}"  # unique, as ML Metadata names are
            outputs.artifacts[key].CopyFrom(planned)
        if self.kfp:
            pod = os.path.join(task_root, POD_ROOT)
            shutil.rmtree(pod, ignore_errors=True)  # every pod starts with an empty /tmp
            for key in component.output_definitions.parameters:
                outputs.parameters[key].output_file = os.path.join(pod, backend_rules.KFP_OUTPUT_PARAMETERS, key)
            outputs.output_file = os.path.join(pod, backend_rules.KFP_OUTPUT_FILE)
        else:
            for key in component.output_definitions.parameters:
                outputs.parameters[key].output_file = os.path.join(task_root, key)
            outputs.output_file = os.path.join(task_root, EXECUTOR_OUTPUT)
        return executor_input

    def _parameter(self, task: str, key: str, spec: pb.TaskInputsSpec.InputParameterSpec) -> struct_pb2.Value:
        kind = spec.WhichOneof("kind")
        if kind == "runtime_value":
            value = spec.runtime_value
            if value.HasField("constant"):
                return self._local(value.constant)
            raise PreflightError(f"task {task}: parameter {key} is not a 2.1 constant")
        if kind == "component_input_parameter":
            return self._local(self.package.parameters[spec.component_input_parameter])
        if kind == "task_output_parameter":
            source = spec.task_output_parameter
            return self.output_parameters[source.producer_task][source.output_parameter_key]
        raise PreflightError(f"task {task}: parameter {key} is a {kind}, which preflight does not resolve")

    def _local(self, value: struct_pb2.Value) -> struct_pb2.Value:
        """A string value with the image's paths (and mapped URIs) replaced by
        local ones; an object store URI left over is refused, before a task
        waits on a store it cannot reach from here."""
        if value.WhichOneof("kind") != "string_value":
            return value
        text = value.string_value
        for image_path, local in self.path_map.items():
            text = re.sub(re.escape(image_path.rstrip("/")) + r'(?=$|/|")', local.rstrip("/"), text)
        left = re.search(r'(gs|s3|minio)://[^"\s]*', text)
        if left:
            raise PreflightError(
                f"{left[0]}: preflight runs here, on local folders; map it: --path-map {left[0]}=FOLDER"
            )
        return struct_pb2.Value(string_value=text)

    # -- resolver tasks ---------------------------------------------------------

    def _resolve(self, name, task, component, resolver) -> str:
        """Each output artifact query answered with the newest recorded
        artifact that matches it, as Vertex AI answers it from ML Metadata."""
        executor_input = self._executor_input(name, task, component, os.path.join(self.run_root, name))
        as_dict = json_format.MessageToDict(executor_input)
        found = {}
        for key, query in resolver.output_artifact_queries.items():
            text = placeholder_utils.resolve_io_placeholders(as_dict, query.filter)
            clauses = [c.strip() for c in text.split(" AND ")]
            matches = [a for a in reversed(self.store.catalogue()) if all(backend_rules.matches(a, c) for c in clauses)]
            if matches:
                found[key] = pb.ArtifactList(artifacts=[matches[0]])
        self.outputs[name] = found  # not recorded: a resolver produces nothing new
        return "resolved" if found else "resolved none"

    def _record(self, task: str, produced: dict[str, pb.ArtifactList]) -> None:
        self.outputs[task] = produced
        self.store.record(produced)

    def _uri_of(self, title: str) -> str | None:
        uris = [
            a.uri
            for p in self.outputs.values()
            for lst in p.values()
            for a in lst.artifacts
            if backend_rules.type_title(a.type) == title
        ]
        return uris[-1] if uris else None

    def _metadata_of(self, title: str, key: str):
        """`key` of the last artifact of type `title` this run produced."""
        value = None
        for produced in self.outputs.values():
            for artifacts in produced.values():
                for artifact in artifacts.artifacts:
                    if backend_rules.type_title(artifact.type) == title and key in artifact.metadata:
                        value = artifact.metadata[key]
        return value


def _data_refused(log: str | None) -> bool:
    if not log or not os.path.exists(log):
        return False
    from flowers.components.gates import REFUSED_MARK  # light enough: only read on a failure

    with open(log, errors="replace") as f:
        return REFUSED_MARK in f.read()


def _gate_failures(uri: str | None) -> list[str]:
    """The failed gates in words, as `flowers run` prints them."""
    from flowers.runs import records

    return records.gate_failures_at(uri) if uri else []


def tail(path: str, lines: int = 25) -> list[str]:
    with open(path, errors="replace") as f:
        return f.read().splitlines()[-lines:]


def run(
    package_path: str,
    pipeline_root: str | None = None,
    params: Sequence[str] = (),
    path_map: Mapping[str, str] | None = None,
    echo: Callable[[str], None] = print,
    verbose: bool = False,
    backend: str = "kfp",
    kfp_version: str = "2.5",
    fresh_processes: bool = False,
) -> Result:
    """Preflight one compiled package; the Result says how it ended."""
    package = package_lib.load(package_path)
    package_lib.set_parameters(package, params)
    if pipeline_root is None:
        local = package.output_directory if package.output_directory and "://" not in package.output_directory else None
        pipeline_root = local or os.path.join(os.path.dirname(os.path.abspath(package_path)), "preflight")
    mapping = default_path_map()
    mapping.update(path_map or {})
    return Preflight(package, pipeline_root, mapping, echo, verbose, backend, kfp_version, fresh_processes).run()
