"""Shared cache entries are computed once: two processes that need one entry (harness.locks). No TensorFlow."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

from harness import locks
from harness.cache import FeatureCache

KEY = "0123456789abcdef0123456789abcdef"


def _read_or_compute(root: str, log: str, start: float) -> None:
    """What `CachedInputs.get` does: under the entry's lock, read it, and on a miss compute and store it."""
    while time.time() < start:  # both processes reach the lock at about the same moment
        time.sleep(0.001)
    cache = FeatureCache(Path(root))
    with cache.lock(KEY) as locked:
        arrays = cache.get(KEY)
        state = "hit"
        if arrays is None:
            state = "miss"
            time.sleep(0.5)  # a frozen pass takes a while: the other process must wait, not compute too
            arrays = {"train": np.arange(6, dtype=np.float32)}
            assert cache.put(KEY, arrays, metadata={}) is None
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()} {state} {locked} {arrays['train'].sum():g}\n")


def test_two_processes_compute_one_entry_once(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    start = time.time() + 1.0
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_read_or_compute, args=(str(tmp_path / "cache"), str(log), start)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    lines = sorted(line.split()[1:] for line in log.read_text().splitlines())
    assert lines == [["hit", "True", "15"], ["miss", "True", "15"]]  # one computed it, the other read it


def test_a_lock_is_released_when_its_holder_dies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))  # the spawned holder inherits it
    target = tmp_path / "entry.npz"
    context = multiprocessing.get_context("spawn")
    holder = context.Process(target=_hold_and_die, args=(str(target),))
    holder.start()
    holder.join(timeout=60)
    assert holder.exitcode == 9
    started = time.monotonic()
    with locks.held(target) as locked:
        assert locked
    assert time.monotonic() - started < 5


def _hold_and_die(path: str) -> None:
    with locks.held(path):
        os._exit(9)  # no release, no clean-up: as kill -9 would


def test_where_no_lock_can_be_made_it_goes_on_unlocked(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")  # its "folder" cannot hold a lock file, whoever runs this
    with locks.held(tmp_path / "entry.npz", folder=tmp_path / "a-file") as locked:
        assert not locked


def test_locks_live_in_the_caches_locks_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    with locks.held("tfds-/data/elpv/1.0.0") as locked:
        assert locked
    (lock,) = (tmp_path / locks.LOCKS_DIR).iterdir()
    assert lock.name.startswith("1.0.0-") and lock.suffix == ".lock"
    cache = FeatureCache(tmp_path / "features")
    with cache.lock(KEY):
        pass
    assert not (tmp_path / "features").exists()  # nothing beside the entries
    assert len(list((tmp_path / locks.LOCKS_DIR).iterdir())) == 2
