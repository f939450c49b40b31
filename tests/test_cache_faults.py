"""The harness cache is an optimisation, never a point of failure.

Faults a user's cache meets: a folder that cannot be written (read-only, another user's, a full
disk; simulated by monkeypatching, since the tests run as root and root ignores permission
bits), a file where the folder should be (fails even for root), damaged or mis-shaped entries,
temporaries left by a kill -9, and another process evicting entries while this one reads them.
Each is a miss or a skipped write with one `CacheWarning` per path and reason, never an error.

Pure Python (NumPy, no TensorFlow); the faults of the converted Lite0 weights and of whole
experiments are in `test_cache_faults_tf.py`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from harness import cache as cache_module
from harness import paths
from harness.cache import CacheWarning, FeatureCache

REPO_ROOT = Path(__file__).resolve().parents[1]
ARRAYS = {"train": np.arange(24, dtype=np.float32).reshape(6, 4), "train_checksums": np.array([1.5, 2.5])}
EXPECTED = {"train": ((6, 4), np.float32), "train_checksums": ((2,), np.float64)}


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees its own first warnings (`warn_cache` warns once per path and reason per process)."""
    monkeypatch.setattr(paths, "_warned", set())


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=timeout)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def cache_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, CacheWarning)]


def temporary_name(name: str, pid: int, suffix: str) -> str:
    return f".{name}{paths.TEMPORARY_MARK}{pid}-abc123{suffix}"


# --------------------------------------------------------------------------- temporaries


def test_temporary_names_carry_the_pid_and_keep_the_suffix(tmp_path: Path) -> None:
    with paths.atomic_path(tmp_path / "efficientnet_lite0_imagenet.weights.h5") as tmp:
        assert tmp.name.startswith(f".efficientnet_lite0_imagenet.harness-tmp-{os.getpid()}-")
        assert tmp.name.endswith(".weights.h5")  # Keras checks the suffix
        assert paths.temporary_pid(tmp) == os.getpid()
        tmp.write_text("weights")
    assert files_in(tmp_path) == ["efficientnet_lite0_imagenet.weights.h5"]
    assert paths.temporary_pid(tmp_path / "efficientnet_lite0_imagenet.weights.h5") is None
    assert paths.temporary_pid(".k-abc.tmp.npz") is None  # not ours: never removed


def test_pid_alive_reads_what_kill_answers(monkeypatch: pytest.MonkeyPatch, dead_pid: int) -> None:
    assert paths.pid_alive(os.getpid())
    assert not paths.pid_alive(dead_pid)

    def kill(pid: int, signal: int, error: type[OSError]) -> None:
        raise error("from the test")

    monkeypatch.setattr(os, "kill", lambda pid, signal: kill(pid, signal, PermissionError))
    assert paths.pid_alive(dead_pid)  # another user's process: alive
    monkeypatch.setattr(os, "kill", lambda pid, signal: kill(pid, signal, ProcessLookupError))
    assert not paths.pid_alive(12345)


def test_remove_stale_temporaries_removes_only_those_of_dead_writers(tmp_path: Path, dead_pid: int) -> None:
    stale = [temporary_name("k", dead_pid, ".npz"), temporary_name("baselines", dead_pid, ".json")]
    live = temporary_name("k", os.getpid(), ".npz")
    others = ["k.npz", "k.json", ".k-abc.tmp.npz", "notes.txt"]
    for name in [*stale, live, *others]:
        (tmp_path / name).write_text("x")
    (tmp_path / temporary_name("folder", dead_pid, "")).mkdir()  # not a file: left alone

    assert paths.remove_stale_temporaries(tmp_path) == 2
    assert files_in(tmp_path) == sorted([live, *others, temporary_name("folder", dead_pid, "")])
    assert paths.remove_stale_temporaries(tmp_path / "missing") == 0
    assert paths.remove_stale_temporaries(tmp_path / "notes.txt") == 0  # a file, not a folder


