"""Autograph leaves Keras's own code alone, as TensorFlow means it to.

TensorFlow 2.16's autograph never converts the `keras` package's code
(`DoNotConvert('keras')` in tensorflow/python/autograph/core/config.py), but
Keras 2 is now the `tf_keras` package, which that list does not name: each
traced function (a training step, an evaluation step, the export's
signatures) rewrote every tf_keras layer's code AST by AST. On this 2-core
machine a MobileNetV2 model's first training step took 20.7 s that way and
1.8 s without. The project's own layers (flowers.components.model) are
still converted, as user code should be.
"""

from __future__ import annotations

KERAS_PACKAGE = "tf_keras"


def leave_tf_keras_alone() -> None:
    """Add tf_keras to autograph's do-not-convert list (once per process)."""
    from tensorflow.python.autograph.core import config

    if not any(getattr(rule, "_prefix", None) == KERAS_PACKAGE for rule in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (config.DoNotConvert(KERAS_PACKAGE), *config.CONVERSION_RULES)
