"""Benchmark: the ELPV EfficientNet-Lite0 experiment, plain Keras recipe against the harness.

Runs, each in its own process (so peak memory is per variant) and from a cold feature cache:

- plain: exactly the plain Keras recipe. The frozen base sits inside `model.fit` and runs over every
  image in every epoch; then the top blocks are unfrozen (BatchNorm kept frozen), the model is
  recompiled at a low learning rate and fit again. A phase with `dihedral()` draws a random view
  per image in the input pipeline, as the plain Keras recipe augments.
- harness: the same experiment (same phases, epochs, batch size, optimizer, data) through
  `harness.engine`, which trains on cached features and cached block-boundary activations,
  computed in one frozen pass (on LiteRT unless `--frozen-runtime keras`). Its
  phase times include what the plain recipe does not do: the end-to-end validation check on
  the real model and the test-split score. The spec's early stopping is dropped on both sides
  so that both train the same number of epochs.
- harness-warm: the harness again on the now warm cache (the feature pass is skipped).
- with --xla, harness-xla: the warm run again with XLA (`jit_compile=True`) for the training steps.

Both variants read the same decoded, resized, in-memory data, so the ratios measure the
training work only. Prints a table and, last, `feature_extraction_speedup=X fine_tune_speedup=Y`.

    python benchmarks/elpv_speed.py                  # the spec's settings (specs/elpv.py)
    python benchmarks/elpv_speed.py --epochs 3       # shorter phases, same recipe
    python benchmarks/elpv_speed.py --frozen-runtime keras   # the frozen pass on Model.predict
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "elpv_binary_lite0"


def load_experiment(epochs: int | None):
    from harness import spec

    with spec.collecting() as found:
        module_spec = importlib.util.spec_from_file_location("elpv_spec", ROOT / "specs" / "elpv.py")
        module_spec.loader.exec_module(importlib.util.module_from_spec(module_spec))
    experiment = next(e for e in found if e.name == EXPERIMENT)
    # Same epochs on both sides: the spec's early stopping would end the two runs at different
    # epochs, so it is dropped here (the plain recipe has none).
    phases = tuple(dataclasses.replace(p, callbacks=(), epochs=epochs or p.epochs) for p in experiment.phases)
    return dataclasses.replace(experiment, phases=phases)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_plain(experiment) -> dict:
    """The plain Keras recipe, phase by phase, on the harness's data pipeline."""
    import keras
    import tensorflow as tf

    from harness import freezing
    from harness.backbones import load_backbone
    from harness.data import loading

    keras.utils.set_random_seed(experiment.seed)
    data = loading.load(experiment.dataset)
    size = experiment.image_size
    base = load_backbone(experiment.backbone.name, weights=experiment.backbone.weights, input_shape=(*size, 3))
    base.trainable = False
    inputs = keras.Input((*size, 3))
    x = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(experiment.head.dropout_rate)(x)
    outputs = keras.layers.Dense(data.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)

    phases = []
    for phase in experiment.phases:
        train = data.train.shuffle(data.sizes["train"], seed=experiment.seed)
        if phase.views:  # `dihedral()` the plain Keras way: a random view per image in the input pipeline
            train = train.map(random_view(phase.views), num_parallel_calls=tf.data.AUTOTUNE)
        train = train.batch(phase.batch_size).prefetch(tf.data.AUTOTUNE)
        val = data.validation.batch(phase.batch_size).prefetch(tf.data.AUTOTUNE)
        if phase.kind == "fine_tune":
            # The plain recipe: base.trainable = True, then freeze the layers below the boundary; BatchNorm stays frozen.
            base.trainable = True
            boundary = freezing.start_index([info for info, _ in freezing.keras_layers(base)], phase.rule)
            for index, layer in enumerate(base.layers[1:]):  # layers[0] is the InputLayer
                layer.trainable = index >= boundary and not isinstance(layer, keras.layers.BatchNormalization)
        model.compile(
            optimizer=keras.optimizers.Adam(phase.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        started = time.perf_counter()
        history = model.fit(train, validation_data=val, epochs=phase.epochs, verbose=0)
        phases.append(
            {
                "name": phase.name,
                "wall_time_s": time.perf_counter() - started,
                "val_accuracy": float(history.history["val_accuracy"][-1]),
            }
        )
    return {"phases": phases, "peak_rss_mib": peak_rss_mib()}


def random_view(views: tuple[int, ...]):
    """A tf.data map: the image in one of `views` (see `harness.spec.DIHEDRAL_VIEWS`), drawn at random."""
    import tensorflow as tf

    choices = tf.constant(views)

    def apply(image, label):
        k = tf.gather(choices, tf.random.uniform((), 0, len(views), dtype=tf.int32))
        image = tf.image.rot90(image, k % 4)
        return tf.cond(k >= 4, lambda: tf.image.flip_left_right(image), lambda: image), label

    return apply


def run_harness(experiment, frozen_runtime: str, jit_compile: bool | str = "auto") -> dict:
    from harness import engine
    from harness.cache import FeatureCache

    options = engine.RunOptions(cache=FeatureCache.default(), jit_compile=jit_compile, frozen_runtime=frozen_runtime)
    result = engine.run(experiment, options).result
    phases = [
        {
            "name": p.name,
            "wall_time_s": p.wall_time_s,
            "val_accuracy": p.val_accuracy,
            "training_path": p.training_path,
            "cache": p.cache if p.frozen_pass is None else f"{p.cache} on {p.frozen_pass}",
        }
        for p in result.phases
    ]
    return {"phases": phases, "peak_rss_mib": peak_rss_mib()}


def child(variant: str, epochs: int | None, frozen_runtime: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    experiment = load_experiment(epochs)
    if variant == "plain":
        outcome = run_plain(experiment)
    else:
        outcome = run_harness(experiment, frozen_runtime, jit_compile=True if variant == "harness-xla" else "auto")
    print("RESULT " + json.dumps(outcome))


def spawn(variant: str, epochs: int | None, frozen_runtime: str, cache_dir: str) -> dict:
    command = [sys.executable, __file__, "--child", variant, "--frozen-runtime", frozen_runtime]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    env = {**os.environ, "HARNESS_CACHE_DIR": cache_dir, "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"running {variant} ...", flush=True)
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise SystemExit(f"{variant} failed with exit code {completed.returncode}")
    line = next(text for text in completed.stdout.splitlines() if text.startswith("RESULT "))
    outcome = json.loads(line[len("RESULT ") :])
    outcome["process_s"] = time.perf_counter() - started
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="Epochs per phase (default: the spec's)")
    parser.add_argument("--xla", action="store_true", help="Also time the warm harness run with jit_compile=True")
    parser.add_argument(
        "--frozen-runtime",
        choices=["litert", "keras"],
        default="litert",
        help="What runs the harness's frozen pass (default: litert, as pytest's --frozen-runtime)",
    )
    parser.add_argument("--child", choices=["plain", "harness", "harness-xla"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.epochs, args.frozen_runtime)
        return

    with tempfile.TemporaryDirectory(prefix="harness-bench-") as cache_dir:
        # The converted Lite0 weights live in the cache too: convert them once, outside the timings.
        subprocess.run(
            [sys.executable, "-c", "import harness; harness.load_backbone('efficientnet_lite0')"],
            env={**os.environ, "HARNESS_CACHE_DIR": cache_dir, "TF_CPP_MIN_LOG_LEVEL": "2"},
            check=True,
            capture_output=True,
        )
        plain, cold, warm = (
            spawn(variant, args.epochs, args.frozen_runtime, cache_dir) for variant in ("plain", "harness", "harness")
        )
        xla = spawn("harness-xla", args.epochs, args.frozen_runtime, cache_dir) if args.xla else None

    print()
    print(
        f"{'phase':<20}{'plain s':>10}{'harness s':>11}{'ratio':>8}{'warm s':>9}{'plain acc':>11}{'harness acc':>13}  training path (cold / warm cache)"
    )
    ratios = {}
    for p, h, w in zip(plain["phases"], cold["phases"], warm["phases"], strict=False):
        ratios[p["name"]] = p["wall_time_s"] / h["wall_time_s"]
        print(
            f"{p['name']:<20}{p['wall_time_s']:>10.1f}{h['wall_time_s']:>11.1f}{ratios[p['name']]:>7.1f}x{w['wall_time_s']:>9.1f}"
            f"{p['val_accuracy']:>11.4f}{h['val_accuracy']:>13.4f}  {h['training_path']} ({h['cache']} / {w['cache']})"
        )
    print(
        f"peak RSS: plain {plain['peak_rss_mib']:.0f} MiB, harness {cold['peak_rss_mib']:.0f} MiB (cold), "
        f"{warm['peak_rss_mib']:.0f} MiB (warm)"
    )
    print(
        f"process wall time: plain {plain['process_s']:.0f} s, harness {cold['process_s']:.0f} s (cold), "
        f"{warm['process_s']:.0f} s (warm)"
    )
    if xla is not None:
        for w, x in zip(warm["phases"], xla["phases"], strict=False):
            print(
                f"XLA (jit_compile=True) on the warm cache, {w['name']}: {x['wall_time_s']:.1f} s against "
                f"{w['wall_time_s']:.1f} s without ({w['wall_time_s'] / x['wall_time_s']:.2f}x)"
            )
    print(
        f"feature_extraction_speedup={ratios.get('feature_extraction', float('nan')):.1f} "
        f"fine_tune_speedup={ratios.get('fine_tune', float('nan')):.1f}"
    )


if __name__ == "__main__":
    main()