def test_a_killed_writer_leaves_a_temporary_that_the_cache_removes(tmp_path: Path) -> None:
    code = (
        "import os, signal, sys\n"
        "from harness.paths import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(bytes(10_000))\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    for name in ("a.npz", "b.npz"):
        killed = run_python(code, str(tmp_path / name))
        assert killed.returncode == -9, killed.stderr
    left = files_in(tmp_path)
    assert len(left) == 2 and all(paths.temporary_pid(name) for name in left) and all(n.endswith(".npz") for n in left)
    assert FeatureCache(tmp_path).entries() == []  # a temporary is no entry

    cache = FeatureCache(tmp_path)
    assert cache.get("k") is None  # opening the cache sweeps
    assert files_in(tmp_path) == []
    (tmp_path / left[0]).write_bytes(bytes(10))
    assert cache.put("k", ARRAYS, metadata={}) is None  # and so does every put
    assert files_in(tmp_path) == ["k.json", "k.npz"]


def test_the_size_bound_counts_the_temporaries_of_live_writers(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, max_bytes=4000)
    assert cache.put("a", {"train": np.zeros(1000, np.uint8)}, metadata={}) is None
    # Another writer, alive (this very process), is half-way through 2.5 kB.
    (tmp_path / temporary_name("b", os.getpid(), ".npz")).write_bytes(bytes(2500))
    assert cache.put("c", {"train": np.zeros(1000, np.uint8)}, metadata={}) is None
    assert [p.stem for p in cache.entries()] == ["c"]  # `a` made room: 2.5 kB + two entries > 4 kB
    assert temporary_name("b", os.getpid(), ".npz") in files_in(tmp_path)  # never evicted


def test_clear_harness_cache_removes_stale_temporaries_everywhere(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, dead_pid: int
) -> None:
    cache_root = pytester.path / "cache"
    monkeypatch.setenv(paths.ENV_CACHE_DIR, str(cache_root))  # `--cache-dir` sets it; this undoes it
    features, weights = cache_root / "features", cache_root / "weights"
    FeatureCache(features).put("entry", ARRAYS, metadata={})
    weights.mkdir()
    stale = [
        features / temporary_name("other", dead_pid, ".npz"),
        weights / temporary_name("efficientnet_lite0_imagenet", dead_pid, ".weights.h5"),
        cache_root / temporary_name("notes", dead_pid, ".json"),
    ]
    for path in stale:
        path.write_bytes(bytes(100))
    live = weights / temporary_name("efficientnet_lite0_imagenet", os.getpid(), ".weights.h5")
    live.write_bytes(bytes(100))

    result = pytester.runpytest_inprocess("--cache-dir", str(cache_root), "--clear-harness-cache", "--co")
    result.stdout.fnmatch_lines(["harness: removed 1 cached feature files and 3 stale temporary files"])
    assert files_in(features) == [] and files_in(weights) == [live.name]


# --------------------------------------------------------------------------- unwritable, full, in the way


def _permission_denied(*args: object, **kwargs: object) -> None:
    raise PermissionError(errno.EACCES, "Permission denied", str(args[0]) if args else None)


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("target", "replacement", "reason"),
    [
        pytest.param(os, ("replace", _permission_denied), "Permission denied", id="rename-refused"),
        pytest.param(tempfile, ("mkstemp", _permission_denied), "Permission denied", id="folder-read-only"),
        pytest.param(np, ("savez", _disk_full), "No space left on device", id="disk-full-while-writing"),
    ],
)
def test_an_unwritable_cache_warns_once_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: object, replacement: tuple, reason: str
) -> None:
    cache = FeatureCache(tmp_path / "features")
    monkeypatch.setattr(target, *replacement)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first = cache.put("a", ARRAYS, metadata={})
        second = cache.put("b", ARRAYS, metadata={})
    monkeypatch.undo()

    assert first is not None and reason in first and first == second
    (message,) = cache_warnings(record)  # one per path and reason
    assert str(tmp_path / "features") in message and reason in message and "kept in memory" in message
    assert files_in(tmp_path / "features") == []  # no temporary, no entry
    assert cache.get("a") is None


