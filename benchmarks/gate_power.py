"""Benchmark: the regression gate's false alarms and power, the tolerance gate against the paired gate.

Trains the binary ELPV experiment's feature-extraction phase (specs/elpv.py: the frozen ImageNet
Lite0, a new head trained for 10 epochs on cached features) through `harness.engine`, under many
seeds, as shipped ("unchanged") and with regressions of known kind injected:

- fewer epochs: 2 and 1 instead of 10;
- a lower learning rate: 1e-4 instead of 1e-3;
- corrupted training labels: 20% and 40% of them moved to another class (a fixed draw).

Every run keeps its predictions on the validation and test splits. Every ordered pair (baseline
run, later run), the baseline from the unchanged runs and never the same run, is then gated as a
session with that one experiment gates it: both accuracies, by

- the tolerance gate (the gate before predictions were recorded): fail when either accuracy
  drops by more than the tolerance;
- the paired gate (`harness.gate`): exact McNemar per accuracy, Holm across the two, failing
  when significantly worse and the drop exceeds the minimal effect, or when the drop exceeds
  the tolerance;
- either with `tolerance="measured"`: from the spread of the baseline's run and the next four
  unchanged runs (`harness.repeats.measured_tolerance`), as `--update-baselines --repeats 5`
  records it; those runs are then not counted as later runs.

False alarms are the fraction of unchanged pairs that fail; power is the fraction of pairs
with a regression that fail, by regression (with its mean test-accuracy drop). The pairs share
runs, so the fractions are estimates from correlated pairs, not independent trials.

    python benchmarks/gate_power.py                        # 20 unchanged seeds, 10 per regression
    python benchmarks/gate_power.py --seeds 30 --regression-seeds 15
    python benchmarks/gate_power.py --load runs.json       # the tables again from saved runs

Prints both tables and, last, `false_alarm_tolerance=X false_alarm_paired=Y`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "elpv_binary_lite0"
# name -> (epochs, learning rate, fraction of training labels corrupted)
CONFIGS = {
    "unchanged": (10, 1e-3, 0.0),
    "2 epochs": (2, 1e-3, 0.0),
    "1 epoch": (1, 1e-3, 0.0),
    "learning rate 1e-4": (10, 1e-4, 0.0),
    "20% labels corrupted": (10, 1e-3, 0.2),
    "40% labels corrupted": (10, 1e-3, 0.4),
}
# (name, paired, tolerance, min_effect): the gates compared; the harness's defaults are marked.
# "measured": `experiment(tolerance="measured")` from a spread over SPREAD_SEEDS unchanged runs
# (the baseline's and the next ones), never counting those runs as later runs.
GATES = (
    ("tolerance 0.04 (old default)", False, 0.04, 0.0),
    ("tolerance 0.02", False, 0.02, 0.0),
    ("tolerance measured", False, "measured", 0.0),
    ("paired, min effect 0 (test alone)", True, 1.0, 0.0),
    ("paired, min effect 0.01, tolerance 0.04 (default)", True, 0.04, 0.01),
    ("paired, min effect 0.02, tolerance 0.04", True, 0.04, 0.02),
    ("paired, min effect 0.01, tolerance measured", True, "measured", 0.01),
)
SPREAD_SEEDS = 5
ALPHA = 0.05


def head_only_experiment():
    """The shipped binary experiment's first phase alone (its features are cached after one pass)."""
    from harness import spec

    with spec.collecting() as found:
        module_spec = importlib.util.spec_from_file_location("elpv_spec", ROOT / "specs" / "elpv.py")
        module_spec.loader.exec_module(importlib.util.module_from_spec(module_spec))
    experiment = next(e for e in found if e.name == EXPERIMENT)
    return dataclasses.replace(experiment, phases=experiment.phases[:1], expect=())


def train_runs(seeds: int, regression_seeds: int) -> dict:
    """Trains every config under its seeds; returns labels, examples' identity and predictions."""
    import numpy as np
    import tensorflow as tf

    from harness import engine, gate
    from harness.cache import FeatureCache
    from harness.data import loading

    loaded = {}
    original_load = loading.load

    def load_once(dataset):  # the data set is decoded once; every run reads the same splits
        if "data" not in loaded:
            loaded["data"] = original_load(dataset)
        data = loaded["data"]
        fraction = loaded.get("corrupt", 0.0)
        if not fraction:
            return data
        labels = data.labels("train")
        rng = np.random.default_rng(12345)
        moved = rng.choice(len(labels), size=round(fraction * len(labels)), replace=False)
        labels = labels.copy()
        labels[moved] = (labels[moved] + rng.integers(1, data.num_classes, size=len(moved))) % data.num_classes
        images = data.train.map(lambda image, _: image)
        train = tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(labels))).cache()
        return dataclasses.replace(data, train=train, _digests=data._digests)

    loading.load = load_once
    base = head_only_experiment()
    options = engine.RunOptions(seed=None, cache=FeatureCache.default(), progress=None)
    runs: dict = {"configs": {}, "splits": {}}
    for name, (epochs, rate, fraction) in CONFIGS.items():
        phase = dataclasses.replace(base.phases[0], epochs=epochs, learning_rate=rate)
        experiment = dataclasses.replace(base, phases=(phase,))
        loaded["corrupt"] = fraction
        count = seeds if name == "unchanged" else regression_seeds
        found = []
        for seed in range(count):
            started = time.perf_counter()
            run = engine.run(experiment, dataclasses.replace(options, seed=seed))
            found.append({split: p.predicted.tolist() for split, p in run.predictions.items()})
            if not runs["splits"]:
                runs["splits"] = {
                    split: {
                        "labels": p.labels.tolist(),
                        "examples": gate.examples_id(run.data.digests(split).tobytes(), p.labels.tolist()),
                    }
                    for split, p in run.predictions.items()
                }
            final = run.result.final
            print(
                f"{name:<22} seed {seed:>2}: val {final.val_accuracy:.4f} test {final.test_accuracy:.4f} "
                f"({time.perf_counter() - started:.1f} s)",
                flush=True,
            )
        runs["configs"][name] = found
    return runs


