"""`flowers rollback`: serve an older pushed version again.

TF Serving (and `flowers serve`, KServe, the baseline component, `predict`)
serve the highest version folder under `serving/`, so a rollback copies the
chosen version to a new, higher version number: written into a hidden
folder and renamed, so no reader ever sees half a model. The copy is
recorded in ML Metadata as a PushedModel of its own (what `predict` and the
report find) under a run of its own, which `flowers history` lists.
"""

from __future__ import annotations

import dataclasses
import datetime
import time

from flowers import outputs
from flowers.config import PipelineConfig
from flowers.outcome import State
from flowers.runs import records, results

EXECUTION_TYPE = "flowers.Rollback"


@dataclasses.dataclass(frozen=True)
class Rollback:
    run_id: str
    source: str  # the version served again
    version: str  # the new version folder it is served as
    path: str


def pushed_versions(serving_dir: str) -> list[str]:
    """The version folders under the serving dir, oldest first."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(serving_dir):
        return []
    return sorted((v.rstrip("/") for v in tf.io.gfile.listdir(serving_dir) if v.rstrip("/").isdigit()), key=int)


def rollback(config: PipelineConfig, version: str | None = None) -> Rollback:
    """Serve `version` (default: the one pushed before the served one) again.
    LookupError when it does not exist; OutputDirBusy while a run holds the dir."""
    versions = pushed_versions(config.serving_dir)
    if not versions:
        raise LookupError(f"{config.serving_dir}: no pushed versions to roll back to")
    served = versions[-1]
    if version is None:
        if len(versions) < 2:
            raise LookupError(f"{config.serving_dir}: only version {served} was pushed; nothing older to roll back to")
        version = versions[-2]
    if version not in versions:
        raise LookupError(f"no pushed version {version} in {config.serving_dir}; pushed: {', '.join(versions)}")
    if version == served:
        raise ValueError(f"version {version} is already the served one (the newest under {config.serving_dir})")
    store = records.store_for(config)
    run_id = f"rollback-{datetime.datetime.now().isoformat()}"
    lock = outputs.RunLock(config.output_dir)
    lock.acquire(run_id)  # no run pushes while the copy is made
    try:
        new = str(max(int(time.time()), int(served) + 1))
        path = _copy(config.serving_dir, version, new)
        _record(store, run_id, version, new, path)
    finally:
        lock.release()
    return Rollback(run_id, version, new, path)


def _copy(serving_dir: str, version: str, new: str) -> str:
    """serving/<version> copied to serving/<new> through a hidden folder and one rename."""
    if "://" not in serving_dir:  # the Pusher's own commit: fsync, disk-full named, never half a version
        from flowers.components import push

        return push.publish(f"{serving_dir}/{version}", serving_dir, new)
    import tensorflow as tf

    source, staging, final = (f"{serving_dir}/{name}" for name in (version, f".rollback-{new}", new))
    for folder, _, files in tf.io.gfile.walk(source):
        target = staging + folder[len(source) :]
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(f"{folder}/{name}", f"{target}/{name}", overwrite=True)
    tf.io.gfile.rename(staging, final)
    return final


def _record(store, run_id: str, version: str, new: str, path: str) -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    artifact = pb.Artifact(type_id=store.get_artifact_type("PushedModel").id, uri=path, state=pb.Artifact.LIVE)
    for key, value in (("pushed_destination", path), ("pushed_version", new), ("rolled_back_from", version)):
        artifact.custom_properties[key].string_value = value
    artifact.custom_properties["pushed"].int_value = 1
    execution = pb.Execution(
        type_id=store.put_execution_type(pb.ExecutionType(name=EXECUTION_TYPE)), last_known_state=pb.Execution.COMPLETE
    )
    event = pb.Event(type=pb.Event.OUTPUT)
    event.path.steps.add().key = "pushed_model"
    context = pb.Context(type_id=store.get_context_type(records.RUN_CONTEXT).id, name=run_id)
    context.custom_properties[results.STATE_PROPERTY].string_value = State.ROLLED_BACK.value
    store.put_execution(execution, [(artifact, event)], [context])
    source = _summary_of_version(store, version)
    summary = results.summarize(store, run_id, recorded=False)
    summary = dataclasses.replace(
        summary,
        accuracy=source.accuracy if source else None,
        per_class_recall=source.per_class_recall if source else {},
        eval_examples=source.eval_examples if source else None,
        model_uri=source.model_uri if source else None,
        settings=source.settings if source else {},
        blessed=True,
        pushed_to=path,
        pushed_version=new,
        note=f"version {version} served again",
    )
    results.record_summary(store, summary)


def _summary_of_version(store, version: str) -> results.RunSummary | None:
    """The summary of the run that pushed `version`, if ML Metadata has it."""
    for run_id in reversed(records.run_ids(store)):
        summary = results.summarize(store, run_id)
        if summary.pushed_version == version and summary.state != State.ROLLED_BACK.value:
            return summary
    return None


def describe(result: Rollback) -> str:
    return (
        f"version {result.source} is served again as version {result.version} ({result.path}); "
        f"recorded as {result.run_id}"
    )
