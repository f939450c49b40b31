"""What a run produced: per-phase metrics and invariant outcomes, as plain JSON-ready data.

`ExperimentResult` (with its `PhaseResult`s, `Check`s and `ExportResult`s) is what the metrics
JSON and the reports read. `Run` is what `harness.engine.run` returns: the result, plus what only
the later stages read (per-phase `WeightChanges`, per-split `Predictions`, and for the exporter
the trained model and the loaded data).

TensorFlow-free: the plugin, the checks stage and the reports import this module.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.stats import accuracy_interval

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Check:
    """One invariant, evaluated: `obtained` against `expected`, with plain detail lines."""

    name: str
    phase: str | None
    passed: bool
    expected: str
    obtained: str
    details: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        """ "<phase>: <name>", or the name alone for a check of the whole experiment."""
        return f"{self.phase}: {self.name}" if self.phase else self.name

    def describe(self) -> str:
        return f"{self.title}: obtained {self.obtained}, expected {self.expected}"


@dataclass
class PhaseResult:
    name: str
    kind: str
    epochs: int
    epochs_run: int
    history: dict[str, list[float]]
    val_accuracy: float
    val_loss: float
    test_accuracy: float | None
    test_loss: float | None
    trainable_params: int
    non_trainable_params: int
    wall_time_s: float
    training_path: str  # "features", "activations@<layer>" or "full"
    training_path_reason: str
    cache: str  # "hit", "miss", "none"
    cached_val_accuracy: float | None = None
    frozen_pass: str | None = None  # what computed the cached inputs ("litert", "keras"); None when read back
    # Why the disk cache was not used or not written ("digest mismatch: ...", "wrong shape for 'train': ...",
    # "not stored: ..."); None when it worked as it should, or was not involved.
    cache_reason: str | None = None
    # With `checkpoint_best(...)`: the epoch (1-based) whose weights the phase ended with; else None.
    best_epoch: int | None = None
    # The phase's declared training arguments (`harness.spec.schedules.phase_config`): optimizer,
    # learning_rate, backbone_learning_rate, batch_size, schedule, label_smoothing, weight_decay,
    # checkpoint_best.
    config: dict[str, Any] = field(default_factory=dict)
    # The experiment whose phase showed, earlier in this session, that this phase's cache entry
    # gives the real model's validation accuracy: validation was then scored on the cached path
    # only (`harness.session_memo`). None: scored end to end here, or not on a cached path.
    cached_path_shown_by: str | None = None


@dataclass
class ExportResult:
    """One exported format of an experiment's final model, read back from its file and measured.

    The measurement runs the file on every image of `split` (the test split, else validation)
    and compares its class probabilities with the trained Keras model's.
    """

    format: str  # one of `spec.EXPORT_FORMATS`
    path: str  # relative to the experiment's export folder: "model.keras", "saved_model", ...
    size_bytes: int
    split: str
    n: int
    max_abs_diff: float  # the largest |probability difference| over every example and class
    argmax_agreement: float  # the fraction of examples whose predicted class is the Keras model's
    accuracy: float
    write_time_s: float = 0.0  # converting and writing the file


@dataclass
class ExperimentResult:
    name: str
    seed: int
    backbone: str
    weights: str | None
    dataset: str
    num_classes: int
    split_sizes: dict[str, int]
    phases: list[PhaseResult] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    wall_time_s: float = 0.0
    class_names: list[str] = field(default_factory=list)
    confusion_matrix: list[list[int]] | None = None
    confusion_split: str | None = None  # the split `confusion_matrix` counts: "test", else "validation"
    params: dict[str, Any] = field(default_factory=dict)  # a parametrised spec's arguments
    exports: list[ExportResult] = field(default_factory=list)
    # With LoRA: the largest |probability difference| on validation between the model with adapters and
    # the plain copy its adapters were merged into (what is exported); None without adapters.
    merged_adapters_max_abs_diff: float | None = None
    # Formats that could not be written, and why (none an expectation reads: those fail the experiment).
    exports_unavailable: dict[str, str] = field(default_factory=dict)
    # Per split ("validation", "test"), per class name: precision, recall, f1, support, predicted
    # (after the last phase; `harness.stats.per_class`).
    class_metrics: dict[str, dict[str, dict[str, float | int]]] = field(default_factory=dict)
    # The feature that slices the held-out accuracies (`tfds_dataset(slices=...)`; "slice" for arrays), else None,
    # and per split ("validation", "test"), per slice value: accuracy, n, correct, accuracy_ci (95% Wilson,
    # `[low, high]`), after the last phase (`harness.stats.per_slice`).
    slice_feature: str | None = None
    slice_metrics: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    export_dir: str | None = None  # where `--export-dir` published the exports, once published
    # With `--repeats N`: per accuracy, its spread over the N seeds (`harness.repeats.spread`).
    spread: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What `image_folder(bad_files="skip")` left out, per folder ("path", "test_path"): count and
    # `files` (path relative to the folder -> why it does not decode); {} for other data sets.
    skipped_files: dict[str, Any] = field(default_factory=dict)
    # Text: the share of each split's texts cut to `sequence_length` tokens; empty for images.
    truncated: dict[str, float] = field(default_factory=dict)
    # What it ran under (`harness.distribution.Placement`): the dtype policy (with the reason when
    # `--precision mixed` fell back to float32), "default" or "mirrored", and the devices it trained on.
    precision: str = "float32"
    strategy: str = "default"
    devices: list[str] = field(default_factory=list)

    @property
    def final(self) -> PhaseResult:
        return self.phases[-1]

    def phase(self, name: str) -> PhaseResult:
        return next(p for p in self.phases if p.name == name)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def export(self, format: str) -> ExportResult | None:
        return next((e for e in self.exports if e.format == format), None)

    def intervals(self, phase: PhaseResult) -> dict[str, list[float] | None]:
        """`val_accuracy_ci` and `test_accuracy_ci` of `phase`: 95% Wilson intervals, `[low, high]`."""
        return {
            "val_accuracy_ci": accuracy_interval(phase.val_accuracy, self.split_sizes["validation"]),
            "test_accuracy_ci": None
            if phase.test_accuracy is None
            else accuracy_interval(phase.test_accuracy, self.split_sizes["test"]),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExperimentResult:
        """The result `to_json` wrote, read back (`python -m harness merge` indexes the shards' reports
        from their metrics). The figures `to_json` derives (the intervals, `passed`) are left out."""
        kept = _fields_of(cls, data)
        kept["phases"] = [PhaseResult(**_fields_of(PhaseResult, p)) for p in data.get("phases", [])]
        kept["checks"] = [Check(**_fields_of(Check, c)) for c in data.get("checks", [])]
        kept["exports"] = [ExportResult(**_fields_of(ExportResult, e)) for e in data.get("exports", [])]
        return cls(**kept)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for phase, shown in zip(self.phases, data["phases"], strict=True):
            shown.update(self.intervals(phase))
        data["val_accuracy"] = self.final.val_accuracy if self.phases else None
        data["test_accuracy"] = self.final.test_accuracy if self.phases else None
        data.update(self.intervals(self.final) if self.phases else {"val_accuracy_ci": None, "test_accuracy_ci": None})
        data["passed"] = not self.failures
        return data


def _fields_of(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The items of `data` that are fields of the dataclass `cls`."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {key: value for key, value in data.items() if key in names}


def plain_params(params: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """A parametrised experiment's arguments as JSON values: numbers, strings, booleans and None
    as they are, anything else as its `repr`."""
    return {
        name: value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)
        for name, value in params
    }


@dataclass
class WeightChanges:
    """Which frozen variables changed (with max |delta|) and which trainable ones did not."""

    frozen_changed: list[tuple[str, float]] = field(default_factory=list)
    frozen_count: int = 0
    trainable_unchanged: list[str] = field(default_factory=list)
    trainable_count: int = 0

    @classmethod
    def between(
        cls, before: Mapping[str, np.ndarray], frozen: Sequence[Any], trainable: Sequence[Any]
    ) -> WeightChanges:
        """Compares the variables `frozen` and `trainable` now with their snapshot `before` (by path)."""
        import numpy as np

        changes = cls(frozen_count=len(frozen), trainable_count=len(trainable))
        for variable in frozen:
            old, new = before[variable.path], variable.numpy()
            if old.tobytes() != new.tobytes():
                delta = np.abs(new.astype(np.float64) - old.astype(np.float64))
                changes.frozen_changed.append((variable.path, float(np.nanmax(delta)) if delta.size else math.nan))
        for variable in trainable:
            if before[variable.path].tobytes() == variable.numpy().tobytes():
                changes.trainable_unchanged.append(variable.path)
        return changes


@dataclass
class Predictions:
    """One split's examples, in data-set order: the true class and the predicted class index of each."""

    labels: np.ndarray
    predicted: np.ndarray


@dataclass
class Run:
    """What `harness.engine.run` produced for one experiment; the checks stage reads all of it.

    Attributes:
        result: Phases, split sizes, confusion matrix, ...; its `checks` are left empty
            (`harness.checks.evaluate` fills them).
        weight_changes: Per phase name, what the phase did to the real model's variables.
        predictions: Per split ("validation", and "test" when scored), the real model's
            predictions at the last scoring, after the final phase.
        model: The trained model, for the exporter.
        data: The loaded splits, for the exporter (its reference predictions and int8 calibration).
    """

    result: ExperimentResult
    modality: str = "image"  # whose room (`harness.modalities`) exports it
    weight_changes: dict[str, WeightChanges] = field(default_factory=dict)
    predictions: dict[str, Predictions] = field(default_factory=dict)
    model: Any = None  # the trained `harness.model.Built` (float32, one device: `harness.model.float32_copy`)
    data: Any = None  # the `harness.data.loading.LoadedData` it trained and was scored on
