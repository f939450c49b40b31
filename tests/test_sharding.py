"""`--shard K/N` and `python -m harness merge`: a deterministic, balanced split, and one session's
outputs and gate from the parts (harness.sharding, harness.merge). No TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import gate, merge, sharding
from harness.report.metrics_json import metrics_text


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_a_bad_shard_says_what_is_expected(text: str) -> None:
    with pytest.raises(pytest.UsageError, match=r"--shard must be K/N: .* 1 <= K <= N, such as 1/4. Received: "):
        sharding.parse(text)


def test_groups_go_longest_first_to_the_least_loaded_shard() -> None:
    groups = [("a", 60.0), ("b", 50.0), ("c", 40.0), ("d", 30.0), ("e", None)]  # e: the median, 45 s
    # a (60) to shard 0, b (50) to 1, e (45) to 1, c (40) to 0, d (30) to 1: 100 s and 125 s.
    assert sharding.assign(groups, 2) == [0, 1, 0, 1, 1]
    assert sharding.assign(groups, 1) == [0] * 5


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=4), st.one_of(st.none(), st.floats(0, 1e4))),
        unique_by=lambda g: g[0],
        max_size=30,
    ),
    st.integers(1, 6),
)
def test_every_group_lands_in_exactly_one_shard_whatever_the_order(
    groups: list[tuple[str, float | None]], count: int
) -> None:
    chosen = sharding.assign(groups, count)
    assert all(0 <= shard < count for shard in chosen)
    again = dict(zip([g[0] for g in reversed(groups)], sharding.assign(groups[::-1], count), strict=True))
    assert again == dict(zip([g[0] for g in groups], chosen, strict=True))  # by name, not by collection order
    if len(groups) >= count and all(seconds for _, seconds in groups):
        assert set(chosen) == set(range(count))  # no shard idles while another has two


def test_recorded_durations_of_a_group_add_up() -> None:
    recorded = {"a": {"wall_time_s": 12.5}, "b": {"wall_time_s": 7}, "c": {}}
    assert sharding.durations(recorded, ["a", "b"]) == 19.5
    assert sharding.durations(recorded, ["a", "c"]) is None


# ------------------------------------------------------------------------------ merge


def _comparison(experiment: str, b: int, c: int) -> gate.Comparison:
    return gate.Comparison(
        experiment=experiment,
        metric="test_accuracy",
        baseline=472 / 525,  # paired accuracies are counts over n
        obtained=(472 - b + c) / 525,
        n=525,
        tolerance=0.04,
        min_effect=0.01,
        b=b,
        c=c,
    )


def _shard(folder: Path, experiment: str, comparison: gate.Comparison, *, expected: int) -> None:
    """A shard's metrics file: one experiment, its comparison decided as its session did."""
    family = gate.Family(alpha=0.05, expected=expected)
    family.add([comparison])
    outcome = "failed" if comparison.verdict == "fail" else "passed"
    document = {
        "harness_version": "0.1.0",
        "started": "2026-12-01T10:00:00+0000",
        "gate_alpha": 0.05,
        "experiments": {experiment: {"outcome": outcome, "gate": {comparison.metric: comparison.to_json()}}},
    }
    folder.mkdir(parents=True)
    (folder / merge.METRICS).write_text(metrics_text(document))


