"""The flowers TFX pipeline: one definition for every runner."""

from __future__ import annotations

from typing import Sequence

# TFX's own modules, not `tfx.v1`: importing tfx.v1 imports its Google Cloud
# extensions too (the Vertex AI client: about 6 s of every worker's and
# pipeline task's start-up, for nothing this pipeline uses).
from tfx.components import (
    Evaluator,
    ExampleValidator,
    ImportExampleGen,
    Pusher,
    SchemaGen,
    StatisticsGen,
    Trainer,
    Transform,
    Tuner,
)
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration.data_types import RuntimeParameter
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import pusher_pb2, trainer_pb2, transform_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from flowers.components import baseline, evaluation, evaluator, gates, names, push
from flowers.config import IMAGE_SIZE_KEY, TRAINING_CONFIG_KEY, TRIALS_KEY, VALIDATION_FROM_TRAIN_KEY, PipelineConfig
from flowers.data import layout

TRANSFORM_FN = "flowers.components.transform.preprocessing_fn"
RUN_FN = "flowers.components.trainer.run_fn"
TUNER_FN = "flowers.components.tuner.tuner_fn"


def create_components(
    config: PipelineConfig,
    *,
    data_root: str | RuntimeParameter | None = None,
    trainer_config: str | RuntimeParameter | None = None,
    eval_config: str | RuntimeParameter | None = None,
) -> list:
    """The component DAG, read top to bottom.

    The optional values replace what the config gives ImportExampleGen's
    `input_base`, the Trainer's `custom_config` and the Evaluator's
    `eval_config`; the Kubeflow runner passes TFX RuntimeParameters there.
    Building it reads no disk: the data layout comes resolved in the config
    (`flowers.data.layout.resolve`).
    """
    if config.data.presplit is None:
        raise ValueError("the data layout is not resolved: build the pipeline from layout.resolve(config)")
    data = _data_components(config, data_root)
    example_gen, schema_gen, data_gate = data[0], data[1], data[-1]
    window = example_gen.outputs["examples"]
    if config.data.span_window:
        window = latest_spans(window, config.data.span_window)
    transform = Transform(
        examples=window,
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=TRANSFORM_FN,
        custom_config={IMAGE_SIZE_KEY: config.data.image_size},
        # The graph is applied in the Trainer's input pipeline and the served
        # model; storing decoded floats would cost ~30x the JPEG bytes.
        materialize=False,
        disable_statistics=True,
        splits_config=transform_pb2.SplitsConfig(analyze=[layout.TRAIN]),
    ).with_id(names.TRANSFORM)
    # Nothing is transformed or trained on data the gate refused.
    transform.add_upstream_node(data_gate)
    components = [*data, transform]
    base_model = None
    if config.run.warm_start:
        # TFX's latest-blessed Resolver: the Model artifact keeps the weights
        # file beside its SavedModel (local runs and Vertex AI).
        blessed = Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        ).with_id(names.WARM_START_RESOLVER)
        components.append(blessed)
        base_model = blessed.outputs["model"]
    trainer = _trainer(config, window, transform, schema_gen, trainer_config, components, base_model)
    evaluator_inputs = dict(examples=window, model=trainer.outputs["model"])
    if config.gates.compare_to_blessed:
        # The newest pushed model, read from the serving folder: runs on every orchestrator.
        latest_pushed = baseline.LatestPushedModel(
            candidate=trainer.outputs["model"], push_destination=config.serving_dir
        ).with_id(names.BASELINE)
        evaluator_inputs["baseline_model"] = latest_pushed.outputs["baseline"]
    model_evaluator = Evaluator(
        **evaluator_inputs,
        example_splits=[layout.EVAL],
        eval_config=evaluation.eval_config(config) if eval_config is None else eval_config,
        # Its `custom_eval_shared_model` reads a pushed baseline in place.
        module_path=evaluator.__name__,
    ).with_id(names.EVALUATOR)
    # No baseline model when nothing was pushed (components/evaluator.py).
    model_evaluator.executor_spec = executor_spec.BeamExecutorSpec(evaluator.Executor)
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=model_evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=config.serving_dir)
        ),
    ).with_id(names.PUSHER)
    # A version appears in the serving dir whole or not at all (components/push.py).
    pusher.executor_spec = executor_spec.ExecutorClassSpec(push.Executor)
    baseline_node = [latest_pushed] if config.gates.compare_to_blessed else []
    return components + [trainer, *baseline_node, model_evaluator, pusher]


def latest_spans(examples: Channel, span_window: int):
    """TFX's rolling span range over ExampleGen's outputs of this and earlier
    runs: the latest `span_window` spans ingested, the newest version of each.
    (TFX 1.16's Kubeflow V2 compiler cannot compile it: span_window is local.)"""
    from tfx.dsl.input_resolution import canned_resolver_functions

    return canned_resolver_functions.rolling_range(examples, num_spans=span_window, min_spans=1)


