"""The names the spec language accepts, in one place, free of TensorFlow.

Other modules import them from here: the engine builds its optimizers from `OPTIMIZERS`, the
plugin offers `FROZEN_RUNTIMES` as `--frozen-runtime` choices, data loading walks `SPLITS`.
"""

from __future__ import annotations

FEATURE_EXTRACTION = "feature_extraction"
FINE_TUNE = "fine_tune"

# Optimizer name in a spec -> class name in `keras.optimizers`.
OPTIMIZERS: dict[str, str] = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}

# What runs the frozen layers' one forward pass (harness/inference.py).
FROZEN_RUNTIMES = ("litert", "keras")

# What a callback may watch: the metrics every phase logs.
MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")

# The roles of a data set's splits, in the order they are loaded and reported.
SPLITS = ("train", "validation", "test")
