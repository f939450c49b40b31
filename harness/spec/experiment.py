"""An experiment: a data set, a backbone and head, phases and expectations, checked as a whole."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness import freezing
from harness.spec import modality
from harness.spec.backbones import Backbone, ClassifierHead, classifier_head
from harness.spec.datasets import Arrays, Dataset, ImageFolder, has_test_split, input_size, num_classes, slice_feature
from harness.spec.expectations import (
    EXPECTATIONS,
    Beats,
    Expectation,
    MinAccuracy,
    TrainableParams,
    field_name,
    reads_test_split,
)
from harness.spec.keras_datasets import KerasDataset
from harness.spec.phases import Phase
from harness.spec.registry import _caller_location, _register
from harness.spec.text_datasets import TextCsv, TextFolder
from harness.spec.tfds import TfdsDataset
from harness.spec.validators import SourceLocation, SpecError, _check, _seed, _sequence
from harness.spec.vocabulary import IMAGE


@dataclass(frozen=True, eq=False)
class Experiment:
    name: str
    dataset: Dataset
    backbone: Backbone
    head: ClassifierHead
    phases: tuple[Phase, ...]
    expect: tuple[Expectation, ...]
    seed: int = 0
    marks: tuple[str, ...] = ()
    location: SourceLocation | None = None
    # The keyword arguments of a `@parametrize` combination that built it (name -> value).
    params: tuple[tuple[str, Any], ...] = ()
    tolerance: float | str | None = None  # a drop, or "measured": from the baseline's recorded spread

    @property
    def modality(self) -> str:
        """What the experiment reads: "image" or "text" (its backbone's, which its data set matches)."""
        return self.backbone.modality

    @property
    def image_size(self) -> tuple[int, int]:
        """The size images are resized to (an image experiment's)."""
        size = self.input_size
        if not isinstance(size, tuple):
            raise ValueError(f"experiment {self.name!r} reads {self.modality}, not images")
        return size

    @property
    def input_size(self) -> tuple[int, int] | int:
        """What the data set is sized to: the image size, or a text's tokens (`sequence_length`)."""
        return input_size(self.dataset)

    @property
    def test_phases(self) -> frozenset[str]:
        """The phases after which the held-out test split is scored: the last one, and any that a
        test-accuracy expectation names (the frozen pass of the others leaves the test split out)."""
        named = {e.phase for e in self.expect if isinstance(e, MinAccuracy) and e.split == "test" and e.phase}
        return frozenset({self.phases[-1].name} | named)

    @property
    def beats(self) -> tuple[str, ...]:
        """The experiments this one must beat (they run first)."""
        return tuple(e.other for e in self.expect if isinstance(e, Beats))

    @property
    def needs_test_split(self) -> bool:
        """Whether an expectation reads test accuracy."""
        return any(reads_test_split(e) for e in self.expect)

    def with_params(self, suffix: str, params: Mapping[str, Any]) -> Experiment:
        return dataclasses.replace(self, name=f"{self.name}[{suffix}]", params=tuple(params.items()))


_NAME = re.compile(r"[A-Za-z_][\w.-]*")


def experiment(
    *,
    name: str,
    dataset: Dataset,
    backbone: Backbone,
    phases: Sequence[Phase],
    head: ClassifierHead | None = None,
    expect: Sequence[Expectation] = (),
    seed: int = 0,
    marks: Sequence[str] = (),
    tolerance: float | str | None = None,
) -> Experiment:
    """Declares one experiment; pytest collects it as a test item named `name`.

    Args:
        name: The test id (`-k` selects on it): letters, digits, `_`, `-`, `.`; unique in the session.
        dataset: `tfds_dataset(...)`, `keras_dataset(...)`, `image_folder(...)` or `arrays(...)`.
        backbone: `backbone(...)`, `efficientnet_lite0(...)` or `custom_backbone(...)`.
        phases: A list of `feature_extraction(...)` and/or `fine_tune(...)` phases, run in order.
        head: `classifier_head(...)`. Defaults to None: `classifier_head()`.
        expect: A list of what must hold: `frozen_weights_unchanged()`, `trainable_weights_changed()`,
            `trainable_params(...)`, `min_val_accuracy(...)`, `min_test_accuracy(...)`,
            `loss_decreases()`, `beats(...)`. Defaults to none.
        seed: Seeds Python, NumPy and TensorFlow for this experiment (`--seed` overrides), in
            [0, 2**32). Defaults to 0.
        marks: A list of pytest marker names added to the item (`-m` selects on them). Defaults to none.
        tolerance: The largest accepted drop in validation or test accuracy against the
            recorded baseline (absolute, e.g. 0.02), or "measured": what the baseline's spread
            over seeds allows (recorded with `--update-baselines --repeats N`; the README says
            how). Defaults to None: `--tolerance`.
    """
    location = _caller_location()
    _check(
        isinstance(name, str) and _NAME.fullmatch(name) is not None,
        "experiment.name",
        "must start with a letter or '_' and hold only letters, digits, '_', '-' or '.'",
        name,
    )
    _check(
        isinstance(dataset, (TfdsDataset, KerasDataset, ImageFolder, Arrays, TextFolder, TextCsv)),
        "experiment.dataset",
        "must be built with tfds_dataset(...), keras_dataset(...), image_folder(...), text_folder(...), "
        "text_csv(...) or arrays(...)",
        dataset,
    )
    _check(
        isinstance(backbone, Backbone),
        "experiment.backbone",
        "must be built with backbone(...), efficientnet_lite0(...), keras_hub_backbone(...) or custom_backbone(...)",
        backbone,
    )
    head = classifier_head() if head is None else head
    _check(isinstance(head, ClassifierHead), "experiment.head", "must be built with classifier_head(...)", head)
    phases = _sequence(phases, "experiment.phases", "[feature_extraction(epochs=5)]")
    _check(len(phases) > 0, "experiment.phases", "must hold at least one phase", list(phases))
    for i, p in enumerate(phases):
        _check(
            isinstance(p, Phase),
            f"experiment.phases[{i}]",
            "must be built with feature_extraction(...) or fine_tune(...)",
            p,
        )
    names = [p.name for p in phases]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    _check(
        not duplicated,
        "experiment.phases",
        "must have distinct phase names (give `name=` to repeated phases)",
        duplicated,
    )
    expect = _sequence(expect, "experiment.expect", "[min_val_accuracy(0.9)]")
    for i, e in enumerate(expect):
        _check(
            isinstance(e, EXPECTATIONS),
            f"experiment.expect[{i}]",
            "must be an expectation such as min_val_accuracy(0.9)",
            e,
        )
    dataset = modality.checked(dataset, backbone, head, phases, expect)
    _check_expectations(name, dataset, names, expect)
    seed = _seed(seed, "experiment.seed")
    marks = _sequence(marks, "experiment.marks", "['slow']")
    for m in marks:
        _check(isinstance(m, str) and m.isidentifier(), "experiment.marks", "must be marker names (identifiers)", m)
    if tolerance is not None:
        _check(
            tolerance == "measured"
            or (isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool) and 0 <= tolerance <= 1),
            "experiment.tolerance",
            'must be a number in [0, 1] or "measured"',
            tolerance,
        )
    _check_class_weights(dataset, phases)
    _check_rules_against_layers(backbone, phases)
    if backbone.modality == IMAGE:
        _check_image_size(backbone, phases, input_size(dataset))
    return _register(
        Experiment(
            name=name,
            dataset=dataset,
            backbone=backbone,
            head=head,
            phases=phases,
            expect=expect,
            seed=seed,
            marks=marks,
            location=location,
            tolerance=tolerance if tolerance in (None, "measured") else float(tolerance),
        )
    )


