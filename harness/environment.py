"""The environment a figure was measured in: package versions, CPU model and flags, device.

Recorded with every baseline and in every model card. Round-off differs across machines (the
same code and seed gave another test accuracy on another CPU), so the regression gate says when
a baseline was recorded in another environment. No TensorFlow import: the device is read from
TensorFlow only where a run has imported it already.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from importlib import metadata
from pathlib import Path

from harness import __version__

PACKAGES = ("tensorflow", "keras", "ai-edge-litert", "numpy")


def fingerprint() -> dict[str, str]:
    """Versions of the harness, Python and `PACKAGES`, the CPU model, a digest of its flags, the device."""
    model, flags = _cpu()
    return {
        "harness": __version__,
        "python": platform.python_version(),
        **{package: _version(package) for package in PACKAGES},
        "cpu": model,
        "cpu_flags": hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:12],
        "device": _device(),
    }


def differences(recorded: object, now: dict[str, str]) -> list[str]:
    """What differs between a recorded fingerprint and `now`, one "key: recorded, now" line each.

    Nothing for a baseline recorded before fingerprints were (no mapping)."""
    if not isinstance(recorded, dict):
        return []
    return [
        f"{key}: {recorded[key]!r} recorded, {now.get(key)!r} now"
        for key in sorted(recorded)
        if key in now and recorded[key] != now[key]
    ]


def _cpu() -> tuple[str, list[str]]:
    """The CPU's model name and feature flags (Linux's /proc/cpuinfo; `platform` elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), []
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    model = fields.get("model name") or fields.get("Hardware") or platform.machine()
    return model, (fields.get("flags") or fields.get("Features") or "").split()


def _device() -> str:
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is None:
        return "unknown (TensorFlow not loaded)"
    gpus = tensorflow.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU" if gpus else "CPU"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
