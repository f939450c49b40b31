"""The statistics of the reports and the gate against known values, and their properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.stats import binomial_upper_tail, holm, mcnemar_worse, wilson_interval


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Reference values: Wilson (1927) score interval at 95% (z = 1.959964), e.g. R's
        # prop.test(81, 100, correct = FALSE)$conf.int and Newcombe (1998), table I.
        (81, 100, 0.722212, 0.874852),
        (0, 10, 0.0, 0.277533),
        (10, 10, 0.722467, 1.0),
        (1, 29, 0.006113, 0.171755),
    ],
)
def test_wilson_interval_against_known_values(successes: int, n: int, low: float, high: float) -> None:
    obtained = wilson_interval(successes, n)
    assert obtained == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_holds_the_proportion_inside_unit_range(case: tuple[int, int]) -> None:
    successes, n = case
    low, high = wilson_interval(successes, n)
    assert 0.0 <= low <= successes / n <= high <= 1.0
    assert high - low > 0
    # Symmetric: the interval of the failures mirrors it.
    mirrored = wilson_interval(n - successes, n)
    assert math.isclose(mirrored[0], 1 - high, abs_tol=1e-12) and math.isclose(mirrored[1], 1 - low, abs_tol=1e-12)


def test_wilson_interval_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="successes=11, n=10"):
        wilson_interval(11, 10)


@pytest.mark.parametrize(
    ("k", "n", "tail"),
    [
        (8, 10, 56 / 1024),  # C(10,8) + C(10,9) + C(10,10) = 45 + 10 + 1
        (0, 10, 1.0),
        (11, 10, 0.0),
        (5, 5, 1 / 32),
        (1, 1, 0.5),
        (0, 0, 1.0),
    ],
)
def test_binomial_upper_tail_against_exact_sums(k: int, n: int, tail: float) -> None:
    assert binomial_upper_tail(k, n) == pytest.approx(tail, rel=1e-12)


def test_binomial_upper_tail_of_large_n_stays_exact() -> None:
    # Half of a symmetric distribution plus half its middle mass: 1/2 + C(2000,1000)/2^2001.
    middle = math.comb(2000, 1000) / 2**2000
    assert binomial_upper_tail(1000, 2000) == pytest.approx(0.5 + middle / 2, rel=1e-12)


def test_mcnemar_worse_reads_the_discordant_examples() -> None:
    assert mcnemar_worse(8, 2) == pytest.approx(56 / 1024)  # 8 of 10 discordant went the wrong way
    assert mcnemar_worse(0, 0) == 1.0  # nothing changed: no evidence
    assert mcnemar_worse(0, 7) == 1.0  # only improvements
    with pytest.raises(ValueError, match="b=-1"):
        mcnemar_worse(-1, 3)


@given(st.integers(0, 300), st.integers(0, 300))
def test_swapping_the_baseline_swaps_the_tails(b: int, c: int) -> None:
    # P(X >= b) + P(X >= c) = 1 + P(X = b) for X ~ Binomial(b + c, 1/2).
    n = b + c
    assert mcnemar_worse(b, c) + mcnemar_worse(c, b) == pytest.approx(1 + math.comb(n, b) / 2**n, rel=1e-9)


def test_holm_against_a_worked_example() -> None:
    # Sorted: 0.005 <= 0.05/4 and 0.01 <= 0.05/3 are rejected; 0.03 > 0.05/2 stops the rest.
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05) == [True, False, False, True]
    assert holm([], 0.05) == []
    assert holm([0.05], 0.05) == [True]


@given(st.lists(st.floats(0, 1), max_size=12), st.integers(0, 11), st.floats(0, 1))
def test_lowering_a_p_value_never_removes_a_rejection(p_values: list[float], index: int, lower: float) -> None:
    if not p_values:
        return
    index %= len(p_values)
    lowered = list(p_values)
    lowered[index] = min(lowered[index], lower)
    before, after = holm(p_values, 0.05), holm(lowered, 0.05)
    assert all(a or not b for b, a in zip(before, after, strict=True))