_TEST_SPLIT_FIX = {
    TfdsDataset: "Declare one with tfds_dataset(test_split=...), e.g. test_split='test'.",
    ImageFolder: "Declare one with image_folder(test_path=...), a folder outside the training folder.",
    TextFolder: "Declare one with text_folder(test_path=...), a folder outside the training folder.",
    TextCsv: "Declare one with text_csv(test_path=...), a second CSV file with the same columns.",
    Arrays: "Add a 'test' key to the arrays(...) mapping.",
}
_TEST_SPLIT_SHOWN = {
    TfdsDataset: lambda dataset: "test_split=None",
    ImageFolder: lambda dataset: "test_path=None",
    TextFolder: lambda dataset: "test_path=None",
    TextCsv: lambda dataset: "test_path=None",
    Arrays: lambda dataset: f"arrays with keys {sorted(dataset.data)}",
}

_SLICES_FIX = {
    TfdsDataset: "Name the feature to slice by with tfds_dataset(slices=...), e.g. slices='cell_type'.",
    ImageFolder: "image_folder(...) has no slices: use tfds_dataset(slices=...) or arrays(slices=...).",
    Arrays: "Give one value per example with arrays(slices={'validation': [...], 'test': [...]}).",
    KerasDataset: "keras_dataset(...) has no slices: use tfds_dataset(slices=...) or arrays(slices=...).",
    TextFolder: "text_folder(...) has no slices: use tfds_dataset(slices=...) or arrays(slices=...).",
    TextCsv: "text_csv(...) has no slices: use tfds_dataset(slices=...) or arrays(slices=...).",
}


