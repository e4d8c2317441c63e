"""The baseline the Evaluator compares a candidate with: the newest model in
the Pusher's destination, as a Model artifact.

TFX's latest-blessed-model Resolver needs the orchestrator to query ML
Metadata, which open-source Kubeflow Pipelines 2.x cannot do (it runs no
resolver tasks); this component reads the serving folder instead, which every
orchestrator can, so the no-regression gate holds everywhere. The serving
folder is also the truth about what ships. With nothing pushed yet it hands
the candidate itself over as its own baseline: every change is then zero and
the change gate passes, and the artifact says so (`pushed_version` empty).
"""

import os

from tfx import v1 as tfx

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


@tfx.dsl.components.component
def LatestPushedModel(
    candidate: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    baseline: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Model],
    push_destination: tfx.dsl.components.Parameter[str],
) -> None:
    """Copies the newest pushed model (or, before the first push, the
    candidate) into `baseline`."""
    from tfx.utils import io_utils

    version = newest_version(push_destination)
    source = (
        f"{push_destination.rstrip('/')}/{version}" if version else os.path.join(candidate.uri, names.SERVING_FOLDER)
    )
    io_utils.copy_dir(source, os.path.join(baseline.uri, names.SERVING_FOLDER))
    baseline.set_string_custom_property(names.PUSHED_VERSION, version or "")
