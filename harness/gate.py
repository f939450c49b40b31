"""The paired regression gate: per-example baselines, McNemar's exact test and Holm's correction.

A baseline recorded with `--update-baselines` keeps, for each gated split, the class the model
predicted for every example (`record`) and an identity of those examples in their order (a
digest of every example's content digest and label). A later run on the same examples is
compared example by example: `b` examples the baseline got right and the run gets wrong, `c` the
reverse. McNemar's exact one-sided test asks whether the run is worse (`stats.mcnemar_worse`);
Holm's step-down correction across every paired comparison of the session (`Family`) keeps the
session's false-alarm rate at `alpha`.

The verdict of one comparison (`Comparison.verdict`):
- "fail" when the drop in accuracy exceeds the practical `tolerance`, whatever the test says;
- "fail" when the run is significantly worse (Holm rejects) and the drop exceeds `min_effect`;
- "pass" otherwise.

A baseline without predictions, recorded on other examples, or whose recorded accuracy is not
what its predictions score (edited by hand) is compared by the tolerance alone (`paired` False,
`note` says why). Pure Python: no TensorFlow, no NumPy.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import stats

DEFAULT_ALPHA = 0.05
# The fixed tolerance where neither the spec, --tolerance nor a recorded spread sets one: the
# shipped specs' accuracy moved by up to 0.025 between seeds 0 and 1, and by up to 0.033 before the
# frozen pass ran on LiteRT (benchmarks/README.md, "Seeds and the gate's tolerance").
DEFAULT_TOLERANCE = 0.04
# The smallest drop a significant result must also show to fail (see the README's gate tables).
DEFAULT_MIN_EFFECT = 0.01
SPLIT_OF = {"val_accuracy": "validation", "test_accuracy": "test"}
ENCODING = "zlib-base64-u8"  # predicted class indices as bytes (u16 little-endian past 256 classes)
_EPSILON = 1e-12


def examples_id(digests: bytes, labels: Sequence[int]) -> str:
    """The identity of a split's examples in their order: a digest of each example's content
    digest (`digests`, concatenated) and of its label."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(digests)
    digest.update(",".join(str(int(label)) for label in labels).encode())
    return f"blake2b:{digest.hexdigest()}"


def encode(predicted: Sequence[int], num_classes: int) -> dict[str, Any]:
    """The compact text of predicted class indices: `{"encoding", "n", "classes"}`."""
    wide = num_classes > 256
    raw = b"".join(int(p).to_bytes(2 if wide else 1, "little") for p in predicted)
    return {
        "encoding": ENCODING.replace("u8", "u16") if wide else ENCODING,
        "n": len(predicted),
        "classes": base64.b64encode(zlib.compress(raw, 9)).decode("ascii"),
    }


def decode(encoded: dict[str, Any]) -> list[int]:
    """The predicted class indices of `encode`'s output.

    Raises:
        ValueError: the encoding is unknown, the text does not decode, or its length is not `n`.
    """
    width = {ENCODING: 1, ENCODING.replace("u8", "u16"): 2}.get(encoded.get("encoding"))  # type: ignore[arg-type]
    if width is None:
        raise ValueError(f"unknown encoding {encoded.get('encoding')!r}; expected {ENCODING!r}")
    try:
        raw = zlib.decompress(base64.b64decode(str(encoded.get("classes", "")), validate=True))
    except (ValueError, zlib.error) as error:
        raise ValueError(f"`classes` does not decode ({error})") from None
    values = [int.from_bytes(raw[i : i + width], "little") for i in range(0, len(raw), width)]
    if len(raw) % width or len(values) != encoded.get("n"):
        raise ValueError(f"`classes` holds {len(values)} predictions where `n` is {encoded.get('n')!r}")
    return values


def record(predicted: Sequence[int], num_classes: int, examples: str) -> dict[str, Any]:
    """What a baseline keeps of one split: the examples' identity and every predicted class."""
    return {"examples": examples, **encode(predicted, num_classes)}


def record_problem(recorded: Any) -> str | None:
    """What is wrong with a baseline's `predictions` field, or None (see `record`)."""
    if not isinstance(recorded, dict):
        return "an object of split name -> recorded predictions"
    for split, entry in recorded.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("examples"), str):
            return f"{split!r}: an object with `examples`, `encoding`, `n` and `classes`"
        try:
            decode(entry)
        except ValueError as error:
            return f"{split!r}: {error}"
    return None


@dataclass(frozen=True)
class Observed:
    """One split of this run: every example's true and predicted class, and the examples' identity."""

    labels: list[int]
    predicted: list[int]
    examples: str  # `examples_id`


