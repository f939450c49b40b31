"""The names the spec language accepts, in one place, free of TensorFlow.

Other modules import them from here: the engine builds its optimizers from `OPTIMIZERS`, the
plugin offers `FROZEN_RUNTIMES`, `PRECISIONS` and `STRATEGIES` as its options' choices, data
loading walks `SPLITS`, the exporter writes `EXPORT_FORMATS`.
"""

from __future__ import annotations

# What an experiment's data is: its data set and its backbone must agree (`harness.modalities`).
IMAGE, TEXT = "image", "text"
MODALITIES = (IMAGE, TEXT)

# What `tfds_dataset` and `arrays` are sized to when the spec does not say: the image size for an
# image backbone, the tokens per text for a text backbone (short texts; keras-hub's own default, 512,
# is for long documents).
DEFAULT_IMAGE_SIZE = 224
DEFAULT_SEQUENCE_LENGTH = 128

FEATURE_EXTRACTION = "feature_extraction"
FINE_TUNE = "fine_tune"

# Optimizer name in a spec -> class name in `keras.optimizers`.
OPTIMIZERS: dict[str, str] = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}

# What runs the frozen layers' one forward pass (harness/inference.py). "auto": LiteRT without a
# GPU, Keras's Model.predict where TensorFlow sees one (LiteRT's XNNPACK kernels run on the CPU).
FROZEN_RUNTIMES = ("auto", "litert", "keras")

# What an experiment's layers compute in (`--precision`, harness/distribution.py): float32, or Keras's
# mixed policies; "mixed" is mixed_float16 on a GPU, mixed_bfloat16 on a CPU with AMX.
PRECISIONS = ("float32", "mixed", "mixed_float16", "mixed_bfloat16")

# Where an experiment trains (`--strategy`, harness/distribution.py): TensorFlow's default placement,
# or tf.distribute.MirroredStrategy over every GPU (else every logical CPU) the process sees.
STRATEGIES = ("default", "mirrored")

# What an experiment's model is exported as (`--export-dir`, harness/export/): Keras's native file,
# a SavedModel for serving, LiteRT float32 and full-integer int8. The expectations on exports
# (`export_matches`, `min_test_accuracy(runtime=...)`) name these.
EXPORT_FORMATS = ("keras", "saved_model", "litert", "litert_int8")

# What a callback may watch: the metrics every phase logs.
MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")

# The roles of a data set's splits, in the order they are loaded and reported.
SPLITS = ("train", "validation", "test")

# What `image_folder(bad_files=...)` does with files that do not decode as images (harness/data/folder.py).
BAD_FILES = ("error", "skip")
