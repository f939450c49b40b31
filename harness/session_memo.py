"""What one session keeps from one experiment to the next, so that a grid pays its fixed costs once.

- The data sets it loaded (`load`): decoded once, with their labels and image digests, for
  every experiment that declares the same data set (the spec's data set is the key: the same
  source, splits, keys and image size). The two most recent are kept.
- The cache entries whose cached path has been shown, this session, to give the real model's
  validation accuracy (`shown`, `record`): the engine scores validation end to end on raw images
  once per entry and session, and a later phase on the same entry takes the cached-path figure,
  which `cached_path_matches_end_to_end` has vouched for. The entry's key names everything the
  agreement depends on (the frozen weights, the cut, the data, the runtime, the dtype policy).

The pytest plugin keeps one per session (and per xdist worker); `harness.engine.run` without one
loads and checks everything afresh.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from harness import modalities, spec
from harness.data.loaded import LoadedData

KEPT_DATA_SETS = 2


@dataclass
class SessionMemo:
    _data: OrderedDict[tuple[spec.Dataset, Hashable], LoadedData] = field(default_factory=OrderedDict)
    _shown: dict[str, str] = field(default_factory=dict)

    def load(self, experiment: spec.Experiment, room: modalities.Room) -> LoadedData:
        """`room.load_data(experiment)`, once per session for each of the last `KEPT_DATA_SETS` data sets
        (with what else the data depends on: a text data set's tokenizer)."""
        key = (experiment.dataset, room.data_key(experiment))
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        loaded = self._data[key] = room.load_data(experiment)
        while len(self._data) > KEPT_DATA_SETS:
            self._data.popitem(last=False)
        return loaded

    def shown(self, entry: str | None) -> str | None:
        """The experiment whose phase showed, this session, that cache entry `entry`'s path agrees end to end."""
        return None if entry is None else self._shown.get(entry)

    def record(self, entry: str | None, experiment: str) -> None:
        """`experiment` showed that the cached path on `entry` gives the real model's validation accuracy."""
        if entry is not None:
            self._shown.setdefault(entry, experiment)
