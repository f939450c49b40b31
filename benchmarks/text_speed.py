"""Benchmark: the BBC News MiniLM experiment, the plain keras-hub recipe against the harness.

Runs, each in its own process (so peak memory is per variant):

- plain: the plain keras-hub recipe. A `TextClassifier` from the preset (for MiniLM, keras-hub's
  `BertTextClassifier`) with its preprocessor, trained on the raw texts with `fit`: the encoder
  frozen (`backbone.trainable = False`) and run over every text in every epoch, each batch
  tokenised and padded to `sequence_length`; then the experiment's top blocks unfrozen, the
  model recompiled at the fine-tuning rate and fit again.
- harness: the same experiment (phases, epochs, batch size, optimizer, data, splits) through
  `harness.engine` from an empty cache: the head trains on cached pooled features, the top
  blocks on cached hidden states of the real tokens, each batch padded to its own longest text.
  Its times include what the plain recipe does not do: the end-to-end validation check on the
  real model and the test score.
- harness-warm: the harness again on the now warm cache (the frozen passes are skipped).

Both read the same texts and splits (the harness's reading of the data set). Prints a table,
peak memory, and last `text_feature_extraction_speedup=X text_fine_tune_speedup=Y cache=cold`
and the same with `cache=warm`.

    python benchmarks/text_speed.py                    # the shipped spec's experiment (specs/text.py)
    python benchmarks/text_speed.py --short 5000       # 5,000 BBC sentences instead (short texts)
    python benchmarks/text_speed.py --memory 40000     # 40,000 sentences through the harness alone: peak RSS

A sentence of a BBC article is labelled with the article's topic; `--short` and `--memory` take
the first N sentences of 8 words or more, split train/validation/test as the articles are.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC, EXPERIMENT = ROOT / "specs" / "text.py", "bbc_news_minilm"


def load_experiment(short: int | None):
    from harness import spec

    with spec.collecting() as found:
        module_spec = importlib.util.spec_from_file_location("text_spec", SPEC)
        module_spec.loader.exec_module(importlib.util.module_from_spec(module_spec))
    experiment = next(e for e in found if e.name == EXPERIMENT)
    # The same epochs on both sides: early stopping is the spec's choice, not the recipe's.
    phases = tuple(dataclasses.replace(p, callbacks=()) for p in experiment.phases)
    experiment = dataclasses.replace(experiment, phases=phases, expect=())
    if short is not None:
        dataset = spec.arrays(
            lambda: sentences(short), sequence_length=experiment.input_size, cache_key=f"bbc-sentences-{short}"
        )
        experiment = dataclasses.replace(experiment, dataset=dataset)
    return experiment


def sentences(count: int) -> dict:
    """The first `count` sentences (8 words or more) of the BBC articles, each with its article's topic,
    train/validation/test as the articles' (the validation articles: the last fifth of the shuffled train)."""
    import numpy as np

    from harness.data.datasets import bbc_news

    parts = bbc_news.split(bbc_news.articles(bbc_news.package_folder()))
    order = np.random.default_rng(0).permutation(len(parts["train"]))
    held_out = len(order) // 5
    by_split = {
        "train": [parts["train"][i] for i in order[held_out:]],
        "validation": [parts["train"][i] for i in order[:held_out]],
        "test": parts["test"],
    }
    found: dict[str, tuple[list[str], list[int]]] = {split: ([], []) for split in by_split}
    seen: set[str] = set()
    total = {split: len(articles) for split, articles in by_split.items()}
    share = {split: round(count * n / sum(total.values())) for split, n in total.items()}
    for split, articles in by_split.items():
        for _, topic, text in articles:
            for sentence in re.split(r"(?<=[.!?])\s+", text.replace("\n", " ")):
                if len(sentence.split()) >= 8 and sentence not in seen and len(found[split][0]) < share[split]:
                    seen.add(sentence)  # a sentence in two splits would be refused, rightly
                    found[split][0].append(sentence)
                    found[split][1].append(topic)
    return {split: (texts, np.asarray(labels)) for split, (texts, labels) in found.items()}


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_plain(experiment) -> dict:
    """The plain keras-hub recipe, phase by phase, on the harness's texts and splits."""
    import keras
    import keras_hub

    from harness import freezing, modalities
    from harness.backbones import keras_hub_text

    keras.utils.set_random_seed(experiment.seed)
    data = modalities.room(experiment.modality).load_data(experiment)
    preset = experiment.backbone.preset
    preprocessor = keras_hub_text.load_preprocessor(preset, experiment.input_size)
    classifier = keras_hub.models.TextClassifier.from_preset(
        preset.folder or preset.preset,
        num_classes=data.num_classes,
        preprocessor=preprocessor,
        activation="softmax",
        dropout=experiment.head.dropout_rate,
    )
    backbone = classifier.backbone
    backbone.trainable = False
    train = (data.texts["train"], data.labels("train"))
    validation = (data.texts["validation"], data.labels("validation"))
    phases = []
    for phase in experiment.phases:
        if phase.kind == "fine_tune":  # the plain recipe: the top blocks trainable, the rest frozen
            backbone.trainable = True
            layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
            infos = [freezing.LayerInfo(layer.name) for layer in layers]
            first = freezing.start_index(infos, phase.rule)
            for index, layer in enumerate(layers):
                layer.trainable = index >= first
        classifier.compile(
            optimizer=keras.optimizers.Adam(phase.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
        )
        started = time.perf_counter()
        history = classifier.fit(
            x=train[0],
            y=train[1],
            validation_data=validation,
            batch_size=phase.batch_size,
            epochs=phase.epochs,
            verbose=0,
        )
        phases.append(
            {
                "name": phase.name,
                "wall_time_s": time.perf_counter() - started,
                "val_accuracy": float(history.history["val_accuracy"][-1]),
            }
        )
    return {"phases": phases, "peak_rss_mib": peak_rss_mib()}


def run_harness(experiment) -> dict:
    from harness import engine
    from harness.cache import FeatureCache

    sys.path.insert(0, str(Path(__file__).parent))
    from fashion_memory import RssSampler

    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    result = engine.run(experiment, engine.RunOptions(cache=FeatureCache.default())).result
    phases = [
        {
            "name": p.name,
            "wall_time_s": p.wall_time_s,
            "val_accuracy": p.val_accuracy,
            "training_path": p.training_path,
            "cache": p.cache,
        }
        for p in result.phases
    ]
    return {
        "phases": phases,
        "peak_rss_mib": peak_rss_mib(),
        "anon_gib": sampler.peaks["RssAnon"],
        "file_gib": sampler.peaks["RssFile"],
        "wall_time_s": time.perf_counter() - started,
        "sizes": result.split_sizes,
        "test_accuracy": result.final.test_accuracy,
    }


def child(variant: str, short: int | None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    experiment = load_experiment(short)
    outcome = run_plain(experiment) if variant == "plain" else run_harness(experiment)
    print("RESULT " + json.dumps(outcome))


def spawn(variant: str, short: int | None, cache_dir: str) -> dict:
    command = [sys.executable, __file__, "--child", variant]
    if short is not None:
        command += ["--short", str(short)]
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
    parser.add_argument(
        "--short", type=int, default=None, help="Run on this many BBC sentences instead of the articles"
    )
    parser.add_argument("--memory", type=int, default=None, help="The harness alone on this many sentences: peak RSS")
    parser.add_argument("--child", choices=["plain", "harness"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.short)
        return
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as cache_dir:
        if args.memory is not None:
            found = spawn("harness", args.memory, cache_dir)
            print(
                f"{sum(found['sizes'].values()):,} texts {found['sizes']}: {found['wall_time_s']:.0f} s, test accuracy "
                f"{found['test_accuracy']:.4f}; peak RSS {found['peak_rss_mib'] / 1024:.2f} GiB (anonymous "
                f"{found['anon_gib']:.2f} GiB, file-backed {found['file_gib']:.2f} GiB)"
            )
            print(f"peak_rss_gib={found['peak_rss_mib'] / 1024:.2f}")
            return
        plain, cold, warm = (spawn(variant, args.short, cache_dir) for variant in ("plain", "harness", "harness"))
    print()
    print(
        f"{'phase':<20}{'plain s':>10}{'cold s':>9}{'ratio':>8}{'warm s':>9}{'ratio':>8}{'plain acc':>11}{'harness acc':>13}  path"
    )
    ratios: dict[str, dict[str, float]] = {"cold": {}, "warm": {}}
    for p, c, w in zip(plain["phases"], cold["phases"], warm["phases"], strict=True):
        ratios["cold"][p["name"]] = p["wall_time_s"] / c["wall_time_s"]
        ratios["warm"][p["name"]] = p["wall_time_s"] / w["wall_time_s"]
        print(
            f"{p['name']:<20}{p['wall_time_s']:>10.1f}{c['wall_time_s']:>9.1f}{ratios['cold'][p['name']]:>7.1f}x"
            f"{w['wall_time_s']:>9.1f}{ratios['warm'][p['name']]:>7.1f}x{p['val_accuracy']:>11.4f}{c['val_accuracy']:>13.4f}"
            f"  {c['training_path']} ({c['cache']} / {w['cache']})"
        )
    print(
        f"peak RSS: plain {plain['peak_rss_mib']:.0f} MiB, harness {cold['peak_rss_mib']:.0f} MiB (cold), "
        f"{warm['peak_rss_mib']:.0f} MiB (warm); process wall time: plain {plain['process_s']:.0f} s, "
        f"harness {cold['process_s']:.0f} s (cold), {warm['process_s']:.0f} s (warm)"
    )
    for state in ("cold", "warm"):
        found = ratios[state]
        print(
            f"text_feature_extraction_speedup={found.get('feature_extraction', float('nan')):.1f} "
            f"text_fine_tune_speedup={found.get('fine_tune', float('nan')):.1f} cache={state}"
        )


if __name__ == "__main__":
    main()
