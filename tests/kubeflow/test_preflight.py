"""The compiled spec runs: `flowers kubeflow preflight` executes the compiled
package task by task, as the KFP v2 launcher would, on the bundled sample.

One compile is shared by every test here. The fast tests check how each
task's ExecutorInput is built; the slow ones run the whole spec twice under
one pipeline root: first to a blessed, pushed model, then with the
`eval_config` runtime parameter replaced by a gate no model can pass, which
must end refused, with the first run's model resolved as the baseline and
nothing pushed."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from google.protobuf import struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from flowers import outcome
from flowers.config import PipelineConfig
from flowers.kubeflow import preflight, runner

# Tiny: one head epoch, no fine-tuning, Beam in this process. The gate is 0
# so a one-epoch model is blessed; the refused run shows the gate biting.
# warm_start adds TFX's latest-blessed-model Resolver (two resolver tasks).
SETTINGS = {
    "epochs": "1",
    "fine_tune_epochs": "0",
    "min_accuracy": "0",
    "beam_args": "--direct_running_mode=in_memory",
    "warm_start": "true",
}
RESOLVERS = (
    "latest_blessed_model_resolver-model-blessing-resolver",
    "latest_blessed_model_resolver-model-resolver",
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(config, package path): compiled once for the whole module."""
    root = tmp_path_factory.mktemp("preflight")
    config = PipelineConfig(output_dir=str(root / "out")).override(SETTINGS)
    package = str(root / "flowers.yaml")
    runner.compile_pipeline(config, package)
    return config, package


def flowers_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowers.cli.main", "kubeflow", *args], capture_output=True, text=True, timeout=3600
    )


def run_root(stdout: str) -> str:
    return next(line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("preflight of "))


def task_lines(stdout: str) -> dict[str, tuple[str, float]]:
    """task -> (status, seconds) from preflight's per-task lines."""
    found = {}
    for line in stdout.splitlines():
        parts = line.split()
        if line.startswith("  ") and len(parts) >= 3 and parts[-1] == "s":
            found[parts[0]] = (" ".join(parts[1:-2]), float(parts[-2]))
    return found


# -- fast: how a task's ExecutorInput is made -------------------------------


def test_tasks_run_after_everything_they_depend_on(compiled):
    _, package = compiled
    spec = preflight.load(package).spec
    order = preflight.task_order(spec)
    assert sorted(order) == sorted(spec.root.dag.tasks)
    for name, task in spec.root.dag.tasks.items():
        for upstream in set(task.dependent_tasks) | preflight._producers(task):
            assert order.index(upstream) < order.index(name), (upstream, name)
    assert order[0] == "ImportExampleGen" and order[-1] == "Pusher"
    assert order.index("DataGate") < order.index("Transform")


def test_executor_input_takes_constants_runtime_parameters_and_upstream_artifacts(compiled, tmp_path):
    _, package = compiled
    loaded = preflight.load(package)
    trainer_config = json.dumps({"training": "{}", "marker": "overridden"})
    preflight.set_parameters(loaded, [f"trainer_config={trainer_config}"])
    run = preflight.Preflight(loaded, str(tmp_path), preflight.default_path_map(), echo=lambda _: None, verbose=False)
    examples = pb.ArtifactList(artifacts=[pb.RuntimeArtifact(name="run/ImportExampleGen/examples", uri="/x/examples")])
    examples.artifacts[0].metadata.update({"split_names": '["train", "eval"]', "span": 1.0})
    run.outputs["ImportExampleGen"] = {"examples": examples}
    spec = loaded.spec
    task = spec.root.dag.tasks["Trainer"]
    executor_input = run._executor_input("Trainer", task, spec.components[task.component_ref.name], str(tmp_path / "Trainer"))

    parameters = executor_input.inputs.parameter_values
    assert parameters["custom_config"].string_value == trainer_config  # the --param value
    assert parameters["run_fn"].string_value == "flowers.components.trainer.run_fn"  # a constant of the spec
    # Upstream outputs with their URI and metadata; a missing producer output is left out.
    assert executor_input.inputs.artifacts["examples"] == examples
    assert "transform_graph" not in executor_input.inputs.artifacts
    model = executor_input.outputs.artifacts["model"].artifacts[0]
    assert model.uri == str(tmp_path / "Trainer" / "model")
    assert model.name == f"{run.run_name}/Trainer/model"
    assert preflight.type_title(model.type) == "tfx.Model"
    assert executor_input.outputs.output_file == str(tmp_path / "Trainer" / preflight.EXECUTOR_OUTPUT)

    # The image's bundled paths are read from this checkout.
    gen = spec.root.dag.tasks["ImportExampleGen"]
    gen_input = run._executor_input("ImportExampleGen", gen, spec.components[gen.component_ref.name], str(tmp_path / "gen"))
    assert loaded.parameters["data_root"].string_value == "/flowers/data/sample"
    local_data = preflight.default_path_map()[preflight.IMAGE_DATA_DIR]
    assert gen_input.inputs.parameter_values["input_base"].string_value == f"{local_data}/sample"


