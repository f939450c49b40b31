"""What differs by modality, one room per modality behind one interface: `Room`.

An image experiment and a text experiment differ only in how their data becomes the backbone's
inputs and how the backbone is obtained: decoding and resizing images, or tokenising texts with
the backbone's own tokenizer; a Keras application, or a keras-hub encoder; a feature map pooled
over its pixels, or token outputs pooled over the real tokens; what an export takes (pixels, or
raw strings). Everything else (freezing, the cached routes, training, the checks, the gate, the
reports) reads the room's products only: a `keras.Model` backbone, a `LoadedData`, the model's
inputs, the head's pooling layer. A new modality (audio, say) is one new room.

Importing this package imports no TensorFlow; `room` imports the room it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.spec.vocabulary import IMAGE, TEXT

if TYPE_CHECKING:
    import keras
    import numpy as np

    from harness import spec
    from harness.data.loaded import LoadedData
    from harness.model import Built, Parts


class Room(Protocol):
    """One modality's part of an experiment's run."""

    def load_backbone(self, experiment: spec.Experiment) -> keras.Model:
        """The declared backbone, weights loaded as declared; its inputs are `model_inputs`'s."""

    def load_data(self, experiment: spec.Experiment) -> LoadedData:
        """The experiment's data set, read, checked and made into the backbone's inputs."""

    def data_key(self, experiment: spec.Experiment) -> Hashable:
        """What the loaded data depends on besides the data set (a text's tokenizer); None when nothing."""

    def parts(self, experiment: spec.Experiment, backbone: keras.Model) -> Parts:
        """The full model's inputs for `backbone`, the head's weightless pooling into one vector (named
        "pool"; None where the backbone outputs one vector) and what the head reads."""

    def frozen_runtime(self, requested: str) -> str:
        """What runs the frozen pass for `--frozen-runtime requested` ("auto", "litert", "keras")."""

    @property
    def export_formats(self) -> tuple[str, ...]:
        """The export formats of this modality (`spec.EXPORT_FORMATS`, or some of them)."""

    def export_model(self, built: Built, data: LoadedData) -> keras.Model:
        """The trained model as users deploy it: the modality's raw inputs in, class probabilities out."""

    def write(self, format: str, model: keras.Model, folder: Path, data: LoadedData, seed: int) -> Path:
        """Writes the export `model` as `format` into `folder` (`ExportError` when it cannot); returns its path."""

    def read(self, format: str, path: Path) -> Callable[[Any], np.ndarray]:
        """An export read back from `path`: a function from one of `export_batches`' batches to probabilities."""

    def export_batches(self, data: LoadedData, split: str, format: str) -> Iterable[Any]:
        """The batches of `split` that the export `format` reads (its raw inputs), in order."""

    def reference(self, built: Built, data: LoadedData, split: str) -> np.ndarray:
        """The trained model's probabilities on `split`, in order: what every export is compared with."""


def room(modality: str) -> Room:
    """The room of `modality` ("image" or "text")."""
    if modality == IMAGE:
        from harness.modalities.image import ImageRoom

        return ImageRoom()
    if modality == TEXT:
        from harness.modalities.text import TextRoom

        return TextRoom()
    raise ValueError(f"no room for the modality {modality!r}; the modalities are {IMAGE!r} and {TEXT!r}")