def compare(
    experiment: str,
    metric: str,
    baseline: dict[str, Any],
    observed: Observed | None,
    obtained: float,
    n: int,
    *,
    tolerance: float,
    min_effect: float,
) -> Comparison:
    """The comparison of `metric` (measured on `n` examples) with its `baseline` entry: paired when the entry recorded
    predictions of the same examples this run predicted (`observed`), else by the tolerance.

    Paired, both accuracies are counted from the predictions; unpaired, the recorded (rounded)
    value is compared with `obtained` rounded the same way, so an unchanged result is no drop.
    """
    recorded = baseline.get("predictions", {}).get(SPLIT_OF[metric])
    shown: dict[str, Any] = {
        "experiment": experiment,
        "metric": metric,
        "tolerance": tolerance,
        "min_effect": min_effect,
    }
    note: str | None = None
    if recorded is None:
        note = "the baseline has no predictions"
    elif observed is None:
        note = "this run kept no predictions of the split"
    elif recorded["examples"] != observed.examples:
        note = "the baseline was recorded on other examples (the data set changed)"
    else:
        before = decode(recorded)
        right_before = sum(p == t for p, t in zip(before, observed.labels, strict=True))
        scored = abs(round(right_before / n, 4) - float(baseline[metric])) <= _EPSILON
        note = (
            None
            if scored
            else f"the recorded {metric} is not what its recorded predictions score ({right_before / n:.4f})"
        )
    if note is not None or observed is None:
        return Comparison(baseline=float(baseline[metric]), obtained=round(obtained, 4), n=n, note=note, **shown)
    b, c = discordant(observed.labels, before, observed.predicted)
    right_now = sum(p == t for p, t in zip(observed.predicted, observed.labels, strict=True))
    return Comparison(baseline=right_before / n, obtained=right_now / n, n=n, b=b, c=c, **shown)


def observed(run: Any) -> dict[str, Observed]:
    """Per split a `harness.engine.run` result scored, its predictions and its examples' identity."""
    return {
        split: Observed(
            labels=p.labels.tolist(),
            predicted=p.predicted.tolist(),
            examples=examples_id(run.data.digests(split).tobytes(), p.labels.tolist()),
        )
        for split, p in run.predictions.items()
    }


def planned(recorded: Mapping[str, Mapping[str, Any]], selected: Sequence[str]) -> int:
    """How many paired comparisons a session of the `selected` experiments makes: one per gated
    accuracy whose baseline in `recorded` has predictions of its split."""
    return sum(
        metric in entry and split in entry.get("predictions", {})
        for entry in (recorded.get(name, {}) for name in selected)
        for metric, split in SPLIT_OF.items()
    )


def discordant(labels: Sequence[int], baseline: Sequence[int], predicted: Sequence[int]) -> tuple[int, int]:
    """(b, c): examples the baseline got right and `predicted` gets wrong, and the reverse."""
    b = c = 0
    for truth, before, now in zip(labels, baseline, predicted, strict=True):
        b += before == truth and now != truth
        c += before != truth and now == truth
    return b, c


