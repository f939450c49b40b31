"""Statistics of the reported figures: the confidence interval of an accuracy.

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
