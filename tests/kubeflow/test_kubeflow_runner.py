"""The compiled KFP v2 spec is the local pipeline: same components and
dependencies, the configured image and Beam arguments, runtime parameters
whose defaults are the local values."""

from __future__ import annotations

import dataclasses
import json

import pytest
import tensorflow_model_analysis as tfma
import yaml
from google.protobuf import json_format
from kfp.client import client as kfp_client_module
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx

from flowers.components.evaluation import eval_config
from flowers.config import CURATED_SCHEMA, SAMPLE_DATA, TRAINING_CONFIG_KEY, PipelineConfig, TrainingConfig
from flowers.data import layout
from flowers.kubeflow import runner
from flowers.pipeline.pipeline import beam_pipeline_args, create_components, create_pipeline

CONFIG = PipelineConfig(output_dir="gs://flowers-test/run").override(
    {"kubeflow.image": "registry.example/flowers:test"}
)
DATAFLOW = (
    "--runner=DataflowRunner",
    "--project=my-project",
    "--region=europe-west4",
    "--temp_location=gs://flowers-test/tmp",
)


def compile_to(config: PipelineConfig, path, backend: str | None = None) -> dict:
    runner.compile_pipeline(config, str(path), backend)
    with open(path) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    path = tmp_path_factory.mktemp("kfp") / "flowers.yaml"
    runner.compile_pipeline(CONFIG, str(path))
    return path


@pytest.fixture(scope="module")
def spec(package) -> dict:
    return yaml.safe_load(package.read_text())


def tasks(spec: dict) -> dict:
    return spec["root"]["dag"]["tasks"]


def containers(spec: dict) -> dict:
    executors = spec["deploymentSpec"]["executors"]
    return {name: e["container"] for name, e in executors.items() if "container" in e}


def test_spec_parses_with_kfp_pipeline_spec_protos(package, spec):
    parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())  # strict: no unknown field
    assert parsed.pipeline_info.name == CONFIG.pipeline_name
    assert parsed.schema_version == "2.1.0"
    assert parsed.sdk_version == "tfx-1.16.0"
    # The very loader kfp.Client uses before it uploads a package.
    assert kfp_client_module._extract_pipeline_yaml(str(package)).pipeline_spec == parsed


@pytest.mark.parametrize("tune, warm_start", [(False, False), (True, True)])
def test_every_local_component_is_a_task_with_the_same_dependencies(tmp_path, tune, warm_start):
    config = CONFIG.override({"tune": tune, "warm_start": warm_start})
    spec = compile_to(config, tmp_path / "p.yaml", "vertex" if warm_start else "kfp")
    local = create_pipeline(layout.resolve(config)).components  # what the local runner runs
    resolvers = {c.id for c in local if isinstance(c, tfx.dsl.Resolver)}
    # Only a warm start needs TFX's latest-blessed-model Resolver.
    assert resolvers == ({"latest_blessed_model_resolver"} if warm_start else set())
    # TFX compiles the latest-blessed-model Resolver into two query tasks.
    task_of = {t: t.split("-")[0] if t.split("-")[0] in resolvers else t for t in tasks(spec)}
    assert set(task_of.values()) == {c.id for c in local}
    assert ("Tuner" in task_of) == tune
    for component in local:
        if component.id in resolvers:
            continue
        depends_on = {task_of[t] for t in tasks(spec)[component.id].get("dependentTasks", [])}
        assert depends_on == {u.id for u in component.upstream_nodes}, component.id


def test_every_container_runs_the_configured_image_and_beam_args(spec):
    assert len(containers(spec)) == len(tasks(spec))  # no resolver queries without a warm start
    for name, container in containers(spec).items():
        assert container["image"] == CONFIG.kubeflow.image, name
        assert container["command"] == list(runner.ENTRYPOINT_COMMAND), name
        beam_args = beam_pipeline_args(CONFIG.run.beam_args)  # the DirectRunner's: nothing to stage
        assert container["args"][-len(beam_args) :] == beam_args, name


