"""Shared fixtures: real photos and shards taken from the bundled sample, so
the suite needs neither network nor ../shared."""
from __future__ import annotations

import pytest

from flowers import features  # first: flowers selects Keras 2 before TensorFlow loads
from samples import sample_examples


@pytest.fixture(scope="session")
def photos_dir(tmp_path_factory) -> str:
    """flower_photos layout: 3 real JPEGs per class, from the bundled sample."""
    root = tmp_path_factory.mktemp("photos")
    per_class: dict[int, int] = {}
    for example in sample_examples():
        f = example.features.feature
        index = f[features.CLASS_KEY].int64_list.value[0]
        if per_class.get(index, 0) == 3:
            continue
        per_class[index] = per_class.get(index, 0) + 1
        folder = root / features.CLASS_NAMES[index]
        folder.mkdir(exist_ok=True)
        (folder / f"photo{per_class[index]}.jpg").write_bytes(f[features.IMAGE_KEY].bytes_list.value[0])
    return str(root)


@pytest.fixture(scope="session")
def sample_jpeg() -> bytes:
    return sample_examples(1)[0].features.feature[features.IMAGE_KEY].bytes_list.value[0]
