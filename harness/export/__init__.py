"""Exporting an experiment's trained model, and proving that what is exported matches it.

- `formats` (TensorFlow): the inference model (raw RGB pixels in, class probabilities out, only
  Keras's own layers), one writer and one reader per format of `spec.EXPORT_FORMATS`;
- `measure` (TensorFlow): writes the formats into a folder and measures each file read back
  against the trained model, on every image of the test split;
- `card` (no TensorFlow): `labels.txt` and `model_card.json`;
- `publish` (no TensorFlow): the `--export-dir` folder, where exports are staged during the
  session and published at its end, each folder whole or not at all.
"""

from __future__ import annotations


class ExportError(RuntimeError):
    """A format could not be written or read back: one plain failure of the experiment."""

    def __init__(self, format: str, reason: str) -> None:
        super().__init__(f"export to {format!r} failed: {reason}")
        self.format = format
