"""How pytest-xdist workers share one machine: each gets its share of the cores, and its own GPU.

Uncapped, every worker's TensorFlow sizes its intra- and inter-op pools, oneDNN's OpenMP pool
and LiteRT's XNNPACK pool to every core of the machine: N workers run N times as many threads
as there are cores, and a parallel run is often slower than a serial one. So each worker caps
them to `cores // workers` (at least 1) through the variables TensorFlow, OpenMP and the harness
read when they start, set in the worker before it imports TensorFlow. A variable the user set
is left as it is; `--threads-per-worker` sets the share, or `off` leaves every pool at its default.

GPUs: a worker sees one GPU, chosen by its index among those visible (a `CUDA_VISIBLE_DEVICES`
set from outside is respected: its entries are shared out). With more workers than GPUs, workers
share GPUs, with TensorFlow's memory growth on so that one does not take a whole GPU's memory.
Without xdist nothing changes: all visible GPUs, every core. No TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

# LiteRT's interpreter takes its thread count as an argument: the harness reads this variable.
LITERT_THREADS = "HARNESS_NUM_THREADS"
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", LITERT_THREADS)
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one entry per GPU the driver sees (Linux)


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads() -> int:
    """The threads a pool of this process should use: `LITERT_THREADS` when set, else every core."""
    value = os.environ.get(LITERT_THREADS, "")
    return int(value) if value.isdigit() and int(value) > 0 else cores()


def thread_share(setting: str, workers: int, available: int) -> int | None:
    """Each worker's threads: `setting` "auto" is `available // workers` (at least 1), a number is
    itself, "off" is None (no cap)."""
    if setting == "off":
        return None
    if setting == "auto":
        return max(1, available // max(1, workers))
    return int(setting)


def worker_gpu(index: int, visible: str | None, gpu_count: int) -> str | None:
    """The `CUDA_VISIBLE_DEVICES` of worker `index`: one entry of `visible` (set from outside) or
    one of the `gpu_count` GPUs, in turn; None when there is no GPU to give."""
    if visible is not None:
        entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
        return entries[index % len(entries)] if entries else None
    return str(index % gpu_count) if gpu_count > 0 else None


def gpu_count() -> int:
    """How many NVIDIA GPUs the driver sees, without TensorFlow (0 without the driver)."""
    try:
        return sum(1 for _ in NVIDIA_GPUS.iterdir())
    except OSError:
        return 0


def share(
    environ: MutableMapping[str, str], *, index: int, workers: int, setting: str, available: int, gpus: int
) -> dict[str, str]:
    """Sets worker `index`'s variables in `environ` (not those already set); returns what it set."""
    chosen: dict[str, str] = {}
    count = thread_share(setting, workers, available)
    if count is not None:
        chosen.update({name: str(count) for name in THREAD_VARIABLES})
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    gpu = worker_gpu(index, visible, gpus)
    if gpu is not None:
        environ["CUDA_VISIBLE_DEVICES"] = gpu  # narrows what was visible: always set
        given = len([e for e in visible.split(",") if e.strip()]) if visible is not None else gpus
        if workers > given:  # workers share GPUs
            chosen["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    applied = {name: value for name, value in chosen.items() if name not in environ}
    environ.update(applied)
    return {**applied, "CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else applied
