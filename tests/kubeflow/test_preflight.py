"""The compiled spec runs: `flowers kubeflow preflight` executes the compiled
package task by task, handing each task what the chosen backend hands it, on
the bundled sample.

The fast tests check how each task's ExecutorInput is built for each
backend. The slow ones run the shared kfp package (tests/kubeflow/conftest.py)
three times. Twice under one pipeline root as open-source Kubeflow Pipelines
(the backend this project is for) runs it: first to a pushed model, then,
after a new span landed in the data root and with the `eval_config` runtime
parameter replaced by a gate no model can pass, a run that must ingest both
spans (its cache cannot serve the first run's examples), train on them, and
end refused with nothing pushed. And once as Vertex AI runs it, on a data
root the data gate refuses: every task up to the gate runs as Vertex AI
hands it its inputs (the preCacheCheck hook, no repairs), at a fifth of a
whole run's cost. Tasks are forks of a warm process, preflight's default
(tests/kubeflow/test_preflight_forks.py checks that a fork behaves as the
same command started as a process of its own)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf
import yaml
from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2 as pb
from samples import sample_examples

from flowers import features, outcome
from flowers.components import eval_predictions
from flowers.config import SAMPLE_DATA, PipelineConfig
from flowers.kubeflow import backend_rules, preflight, preflight_store, runner
from flowers.kubeflow import package as package_lib
from flowers.runs import records

# warm_start adds TFX's latest-blessed-model Resolver (two resolver tasks):
# a Vertex AI package.
WARM_SETTINGS = {
    "training.epochs": "1",
    "training.fine_tune_epochs": "0",
    "gates.min_accuracy": "0",
    "gates.min_class_recall": "0",
    "run.beam_args": "--direct_running_mode=in_memory",
    "run.warm_start": "true",
}
RESOLVERS = (
    "latest_blessed_model_resolver-model-blessing-resolver",
    "latest_blessed_model_resolver-model-resolver",
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(config, package path) of the warm-start package for Vertex AI."""
    root = tmp_path_factory.mktemp("preflight")
    config = PipelineConfig(output_dir="gs://flowers-preflight/warm").override(WARM_SETTINGS)
    package = str(root / "flowers.yaml")
    runner.compile_pipeline(config, package, "vertex")
    return config, package


def make_run(compiled_package, root, backend: str, kfp_version: str = "2.5") -> preflight.Preflight:
    """A Preflight of the package with its bucket read from root/out."""
    config, package = compiled_package
    mapping = {**preflight.default_path_map(), config.output_dir: str(root / "out")}
    return preflight.Preflight(
        package_lib.load(package), str(root), mapping, lambda _: None, False, backend, kfp_version
    )


def task_input(run: preflight.Preflight, name: str) -> pb.ExecutorInput:
    spec = run.package.spec
    task = spec.root.dag.tasks[name]
    return run._executor_input(
        name, task, spec.components[task.component_ref.name], os.path.join(run.pipeline_root, name)
    )


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
    spec = package_lib.load(package).spec
    order = package_lib.task_order(spec)
    assert sorted(order) == sorted(spec.root.dag.tasks)
    for name, task in spec.root.dag.tasks.items():
        for upstream in set(task.dependent_tasks) | package_lib._producers(task):
            assert order.index(upstream) < order.index(name), (upstream, name)
    assert order[0] == "ImportExampleGen" and order[-1] == "Pusher"
    assert order.index("DataGate") < order.index("Transform")


