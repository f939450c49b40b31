"""The failures the harness reports in a few plain lines, and the translation of the errors an experiment meets.

`HarnessFailure` is what an experiment's test item raises for a failure it explains itself (its
`repr_failure` shows the message, no traceback). `reported` turns the errors of a spec that
cannot run, of data that cannot be loaded, of pretrained weights that cannot be obtained and
of weights files that cannot be loaded into what the item reports. No TensorFlow at import time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from harness import spec
from harness.backbones.errors import WeightsFileError, WeightsMismatchError, WeightsUnavailableError
from harness.data.errors import DataUnavailableError
from harness.export import ExportError


class HarnessFailure(Exception):
    """A failure the harness reports in plain lines, without a traceback."""


@contextlib.contextmanager
def reported(experiment: spec.Experiment) -> Iterator[None]:
    """Translates what running `experiment` raises into what its item reports.

    - `WeightsUnavailableError` (offline, a weights package missing) and
      `DataUnavailableError` (offline, a `keras_dataset`'s files missing): the experiment is
      skipped, with the reason;
    - `spec.SpecError` (found only when the spec runs, e.g. a custom backbone's freezing rule):
      a `HarnessFailure` naming the spec's line and "invalid spec";
    - `harness.data.loading.DataError`, `harness.export.ExportError` (a format that cannot be
      written or read back), `WeightsFileError` and `WeightsMismatchError` (a weights file that
      is truncated, unreadable or of another architecture): a `HarnessFailure` naming the
      spec's line.

    Anything else propagates unchanged.
    """
    # Imported here: `harness.data.loading` imports TensorFlow, loaded by then for the engine.
    from harness.data.loading import DataError

    try:
        yield
    except (WeightsUnavailableError, DataUnavailableError) as error:
        pytest.skip(f"{experiment.name}: {error}")
    except spec.SpecError as error:
        raise HarnessFailure(f"{experiment.location}: invalid spec: {error}") from None
    except (DataError, ExportError, WeightsFileError, WeightsMismatchError) as error:
        raise HarnessFailure(f"{experiment.location}: {error}") from None
