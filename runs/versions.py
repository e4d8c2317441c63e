"""Which pushed versions are served, as TF Serving's file-system source does it.

The Pusher writes each blessed model to `serving/<version>/`. A poll every
few seconds lists the numeric folders, picks the ones the version policy
wants (`latest:N`, `all`, or specific versions), loads the new ones and
unloads the others. A version is only loaded once its folder has stopped
changing for one poll (a push still being copied is not half-loaded), and
only served once it has answered a warm-up request; until then the versions
already served keep serving. The map of served versions is replaced in one
assignment, so a request sees either the old map or the new one; a request
holds its version until it is answered, and a version is unloaded only when
no request holds it, so a swap or a retention delete fails no request (the
model lives in memory once loaded: deleting its folder does not touch it).
A folder that fails to load is reported, shown in the status, and skipped
until its contents change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from typing import Iterator

from flowers import features
from flowers.runs.batching import Batcher
from flowers.runs.serving_settings import BatchingSettings, VersionPolicy

# What the person running the server sees (serve() sends it to stderr).
log = logging.getLogger("flowers.serve")

# TF Serving's servable states as its status API names them.
LOADING, AVAILABLE, UNLOADING, END = "LOADING", "AVAILABLE", "UNLOADING", "END"
SIGNATURES = (features.BYTES_SIGNATURE, features.EXAMPLES_SIGNATURE)
SIGNATURE_INPUTS = {
    features.BYTES_SIGNATURE: features.SERVING_BYTES_INPUT,
    features.EXAMPLES_SIGNATURE: features.SERVING_EXAMPLES_INPUT,
}


@dataclasses.dataclass
class VersionState:
    state: str
    error: str = ""


class ServedVersion:
    """One loaded version: its signatures, their batchers, and a count of the
    requests holding it."""

    def __init__(self, version: int, path: str, model, batching: BatchingSettings):
        import tensorflow as tf

        self.version = version
        self.path = path
        self.model = model  # the signatures' variables live as long as this object
        self.signatures = {name: model.signatures[name] for name in SIGNATURES}
        self.signature_defs = signature_defs(path)

        def caller(name: str):
            function, input_name = self.signatures[name], SIGNATURE_INPUTS[name]

            def call(items):
                out = function(**{input_name: tf.constant(items, tf.string)})
                return {key: value.numpy() for key, value in out.items()}

            return call

        def is_input_error(error: BaseException) -> bool:
            return isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.UnknownError))

        self.batchers = {name: Batcher(caller(name), batching, is_input_error) for name in SIGNATURES}
        self.holders = 0
        self._released = asyncio.Event()

    @contextlib.contextmanager
    def held(self) -> Iterator["ServedVersion"]:
        self.holders += 1
        self._released.clear()
        try:
            yield self
        finally:
            self.holders -= 1
            if not self.holders:
                self._released.set()

    async def unload(self) -> None:
        while self.holders:
            await self._released.wait()
        for batcher in self.batchers.values():
            await batcher.close()


def signature_defs(path: str) -> dict:
    """The SavedModel's signature defs as TF Serving's metadata API prints
    them (the protobuf's JSON mapping, proto field names)."""
    from google.protobuf import json_format
    from tensorflow.python.saved_model import loader_impl

    meta_graph = loader_impl.parse_saved_model(path).meta_graphs[0]
    return {
        name: json_format.MessageToDict(definition, preserving_proto_field_name=True)
        for name, definition in meta_graph.signature_def.items()
    }


def load_version(path: str):
    """The SavedModel at `path`, checked and warmed up: a version that loads
    but cannot answer is refused before it serves anyone."""
    import tensorflow as tf

    from flowers.runs import predict

    predict.load(path)  # refuses, by name, a folder that is not a flowers SavedModel
    model = tf.saved_model.load(path)
    missing = [name for name in SIGNATURES if name not in model.signatures]
    if missing:
        raise predict.ModelError(f"{path} has no {', '.join(missing)} signature: not a flowers model")
    warm_up = tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8))
    model.signatures[features.BYTES_SIGNATURE](**{features.SERVING_BYTES_INPUT: tf.reshape(warm_up, [1])})
    return model


