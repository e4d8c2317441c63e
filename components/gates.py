"""The data gate: anomalies found by ExampleValidator stop the run before
Transform and the Trainer, on every orchestrator.

ExampleValidator checks each split's statistics against the curated schema
(class ids 0..4, the five label names, required features, non-empty images)
and against `custom_validations` (SQL over the statistics, for what a schema
cannot say). It only records what it finds; `DataGate`, a Python function
component that Transform depends on, fails with the list when there is
anything, so no later component runs. It compiles into the Kubeflow spec
like any other component.
"""

from tfx import v1 as tfx
from tfx.components.example_validator import executor as example_validator_executor
from tfx.types import standard_component_specs

from flowers import features
from flowers.components.anomalies import describe_anomalies


class DataRefused(RuntimeError):
    """ExampleValidator found anomalies; the message lists them."""


CUSTOM_VALIDATION_KEY = standard_component_specs.CUSTOM_VALIDATION_CONFIG_KEY
# Marks the gate's failure message, so the runner tells "data refused" from a crash.
REFUSED_MARK = "data refused:"


def custom_validations(min_class_examples: int):
    """Every class has at least `min_class_examples` examples in each split
    (read from the class feature's rank histogram, which StatisticsGen fills
    because the schema marks `class` categorical)."""
    from google.protobuf import text_format
    from tensorflow_data_validation.anomalies.proto import custom_validation_config_pb2

    if min_class_examples <= 0:
        return None
    text = f"""
    feature_validations {{
      feature_path {{ step: '{features.CLASS_KEY}' }}
      validations {{
        sql_expression: '(SELECT COUNT(*) FROM UNNEST(feature.string_stats.rank_histogram.buckets) AS b WHERE b.sample_count >= {min_class_examples}) = {features.NUM_CLASSES}'
        severity: ERROR
        description: 'some class has fewer than {min_class_examples} example(s) (min_class_examples): every one of {", ".join(features.CLASS_NAMES)} must be present'
      }}
    }}"""
    return text_format.Parse(text, custom_validation_config_pb2.CustomValidationConfig())


class ExampleValidatorExecutor(example_validator_executor.Executor):
    """TFX's ExampleValidator, also when a feature the custom validations
    read is missing altogether: TFDV then cannot run them at all, so the
    statistics are validated against the schema alone, which reports the
    missing column (the data gate refuses the data either way)."""

    def Do(self, input_dict, output_dict, exec_properties):
        try:
            return super().Do(input_dict, output_dict, exec_properties)
        except RuntimeError as error:
            if "not found in statistics" not in str(error):
                raise
            return super().Do(input_dict, output_dict, {**exec_properties, CUSTOM_VALIDATION_KEY: None})


@tfx.dsl.components.component
def DataGate(anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies]) -> None:
    """Fails, listing every anomaly by split and feature, when there is any."""
    found = describe_anomalies(anomalies.uri)
    if found:
        listed = " | ".join(f"{split}: {line}" for split, lines in found.items() for line in lines)
        raise DataRefused(f"{REFUSED_MARK} {listed}")