@dataclass
class Comparison:
    """One gated accuracy of one experiment against its baseline.

    Paired, `b`, `c` and `p_value` are known, and `Family` sets `alpha` (Holm's level at this
    comparison's rank) and `rejected`. Unpaired (`note` says why), only the tolerance applies.
    """

    experiment: str
    metric: str  # "val_accuracy" or "test_accuracy"
    baseline: float
    obtained: float
    n: int
    tolerance: float
    min_effect: float
    b: int | None = None
    c: int | None = None
    note: str | None = None  # why the comparison is not paired
    alpha: float | None = None
    rejected: bool = False
    decided: str = "at its check"  # or "at the session's end": rejected once every p-value was known
    verdict_at_check: str | None = None  # the verdict its experiment's check reported

    @property
    def paired(self) -> bool:
        return self.b is not None

    @property
    def p_value(self) -> float | None:
        return None if self.b is None or self.c is None else stats.mcnemar_worse(self.b, self.c)

    @property
    def drop(self) -> float:
        return self.baseline - self.obtained

    @property
    def over_tolerance(self) -> bool:
        return self.drop > self.tolerance + _EPSILON

    @property
    def significant(self) -> bool:
        return self.rejected and self.drop > self.min_effect + _EPSILON

    @property
    def verdict(self) -> str:
        return "fail" if self.over_tolerance or self.significant else "pass"

    @property
    def reason(self) -> str:
        """The verdict in words."""
        drop = f"the drop {self.drop:+.4f}"
        if self.over_tolerance:
            return f"{drop} exceeds the tolerance {self.tolerance:.4f}"
        if not self.paired:
            return f"{drop} is within the tolerance {self.tolerance:.4f} (not paired: {self.note})"
        test = f"p={self.p_value:.4g} {'<=' if self.rejected else '>'} Holm's alpha {self.alpha:.4g}"
        if self.significant:
            return f"significantly worse ({test}) and {drop} exceeds the minimal effect {self.min_effect:.4f}"
        if self.rejected:
            return f"significantly worse ({test}) but {drop} is within the minimal effect {self.min_effect:.4f}"
        return f"not significantly worse ({test}); {drop} is within the tolerance {self.tolerance:.4f}"

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "metric": self.metric,
            "baseline": round(self.baseline, 4),
            "baseline_ci": stats.accuracy_interval(self.baseline, self.n),
            "obtained": round(self.obtained, 4),
            "obtained_ci": stats.accuracy_interval(self.obtained, self.n),
            "n": self.n,
            "paired": self.paired,
            "note": self.note,
            "discordant": None if self.b is None else [self.b, self.c],
            # Paired: how many examples each got right, so that `from_json` gives back the exact accuracies.
            "correct": None if self.b is None else [round(self.baseline * self.n), round(self.obtained * self.n)],
            "p_value": self.p_value,
            "alpha": self.alpha,
            "tolerance": self.tolerance,
            "min_effect": self.min_effect,
            "verdict": self.verdict,
            "reason": self.reason,
            "decided": self.decided,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Comparison:
        """The comparison `to_json` wrote, as decided then (`verdict_at_check`); `Family` decides it again."""
        n = int(document["n"])
        correct: list[int] | None = document.get("correct")  # absent from files of harness 0.1.0 before it
        discordant: list[int] | None = document.get("discordant")
        return cls(
            experiment=str(document["experiment"]),
            metric=str(document["metric"]),
            baseline=correct[0] / n if correct else float(document["baseline"]),
            obtained=correct[1] / n if correct else float(document["obtained"]),
            n=n,
            tolerance=float(document["tolerance"]),
            min_effect=float(document["min_effect"]),
            b=None if discordant is None else int(discordant[0]),
            c=None if discordant is None else int(discordant[1]),
            note=document.get("note"),
            alpha=document.get("alpha"),
            decided=str(document.get("decided", "at its check")),
            verdict_at_check=str(document["verdict"]),
        )


@dataclass
class Family:
    """Every paired comparison of a session, corrected together by Holm's step-down procedure.

    Comparisons arrive one experiment at a time. Until the session ends, the ones still to come
    count with p = 1 (`expected` is how many the session plans): Holm's procedure is monotone in
    the p-values, so a comparison rejected then stays rejected once every p-value is known.
    `finish` decides again with the comparisons that were made; any it newly rejects are
    returned, and fail the session.
    """

    alpha: float = DEFAULT_ALPHA
    expected: int = 0
    comparisons: list[Comparison] = field(default_factory=list)

    def add(self, comparisons: Sequence[Comparison]) -> None:
        """Adds one experiment's comparisons and decides them (and the earlier ones) again."""
        self.comparisons += comparisons
        self._decide(max(self.expected, self._paired_count))
        for comparison in comparisons:
            comparison.verdict_at_check = comparison.verdict

    def merge(self, comparisons: Sequence[Comparison]) -> None:
        """Takes in comparisons another process of the session decided (a pytest-xdist worker's),
        as decided there; `finish` decides them all again together."""
        self.comparisons += comparisons

    def finish(self) -> list[Comparison]:
        """Decides with the comparisons made; returns those only now rejected with a failing verdict."""
        self._decide(self._paired_count)
        late = [c for c in self.comparisons if c.verdict == "fail" and c.verdict_at_check == "pass"]
        for comparison in late:
            comparison.decided = "at the session's end"
        return late

    @property
    def _paired_count(self) -> int:
        return sum(c.paired for c in self.comparisons)

    def _decide(self, size: int) -> None:
        paired = [c for c in self.comparisons if c.paired]
        p_values = [float(c.p_value) for c in paired]  # type: ignore[arg-type]
        levels = stats.holm_levels(p_values, self.alpha, family_size=size)
        rejected = stats.holm(p_values, self.alpha, family_size=size)
        for comparison, level, rejection in zip(paired, levels, rejected, strict=True):
            comparison.alpha, comparison.rejected = level, rejection
