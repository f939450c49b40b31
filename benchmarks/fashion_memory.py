"""Benchmark: peak memory of a large data set through the harness, Fashion-MNIST at full size.

Runs Fashion-MNIST through `keras_dataset` with an ImageNet EfficientNet-Lite0 (feature
extraction for 5 epochs at 1e-3, then fine-tuning from `block_11_` for 3 epochs at 3e-4, BatchNorm
frozen) through `harness.engine` on every one of the 60,000 training images (48,000 train, 12,000
validation) and the 10,000 test images, in a fresh process with an empty harness cache, and
prints its accuracies, wall time and peak resident memory: the kernel's peak (`ru_maxrss`, which
counts the pages of the memory-mapped cache entries that are resident too) and, sampled every
0.2 s, the peaks of anonymous memory and of file-backed pages apart.

    python benchmarks/fashion_memory.py                     # 96x96, all 60,000 training images
    python benchmarks/fashion_memory.py --image-size 224
    python benchmarks/fashion_memory.py --train-size 6000   # a stratified subset

Prints, last, `peak_rss_gib=X`.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class RssSampler(threading.Thread):
    """The peaks of this process's anonymous and file-backed resident memory (`/proc/self/status`), in GiB."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks = {"RssAnon": 0.0, "RssFile": 0.0}

    def run(self) -> None:
        while True:
            with open("/proc/self/status") as status:
                for line in status:
                    name, _, value = line.partition(":")
                    if name in self.peaks:
                        self.peaks[name] = max(self.peaks[name], int(value.split()[0]) / 1024**2)
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--train-size", type=int, default=None, help="training images used (default: all 60,000)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="harness-cache-") as cache_dir:
        os.environ["HARNESS_CACHE_DIR"] = cache_dir
        import harness
        from harness import engine, spec
        from harness.cache import FeatureCache

        with spec.collecting():  # declared here, not collected from a spec file
            experiment = harness.experiment(
                name="fashion_mnist_lite0",
                dataset=harness.keras_dataset(
                    "fashion_mnist", image_size=args.image_size, train_size=args.train_size, validation_split=0.2
                ),
                backbone=harness.efficientnet_lite0(weights="imagenet"),
                head=harness.classifier_head(dropout_rate=0.2),
                phases=[
                    harness.feature_extraction(epochs=5, learning_rate=1e-3),
                    harness.fine_tune(unfreeze_from="block_11_", epochs=3, learning_rate=3e-4),
                ],
            )
        sampler = RssSampler()
        sampler.start()
        started = time.perf_counter()
        run = engine.run(experiment, engine.RunOptions(cache=FeatureCache.default(), progress=print))
        wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    final = run.result.final
    print(
        f"\n{run.result.split_sizes} at {args.image_size}x{args.image_size}: val {final.val_accuracy:.4f} "
        f"test {final.test_accuracy:.4f}, "
        + ", ".join(f"{p.name} {p.wall_time_s:.0f} s on {p.training_path}" for p in run.result.phases)
        + f", {wall:.0f} s in all"
    )
    print(f"peak anonymous {sampler.peaks['RssAnon']:.2f} GiB, peak file-backed {sampler.peaks['RssFile']:.2f} GiB")
    print(f"peak_rss_gib={peak:.2f}")


if __name__ == "__main__":
    main()
