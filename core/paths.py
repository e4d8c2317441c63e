"""Files the project ships in `flowers.data`: the sample, the schema, weights."""

from __future__ import annotations

import importlib.resources


def package_data(*parts: str) -> str:
    """A file shipped in `flowers.data`, editable or installed alike (a
    resource lookup: no code of flowers.data runs)."""
    return str(importlib.resources.files("flowers.data").joinpath(*parts))


SAMPLE_DATA = package_data("sample")
CURATED_SCHEMA = package_data("schema")