def test_executor_input_takes_constants_runtime_parameters_and_upstream_artifacts(compiled, tmp_path):
    _, package = compiled
    loaded = package_lib.load(package)
    trainer_config = json.dumps({"training": "{}", "marker": "overridden"})
    package_lib.set_parameters(loaded, [f"trainer_config={trainer_config}"])
    mapping = {**preflight.default_path_map(), compiled[0].output_dir: str(tmp_path / "out")}
    run = preflight.Preflight(loaded, str(tmp_path), mapping, echo=lambda _: None, verbose=False, backend="vertex")
    examples = pb.ArtifactList(artifacts=[pb.RuntimeArtifact(name="run/ImportExampleGen/examples", uri="/x/examples")])
    examples.artifacts[0].metadata.update({"split_names": '["train", "eval"]', "span": 1.0})
    run.outputs["ImportExampleGen"] = {"examples": examples}
    spec = loaded.spec
    task = spec.root.dag.tasks["Trainer"]
    executor_input = run._executor_input(
        "Trainer", task, spec.components[task.component_ref.name], str(tmp_path / "Trainer")
    )

    parameters = executor_input.inputs.parameter_values
    assert parameters["custom_config"].string_value == trainer_config  # the --param value
    assert parameters["run_fn"].string_value == "flowers.components.trainer.run_fn"  # a constant of the spec
    # Upstream outputs with their URI and metadata; a missing producer output is left out.
    assert executor_input.inputs.artifacts["examples"] == examples
    assert "transform_graph" not in executor_input.inputs.artifacts
    model = executor_input.outputs.artifacts["model"].artifacts[0]
    assert model.uri == str(tmp_path / "Trainer" / "model")
    assert model.name == f"{run.run_name}/Trainer/model"
    assert backend_rules.type_title(model.type) == "tfx.Model"
    assert executor_input.outputs.output_file == str(tmp_path / "Trainer" / preflight.EXECUTOR_OUTPUT)

    # The image's bundled paths are read from this checkout.
    gen = spec.root.dag.tasks["ImportExampleGen"]
    gen_input = run._executor_input(
        "ImportExampleGen", gen, spec.components[gen.component_ref.name], str(tmp_path / "gen")
    )
    assert loaded.parameters["data_root"].string_value == "/flowers/data/sample"
    local_data = preflight.default_path_map()[preflight.IMAGE_DATA_DIR]
    assert gen_input.inputs.parameter_values["input_base"].string_value == f"{local_data}/sample"


def test_container_commands_are_the_specs_own(compiled):
    _, package = compiled
    loaded = package_lib.load(package)
    for name, task in loaded.spec.root.dag.tasks.items():
        executor = loaded.deployment.executors[loaded.spec.components[task.component_ref.name].executor_label]
        if name in RESOLVERS:
            assert executor.HasField("resolver")
            continue
        assert list(executor.container.command)[:2] == ["python", "-m"], name
        assert "{{$}}" in executor.container.args, name
    gen = loaded.deployment.executors["ImportExampleGen_executor"].container
    assert (
        list(gen.lifecycle.pre_cache_check.command)[-1] == "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"
    )


def test_resolver_queries_find_the_newest_blessed_model(compiled, tmp_path):
    _, package = compiled
    loaded = package_lib.load(package)
    run = preflight.Preflight(loaded, str(tmp_path), {}, echo=lambda _: None, verbose=False, backend="vertex")
    spec = loaded.spec
    resolve = lambda name: run._resolve(  # noqa: E731
        name,
        spec.root.dag.tasks[name],
        spec.components[spec.root.dag.tasks[name].component_ref.name],
        loaded.deployment.executors[
            spec.components[spec.root.dag.tasks[name].component_ref.name].executor_label
        ].resolver,
    )
    # First run on a fresh root: nothing to compare with.
    assert [resolve(name) for name in RESOLVERS] == ["resolved none", "resolved none"]
    assert run.outputs[RESOLVERS[1]] == {}

    def artifact(title: str, name: str, **metadata) -> pb.ArtifactList:
        found = pb.RuntimeArtifact(name=name, uri=f"/runs/{name}", type=pb.ArtifactTypeSchema(schema_title=title))
        found.metadata.update(metadata)
        return pb.ArtifactList(artifacts=[found])

    run._record(
        "r1",
        {
            "model": artifact("tfx.Model", "r1/Trainer/model"),
            "blessing": artifact("tfx.ModelBlessing", "r1/b", blessed=1, current_model_id="r1/Trainer/model"),
        },
    )
    run._record(
        "r2",
        {
            "model": artifact("tfx.Model", "r2/Trainer/model"),
            "blessing": artifact("tfx.ModelBlessing", "r2/b", blessed=0, current_model_id="r2/Trainer/model"),
        },
    )
    assert [resolve(name) for name in RESOLVERS] == ["resolved", "resolved"]
    # The newest *blessed* blessing (r1: r2 was refused), then the model it blessed.
    assert run.outputs[RESOLVERS[0]]["model_blessing"].artifacts[0].name == "r1/b"
    assert run.outputs[RESOLVERS[1]]["model"].artifacts[0].uri == "/runs/r1/Trainer/model"


