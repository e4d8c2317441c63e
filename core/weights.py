"""ImageNet MobileNetV2 weights: the bundled file (checked by sha256) or Keras'
own download for online users."""

from __future__ import annotations

import hashlib
import os

from flowers.paths import package_data

# ImageNet no-top files (224 rows; they load at other input sizes too).
# Provenance and licence: data/weights/README.md.
BUNDLED = {
    # The official Keras file.
    0.5: (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5",
        "279052de2cfa801003aa6cc25cc4d007d35dd0b76f06935268c79788b7642d05",
    ),
    # The lab's own backbone, built from the TF-slim mobilenet_v2_1.0_224 checkpoint.
    1.0: (
        "mobilenet_v2_1.0_224_no_top.tf_slim.h5",
        "24949f52ec034783b756f3886ba37a6d50a130708fcdf90ba4fe45ed148fc526",
    ),
}


class WeightsError(ValueError):
    """The requested weights cannot be used; the message says what to do."""


def check_bundled(alpha: float) -> None:
    """WeightsError unless weights for `alpha` are bundled (the one place of this rule)."""
    if alpha not in BUNDLED:
        raise WeightsError(
            f"alpha={alpha}: no bundled weights for it (bundled: {', '.join(map(str, BUNDLED))}); "
            "pass weights=imagenet when online, or weights=PATH to a Keras no-top .h5 file"
        )


def resolve(weights: str, alpha: float) -> str | None:
    """What to pass as MobileNetV2's `weights=`: a checked path, "imagenet" or None."""
    if weights == "imagenet":
        return "imagenet"
    if weights == "none":
        return None
    if weights == "bundled":
        check_bundled(alpha)
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