def _data_components(config: PipelineConfig, data_root) -> list:
    """ExampleGen (every span, or with span_window the newest span), its
    statistics and schema check, and the data gate that stops the run on
    any anomaly."""
    input_config, output_config, range_config = layout.example_gen_configs(
        config.data.presplit,
        config.data.validation_percent,
        config.data.eval_percent,
        config.data.span,
        every_span=not config.data.span_window,
    )
    example_gen = ImportExampleGen(
        input_base=config.data.data_root if data_root is None else data_root,
        input_config=input_config,
        output_config=output_config,
        range_config=range_config,
    ).with_id(names.EXAMPLE_GEN)
    if config.data.schema_dir:
        schema_gen = ImportSchemaGen(schema_file=f"{config.data.schema_dir}/schema.pbtxt").with_id(names.SCHEMA_GEN)
        # With the curated schema, `class` is counted as categorical: the
        # per-class counts the data gate checks.
        statistics_gen = StatisticsGen(
            examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"]
        ).with_id(names.STATISTICS_GEN)
        validations = gates.custom_validations(config.gates.min_class_examples, config.gates.max_class_ratio)
    else:
        statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"]).with_id(names.STATISTICS_GEN)
        schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"]).with_id(names.INFERRED_SCHEMA_GEN)
        validations = None
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        custom_validation_config=validations,
    ).with_id(names.EXAMPLE_VALIDATOR)
    example_validator.executor_spec = executor_spec.ExecutorClassSpec(gates.ExampleValidatorExecutor)
    data_gate = gates.DataGate(
        anomalies=example_validator.outputs["anomalies"], examples=example_gen.outputs["examples"]
    ).with_id(names.DATA_GATE)
    return [example_gen, schema_gen, statistics_gen, example_validator, data_gate]


def _trainer(config: PipelineConfig, window, transform, schema_gen, trainer_config, components: list, base_model=None):
    """The Trainer (after the Tuner when `tune`), trained on train and
    stopped on validation; spans with train/ + eval/ folders have no
    validation split, so the Trainer carves it from train."""
    presplit = config.data.presplit
    validation_split = layout.TRAIN if presplit else layout.VALIDATION
    custom_config = {TRAINING_CONFIG_KEY: config.training.to_json()}
    if presplit:
        custom_config[VALIDATION_FROM_TRAIN_KEY] = config.data.validation_percent
    splits = dict(
        train_args=trainer_pb2.TrainArgs(splits=[layout.TRAIN]),
        eval_args=trainer_pb2.EvalArgs(splits=[validation_split]),
    )
    hyperparameters = None
    if config.run.tune:
        tuner = Tuner(
            tuner_fn=TUNER_FN,
            examples=window,
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            custom_config={**custom_config, TRIALS_KEY: config.run.tuner_trials},
            **splits,
        ).with_id(names.TUNER)
        components.append(tuner)
        hyperparameters = tuner.outputs["best_hyperparameters"]
    return Trainer(
        run_fn=RUN_FN,
        examples=window,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=hyperparameters,
        base_model=base_model,
        custom_config=custom_config if trainer_config is None else trainer_config,
        **splits,
    ).with_id(names.TRAINER)


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config=None,
    *,
    data_root: str | RuntimeParameter | None = None,
    trainer_config: str | RuntimeParameter | None = None,
    eval_config: str | RuntimeParameter | None = None,
) -> Pipeline:
    """The pipeline for any runner; the keyword values are those of `create_components`."""
    return Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=create_components(
            config, data_root=data_root, trainer_config=trainer_config, eval_config=eval_config
        ),
        enable_cache=config.run.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args(config.run.beam_args),
    )


# TFX's Beam executors, given Beam args that name no package to stage, copy
# TFX's whole install into a new temporary folder and build an sdist of it
# for remote Beam workers (tfx/utils/dependency_utils.py): 2.4 s for each
# Beam component of every run, and 40 MB or more left in /tmp each time
# (1,209 copies, 49 GB, on the machine this was found on). The DirectRunner,
# in memory or with worker processes, stages nothing, so for it this flag
# tells TFX a package is named and nothing reads it. Other runners (Dataflow,
# Flink, Spark) keep TFX's behaviour.
NOTHING_TO_STAGE = "--extra_package=unused-by-the-DirectRunner"
_DEPENDENCY_FLAGS = ("--extra_package", "--setup_file", "--requirements_file", "--sdk_container_image")


def beam_pipeline_args(beam_args: Sequence[str]) -> list[str]:
    """`run.beam_args` as every Beam component gets them (NOTHING_TO_STAGE says why)."""
    runners = [arg.split("=", 1)[-1] for arg in beam_args if arg.startswith("--runner")]
    direct = all(runner.lower() in ("direct", "directrunner") for runner in runners)
    named = any(arg.startswith(_DEPENDENCY_FLAGS) for arg in beam_args)
    return [*beam_args, NOTHING_TO_STAGE] if direct and not named else list(beam_args)
