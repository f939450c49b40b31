"""Bad input in image folders: undecodable files, empty, hidden and small class folders, mixed formats.

The folders are written into `tmp_path` with PIL (8x8 images, five or more per class). The tests
that decode import TensorFlow and are `slow`; the spec-level ones are not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_specs import PREAMBLE

from harness import spec

_SHADES = {"cats": (40, 60), "dogs": (180, 220)}  # class -> range of its images' gray level


def _folder(root: Path, counts: dict[str, int] | None = None, *, nested: bool = False) -> Path:
    """Class folders of small PNG and JPEG images (dark cats, bright dogs), some below a sub-folder."""
    rng = np.random.default_rng(len(str(root)))
    for name, n in (counts or {"cats": 8, "dogs": 8}).items():
        low, high = _SHADES.get(name, (0, 255))
        for i in range(n):
            where = root / name / ("sub" if nested and i % 3 == 0 else "")
            where.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(low, high, (8 + i % 3, 9, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(where / (f"{i}.png" if i % 2 else f"{i}.JPG"), quality=95)
    return root


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# --------------------------------------------------------------------------- at collection: no TensorFlow


def test_bad_files_is_error_or_skip(tmp_path: Path) -> None:
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
    with pytest.raises(spec.SpecError) as excinfo:
        spec.image_folder(str(tmp_path), bad_files="ignore")
    assert str(excinfo.value) == (
        "`image_folder.bad_files` must be 'error' (files that do not decode fail the experiment) or 'skip' "
        "(they are left out, with a warning). Received: bad_files='ignore'"
    )


def test_hidden_folders_are_never_classes_at_collection(tmp_path: Path) -> None:
    for name in ("cats", ".ipynb_checkpoints", ".git"):
        (tmp_path / name).mkdir()
    with pytest.raises(spec.SpecError, match=r"must hold at least two class sub-folders \(.* holds 1\)"):
        spec.image_folder(str(tmp_path))
    (tmp_path / "dogs").mkdir()
    dataset = spec.image_folder(str(tmp_path), bad_files="skip")
    assert spec.datasets.num_classes(dataset) == 2
    # Not part of the cache identity: a run that trains trains on the decodable images either way.
    assert dataset.identity == spec.image_folder(str(tmp_path)).identity


# --------------------------------------------------------------------------- loading: TensorFlow


def _load(dataset: spec.ImageFolder):  # type: ignore[no-untyped-def]
    pytest.importorskip("tensorflow")
    from harness.data import loading

    return loading.load(dataset)


def _elements(ds) -> list[tuple[bytes, int]]:  # type: ignore[no-untyped-def]
    return [(np.asarray(image, np.float32).tobytes(), int(label)) for image, label in ds.as_numpy_iterator()]


def _keras_splits(root: Path, test: Path | None = None, *, seed: int = 0, validation_split: float = 0.2):  # type: ignore[no-untyped-def]
    import keras

    common = {"image_size": (8, 8), "batch_size": None, "color_mode": "rgb", "label_mode": "int", "shuffle": True}
    train, validation = keras.utils.image_dataset_from_directory(
        str(root), validation_split=validation_split, subset="both", seed=seed, **common
    )
    splits = {"train": train, "validation": validation}
    if test is not None:
        splits["test"] = keras.utils.image_dataset_from_directory(
            str(test), class_names=train.class_names, seed=seed, **common
        )
    return splits


@pytest.mark.slow
def test_a_clean_folder_splits_exactly_as_image_dataset_from_directory(tmp_path: Path) -> None:
    """Same files in the same splits and order, same pixels, with nested folders and upper-case extensions."""
    import keras

    root = _folder(tmp_path / "train", {"cats": 11, "dogs": 9, "owls": 7}, nested=True)
    test = _folder(tmp_path / "test", {"cats": 5, "dogs": 6, "owls": 5})
    for seed in (0, 7):
        keras.utils.set_random_seed(seed)  # the training shuffle's op seed meets this global seed
        data = _load(spec.image_folder(str(root), image_size=8, test_path=str(test), seed=seed, validation_split=0.3))
        keras.utils.set_random_seed(seed)
        expected = _keras_splits(root, test, seed=seed, validation_split=0.3)
        assert data.class_names == ["cats", "dogs", "owls"]
        for name, ds in expected.items():
            assert _elements(data.split(name)) == _elements(ds), (seed, name)
        assert data.sizes == {"train": 19, "validation": 8, "test": 16}
        assert data.skipped_files == {}


@pytest.mark.slow
def test_undecodable_files_are_reported_together_with_paths_and_reasons(tmp_path: Path) -> None:
    from harness.data.errors import DataError

    root = _folder(tmp_path / "train")
    test = _folder(tmp_path / "test", {"cats": 5, "dogs": 5})
    _truncate(root / "cats" / "0.JPG")
    (root / "dogs" / "empty.png").write_bytes(b"")
    (root / "dogs" / "notes.png").write_text("not an image")
    (test / "cats" / "1.png").write_bytes((test / "cats" / "1.png").read_bytes()[:40])
    with pytest.raises(DataError) as excinfo:
        _load(spec.image_folder(str(root), image_size=8, test_path=str(test)))
    assert str(excinfo.value) == (
        f"The image folder '{root}' has 3 files that do not decode as images:\n"
        "  cats/0.JPG: jpeg::Uncompress failed. Invalid JPEG data or crop window.\n"
        "  dogs/empty.png: empty file\n"
        "  dogs/notes.png: Unknown image file format. One of JPEG, JPEG XL, PNG, GIF, BMP, WebP required.\n"
        f"The test folder '{test}' has 1 file that does not decode as images:\n"
        "  cats/1.png: Invalid PNG. Failed to initialize decoder.\n"
        'Remove or replace them, or leave them out with image_folder(..., bad_files="skip").'
    )


@pytest.mark.slow
def test_skip_trains_on_the_rest_as_if_the_bad_files_were_not_there(tmp_path: Path) -> None:
    import keras

    from harness.data.errors import SkippedFilesWarning

    root = _folder(tmp_path / "train", {"cats": 9, "dogs": 8})
    _truncate(root / "cats" / "2.JPG")
    (root / "dogs" / "3.png").write_bytes(b"")
    keras.utils.set_random_seed(0)
    with pytest.warns(SkippedFilesWarning) as caught:
        data = _load(spec.image_folder(str(root), image_size=8, bad_files="skip"))
    assert str(caught[0].message) == (
        f"The image folder '{root}' has 2 files that do not decode as images, left out "
        '(image_folder(..., bad_files="skip")):\n'
        "  cats/2.JPG: jpeg::Uncompress failed. Invalid JPEG data or crop window.\n"
        "  dogs/3.png: empty file"
    )
    assert data.skipped_files == {
        "path": {
            "count": 2,
            "files": {
                "cats/2.JPG": "jpeg::Uncompress failed. Invalid JPEG data or crop window.",
                "dogs/3.png": "empty file",
            },
        }
    }
    assert data.sizes == {"train": 12, "validation": 3}
    for bad in ("cats/2.JPG", "dogs/3.png"):
        os.remove(root / bad)
    keras.utils.set_random_seed(0)
    expected = _keras_splits(root)
    assert all(_elements(data.split(name)) == _elements(ds) for name, ds in expected.items())


@pytest.mark.slow
def test_empty_class_folders_are_an_error_naming_them(tmp_path: Path) -> None:
    from harness.data.errors import DataError

    root = _folder(tmp_path)
    (root / "birds").mkdir()
    (root / "owls").mkdir()
    (root / "owls" / "scan.tif").write_bytes(b"II*\0")
    with pytest.raises(DataError) as excinfo:
        _load(spec.image_folder(str(root), image_size=8))
    assert str(excinfo.value) == (
        f"The image folder '{root}' has 2 class folders without images (.bmp, .gif, .jpeg, .jpg, .png): "
        "each would be a class without examples.\n"
        "  birds/: empty\n"
        "  owls/: 1 other file (.tif)\n"
        'Add images, or remove the folder (a folder whose name starts with "." is never a class).'
    )


@pytest.mark.slow
def test_hidden_folders_and_files_are_never_classes_nor_images(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    for hidden in (".ipynb_checkpoints", ".git", "cats/.ipynb_checkpoints"):
        (root / hidden).mkdir()
        (root / hidden / "0-checkpoint.png").write_bytes(b"")  # would not decode, were it read
    (root / "dogs" / "._0.JPG").write_bytes(b"\0\5\26\7")  # macOS's AppleDouble file
    data = _load(spec.image_folder(str(root), image_size=8))
    assert data.class_names == ["cats", "dogs"]
    assert data.num_classes == 2
    assert data.sizes["train"] + data.sizes["validation"] == 16


@pytest.mark.slow
def test_a_class_with_too_few_images_is_an_error(tmp_path: Path) -> None:
    from harness.data.errors import DataError

    root = _folder(tmp_path, {"cats": 8, "dogs": 2, "owls": 6})
    with pytest.raises(DataError) as excinfo:
        _load(spec.image_folder(str(root), image_size=8))
    assert str(excinfo.value) == (
        f"The image folder '{root}' has 1 class with too few images: every class needs at least 5 images.\n"
        "  dogs: 2 images\n"
        "Add images to the class, or remove its folder."
    )
    with pytest.raises(DataError) as excinfo:
        _load(spec.image_folder(str(root), image_size=8, validation_split=0.1))
    head = (
        f"The image folder '{root}' has 3 classes with too few images: every class needs at least 10 images "
        "(1 / validation_split, so that the validation split holds one of them)."
    )
    assert str(excinfo.value).splitlines()[:4] == [
        head,
        "  cats: 8 images",
        "  dogs: 2 images",
        "  owls: 6 images",
    ]


@pytest.mark.slow
def test_skipping_can_leave_a_class_with_too_few_images(tmp_path: Path) -> None:
    from harness.data.errors import DataError, SkippedFilesWarning

    root = _folder(tmp_path, {"cats": 8, "dogs": 5})
    (root / "dogs" / "1.png").write_bytes(b"")
    with (
        pytest.warns(SkippedFilesWarning),
        pytest.raises(DataError, match=r"1 class with too few images \(after leaving out 1 file that does not "),
    ):
        _load(spec.image_folder(str(root), image_size=8, bad_files="skip"))


@pytest.mark.slow
def test_a_test_folder_needs_the_training_classes(tmp_path: Path) -> None:
    from harness.data.errors import DataError

    root = _folder(tmp_path / "train", {"cats": 5, "dogs": 5, "owls": 5})
    test = _folder(tmp_path / "test", {"cats": 5, "dogs": 5, "bats": 5})
    with pytest.raises(DataError) as excinfo:
        _load(spec.image_folder(str(root), image_size=8, test_path=str(test)))
    assert str(excinfo.value) == (
        f"The test folder '{test}' must have the class folders of the training folder (cats, dogs, owls): "
        "missing 'owls'; extra 'bats'. Received: class folders ['bats', 'cats', 'dogs']"
    )


@pytest.mark.slow
def test_mixed_formats_decode_to_rgb_in_0_255(tmp_path: Path) -> None:
    """PNG, JPEG, BMP, GIF, gray, RGBA and 16-bit PNGs, one format per class, each of one color."""
    import tensorflow as tf

    color = (200, 100, 50)
    writers = {
        "a_png": lambda p: Image.new("RGB", (9, 7), color).save(p.with_suffix(".png")),
        "b_jpeg": lambda p: Image.new("RGB", (9, 7), color).save(p.with_suffix(".jpeg"), quality=100),
        "c_bmp": lambda p: Image.new("RGB", (9, 7), color).save(p.with_suffix(".bmp")),
        "d_gif": lambda p: Image.new("RGB", (9, 7), color).save(p.with_suffix(".gif")),
        "e_gray": lambda p: Image.new("L", (9, 7), 100).save(p.with_suffix(".png")),
        "f_rgba": lambda p: Image.new("RGBA", (9, 7), (*color, 10)).save(p.with_suffix(".png")),
        "g_gray16": lambda p: Image.fromarray(np.full((7, 9), 100 * 257, np.uint16)).save(p.with_suffix(".png")),
        "h_rgb16": lambda p: tf.io.write_file(
            str(p.with_suffix(".png")),
            tf.io.encode_png(tf.constant(np.full((7, 9, 3), 257, np.uint16) * np.array(color, np.uint16))),
        ),
    }
    for name, write in writers.items():
        (tmp_path / name).mkdir()
        for i in range(5):
            write(tmp_path / name / str(i))
    assert Image.open(tmp_path / "g_gray16" / "0.png").mode == "I;16"
    data = _load(spec.image_folder(str(tmp_path), image_size=8))
    expected = {"e_gray": (100, 100, 100), "g_gray16": (100, 100, 100)}
    seen = set()
    for split in ("train", "validation"):
        for image, label in data.split(split).as_numpy_iterator():
            name = data.class_names[label]
            seen.add(name)
            tolerance = 2 if name == "b_jpeg" else 0
            assert image.shape == (8, 8, 3)
            assert np.abs(image - np.array(expected.get(name, color))).max() <= tolerance, name
    assert seen == set(writers)


# --------------------------------------------------------------------------- what a user sees: pytest runs


def _spec(root: Path, **arguments: str) -> str:
    shown = "".join(f", {k}={v!r}" for k, v in arguments.items())
    return (
        PREAMBLE
        + "\n\nexperiment(\n"
        + "    name='folder',\n"
        + f"    dataset=image_folder({str(root)!r}, image_size=16{shown}),\n"
        + "    backbone=custom_backbone('tiny', tiny_backbone),\n"
        + "    head=classifier_head(dropout_rate=0.0),\n"
        + "    phases=[feature_extraction(epochs=1, batch_size=8)],\n"
        + "    expect=[frozen_weights_unchanged()],\n"
        + ")\n"
    )


def test_a_bad_file_fails_the_experiment_in_a_few_lines(spec_pytester: pytest.Pytester, tmp_path: Path) -> None:
    root = _folder(tmp_path / "cells")
    _truncate(root / "cats" / "0.JPG")
    (root / "dogs" / "empty.png").write_bytes(b"")
    spec_pytester.makepyfile(**{"specs/cells": _spec(root)})
    result = spec_pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*specs/cells.py:*: The image folder '{root}' has 2 files that do not decode as images:",
            "  cats/0.JPG: jpeg::Uncompress failed. Invalid JPEG data or crop window.",
            "  dogs/empty.png: empty file",
            'Remove or replace them, or leave them out with image_folder(..., bad_files="skip").',
        ]
    )
    shown = result.stdout.str()
    assert "Traceback" not in shown and "tensorflow/" not in shown and "InvalidArgumentError" not in shown


def test_skipped_files_are_warned_about_and_counted_in_the_metrics_json(
    spec_pytester: pytest.Pytester, tmp_path: Path
) -> None:
    root = _folder(tmp_path / "cells")
    (root / "dogs" / "empty.png").write_bytes(b"")
    spec_pytester.makepyfile(**{"specs/cells": _spec(root, bad_files="skip")})
    result = spec_pytester.runpytest_inprocess("--metrics-json", "metrics.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"*SkippedFilesWarning: The image folder '{root}' has 1 file that does not decode as images, left out *",
            "    dogs/empty.png: empty file",
        ]
    )
    folder = json.loads((spec_pytester.path / "metrics.json").read_text())["experiments"]["folder"]
    assert folder["skipped_files"] == {"path": {"count": 1, "files": {"dogs/empty.png": "empty file"}}}
    assert sum(folder["split_sizes"].values()) == 16
