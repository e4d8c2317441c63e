"""The DAG itself: components, wiring and gates, without running it."""
from flowers.components.evaluation import eval_config

from flowers.config import PipelineConfig
from flowers.pipeline.pipeline import create_components

CHAIN = ["ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "DataGate", "Transform", "Trainer", "Evaluator", "Pusher"]


def by_id(config):
    return {c.id: c for c in create_components(config)}


def gate(config):
    (metric,) = [m for spec in eval_config(config).metrics_specs for m in spec.metrics if m.per_slice_thresholds]
    return metric.per_slice_thresholds[0].threshold


def test_default_chain_compares_with_the_latest_blessed_model():
    components = by_id(PipelineConfig())
    assert set(components) == set(CHAIN) | {"latest_blessed_model_resolver"}
    assert "baseline_model" in components["Evaluator"].inputs
    threshold = gate(PipelineConfig(min_accuracy=0.8, max_accuracy_drop=0.02))
    assert threshold.value_threshold.lower_bound.value == 0.8
    assert threshold.change_threshold.absolute.value < -0.02 + 1e-9


def test_without_baseline_there_is_no_resolver_and_no_change_gate():
    config = PipelineConfig(compare_to_blessed=False)
    components = by_id(config)
    assert set(components) == set(CHAIN)
    assert "baseline_model" not in components["Evaluator"].inputs
    assert not gate(config).HasField("change_threshold")
    assert gate(config).value_threshold.lower_bound.value == config.min_accuracy


def test_transform_keeps_only_the_graph():
    transform = by_id(PipelineConfig())["Transform"]
    # No transformed_examples: decoded float images are never stored.
    assert sorted(transform.outputs) == ["transform_graph", "updated_analyzer_cache"]
    assert transform.exec_properties["disable_statistics"] == 1


def test_tune_adds_the_tuner_before_the_trainer():
    components = by_id(PipelineConfig(tune=True))
    assert "Tuner" in components
    assert components["Trainer"].inputs["hyperparameters"].producer_component_id == "Tuner"