def test_a_sidecar_that_cannot_be_written_takes_its_entry_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FeatureCache(tmp_path)
    real_write_text = Path.write_text
    monkeypatch.setattr(
        Path,
        "write_text",
        lambda self, *a, **k: _disk_full() if self.suffix == ".json" else real_write_text(self, *a, **k),
    )
    with pytest.warns(CacheWarning, match="cannot write a sidecar"):
        assert cache.put("k", ARRAYS, metadata={}).startswith("not stored: cannot write a sidecar")
    assert files_in(tmp_path) == []


def test_a_full_disk_skips_the_write_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1024, 1024))
    monkeypatch.setattr(np, "savez", lambda *a, **k: pytest.fail("wrote on a full disk"))
    with pytest.warns(CacheWarning, match=r"not enough free space.*bytes needed with the reserve, 1024 free"):
        reason = cache.put("k", ARRAYS, metadata={})
    assert reason is not None and reason.startswith("not stored: not enough free space")
    assert files_in(tmp_path) == []


def test_a_file_where_the_cache_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("not a folder")
    cache = FeatureCache(tmp_path / "cache" / "features")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert cache.put("k", ARRAYS, metadata={}).startswith("not stored: cannot create the folder")
        assert cache.get("k") is None
        assert cache.read("k")[1].startswith("unreadable: NotADirectoryError")
    written, read = cache_warnings(record)  # the second read: the same path and reason
    assert written.startswith(f"harness cache {tmp_path / 'cache' / 'features'}: cannot create the folder")
    assert read.startswith(f"harness cache {tmp_path / 'cache' / 'features' / 'k.npz'}: unreadable")
    assert cache.entries() == [] and cache.clear() == 0