def test_container_commands_are_the_specs_own(compiled):
    _, package = compiled
    loaded = preflight.load(package)
    for name, task in loaded.spec.root.dag.tasks.items():
        executor = loaded.deployment.executors[loaded.spec.components[task.component_ref.name].executor_label]
        if name in RESOLVERS:
            assert executor.HasField("resolver")
            continue
        assert list(executor.container.command)[:2] == ["python", "-m"], name
        assert "{{$}}" in executor.container.args, name
    gen = loaded.deployment.executors["ImportExampleGen_executor"].container
    assert list(gen.lifecycle.pre_cache_check.command)[-1] == "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"


def test_resolver_queries_find_the_newest_blessed_model(compiled, tmp_path):
    _, package = compiled
    loaded = preflight.load(package)
    run = preflight.Preflight(loaded, str(tmp_path), {}, echo=lambda _: None, verbose=False)
    spec = loaded.spec
    resolve = lambda name: run._resolve(  # noqa: E731
        name, spec.root.dag.tasks[name], spec.components[spec.root.dag.tasks[name].component_ref.name],
        loaded.deployment.executors[spec.components[spec.root.dag.tasks[name].component_ref.name].executor_label].resolver,
    )
    # First run on a fresh root: nothing to compare with.
    assert [resolve(name) for name in RESOLVERS] == ["resolved none", "resolved none"]
    assert run.outputs[RESOLVERS[1]] == {}

    def artifact(title: str, name: str, **metadata) -> pb.ArtifactList:
        found = pb.RuntimeArtifact(name=name, uri=f"/runs/{name}", type=pb.ArtifactTypeSchema(schema_title=title))
        found.metadata.update(metadata)
        return pb.ArtifactList(artifacts=[found])

    run._record("r1", {"model": artifact("tfx.Model", "r1/Trainer/model"), "blessing": artifact("tfx.ModelBlessing", "r1/b", blessed=1, current_model_id="r1/Trainer/model")})
    run._record("r2", {"model": artifact("tfx.Model", "r2/Trainer/model"), "blessing": artifact("tfx.ModelBlessing", "r2/b", blessed=0, current_model_id="r2/Trainer/model")})
    assert [resolve(name) for name in RESOLVERS] == ["resolved", "resolved"]
    # The newest *blessed* blessing (r1: r2 was refused), then the model it blessed.
    assert run.outputs[RESOLVERS[0]]["model_blessing"].artifacts[0].name == "r1/b"
    assert run.outputs[RESOLVERS[1]]["model"].artifacts[0].uri == "/runs/r1/Trainer/model"


