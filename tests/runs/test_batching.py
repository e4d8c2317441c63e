"""Server-side batching with the shared run's model, in this process:
concurrent requests become one model call, a bad request fails alone, a
request over the limit is refused with TF Serving's message."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest
import tensorflow as tf

from flowers import features
from flowers.runs.batching import BatchSizeError
from flowers.runs.serving_settings import BatchingSettings
from flowers.runs.versions import ServedVersion, load_version

pytestmark = pytest.mark.slow


def _served(pushed, settings: BatchingSettings) -> ServedVersion:
    output_dir, version = pushed
    path = os.path.join(output_dir, "serving", version)
    return ServedVersion(int(version), path, load_version(path), settings)


def test_concurrent_requests_share_one_model_call(pushed, photos_dir):
    photos = sorted(os.path.join(r, n) for r, _, ns in os.walk(photos_dir) for n in ns)[:6]
    jpegs = [open(p, "rb").read() for p in photos]

    async def scenario():
        served = _served(pushed, BatchingSettings(max_batch_size=16, timeout_s=0.5))
        batcher = served.batchers[features.BYTES_SIGNATURE]
        answers = await asyncio.gather(*(batcher.submit([jpeg]) for jpeg in jpegs))
        assert batcher.batches == 1
        alone = served.signatures[features.BYTES_SIGNATURE](**{features.SERVING_BYTES_INPUT: tf.constant(jpegs)})
        for i, answer in enumerate(answers):
            np.testing.assert_allclose(
                answer[features.PROBABILITIES_OUTPUT][0], alone[features.PROBABILITIES_OUTPUT][i].numpy(), atol=1e-6
            )

        mixed = await asyncio.gather(
            *(batcher.submit([b"not an image" if i == 2 else j]) for i, j in enumerate(jpegs)), return_exceptions=True
        )
        assert isinstance(mixed[2], tf.errors.InvalidArgumentError)
        assert [a[features.CLASS_NAME_OUTPUT][0] for i, a in enumerate(mixed) if i != 2] == [
            a[features.CLASS_NAME_OUTPUT][0] for i, a in enumerate(answers) if i != 2
        ]
        with pytest.raises(BatchSizeError, match="^Task size 17 is larger than maximum input batch size 16$"):
            await batcher.submit(jpegs[:1] * 17)
        await served.unload()

    asyncio.run(scenario())
