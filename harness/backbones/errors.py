"""Errors raised while building backbones and loading their pretrained weights."""

from __future__ import annotations


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights cannot be obtained here (a package is missing, no network, ...).

    The message says where the weights would come from and how to make them available.
    """


class WeightsMismatchError(ValueError):
    """A weights file does not fit the architecture: names or shapes differ.

    The message lists what was left over or missing and the shapes obtained and expected.
    """
