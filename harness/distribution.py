"""Where and in what precision an experiment trains: `--strategy` and `--precision`.

`placed(precision, strategy)` is the scope an experiment is built, trained and scored in:

- **Precision.** Keras's dtype policy is set for the scope (`keras.config.set_dtype_policy`)
  and put back after it. "float32" is the default; "mixed" is `mixed_float16` where TensorFlow
  sees a GPU, `mixed_bfloat16` where the CPU has AMX (Sapphire Rapids and later), and float32
  elsewhere (bfloat16 without AMX is emulated, slower than float32), with the reason recorded;
  `mixed_float16` and `mixed_bfloat16` ask for one policy on any machine. Variables stay
  float32 under every policy, so frozen weights are compared bit for bit as before; Keras keeps
  BatchNormalization's statistics in float32, the head's softmax is float32
  (`harness.model`) and so is the loss. Under `mixed_float16`, `Model.compile` wraps the
  optimizer in a `LossScaleOptimizer`.
- **Strategy.** "default" is TensorFlow's own placement (the first GPU, else the CPU);
  "mirrored" is `tf.distribute.MirroredStrategy` over every GPU the process sees, or, without a
  GPU, over its logical CPU devices (`tf.config.set_logical_device_configuration`; one unless
  configured). The global batch is the phase's `batch_size`, split across the replicas.
  `MultiWorkerMirroredStrategy` does not work with Keras 3 (keras-team/keras#20585): across
  machines, shard the experiments (`--shard K/N`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.spec.vocabulary import PRECISIONS, STRATEGIES

CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Placement:
    """What an experiment runs under.

    Attributes:
        policy: The Keras dtype policy its layers compute in ("float32", "mixed_float16", ...).
        precision: `policy`, with the reason when `--precision mixed` fell back to float32.
        strategy: "default" or "mirrored".
        devices: The devices it trains on (the replicas under "mirrored").
    """

    policy: str
    precision: str
    strategy: str
    devices: tuple[str, ...]


def has_amx(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU has AMX's bfloat16 tiles (Linux's `amx_bf16` flag)."""
    try:
        return "amx_bf16" in cpuinfo.read_text().split()
    except OSError:
        return False


def policy_for(precision: str, *, gpu: bool, amx: bool) -> tuple[str, str | None]:
    """The dtype policy `precision` names on this machine, and why "mixed" fell back to float32 (else None)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}. Received: {precision!r}")
    if precision != "mixed":
        return precision, None
    if gpu:
        return "mixed_float16", None
    if amx:
        return "mixed_bfloat16", None
    return "float32", "--precision mixed: no GPU, and the CPU has no AMX for bfloat16"


@functools.cache
def _mirrored(devices: tuple[str, ...]) -> Any:
    """One MirroredStrategy per process and set of devices: a second one over the same devices
    can reuse its collective ops' keys, and the replicas' all-reduces then mix up their tensors."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(list(devices))


@contextlib.contextmanager
def placed(precision: str = "float32", strategy: str = "default") -> Iterator[Placement]:
    """The scope to build, train and score a model in, under `precision` and `strategy`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}. Received: {strategy!r}")
    import keras
    import tensorflow as tf

    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    policy, fallback = policy_for(precision, gpu=bool(gpus), amx=has_amx())
    if strategy == "mirrored":
        devices = gpus or [device.name for device in tf.config.list_logical_devices("CPU")]
        distribution = _mirrored(tuple(devices))
    else:
        devices = gpus[:1] or [tf.config.list_logical_devices("CPU")[0].name]
        distribution = tf.distribute.get_strategy()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        with distribution.scope():
            yield Placement(
                policy=policy,
                precision=policy if fallback is None else f"{policy} ({fallback})",
                strategy=strategy,
                devices=tuple(devices),
            )
    finally:
        keras.config.set_dtype_policy(previous)
