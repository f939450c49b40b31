"""Profile: where a fine-tuning step on cached activations spends its time, per TensorFlow op type.

The harness fine-tunes the top of a backbone on the activations cached at the cut, so its epoch
is the training of the layers above the cut alone, and that is the bound on its speedup over the
plain recipe. This script builds EfficientNet-Lite0 at 224x224, trains the layers from the cut up
(BatchNorm frozen, as in the specs) plus a 2-class head on random activations of the cut's shape,
times a few epochs, then profiles one with TensorFlow's profiler and prints each op type's share
of the busy op time next to the share of multiply-accumulates of the layers it computes.

    python benchmarks/top_blocks_profile.py                   # cut at block_11_, batch 32
    python benchmarks/top_blocks_profile.py --cut block_13_   # another cut
    python benchmarks/top_blocks_profile.py --xla             # the same steps with jit_compile=True
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def forward_macs(layer) -> int:
    """Multiply-accumulates of `layer`'s forward pass for one image (convolutions and dense layers)."""
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        return 0
    per_position = 1
    for size in kernel.shape:
        per_position *= int(size)
    if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D"):
        height, width = layer.output.shape[1:3]
        return per_position * int(height) * int(width)
    return per_position


def op_type_times(trace_dir: str) -> collections.Counter:
    """Self time in microseconds per op type, from the profiler's trace in `trace_dir`."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    (xspace,) = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    data, _ = plugin.xspace_to_tools_data([xspace], "framework_op_stats", {})
    table = json.loads(data)[0]
    ids = [column["id"] for column in table["cols"]]
    times: collections.Counter = collections.Counter()
    for row in table["rows"]:
        values = dict(zip(ids, (cell.get("v") for cell in row["c"]), strict=False))
        if values["type"] != "IDLE":
            times[values["type"]] += values["total_self_time"]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cut", default="block_11_", help="First trainable layer's name prefix (default: block_11_)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="Training steps per epoch (default: 20)")
    parser.add_argument("--xla", action="store_true", help="Compile the training step with XLA")
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from harness import freezing, load_backbone

    base = load_backbone("efficientnet_lite0", weights=None, input_shape=(224, 224, 3))
    # The cut as a spec's `fine_tune(unfreeze_from=...)` places it (a bad prefix gets the spec's error).
    pairs = list(freezing.keras_layers(base))
    first = freezing.start_index([info for info, _ in pairs], freezing.UnfreezeFromPrefix(args.cut))
    upper = keras.Model(pairs[first][1].input, base.output)
    for layer in upper.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    inputs = keras.Input(tuple(upper.input.shape[1:]))
    features = keras.layers.GlobalAveragePooling2D()(upper(inputs, training=False))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(features))
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", jit_compile=args.xla)

    count = args.batch_size * args.steps
    rng = np.random.default_rng(0)
    x = rng.random((count, *upper.input.shape[1:]), dtype=np.float32)
    y = rng.integers(0, 2, count)

    def epoch() -> float:
        started = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
        return time.perf_counter() - started

    epoch()  # traces and compiles the step
    times = [epoch() for _ in range(3)]
    print(
        f"layers from {upper.layers[1].name!r} up, input {tuple(upper.input.shape[1:])}: "
        f"{args.steps} steps of batch {args.batch_size} in " + ", ".join(f"{t:.1f} s" for t in times)
    )

    macs = collections.Counter()
    for layer in upper.layers:
        macs[type(layer).__name__] += forward_macs(layer)
    total_macs = sum(macs.values())
    print(
        "forward multiply-accumulates per image: "
        + ", ".join(
            f"{kind} {value / 1e6:.1f}M ({100 * value / total_macs:.0f}%)"
            for kind, value in macs.most_common()
            if value
        )
    )

    with tempfile.TemporaryDirectory(prefix="top-blocks-profile-") as trace_dir:
        tf.profiler.experimental.start(trace_dir)
        epoch()
        tf.profiler.experimental.stop()
        ops = op_type_times(trace_dir)
    busy = sum(ops.values())
    print(f"busy op time of one profiled epoch, all threads: {busy / 1e6:.1f} s")
    for kind, value in ops.most_common(10):
        print(f"  {kind:<50}{value / 1e6:8.2f} s {100 * value / busy:6.1f}%")


if __name__ == "__main__":
    main()