def test_filter_clauses_and_refusals(tmp_path, compiled):
    artifact = pb.RuntimeArtifact(
        name="a", type=pb.ArtifactTypeSchema(instance_schema="title: tfx.ModelBlessing\ntype: object\n")
    )
    artifact.metadata.update({"blessed": 1.0})
    assert backend_rules.matches(artifact, 'schema_title="tfx.ModelBlessing"')
    assert backend_rules.matches(artifact, "metadata.blessed.number_value=1")
    assert not backend_rules.matches(artifact, "metadata.blessed.number_value=0")
    assert not backend_rules.matches(artifact, 'name="null"')  # an unresolved placeholder matches nothing
    with pytest.raises(package_lib.PreflightError, match="not one preflight can answer"):
        backend_rules.matches(artifact, "create_time>=1")

    _, package = compiled
    loaded = package_lib.load(package)
    with pytest.raises(package_lib.PreflightError, match="unknown runtime parameter 'epochs'"):
        package_lib.set_parameters(loaded, ["epochs=3"])
    with pytest.raises(package_lib.PreflightError, match="local folder"):
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
    loaded = package_lib.load(str(path))
    assert loaded.output_directory == str(tmp_path / "root")
    assert loaded.parameters["data_root"] == struct_pb2.Value(string_value="/elsewhere")
    assert (
        loaded.parameters["eval_config"].string_value
        == spec["root"]["inputDefinitions"]["parameters"]["eval_config"]["defaultValue"]
    )


# -- fast: what open-source Kubeflow Pipelines hands a task ------------------


def test_kfp_executor_inputs_are_shaped_as_the_backend_shapes_them(kfp_package, tmp_path):
    run = make_run(kfp_package, tmp_path, "kfp")
    gen = task_input(run, "ImportExampleGen")
    examples = gen.outputs.artifacts["examples"].artifacts[0]
    assert examples.name == "" and backend_rules.type_title(examples.type) == "tfx.Examples"  # provisionOutputs
    logs = gen.outputs.artifacts[backend_rules.KFP_LOG_OUTPUT].artifacts[0]
    assert logs.type == pb.ArtifactTypeSchema(schema_title="system.Artifact")
    assert gen.outputs.output_file == str(
        tmp_path / "ImportExampleGen" / "pod" / "tmp" / "kfp_outputs" / "output_metadata.json"
    )

    # The launcher records what the executor wrote; the next driver reads it back from ML Metadata.
    written = pb.ExecutorOutput()
    written.artifacts["examples"].artifacts.add().metadata.update(
        {"span": 3, "blessed": True, "split_names": '["train"]', "splits": ["train"], "nested": {"k": 1}}
    )
    produced = backend_rules.recorded_outputs(gen, written, run.kfp_version, run.store.next_id)
    recorded = produced["examples"].artifacts[0]
    assert {recorded.name, produced[backend_rules.KFP_LOG_OUTPUT].artifacts[0].name} == {"1", "2"}  # metadata ids
    assert json_format.MessageToDict(recorded.metadata) == {
        "span": 3.0,
        "blessed": 1.0,  # a bool comes back a number
        "split_names": '["train"]',
        "splits": {"list": ["train"]},  # lists and structs come back wrapped
        "nested": {"struct": {"k": 1.0}},
        "display_name": "examples",
        "store_session_info": recorded.metadata["store_session_info"],
    }
    run._record("ImportExampleGen", produced)
    stats = task_input(run, "StatisticsGen")
    [handed] = stats.inputs.artifacts["examples"].artifacts
    assert handed.name == recorded.name and handed.uri == recorded.uri and handed.metadata == recorded.metadata
    assert handed.type == pb.ArtifactTypeSchema(instance_schema="")  # the schema ML Metadata does not keep
    assert json.loads(json_format.MessageToJson(handed))["type"] == {"instanceSchema": ""}

    # KFP 2.0-2.4: no log output, no store session.
    old = make_run(kfp_package, tmp_path / "old", "kfp", "2.0")
    old_gen = task_input(old, "ImportExampleGen")
    assert list(old_gen.outputs.artifacts) == ["examples"]
    assert (
        "store_session_info"
        not in backend_rules.recorded_outputs(old_gen, written, old.kfp_version, old.store.next_id)["examples"]
        .artifacts[0]
        .metadata
    )
    # A null the launcher cannot store fails the task, as there.
    written.artifacts["examples"].artifacts[0].metadata["gone"] = None
    with pytest.raises(package_lib.PreflightError, match='output "examples": .*unsupported value type'):
        backend_rules.recorded_outputs(gen, written, run.kfp_version, run.store.next_id)


