"""Settings of `flowers serve`, light to import (the CLI reads them before
TensorFlow loads): the model name, address, version policy, polling and
batching, each with TF Serving's meaning."""

from __future__ import annotations

import dataclasses
import re

MODEL_NAME = "flowers"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501  # TF Serving's REST port
# TF Serving's --file_system_poll_wait_seconds is 1; a new version also
# waits one more poll to be sure its folder is complete.
POLL_SECONDS = 2.0
_POLICY = re.compile(r"^(?:latest(?::(?P<n>\d+))?|(?P<all>all)|(?P<specific>\d+(?:,\d+)*))$")


@dataclasses.dataclass(frozen=True)
class BatchingSettings:
    max_batch_size: int = 32
    # Short: on a loaded server, requests pile up while the previous batch
    # runs anyway; the wait only matters when the server is nearly idle.
    timeout_s: float = 0.002
    # One model call at a time: TensorFlow already spreads one call over all
    # cores (intra-op threads), so parallel calls only compete for them.
    threads: int = 1

    def __post_init__(self):
        if self.max_batch_size < 1:
            raise ValueError(f"max batch size {self.max_batch_size}: must be at least 1")
        if self.timeout_s < 0:
            raise ValueError(f"batch timeout {self.timeout_s}: must not be negative")
        if self.threads < 1:
            raise ValueError(f"batch threads {self.threads}: must be at least 1")


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """`latest` / `latest:N` (the N newest), `all`, or `3,5` (those versions)."""

    latest: int = 1
    specific: tuple[int, ...] = ()
    all: bool = False

    @classmethod
    def parse(cls, text: str) -> "VersionPolicy":
        match = _POLICY.match(text.strip())
        if not match or match["n"] == "0":
            raise ValueError(
                f"version policy {text!r}: use latest, latest:N (N >= 1), all, or version numbers like 3,5"
            )
        if match["all"]:
            return cls(latest=0, all=True)
        if match["specific"]:
            return cls(latest=0, specific=tuple(sorted({int(v) for v in match["specific"].split(",")})))
        return cls(latest=int(match["n"] or 1))

    def choose(self, versions: list[int]) -> set[int]:
        if self.all:
            return set(versions)
        if self.specific:
            return set(self.specific) & set(versions)
        return set(sorted(versions)[-self.latest :])

    def __str__(self) -> str:
        if self.all:
            return "all"
        if self.specific:
            return ",".join(map(str, self.specific))
        return f"latest:{self.latest}"


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    serving_dir: str
    policy: VersionPolicy = VersionPolicy()
    batching: BatchingSettings = BatchingSettings()
    poll_seconds: float = POLL_SECONDS
    model_name: str = MODEL_NAME
