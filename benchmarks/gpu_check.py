"""GPU check: one small experiment on the CPU and the GPU, float32 and mixed, single and mirrored.

Run it on a machine with a GPU (the project never needs one). It writes a spec file of one small
experiment (EfficientNet-Lite0 at `--image-size`, feature extraction then fine-tuning from
`block_11_`) into a temporary project, prepares its data and weights once (untimed), then runs
`pytest specs/` once per variant, each in its own process, each with its feature cache cleared so
that every variant computes its own frozen pass:

- cpu: `CUDA_VISIBLE_DEVICES=""`, float32 (the frozen pass on LiteRT);
- gpu: float32, `--precision mixed` (mixed_float16), `--strategy mirrored` (every visible
  GPU), and both.

Each variant's time is the experiment's own wall time from `--metrics-json` (training, the
frozen pass and the evaluations; not TensorFlow's import). A variant "held" when every check
of the experiment passed (frozen weights bit for bit, trainable weights changed, the cached path
matching end to end, the accuracy floor), its trainable counts are the CPU float32 run's, and
its metrics name the precision and devices it asked for. Prints a table, then `gpu_speedup=X
mixed_speedup=Y mirrored_speedup=Z invariants_held=true|false` (the CPU time over each GPU
variant's). Without a GPU, only the CPU variants run (float32, and mirrored over the one CPU
device) and the line says `gpu=none`.

    python benchmarks/gpu_check.py                  # ELPV through TFDS, Lite0's ImageNet weights
    python benchmarks/gpu_check.py --synthetic      # random images instead of ELPV: no data set needed
    python benchmarks/gpu_check.py --image-size 224 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ELPV = 'tfds_dataset("elpv", label_key="defective", image_size={size}, test_split="test")'
SYNTHETIC = 'arrays(make_data, image_size={size}, cache_key="gpu-check-{size}")'
SYNTHETIC_DATA = """
import numpy as np


def make_data():
    rng = np.random.default_rng(0)

    def split(n):
        labels = rng.integers(0, 2, n)
        images = rng.uniform(0, 128, (n, {size}, {size}, 3)).astype("float32")
        images[labels == 1] += 127.0
        return images, labels

    return {{"train": split(512), "validation": split(128), "test": split(128)}}
"""
SPEC = """
from harness import *
{data_source}

experiment(
    name="gpu_check",
    dataset={dataset},
    backbone=efficientnet_lite0(weights="imagenet"),
    head=classifier_head(dropout_rate=0.0),
    phases=[
        feature_extraction(epochs={epochs}, learning_rate=1e-3),
        fine_tune(unfreeze_from="block_11_", epochs={epochs}, learning_rate=1e-4),
    ],
    expect=[frozen_weights_unchanged(), trainable_weights_changed(), min_val_accuracy({floor})],
)
"""


def gpus() -> int:
    """The GPUs TensorFlow sees, asked in a child process (this one stays free of TensorFlow)."""
    code = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return int(completed.stdout.strip().splitlines()[-1]) if completed.returncode == 0 else 0


def run(project: Path, cache: Path, env: dict[str, str], *options: str) -> dict:
    """`pytest specs/` in `project`; returns the experiment's metrics (exits on a failed run)."""
    metrics = project / "metrics.json"
    command = [sys.executable, "-m", "pytest", "specs", "-q", "-p", "no:cacheprovider", "--cache-dir", str(cache)]
    command += ["--metrics-json", str(metrics), "--clear-harness-cache", *options]
    completed = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env)
    if completed.returncode not in (0, 1):  # 1: a check failed, reported as not held
        sys.exit(f"pytest {' '.join(options)} failed ({completed.returncode}):\n{completed.stdout[-3000:]}")
    return json.loads(metrics.read_text())["experiments"]["gpu_check"]


def trainable(result: dict) -> list[int]:
    return [phase["trainable_params"] for phase in result["phases"]]


