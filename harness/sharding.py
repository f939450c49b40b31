"""`pytest specs/ --shard K/N`: the K-th of N parts of the selected experiments, for CI matrices
and cluster job arrays; `python -m harness merge` puts the parts' outputs back together.

The split is deterministic: it depends only on the selected experiments' names and on the
durations the baseline file records (`wall_time_s`), never on the machine or the order of
collection. Experiments tied by `beats` stay in one shard (the one that beats runs after the one
it beats, as in one session). Groups go, longest first (recorded duration; one without a record
counts as the median of those with one, or 1 s), to the shard with the least time so far
(greedy longest-processing-time scheduling); ties go by name, then to the lower shard.

Every shard plans the regression gate's Holm family from all the selected experiments, not from
its own part: its verdicts are then the conservative ones of one session whose other comparisons
are still to come, and `merge` decides them again with every shard's p-values, as one session
would at its end. No TensorFlow.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse(text: str) -> tuple[int, int]:
    """`K/N` as (K, N), with 1 <= K <= N; a `pytest.UsageError` that says what is expected otherwise."""
    match = SHARD.match(text.strip())
    if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise pytest.UsageError(
            f"--shard must be K/N: the K-th of N shards, 1 <= K <= N, such as 1/4. Received: {text}"
        )
    return int(match.group(1)), int(match.group(2))


def assign(groups: Sequence[tuple[str, float | None]], shards: int) -> list[int]:
    """The shard (0-based) of each group, given as (name, recorded seconds or None)."""
    known = [seconds for _, seconds in groups if seconds is not None]
    fallback = statistics.median(known) if known else 1.0
    cost = [fallback if seconds is None else seconds for _, seconds in groups]
    totals = [0.0] * shards
    chosen = [0] * len(groups)
    for index in sorted(range(len(groups)), key=lambda i: (-cost[i], groups[i][0])):
        shard = min(range(shards), key=lambda k: (totals[k], k))
        chosen[index] = shard
        totals[shard] += cost[index]
    return chosen


def durations(recorded: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> float | None:
    """The recorded seconds of experiments `names` together; None when one has no record.

    `recorded` holds valid entries (`Session.baselines`): a `wall_time_s` there is a number."""
    total = 0.0
    for name in names:
        seconds = recorded.get(name, {}).get("wall_time_s")
        if seconds is None:
            return None
        total += seconds
    return total


class Shard:
    """The plugin `--shard K/N` registers; validates K/N at once."""

    def __init__(self, text: str) -> None:
        self.number, self.count = parse(text)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        # Last, once -k and -m have deselected: the shard keeps its part of what they selected.
        select(config, items, self.number, self.count)


def select(config: pytest.Config, items: list[pytest.Item], number: int, count: int) -> None:
    """Keeps in `items` the experiments of shard `number` of `count` (and the other tests of its
    part); deselects the rest, as `-k` does."""
    from harness.collect import ExperimentItem, beats_groups
    from harness.session import Session

    session = Session.of(config)
    experiments = [item for item in items if isinstance(item, ExperimentItem)]
    # The gate plans from every shard's experiments (see the module's docstring).
    session.selected = [item.experiment.name for item in experiments]
    recorded = session.baselines()
    groups: list[tuple[str, list[pytest.Item], float | None]] = []
    for members in beats_groups(experiments):
        names = [item.experiment.name for item in members]
        groups.append((names[0], list(members), durations(recorded, names)))
    groups += [(item.nodeid, [item], None) for item in items if not isinstance(item, ExperimentItem)]
    shards = assign([(name, seconds) for name, _, seconds in groups], count)
    kept = {
        id(item)
        for (_, members, _), shard in zip(groups, shards, strict=True)
        if shard == number - 1
        for item in members
    }
    dropped = [item for item in items if id(item) not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if id(item) in kept]