def accuracy(labels: list[int], predicted: list[int]) -> float:
    return sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)


def spread_window(count: int, first: int) -> list[int]:
    """The unchanged runs a baseline's spread is measured on: its own and the next ones (cyclically)."""
    return [(first + k) % count for k in range(SPREAD_SEEDS)]


def measured(runs: dict, first: int, split: str) -> float:
    """`tolerance="measured"` for baseline run `first` on `split` (`harness.repeats.measured_tolerance`)."""
    from harness import repeats

    unchanged, labels = runs["configs"]["unchanged"], runs["splits"][split]["labels"]
    values = [accuracy(labels, unchanged[i][split]) for i in spread_window(len(unchanged), first)]
    spread = {"n": len(values), "mean": statistics.fmean(values), "std": statistics.stdev(values)}
    return repeats.measured_tolerance(round(values[0], 4), spread)


def fails(runs: dict, first: int, later: dict, paired: bool, tolerance: Any, min_effect: float) -> bool:
    """Whether one session gating `later` against unchanged run `first` (both accuracies) fails."""
    from harness import gate

    baseline = runs["configs"]["unchanged"][first]
    comparisons = []
    for metric, split in gate.SPLIT_OF.items():
        labels, examples = runs["splits"][split]["labels"], runs["splits"][split]["examples"]
        entry = {metric: round(accuracy(labels, baseline[split]), 4)}
        if paired:
            entry["predictions"] = {split: gate.record(baseline[split], 2, examples)}
        observed = gate.Observed(labels, later[split], examples)
        comparisons.append(
            gate.compare(
                EXPERIMENT,
                metric,
                entry,
                observed,
                accuracy(labels, later[split]),
                len(labels),
                tolerance=measured(runs, first, split) if tolerance == "measured" else tolerance,
                min_effect=min_effect,
            )
        )
    gate.Family(alpha=ALPHA, expected=len(comparisons)).add(comparisons)
    return any(c.verdict == "fail" for c in comparisons)


def tables(runs: dict) -> tuple[float, float]:
    unchanged = runs["configs"]["unchanged"]
    test_labels = runs["splits"]["test"]["labels"]
    reference = sum(accuracy(test_labels, r["test"]) for r in unchanged) / len(unchanged)
    print(f"\nunchanged: {len(unchanged)} seeds, test accuracy mean {reference:.4f}")
    header = ["regression", "runs", "test drop", *(name for name, *_ in GATES)]
    rows = []
    rates: dict[str, float] = {}
    for config, found in runs["configs"].items():
        drop = reference - sum(accuracy(test_labels, r["test"]) for r in found) / len(found)
        cells = [config, str(len(found)), f"{drop:+.4f}"]
        for name, paired, tolerance, min_effect in GATES:
            # Never a run against itself; with a measured tolerance, never a run its spread was measured on.
            used = (lambda i: spread_window(len(unchanged), i)) if tolerance == "measured" else (lambda i: [i])
            pairs = [
                (i, later)
                for i in range(len(unchanged))
                for j, later in enumerate(found)
                if config != "unchanged" or j not in used(i)
            ]
            rate = sum(fails(runs, i, later, paired, tolerance, min_effect) for i, later in pairs) / len(pairs)
            cells.append(f"{rate:.1%}")
            if config == "unchanged":
                rates[name] = rate
        rows.append(cells)
    print("\nFraction of (baseline, run) pairs that fail; unchanged = false alarms, the others = power:\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    return rates[GATES[0][0]], rates[GATES[4][0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds of the unchanged experiment (default 20)")
    parser.add_argument("--regression-seeds", type=int, default=10, help="seeds of each regression (default 10)")
    parser.add_argument("--save", type=Path, help="write the runs' predictions to this JSON file")
    parser.add_argument("--load", type=Path, help="read the runs from a file --save wrote instead of training")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    runs = json.loads(args.load.read_text()) if args.load else train_runs(args.seeds, args.regression_seeds)
    if args.save:
        args.save.write_text(json.dumps(runs))
    old, paired = tables(runs)
    print(f"\nfalse_alarm_tolerance={old:.4f} false_alarm_paired={paired:.4f}")


if __name__ == "__main__":
    main()