def test_runtime_parameters_carry_the_local_values_as_defaults(spec):
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert set(parameters) == {"data_root", "trainer_config", "eval_config"}
    assert {p["parameterType"] for p in parameters.values()} == {"STRING"}
    defaults = {name: p["defaultValue"] for name, p in parameters.items()}
    assert defaults == runner.runtime_values(CONFIG)

    # The bundled sample, as the image holds it.
    assert defaults["data_root"] == "/flowers/data/sample"
    training = TrainingConfig.from_json(json.loads(defaults["trainer_config"])[TRAINING_CONFIG_KEY])
    assert training == CONFIG.training and training.epochs == TrainingConfig().epochs
    gate = json_format.Parse(defaults["eval_config"], tfma.EvalConfig())
    assert gate == eval_config(CONFIG)

    # Exactly what the local pipeline hands these components.
    local = {c.id: c for c in create_components(layout.resolve(CONFIG))}
    assert local["ImportExampleGen"].exec_properties["input_base"] == SAMPLE_DATA
    assert local["Trainer"].exec_properties["custom_config"] == defaults["trainer_config"]
    assert local["Evaluator"].exec_properties["eval_config"] == defaults["eval_config"]

    # ...and each component reads its parameter.
    wiring = {name: (task, prop) for name, (task, prop) in runner.PARAMETERS.items()}
    for name, (task, prop) in wiring.items():
        assert tasks(spec)[task]["inputs"]["parameters"][prop] == {"componentInputParameter": name}


def test_bundled_schema_is_read_from_the_image(spec):
    schema_file = tasks(spec)["ImportSchemaGen"]["inputs"]["parameters"]["schema_file"]["runtimeValue"]["constant"]
    assert schema_file == "/flowers/data/schema/schema.pbtxt"
    assert runner.in_image(CURATED_SCHEMA) == "/flowers/data/schema"
    assert runner.in_image("gs://bucket/schema") == "gs://bucket/schema"


def test_compiling_twice_gives_the_same_spec(package, tmp_path):
    again = tmp_path / "again.yaml"
    runner.compile_pipeline(CONFIG, str(again))
    assert again.read_bytes() == package.read_bytes()


def test_overrides_reach_the_spec(tmp_path):
    config = CONFIG.override(
        {
            "data_root": "gs://flowers-test/photos-tfrecords",
            "epochs": "3",
            "min_accuracy": "0.9",
            "image": "gcr.io/p/flowers:2",
            "beam_args": " ".join(DATAFLOW),
        }
    )
    # A data root whose spans hold train/ and eval/ folders (the layout given:
    # a gs:// root cannot be read from here).
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, presplit=True))
    spec = compile_to(config, tmp_path / "override.yaml")
    defaults = {n: p["defaultValue"] for n, p in spec["root"]["inputDefinitions"]["parameters"].items()}
    assert defaults["data_root"] == "gs://flowers-test/photos-tfrecords"
    assert json.loads(json.loads(defaults["trainer_config"])[TRAINING_CONFIG_KEY])["epochs"] == 3
    threshold = json_format.Parse(defaults["eval_config"], tfma.EvalConfig()).metrics_specs[0].metrics[0]
    assert threshold.per_slice_thresholds[0].threshold.value_threshold.lower_bound.value == 0.9
    for container in containers(spec).values():
        assert container["image"] == "gcr.io/p/flowers:2"
        assert container["args"][-len(DATAFLOW) :] == list(DATAFLOW)  # passed through unchanged
    input_config = tasks(spec)["ImportExampleGen"]["inputs"]["parameters"]["input_config"]["runtimeValue"]["constant"]
    assert [s["pattern"] for s in json.loads(input_config)["splits"]] == ["span-*/train/*.tfrec", "span-*/eval/*.tfrec"]


def test_vertex_pipeline_job_json(tmp_path):
    path = tmp_path / "flowers.json"
    runner.compile_pipeline(CONFIG, str(path))
    job = json.loads(path.read_text())
    parsed = json_format.ParseDict(job, pipeline_spec_pb2.PipelineJob())
    assert parsed.display_name == CONFIG.pipeline_name
    assert job["runtimeConfig"]["gcsOutputDirectory"] == CONFIG.pipeline_root
    assert job["runtimeConfig"]["parameterValues"] == runner.runtime_values(CONFIG)


@pytest.mark.parametrize(
    "setting, value, message",
    [
        (
            "output_dir",
            "outputs",
            "output_dir 'outputs' is a path on this machine, which the pods of a kfp run cannot reach",
        ),
        ("output_dir", "/mnt/shared/flowers", "is a path on this machine"),
        ("data.data_root", "/home/me/photos", "data.data_root '/home/me/photos' is a path on this machine"),
        ("output_dir", "s3://bucket/flowers", "no S3 file system .*tensorflow-io.*apache-beam\\[aws\\]"),
        ("output_dir", "minio://mlpipeline/flowers", "minio:// is Kubeflow Pipelines' name for its MinIO store"),
        ("data.data_root", "hdfs://cluster/photos", "the image reads no such scheme"),
    ],
)
def test_storage_the_pods_cannot_reach_is_refused(tmp_path, setting, value, message):
    config = CONFIG.override({setting: value})
    for backend in runner.BACKENDS:
        with pytest.raises(ValueError, match=message.replace("a kfp run", f"a {backend} run")):
            runner.compile_pipeline(config, str(tmp_path / "p.yaml"), backend)
    assert not (tmp_path / "p.yaml").exists()


