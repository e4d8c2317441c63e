"""The one typed configuration of a flowers pipeline run.

Runners and the CLI build a `PipelineConfig`; everything else receives it (or
its `TrainingConfig`, which travels to the Trainer as JSON) and reads nothing
from the environment. Every field declares what it accepts, and a config
that breaks a rule cannot be built: a bad setting is refused when it is
given, before TensorFlow or TFX is imported.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import typing
from typing import Any, Mapping

from flowers import weights as bundled_weights
from flowers.fields import SettingsError, allowed, bounds  # noqa: F401 (the config's public names)
from flowers.fields import coerce as _coerce
from flowers.fields import resolved as _resolved
from flowers.fields import setting as _setting
from flowers.fields import validate as _validate
from flowers.paths import CURATED_SCHEMA, SAMPLE_DATA

# TFRecord shards a conversion writes unless told otherwise.
DEFAULT_SHARDS = 2
LOCAL_BEAM_ARGS = ("--direct_running_mode=multi_processing", "--direct_num_workers=0")
# What a local run uses instead of LOCAL_BEAM_ARGS on small inputs
# (run.beam_multiprocessing_above_mb; flowers.data.layout.choose_beam_mode).
IN_MEMORY_BEAM_ARGS = ("--direct_running_mode=in_memory",)
# Measured: docs/performance.md.
BEAM_MULTIPROCESSING_ABOVE_MB = 500.0

# Keys under which the pipeline hands values to user code (custom_config).
TRAINING_CONFIG_KEY = "training"
TRIALS_KEY = "trials"
IMAGE_SIZE_KEY = "image_size"
# Set when spans carry their own train/eval split: percent of train kept for validation.
VALIDATION_FROM_TRAIN_KEY = "validation_from_train"

# MobileNetV2's widths (Keras accepts these alphas) and its smallest input.
ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
HEADS = ("pooling", "flatten")
SCHEDULES = ("plateau", "cosine")
WEIGHT_CHOICES = ("bundled", "imagenet", "none")
# Kubeflow: the components given CPU/memory settings, and the Trainer's
# accelerator types (Vertex AI names, or the Kubernetes resource name that
# open-source Kubeflow Pipelines puts in the pod's limits).
RESOURCE_COMPONENTS = ("trainer", "transform", "evaluator")
ACCELERATORS = (
    "none",
    "nvidia.com/gpu",
    "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_V100",
    "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_K80",
    "NVIDIA_TESLA_A100",
    "NVIDIA_A100_80GB",
    "NVIDIA_L4",
    "NVIDIA_H100_80GB",
)


def _refuse_unknown(values: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = set(values) - known
    if unknown:
        hint = ""
        if IMAGE_SIZE_KEY in unknown and where != "flowers":
            hint = " (the image size is the Transform graph's: set image_size for the whole pipeline)"
        raise SettingsError(
            f"unknown setting(s) {', '.join(sorted(unknown))} for {where}{hint}; known: {', '.join(sorted(known))}"
        )


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """What the Trainer needs; JSON-serialisable so it crosses into `run_fn`.

    The image size is not here: the Trainer takes it from the Transform
    graph it is given, so the two can never disagree.
    """

    # MobileNetV2's width. 1.0 (the lab's, bundled too) scored no better than
    # 0.5, at three times the weights and multiply-adds (docs/benchmarks.md).
    alpha: float = _setting(0.5, choices=ALPHAS)
    # "bundled" (shipped with the repo), "imagenet" (downloads), "none", or a .h5 path.
    weights: str = "bundled"
    # "pooling": global average pooling + dropout; "flatten": the lab's recipe.
    head: str = _setting("pooling", choices=HEADS)
    # Dropout before the softmax head.
    dropout: float = _setting(0.5, low=0.0, high=0.95)
    # Training-time augmentation on (random flips and the kinds below).
    augment: bool = True
    # Training-only augmentation besides horizontal flips (0 turns one off):
    # rotation (fraction of a full turn), zoom in/out (fraction of the side),
    # brightness/contrast change (fraction of the value range).
    augment_rotation: float = _setting(0.05, low=0.0, high=0.5)
    augment_zoom: float = _setting(0.1, low=0.0, high=0.9)
    augment_color: float = _setting(0.1, low=0.0, high=0.9)
    # Share of training images degraded as phones and chat apps do (downscale
    # and back, JPEG recompression, mild blur; each independently). What it
    # does for such photos is measured, not yet settled: docs/benchmarks.md.
    augment_degrade: float = _setting(0.3, low=0.0, high=1.0)
    # Mixup: each training image blended with another of its batch, one-hot
    # labels alike, by a weight from Beta(mixup, mixup); 0 turns it off.
    mixup: float = _setting(0.0, low=0.0, high=10.0)
    # CutMix: a box of another image of its batch pasted into each training
    # image, the labels mixed by its area (1 - Beta(cutmix, cutmix)); 0: off.
    cutmix: float = _setting(0.0, low=0.0, high=10.0)
    # Cross-entropy label smoothing.
    label_smoothing: float = _setting(0.1, low=0.0, high=0.9)
    # Images per training step.
    batch_size: int = _setting(32, low=1, high=4096)
    # First phase: the head on a frozen backbone, at most this many epochs, at this learning rate.
    epochs: int = _setting(15, low=1, high=1000)
    learning_rate: float = _setting(1e-3, low=0.0, high=1.0, open_low=True)
    # Second phase: unfreeze this many top layers of the backbone, at most
    # this many epochs, at a lower learning rate (0 epochs: head only).
    fine_tune_epochs: int = _setting(20, low=0, high=1000)
    fine_tune_layers: int = _setting(30, low=0, high=154)
    fine_tune_learning_rate: float = _setting(1e-4, low=0.0, high=1.0, open_low=True)
    # Fine-tuning's learning rate: "plateau" drops 0.3x when validation loss
    # stalls; "cosine" warms up for an epoch, then falls along a half cosine
    # over `fine_tune_epochs` (same eval accuracy: docs/benchmarks.md).
    fine_tune_schedule: str = _setting("plateau", choices=SCHEDULES)
    # After early stopping has chosen each phase's epochs on validation, train
    # again from the start on train + validation for those epochs, at the
    # learning rates they had (eval stays unseen). Off: docs/benchmarks.md.
    final_fit: bool = False
    # Both phases stop after this many epochs without a better validation
    # accuracy, keeping their best weights (the learning rate drops 0.3x an epoch sooner).
    early_stopping_patience: int = _setting(5, low=1, high=1000)
    # Random seed of weights, shuffling and augmentation.
    seed: int = _setting(42, low=0, high=2**31 - 1)
    # Decoded images are kept in memory up to this many MiB (decoded once per
    # run, not once per epoch); above it they spill to a cache file.
    cache_memory_mb: int = _setting(2048, low=0, high=1 << 20)
    # TPU name or address ("local" on a TPU VM); empty uses $TPU_NAME if set.
    tpu: str = ""
    # Also write model.tflite (what a phone runs) and check it against the
    # SavedModel on the validation split; off saves its conversion and check.
    tflite: bool = True
    # The served model (and TFLite file) averages its probabilities over each
    # image and its mirror image: twice the compute per image. Off: -0.5 to
    # +0.9 points of eval accuracy in 7 runs, +0.2 on average (benchmarks.md).
    test_time_flip: bool = False

    def __post_init__(self):
        _validate(self)
        if self.weights not in WEIGHT_CHOICES and not self.weights.endswith(".h5"):
            raise SettingsError(
                f"setting weights={self.weights!r}: allowed {', '.join(WEIGHT_CHOICES)} or a path to a Keras .h5 file"
            )
        if self.weights == "bundled":
            try:
                bundled_weights.check_bundled(self.alpha)
            except bundled_weights.WeightsError as error:
                raise SettingsError(f"setting {error}") from None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainingConfig":
        values = json.loads(text)
        _refuse_unknown(values, {f.name for f in dataclasses.fields(cls)}, "the Trainer's configuration")
        return cls(**values)

    def with_values(self, values: Mapping[str, Any]) -> "TrainingConfig":
        """This config with some fields replaced (e.g. a tuner trial's values)."""
        return dataclasses.replace(self, **values)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how they are split and sized."""

    # Folder (or URI) of TFRecord shards in `span-N/` folders (each flat, or
    # with `train/` + `eval/`).
    data_root: str = SAMPLE_DATA
    # Folder holding the curated schema.pbtxt; empty infers one with SchemaGen.
    schema_dir: str = CURATED_SCHEMA
    # span_window 0: every run reads all span folders of the data root. N:
    # each run ingests one span (the newest, or `span`) and the Trainer and
    # Evaluator see the latest N spans ingested so far (local runs only).
    span: int = _setting(0, low=0, high=10**9)
    span_window: int = _setting(0, low=0, high=10**6)
    # Hash split of each span: the rest is train. Validation picks the best
    # epoch (early stopping, learning-rate drops); eval only grades the model.
    validation_percent: int = _setting(15, low=1, high=49)
    eval_percent: int = _setting(15, low=1, high=49)
    # Side of the square model input: Transform crops to it, and the Trainer
    # reads it back from the Transform graph. MobileNetV2 takes 32 px and up.
    image_size: int = _setting(192, low=32, high=1024)
    # Whether the spans hold train/ and eval/ folders: read from the data root
    # once, before the DAG is built (flowers.data.layout.resolve), so building
    # the DAG reads no disk. None: not resolved yet.
    presplit: typing.Optional[bool] = _resolved()

    def __post_init__(self):
        _validate(self)
        if not self.data_root:
            raise SettingsError("setting data_root is empty")
        if self.span and not self.span_window:
            raise SettingsError(
                f"setting span={self.span} needs span_window (a run reads every span unless span_window is set)"
            )
        if self.validation_percent + self.eval_percent > 90:
            raise SettingsError(
                f"settings validation_percent={self.validation_percent} and eval_percent={self.eval_percent} "
                "leave under 10% for training: allowed a sum of at most 90"
            )


@dataclasses.dataclass(frozen=True)
class GatesConfig:
    """What a model must pass to be pushed, and what the data must pass to be trained on."""

    # Evaluator gates: absolute accuracy, and how much the accuracy may drop
    # below the last blessed model's (0 means no regression at all).
    min_accuracy: float = _setting(0.75, low=0.0, high=1.0)
    max_accuracy_drop: float = _setting(0.0, low=0.0, high=1.0)
    # Data gate: every class needs at least this many examples in every split.
    # 1 catches a class that is missing altogether (the failure that silently
    # trains a 4-class model); raise it for real data sets.
    min_class_examples: int = _setting(1, low=0, high=10**9)
    # Data gate: in every split, the largest class may have at most this many
    # times the examples of the smallest (0: no check). The bundled sample's
    # splits are within 3.7; a span of 162 daisies and 12 of each other
    # class is not.
    max_class_ratio: float = _setting(8.0, low=0.0, high=1e9)
    # Evaluator gate: every class's recall on the eval split (accuracy in the
    # slice of its true class) must reach this floor, so a model blind to a
    # class is never pushed, whatever its overall accuracy.
    min_class_recall: float = _setting(0.5, low=0.0, high=1.0)
    # Compare each candidate with the newest pushed model on the same eval
    # data (components/baseline.py; runs on every orchestrator).
    compare_to_blessed: bool = True

    def __post_init__(self):
        _validate(self)
        if 0 < self.max_class_ratio < 1:
            raise SettingsError(
                f"setting max_class_ratio={self.max_class_ratio} is below 1 (the largest class over the smallest): "
                "allowed 0 (no check) or from 1"
            )


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How a run goes: Beam, caching, tuning, warm start, retention, report."""

    # Apache Beam pipeline arguments of the data components (space-separated on the CLI).
    beam_args: tuple[str, ...] = LOCAL_BEAM_ARGS
    # A local run whose beam_args are the default runs Beam in its component's
    # process (in-memory DirectRunner) when the shards it reads total at most
    # this many MB, and in one worker process per core above. Workers cost
    # about 8 s per Beam component (a fresh Python importing TensorFlow) and
    # at most halve the work on 2 cores: StatisticsGen was faster in-memory at
    # every size measured, up to 557 MB (docs/performance.md). 0: always.
    beam_multiprocessing_above_mb: float = _setting(BEAM_MULTIPROCESSING_ABOVE_MB, low=0.0, high=10.0**7)
    # Reuse a component's earlier output when its inputs and settings are unchanged.
    enable_cache: bool = True
    # Start the Trainer from the last blessed model's weights (TFX's
    # base_model) instead of ImageNet's: faster retraining on a new span.
    warm_start: bool = False
    # Run the Tuner (KerasTuner) before the Trainer, with this many trials.
    tune: bool = False
    tuner_trials: int = _setting(4, low=1, high=1000)
    # Pushed versions to keep: after a push, the oldest beyond this many are
    # deleted, never the newest (0: keep all).
    keep_versions: int = _setting(0, low=0, high=10**6)
    # Write the run's HTML report (runs/report.py) when it ends.
    report: bool = True

    def __post_init__(self):
        _validate(self)


@dataclasses.dataclass(frozen=True)
class Resources:
    """A Kubeflow pod's requests and limits (0 leaves one to the cluster):
    CPU cores, memory in GB, and an accelerator."""

    # CPU cores requested, and the limit (0 leaves it to the cluster).
    cpu: float = _setting(2.0, low=0.0, high=256.0)
    cpu_limit: float = _setting(4.0, low=0.0, high=256.0)
    # Memory in GB requested, and the limit (0 leaves it to the cluster).
    memory_gb: float = _setting(4.0, low=0.0, high=4096.0)
    memory_limit_gb: float = _setting(8.0, low=0.0, high=4096.0)
    # Accelerator type (Vertex AI names, or nvidia.com/gpu on open-source Kubeflow) and count.
    accelerator: str = _setting("none", choices=ACCELERATORS)
    accelerator_count: int = _setting(1, low=1, high=16)

    def __post_init__(self):
        _validate(self)


def _default_resources() -> dict[str, Resources]:
    return {
        "trainer": Resources(cpu=4.0, cpu_limit=8.0, memory_gb=8.0, memory_limit_gb=16.0),
        "transform": Resources(),
        "evaluator": Resources(),
    }


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
    """What the compiled Kubeflow spec names: the image and each pod's resources."""

    # Container image (kubeflow/Dockerfile); push it where the cluster can pull
    # it and set e.g. gcr.io/PROJECT/flowers:TAG.
    image: str = "flowers:latest"
    # Component (RESOURCE_COMPONENTS; the Tuner gets the Trainer's) -> pod resources.
    resources: dict = dataclasses.field(default_factory=_default_resources)

    def __post_init__(self):
        if not self.image:
            raise SettingsError("setting image is empty")
        unknown = set(self.resources) - set(RESOURCE_COMPONENTS)
        if unknown:
            raise SettingsError(
                f"setting kubeflow.resources.{sorted(unknown)[0]}: unknown component; "
                f"allowed {', '.join(RESOURCE_COMPONENTS)}"
            )
        for part, spec in self.resources.items():
            for request, limit in (("cpu", "cpu_limit"), ("memory_gb", "memory_limit_gb")):
                if 0 < getattr(spec, limit) < getattr(spec, request):
                    raise SettingsError(
                        f"setting kubeflow.resources.{part}.{limit}={getattr(spec, limit)} is below "
                        f"kubeflow.resources.{part}.{request}={getattr(spec, request)}"
                    )


SECTIONS = {
    "data": DataConfig,
    "gates": GatesConfig,
    "training": TrainingConfig,
    "run": RunConfig,
    "kubeflow": KubeflowConfig,
}


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """A pipeline run: where data comes from and goes, how it trains and runs, and the gates it must pass."""

    # The pipeline's name in ML Metadata and on Kubeflow.
    pipeline_name: str = "flowers"
    # Everything the run writes: TFX artifacts, ML Metadata, pushed models.
    output_dir: str = "outputs"
    data: DataConfig = DataConfig()
    gates: GatesConfig = GatesConfig()
    training: TrainingConfig = TrainingConfig()
    run: RunConfig = RunConfig()
    kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.pipeline_name):
            raise SettingsError(f"setting pipeline_name={self.pipeline_name!r}: letters, digits, '_', '.' and '-' only")
        if not self.output_dir:
            raise SettingsError("setting output_dir is empty")

    @property
    def pipeline_root(self) -> str:
        return f"{self.output_dir.rstrip('/')}/tfx"

    @property
    def metadata_path(self) -> str:
        return f"{self.output_dir.rstrip('/')}/metadata.sqlite"

    @property
    def serving_dir(self) -> str:
        return f"{self.output_dir.rstrip('/')}/serving"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PipelineConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "PipelineConfig":
        """Built (and so validated) from nested plain values, as `to_json` writes them."""
        values = dict(values)
        sections = {name: dict(values.pop(name, {})) for name in SECTIONS}
        if "beam_args" in sections["run"]:
            sections["run"]["beam_args"] = tuple(sections["run"]["beam_args"])
        resources = {}
        for part, fields in sections["kubeflow"].pop("resources", {}).items():
            if part not in RESOURCE_COMPONENTS:
                raise SettingsError(
                    f"setting kubeflow.resources.{part}: unknown component; allowed {', '.join(RESOURCE_COMPONENTS)}"
                )
            with _named(f"kubeflow.resources.{part}."):
                resources[part] = Resources(**fields)
        built = {}
        for name, section in SECTIONS.items():
            with _named(f"{name}."):
                built[name] = section(**sections[name], **({"resources": resources} if name == "kubeflow" else {}))
        return cls(**values, **built)

    def override(self, values: Mapping[str, Any]) -> "PipelineConfig":
        """A copy with settings replaced, all at once (a request and its limit
        may change together). Keys are `section.field` (`training.epochs`,
        `kubeflow.resources.trainer.cpu`), a top-level field, or a flat name
        of earlier releases (`epochs`, `trainer_cpu`), which still works and
        is noted as deprecated."""
        tree = json.loads(self.to_json())
        for key, value in values.items():
            path = _canonical(key)
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = _coerce(_owner(path), path[-1], value, ".".join(path))
        return PipelineConfig.from_dict(tree)


