"""An experiment's data set, backbone, head and phases must read the same kind of data: images or text.

The backbone says which (`Backbone.modality`); a data set that reads either (`tfds_dataset`,
`arrays`) is sized for it here, and every option that suits only the other modality is refused
at collection with the fix: an image size or `augment(...)` on a text experiment, a
`sequence_length` or `pooling="cls"` on an image one, `train_batchnorm` on a text encoder (it
has no BatchNormalization: LayerNormalization keeps no moving statistics, and its weights train
with their block), LoRA on an image backbone (no attention projections to adapt), a phase
without adapters after one with them, int8 exports of text.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.spec.backbones import IMAGE_POOLINGS, TEXT_POOLINGS, Backbone, ClassifierHead
from harness.spec.datasets import Arrays, Dataset, sized_for
from harness.spec.expectations import Expectation, exported_formats
from harness.spec.phases import Phase
from harness.spec.tfds import TfdsDataset
from harness.spec.validators import SpecError, _check
from harness.spec.vocabulary import IMAGE, TEXT

# The data sets of each modality, as a message offers them.
_DATA_SETS = {
    IMAGE: "tfds_dataset(...), keras_dataset(...), image_folder(...) or arrays(..., image_size=...)",
    TEXT: "text_folder(...), text_csv(...), tfds_dataset(..., sequence_length=...) or arrays(..., sequence_length=...)",
}
# Export formats a text experiment cannot have: full-integer quantization calibrates on images.
_IMAGE_FORMATS = ("litert_int8",)


def checked(
    dataset: Dataset, backbone: Backbone, head: ClassifierHead, phases: Sequence[Phase], expect: Sequence[Expectation]
) -> Dataset:
    """`dataset` sized for `backbone`'s modality; raises `SpecError` on anything of the other modality."""
    modality = backbone.modality
    _check_sizes(dataset, modality)
    dataset = sized_for(dataset, modality)
    if dataset.modality != modality:
        raise SpecError(
            "experiment.dataset",
            f"must be a{'n' if modality == IMAGE else ''} {modality} data set for the {modality} backbone "
            f"{backbone.name!r}: {_DATA_SETS[modality]}",
            dataset,
            shown=f"a{'n' if dataset.modality == IMAGE else ''} {dataset.modality} data set, {type(dataset).__name__}",
        )
    other = IMAGE_POOLINGS if modality == TEXT else TEXT_POOLINGS
    _check(
        head.pooling not in other,
        "classifier_head.pooling",
        f"must suit a{'n' if modality == IMAGE else ''} {modality} backbone: "
        + (
            "'avg' (the mean over the real tokens) or 'cls' (the first token)" if modality == TEXT else "'avg' or 'max'"
        ),
        head.pooling,
    )
    for phase in phases:
        _check_phase(phase, backbone)
    _check_adapters_last(phases)
    formats = [f for f in exported_formats(tuple(expect)) if f in _IMAGE_FORMATS]
    if modality == TEXT and formats:
        raise SpecError(
            "expect",
            "must read exports a text model has: 'keras', 'saved_model' or 'litert' (int8 calibrates on images)",
            formats[0],
        )
    return dataset


def _check_adapters_last(phases: Sequence[Phase]) -> None:
    """Once a phase trains adapters, every later phase trains the same ones: a phase without them would
    train the weights the adapters left frozen, beside the adapters."""
    first = next((p for p in phases if p.lora_rank is not None), None)
    if first is None:
        return
    for phase in phases[phases.index(first) + 1 :]:
        _check(
            phase.lora_rank == first.lora_rank,
            f"{phase.name}.lora_rank",
            f"must be {first.lora_rank}, as in {first.name!r}: the phases after one that trains adapters train them too",
            phase.lora_rank,
        )


def _check_sizes(dataset: Dataset, modality: str) -> None:
    """An image size given to a data set of a text experiment, or a sequence length to an image one."""
    if not isinstance(dataset, (TfdsDataset, Arrays)):
        return
    kind = "tfds_dataset" if isinstance(dataset, TfdsDataset) else "arrays"
    if modality == TEXT and dataset.image_size is not None:
        raise SpecError(
            f"{kind}.image_size",
            "is for images; a text backbone reads texts tokenised to sequence_length",
            dataset.image_size,
            hint=f"Give {kind}(..., sequence_length=128) or leave both out (128 tokens).",
        )
    if modality == IMAGE and dataset.sequence_length is not None:
        raise SpecError(
            f"{kind}.sequence_length",
            "is for texts; an image backbone reads images resized to image_size",
            dataset.sequence_length,
            hint=f"Give {kind}(..., image_size=224), or a text backbone such as keras_hub_backbone(...).",
        )


def _check_phase(phase: Phase, backbone: Backbone) -> None:
    if backbone.modality == TEXT:
        _check(
            not phase.augmentation,
            f"{phase.name}.augmentation",
            "must be empty for a text backbone: augment(...) and dihedral() change images",
            list(phase.augmentation),
        )
        _check(
            not phase.train_batchnorm,
            f"{phase.name}.train_batchnorm",
            "must be False for a text encoder: it has no BatchNormalization (LayerNormalization keeps no "
            "moving statistics, and its weights train with the block that holds it)",
            phase.train_batchnorm,
        )
        return
    _check(
        phase.lora_rank is None,
        f"{phase.name}.lora_rank",
        f"needs a backbone with attention layers to adapt (a keras-hub text encoder's query and value "
        f"projections); {backbone.name!r} is an image backbone. Fine-tune its layers without lora_rank",
        phase.lora_rank,
    )