def test_kfp_cache_key_holds_nothing_of_the_data(kfp_package, tmp_path):
    """Why ImportExampleGen is compiled uncached for kfp: its key is the same
    whatever the data root holds; a downstream key follows its input's id."""
    data = tmp_path / "data"
    shutil.copytree(SAMPLE_DATA, data)
    run = make_run(kfp_package, tmp_path, "kfp")
    package_lib.set_parameters(run.package, [f"data_root={data}"])
    spec = run.package.spec
    gen_component = spec.components[spec.root.dag.tasks["ImportExampleGen"].component_ref.name]
    gen_container = run.package.deployment.executors[gen_component.executor_label].container
    before = backend_rules.cache_key(task_input(run, "ImportExampleGen"), gen_component, gen_container)
    shutil.copytree(data / "span-1", data / "span-2")
    assert backend_rules.cache_key(task_input(run, "ImportExampleGen"), gen_component, gen_container) == before
    assert spec.root.dag.tasks["ImportExampleGen"].caching_options.enable_cache is False

    stats_component = spec.components[spec.root.dag.tasks["StatisticsGen"].component_ref.name]
    stats_container = run.package.deployment.executors[stats_component.executor_label].container
    keys = []
    for artifact_id in ("1", "9"):
        run.outputs["ImportExampleGen"] = {
            "examples": pb.ArtifactList(artifacts=[pb.RuntimeArtifact(name=artifact_id, uri="/x")])
        }
        keys.append(backend_rules.cache_key(task_input(run, "StatisticsGen"), stats_component, stats_container))
    assert keys[0] != keys[1]


def test_kfp_refuses_resolver_tasks_and_unmapped_buckets_before_any_task(compiled, kfp_package, tmp_path):
    _, warm = compiled
    done = flowers_cli("preflight", warm, "--pipeline-root", str(tmp_path / "warm"))
    assert done.returncode == outcome.USAGE, done.stdout + done.stderr[-3000:]
    assert (
        "executor latest_blessed_model_resolver-model-blessing-resolver_executor is a resolver executor" in done.stderr
    )
    assert "non-container and non-importer executor not implemented" in done.stderr
    assert not (tmp_path / "warm").exists()  # no task ran
    # The same package runs as Vertex AI runs it (its resolvers answered here).
    run = make_run(compiled, tmp_path / "vertex", "vertex")
    run.check_executors()

    config, package = kfp_package
    bare = preflight.Preflight(
        package_lib.load(package), str(tmp_path / "bare"), preflight.default_path_map(), print, False
    )
    with pytest.raises(package_lib.PreflightError, match=f"--path-map {config.output_dir}/serving=FOLDER"):
        bare.run()
    assert not (tmp_path / "bare").exists()


# -- slow: the compiled spec runs ---------------------------------------------