def test_a_folder_where_an_entry_file_should_be(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    (tmp_path / "k.npz").mkdir()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        read = cache.read("k")
        written = cache.put("k", ARRAYS, metadata={})
    assert read[0] is None and read[1].startswith("unreadable: IsADirectoryError")
    assert written.startswith("not stored: cannot write an entry")
    assert len(cache_warnings(record)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["k.npz"]  # no temporary left, the folder untouched
    assert cache.entries() == [] and cache.clear() == 0


def test_a_read_only_cache_still_hits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("k", ARRAYS, metadata={})
    monkeypatch.setattr(os, "utime", _permission_denied)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(cache.get("k", EXPECTED)["train"], ARRAYS["train"])


def test_an_entry_that_cannot_be_opened_is_a_miss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("k", ARRAYS, metadata={})
    real_open = open
    monkeypatch.setattr(
        "builtins.open",
        lambda file, mode="r", *a, **k: (
            _permission_denied(file) if str(file).endswith(".npz") else real_open(file, mode, *a, **k)
        ),
    )
    with pytest.warns(CacheWarning, match=r"k\.npz: unreadable: PermissionError \(Permission denied\)"):
        assert cache.read("k") == (None, "unreadable: PermissionError (Permission denied)")


def test_warnings_come_once_per_path_and_reason(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            paths.warn_cache(tmp_path, "reason one", "consequence", detail="varies 1")
            paths.warn_cache(tmp_path, "reason two", "consequence")
            paths.warn_cache(tmp_path / "other", "reason one", "consequence")
    assert cache_warnings(record) == [
        f"harness cache {tmp_path}: reason one (varies 1); consequence; the results are the same",
        f"harness cache {tmp_path}: reason two; consequence; the results are the same",
        f"harness cache {tmp_path / 'other'}: reason one; consequence; the results are the same",
    ]


def test_errors_are_described_without_file_names_or_times() -> None:
    """A warning per path and reason: a reason must not carry a temporary's random name."""
    h5py_message = (
        "Can't synchronously write data (file write failed: time = Tue Dec  1 12:32:24 2026\n, filename = "
        "'/cache/weights/.efficientnet_lite0_imagenet.harness-tmp-23978-llioojss.weights.h5', errno = 28, "
        "error message = 'No space left on device', total write size = 148280)"
    )
    assert paths.describe(OSError(h5py_message)) == "OSError (Can't synchronously write data: No space left on device)"
    assert paths.describe(PermissionError(errno.EACCES, "Permission denied", "/tmp/.k.harness-tmp-1-x.npz")) == (
        "PermissionError (Permission denied)"
    )
    assert paths.describe(OSError()) == "OSError (no message)"


# --------------------------------------------------------------------------- integrity


@pytest.mark.parametrize(
    ("expected", "reason"),
    [
        ({"train": ((6, 5), np.float32)}, "wrong shape for 'train': (6, 4) stored, (6, 5) expected"),
        ({"train": ((6, 4, 1), np.float32)}, "wrong shape for 'train': (6, 4) stored, (6, 4, 1) expected"),
        ({"train": ((6, 4), np.float64)}, "wrong dtype for 'train': float32 stored, float64 expected"),
        ({"test": ((2,), np.float32)}, "no array 'test' in the entry; it holds ['train', 'train_checksums']"),
    ],
)
def test_an_entry_of_another_shape_is_a_miss_with_the_reason(tmp_path: Path, expected: dict, reason: str) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("k", ARRAYS, metadata={})
    with pytest.warns(CacheWarning, match="k.npz"):
        assert cache.read("k", expected) == (None, reason)
    assert cache.read("k", {"train": ((None, 4), np.float32)})[0] is not None  # None: any size
    assert cache.read("k", EXPECTED)[1] is None


def test_a_flipped_bit_is_a_digest_mismatch_before_the_archive_is_parsed(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("k", ARRAYS, metadata={})
    path = tmp_path / "k.npz"
    data = bytearray(path.read_bytes())
    offset = data.index(ARRAYS["train"].tobytes())  # inside the stored array: the archive still opens
    data[offset + 4 * 5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="digest mismatch"):
        assert cache.read("k", EXPECTED) == (
            None,
            "digest mismatch: the entry's SHA-256 is not the one its sidecar recorded",
        )
    assert cache.put("k", ARRAYS, metadata={}) is None  # recomputed, stored again
    assert cache.read("k", EXPECTED)[1] is None


def test_an_entry_without_a_digest_is_a_quiet_miss(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("k", ARRAYS, metadata={})
    sidecar = tmp_path / "k.json"
    older = json.loads(sidecar.read_text())
    del older["sha256"]  # what a harness before digests wrote
    sidecar.write_text(json.dumps(older))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.read("k") == (None, "no digest in the sidecar k.json (written by an older harness)")
        sidecar.unlink()  # a kill -9 between the two renames of a put
        assert cache.read("k") == (None, "no sidecar k.json beside the entry")
    sidecar.write_text("[1, 2")
    with pytest.warns(CacheWarning, match="unreadable sidecar k.json: expected a JSON object"):
        assert cache.get("k") is None


def test_an_entry_evicted_mid_read_is_a_miss_or_a_hit_never_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("k", ARRAYS, metadata={})
    evict = lambda: [p.unlink() for p in tmp_path.iterdir()]  # noqa: E731

    real_file_digest = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda *a, **k: (evict(), real_file_digest(*a, **k))[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.read("k") == (None, "no sidecar k.json beside the entry")  # evicted after the open
    monkeypatch.undo()

    cache.put("k", ARRAYS, metadata={})
    real_mapped = cache_module._mapped

    def map_then_evict(*args: object) -> object:
        mapped = real_mapped(*args)  # type: ignore[arg-type]
        evict()  # the mapping holds the file, not its name
        return mapped

    monkeypatch.setattr(cache_module, "_mapped", map_then_evict)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(cache.get("k", EXPECTED)["train"], ARRAYS["train"])  # utime finds nothing
    assert files_in(tmp_path) == []


# --------------------------------------------------------------------------- a file with its digest (the weights)


def test_write_with_digest_writes_the_file_and_its_sha256(tmp_path: Path) -> None:
    target = tmp_path / "weights" / "model.weights.h5"
    written = []
    assert (
        paths.write_with_digest(target, lambda tmp: (written.append(tmp), tmp.write_bytes(b"w" * 100)), nbytes=100)
        is None
    )
    assert written[0].name.endswith(".weights.h5") and paths.temporary_pid(written[0]) == os.getpid()
    assert files_in(target.parent) == ["model.weights.h5", "model.weights.h5.sha256"]
    digest = hashlib.sha256(b"w" * 100).hexdigest()
    assert paths.digest_path(target).read_text() == f"{digest}  model.weights.h5\n"  # `sha256sum -c` reads it
    assert paths.digest_problem(target) is None


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda path: path.write_bytes(path.read_bytes()[:-1] + b"v"), "digest mismatch"),
        (lambda path: path.write_bytes(path.read_bytes()[:50]), "digest mismatch"),
        (lambda path: paths.digest_path(path).unlink(), "no readable digest file model.weights.h5.sha256"),
        (lambda path: path.unlink(), "unreadable: FileNotFoundError"),
    ],
    ids=["flipped", "truncated", "no-digest", "no-file"],
)
def test_digest_problem_finds_what_changed(tmp_path: Path, damage, problem: str) -> None:
    target = tmp_path / "model.weights.h5"
    paths.write_with_digest(target, lambda tmp: tmp.write_bytes(b"w" * 100), nbytes=100)
    damage(target)
    assert paths.digest_problem(target).startswith(problem)


def test_write_with_digest_never_raises_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def h5py_on_a_full_disk(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        _disk_full()

    target = tmp_path / "weights" / "model.weights.h5"
    with pytest.warns(CacheWarning, match=r"weights: cannot write model.weights.h5: OSError \(No space left"):
        assert paths.write_with_digest(target, h5py_on_a_full_disk, nbytes=100).startswith("cannot write")
    assert files_in(target.parent) == []

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    with pytest.warns(CacheWarning, match="not enough free space"):
        assert paths.write_with_digest(target, lambda tmp: pytest.fail("wrote"), nbytes=19_000_000) == (
            f"{paths.NO_ROOM} ({19_000_000 + paths.RESERVE_BYTES} bytes needed with the reserve, {2**20} free)"
        )
    monkeypatch.undo()

    (tmp_path / "blocked").write_text("a file where the folder should be")
    with pytest.warns(CacheWarning, match="cannot create the folder"):
        assert paths.write_with_digest(tmp_path / "blocked" / "w.weights.h5", lambda tmp: None, nbytes=1) is not None


# --------------------------------------------------------------------------- races

HAMMER = """
import random, sys, time, warnings
from pathlib import Path
import numpy as np
from harness.cache import CacheWarning, FeatureCache

root, seconds, seed = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
warnings.simplefilter("ignore", CacheWarning)  # two writers of one key may pass a digest mismatch
rng = random.Random(seed)
cache = FeatureCache(root, max_bytes=3 * 9000)  # room for about three of the six keys
expected = {"train": ((1000,), np.float64)}
ops = hits = 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    key = rng.randrange(6)
    action = rng.random()
    if action < 0.45:
        cache.put(f"k{key}", {"train": np.full(1000, float(key))}, metadata={"key": key})
    elif action < 0.93:
        arrays = cache.get(f"k{key}", expected)
        if arrays is not None:
            assert (arrays["train"] == key).all(), key
            hits += 1
    elif action < 0.97:
        cache.clear()
    else:
        cache.entries()
    ops += 1
print(ops, hits)
"""


def test_two_processes_hammering_one_small_cache_raise_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", HAMMER, str(tmp_path), "2.5", str(seed)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = [worker.communicate(timeout=120) for worker in workers]
    for worker, (out, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err
        ops, hits = map(int, out.split())
        assert ops > 100 and hits > 0, (ops, hits)
    assert not [name for name in files_in(tmp_path) if paths.temporary_pid(name)]  # every write finished or cleaned up
