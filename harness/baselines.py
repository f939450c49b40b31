"""The accuracy regression gate: recorded baselines, compared on every run, updated on request.

The baseline file is JSON with one entry per experiment (parametrised ids included), keys in a
stable order so that diffs read well. It is rewritten only with `--update-baselines`, only at
the end of a session that was not interrupted, and atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import environment, repeats, stats
from harness import gate as paired
from harness.paths import atomic_write_text
from harness.results import Check, ExperimentResult

METRICS = ("val_accuracy", "test_accuracy")


class BaselineFileError(ValueError):
    """The baseline file exists but cannot be read."""


@dataclass(frozen=True)
class Gate:
    """How one experiment is gated: the accepted drop, the baseline file, and the command that updates it."""

    tolerance: float  # the largest accepted drop in accuracy (absolute, e.g. 0.02)
    update_command: str
    file: str  # the baseline file, as messages name it (relative to the invocation folder, or absolute)
    environment: Mapping[str, str] | None = None  # this run's `harness.environment.fingerprint()`
    min_effect: float = paired.DEFAULT_MIN_EFFECT  # a significant drop fails when it is larger
    family: paired.Family | None = None  # the session's paired comparisons, Holm-corrected together
    # Each accuracy's tolerance from the baseline's recorded spread: "required" (`experiment(tolerance=
    # "measured")`: a baseline without one fails), "if recorded" (no tolerance set), None (never).
    measured: str | None = None


def entry_for(
    result: ExperimentResult,
    spec_file: str,
    environment: Mapping[str, str] | None = None,
    observed: Mapping[str, paired.Observed] | None = None,
) -> dict[str, Any]:
    """What is recorded for one experiment: its final metrics, with the environment it was
    measured in and every gated split's predictions (`harness.gate.record`) when given."""
    final = result.final
    entry: dict[str, Any] = {
        "spec": spec_file,
        "seed": result.seed,
        "val_accuracy": round(final.val_accuracy, 4),
        "val_loss": round(final.val_loss, 4),
        "trainable_params": {p.name: p.trainable_params for p in result.phases},
        "wall_time_s": round(result.wall_time_s, 1),  # what `--shard K/N` balances by
    }
    if final.test_accuracy is not None:
        entry["test_accuracy"] = round(final.test_accuracy, 4)
        entry["test_loss"] = None if final.test_loss is None else round(final.test_loss, 4)
    if environment is not None:
        entry["environment"] = dict(environment)
    if result.spread:
        entry["spread"] = repeats.recorded(result.spread)
    if observed:
        entry["predictions"] = {
            split: paired.record(split_seen.predicted, result.num_classes, split_seen.examples)
            for split, split_seen in sorted(observed.items())
        }
    return entry


DURATION_SLACK_S = 30.0  # seconds that change no shard's balance


def kept_duration(entry: dict[str, Any], recorded: Mapping[str, Any] | None) -> dict[str, Any]:
    """`entry` with the recorded `wall_time_s` kept while the new one is within a factor of 2 of it,
    or within `DURATION_SLACK_S` (a run of seconds doubles on a loaded machine): `--shard` balances
    by durations, which vary from run to run, and recording an unchanged experiment again should
    change no byte of the file. `recorded` is a valid entry (`invalid_entries`)."""
    old = (recorded or {}).get("wall_time_s")
    new = entry["wall_time_s"]
    if old and (0.5 <= new / old <= 2 or abs(new - old) <= DURATION_SLACK_S):
        return {**entry, "wall_time_s": old}
    return entry


