"""The checks stage: everything asserted about a run, evaluated in one place and in one order.

1. the cached-path agreement check, always on, for every phase trained on cached inputs, and
   the merged adapters' agreement for a model trained with LoRA;
2. every declared expectation, in the order the spec declares them, through `CHECKS`: a table
   from expectation type to its check (a new expectation is one dataclass in the spec language
   and one entry here). `beats` compares against the other experiment's result of this
   session, else its recorded baseline;
3. the regression gate against the experiment's baseline (`harness.baselines.compare`), unless
   baselines are being recorded; without a baseline it warns that the gate is off.

Only `evaluate` writes `ExperimentResult.checks`. No TensorFlow: it reads `harness.results.Run`.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from harness import baselines, invariants, repeats, spec
from harness.gate import Observed
from harness.results import Check, ExperimentResult, Run

Entry = Mapping[str, Any]  # a baseline entry, or another experiment's final metrics


@dataclass(frozen=True)
class Inputs:
    """What a check reads besides its expectation: the run, and the other experiments' results."""

    run: Run
    results: Mapping[str, ExperimentResult]  # this session's, by experiment name
    baselines: Mapping[str, Entry]  # the recorded entries, by experiment name

    def reference(self, name: str) -> Entry | None:
        """Experiment `name`'s final accuracies and their `source`: this session's result, else its baseline."""
        if name in self.results:
            final = self.results[name].final
            return {"val_accuracy": final.val_accuracy, "test_accuracy": final.test_accuracy, "source": "this session"}
        if name in self.baselines:
            return {**self.baselines[name], "source": "the baseline"}
        return None


def _frozen_weights(expectation: spec.FrozenWeightsUnchanged, inputs: Inputs) -> list[Check]:
    return [invariants.frozen_weights(phase, changes) for phase, changes in inputs.run.weight_changes.items()]


def _trainable_weights(expectation: spec.TrainableWeightsChanged, inputs: Inputs) -> list[Check]:
    return [invariants.trainable_weights(phase, changes) for phase, changes in inputs.run.weight_changes.items()]


def _trainable_params(expectation: spec.TrainableParams, inputs: Inputs) -> list[Check]:
    return [invariants.trainable_params(inputs.run.result, phase, count) for phase, count in expectation.per_phase]


def _min_accuracy(expectation: spec.MinAccuracy, inputs: Inputs) -> list[Check]:
    return [invariants.min_accuracy(inputs.run.result, expectation)]


def _loss_decreases(expectation: spec.LossDecreases, inputs: Inputs) -> list[Check]:
    return [invariants.loss_decreases(phase.name, phase.history.get("loss", [])) for phase in inputs.run.result.phases]


def _beats(expectation: spec.Beats, inputs: Inputs) -> list[Check]:
    reference = inputs.reference(expectation.other)
    _warn_if_trivial(expectation, inputs, reference)
    return [invariants.beats(inputs.run.result, expectation, reference)]


def _warn_if_trivial(expectation: spec.Beats, inputs: Inputs, reference: Entry | None) -> None:
    """Warns when `beats` compares with a degenerate reference: one that predicts a single class,
    or scores no better than always answering the majority class."""
    split = "test" if expectation.metric == "test_accuracy" else "validation"
    classes = inputs.run.result.class_metrics.get(split)
    theirs = None if reference is None else reference.get(expectation.metric)
    if not classes or theirs is None:
        return
    n = sum(int(c["support"]) for c in classes.values())
    majority = max(int(c["support"]) for c in classes.values()) / n
    other = inputs.results.get(expectation.other)
    one_class = (
        other is not None and sum(int(c["predicted"]) > 0 for c in other.class_metrics.get(split, {}).values()) == 1
    )
    if one_class or theirs <= majority + 0.5 / n:
        why = (
            "predicts a single class" if one_class else f"scores {theirs:.4f}, the majority-class rate ({majority:.4f})"
        )
        warnings.warn(
            pytest.PytestWarning(
                f"{inputs.run.result.name}: beats({expectation.other!r}) is a trivial comparison: "
                f"{expectation.other} {why} on the {split} split, as always answering one class does"
            ),
            stacklevel=2,
        )


