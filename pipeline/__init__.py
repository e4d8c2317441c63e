"""flowers: pipeline definition, configuration and runners."""
import os

# TFT's transform layer and TFMA are Keras 2 (tf_keras) objects; TF 2.16 picks
# Keras 3 for `tf.keras` unless this is set before Keras is first touched.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
