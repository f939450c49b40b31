"""What the loaded data must satisfy before the first phase trains.

The spec's own checks (`harness.spec`) run at collection and cannot see the data; these run
once it is loaded (`check_data`, called by the engine right after `loading.load`): the splits
are held out from one another (no example in two splits, by content checksum), the
expectations can be met (a test split for a test-accuracy floor, the slice a slice floor names),
and `class_weight` names classes that exist.
"""

from __future__ import annotations

from harness import spec
from harness.data.loading import DataError, LoadedData, describe

# How many shared examples a message shows.
_SHOWN = 3


def check_data(experiment: spec.Experiment, data: LoadedData) -> None:
    """Raises `DataError` if `data` cannot serve `experiment` as declared."""
    where = describe(data.dataset)
    if not data.has("test") and experiment.needs_test_split:
        raise DataError(
            f"{where} has no test split, but an expectation of {experiment.name!r} reads test accuracy "
            "(min_test_accuracy or beats). Add a test split (a 'test' key for arrays(...)) or drop the expectation."
        )
    _check_slice_floors(experiment, data, where)
    for phase in experiment.phases:
        unknown = [label for label in phase.class_weight_labels if label >= data.num_classes]
        if unknown:
            declared = dict(phase.class_weight) if isinstance(phase.class_weight, tuple) else phase.class_weight
            raise DataError(
                f"`{phase.name}.class_weight` must name classes of {where} (0 to {data.num_classes - 1}). "
                f"Received: class_weight={declared!r}"
            )
    _check_held_out(data, where)


def _check_slice_floors(experiment: spec.Experiment, data: LoadedData, where: str) -> None:
    """A slice floor names a value that examples of its split have (a typo would fail only after training)."""
    for e in experiment.expect:
        if not isinstance(e, spec.MinAccuracy) or e.slice is None or e.split not in data.slices:
            continue
        found = sorted(set(data.slices[e.split]))
        if e.slice not in found:
            name = "min_val_accuracy" if e.split == "validation" else "min_test_accuracy"
            raise DataError(
                f"`{name}.slice` must name a {data.slice_feature} value of the {e.split} split of {where}: "
                f"found {', '.join(map(repr, found)) or 'none'}. Received: slice={e.slice!r}"
            )


def _check_held_out(data: LoadedData, where: str) -> None:
    digests = {name: [row.tobytes() for row in data.digests(name)] for name in spec.SPLITS if data.has(name)}
    names = list(digests)
    for i, first in enumerate(names):
        index = {digest: position for position, digest in reversed(list(enumerate(digests[first])))}
        for second in names[i + 1 :]:
            shared = [(index[d], j) for j, d in enumerate(digests[second]) if d in index]
            if shared:
                shown = ", ".join(f"{first} #{a} = {second} #{b}" for a, b in shared[:_SHOWN])
                more = f" and {len(shared) - _SHOWN} more" if len(shared) > _SHOWN else ""
                raise DataError(
                    f"The {first} and {second} splits of {where} share {len(shared)} example"
                    f"{'s' if len(shared) != 1 else ''} (identical {data.examples}): {shown}{more}. Held-out data must be "
                    f"held out: declare disjoint splits or remove the duplicates from the data."
                )