def preflight_args(kfp_package, root) -> list[str]:
    config, package = kfp_package
    return [package, "--pipeline-root", str(root / "root"), "--path-map", f"{config.output_dir}={root / 'out'}"]


def catalogue(root) -> dict[str, dict]:
    """name -> artifact, of every artifact the runs under root/root recorded."""
    with open(root / "root" / preflight_store.CATALOGUE) as f:
        return {a["name"]: a for a in map(json.loads, f)}


def handed(stdout: str, task: str) -> dict:
    with open(os.path.join(run_root(stdout), task, preflight.EXECUTOR_INPUT)) as f:
        return json.load(f)


def write_refused_span(folder) -> None:
    """60 photos of the sample, one class's labelled 7 (out of range): the
    data gate refuses them (tests/pipeline/test_data_gate_e2e.py)."""
    os.makedirs(folder)
    with tf.io.TFRecordWriter(os.path.join(folder, "flowers-00000-of-00001.tfrec")) as w:
        for example in sample_examples(60):
            label = example.features.feature[features.CLASS_KEY].int64_list.value
            if label[0] == 1:
                label[0] = 7
            w.write(example.SerializeToString())


@pytest.fixture(scope="module")
def vertex_run(kfp_package, tmp_path_factory):
    root = tmp_path_factory.mktemp("vertex_run")
    write_refused_span(root / "data" / "span-1")
    args = [*preflight_args(kfp_package, root), "--param", f"data_root={root / 'data'}"]
    return root, flowers_cli("preflight", *args, "--backend", "vertex")


@pytest.fixture(scope="module")
def kfp_runs(kfp_package, tmp_path_factory):
    """Two kfp runs under one pipeline root, a span added in between."""
    config, _ = kfp_package
    root = tmp_path_factory.mktemp("kfp_runs")
    data = root / "data"
    shutil.copytree(SAMPLE_DATA, data)
    args = [*preflight_args(kfp_package, root), "--param", f"data_root={data}"]
    first = flowers_cli("preflight", *args)
    shutil.copytree(data / "span-1", data / "span-2")
    serving = sorted(os.listdir(root / "out" / "serving")) if (root / "out" / "serving").exists() else []
    impossible = runner.runtime_values(config.override({"gates.min_accuracy": "1.0"}))["eval_config"]
    second = flowers_cli("preflight", *args, "--param", f"eval_config={impossible}")
    return root, first, second, serving


@pytest.mark.slow
def test_vertex_mode_runs_each_task_with_nothing_repaired_up_to_the_data_gate(vertex_run, kfp_package):
    root, done = vertex_run
    assert done.returncode == outcome.DATA_REFUSED, done.stdout + done.stderr[-5000:]
    assert "(Vertex AI)" in done.stdout
    tasks = task_lines(done.stdout)
    order = package_lib.task_order(package_lib.load(kfp_package[1]).spec)
    assert list(tasks) == order[: order.index("DataGate") + 1]  # in order, and nothing after the gate
    assert tasks.pop("DataGate")[0] == "failed"
    assert {status for status, _ in tasks.values()} == {"succeeded"}
    assert "StatisticsGen" in tasks  # a task handed an upstream artifact, as Vertex AI hands it
    with open(os.path.join(run_root(done.stdout), "ImportExampleGen", preflight.TASK_LOG)) as log:
        text = log.read()
    assert "file_based_example_gen.driver" in text  # the preCacheCheck hook ran first
    for task in [*tasks, "DataGate"]:
        with open(os.path.join(run_root(done.stdout), task, preflight.TASK_LOG)) as log:
            assert "flowers entrypoint:" not in log.read(), task  # nothing to repair
    with open(os.path.join(run_root(done.stdout), "DataGate", preflight.TASK_LOG)) as log:
        assert "class: Unexpectedly large value: 7" in log.read()
    assert not (root / "out" / "serving").exists()


