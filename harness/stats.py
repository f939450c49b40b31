"""Statistics of the reported figures: the confidence interval of an accuracy, and the exact
paired test and multiplicity correction a regression gate needs (McNemar's, Holm's).

Pure Python (no NumPy, no TensorFlow): the reports, the metrics JSON and the model card use it.
"""

from __future__ import annotations

import math

# The standard normal quantile of a two-sided 95% interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: `successes` of `n` trials, 95% by default.

    Unlike the normal approximation it stays inside [0, 1] and keeps a width at 0 and n
    successes, which small held-out splits and near-perfect accuracies need.

    Raises:
        ValueError: `n` is not positive, or `successes` is not in [0, n].
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"needs 0 <= successes <= n and n > 0. Received: successes={successes}, n={n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # Exactly 0 and 1 at the ends, where round-off would leave 1e-17 and 0.999...
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def accuracy_interval(accuracy: float, n: int) -> list[float]:
    """`wilson_interval` of an accuracy measured on `n` examples, as `[low, high]` rounded to 4 places."""
    low, high = wilson_interval(round(accuracy * n), n)
    return [round(low, 4), round(high, 4)]


def binomial_upper_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exact (integer arithmetic, any n)."""
    if n < 0:
        raise ValueError(f"needs n >= 0. Received: n={n}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def mcnemar_worse(b: int, c: int) -> float:
    """The exact one-sided McNemar p-value that a run is worse than its baseline, example by example.

    `b` examples the baseline got right and the run gets wrong, `c` the reverse. Under the null
    hypothesis (no change) each discordant example is equally likely to fall either way, so the
    p-value is P(X >= b) for X ~ Binomial(b + c, 1/2); 1.0 without discordant examples.
    """
    if b < 0 or c < 0:
        raise ValueError(f"needs counts b, c >= 0. Received: b={b}, c={c}")
    return binomial_upper_tail(b, b + c)


def holm(p_values: list[float], alpha: float, *, family_size: int | None = None) -> list[bool]:
    """Holm's step-down rejections of `p_values` at family-wise error rate `alpha`, in input order.

    The smallest p-value is compared with alpha/m, the next with alpha/(m-1), ...; the first
    that exceeds its level stops the procedure. Lowering any p-value never removes a rejection.
    `family_size` (at least `len(p_values)`) counts hypotheses not tested yet, as p = 1.
    """
    levels = holm_levels(p_values, alpha, family_size=family_size)
    rejected = [False] * len(p_values)
    for index in sorted(range(len(p_values)), key=lambda i: p_values[i]):
        if p_values[index] > levels[index]:
            break
        rejected[index] = True
    return rejected


def holm_levels(p_values: list[float], alpha: float, *, family_size: int | None = None) -> list[float]:
    """Holm's level of each p-value, in input order: alpha / (m - rank), rank 0 for the smallest."""
    m = len(p_values) if family_size is None else family_size
    if m < len(p_values):
        raise ValueError(f"needs family_size >= len(p_values). Received: {m} < {len(p_values)}")
    levels = [0.0] * len(p_values)
    for rank, index in enumerate(sorted(range(len(p_values)), key=lambda i: p_values[i])):
        levels[index] = alpha / (m - rank)
    return levels


def per_class(labels: list[int], predicted: list[int], class_names: list[str]) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support of every class, by class name, from true and predicted indices.

    A class never predicted has precision 0 (and F1 0), as scikit-learn's `zero_division=0`; a
    class without examples has recall 0.
    """
    counts = {"true": [0] * len(class_names), "predicted": [0] * len(class_names), "hit": [0] * len(class_names)}
    for truth, guess in zip(labels, predicted, strict=True):
        counts["true"][truth] += 1
        counts["predicted"][guess] += 1
        counts["hit"][truth] += truth == guess
    shown: dict[str, dict[str, float | int]] = {}
    for index, name in enumerate(class_names):
        hit, true, guessed = counts["hit"][index], counts["true"][index], counts["predicted"][index]
        precision = hit / guessed if guessed else 0.0
        recall = hit / true if true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        shown[name] = {"precision": precision, "recall": recall, "f1": f1, "support": true, "predicted": guessed}
    return shown


def macro_f1(classes: dict[str, dict[str, float | int]]) -> float:
    """The unweighted mean F1 over `classes` (see `per_class`)."""
    return sum(float(c["f1"]) for c in classes.values()) / len(classes) if classes else 0.0


def per_slice(
    labels: list[int], predicted: list[int], values: list[str]
) -> dict[str, dict[str, float | int | list[float]]]:
    """Accuracy of the examples of every slice value, by value (sorted): `accuracy`, `n`, `correct`
    and `accuracy_ci` (the 95% Wilson interval, `[low, high]`); `values` has one value per example.
    """
    if not len(labels) == len(predicted) == len(values):
        raise ValueError(
            f"needs one label, prediction and slice value per example. "
            f"Received: {len(labels)} labels, {len(predicted)} predictions, {len(values)} slice values"
        )
    counts: dict[str, list[int]] = {}
    for truth, guess, value in zip(labels, predicted, values, strict=True):
        tally = counts.setdefault(value, [0, 0])
        tally[0] += 1
        tally[1] += truth == guess
    shown: dict[str, dict[str, float | int | list[float]]] = {}
    for value in sorted(counts):
        n, correct = counts[value]
        accuracy = correct / n
        shown[value] = {"accuracy": accuracy, "n": n, "correct": correct, "accuracy_ci": accuracy_interval(accuracy, n)}
    return shown
