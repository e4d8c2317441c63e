"""Executors the compiled Kubeflow spec names instead of TFX's own, where
TFX 1.16's Kubeflow V2 path cannot carry an execution property as the local
runners do. Imported in the pod (and by preflight's subprocesses)."""

from __future__ import annotations

from tfx.utils import proto_utils

from flowers.components import gates

CUSTOM_VALIDATION_CONFIG = gates.CUSTOM_VALIDATION_KEY


class ExampleValidatorExecutor(gates.ExampleValidatorExecutor):
    """ExampleValidator taking `custom_validation_config` as JSON text.

    Locally TFX hands the executor that property as a proto (a `make_proto`
    placeholder), which the Kubeflow V2 compiler refuses ("Invalid placeholder
    for exec prop custom_validation_config"); the runner compiles it as the
    proto's JSON, and this executor turns it back into the proto."""

    def Do(self, input_dict, output_dict, exec_properties):
        value = exec_properties.get(CUSTOM_VALIDATION_CONFIG)
        if isinstance(value, str):
            from tensorflow_data_validation.anomalies.proto import custom_validation_config_pb2

            parsed = proto_utils.json_to_proto(value, custom_validation_config_pb2.CustomValidationConfig())
            exec_properties = {**exec_properties, CUSTOM_VALIDATION_CONFIG: parsed}
        return super().Do(input_dict, output_dict, exec_properties)
