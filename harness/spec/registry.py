"""Which experiments a spec file declares, and where: the registry and the caller-frame helpers.

`collecting()` captures every `experiment(...)` built inside it (the collector wraps a spec
file's import in it). The location helpers find the first frame outside the `harness` package:
the spec line that called a constructor, however deep inside the harness the call is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from harness.spec.validators import SourceLocation

# An `Experiment` (harness.spec.experiment imports this module, so the type is not named here).
T = TypeVar("T")

# The whole `harness` package (this file is harness/spec/registry.py), with the separator so
# that a sibling folder such as "harness_specs" is not taken for it.
_HARNESS_DIR = str(Path(__file__).resolve().parent.parent) + "/"

_registry: list[Any] | None = None


def _register(exp: T) -> T:
    if _registry is not None:
        _registry.append(exp)
    return exp


class collecting:
    """Context manager that captures every `experiment(...)` built inside it."""

    def __enter__(self) -> list[Any]:
        global _registry
        self._outer = _registry
        _registry = []
        return _registry

    def __exit__(self, *exc: Any) -> None:
        global _registry
        _registry = self._outer


def _in_harness(frame: FrameType) -> bool:
    filename = frame.f_code.co_filename
    return filename.startswith(_HARNESS_DIR) or str(Path(filename).resolve()).startswith(_HARNESS_DIR)


def _spec_frame(depth: int) -> FrameType | None:
    frame: FrameType | None = sys._getframe(depth)
    while frame is not None and _in_harness(frame):
        frame = frame.f_back
    return frame


def _caller_location() -> SourceLocation | None:
    frame = _spec_frame(2)
    return None if frame is None else SourceLocation(frame.f_code.co_filename, frame.f_lineno)


def _caller_dir(depth: int = 2) -> Path:
    frame = _spec_frame(depth)
    if frame is None or frame.f_code.co_filename.startswith("<"):
        return Path.cwd()
    return Path(frame.f_code.co_filename).resolve().parent
