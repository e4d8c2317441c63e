"""Feature keys and class names: the only place they are written.

The raw keys follow the "Keras on TPU" flowers TFRecords, so shards made by
the labs and by `flowers data convert` are interchangeable.
"""

from __future__ import annotations

IMAGE_KEY = "image"  # JPEG bytes
CLASS_KEY = "class"  # int64 class id, index into CLASS_NAMES
LABEL_KEY = "label"  # class name as bytes
SIZE_KEY = "size"  # int64[2]: height, width of the stored JPEG
ONE_HOT_KEY = "one_hot_class"  # float[NUM_CLASSES]

CLASS_NAMES: tuple[str, ...] = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
NUM_CLASSES = len(CLASS_NAMES)

# Outputs of the Transform graph.
TRANSFORMED_IMAGE_KEY = "image_xf"
TRANSFORMED_CLASS_KEY = "class_xf"

# Inputs and outputs of the exported model's signatures.
SERVING_BYTES_INPUT = "image_bytes"
SERVING_EXAMPLES_INPUT = "examples"
PROBABILITIES_OUTPUT = "probabilities"
CLASS_ID_OUTPUT = "class_id"
CLASS_NAME_OUTPUT = "class_name"
BYTES_SIGNATURE = "serving_default"
# TFMA's key of the accuracy the Evaluator gates on.
ACCURACY_METRIC = "sparse_categorical_accuracy"
EXAMPLES_SIGNATURE = "serving_examples"
# The Transform step's output in, probabilities out: the TFLite model's contract.
IMAGE_SIGNATURE = "serving_image"
# Keras history (per-epoch metrics, phases, seconds, example counts) the
# Trainer writes next to its model, read back by results, report, benchmarks.
HISTORY_FILE = "history.json"


def class_id(name: str) -> int:
    """The fixed id of a class name; a clear error for an unknown one."""
    try:
        return CLASS_NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown class {name!r}: expected one of {', '.join(CLASS_NAMES)}") from None


def one_hot(index: int) -> list[float]:
    return [1.0 if i == index else 0.0 for i in range(NUM_CLASSES)]
