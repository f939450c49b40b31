"""The feature cache: content keys, atomic `.npz` entries, the size bound, `--cache-dir` and `--clear-harness-cache`.

The `FeatureCache` tests are unit tests on small arrays (no TensorFlow). The last two run a
tiny spec through pytest (`tiny_specs`) to see the options at work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from tiny_specs import experiment_text, spec_file

from harness import cache as cache_module
from harness.cache import CacheWarning, FeatureCache, make_key, weights_digest

ARRAYS = {"train": np.arange(24, dtype=np.float32).reshape(6, 4), "train_checksums": np.array([1.5, 2.5])}
METADATA = {"experiment": "tiny", "output": "features"}
# What the engine keys its entries on (see `harness.cached_inputs.CachedInputs._key`).
KEY_PARTS = {
    "backbone": "tiny",
    "weights": "0" * 64,
    "dataset": {"source": "arrays", "cache_key": "tiny-v1"},
    "splits": {"train": "train", "validation": "validation"},
    "image_size": (16, 16),
    "output": "features",
    "pooled": "GlobalAveragePooling2D",
    "training": False,
}


def entry(n_bytes: int, fill: int = 0) -> dict[str, np.ndarray]:
    return {"train": np.full(n_bytes, fill, dtype=np.uint8)}


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- keys


def test_key_is_stable() -> None:
    key = make_key(**KEY_PARTS)
    assert len(key) == 32 and int(key, 16) >= 0
    assert make_key(**dict(reversed(KEY_PARTS.items()))) == key  # the order of the parts does not matter
    assert make_key(**json.loads(json.dumps(KEY_PARTS))) == key  # nor tuples against the lists JSON reads back


@pytest.mark.parametrize(
    ("part", "value"),
    [
        ("backbone", "tiny2"),
        ("weights", "0" * 63 + "1"),
        ("dataset", {"source": "arrays", "cache_key": "tiny-v2"}),
        ("splits", {"train": "train[:50%]", "validation": "validation"}),
        ("image_size", (32, 32)),
        ("output", "activations@block_2_conv"),
        ("training", None),
    ],
)
def test_key_changes_with_every_part(part: str, value: object) -> None:
    assert make_key(**{**KEY_PARTS, part: value}) != make_key(**KEY_PARTS)


def test_key_changes_with_the_harness_version(monkeypatch: pytest.MonkeyPatch) -> None:
    key = make_key(**KEY_PARTS)
    monkeypatch.setattr(cache_module, "__version__", "99.0.0")
    assert make_key(**KEY_PARTS) != key


def test_weights_digest_sees_values_dtypes_shapes_and_order() -> None:
    a, b = np.arange(6, dtype=np.float32), np.ones(3, dtype=np.float32)
    digest = weights_digest([a, b])
    assert weights_digest([a.copy(), b.copy()]) == digest
    a_changed = a.copy()
    a_changed[5] = np.nextafter(a_changed[5], np.float32(10))
    assert weights_digest([a_changed, b]) != digest
    assert weights_digest([a.astype(np.float64), b]) != digest
    assert weights_digest([a.reshape(2, 3), b]) != digest  # same bytes, another shape
    assert weights_digest([b, a]) != digest


# --------------------------------------------------------------------------- entries


def test_put_then_get_round_trips_the_arrays(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "features")
    cache.put("k", ARRAYS, metadata=METADATA)
    stored = cache.get("k")
    assert sorted(stored) == sorted(ARRAYS)
    for name, array in ARRAYS.items():
        assert stored[name].dtype == array.dtype
        np.testing.assert_array_equal(stored[name], array)
    assert files_in(tmp_path / "features") == ["k.json", "k.npz"]  # no temporary file left behind
    sidecar = json.loads((tmp_path / "features" / "k.json").read_text())
    digest = hashlib.sha256((tmp_path / "features" / "k.npz").read_bytes()).hexdigest()
    assert sidecar == {**METADATA, "bytes": 24 * 4 + 2 * 8, "sha256": digest}
    assert cache.get("other") is None


def test_a_hit_is_memory_mapped_read_only_and_outlives_its_file(tmp_path: Path) -> None:
    arrays = {**ARRAYS, "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "empty": np.zeros((0, 5))}
    cache = FeatureCache(tmp_path)
    cache.put("k", arrays, metadata=METADATA)
    stored = cache.get("k")
    for name, array in arrays.items():
        assert stored[name].shape == array.shape and stored[name].dtype == array.dtype
        np.testing.assert_array_equal(stored[name], array)
    assert isinstance(stored["train"], np.memmap) and isinstance(stored["fortran"], np.memmap)
    assert stored["fortran"].flags.f_contiguous
    with pytest.raises(ValueError, match="read-only"):
        stored["train"][0, 0] = 1
    cache.clear()  # evicted while in use: the mapping holds the file, not its name
    np.testing.assert_array_equal(stored["train"], ARRAYS["train"])


def test_a_compressed_entry_is_a_miss(tmp_path: Path) -> None:
    """Only an uncompressed archive (what `put` writes) can be mapped; another one, digest and all, is a miss."""
    cache = FeatureCache(tmp_path)
    cache.put("k", ARRAYS, metadata=METADATA)
    path = tmp_path / "k.npz"
    np.savez_compressed(path, **ARRAYS)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    sidecar["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.warns(CacheWarning, match=r"not a readable \.npz archive \(ValueError\)"):
        assert cache.read("k") == (None, "not a readable .npz archive (ValueError)")


def test_scratch_is_an_unnamed_file_in_the_cache_folder_or_memory(tmp_path: Path) -> None:
    scratch = FeatureCache(tmp_path / "features").scratch((1000, 3))
    assert isinstance(scratch, np.memmap) and scratch.shape == (1000, 3) and scratch.dtype == np.float32
    assert not scratch.any()
    scratch[:] = 2.5
    assert files_in(tmp_path / "features") == []  # nothing a crash could leave behind
    in_memory = FeatureCache(None).scratch((4, 2))
    assert not isinstance(in_memory, np.memmap) and in_memory.shape == (4, 2) and not in_memory.any()
    (tmp_path / "file").write_text("not a folder")
    assert not isinstance(FeatureCache(tmp_path / "file" / "features").scratch((4, 2)), np.memmap)


def test_a_cache_without_a_root_keeps_nothing() -> None:
    cache = FeatureCache(None)
    cache.put("k", ARRAYS, metadata=METADATA)
    assert cache.get("k") is None and cache.entries() == [] and cache.clear() == 0


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"not an npz file" * 10, id="garbage"),
        pytest.param(lambda data: data[:200] + bytes(64) + data[264:], id="bytes-zeroed"),
    ],
)
def test_a_damaged_entry_reads_as_a_miss(tmp_path: Path, damage) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("k", ARRAYS, metadata=METADATA)
    path = tmp_path / "k.npz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.warns(CacheWarning, match="digest mismatch"):
        assert cache.get("k") is None
    cache.put("k", ARRAYS, metadata=METADATA)  # the next put replaces it
    np.testing.assert_array_equal(cache.get("k")["train"], ARRAYS["train"])


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_an_interrupted_put_leaves_no_partial_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error) -> None:
    """Ctrl-C propagates; an OSError (a full disk, a vanished folder) is a warning and no entry."""
    cache = FeatureCache(tmp_path)
    cache.put("old", ARRAYS, metadata=METADATA)
    before = {name: (tmp_path / name).read_bytes() for name in files_in(tmp_path)}

    def savez_interrupted(file, *args, **kwargs):
        file.write(b"PK\x03\x04 the first bytes of an archive")
        raise error("interrupted while writing")

    monkeypatch.setattr(np, "savez", savez_interrupted)
    with contextlib.ExitStack() as expected:
        expected.enter_context(
            pytest.raises(error) if error is KeyboardInterrupt else pytest.warns(CacheWarning, match="interrupted")
        )
        cache.put("new", ARRAYS, metadata=METADATA)
    with pytest.raises(error) if error is KeyboardInterrupt else contextlib.nullcontext():
        cache.put("old", {"train": np.zeros(3)}, metadata=METADATA)  # rewriting an entry
    monkeypatch.undo()

    assert cache.get("new") is None
    assert {name: (tmp_path / name).read_bytes() for name in files_in(tmp_path)} == before
    np.testing.assert_array_equal(cache.get("old")["train"], ARRAYS["train"])


def test_size_bound_evicts_the_least_recently_used_entries(tmp_path: Path) -> None:
    probe = FeatureCache(tmp_path / "probe")
    probe.put("probe", entry(1000), metadata={})
    on_disk = (tmp_path / "probe" / "probe.npz").stat().st_size  # the arrays plus the npz headers
    # Room for two entries, not three.
    cache = FeatureCache(tmp_path / "features", max_bytes=1000 + on_disk + on_disk // 2)
    cache.put("a", entry(1000, 1), metadata={})
    cache.put("b", entry(1000, 2), metadata={})
    # Written one after the other, `a` then `b`; make the order unambiguous at any clock resolution.
    os.utime(tmp_path / "features" / "a.npz", ns=(1_000_000_000, 1_000_000_000))
    os.utime(tmp_path / "features" / "b.npz", ns=(2_000_000_000, 2_000_000_000))
    assert cache.get("a") is not None  # `a` is now the more recently used

    cache.put("c", entry(1000, 3), metadata={})
    assert files_in(tmp_path / "features") == ["a.json", "a.npz", "c.json", "c.npz"]
    assert cache.get("b") is None
    assert cache.get("a")["train"][0] == 1 and cache.get("c")["train"][0] == 3


@pytest.mark.parametrize(("slack", "kept"), [(0, ["a", "b"]), (-1, ["b"])], ids=["fits", "one-byte-over"])
def test_the_bound_counts_every_file_of_an_entry(tmp_path: Path, slack: int, kept: list[str]) -> None:
    """A stored entry counts as its two files; the new one as its arrays and sidecar (its npz headers
    are not known before it is written). At the exact sum both are kept; one byte less evicts `a`."""
    probe = FeatureCache(tmp_path / "probe")
    probe.put("a", entry(1000), metadata={})
    per_entry = sum(f.stat().st_size for f in (tmp_path / "probe").iterdir())
    npz_overhead = (tmp_path / "probe" / "a.npz").stat().st_size - 1000  # the npz headers: not known before writing
    cache = FeatureCache(tmp_path / "features", max_bytes=2 * per_entry - npz_overhead + slack)
    cache.put("a", entry(1000, 1), metadata={})
    os.utime(tmp_path / "features" / "a.npz", ns=(1_000_000_000, 1_000_000_000))
    cache.put("b", entry(1000, 2), metadata={})
    assert [name for name in "ab" if cache.get(name) is not None] == kept


def test_an_entry_larger_than_the_bound_is_not_stored(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, max_bytes=3000)
    cache.put("small", entry(1000), metadata={})
    cache.put("large", entry(3001), metadata={})
    assert cache.get("large") is None
    assert files_in(tmp_path) == ["small.json", "small.npz"]  # nothing was evicted for it either


def test_clear_removes_every_entry(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "features")
    assert cache.clear() == 0  # the folder does not exist yet
    cache.put("a", ARRAYS, metadata=METADATA)
    cache.put("b", ARRAYS, metadata=METADATA)
    assert cache.clear() == 2
    assert files_in(tmp_path / "features") == []
    assert cache.get("a") is None


# --------------------------------------------------------------------------- the options, through pytest

# Arrays are cached on disk only under a name (`arrays(..., cache_key=...)`).
CACHED_SPEC = spec_file(experiment_text("tiny", data="make_data, cache_key='tiny-v1'", expect=""))


def phase_cache(path: Path) -> str:
    (phase,) = json.loads(path.read_text())["experiments"]["tiny"]["phases"]
    assert phase["training_path"] == "features"
    return phase["cache"]


def test_cache_dir_receives_the_features_and_the_next_run_hits(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": CACHED_SPEC})
    first = spec_pytester.runpytest_inprocess("--cache-dir", "cache", "--metrics-json", "first.json")
    first.assert_outcomes(passed=1)
    features = spec_pytester.path / "cache" / "features"
    (npz,) = features.glob("*.npz")
    assert files_in(features) == sorted([npz.name, npz.with_suffix(".json").name])
    assert phase_cache(spec_pytester.path / "first.json") == "miss"
    assert not (spec_pytester.path.parent / "harness-cache").exists()  # not the default root

    second = spec_pytester.runpytest_inprocess("--cache-dir", "cache", "--metrics-json", "second.json")
    second.assert_outcomes(passed=1)
    assert phase_cache(spec_pytester.path / "second.json") == "hit"
    assert list(features.glob("*.npz")) == [npz]


def test_clear_harness_cache_empties_the_cache_before_the_run(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": CACHED_SPEC})
    features = spec_pytester.path / "cache" / "features"
    FeatureCache(features).put("stale", ARRAYS, metadata=METADATA)
    FeatureCache(features).put("older", ARRAYS, metadata=METADATA)

    result = spec_pytester.runpytest_inprocess(
        "--cache-dir", "cache", "--clear-harness-cache", "--metrics-json", "m.json"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["harness: removed 2 cached feature files and 0 stale temporary files"])
    assert phase_cache(spec_pytester.path / "m.json") == "miss"
    (written,) = features.glob("*.npz")  # only what this run wrote
    assert written.stem not in ("stale", "older")
