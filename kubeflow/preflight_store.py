"""What preflight keeps under a pipeline root between its runs, standing in
for what the backends keep in ML Metadata: the kfp launcher's artifact ids and
cache (cache key -> the outputs of that execution), and the catalogue of every
output artifact that Vertex AI's resolver queries are answered from."""

from __future__ import annotations

import json
import os

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

CATALOGUE = "artifacts.jsonl"  # every output artifact of a successful task, oldest first
CACHE = "cache.jsonl"  # kfp: cache key -> the outputs of that execution
IDS = "mlmd_ids"  # kfp: the last metadata id given out under this root


class RootStore:
    def __init__(self, pipeline_root: str):
        self.root = pipeline_root

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def next_id(self) -> int:
        """ML Metadata's artifact ids: one counter per pipeline root."""
        last = 0
        if os.path.exists(self._path(IDS)):
            with open(self._path(IDS)) as f:
                last = int(f.read())
        os.makedirs(self.root, exist_ok=True)
        with open(self._path(IDS), "w") as f:
            f.write(str(last + 1))
        return last + 1

    def cached(self, key: str) -> dict[str, pb.ArtifactList] | None:
        """The outputs of the newest execution with this cache key, if any."""
        found = None
        for entry in self._lines(CACHE):
            if entry["key"] == key:
                found = entry["outputs"]  # the newest execution wins
        if found is None:
            return None
        return {k: json_format.ParseDict(v, pb.ArtifactList()) for k, v in found.items()}

    def cache(self, key: str, task: str, produced: dict[str, pb.ArtifactList]) -> None:
        outputs = {k: json_format.MessageToDict(v) for k, v in produced.items()}
        self._append(CACHE, [{"key": key, "task": task, "outputs": outputs}])

    def record(self, produced: dict[str, pb.ArtifactList]) -> None:
        """Add a task's output artifacts to the catalogue."""
        artifacts = [a for artifact_list in produced.values() for a in artifact_list.artifacts]
        self._append(CATALOGUE, [json_format.MessageToDict(a) for a in artifacts])

    def catalogue(self) -> list[pb.RuntimeArtifact]:
        return [json_format.ParseDict(entry, pb.RuntimeArtifact()) for entry in self._lines(CATALOGUE)]

    def _lines(self, name: str) -> list[dict]:
        if not os.path.exists(self._path(name)):
            return []
        with open(self._path(name)) as f:
            return [json.loads(line) for line in f if line.strip()]

    def _append(self, name: str, entries: list[dict]) -> None:
        with open(self._path(name), "a") as f:
            for entry in entries:
                f.write(json.dumps(entry, sort_keys=True) + "\n")
