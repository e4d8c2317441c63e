"""The baseline the Evaluator compares a candidate with: the newest model in
the Pusher's destination, as a Model artifact that points at it in place.

TFX's latest-blessed-model Resolver needs the orchestrator to query ML
Metadata, which open-source Kubeflow Pipelines 2.x cannot do (it runs no
resolver tasks); this component reads the serving folder instead, which every
orchestrator can, so the no-regression gate holds everywhere. The serving
folder is also the truth about what ships.

Nothing is copied. The artifact's uri is the pushed version folder itself
(`serving/<version>`, local or gs://); `components/evaluator.py` hands TFMA
that folder. (TFX's launcher, cleaning up after a failed task, removes the
folders it planned for the outputs, not the uri the task set.) With nothing
pushed yet the artifact keeps its own empty folder and `pushed_version` is
empty: the Evaluator then evaluates the candidate alone, and the change
gate, with nothing to compare with, passes.
"""

# (not tfx.v1: pipeline/pipeline.py says why)
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact

from flowers.components import names


def newest_version(push_destination: str) -> str | None:
    """The newest pushed version folder (numbered by the Pusher) holding a SavedModel."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(push_destination):
        return None
    versions = sorted(
        (v.rstrip("/") for v in tf.io.gfile.listdir(push_destination) if v.rstrip("/").isdigit()), key=int
    )
    for version in reversed(versions):
        if tf.io.gfile.exists(f"{push_destination.rstrip('/')}/{version}/saved_model.pb"):
            return version
    return None


def is_pushed(model: Artifact) -> bool:
    """Whether a baseline artifact of this component names a pushed model."""
    return bool(model.get_string_custom_property(names.PUSHED_VERSION))


@component
def LatestPushedModel(
    candidate: InputArtifact[standard_artifacts.Model],
    baseline: OutputArtifact[standard_artifacts.Model],
    push_destination: Parameter[str],
) -> None:
    """Points `baseline` at the newest pushed model (or, before the first
    push, at nothing: `pushed_version` empty).

    The candidate is read only to order this task after the Trainer, right
    before the Evaluator reads the folder. Reading it in place is safe there:
    nothing deletes the newest version while a run is on (the Pusher adds a
    newer one only after the Evaluator; `keep_versions` pruning runs when the
    run has ended and never removes the newest; `flowers rollback` copies to a
    new version and waits for the run's lock). The artifact may name a pruned
    folder later; nothing reads it again (the Evaluator always reruns: this
    task is never cached)."""
    del candidate
    version = newest_version(push_destination)
    baseline.set_string_custom_property(names.PUSHED_VERSION, version or "")
    if version:
        baseline.uri = f"{push_destination.rstrip('/')}/{version}"
