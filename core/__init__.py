"""flowers: the foundation every other package stands on.

`flowers.config` (the typed configuration), `flowers.features` (feature keys
and class names), `flowers.images` (image ops) and `flowers.weights` (the
bundled backbone weights) import nothing else of the project.
"""

import os

# TFT's transform layer and TFMA are Keras 2 (tf_keras) objects; TF 2.16 picks
# Keras 3 for `tf.keras` unless this is set before Keras is first touched.
# Every module of the project is under `flowers`, so this runs first.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
