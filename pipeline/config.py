"""The one typed configuration of a flowers pipeline run.

Runners and the CLI build a `PipelineConfig`; everything else receives it (or
its `TrainingConfig`, which travels to the Trainer as JSON) and reads nothing
from the environment.
"""
from __future__ import annotations

import dataclasses
import json
import os
import typing
from typing import Any, Mapping

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")

def package_data(*parts: str) -> str:
    """A file shipped in `flowers.data`, editable or installed alike."""
    import importlib.resources

    return str(importlib.resources.files("flowers.data").joinpath(*parts))

SAMPLE_DATA = package_data("sample")
CURATED_SCHEMA = package_data("schema")
# TFRecord shards a conversion writes unless told otherwise.
DEFAULT_SHARDS = 2
LOCAL_BEAM_ARGS = ("--direct_running_mode=multi_processing", "--direct_num_workers=0")

@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """What the Trainer needs; JSON-serialisable so it crosses into `run_fn`."""

    image_size: int = 192
    alpha: float = 0.5
    # "bundled" (shipped with the repo), "imagenet" (downloads), a .h5 path, or "none".
    weights: str = "bundled"
    # "pooling": global average pooling + dropout; "flatten": the lab's recipe.
    head: str = "pooling"
    dropout: float = 0.5
    augment: bool = True
    # Training-only augmentation besides horizontal flips (0 turns one off):
    # rotation (fraction of a full turn), zoom in/out (fraction of the side),
    # brightness/contrast change (fraction of the value range).
    augment_rotation: float = 0.05
    augment_zoom: float = 0.1
    augment_color: float = 0.1
    label_smoothing: float = 0.1
    batch_size: int = 32
    epochs: int = 15
    learning_rate: float = 1e-3
    # Second phase: unfreeze the top of the backbone at a lower learning rate.
    fine_tune_epochs: int = 20
    fine_tune_layers: int = 30
    fine_tune_learning_rate: float = 1e-4
    # Both phases stop after this many epochs without a better eval accuracy
    # (and keep their best weights); the learning rate drops 0.3x after one
    # epoch less without a lower eval loss.
    early_stopping_patience: int = 5
    seed: int = 42
    # TPU name or address ("local" on a TPU VM); empty uses $TPU_NAME if set.
    tpu: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainingConfig":
        return cls(**json.loads(text))

    def with_values(self, values: Mapping[str, Any]) -> "TrainingConfig":
        """This config with some fields replaced (e.g. a tuner trial's values)."""
        return dataclasses.replace(self, **values)

@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """A pipeline run: where data comes from and goes, and the gates it must pass."""

    pipeline_name: str = "flowers"
    # Folder (or URI) of TFRecord shards: flat, `span-N/`, and/or `train/` + `eval/`.
    data_root: str = SAMPLE_DATA
    # Everything the run writes: TFX artifacts, ML Metadata, pushed models.
    output_dir: str = "outputs"
    # Folder holding the curated schema.pbtxt; empty infers one with SchemaGen.
    schema_dir: str = CURATED_SCHEMA
    training: TrainingConfig = TrainingConfig()
    # Evaluator gates: absolute accuracy, and how much the accuracy may drop
    # below the last blessed model's (0 means no regression at all).
    min_accuracy: float = 0.75
    max_accuracy_drop: float = 0.0
    # Compare with the latest blessed model (a Resolver feeds the Evaluator a
    # baseline). Open-source KFP 2.x cannot run Resolver tasks: set it false
    # there; the absolute accuracy gate stays.
    compare_to_blessed: bool = True
    tune: bool = False
    tuner_trials: int = 4
    beam_args: tuple[str, ...] = LOCAL_BEAM_ARGS
    enable_cache: bool = True
    # Container image named by the compiled Kubeflow spec (kubeflow/Dockerfile);
    # push it where the cluster can pull it and set e.g. gcr.io/PROJECT/flowers:TAG.
    image: str = "flowers:latest"

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_dir, "tfx")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.output_dir, "serving")

    def override(self, values: Mapping[str, Any]) -> "PipelineConfig":
        """A copy with fields replaced; training fields may be named bare."""
        top = {f.name for f in dataclasses.fields(self)}
        train = {f.name for f in dataclasses.fields(TrainingConfig)}
        unknown = set(values) - top - train
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted((top | train) - {'training'}))}"
            )
        training = dataclasses.replace(
            self.training, **{k: _coerce(TrainingConfig, k, v) for k, v in values.items() if k in train}
        )
        return dataclasses.replace(
            self,
            training=training,
            **{k: _coerce(PipelineConfig, k, v) for k, v in values.items() if k in top},
        )

def _coerce(cls: type, name: str, value: Any) -> Any:
    """Turn a CLI string into the field's declared type."""
    if not isinstance(value, str):
        return value
    kind = typing.get_type_hints(cls)[name]
    try:
        if kind is bool:
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes")
        if kind in (int, float, str):
            return kind(value)
        if kind == tuple[str, ...]:
            return tuple(value.split())
    except ValueError:
        raise ValueError(f"setting {name}={value!r} is not a valid {kind.__name__}") from None
    raise ValueError(f"setting {name} cannot be set from the command line")
