"""Benchmark: a parametrised grid of head-only ELPV experiments, through the harness against the plain Keras recipe.

A grid of `--experiments` (default 12) experiments: the first N of learning rates [3e-4, 1e-3,
2e-3, 4e-3] x dropout rates [0.0, 0.2, 0.4], each an ImageNet EfficientNet-Lite0 on binary ELPV
(`tfds_dataset("elpv", label_key="defective", image_size=--image-size, test_split="test")`, as
in specs/elpv.py) with one `feature_extraction(epochs=--epochs, learning_rate=lr)` phase and
`classifier_head(dropout_rate=d)`. Each side runs in its own process, on one temporary cache
(`HARNESS_CACHE_DIR`):

- harness: the grid written as one `@parametrize` spec file in a temporary project, run as
  `python -m pytest specs/grid.py -p no:cacheprovider -p no:benchmark --metrics-json m.json`.
  A first, untimed run of one experiment (`-k`) fills the cache (the Lite0 weights converted,
  the features of every split computed, TFDS's preparation of ELPV); then the whole grid runs,
  timed: that pytest command's wall time is the harness's grid time. The project's
  `conftest.py` (written here, harness-independent) wraps `keras.Model.fit` and
  `keras.Model.predict` with a timer and times each test item's whole protocol (setup, call,
  teardown), since the metrics JSON has no fit-only time (`phases[].wall_time_s` is the whole
  phase, `wall_time_s` the whole `harness.engine.run`).
- plain: the plain Keras recipe, per experiment: its own `keras.Model` around a frozen Lite0
  base (`harness.load_backbone("efficientnet_lite0", weights="imagenet", include_top=False)`,
  called with `training=False`), GlobalAveragePooling2D, Dropout (left out at rate 0, as the
  harness's head does) and a softmax Dense; compiled with Adam(lr); `model.fit(train,
  validation_data=val, epochs=E)` on the harness's decoded, resized data (`harness.data.loading`),
  shuffled with the same seed, in batches of the harness's default phase batch size; then
  `evaluate` on the test split. Its grid time is its process's wall time (TensorFlow's import
  and the data load included, as for pytest). The frozen base runs over every image in every
  epoch, so one plain experiment costs about `epochs` feature passes; with `--plain-experiments
  K` only the first K run and the grid time is extrapolated: the process's fixed part (its
  wall time less its experiments) plus n times their mean (the experiments differ only in
  learning rate and dropout, so each costs the same).

Prints a per-experiment table and, last, `grid_speedup=X per_experiment_overhead_s=Y`:

- X: the plain grid's wall time over the harness grid's (the timed run);
- Y: what one more experiment costs the harness outside its own training: each pytest item's
  wall time (setup, call and teardown: building the model, the cache read, the validation and
  test scores, the checks) less the time inside `keras.Model.fit` during that item, the median
  over the grid's experiments after the first. The session's first experiment also pays what a
  session does once (`harness.session_memo`): loading and checking the data set, which the plain
  recipe pays too, and the one end-to-end validation check of the cache entry. The summary line
  shows it, the mean over all experiments, and the amortised figure that also spreads the
  session's own start and end (pytest, TensorFlow's import, the metrics JSON) over them:
  (grid wall time - fit time) / n.

    python benchmarks/grid_speed.py                                 # 12 experiments, 224x224, 5 epochs
    python benchmarks/grid_speed.py --epochs 2 --experiments 4      # a quick check
    python benchmarks/grid_speed.py --plain-experiments 2           # the plain grid extrapolated from 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

LEARNING_RATES = [3e-4, 1e-3, 2e-3, 4e-3]
DROPOUT_RATES = [0.0, 0.2, 0.4]
SEED = 0  # the spec's default seed, used on both sides

SPEC = """
from harness import *

GRID = {grid}


