"""TFMA configuration: what the Evaluator measures and the gates a model must pass."""

from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from flowers import features
from flowers.config import PipelineConfig

OVERALL = tfma.SlicingSpec()
# Accuracy within the slice of one true class is that class's recall.
PER_CLASS = tfma.SlicingSpec(feature_keys=[features.CLASS_KEY])
AUC_THRESHOLDS = 1000


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """Overall and per-class metrics; overall accuracy gated by an absolute
    floor and, with `compare_to_blessed`, a maximum drop against the last
    blessed model; each class's recall gated by `min_class_recall`."""
    gate = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.gates.min_accuracy}),
    )
    if config.gates.compare_to_blessed:
        # A tiny slack lets an equally good model through when no drop is allowed.
        gate.change_threshold.CopyFrom(
            tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                absolute={"value": -config.gates.max_accuracy_drop - 1e-10},
            )
        )
    recall_floor = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.gates.min_class_recall}),
    )
    metrics = tfma.MetricsSpec(
        metrics=[
            tfma.MetricConfig(
                class_name="SparseCategoricalAccuracy",
                per_slice_thresholds=[
                    tfma.PerSliceMetricThreshold(slicing_specs=[OVERALL], threshold=gate),
                    # In each true class's slice accuracy is that class's recall:
                    # a model blind to one class fails here, whatever its accuracy.
                    tfma.PerSliceMetricThreshold(slicing_specs=[PER_CLASS], threshold=recall_floor),
                ],
            ),
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
        ]
    )
    one_vs_rest = tfma.MetricsSpec(
        binarize=tfma.BinarizationOptions(class_ids={"values": list(range(features.NUM_CLASSES))}),
        metrics=[
            tfma.MetricConfig(class_name="Precision"),
            tfma.MetricConfig(class_name="Recall"),
            # TFMA's default of 10,000 thresholds cost 2-2.5 s of every
            # Evaluator (its calibration histogram, rebinned per class and
            # slice); 1,000 cost nothing measurable and gave the same five
            # AUCs to 5 decimals on the 443 eval photos (docs/performance.md).
            tfma.MetricConfig(class_name="AUC", config=json.dumps({"num_thresholds": AUC_THRESHOLDS})),
        ],
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Named, TFMA loads the SavedModel once, with its signatures;
                # unnamed, it first loads it as a Keras model to find out
                # (model_util.get_model_type), a few seconds per model.
                model_type=tfma.TF_GENERIC,
                signature_name=features.EXAMPLES_SIGNATURE,
                label_key=features.CLASS_KEY,
                prediction_key=features.PROBABILITIES_OUTPUT,
            )
        ],
        slicing_specs=[OVERALL, PER_CLASS],
        metrics_specs=[metrics, one_vs_rest],
        # The model's compiled loss wants one-hot labels; the examples carry ids.
        options=tfma.Options(include_default_metrics={"value": False}),
    )
