"""Text of tiny spec files for the plugin tests: a 16x16 custom backbone and in-memory arrays.

The backbones and data are `tiny_models`'s, copied into each spec file as source.

Every test that trains writes one of these into a `pytester` folder named `specs`
(`pytester.makepyfile(**{"specs/tiny": spec_file(...)})`) and runs it in-process. The
backbone has a few hundred parameters and the data ~100 images, so a phase takes about a
second on two CPU cores.

Parameter counts (two classes, `dropout_rate=0.0`):

- head (Dense 4 -> 2): 10 trainable (`HEAD_PARAMS`);
- `block_2_conv` (3x3, 4 -> 4 channels): 148 (`BLOCK_2_CONV_PARAMS`), unfrozen by
  `fine_tune(unfreeze_from="block_2_")` (`block_2_bn` stays frozen).
"""

from __future__ import annotations

import textwrap

import tiny_models

HEAD_PARAMS = 4 * 2 + 2
BLOCK_2_CONV_PARAMS = 3 * 3 * 4 * 4 + 4

FEATURE_EXTRACTION = "feature_extraction(epochs=3, learning_rate=5e-2, batch_size=16)"
FINE_TUNE = 'fine_tune(unfreeze_from="block_2_", epochs=1, learning_rate=1e-3, batch_size=16)'

# A spec file's imports, then `make_data`, `noise_data`, `tiny_backbone` and `counting_backbone`
# (their source lives in `tiny_models`, which tests that call the engine import).
PREAMBLE = "import numpy as np\n\nfrom harness import *\n\n\n" + tiny_models.source()


def experiment_text(
    name: str = "tiny",
    *,
    data: str = "make_data",
    backbone: str = "tiny_backbone",
    phases: str = FEATURE_EXTRACTION,
    expect: str = "min_val_accuracy(0.9)",
    extra: str = "",
) -> str:
    """One `experiment(...)` call over the tiny data and backbone (arguments are spec source)."""
    return (
        f"experiment(\n"
        f"    name={name!r},\n"
        f"    dataset=arrays({data}, image_size=16),\n"
        f"    backbone=custom_backbone({backbone.removesuffix('_backbone')!r}, {backbone}),\n"
        f"    head=classifier_head(dropout_rate=0.0),\n"
        f"    phases=[{phases}],\n"
        f"    expect=[{expect}],\n"
        f"{textwrap.indent(extra, '    ')}"
        f")\n"
    )


def spec_file(*experiments: str) -> str:
    """A whole spec file: the preamble, then `experiments` (spec source) one after another."""
    return PREAMBLE + "\n\n" + "\n\n".join(experiments)


def line_of(text: str, needle: str) -> int:
    """The 1-based number of the first line of `text` that holds `needle`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)