def held(result: dict, reference: dict, policy: str, devices: int) -> bool:
    """Every check passed, the trainable counts are the CPU float32 run's, and it ran as asked."""
    return (
        result["passed"]
        and trainable(result) == trainable(reference)
        and result["precision"].split()[0] == policy
        and len(result["devices"]) == devices
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each phase")
    parser.add_argument("--synthetic", action="store_true", help="random bright and dark images instead of ELPV")
    args = parser.parse_args()
    size = args.image_size
    if args.synthetic:
        data_source, dataset, floor = SYNTHETIC_DATA.format(size=size), SYNTHETIC, 0.9
    else:
        data_source, dataset, floor = "", ELPV, 0.7
    spec = SPEC.format(
        data_source=data_source,
        dataset=dataset.format(size=size),
        epochs=args.epochs,
        floor=floor,
    )
    base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cpu_only = {**base, "CUDA_VISIBLE_DEVICES": ""}
    count = gpus()
    with tempfile.TemporaryDirectory(prefix="harness-gpu-check-") as folder:
        project, cache = Path(folder) / "project", Path(folder) / "cache"
        (project / "specs").mkdir(parents=True)
        (project / "pytest.ini").write_text("[pytest]\n")
        (project / "specs" / "gpu_check.py").write_text(textwrap.dedent(spec))
        run(project, cache, cpu_only)  # untimed: prepares the data set and converts the weights
        variants: dict[str, tuple[dict[str, str], tuple[str, ...], str, int]] = {
            "cpu float32": (cpu_only, (), "float32", 1),
        }
        if count:
            variants.update(
                {
                    "gpu float32": (base, (), "float32", 1),
                    "gpu mixed": (base, ("--precision", "mixed"), "mixed_float16", 1),
                    "gpu float32 mirrored": (base, ("--strategy", "mirrored"), "float32", count),
                    "gpu mixed mirrored": (
                        base,
                        ("--precision", "mixed", "--strategy", "mirrored"),
                        "mixed_float16",
                        count,
                    ),
                }
            )
        else:  # what the check can still show here: the mirrored strategy over the one CPU device
            variants["cpu float32 mirrored"] = (cpu_only, ("--strategy", "mirrored"), "float32", 1)
        results = {name: run(project, cache, env, *options) for name, (env, options, _, _) in variants.items()}
    print(f"Lite0 at {size}x{size}, {args.epochs}+{args.epochs} epochs, {'synthetic' if args.synthetic else 'ELPV'}")
    print(f"{'variant':<22} {'precision':<16} {'devices':>7} {'wall s':>8} {'vs cpu':>7} {'val acc':>8}  held")
    cpu = results["cpu float32"]["wall_time_s"]
    all_held = True
    for name, result in results.items():
        _, _, policy, devices = variants[name]
        ok = held(result, results["cpu float32"], policy, devices)
        all_held &= ok
        print(
            f"{name:<22} {result['precision'].split()[0]:<16} {len(result['devices']):>7} "
            f"{result['wall_time_s']:>8.1f} {cpu / result['wall_time_s']:>6.2f}x {result['val_accuracy']:>8.3f}  "
            f"{'yes' if ok else 'NO: ' + '; '.join(c['name'] for c in result['checks'] if not c['passed'])}"
        )
    held_text = str(all_held).lower()
    if not count:
        print(f"gpu=none invariants_held={held_text}")
        return
    ratios = {
        key: cpu / results[name]["wall_time_s"]
        for key, name in (("gpu", "gpu float32"), ("mixed", "gpu mixed"), ("mirrored", "gpu float32 mirrored"))
    }
    print(
        f"gpu_speedup={ratios['gpu']:.2f} mixed_speedup={ratios['mixed']:.2f} "
        f"mirrored_speedup={ratios['mirrored']:.2f} invariants_held={held_text}"
    )


if __name__ == "__main__":
    main()
