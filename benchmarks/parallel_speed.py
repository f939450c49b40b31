"""Benchmark: small experiments in parallel with pytest-xdist, against one process, with and without the thread cap.

Writes a spec file of `--experiments` small ELPV experiments (EfficientNet-Lite0 at
`--image-size`, feature extraction then fine-tuning from `block_15_`, a learning rate each) into
a temporary project and runs `pytest specs/` on it, each run its own process tree, on one warm
cache (a first, untimed run fills it: the ELPV data prepared, the features and activations cached,
the weights converted):

- serial: `-n 0`, one process, every core;
- capped: `-n 2`, each worker capped to its share of the cores (the default, `--threads-per-worker auto`);
- uncapped: `-n 2 --threads-per-worker off`, every worker's pools sized to every core (oversubscribed).

Each time is the whole `pytest` command's wall time, as a user waits for it (workers' start-up
and TensorFlow's import included); with `--rounds R` each variant runs R times, interleaved, and
the medians are compared. Prints a table and, last, `capped_speedup=X uncapped_speedup=Y
peak_rss_gib=Z` (serial time over parallel time; the largest process's peak resident memory).

    python benchmarks/parallel_speed.py
    python benchmarks/parallel_speed.py --rounds 3
    python benchmarks/parallel_speed.py --experiments 8 --workers 4
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SPEC = """
from harness import *

for rate in {rates}:
    experiment(
        name=f"elpv_small_lr{{rate:g}}",
        dataset=tfds_dataset("elpv", label_key="defective", image_size={size}, test_split="test"),
        backbone=efficientnet_lite0(weights="imagenet"),
        head=classifier_head(dropout_rate=0.2),
        phases=[
            feature_extraction(epochs={epochs}, learning_rate=rate),
            fine_tune(unfreeze_from="block_15_", epochs={epochs}, learning_rate=rate / 3),
        ],
        expect=[frozen_weights_unchanged(), trainable_weights_changed()],
    )
"""


def run(project: Path, cache: Path, *options: str) -> tuple[float, float]:
    """Runs `pytest specs/` in `project`; returns its wall time (s) and the peak RSS of its largest process (GiB)."""
    command = [sys.executable, "-m", "pytest", "specs", "-q", "-p", "no:cacheprovider", "--cache-dir", str(cache)]
    started = time.perf_counter()
    completed = subprocess.run([*command, *options], cwd=project, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"pytest {' '.join(options)} failed ({completed.returncode}):\n{completed.stdout[-3000:]}")
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each phase")
    parser.add_argument("--rounds", type=int, default=1, help="timed runs of each variant (the median is compared)")
    args = parser.parse_args()
    rates = [round(1e-3 * (1 + i), 6) for i in range(args.experiments)]
    with tempfile.TemporaryDirectory(prefix="harness-parallel-") as folder:
        project, cache = Path(folder) / "project", Path(folder) / "cache"
        (project / "specs").mkdir(parents=True)
        (project / "pytest.ini").write_text("[pytest]\n")
        spec = SPEC.format(rates=rates, size=args.image_size, epochs=args.epochs)
        (project / "specs" / "small.py").write_text(textwrap.dedent(spec))
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        run(project, cache, "-n", "0")  # fills the cache: every timed run then starts warm
        workers = str(args.workers)
        variants = {
            "serial (-n 0)": ("-n", "0"),
            f"capped (-n {workers})": ("-n", workers),
            f"uncapped (-n {workers} --threads-per-worker off)": ("-n", workers, "--threads-per-worker", "off"),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        peak = 0.0
        for _ in range(args.rounds):  # the variants interleaved, so that a slow spell of the machine hits each
            for name, options in variants.items():
                elapsed, peak = run(project, cache, *options)
                times[name].append(elapsed)
    print(f"{args.experiments} experiments, Lite0 at {args.image_size}x{args.image_size}, {os.cpu_count()} cores")
    print(f"{'run':<45} {'wall s (median; each round)':>40} {'vs serial':>10}")
    median = {name: statistics.median(values) for name, values in times.items()}
    serial, capped, uncapped = median.values()
    for name, values in times.items():
        shown = f"{median[name]:.1f} ({', '.join(f'{v:.1f}' for v in values)})"
        print(f"{name:<45} {shown:>40} {serial / median[name]:>9.2f}x")
    print(f"capped_speedup={serial / capped:.2f} uncapped_speedup={serial / uncapped:.2f} peak_rss_gib={peak:.2f}")


if __name__ == "__main__":
    main()
