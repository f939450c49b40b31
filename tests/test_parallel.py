"""`pytest specs/ -n 2` (pytest-xdist): every output complete and written once, by the controller;
and `--shard K/N` runs merged by `python -m harness merge`.

Each run starts two worker processes that import TensorFlow (seconds each), so these are few and
each checks much: the metrics JSON, baselines, report, exports, JUnit properties, progress lines,
`beats` order, the shared cache, and an interrupted run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tiny_specs import experiment_text, spec_file

pytest.importorskip("xdist")

WITH_TEST = "lambda: make_data(test=True)"
XDIST = ("-p", "xdist.plugin", "-p", "no:cacheprovider", "-n", "2")
BEATS = 'beats("a", margin=-1.0, metric="val_accuracy")'


def _four_experiments() -> str:
    return spec_file(
        experiment_text("a", data=WITH_TEST, expect=""),
        experiment_text("b", data=WITH_TEST, expect=""),
        experiment_text("c", data=WITH_TEST, expect=BEATS),
        experiment_text("other", data=WITH_TEST, expect=""),
    )


def test_every_output_holds_every_selected_experiment_of_every_worker(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": _four_experiments()})
    result = spec_pytester.runpytest_subprocess(
        *XDIST,
        *("-v", "-k", "not other", "--update-baselines", "--metrics-json", "metrics.json"),
        *("--report-dir", "report", "--export-dir", "exports", "--junitxml", "junit.xml"),
    )
    result.assert_outcomes(passed=3)  # xdist reports no deselection: the workers deselect
    root = spec_pytester.path
    assert set(json.loads((root / "metrics.json").read_text())["experiments"]) == {"a", "b", "c"}
    assert set(json.loads((root / "specs" / "baselines.json").read_text())["experiments"]) == {"a", "b", "c"}
    index = (root / "report" / "index.html").read_text()
    assert all(f">{name}<" in index for name in "abc")
    assert sorted(p.name for p in (root / "exports").iterdir()) == ["a", "b", "c"]  # published; no staging left
    assert all((root / "exports" / name / "model_card.json").is_file() for name in "abc")
    cases = {case.get("name"): case for case in ET.parse(root / "junit.xml").getroot().iter("testcase")}
    for name, case in cases.items():
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert properties["feature_extraction.trainable_params"] == "10", name
    assert len(cases) == 3
    # The summary table, and each experiment's progress lines, printed by the controller.
    result.stdout.fnmatch_lines(["*harness summary*", "experiment  phase*"])
    for name in "abc":
        result.stdout.fnmatch_lines([f"  [[]harness[]] [[]gw?[]] {name} feature_extraction epoch 3/3 *"])
        result.stdout.fnmatch_lines([f"{name} * feature_extraction * PASSED"])
    result.stdout.fnmatch_lines(["harness: baselines of 3 experiments recorded in specs/baselines.json"])
    # `beats`: c ran on a's worker, after a.
    ran = [re.match(r"\[(gw\d)\] .*PASSED specs/tiny.py::(\w)", line) for line in result.outlines]
    order = [(m.group(2), m.group(1)) for m in ran if m]
    workers = dict(order)
    assert workers["a"] == workers["c"]
    assert [n for n, w in order if w == workers["a"]].index("a") < [n for n, w in order if w == workers["a"]].index("c")


def test_the_gate_decides_across_workers_and_a_rerun_is_gated(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": _four_experiments()})
    spec_pytester.runpytest_subprocess(*XDIST, "--update-baselines").assert_outcomes(passed=4)
    result = spec_pytester.runpytest_subprocess(*XDIST, "--metrics-json", "metrics.json")
    result.assert_outcomes(passed=4)
    document = json.loads((spec_pytester.path / "metrics.json").read_text())
    gates = {
        (name, metric): g for name, e in document["experiments"].items() for metric, g in e.get("gate", {}).items()
    }
    assert {name for name, _ in gates} == {"a", "b", "c", "other"} and len(gates) == 8  # val and test each
    assert all(g["paired"] and g["verdict"] == "pass" for g in gates.values())
    # Holm over the 8 comparisons of both workers: the smallest p-value is held to alpha / 8.
    assert min(g["alpha"] for g in gates.values()) == pytest.approx(0.05 / 8)
    result.stdout.fnmatch_lines(["paired gate of * val_accuracy: * pass"])


def test_a_shared_cache_entry_is_computed_once(spec_pytester: pytest.Pytester) -> None:
    cached = "arrays(make_data, image_size=16, cache_key='tiny-v1')"
    text = spec_file(
        *(
            experiment_text(name, phases=f"feature_extraction(epochs=2, learning_rate={rate}, batch_size=16)")
            for name, rate in (("slow", 1e-2), ("fast", 5e-2), ("faster", 1e-1))
        )
    ).replace("arrays(make_data, image_size=16)", cached)
    spec_pytester.makepyfile(**{"specs/tiny": text})
    result = spec_pytester.runpytest_subprocess(*XDIST, "--metrics-json", "metrics.json")
    result.assert_outcomes(passed=3)
    document = json.loads((spec_pytester.path / "metrics.json").read_text())
    states = sorted(e["phases"][0]["cache"] for e in document["experiments"].values())
    assert states == ["hit", "hit", "miss"]


def test_an_interrupted_parallel_run_leaves_every_output_as_it_was(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": _four_experiments()})
    spec_pytester.runpytest_subprocess(*XDIST, "--update-baselines").assert_outcomes(passed=4)
    baselines = spec_pytester.path / "specs" / "baselines.json"
    before = baselines.read_bytes()
    interrupting = "\n\ndef interrupting_backbone(input_shape):\n    raise KeyboardInterrupt\n\n\n" + experiment_text(
        "stopped", data=WITH_TEST, backbone="interrupting_backbone", expect=""
    )
    spec_pytester.makepyfile(**{"specs/tiny": _four_experiments() + interrupting})
    result = spec_pytester.runpytest_subprocess(
        *XDIST, "--update-baselines", "--seed", "1", "--metrics-json", "metrics.json", "--export-dir", "exports"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert baselines.read_bytes() == before
    assert not (spec_pytester.path / "metrics.json").exists()
    assert list(Path(spec_pytester.path / "exports").glob("*")) == []  # nothing published, no staging left
    result.stdout.fnmatch_lines(
        ["harness: interrupted: the baselines, metrics, report and exports were left as they were"]
    )


def test_shards_run_disjoint_parts_that_merge_into_one_sessions_outputs(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": _four_experiments()})
    spec_pytester.runpytest_inprocess("-p", "no:cacheprovider", "--update-baselines").assert_outcomes(passed=4)
    ran = []
    for shard in ("1/2", "2/2"):
        folder = f"shard{shard[0]}"
        result = spec_pytester.runpytest_inprocess(
            *("-p", "no:cacheprovider", "--shard", shard, "--metrics-json", f"{folder}/metrics.json"),
            *("--report-dir", f"{folder}/report"),
        )
        names = set(json.loads((spec_pytester.path / folder / "metrics.json").read_text())["experiments"])
        result.assert_outcomes(passed=len(names), deselected=4 - len(names))
        ran.append(names)
    assert ran[0] | ran[1] == {"a", "b", "c", "other"} and not ran[0] & ran[1] and all(ran)
    assert any({"a", "c"} <= names for names in ran)  # c beats a: one shard runs both, a first
    merged = subprocess.run(
        [sys.executable, "-m", "harness", "merge", "merged", "shard1", "shard2"],
        cwd=spec_pytester.path,
        capture_output=True,
        text=True,
    )
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "harness merge: 4 experiments from 2 shards into merged: 4 passed, 0 failed, 0 skipped" in merged.stdout
    document = json.loads((spec_pytester.path / "merged" / "metrics.json").read_text())
    alphas = sorted(g["alpha"] for e in document["experiments"].values() for g in e["gate"].values())
    # Holm over the 8 comparisons of both shards, as one session decides them.
    assert alphas == pytest.approx([0.05 / 8, 0.05 / 7, 0.05 / 6, 0.05 / 5, 0.05 / 4, 0.05 / 3, 0.05 / 2, 0.05])
    # One report of every experiment: each shard's figures and logs, and its summary rows as the shard showed them.
    report = spec_pytester.path / "merged" / "report"
    index = (report / "index.md").read_text()

    def rows(text: str, name: str) -> list[list[str]]:  # the summary table's cells (its padding fits its rows)
        return [[c.strip() for c in line.split("|")] for line in text.splitlines() if line.startswith(f"| {name} ")]

    for name in ("a", "b", "c", "other"):
        assert (report / name / "curves.png").is_file() and (report / name / "tensorboard").is_dir(), name
        shard = next(f for f, names in zip(("shard1", "shard2"), ran, strict=True) if name in names)
        shown = rows((spec_pytester.path / shard / "report" / "index.md").read_text(), name)
        assert shown and rows(index, name) == shown, name
        assert f"TensorBoard log folder: `{(report / name / 'tensorboard').resolve()}`" in index