def test_filter_clauses_and_refusals(tmp_path, compiled):
    artifact = pb.RuntimeArtifact(name="a", type=pb.ArtifactTypeSchema(instance_schema="title: tfx.ModelBlessing\ntype: object\n"))
    artifact.metadata.update({"blessed": 1.0})
    assert preflight._matches(artifact, 'schema_title="tfx.ModelBlessing"')
    assert preflight._matches(artifact, "metadata.blessed.number_value=1")
    assert not preflight._matches(artifact, "metadata.blessed.number_value=0")
    assert not preflight._matches(artifact, 'name="null"')  # an unresolved placeholder matches nothing
    with pytest.raises(preflight.PreflightError, match="not one preflight can answer"):
        preflight._matches(artifact, "create_time>=1")

    _, package = compiled
    loaded = preflight.load(package)
    with pytest.raises(preflight.PreflightError, match="unknown runtime parameter 'epochs'"):
        preflight.set_parameters(loaded, ["epochs=3"])
    with pytest.raises(preflight.PreflightError, match="local folder"):
        preflight.Preflight(loaded, "gs://bucket/root", {}, print, False)


def test_a_vertex_pipeline_job_is_read_with_its_runtime_config(compiled, tmp_path):
    _, package = compiled
    spec = yaml.safe_load(open(package))
    job = {
        "displayName": "flowers",
        "pipelineSpec": spec,
        "runtimeConfig": {"gcsOutputDirectory": str(tmp_path / "root"), "parameterValues": {"data_root": "/elsewhere"}},
    }
    path = tmp_path / "flowers.json"
    path.write_text(json.dumps(job))
    loaded = preflight.load(str(path))
    assert loaded.output_directory == str(tmp_path / "root")
    assert loaded.parameters["data_root"] == struct_pb2.Value(string_value="/elsewhere")
    assert loaded.parameters["eval_config"].string_value == spec["root"]["inputDefinitions"]["parameters"]["eval_config"]["defaultValue"]


# -- slow: the compiled spec runs ---------------------------------------------


@pytest.fixture(scope="module")
def pushed_run(compiled):
    config, package = compiled
    done = flowers_cli("preflight", package)
    return config, package, done


@pytest.mark.slow
def test_compiled_spec_runs_to_a_pushed_blessed_model(pushed_run):
    config, package, done = pushed_run
    assert done.returncode == outcome.PUSHED, done.stdout + done.stderr[-5000:]
    tasks = task_lines(done.stdout)
    spec = preflight.load(package).spec
    assert set(tasks) == set(spec.root.dag.tasks)
    assert {tasks[t][0] for t in tasks if t not in RESOLVERS} == {"succeeded"}
    # A fresh pipeline root: no blessed model to compare with yet.
    assert [tasks[t][0] for t in RESOLVERS] == ["resolved none", "resolved none"]
    assert "blessed:    yes" in done.stdout
    [version] = os.listdir(config.serving_dir)
    assert f"pushed to:  {config.serving_dir}/{version}" in done.stdout
    assert os.path.exists(os.path.join(config.serving_dir, version, "saved_model.pb"))


@pytest.mark.slow
def test_an_overridden_gate_reaches_the_evaluator_and_nothing_is_pushed(pushed_run):
    config, package, first = pushed_run
    assert first.returncode == outcome.PUSHED, first.stdout + first.stderr[-5000:]
    before = os.listdir(config.serving_dir)
    # The eval_config runtime parameter with an accuracy gate of 1.0.
    impossible = runner.runtime_values(config.override({"min_accuracy": "1.0"}))["eval_config"]
    done = flowers_cli("preflight", package, "--param", f"eval_config={impossible}")
    assert done.returncode == outcome.REFUSED, done.stdout + done.stderr[-5000:]
    tasks = task_lines(done.stdout)
    assert {tasks[t][0] for t in tasks if t not in RESOLVERS} == {"succeeded"}
    # The resolver tasks found the first run's blessed model: the Trainer warm-started from it.
    assert [tasks[t][0] for t in RESOLVERS] == ["resolved", "resolved"]
    with open(os.path.join(run_root(done.stdout), "Trainer", preflight.TASK_LOG)) as log:
        assert f"warm start: from {run_root(first.stdout)}/Trainer/model/" in log.read()
    assert "blessed:    no" in done.stdout
    assert "is below the threshold 1.0000" in done.stdout
    assert "pushed to:  not pushed (model not blessed)" in done.stdout
    assert os.listdir(config.serving_dir) == before
