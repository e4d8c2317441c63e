"""The push is the run's commit point: TFX's Pusher, except that a version
folder appears in the serving dir only whole.

TFX's Pusher copies the model file by file into `serving/<version>`
(saved_model.pb last), so a push stopped half-way (disk full, a killed
worker) leaves a folder that a model server or `flowers predict` takes for a
model. Here the model is copied into a hidden folder beside the versions
(same file system), flushed to disk, and renamed into place: one atomic
step. Anything that goes wrong before the rename removes the hidden folder.
Serving dirs given as URIs (gs://...) have no atomic rename: TFX's own copy.
"""

from __future__ import annotations

import errno
import os
import shutil
import time

from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from flowers.outputs import PUSH_TEMP_PREFIX


class DiskFullError(OSError):
    """Not enough space for the push; the message names the folder and the space needed."""


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def disk_full(folder: str, needed: int) -> DiskFullError:
    free = shutil.disk_usage(folder).free
    return DiskFullError(
        errno.ENOSPC,
        f"disk full: {folder} has {free / 1e6:.1f} MB free and the push needs {needed / 1e6:.1f} MB; "
        "free some space there (or set keep_versions) and run again",
    )


def publish(model_path: str, serving_dir: str, version: str) -> str:
    """Copy the SavedModel at `model_path` to `serving_dir/version`, atomically:
    that folder exists complete or not at all. Returns its path."""
    os.makedirs(serving_dir, exist_ok=True)
    final = os.path.join(serving_dir, version)
    needed = folder_bytes(model_path)
    if shutil.disk_usage(serving_dir).free < needed:
        raise disk_full(serving_dir, needed)
    temp = os.path.join(serving_dir, f"{PUSH_TEMP_PREFIX}{version}-{os.getpid()}")
    try:
        _copy_tree(model_path, temp)
        _flush_tree(temp)
        os.rename(temp, final)  # the commit: atomic on one file system
    except BaseException as error:  # a signal's exception too: never a half version
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(serving_dir, needed) from None
        raise
    _fsync(serving_dir)  # the rename itself survives a power cut
    return final


def _copy_tree(source: str, target: str) -> None:
    """shutil.copytree, but stopping at the first error with its own errno
    (copytree copies on and raises one shutil.Error for all)."""
    for folder, _, files in os.walk(source):
        into = os.path.join(target, os.path.relpath(folder, source))
        os.makedirs(into, exist_ok=True)
        for name in files:
            shutil.copy2(os.path.join(folder, name), os.path.join(into, name))


def _flush_tree(root: str) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(os.path.join(folder, name))
        _fsync(folder)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_version(serving_dir: str) -> str:
    """A Unix-time version, as TFX's Pusher names them, one higher while taken."""
    version = int(time.time())
    while os.path.exists(os.path.join(serving_dir, str(version))):
        version += 1
    return str(version)


class Executor(pusher_executor.Executor):
    """TFX's Pusher with the atomic copy (local serving dirs)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        serving_dir = destination.filesystem.base_directory
        if destination.WhichOneof("destination") != "filesystem" or "://" in serving_dir:
            return super().Do(input_dict, output_dict, exec_properties)
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed)
            return
        model_path = self.GetModelPath(input_dict)
        # TFX's archive copy first: nothing may fail after the rename.
        try:
            if "://" in pushed.uri:
                io_utils.copy_dir(model_path, pushed.uri)
            else:
                _copy_tree(model_path, pushed.uri)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full(os.path.dirname(pushed.uri), folder_bytes(model_path)) from None
            raise
        version = new_version(serving_dir)
        final = publish(model_path, serving_dir, version)
        self._MarkPushed(pushed, pushed_destination=final, pushed_version=version)