def _check_expectations(name: str, dataset: Dataset, phases: list[str], expect: tuple[Any, ...]) -> None:
    for e in expect:
        if isinstance(e, TrainableParams):
            unknown = [p for p, _ in e.per_phase if p not in phases]
            _check(
                not unknown,
                "trainable_params",
                f"must name phases of this experiment ({', '.join(phases)})",
                unknown[0] if unknown else None,
            )
        if isinstance(e, MinAccuracy) and e.phase is not None:
            _check(
                e.phase in phases,
                f"min_{'val' if e.split == 'validation' else e.split}_accuracy.phase",
                f"must name a phase of this experiment ({', '.join(phases)})",
                e.phase,
            )
        if isinstance(e, MinAccuracy) and e.slice is not None and slice_feature(dataset) is None:
            raise SpecError(
                f"{field_name(e)}.slice",
                "needs a data set declared with slices (the feature whose values it names)",
                e.slice,
                hint=_SLICES_FIX[type(dataset)],
                shown=f"slice={e.slice!r} on a data set with slices=None",
            )
        if isinstance(e, Beats):
            _check(e.other != name, "beats.other", "must name another experiment, not this one", e.other)
        if reads_test_split(e) and has_test_split(dataset) is False:
            field = {"min_test_accuracy": "min_test_accuracy", "beats": "beats.metric"}.get(
                field_name(e), f"{field_name(e)}.split"
            )
            raise SpecError(
                field,
                "needs a data set with a test split",
                e,
                hint=_TEST_SPLIT_FIX[type(dataset)],
                shown=_TEST_SPLIT_SHOWN[type(dataset)](dataset),
            )


def _check_class_weights(dataset: Dataset, phases: Sequence[Phase]) -> None:
    classes = num_classes(dataset)
    if classes is None:
        return  # checked once the data is loaded (harness.data.checks)
    for phase in phases:
        unknown = [label for label in phase.class_weight_labels if label >= classes]
        _check(
            not unknown,
            f"{phase.name}.class_weight",
            f"must name classes of the data set (0 to {classes - 1})",
            unknown[0] if unknown else None,
        )


def _check_rules_against_layers(backbone: Backbone, phases: Sequence[Phase]) -> None:
    layers = backbone.layer_infos
    if layers is None:
        return
    for phase in phases:
        try:
            freezing.resolve(layers, phase.rule, train_batchnorm=phase.train_batchnorm)
        except freezing.RuleError as error:
            raise SpecError(
                f"{phase.name}.{error.field}",
                f"must match layers of {backbone.name!r} ({error.expected})",
                error.received,
            ) from None


def _check_image_size(backbone: Backbone, phases: Sequence[Phase], image_size: Any) -> None:
    for phase in phases:
        _check(
            set(phase.views) <= {0, 2, 4, 6} or image_size[0] == image_size[1],
            "dataset.image_size",
            f"must be square: dihedral() in phase {phase.name!r} turns images by quarter turns "
            "(dihedral(turns=False) keeps the flips only)",
            image_size,
        )
    if backbone.build is not None:
        return
    from harness.backbones import catalog

    minimum = catalog.describe(backbone.name).min_size
    _check(
        min(image_size) >= minimum, "dataset.image_size", f"must be at least {minimum} for {backbone.name}", image_size
    )