def test_the_bundled_data_and_gs_are_accepted_and_the_package_kind_checked(tmp_path):
    # CONFIG: gs:// output, the data bundled in the image (read there from /flowers/data).
    assert CONFIG.data.data_root == SAMPLE_DATA
    runner.check_config(CONFIG, "kfp")
    with pytest.raises(ValueError, match=r"must end in \.yaml"):
        runner.compile_pipeline(CONFIG, str(tmp_path / "p.txt"))
    with pytest.raises(ValueError, match="a .json package is a Vertex AI PipelineJob"):
        runner.compile_pipeline(CONFIG, str(tmp_path / "p.json"), "kfp")


def test_open_source_kfp_build_has_no_resolver_tasks(spec, tmp_path):
    # The default build: the Evaluator's baseline comes from the
    # LatestPushedModel component (a container), which open-source KFP 2.x runs.
    assert not [t for t in tasks(spec) if "resolver" in t]
    baseline = tasks(spec)["Evaluator"]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"]
    assert baseline == {"outputArtifactKey": "baseline", "producerTask": "LatestPushedModel"}
    # Only a warm start adds the Resolver's two artifact-query tasks, which
    # open-source KFP refuses (the compile says so) and Vertex AI runs.
    with pytest.raises(ValueError, match="run.warm_start: .*refuses the whole run .*non-container and non-importer"):
        compile_to(CONFIG.override({"warm_start": "true"}), tmp_path / "warm.yaml")
    warm = compile_to(CONFIG.override({"warm_start": "true"}), tmp_path / "warm.yaml", "vertex")
    resolvers = sorted(t for t in tasks(warm) if "resolver" in t)
    assert resolvers == [
        "latest_blessed_model_resolver-model-blessing-resolver",
        "latest_blessed_model_resolver-model-resolver",
    ]
    assert len(containers(warm)) == len(tasks(warm)) - 2
    no_baseline = compile_to(CONFIG.override({"compare_to_blessed": "false"}), tmp_path / "plain.yaml")
    assert "baseline_model" not in json.dumps(tasks(no_baseline)["Evaluator"])


def resources(spec: dict) -> dict:
    """executor label -> its container's resources, read with kfp's protos."""
    parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    deployment = json_format.ParseDict(
        json_format.MessageToDict(parsed.deployment_spec), pipeline_spec_pb2.PipelineDeploymentConfig()
    )
    return {
        label: executor.container.resources
        for label, executor in deployment.executors.items()
        if executor.HasField("container") and executor.container.HasField("resources")
    }


def test_default_resources_for_trainer_transform_and_evaluator(spec):
    found = resources(spec)
    assert set(found) == {"Trainer_executor", "Transform_executor", "Evaluator_executor"}
    trainer = found["Trainer_executor"]
    wanted = CONFIG.kubeflow.resources["trainer"]
    assert (trainer.cpu_request, trainer.cpu_limit) == (wanted.cpu, wanted.cpu_limit) == (4, 8)
    assert (trainer.memory_request, trainer.memory_limit) == (wanted.memory_gb, wanted.memory_limit_gb) == (8, 16)
    assert not trainer.HasField("accelerator")  # no GPU unless asked for
    for label, prefix in (("Transform_executor", "transform"), ("Evaluator_executor", "evaluator")):
        got = found[label]
        assert (got.cpu_request, got.cpu_limit, got.memory_request, got.memory_limit) == tuple(
            getattr(CONFIG.kubeflow.resources[prefix], name)
            for name in ("cpu", "cpu_limit", "memory_gb", "memory_limit_gb")
        )