def test_merge_decides_the_gate_as_one_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # p = 0.0195 and 0.0327 (McNemar). Each shard alone, the other's p-value unknown (1): Holm
    # rejects the first (0.0195 <= 0.05/2) and keeps the second (0.0327 > 0.05/2). With both known,
    # the second's level is 0.05 and it is rejected too, with a drop of 0.013 > the minimal effect.
    _shard(tmp_path / "shard1", "first", _comparison("first", 8, 1), expected=2)
    _shard(tmp_path / "shard2", "second", _comparison("second", 9, 2), expected=2)
    status = merge.merge(tmp_path / "out", [tmp_path / "shard1", tmp_path / "shard2"])
    assert status == 1
    document = json.loads((tmp_path / "out" / merge.METRICS).read_text())
    second = document["experiments"]["second"]["gate"]["test_accuracy"]
    assert (second["verdict"], second["decided"], second["alpha"]) == ("fail", "at the session's end", 0.05)
    single = gate.Family(alpha=0.05, expected=2)  # the same comparisons in one session
    single.add([_comparison("first", 8, 1)])
    single.add([_comparison("second", 9, 2)])
    assert [c.verdict for c in single.comparisons] == ["fail", "fail"]
    out = capsys.readouterr().out
    assert "harness merge: 2 experiments from 2 shards" in out and "1 passed, 1 failed" in out
    assert "FAILED at the session's end: paired gate of second test_accuracy: significantly worse" in out


def test_merged_comparisons_keep_their_exact_accuracies() -> None:
    comparison = _comparison("x", 3, 1)
    family = gate.Family(alpha=0.05, expected=1)
    family.add([comparison])
    again = gate.Comparison.from_json(json.loads(json.dumps(comparison.to_json())))
    assert (again.baseline, again.obtained, again.b, again.c, again.verdict) == (
        comparison.baseline,
        comparison.obtained,
        3,
        1,
        comparison.verdict,
    )


def test_merged_baselines_take_each_experiment_from_the_shard_that_ran_it(tmp_path: Path) -> None:
    old = {"a": {"val_accuracy": 0.5}, "b": {"val_accuracy": 0.5}, "kept": {"val_accuracy": 0.7}}
    first = ({"experiments": {"a": {}}}, {**old, "a": {"val_accuracy": 0.9}})
    second = ({"experiments": {"b": {}, "new": {}}}, {**old, "b": {"val_accuracy": 0.8}, "new": {"val_accuracy": 0.6}})
    assert merge.merged_baselines([first, second]) == {
        "a": {"val_accuracy": 0.9},
        "b": {"val_accuracy": 0.8},
        "kept": {"val_accuracy": 0.7},
        "new": {"val_accuracy": 0.6},
    }
    assert merge.merged_baselines([({"experiments": {}}, None)]) is None


def test_bad_shards_are_named(tmp_path: Path) -> None:
    _shard(tmp_path / "one", "same", _comparison("same", 0, 0), expected=1)
    _shard(tmp_path / "two", "same", _comparison("same", 0, 0), expected=1)
    (tmp_path / "empty").mkdir()
    command = [sys.executable, "-m", "harness", "merge", str(tmp_path / "out")]
    twice = subprocess.run([*command, str(tmp_path / "one"), str(tmp_path / "two")], capture_output=True, text=True)
    assert twice.returncode == 2 and "experiment 'same' ran in two shards" in twice.stderr
    missing = subprocess.run([*command, str(tmp_path / "empty")], capture_output=True, text=True)
    assert (
        missing.returncode == 2 and "empty/metrics.json: not a metrics file written by --metrics-json" in missing.stderr
    )
    assert not (tmp_path / "out").exists()


def test_a_recorded_duration_is_kept_until_it_changes_twofold_and_by_more_than_30_s() -> None:
    from harness.baselines import kept_duration

    assert kept_duration({"wall_time_s": 140.0}, {"wall_time_s": 100.0}) == {"wall_time_s": 100.0}
    assert kept_duration({"wall_time_s": 250.0}, {"wall_time_s": 100.0}) == {"wall_time_s": 250.0}
    assert kept_duration({"wall_time_s": 40.0}, {"wall_time_s": 100.0}) == {"wall_time_s": 40.0}
    # Seconds-long runs double on a loaded machine; 30 s changes no shard's balance.
    assert kept_duration({"wall_time_s": 7.8}, {"wall_time_s": 3.5}) == {"wall_time_s": 3.5}
    assert kept_duration({"wall_time_s": 40.0}, {"wall_time_s": 9.0}) == {"wall_time_s": 40.0}
    assert kept_duration({"wall_time_s": 4.0}, None) == {"wall_time_s": 4.0}
