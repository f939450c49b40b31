"""The invariant checks and their messages: one function per invariant, each returning a `Check`.

Weight checks read `WeightChanges`: the real model's variables, snapshotted before each phase
and compared after it, bit for bit. `harness.checks` decides which of these run, in what order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from harness import spec
from harness.results import Check, ExperimentResult, PhaseResult, WeightChanges

MAX_LISTED = 5


def cached_path(phase: PhaseResult, n_validation: int) -> Check:
    """The harness's own guarantee: a phase trained on cached inputs leaves the full model with the
    accuracy the cached path measured (end to end on the raw inputs)."""
    assert phase.cached_val_accuracy is not None
    # Batched inference on raw images and on cached inputs agree up to float round-off, which
    # may flip a borderline prediction or two; anything more means the paths diverged.
    allowed = 2 / n_validation
    difference = abs(phase.val_accuracy - phase.cached_val_accuracy)
    return Check(
        name="cached_path_matches_end_to_end",
        phase=phase.name,
        passed=difference <= allowed + 1e-12,
        expected=f"end-to-end validation accuracy within {allowed:.4f} (2 examples) of the {phase.training_path} figure",
        obtained=f"{phase.val_accuracy:.4f} end to end vs {phase.cached_val_accuracy:.4f} cached",
    )


# Merging adapters into their kernels changes float round-off only.
MERGED_ADAPTERS_TOLERANCE = 1e-4


def merged_adapters(difference: float) -> Check:
    """The harness's own guarantee for LoRA: the plain model it exports (adapters merged into their
    kernels) computes what the model with adapters did."""
    return Check(
        name="adapters_merge_into_plain_weights",
        phase=None,
        passed=difference <= MERGED_ADAPTERS_TOLERANCE,
        expected=f"validation probabilities within {MERGED_ADAPTERS_TOLERANCE:g} of the model with adapters",
        obtained=f"max |delta| {difference:.2e}",
    )


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LISTED:
        return lines
    return [*lines[:MAX_LISTED], f"... and {len(lines) - MAX_LISTED} more"]


def frozen_weights(phase: str, changes: WeightChanges) -> Check:
    changed = sorted(changes.frozen_changed, key=lambda item: -item[1])
    return Check(
        name="frozen_weights_unchanged",
        phase=phase,
        passed=not changed,
        expected=f"all {changes.frozen_count} frozen variables bit-for-bit unchanged",
        obtained=f"{len(changed)} changed" if changed else "none changed",
        details=_capped([f"{path}: max |delta| = {delta:.3g}" for path, delta in changed]),
    )


def trainable_weights(phase: str, changes: WeightChanges) -> Check:
    unchanged = changes.trainable_unchanged
    return Check(
        name="trainable_weights_changed",
        phase=phase,
        passed=not unchanged,
        expected=f"all {changes.trainable_count} trainable variables changed",
        obtained=f"{len(unchanged)} unchanged" if unchanged else "all changed",
        details=_capped([f"{path}: unchanged" for path in unchanged]),
    )


def trainable_params(result: ExperimentResult, phase: str, expected: int) -> Check:
    obtained = result.phase(phase).trainable_params
    return Check("trainable_params", phase, obtained == expected, f"{expected:,}", f"{obtained:,}")


def min_accuracy(result: ExperimentResult, expectation: spec.MinAccuracy) -> Check:
    phase = result.phase(expectation.phase) if expectation.phase else result.final
    value = phase.val_accuracy if expectation.split == "validation" else phase.test_accuracy
    name = "min_val_accuracy" if expectation.split == "validation" else "min_test_accuracy"
    expected = f">= {expectation.floor:.4f}"
    if expectation.slice is not None:
        return _slice_accuracy(result, expectation, name, expected)
    if expectation.runtime is not None:
        return _export_accuracy(result, expectation, f"{name}[{expectation.runtime}]", expected)
    if value is None:
        return Check(name, phase.name, False, expected, "no test split")
    return Check(name, phase.name, value >= expectation.floor, expected, f"{value:.4f}")


def _slice_accuracy(result: ExperimentResult, expectation: spec.MinAccuracy, name: str, expected: str) -> Check:
    """The accuracy of one slice of the split (`result.slice_metrics`), after the last phase."""
    feature, wanted = result.slice_feature or "slice", str(expectation.slice)
    title = f"{name}[{feature}={wanted}]"
    if result.slice_feature is None:
        return Check(title, None, False, expected, "the data set declares no slices")
    slices = result.slice_metrics.get(expectation.split)
    if slices is None:
        return Check(title, None, False, expected, f"no {expectation.split} split was sliced")
    if wanted not in slices:
        found = ", ".join(map(repr, slices)) or "none"
        return Check(
            title, None, False, expected, f"no {feature} {wanted!r} in the {expectation.split} split; found {found}"
        )
    figures = slices[wanted]
    low, high = figures["accuracy_ci"]
    return Check(
        title,
        None,
        figures["accuracy"] >= expectation.floor,
        expected,
        f"{figures['accuracy']:.4f} (n={figures['n']})",
        details=[f"{figures['correct']} of {figures['n']} correct, 95% interval [{low:.4f}, {high:.4f}]"],
    )


def _export_accuracy(result: ExperimentResult, expectation: spec.MinAccuracy, name: str, expected: str) -> Check:
    exported = result.export(str(expectation.runtime))
    if exported is None:
        return Check(name, None, False, expected, f"no {expectation.runtime} export was measured")
    return Check(
        name,
        None,
        exported.accuracy >= expectation.floor,
        expected,
        f"{exported.accuracy:.4f} ({exported.path} read back, {exported.n} {exported.split} images)",
        details=[f"the Keras model: {result.final.test_accuracy:.4f}"]
        if result.final.test_accuracy is not None
        else [],
    )


def export_matches(result: ExperimentResult, expectation: spec.ExportMatches) -> Check:
    """The export read back from its file gives the trained model's probabilities within the bound."""
    name = f"export_matches[{expectation.format}]"
    expected = f"max |probability difference| <= {expectation.max_abs_diff:.1e}"
    exported = result.export(expectation.format)
    if exported is None:
        return Check(name, None, False, expected, f"no {expectation.format} export was measured")
    return Check(
        name,
        None,
        exported.max_abs_diff <= expectation.max_abs_diff,
        expected,
        f"{exported.max_abs_diff:.1e} over {exported.n} {exported.split} images",
        details=[
            f"argmax agreement with the Keras model: {exported.argmax_agreement:.2%}",
            f"{exported.path}: {exported.size_bytes / 1e6:.1f} MB, accuracy {exported.accuracy:.4f}",
        ],
    )


