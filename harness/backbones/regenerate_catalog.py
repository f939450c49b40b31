"""Rebuilds the backbone catalog's `keras_applications.json` from the installed Keras (imports TensorFlow).

    python -m harness.backbones.regenerate_catalog [--only NAME ...]

builds every `keras.applications` model with `weights=None`, `include_top=False` at its default
size (a few minutes) and records its module, sizes and layer names. Regenerate it whenever the
supported Keras version changes; `--list` prints what the catalog holds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.backbones import catalog
from harness.paths import atomic_write_text


def regenerate(path: Path = catalog.KERAS_APPLICATIONS_JSON, *, only: Sequence[str] = ()) -> dict[str, Any]:
    """Rebuilds `keras_applications.json` from the installed Keras (imports TensorFlow).

    Args:
        path: Where to write the JSON. Defaults to the catalog's own file.
        only: Application names to rebuild; the other entries are kept from the existing file.
            Defaults to all of them.

    Returns:
        The data written.
    """
    import keras

    from harness.backbones import keras_apps

    names = list(only) or keras_apps.application_names()
    applications: dict[str, Any] = {}
    if only and Path(path).exists():
        applications = json.loads(Path(path).read_text(encoding="utf-8"))["applications"]
    for name in names:
        start = time.perf_counter()
        applications[name] = keras_apps.catalog_entry(name)
        keras.backend.clear_session()
        print(
            f"{name}: {len(applications[name]['layer_names'])} layers in {time.perf_counter() - start:.1f}s",
            file=sys.stderr,
        )
    data = {
        "generated_by": "python -m harness.backbones.regenerate_catalog",
        "keras_version": keras.__version__,
        "applications": dict(sorted(applications.items(), key=lambda item: item[0].lower())),
    }
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    os.chmod(path, 0o644)  # A package data file: readable by all, unlike the temporary file.
    catalog._keras_applications.cache_clear()
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m harness.backbones.regenerate_catalog [--only NAME ...] [--list]`."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.backbones.regenerate_catalog", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--only", nargs="+", default=(), metavar="NAME", help="Rebuild only these applications")
    parser.add_argument("--list", action="store_true", help="Print the catalog's backbones instead of rebuilding it")
    args = parser.parse_args(argv)
    if args.list:
        for name in catalog.backbone_names():
            info = catalog.describe(name)
            print(
                f"{name:20} {info.family:18} {info.default_size:4} {info.min_size:3} {len(info.layer_names):5} layers"
            )
        return 0
    regenerate(only=args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