@parametrize("learning_rate, dropout_rate", GRID, ids=[f"lr{{lr:g}}-d{{d:.1f}}" for lr, d in GRID])
def grid(learning_rate, dropout_rate):
    return experiment(
        name="grid",
        dataset=tfds_dataset("elpv", label_key="defective", image_size={size}, test_split="test"),
        backbone=efficientnet_lite0(weights="imagenet"),
        head=classifier_head(dropout_rate=dropout_rate),
        phases=[feature_extraction(epochs={epochs}, learning_rate=learning_rate)],
        expect=[frozen_weights_unchanged(), trainable_weights_changed()],
    )
"""

# Harness-independent timing of each test item: its whole protocol, and the time inside Keras's fit and predict.
CONFTEST = """
import json
import os
import time

import pytest

TIMES = {}
CURRENT = []


def _timed(method, key):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            if CURRENT:
                TIMES[CURRENT[-1]][key] += time.perf_counter() - started

    wrapper.grid_timed = True
    return wrapper


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    TIMES[item.nodeid] = {"item_s": 0.0, "fit_s": 0.0, "predict_s": 0.0}
    CURRENT.append(item.nodeid)
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        TIMES[item.nodeid]["item_s"] = time.perf_counter() - started
        CURRENT.pop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    import keras

    if not getattr(keras.Model.fit, "grid_timed", False):
        keras.Model.fit = _timed(keras.Model.fit, "fit_s")
        keras.Model.predict = _timed(keras.Model.predict, "predict_s")
    return (yield)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("GRID_TIMES_JSON"):
        with open(os.environ["GRID_TIMES_JSON"], "w") as handle:
            json.dump(TIMES, handle, indent=2)
