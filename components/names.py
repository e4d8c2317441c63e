"""The pipeline's component ids and the names of what they write, in one
place: the pipeline definition names its nodes with these, and every reader
of a finished run (runs/) and the Kubeflow runner find them by these.

They live here, under the pipeline definition's own layer, because the
readers of finished runs sit below the pipeline (the supervisor records each
run's summary). Light: no TFX import.
"""

EXAMPLE_GEN = "ImportExampleGen"
SCHEMA_GEN = "ImportSchemaGen"  # the curated schema; "SchemaGen" when inferred
INFERRED_SCHEMA_GEN = "SchemaGen"
STATISTICS_GEN = "StatisticsGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
DATA_GATE = "DataGate"
TRANSFORM = "Transform"
TUNER = "Tuner"
TRAINER = "Trainer"
# The newest pushed model, the Evaluator's baseline (components/baseline.py).
BASELINE = "LatestPushedModel"
# TFX's latest-blessed Resolver, only with run.warm_start (not on open-source KFP).
WARM_START_RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"

# Where a Model artifact keeps its SavedModel, as TFX's Trainer lays it out.
SERVING_FOLDER = "Format-Serving"

# The baseline's custom property: the pushed version it holds ("" for none).
PUSHED_VERSION = "pushed_version"

# Keys of the Trainer's history: the epochs (and learning rates) of each phase
# up to its best validation accuracy, and what the final fit on train +
# validation did with them.
CHOSEN_EPOCHS_HISTORY = "chosen_epochs"
FINAL_FIT_HISTORY = "final_fit"