@pytest.mark.slow
def test_kfp_mode_runs_to_a_pushed_model(kfp_runs, kfp_package):
    root, done, _, serving = kfp_runs
    assert done.returncode == outcome.PUSHED, done.stdout + done.stderr[-5000:]
    assert "(Kubeflow Pipelines 2.5+)" in done.stdout
    tasks = task_lines(done.stdout)
    assert set(tasks) == set(package_lib.load(kfp_package[1]).spec.root.dag.tasks)
    assert {status for status, _ in tasks.values()} == {"succeeded"}
    assert len(serving) == 1 and "blessed:    yes" in done.stdout
    # The Evaluator's per-example predictions (components/eval_predictions.py), in the task too.
    evaluation = handed(done.stdout, "Evaluator")["outputs"]["artifacts"]["evaluation"]["artifacts"][0]["uri"]
    assert os.path.getsize(os.path.join(evaluation, eval_predictions.FILE)) > 0
    # No hook: the entrypoint ran TFX's ExampleGen driver inside the task.
    gen_log = handed(done.stdout, "ImportExampleGen")["outputs"]["artifacts"][backend_rules.KFP_LOG_OUTPUT][
        "artifacts"
    ][0]["uri"]
    with open(gen_log) as log:
        text = log.read()
    assert [line for line in text.splitlines() if line.startswith("$ ")] == [
        f"$ {sys.executable} -m flowers.kubeflow.entrypoint ..."  # preflight writes the command, arguments elided
    ]
    assert "ExampleGen driver run here: True" in text
    stats = handed(done.stdout, "StatisticsGen")
    [examples] = stats["inputs"]["artifacts"]["examples"]["artifacts"]
    assert examples["type"] == {"instanceSchema": ""} and examples["name"].isdigit()
    assert catalogue(root)[examples["name"]]["metadata"]["input_fingerprint"].startswith(
        "split:single_split,num_files:2,"
    )


@pytest.mark.slow
def test_a_second_kfp_run_ingests_the_new_span_and_trains_on_both(kfp_runs):
    root, first, done, serving = kfp_runs
    assert first.returncode == outcome.PUSHED, first.stdout + first.stderr[-5000:]
    assert done.returncode == outcome.REFUSED, done.stdout + done.stderr[-5000:]
    tasks = task_lines(done.stdout)
    # ImportExampleGen is never cached on kfp; the curated schema, the same
    # input as before, is; everything downstream of new examples runs.
    assert tasks.pop("ImportExampleGen")[0] == "succeeded"
    assert tasks.pop("ImportSchemaGen")[0] == "cached"
    assert {status for status, _ in tasks.values()} == {"succeeded"}
    [examples] = handed(done.stdout, "Trainer")["inputs"]["artifacts"]["examples"]["artifacts"]
    assert examples["uri"] == os.path.join(run_root(done.stdout), "ImportExampleGen", "examples")
    assert catalogue(root)[examples["name"]]["metadata"]["input_fingerprint"].startswith(
        "split:single_split,num_files:4,"
    )
    assert "blessed:    no" in done.stdout and "is below the threshold 1.0000" in done.stdout
    assert "pushed to:  not pushed (model not blessed)" in done.stdout
    assert sorted(os.listdir(root / "out" / "serving")) == serving
    # The first run's Evaluator ran the candidate alone (nothing pushed yet);
    # the second's read the first push in place (components/baseline.py).
    [evaluation] = handed(first.stdout, "Evaluator")["outputs"]["artifacts"]["evaluation"]["artifacts"]
    assert len(records.read_evaluation(evaluation["uri"]).eval_config.model_specs) == 1
    [base] = handed(done.stdout, "Evaluator")["inputs"]["artifacts"]["baseline_model"]["artifacts"]
    assert base["uri"].endswith(f"/serving/{serving[0]}") and base["metadata"]["pushed_version"] == serving[0]


def test_a_binary_package_is_named_not_a_traceback(tmp_path):
    package = tmp_path / "flowers.json"
    package.write_bytes(bytes(range(256)))
    with pytest.raises(package_lib.PreflightError, match=rf"{package}: not a KFP pipeline spec \(binary"):
        package_lib.load(str(package))
