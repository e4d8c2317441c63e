"""The flowers TFX pipeline: one definition for every runner."""
from __future__ import annotations

from tfx import v1 as tfx
from tfx.proto import transform_pb2

from flowers.components import evaluation, gates
from flowers.config import IMAGE_SIZE_KEY, TRAINING_CONFIG_KEY, TRIALS_KEY, PipelineConfig
from flowers.data.layout import example_gen_configs

TRANSFORM_FN = "flowers.components.transform.preprocessing_fn"
RUN_FN = "flowers.components.trainer.run_fn"
TUNER_FN = "flowers.components.tuner.tuner_fn"


def create_components(
    config: PipelineConfig,
    *,
    data_root: str | tfx.dsl.experimental.RuntimeParameter | None = None,
    trainer_config: str | tfx.dsl.experimental.RuntimeParameter | None = None,
    eval_config: str | tfx.dsl.experimental.RuntimeParameter | None = None,
) -> list:
    """The component DAG, read top to bottom.

    The optional values replace what the config gives ImportExampleGen's
    `input_base`, the Trainer's `custom_config` and the Evaluator's
    `eval_config`; the Kubeflow runner passes TFX RuntimeParameters there. The
    data layout (spans, splits) is still read from `config.data_root`.
    """
    input_config, output_config = example_gen_configs(config.data_root)
    example_gen = tfx.components.ImportExampleGen(
        input_base=config.data_root if data_root is None else data_root,
        input_config=input_config,
        output_config=output_config,
    )
    if config.schema_dir:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=f"{config.schema_dir}/schema.pbtxt")
        # With the curated schema, `class` is counted as categorical: the
        # per-class counts the data gate checks.
        statistics_gen = tfx.components.StatisticsGen(
            examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"]
        )
        validations = gates.custom_validations(config.min_class_examples)
    else:
        statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"])
        validations = None
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        custom_validation_config=validations,
    )
    data_gate = gates.DataGate(anomalies=example_validator.outputs["anomalies"])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=TRANSFORM_FN,
        custom_config={IMAGE_SIZE_KEY: config.image_size},
        # The graph is applied in the Trainer's input pipeline and the served
        # model; storing decoded floats would cost ~30x the JPEG bytes.
        materialize=False,
        disable_statistics=True,
        splits_config=transform_pb2.SplitsConfig(analyze=["train"]),
    )
    # Nothing is transformed or trained on data the gate refused.
    transform.add_upstream_node(data_gate)
    custom_config = {TRAINING_CONFIG_KEY: config.training.to_json()}
    components = [example_gen, schema_gen, statistics_gen, example_validator, data_gate, transform]
    hyperparameters = None
    if config.tune:
        tuner = tfx.components.Tuner(
            tuner_fn=TUNER_FN,
            examples=example_gen.outputs["examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=tfx.proto.TrainArgs(),
            eval_args=tfx.proto.EvalArgs(),
            custom_config={**custom_config, TRIALS_KEY: config.tuner_trials},
        )
        components.append(tuner)
        hyperparameters = tuner.outputs["best_hyperparameters"]
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=hyperparameters,
        train_args=tfx.proto.TrainArgs(),
        eval_args=tfx.proto.EvalArgs(),
        custom_config=custom_config if trainer_config is None else trainer_config,
    )
    evaluator_inputs = dict(examples=example_gen.outputs["examples"], model=trainer.outputs["model"])
    if config.compare_to_blessed:
        model_resolver = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id("latest_blessed_model_resolver")
        components.append(model_resolver)
        evaluator_inputs["baseline_model"] = model_resolver.outputs["model"]
    evaluator = tfx.components.Evaluator(
        **evaluator_inputs,
        eval_config=evaluation.eval_config(config) if eval_config is None else eval_config,
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir)
        ),
    )
    return components + [trainer, evaluator, pusher]


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config=None,
    *,
    data_root: str | tfx.dsl.experimental.RuntimeParameter | None = None,
    trainer_config: str | tfx.dsl.experimental.RuntimeParameter | None = None,
    eval_config: str | tfx.dsl.experimental.RuntimeParameter | None = None,
) -> tfx.dsl.Pipeline:
    """The pipeline for any runner; the keyword values are those of `create_components`."""
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=create_components(config, data_root=data_root, trainer_config=trainer_config, eval_config=eval_config),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_args),
    )