"""


def grid(experiments: int) -> list[tuple[float, float]]:
    return list(itertools.product(LEARNING_RATES, DROPOUT_RATES))[:experiments]


def item_id(lr: float, dropout: float) -> str:
    return f"lr{lr:g}-d{dropout:.1f}"


def run_harness(args: argparse.Namespace, cache: Path) -> dict:
    """The grid through pytest: an untimed one-experiment warm-up, then the whole grid, timed."""
    combos = grid(args.experiments)
    with tempfile.TemporaryDirectory(prefix="harness-grid-") as folder:
        project = Path(folder)
        (project / "specs").mkdir()
        (project / "pytest.ini").write_text("[pytest]\n")
        (project / "conftest.py").write_text(textwrap.dedent(CONFTEST).lstrip())
        spec = SPEC.format(grid=combos, size=args.image_size, epochs=args.epochs)
        (project / "specs" / "grid.py").write_text(textwrap.dedent(spec).lstrip())
        env = {**os.environ, "HARNESS_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
        command = [sys.executable, "-m", "pytest", "specs/grid.py", "-p", "no:cacheprovider", "-p", "no:benchmark"]

        def pytest(label: str, *options: str) -> tuple[float, dict, dict]:
            metrics, times = project / f"{label}.json", project / f"{label}-times.json"
            print(f"running harness ({label}) ...", flush=True)
            started = time.perf_counter()
            completed = subprocess.run(
                [*command, "--metrics-json", str(metrics), *options],
                cwd=project,
                env={**env, "GRID_TIMES_JSON": str(times)},
                capture_output=True,
                text=True,
                check=False,
            )
            elapsed = time.perf_counter() - started
            if completed.returncode != 0:
                sys.stderr.write(completed.stdout[-6000:] + completed.stderr[-3000:])
                raise SystemExit(f"harness {label} failed with exit code {completed.returncode}")
            return elapsed, json.loads(metrics.read_text()), json.loads(times.read_text())

        warm_up_s, _, _ = pytest("warm-up", "-k", item_id(*combos[0]))
        grid_s, metrics, times = pytest("grid")
    experiments = []
    for lr, dropout in combos:
        name = f"grid[{item_id(lr, dropout)}]"
        found = metrics["experiments"][name]
        timing = times[f"specs/grid.py::{name}"]
        phase = found["phases"][0]
        experiments.append(
            {
                "name": name,
                "item_s": timing["item_s"],
                "engine_s": found["wall_time_s"],
                "fit_s": timing["fit_s"],
                "predict_s": timing["predict_s"],
                "overhead_s": timing["item_s"] - timing["fit_s"],
                "cache": phase["cache"],
                "training_path": phase["training_path"],
                "val_accuracy": phase["val_accuracy"],
                "test_accuracy": phase["test_accuracy"],
            }
        )
    cold = [e["name"] for e in experiments if (e["cache"], e["training_path"]) != ("hit", "features")]
    if cold:  # the grid measures warm-cache experiments only
        raise SystemExit(f"not trained on cached features read from the warm cache: {', '.join(cold)}")
    return {"grid_s": grid_s, "warm_up_s": warm_up_s, "experiments": experiments}


def child_plain(args: argparse.Namespace) -> None:
    """The plain Keras recipe over the first `--plain-experiments` experiments of the grid; prints RESULT <json>."""
    started = time.perf_counter()
    import keras
    import tensorflow as tf

    from harness import feature_extraction, load_backbone, tfds_dataset
    from harness.data import loading

    imported = time.perf_counter()
    data = loading.load(tfds_dataset("elpv", label_key="defective", image_size=args.image_size, test_split="test"))
    loaded = time.perf_counter()
    batch_size = feature_extraction(epochs=1, learning_rate=1e-3).batch_size  # the harness's default
    size = (args.image_size, args.image_size, 3)
    experiments = []
    for lr, dropout in grid(args.experiments)[: args.plain_experiments]:
        begun = time.perf_counter()
        keras.utils.set_random_seed(SEED)
        base = load_backbone("efficientnet_lite0", weights="imagenet", include_top=False, input_shape=size)
        base.trainable = False
        inputs = keras.Input(size)
        x = base(inputs, training=False)
        x = keras.layers.GlobalAveragePooling2D()(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
        outputs = keras.layers.Dense(data.num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        train = data.train.shuffle(data.sizes["train"], seed=SEED).batch(batch_size).prefetch(tf.data.AUTOTUNE)
        val = data.validation.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        fit_started = time.perf_counter()
        history = model.fit(train, validation_data=val, epochs=args.epochs, verbose=0)
        fit_s = time.perf_counter() - fit_started
        test = model.evaluate(data.test.batch(batch_size).prefetch(tf.data.AUTOTUNE), verbose=0, return_dict=True)
        experiments.append(
            {
                "name": f"grid[{item_id(lr, dropout)}]",
                "total_s": time.perf_counter() - begun,
                "fit_s": fit_s,
                "val_accuracy": float(history.history["val_accuracy"][-1]),
                "test_accuracy": float(test["accuracy"]),
            }
        )
    outcome = {
        "import_s": imported - started,
        "load_s": loaded - imported,
        "batch_size": batch_size,
        "experiments": experiments,
    }
    print("RESULT " + json.dumps(outcome))


def run_plain(args: argparse.Namespace, cache: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        "plain",
        "--image-size",
        str(args.image_size),
        "--epochs",
        str(args.epochs),
        "--experiments",
        str(args.experiments),
        "--plain-experiments",
        str(args.plain_experiments),
    ]
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"running plain ({args.plain_experiments} of {args.experiments} experiments) ...", flush=True)
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - started
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout[-6000:] + completed.stderr[-3000:])
        raise SystemExit(f"plain failed with exit code {completed.returncode}")
    line = next(text for text in completed.stdout.splitlines() if text.startswith("RESULT "))
    outcome = json.loads(line[len("RESULT ") :])
    ran = outcome["experiments"]
    fixed = process_s - sum(e["total_s"] for e in ran)
    outcome["process_s"] = process_s
    outcome["grid_s"] = fixed + statistics.mean(e["total_s"] for e in ran) * args.experiments
    outcome["extrapolated"] = len(ran) < args.experiments
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the feature-extraction phase")
    parser.add_argument(
        "--experiments",
        type=int,
        default=12,
        choices=range(1, len(LEARNING_RATES) * len(DROPOUT_RATES) + 1),
        metavar="N",
        help="the first N of the 4 x 3 grid (default 12)",
    )
    parser.add_argument(
        "--plain-experiments",
        type=int,
        default=None,
        metavar="K",
        help="run only the grid's first K experiments the plain way and extrapolate its grid time (default: all)",
    )
    parser.add_argument("--child", choices=["plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_experiments is None:
        args.plain_experiments = args.experiments
    args.plain_experiments = max(1, min(args.plain_experiments, args.experiments))
    if args.child:
        child_plain(args)
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="harness-grid-cache-") as cache_dir:
        # First: its warm-up also converts the weights the plain side reads.
        harness = run_harness(args, Path(cache_dir))
        plain = run_plain(args, Path(cache_dir))

    n = args.experiments
    print()
    print(
        f"{n} experiments, Lite0 at {args.image_size}x{args.image_size}, {args.epochs} epochs, {os.cpu_count()} cores"
    )
    print(
        f"{'experiment':<20}{'item s':>8}{'engine s':>10}{'fit s':>8}{'predict s':>11}{'outside fit s':>15}"
        f"{'val/test acc':>15}{'plain s':>10}{'plain fit s':>13}{'plain val/test':>16}"
    )
    plain_by_name = {e["name"]: e for e in plain["experiments"]}
    for h in harness["experiments"]:
        p = plain_by_name.get(h["name"])
        shown = (
            f"{p['total_s']:>10.1f}{p['fit_s']:>13.1f}{p['val_accuracy']:>9.3f}/{p['test_accuracy']:.3f}"
            if p
            else f"{'-':>10}{'-':>13}{'-':>16}"
        )
        print(
            f"{h['name']:<20}{h['item_s']:>8.1f}{h['engine_s']:>10.1f}{h['fit_s']:>8.1f}{h['predict_s']:>11.1f}"
            f"{h['overhead_s']:>15.1f}{h['val_accuracy']:>8.3f}/{h['test_accuracy']:.3f}{shown}"
        )
    ran = plain["experiments"]
    fit_total = sum(h["fit_s"] for h in harness["experiments"])
    overhead = statistics.mean(h["overhead_s"] for h in harness["experiments"])
    later = [h["overhead_s"] for h in harness["experiments"][1:]]
    marginal = statistics.median(later) if later else overhead
    print(
        f"harness: grid {harness['grid_s']:.1f} s (warm-up of one experiment {harness['warm_up_s']:.1f} s, untimed); "
        f"fit {fit_total:.1f} s in all; outside fit per experiment: mean {overhead:.1f} s, first "
        f"{harness['experiments'][0]['overhead_s']:.1f} s"
        + (f", later ones median {statistics.median(later):.1f} s" if later else "")
        + f"; amortised (grid - fit) / n: {(harness['grid_s'] - fit_total) / n:.1f} s"
    )
    how = f"extrapolated from {len(ran)} of {n}" if plain["extrapolated"] else "measured"
    print(
        f"plain: grid {plain['grid_s']:.1f} s ({how}; process {plain['process_s']:.1f} s, of which TensorFlow's import "
        f"{plain['import_s']:.1f} s and the data load {plain['load_s']:.1f} s); per experiment mean "
        f"{statistics.mean(e['total_s'] for e in ran):.1f} s, fit {statistics.mean(e['fit_s'] for e in ran):.1f} s; "
        f"batch size {plain['batch_size']}"
    )
    print(f"grid_speedup={plain['grid_s'] / harness['grid_s']:.2f} per_experiment_overhead_s={marginal:.2f}")


if __name__ == "__main__":
    main()
