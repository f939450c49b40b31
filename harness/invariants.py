"""Evaluates an experiment's expectations against what its phases produced.

Weight checks read the real model's variables, snapshotted before each phase and compared
after it, bit for bit. Every broken invariant is reported, not just the first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from harness import spec
from harness.results import Check, ExperimentResult, PhaseResult

MAX_LISTED = 5


@dataclass
class WeightChanges:
    """Which frozen variables changed (with max |delta|) and which trainable ones did not."""

    frozen_changed: list[tuple[str, float]] = field(default_factory=list)
    frozen_count: int = 0
    trainable_unchanged: list[str] = field(default_factory=list)
    trainable_count: int = 0

    @classmethod
    def between(cls, before: Mapping[str, np.ndarray], frozen: Sequence[Any], trainable: Sequence[Any]) -> "WeightChanges":
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


def evaluate(
    experiment: spec.Experiment,
    result: ExperimentResult,
    weights: Mapping[str, WeightChanges],
    others: Mapping[str, Mapping[str, Any]],
) -> list[Check]:
    """One `Check` per expectation (and per phase, for per-phase expectations).

    `others` maps other experiments' names to their final metrics (`val_accuracy`,
    `test_accuracy`) and `source` ("this session" or "the baseline"), for `beats`.
    """
    # The harness's own guarantee, always checked: a phase trained on cached inputs leaves the
    # full model with the accuracy the cached path measured (end to end on raw images).
    checks: list[Check] = [_cached_path(phase, result.split_sizes["validation"]) for phase in result.phases
                           if phase.cached_val_accuracy is not None]
    for expectation in experiment.expect:
        if isinstance(expectation, spec.FrozenWeightsUnchanged):
            checks += [_frozen(name, changes) for name, changes in weights.items()]
        elif isinstance(expectation, spec.TrainableWeightsChanged):
            checks += [_trainable(name, changes) for name, changes in weights.items()]
        elif isinstance(expectation, spec.TrainableParams):
            checks += [_params(result, phase, count) for phase, count in expectation.per_phase]
        elif isinstance(expectation, spec.MinAccuracy):
            checks.append(_accuracy(result, expectation))
        elif isinstance(expectation, spec.LossDecreases):
            checks += [_loss(phase.name, phase.history.get("loss", [])) for phase in result.phases]
        elif isinstance(expectation, spec.Beats):
            checks.append(_beats(result, expectation, others))
    return checks


def _cached_path(phase: PhaseResult, n_validation: int) -> Check:
    # Batched inference on raw images and on cached inputs agree up to float round-off, which
    # may flip a borderline prediction or two; anything more means the paths diverged.
    allowed = 2 / n_validation
    difference = abs(phase.val_accuracy - phase.cached_val_accuracy)
    return Check(
        name="cached_path_matches_end_to_end",
        phase=phase.name,
        passed=difference <= allowed + 1e-12,
        expected=f"end-to-end validation accuracy within {allowed:.4f} (2 images) of the {phase.path} figure",
        obtained=f"{phase.val_accuracy:.4f} end to end vs {phase.cached_val_accuracy:.4f} cached",
    )


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LISTED:
        return lines
    return [*lines[:MAX_LISTED], f"... and {len(lines) - MAX_LISTED} more"]


def _frozen(phase: str, changes: WeightChanges) -> Check:
    changed = sorted(changes.frozen_changed, key=lambda item: -item[1])
    return Check(
        name="frozen_weights_unchanged",
        phase=phase,
        passed=not changed,
        expected=f"all {changes.frozen_count} frozen variables bit-for-bit unchanged",
        obtained=f"{len(changed)} changed" if changed else "none changed",
        details=_capped([f"{path}: max |delta| = {delta:.3g}" for path, delta in changed]),
    )


def _trainable(phase: str, changes: WeightChanges) -> Check:
    unchanged = changes.trainable_unchanged
    return Check(
        name="trainable_weights_changed",
        phase=phase,
        passed=not unchanged,
        expected=f"all {changes.trainable_count} trainable variables changed",
        obtained=f"{len(unchanged)} unchanged" if unchanged else "all changed",
        details=_capped([f"{path}: unchanged" for path in unchanged]),
    )


def _params(result: ExperimentResult, phase: str, expected: int) -> Check:
    obtained = result.phase(phase).trainable_params
    return Check("trainable_params", phase, obtained == expected, f"{expected:,}", f"{obtained:,}")


def _accuracy(result: ExperimentResult, expectation: spec.MinAccuracy) -> Check:
    phase = result.phase(expectation.phase) if expectation.phase else result.final
    value = phase.val_accuracy if expectation.split == "validation" else phase.test_accuracy
    name = "min_val_accuracy" if expectation.split == "validation" else "min_test_accuracy"
    if value is None:
        return Check(name, phase.name, False, f">= {expectation.floor:.4f}", "no test split")
    return Check(name, phase.name, value >= expectation.floor, f">= {expectation.floor:.4f}", f"{value:.4f}")


def _loss(phase: str, losses: list[float]) -> Check:
    finite = all(math.isfinite(x) for x in losses)
    decreased = len(losses) < 2 or losses[-1] < losses[0]
    shown = ", ".join(f"{x:.4g}" for x in losses)
    return Check(
        name="loss_decreases",
        phase=phase,
        passed=bool(losses) and finite and decreased,
        expected="finite every epoch and lower at the end than at the start",
        obtained=f"[{shown}]",
    )


def _beats(result: ExperimentResult, expectation: spec.Beats, others: Mapping[str, Mapping[str, Any]]) -> Check:
    name = f"beats({expectation.other})"
    mine = getattr(result.final, expectation.metric)
    other = others.get(expectation.other)
    expected = f"{expectation.metric} >= {expectation.other}'s + {expectation.margin:.3f}"
    if other is None:
        return Check(name, None, False, expected,
                     f"{expectation.other!r} did not run in this session and has no baseline; select it too "
                     f"(e.g. -k '{result.name} or {expectation.other}')")
    theirs = other.get(expectation.metric)
    if mine is None or theirs is None:
        return Check(name, None, False, expected, f"no {expectation.metric} (needs a test split)")
    return Check(name, None, mine - theirs >= expectation.margin, expected,
                 f"{mine:.4f} vs {theirs:.4f} from {other['source']} (margin {mine - theirs:+.4f})")
