"""ImageNet MobileNetV2 weights: the bundled file (checked by sha256) or Keras'
own download for online users."""
from __future__ import annotations

import hashlib
import os

from flowers.pipeline.config import package_data

# The official Keras no-top file for alpha 0.5 (224 rows; loads at 192 px too).
BUNDLED = {
    0.5: (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5",
        "279052de2cfa801003aa6cc25cc4d007d35dd0b76f06935268c79788b7642d05",
    ),
}


class WeightsError(ValueError):
    """The requested weights cannot be used; the message says what to do."""


def resolve(weights: str, alpha: float) -> str | None:
    """What to pass as MobileNetV2's `weights=`: a checked path, "imagenet" or None."""
    if weights == "imagenet":
        return "imagenet"
    if weights == "none":
        return None
    if weights == "bundled":
        if alpha not in BUNDLED:
            raise WeightsError(
                f"no bundled weights for alpha={alpha} (bundled: {', '.join(map(str, BUNDLED))}); "
                "pass weights=imagenet when online, or weights=PATH to a Keras no-top .h5 file"
            )
        name, digest = BUNDLED[alpha]
        return verified(package_data("weights", name), digest)
    if not os.path.isfile(weights):
        raise WeightsError(f"weights file {weights} does not exist (or use bundled, imagenet, none)")
    return weights


def verified(path: str, sha256: str) -> str:
    """`path`, once its content matches `sha256`."""
    if not os.path.isfile(path):
        raise WeightsError(f"bundled weights {path} are missing; reinstall the project")
    with open(path, "rb") as f:
        actual = hashlib.sha256(f.read()).hexdigest()
    if actual != sha256:
        raise WeightsError(f"weights {path} are corrupt: sha256 {actual}, expected {sha256}")
    return path
