"""flowers: components."""
import flowers.pipeline  # noqa: F401  (selects Keras 2 before TensorFlow loads)