def _fingerprint(folder: str) -> tuple:
    """Names, sizes and times of the folder's files: what changes while a push is copied."""
    found = []
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                stat = os.stat(os.path.join(root, name))
                found.append((os.path.relpath(os.path.join(root, name), folder), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


class VersionManager:
    """Polls `base_dir` (OUTPUT_DIR/serving) and keeps the policy's versions loaded."""

    def __init__(self, base_dir: str, policy: VersionPolicy, batching: BatchingSettings, poll_seconds: float = 2.0):
        self.base_dir = base_dir
        self.policy = policy
        self.batching = batching
        self.poll_seconds = poll_seconds
        self.served: dict[int, ServedVersion] = {}
        self.states: dict[int, VersionState] = {}
        self._seen: dict[int, tuple] = {}  # fingerprint of each folder at the last poll
        self._failed: dict[int, tuple] = {}  # fingerprint of each folder that failed to load
        self._task: asyncio.Task | None = None

    def latest(self) -> ServedVersion | None:
        served = self.served
        return served[max(served)] if served else None

    def on_disk(self) -> dict[int, str]:
        try:
            names = os.listdir(self.base_dir)
        except FileNotFoundError:
            return {}
        return {
            int(n): os.path.join(self.base_dir, n)
            for n in names
            if n.isdigit() and os.path.isdir(os.path.join(self.base_dir, n))
        }

    async def start(self) -> None:
        """The first load (every folder as it is now), then polling."""
        await self.poll(first=True)
        self._task = asyncio.get_running_loop().create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        served, self.served = self.served, {}
        for version in served.values():
            await version.unload()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.poll()
            except Exception:  # noqa: BLE001 - a poll that fails must not stop the next ones
                log.exception("polling %s failed", self.base_dir)

    async def poll(self, first: bool = False) -> None:
        folders = self.on_disk()
        fingerprints = {v: await asyncio.to_thread(_fingerprint, p) for v, p in folders.items()}
        # A folder is a candidate once it has stopped changing (at start-up
        # every folder is taken as complete), unless it failed as it is now.
        candidates = {
            v for v, f in fingerprints.items() if (first or self._seen.get(v) == f) and self._failed.get(v) != f
        } | (set(self.served) & set(folders))
        self._seen = fingerprints
        while True:
            wanted = self.policy.choose(sorted(candidates))
            to_load = sorted(wanted - set(self.served), reverse=True)
            if not to_load:
                break
            for version in to_load:  # newest first
                if not await self._load(version, folders[version], fingerprints[version]):
                    candidates.discard(version)
        retired = [v for v in self.served if v not in wanted]
        if not retired:
            return
        served = dict(self.served)
        leaving = [served.pop(v) for v in retired]
        self.served = served  # one assignment: a request sees the old map or the new one
        for version in leaving:
            self.states[version.version] = VersionState(UNLOADING)
            asyncio.get_running_loop().create_task(self._unload(version))

    async def _load(self, version: int, path: str, fingerprint: tuple) -> bool:
        self.states[version] = VersionState(LOADING)
        try:
            model = await asyncio.to_thread(load_version, path)
            served = ServedVersion(version, path, model, self.batching)
        except Exception as error:  # noqa: BLE001 - any failure: report, skip, keep serving the others
            message = _first_line(str(error)) or type(error).__name__
            self._failed[version] = fingerprint
            self.states[version] = VersionState(END, message)
            log.warning("version %s (%s) failed to load and is skipped: %s", version, path, message)
            return False
        self._failed.pop(version, None)
        self.served = {**self.served, version: served}
        self.states[version] = VersionState(AVAILABLE)
        log.info("version %s loaded from %s", version, path)
        return True

    async def _unload(self, version: ServedVersion) -> None:
        await version.unload()  # after the last request holding it is answered
        self.states[version.version] = VersionState(END)
        log.info("version %s unloaded", version.version)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""
