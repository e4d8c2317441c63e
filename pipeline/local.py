"""Run the pipeline here: TFX LocalDagRunner, Beam DirectRunner, ML Metadata in SQLite."""
from __future__ import annotations

import dataclasses
import os

from tfx import v1 as tfx

from flowers.data import layout, weights
from flowers.pipeline.config import PipelineConfig
from flowers.pipeline.pipeline import create_pipeline


def metadata_config(config: PipelineConfig):
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)


def run(config: PipelineConfig) -> None:
    # Fail before any component runs, not in the Trainer minutes later.
    weights.resolve(config.training.weights, config.training.alpha)
    layout.check_data_root(config.data_root)
    # Absolute, so that paths recorded in ML Metadata work from any folder.
    config = dataclasses.replace(config, output_dir=os.path.abspath(config.output_dir))
    os.makedirs(config.output_dir, exist_ok=True)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata_config(config)))