class _named:
    """Errors raised inside name the setting as the user writes it (section.field)."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if kind is SettingsError and self.prefix not in str(error):
            raise SettingsError(re.sub(r"^settings? ", lambda m: m.group(0) + self.prefix, str(error))) from None
        return False


def _owner(path: tuple[str, ...]) -> type:
    """The dataclass that holds the field at `path`."""
    if len(path) == 1:
        return PipelineConfig
    if path[:2] == ("kubeflow", "resources"):
        return Resources
    return SECTIONS[path[0]]


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("settable", True)]


def setting_keys() -> dict[str, str]:
    """Every settable key (`section.field`) -> the flat name earlier releases used."""
    keys = {name: name for name in ("pipeline_name", "output_dir")}
    for section, cls in SECTIONS.items():
        if cls is KubeflowConfig:
            keys["kubeflow.image"] = "image"
            for part in RESOURCE_COMPONENTS:
                for name in _field_names(Resources):
                    keys[f"kubeflow.resources.{part}.{name}"] = f"{part}_{name}"
            continue
        for name in _field_names(cls):
            keys[f"{section}.{name}"] = name
    return keys


def _canonical(key: str) -> tuple[str, ...]:
    """A setting's path; a flat name of earlier releases is accepted with a note."""
    keys = setting_keys()
    if key in keys:
        return tuple(key.split("."))
    by_flat = {flat: dotted for dotted, flat in keys.items()}
    if key in by_flat:
        if "." in by_flat[key]:
            _deprecated(key, by_flat[key])
        return tuple(by_flat[key].split("."))
    parts = key.split(".")
    if parts[:2] == ["kubeflow", "resources"] and len(parts) == 4 and parts[2] not in RESOURCE_COMPONENTS:
        raise SettingsError(
            f"setting kubeflow.resources.{parts[2]}: unknown component; allowed {', '.join(RESOURCE_COMPONENTS)}"
        )
    hint = ""
    if key.endswith(IMAGE_SIZE_KEY):
        hint = " (the image size is the Transform graph's: set data.image_size for the whole pipeline)"
    close = difflib.get_close_matches(key, [*keys, *by_flat], n=1, cutoff=0.6)
    suggestion = f"; did you mean {by_flat.get(close[0], close[0])}?" if close else ""
    raise SettingsError(
        f"unknown setting(s) {key} for flowers{hint}{suggestion} (every setting: `flowers config docs`)"
    )


_NOTED: set[str] = set()


def _deprecated(flat: str, dotted: str) -> None:
    if flat not in _NOTED:
        _NOTED.add(flat)
        import sys

        print(f"note: setting {flat} is now {dotted} (the flat name still works in this release)", file=sys.stderr)