def load(path: Path) -> dict[str, dict[str, Any]]:
    """The recorded entries by experiment name; {} when the file does not exist."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        experiments = data["experiments"]
        if not isinstance(experiments, dict):
            raise TypeError("`experiments` is not an object")
    except (ValueError, KeyError, TypeError) as error:
        raise BaselineFileError(
            f"The baseline file {path} cannot be read ({error}). Fix it by hand or delete it and record new "
            f"baselines with --update-baselines."
        ) from None
    return experiments


def invalid_entries(entries: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with each entry that cannot be used, by experiment name (valid ones are left out).

    An entry is checked like a spec: every recorded field has its type and range (an accuracy is
    a finite number in [0, 1], a parameter count a non-negative integer, ...). Fields the harness
    does not know are ignored, so files written by a newer harness still gate.
    """
    problems = {}
    for name, entry in entries.items():
        problem = _entry_problem(entry)
        if problem is not None:
            problems[name] = problem
    return problems


def _entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return f"the entry must be an object of recorded fields. Received: {_shown(entry)}"
    for field, (valid, expected) in _FIELDS.items():
        if field in entry and not valid(entry[field]):
            return f"`{field}` must be {expected}. Received: {_shown(entry[field])}"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_FIELDS: dict[str, tuple[Any, str]] = {
    "spec": (lambda v: isinstance(v, str), "the spec file's path (a string)"),
    "seed": (_is_count, "a non-negative integer"),
    "val_accuracy": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "test_accuracy": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "val_loss": (lambda v: v is None or (_is_number(v) and v >= 0), "a non-negative number or null"),
    "test_loss": (lambda v: v is None or (_is_number(v) and v >= 0), "a non-negative number or null"),
    "wall_time_s": (lambda v: _is_number(v) and v >= 0, "a non-negative number of seconds"),
    "environment": (lambda v: isinstance(v, dict), "an object (the environment it was recorded in)"),
    "predictions": (
        lambda v: paired.record_problem(v) is None,
        "per-split predictions as --update-baselines records them",
    ),
    "trainable_params": (
        lambda v: isinstance(v, dict) and all(_is_count(c) for c in v.values()),
        "an object of phase name -> non-negative integer",
    ),
}