def _export_matches(expectation: spec.ExportMatches, inputs: Inputs) -> list[Check]:
    return [invariants.export_matches(inputs.run.result, expectation)]


def _class_floor(expectation: spec.ClassFloor, inputs: Inputs) -> list[Check]:
    return [invariants.class_floor(inputs.run.result, expectation)]


def _macro_f1(expectation: spec.MacroF1Floor, inputs: Inputs) -> list[Check]:
    return [invariants.macro_f1(inputs.run.result, expectation)]


# One entry per expectation type of the spec language (`spec.Expectation`).
CHECKS: dict[type, Callable[[Any, Inputs], list[Check]]] = {
    spec.FrozenWeightsUnchanged: _frozen_weights,
    spec.TrainableWeightsChanged: _trainable_weights,
    spec.TrainableParams: _trainable_params,
    spec.MinAccuracy: _min_accuracy,
    spec.LossDecreases: _loss_decreases,
    spec.Beats: _beats,
    spec.ExportMatches: _export_matches,
    spec.ClassFloor: _class_floor,
    spec.MacroF1Floor: _macro_f1,
}


def evaluate(
    experiment: spec.Experiment,
    run: Run,
    *,
    results: Mapping[str, ExperimentResult],
    recorded: Mapping[str, Entry],
    gate: baselines.Gate | None,
    observed: Mapping[str, Observed] | None = None,
) -> list[Check]:
    """Evaluates every check of `run` and stores them in `run.result.checks`; returns them.

    Args:
        experiment: The experiment that ran.
        run: What `harness.engine.run` returned for it.
        results: The results of the experiments that ran before it in this session, by name.
        recorded: The baseline file's entries, by experiment name.
        gate: The regression gate's tolerance, file and remedy; None turns the gate off
            (`--update-baselines`).
        observed: Per split, this run's predictions and the identity of its examples, which a
            baseline with predictions is compared with example by example.
    """
    result = run.result
    inputs = Inputs(run=run, results=results, baselines=recorded)
    checks = [
        invariants.cached_path(phase, result.split_sizes["validation"])
        for phase in result.phases
        if phase.cached_val_accuracy is not None
    ]
    if result.merged_adapters_max_abs_diff is not None:
        checks.append(invariants.merged_adapters(result.merged_adapters_max_abs_diff))
    for expectation in experiment.expect:
        check = CHECKS.get(type(expectation))
        if check is None:
            raise TypeError(
                f"No check for the expectation {type(expectation).__name__}: add one to "
                f"harness.checks.CHECKS. Received: {expectation!r}"
            )
        checks += check(expectation, inputs)
    if gate is not None:
        checks += _baseline_gate(result, recorded.get(experiment.name), gate, observed)
    result.checks = checks
    return checks


def merge_repeats(first: ExperimentResult, others: Sequence[ExperimentResult]) -> None:
    """`--repeats`: gives `first` the spread of every seed's run and the checks the others failed,
    each named `<check>[seed=K]` (`others` were evaluated without the gate)."""
    first.spread = repeats.spread([first, *others])
    first.checks += [
        dataclasses.replace(check, name=f"{check.name}[seed={other.seed}]")
        for other in others
        for check in other.failures
    ]


def _baseline_gate(
    result: ExperimentResult, baseline: Entry | None, gate: baselines.Gate, observed: Mapping[str, Observed] | None
) -> list[Check]:
    if baseline is None:
        _warn(f"{result.name}: no baseline recorded in {gate.file}; the regression gate is off for it. ", gate)
        return []
    found, comparisons = baselines.compare(result, baseline, gate, observed)
    unpaired = sorted({c.note for c in comparisons if c.note})
    if unpaired:
        _warn(f"{result.name}: the gate compares by the tolerance only: {'; '.join(unpaired)}. ", gate, paired=True)
    return found


def _warn(message: str, gate: baselines.Gate, *, paired: bool = False) -> None:
    what = "a baseline with predictions, so that the gate is paired," if paired else "one"
    warnings.warn(pytest.PytestWarning(f"{message}Record {what} with: {gate.update_command}"), stacklevel=3)
