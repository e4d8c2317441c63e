"""The DAG itself: components, wiring and gates, without running it."""

from flowers import features
from flowers.components.evaluation import eval_config
from flowers.config import PipelineConfig
from flowers.data import layout
from flowers.pipeline.pipeline import create_components

CHAIN = [
    "ImportExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "DataGate",
    "Transform",
    "Trainer",
    "Evaluator",
    "Pusher",
]


def by_id(config):
    return {c.id: c for c in create_components(layout.resolve(config))}


def gate(config):
    (metric,) = [m for spec in eval_config(config).metrics_specs for m in spec.metrics if m.per_slice_thresholds]
    return metric.per_slice_thresholds[0].threshold


def test_default_chain_compares_with_the_newest_pushed_model_without_a_resolver():
    components = by_id(PipelineConfig())
    assert set(components) == set(CHAIN) | {"LatestPushedModel"}
    assert components["Evaluator"].inputs["baseline_model"].producer_component_id == "LatestPushedModel"
    assert components["LatestPushedModel"].exec_properties["push_destination"] == PipelineConfig().serving_dir
    threshold = gate(PipelineConfig().override({"gates.min_accuracy": 0.8, "gates.max_accuracy_drop": 0.02}))
    assert threshold.value_threshold.lower_bound.value == 0.8
    assert threshold.change_threshold.absolute.value < -0.02 + 1e-9


def test_without_baseline_there_is_no_baseline_and_no_change_gate():
    config = PipelineConfig().override({"gates.compare_to_blessed": False})
    components = by_id(config)
    assert set(components) == set(CHAIN)
    assert "baseline_model" not in components["Evaluator"].inputs
    assert not gate(config).HasField("change_threshold")
    assert gate(config).value_threshold.lower_bound.value == config.gates.min_accuracy


def test_transform_keeps_only_the_graph():
    transform = by_id(PipelineConfig())["Transform"]
    # No transformed_examples: decoded float images are never stored.
    assert sorted(transform.outputs) == ["transform_graph", "updated_analyzer_cache"]
    assert transform.exec_properties["disable_statistics"] == 1


def test_tune_adds_the_tuner_before_the_trainer():
    components = by_id(PipelineConfig().override({"run.tune": True}))
    assert "Tuner" in components
    assert components["Trainer"].inputs["hyperparameters"].producer_component_id == "Tuner"


def test_the_data_gate_stands_before_transform():
    components = by_id(PipelineConfig())
    assert "DataGate" in {n.id for n in components["Transform"].upstream_nodes}
    assert components["DataGate"].inputs["anomalies"].producer_component_id == "ExampleValidator"
    from flowers.components import gates

    sql = gates.custom_validations(3).feature_validations[0].validations[0]
    assert "b.sample_count >= 3" in sql.sql_expression and "min_class_examples" in sql.description
    assert gates.custom_validations(0) is None
    ratio = gates.custom_validations(0, 8.0).feature_validations[0].validations[0]
    assert (
        "<= 8.0 * (SELECT MIN(b.sample_count)" in ratio.sql_expression and "gates.max_class_ratio" in ratio.description
    )
    # One check per class (it names the class), and the balance check.
    assert len(gates.custom_validations(1, 8.0).feature_validations[0].validations) == features.NUM_CLASSES + 1


def test_every_span_by_default_a_rolling_window_when_asked(tmp_path):
    every = by_id(PipelineConfig())
    assert "span-*/" in str(every["ImportExampleGen"].exec_properties["input_config"])
    (tmp_path / "span-1").mkdir()
    window = by_id(PipelineConfig().override({"data.data_root": str(tmp_path), "data.span_window": 2}))
    assert "span-{SPAN}/" in str(window["ImportExampleGen"].exec_properties["input_config"])
    assert window["Trainer"].inputs["examples"] is not window["ImportExampleGen"].outputs["examples"]


def test_splits_train_validation_eval():
    components = by_id(PipelineConfig())
    assert '"train"' in str(components["Trainer"].exec_properties["train_args"])
    assert '"validation"' in str(components["Trainer"].exec_properties["eval_args"])
    assert components["Evaluator"].exec_properties["example_splits"] == '["eval"]'


def test_warm_start_feeds_the_latest_blessed_model_to_the_trainer():
    components = by_id(PipelineConfig().override({"run.warm_start": True}))
    assert components["Trainer"].inputs["base_model"].producer_component_id == "latest_blessed_model_resolver"


def test_beam_components_on_the_direct_runner_build_no_tfx_package():
    """TFX's Beam executors build an sdist of TFX (2.4 s, 40 MB left in /tmp)
    unless the Beam args name a package: not for the DirectRunner, which
    stages nothing; still for a remote runner."""
    from tfx.components.statistics_gen.executor import Executor as StatisticsGen
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

    from flowers.config import IN_MEMORY_BEAM_ARGS, LOCAL_BEAM_ARGS
    from flowers.pipeline.pipeline import NOTHING_TO_STAGE, beam_pipeline_args, create_pipeline

    def executor_args(beam_args):
        context = BaseBeamExecutor.Context(beam_pipeline_args=beam_pipeline_args(beam_args), tmp_dir="/unused")
        return StatisticsGen(context)._beam_pipeline_args

    for local in (IN_MEMORY_BEAM_ARGS, LOCAL_BEAM_ARGS, ("--runner=DirectRunner",)):
        args = executor_args(local)
        assert args[: len(local) + 1] == [*local, NOTHING_TO_STAGE], local
        assert not any("tfx_ephemeral" in arg for arg in args), args
    assert create_pipeline(layout.resolve(PipelineConfig())).beam_pipeline_args == [*LOCAL_BEAM_ARGS, NOTHING_TO_STAGE]
    remote = ("--runner=DataflowRunner", "--region=r")
    assert beam_pipeline_args(remote) == list(remote)  # TFX packages itself for remote workers
    staged = ("--setup_file=./setup.py",)
    assert beam_pipeline_args(staged) == list(staged)
