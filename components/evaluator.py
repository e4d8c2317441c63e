"""TFX's Evaluator, fed by the baseline component (components/baseline.py).

Two things TFX's own executor cannot do with that baseline:

* before the first push the baseline names no model: the executor leaves
  the input out, so TFMA evaluates the candidate alone. TFX's executor then
  drops the change thresholds from the EvalConfig (TFMA's first-run "rubber
  stamp"); the absolute floor and the per-class floor still apply. Done in
  the executor, not by publishing no artifact, because Kubeflow Pipelines
  always hands a task every artifact its producer planned.
* a pushed baseline is the serving folder's version itself, where the
  SavedModel lies at the top, not under TFX's `Format-Serving`:
  `custom_eval_shared_model` (the Evaluator's `module_path` hook) gives TFMA
  that folder.

It also writes the eval split's per-example predictions beside TFMA's
output (components/eval_predictions.py), through `custom_extractors`, the
Evaluator's other `module_path` hook.
"""

from __future__ import annotations

import os

from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import standard_component_specs

from flowers.components import baseline, eval_predictions


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator without a baseline input that names no pushed model."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        key = standard_component_specs.BASELINE_MODEL_KEY
        if input_dict.get(key) and not baseline.is_pushed(input_dict[key][0]):
            input_dict = {k: v for k, v in input_dict.items() if k != key}
        evaluation = output_dict[standard_component_specs.EVALUATION_KEY][0].uri
        token = eval_predictions.EVALUATION_DIR.set(evaluation)
        try:
            return super().Do(input_dict, output_dict, exec_properties)
        finally:
            eval_predictions.EVALUATION_DIR.reset(token)


def custom_eval_shared_model(eval_saved_model_path: str, model_name: str, eval_config, **kwargs):
    """The model TFMA evaluates: TFX's path, or for a baseline that is a
    pushed version folder (no `Format-Serving` under it) that folder."""
    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    folder = os.path.dirname(eval_saved_model_path)
    if not tf.io.gfile.exists(eval_saved_model_path) and tf.io.gfile.exists(f"{folder}/saved_model.pb"):
        eval_saved_model_path = folder
    return tfma.default_eval_shared_model(
        eval_saved_model_path=eval_saved_model_path, model_name=model_name, eval_config=eval_config, **kwargs
    )


def custom_extractors(eval_shared_model, eval_config, tensor_adapter_config) -> list | None:
    """TFMA's default extractors, then the per-example predictions' writer
    (None, TFMA's defaults, when not called from Executor.Do)."""
    import tensorflow_model_analysis as tfma

    folder = eval_predictions.EVALUATION_DIR.get()
    if folder is None:
        return None
    candidate = next(spec.name for spec in eval_config.model_specs if not spec.is_baseline)
    return [
        *tfma.default_extractors(
            eval_shared_model=eval_shared_model, eval_config=eval_config, tensor_adapter_config=tensor_adapter_config
        ),
        eval_predictions.writer(f"{folder}/{eval_predictions.FILE}", candidate),
    ]