def _shown(value: Any) -> str:
    """`value` as the message shows it: its JSON text and, where that hides it, its JSON type."""
    text = json.dumps(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    kind = {str: "a string", bool: "a boolean", dict: "an object", list: "an array", type(None): "null"}.get(
        type(value)
    )
    return f"{text} ({kind})" if kind and kind != "null" else text


def file_text(entries: Mapping[str, Any]) -> str:
    """The baseline file's text for `entries`: sorted by experiment name and key, so diffs read well."""
    return json.dumps({"experiments": dict(sorted(entries.items()))}, indent=2, sort_keys=True) + "\n"


def save(path: Path, entries: Mapping[str, Any]) -> None:
    """Writes `entries` atomically (see `file_text`)."""
    atomic_write_text(path, file_text(entries))


def compare(
    result: ExperimentResult,
    baseline: Mapping[str, Any],
    gate: Gate,
    observed: Mapping[str, paired.Observed] | None = None,
) -> tuple[list[Check], list[paired.Comparison]]:
    """Gate checks of `result` against its baseline (accuracies and parameter counts), and the
    accuracy comparisons they come from (`harness.gate`): paired where the baseline recorded
    predictions of the examples `observed` in this run, which `gate.family` then corrects."""
    checks: list[Check] = []
    remedy = f"To accept the new values into {gate.file}, run: {gate.update_command}"
    moved = environment.differences(baseline.get("environment"), dict(gate.environment or {}))
    if moved:  # round-off differs across machines: say so wherever a drop is shown
        remedy = f"The baseline was recorded in another environment ({'; '.join(moved)}). {remedy}"
    gated = [m for m in METRICS if baseline.get(m) is not None and getattr(result.final, m) is not None]
    spread = baseline.get("spread", {})
    recorded_spread = all(metric in spread for metric in gated)
    if gate.measured == "required" and not recorded_spread:
        checks.append(
            Check(
                "baseline_tolerance",
                None,
                False,
                'a baseline with a measured spread (experiment(tolerance="measured"))',
                "a baseline without one",
                details=[f"Record one over 5 seeds with: {gate.update_command} --repeats 5"],
            )
        )
        return checks, []
    measured = gate.measured is not None and recorded_spread
    comparisons = [
        paired.compare(
            result.name,
            metric,
            dict(baseline),
            (observed or {}).get(paired.SPLIT_OF[metric]),
            getattr(result.final, metric),
            result.split_sizes[paired.SPLIT_OF[metric]],
            tolerance=repeats.measured_tolerance(baseline[metric], spread[metric]) if measured else gate.tolerance,
            min_effect=gate.min_effect,
        )
        for metric in gated
    ]
    if gate.family is not None:
        gate.family.add(comparisons)
    checks += [_accuracy_check(comparison, remedy) for comparison in comparisons]
    recorded_params = baseline.get("trainable_params", {})
    obtained_params = {p.name: p.trainable_params for p in result.phases}
    if recorded_params != obtained_params:
        changed = [
            f"{name}: baseline {recorded_params.get(name, '-')}, obtained {obtained_params.get(name, '-')}"
            for name in sorted(set(recorded_params) | set(obtained_params))
            if recorded_params.get(name) != obtained_params.get(name)
        ]
        checks.append(
            Check(
                "baseline_trainable_params",
                None,
                False,
                "the recorded trainable-parameter counts",
                "different counts",
                details=[*changed, remedy],
            )
        )
    return checks, comparisons


def _accuracy_check(comparison: paired.Comparison, remedy: str) -> Check:
    """The check of one accuracy comparison, its message showing the figures behind the verdict."""
    c = comparison
    baseline, obtained = (f"{v:.4f} {_interval(v, c.n)}" for v in (c.baseline, c.obtained))
    if c.paired:
        expected = (
            f"not significantly below the baseline {baseline} (McNemar, Holm's alpha {c.alpha:.4g}) by more than "
            f"{c.min_effect:.4f}, nor more than {c.tolerance:.4f} below it"
        )
        evidence = f"b={c.b} right before and wrong now, c={c.c} the reverse, p={c.p_value:.4g}"
    else:
        expected = f"at most {c.tolerance:.4f} below the baseline {baseline}"
        evidence = f"not paired: {c.note}"
    change = f"drop {c.drop:+.4f}" if c.drop > 0 else f"improved by {-c.drop:.4f}"
    return Check(
        name=f"baseline_{c.metric}",
        phase=None,
        passed=c.verdict == "pass",
        expected=expected,
        obtained=f"{obtained} n={c.n} ({change}; {evidence})",
        details=[] if c.verdict == "pass" else [f"verdict: fail, {c.reason}", remedy],
    )


def _interval(accuracy: float, n: int) -> str:
    low, high = stats.accuracy_interval(accuracy, n)
    return f"[{low:.4f}, {high:.4f}]"


def updated(
    recorded: Mapping[str, Any],
    new_entries: Mapping[str, dict[str, Any]],
    collected: Mapping[str, Iterable[str]],
    existing_specs: Iterable[str],
) -> tuple[dict[str, Any], list[str]]:
    """The baseline entries after an update, and the names of entries removed as stale.

    Args:
        recorded: The entries in the file now (invalid ones, see `invalid_entries`, are kept as they are).
        new_entries: Entries of the experiments that ran (and passed their invariants).
        collected: For each spec file collected this session, every experiment name it declares.
        existing_specs: Spec files that exist (entries of deleted spec files are stale).
    """
    existing = set(existing_specs)
    merged = {**recorded, **new_entries}
    stale = sorted(
        name
        for name, entry in merged.items()
        if _entry_problem(entry) is None  # an invalid entry stays as the user wrote it, for the user to fix
        and ((spec := entry.get("spec")) not in existing or (spec in collected and name not in set(collected[spec])))
    )
    for name in stale:
        merged.pop(name)
    return merged, stale
