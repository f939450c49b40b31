"""What a run produced: per-phase metrics and invariant outcomes, as plain JSON-ready data.

TensorFlow-free: the plugin, the metrics JSON and the reports read these.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Check:
    """One invariant, evaluated: `obtained` against `expected`, with plain detail lines."""

    name: str
    phase: str | None
    passed: bool
    expected: str
    obtained: str
    details: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = f"{self.phase}: " if self.phase else ""
        return f"{where}{self.name}: obtained {self.obtained}, expected {self.expected}"


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
    path: str  # "features", "activations@<layer>" or "full"
    path_reason: str
    cache: str  # "hit", "miss", "none"
    cached_val_accuracy: float | None = None
    frozen_pass: str | None = None  # what computed the cached inputs ("litert", "keras"); None when read back


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

    @property
    def final(self) -> PhaseResult:
        return self.phases[-1]

    def phase(self, name: str) -> PhaseResult:
        return next(p for p in self.phases if p.name == name)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["val_accuracy"] = self.final.val_accuracy if self.phases else None
        data["test_accuracy"] = self.final.test_accuracy if self.phases else None
        data["passed"] = not self.failures
        return data