def loss_decreases(phase: str, losses: list[float]) -> Check:
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


def beats(result: ExperimentResult, expectation: spec.Beats, other: Mapping[str, Any] | None) -> Check:
    """`other`: the other experiment's final `val_accuracy` and `test_accuracy`, and their `source`
    ("this session" or "the baseline"); None when it has neither."""
    name = f"beats({expectation.other})"
    mine = getattr(result.final, expectation.metric)
    expected = f"{expectation.metric} >= {expectation.other}'s + {expectation.margin:.3f}"
    if other is None:
        return Check(
            name,
            None,
            False,
            expected,
            f"{expectation.other!r} did not run in this session and has no baseline; select it too "
            f"(e.g. -k '{result.name} or {expectation.other}')",
        )
    theirs = other.get(expectation.metric)
    if mine is None or theirs is None:
        return Check(name, None, False, expected, f"no {expectation.metric} (needs a test split)")
    return Check(
        name,
        None,
        mine - theirs >= expectation.margin,
        expected,
        f"{mine:.4f} vs {theirs:.4f} from {other['source']} (margin {mine - theirs:+.4f})",
    )


def class_floor(result: ExperimentResult, expectation: spec.ClassFloor) -> Check:
    """One class's recall or precision on its split, after the last phase, against its floor."""
    classes = result.class_metrics.get(expectation.split, {})
    names = list(classes)
    wanted = expectation.class_name
    name = names[wanted] if isinstance(wanted, int) and wanted < len(names) else wanted
    title = f"min_{expectation.metric}[{name}]"
    expected = f">= {expectation.floor:.4f} on the {expectation.split} split"
    if name not in classes:
        return Check(
            title, None, False, expected, f"no class {wanted!r}; the classes are {', '.join(map(repr, names))}"
        )
    figures = classes[str(name)]
    value = float(figures[expectation.metric])
    counted = (
        f"{round(value * int(figures['support']))} of its {figures['support']} examples predicted as it"
        if expectation.metric == "recall"
        else f"{round(value * int(figures['predicted']))} of the {figures['predicted']} predicted as it are of it"
    )
    return Check(title, None, value >= expectation.floor, expected, f"{value:.4f} ({counted})")


def macro_f1(result: ExperimentResult, expectation: spec.MacroF1Floor) -> Check:
    """The unweighted mean F1 of the classes on the split, after the last phase, against its floor."""
    from harness.stats import macro_f1 as mean_f1

    classes = result.class_metrics.get(expectation.split, {})
    value = mean_f1(classes)
    worst = sorted(classes.items(), key=lambda item: float(item[1]["f1"]))[:2]
    lowest = ", ".join(f"{name} {float(figures['f1']):.4f}" for name, figures in worst)
    return Check(
        "min_macro_f1",
        None,
        value >= expectation.floor,
        f">= {expectation.floor:.4f} on the {expectation.split} split",
        f"{value:.4f}",
        details=[f"lowest F1: {lowest}"] if worst else [],
    )