def test_resource_settings_reach_the_spec(tmp_path):
    config = CONFIG.override(
        {
            "kubeflow.resources.trainer.accelerator": "NVIDIA_TESLA_T4",
            "kubeflow.resources.trainer.accelerator_count": "2",
            "kubeflow.resources.trainer.cpu": "6",
            "kubeflow.resources.trainer.cpu_limit": "0",
            "kubeflow.resources.trainer.memory_gb": "30",
            "kubeflow.resources.trainer.memory_limit_gb": "30",
            "run.tune": "true",
            # a flat name of earlier releases still works
            "transform_cpu": "0",
            "transform_cpu_limit": "0",
            "transform_memory_gb": "0",
            "transform_memory_limit_gb": "0",
        }
    )
    found = resources(compile_to(config, tmp_path / "gpu.yaml"))
    assert "Transform_executor" not in found  # all 0: left to the cluster
    trainer = found["Trainer_executor"]
    assert trainer.accelerator.type == "NVIDIA_TESLA_T4" and trainer.accelerator.count == 2
    assert (trainer.cpu_request, trainer.cpu_limit, trainer.memory_request, trainer.memory_limit) == (6, 0, 30, 30)
    assert found["Tuner_executor"] == trainer  # the Tuner trains like the Trainer


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"kubeflow.resources.trainer.cpu": "8", "kubeflow.resources.trainer.cpu_limit": "4"},
            "kubeflow.resources.trainer.cpu_limit=4.0 is below kubeflow.resources.trainer.cpu=8.0",
        ),
        (
            {"evaluator_memory_limit_gb": "1"},
            "evaluator.memory_limit_gb=1.0 is below kubeflow.resources.evaluator.memory_gb",
        ),
        (
            {"kubeflow.resources.trainer.accelerator": "TPU_V9"},
            "kubeflow.resources.trainer.accelerator='TPU_V9': allowed one of none, nvidia.com/gpu",
        ),
        ({"kubeflow.resources.gpu_pool.cpu": "1"}, "kubeflow.resources.gpu_pool: unknown component"),
        ({"kubeflow.resources.trainer.cores": "1"}, "unknown setting.*kubeflow.resources.trainer.cores"),
        ({"trainer_accelerator_count": "0"}, "out of range"),
        ({"transform_cpu": "-1"}, "out of range"),
    ],
)
def test_resource_settings_are_checked(values, message):
    with pytest.raises(ValueError, match=message):
        CONFIG.override(values)


def test_custom_validations_compile_as_json_for_their_executor(spec):
    from tensorflow_data_validation.anomalies.proto import custom_validation_config_pb2

    from flowers.components import gates

    validator = tasks(spec)["ExampleValidator"]["inputs"]["parameters"]["custom_validation_config"]
    compiled = json_format.Parse(
        validator["runtimeValue"]["constant"], custom_validation_config_pb2.CustomValidationConfig()
    )
    assert compiled == gates.custom_validations(CONFIG.gates.min_class_examples, CONFIG.gates.max_class_ratio)
    executor = containers(spec)["ExampleValidator_executor"]
    assert executor["args"][:2] == ["--executor_class_path", "flowers.kubeflow.executors.ExampleValidatorExecutor"]


def test_the_validator_executor_hands_tfx_the_proto(monkeypatch):
    from tensorflow_data_validation.anomalies.proto import custom_validation_config_pb2
    from tfx.components.example_validator import executor as tfx_executor
    from tfx.utils import proto_utils

    from flowers.components import gates
    from flowers.kubeflow import executors

    seen = {}
    monkeypatch.setattr(tfx_executor.Executor, "Do", lambda self, i, o, exec_properties: seen.update(exec_properties))
    proto = gates.custom_validations(3)
    executors.ExampleValidatorExecutor().Do(
        {}, {}, {"custom_validation_config": proto_utils.proto_to_json(proto), "exclude_splits": "[]"}
    )
    assert isinstance(seen["custom_validation_config"], custom_validation_config_pb2.CustomValidationConfig)
    assert seen["custom_validation_config"] == proto and seen["exclude_splits"] == "[]"


def test_a_span_window_is_refused_with_the_reason(tmp_path):
    import pytest

    config = PipelineConfig(output_dir="gs://bucket/flowers").override({"data.span_window": 2})
    with pytest.raises(ValueError, match="span_window=2: .*cannot compile"):
        runner.compile_pipeline(config, str(tmp_path / "flowers.yaml"))


def test_the_baseline_and_kfp_example_gen_are_never_cached(spec, tmp_path):
    # KFP's cache key holds nothing the data root's contents change: a cached
    # ImportExampleGen would hand every scheduled run the first run's examples.
    assert tasks(spec)["LatestPushedModel"]["cachingOptions"] == {"enableCache": False}
    assert tasks(spec)["ImportExampleGen"]["cachingOptions"] == {"enableCache": False}
    assert tasks(spec)["Trainer"]["cachingOptions"] == {"enableCache": True}
    # Vertex AI keys the cache with the input fingerprint its driver hook computes.
    vertex = compile_to(CONFIG, tmp_path / "vertex.yaml", "vertex")
    assert tasks(vertex)["LatestPushedModel"]["cachingOptions"] == {"enableCache": False}
    assert tasks(vertex)["ImportExampleGen"]["cachingOptions"] == {"enableCache": True}
