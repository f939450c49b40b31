"""Image folders, read as `keras.utils.image_dataset_from_directory` reads them, checked first.

`load_folder` lists the files as Keras does (with `harness.data.listing`, as text folders are
listed: the class sub-folders sorted by name; below each, every file with an allowed extension,
folders walked in sorted order; the list shuffled with `seed` and its last `validation_split` held
out) and builds the `tf.data` pipeline Keras builds from that list. A folder whose files all
decode therefore gives the very splits, in the very order, that
`image_dataset_from_directory(path, seed=seed, validation_split=..., subset="both")` gives
(tested). Unlike Keras, before anything is trained on:

- a name that starts with "." is never a class, an image or a folder to walk
  (`.ipynb_checkpoints`, `.git`, macOS's `._photo.jpg`);
- a class folder without images is an error naming it, and so is a class with fewer than
  `MIN_IMAGES` images, or fewer than `1 / validation_split` (too few for the validation split
  to hold one of it);
- every file is decoded once, as training decodes it. The files that do not decode are all
  named in one `DataError`, each with its reason; with `bad_files="skip"` they are left out (as
  if they were not in the folder) with a `SkippedFilesWarning`, and recorded per folder in
  `skipped_files`;
- the test folder must have the training folder's classes, and gets the same checks.

`bad_files` is no part of the data set's cache identity: either way, an experiment that trains
trains on the folder's decodable images ("error" trains only when every image decodes), so the
two never put different images under one key, and a folder whose files changed since an entry
was written is told apart by the entry's per-image digests, as it always was.

Decoding is the check's whole cost (0.25 to 0.6 ms per small image on one core). Folders of 64
images or more decode on a thread pool (TensorFlow's eager ops release the GIL); on a 2-core
machine busy with other work it gained nothing (300 images of 64 px: 79 ms alone, 86 ms on the
pool; of 256 px: 178 and 190 ms), its gain on idle cores is not measured.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import tensorflow as tf

from harness import spec, worker_resources
from harness.data.errors import DataError, SkippedFilesWarning
from harness.data.listing import (
    Listing,
    capped,
    class_differences,
    empty_class_folders,
    list_files,
    plural,
    shuffled,
    split,
    too_few,
)
from harness.spec.validators import class_folders

__all__ = ["IMAGE_EXTENSIONS", "MIN_IMAGES", "Listing", "decode_problem", "list_images", "load_folder", "undecodable"]

# Keras's `image_dataset_utils.ALLOWLIST_FORMATS`, compared with the lower-cased file name.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# The fewest images a class may have (the training folder also needs 1 / validation_split).
MIN_IMAGES = 5
# What `image_dataset_from_directory(batch_size=None)` shuffles the training files with.
SHUFFLE_BUFFER = 1024
_MAX_WORKERS = 8
_REMEDY = 'Remove or replace them, or leave them out with image_folder(..., bad_files="skip").'
# TensorFlow's eager errors start with the function node and end with the op: neither helps a reader.
_NODE = re.compile(r"^\{\{function_node [^}]*\}\}\s*")
_OP = re.compile(r"\s*\[Op:\w+\].*$")


def load_folder(
    dataset: spec.ImageFolder,
) -> tuple[dict[str, tf.data.Dataset | None], list[str], dict[str, Any]]:
    """The "train", "validation" and "test" splits of `dataset` (unbatched `(image, label)`, images
    float32 in 0..255 resized to `image_size`), its class names and what was skipped.

    The skipped files are `{"path": {"count": n, "files": {relative path: reason}}, "test_path": ...}`
    with `bad_files="skip"` (a count of 0 where none was), else `{}`. Raises `DataError` (see the
    module's docstring) before anything is decoded for training.
    """
    train = list_images(dataset.path, f"image folder {dataset.path!r}")
    check_counts(train, dataset.validation_split)
    listings = {"path": train}
    if dataset.test_path is not None:
        test = list_images(dataset.test_path, f"test folder {dataset.test_path!r}", train.class_names)
        check_counts(test)
        listings["test_path"] = test
    bad = undecodable([f for listing in listings.values() for f in listing.files])
    found = {
        role: {listing.relative(f): bad[f] for f in listing.files if f in bad} for role, listing in listings.items()
    }
    skipped: dict[str, Any] = {}
    if dataset.bad_files == "error":
        if bad:
            raise DataError("\n".join([*(_listed(listings[r].where, found[r]) for r in found if found[r]), _REMEDY]))
    else:
        for role, listing in listings.items():
            skipped[role] = {"count": len(found[role]), "files": found[role]}
            if found[role]:
                warnings.warn(
                    _listed(listing.where, found[role], done='left out (image_folder(..., bad_files="skip"))'),
                    SkippedFilesWarning,
                    stacklevel=3,
                )
                listings[role] = kept = listing.without(f for f in listing.files if f in bad)
                check_counts(kept, dataset.validation_split if role == "path" else None, skipped=len(found[role]))
    train_files, validation_files = split(*_shuffled(listings["path"], dataset.seed), dataset.validation_split)
    splits: dict[str, tf.data.Dataset | None] = {
        "train": _dataset(*train_files, dataset.image_size, shuffle_seed=dataset.seed),
        "validation": _dataset(*validation_files, dataset.image_size, shuffle_seed=None),
        "test": None,
    }
    if "test_path" in listings:
        splits["test"] = _dataset(*_shuffled(listings["test_path"], dataset.seed), dataset.image_size, dataset.seed)
    return splits, list(train.class_names), skipped


def list_images(root: str, where: str, class_names: Sequence[str] | None = None) -> Listing:
    """The images of folder `root` as Keras indexes them, hidden names left out.

    Raises `DataError` when a class folder holds no image, or (with `class_names`: a test
    folder) when its class folders are not exactly `class_names`.
    """
    names = [p.name for p in class_folders(root)]
    if class_names is not None and sorted(names) != sorted(class_names):
        raise DataError(
            f"The {where} must have the class folders of the training folder ({', '.join(class_names)}): "
            f"{class_differences(names, class_names)}. Received: class folders {names}"
        )
    listing, empty = list_files(root, where, IMAGE_EXTENSIONS, class_names)
    if empty:
        fix = 'Add images, or remove the folder (a folder whose name starts with "." is never a class).'
        raise DataError(empty_class_folders(where, empty, f"images ({', '.join(IMAGE_EXTENSIONS)})", fix))
    return listing


def check_counts(listing: Listing, validation_split: float | None = None, *, skipped: int = 0) -> None:
    """Raises `DataError` naming every class of `listing` with fewer than `MIN_IMAGES` images, or
    (`validation_split`: the training folder) fewer than `1 / validation_split`."""
    after = f" (after leaving out {plural(skipped, 'file')} that {'does' if skipped == 1 else 'do'} not decode)"
    counts = dict(zip(listing.class_names, listing.counts(), strict=True))
    fix = "Add images to the class, or remove its folder."
    problem = too_few(
        listing.where, counts, validation_split, floor=MIN_IMAGES, noun="image", after=after if skipped else "", fix=fix
    )
    if problem:
        raise DataError(problem)


def undecodable(paths: Sequence[str]) -> dict[str, str]:
    """The files of `paths` that do not decode as training decodes them, each with its reason."""
    workers = min(_MAX_WORKERS, worker_resources.threads())  # an xdist worker's share of the cores
    if workers == 1 or len(paths) < 64:
        problems = list(map(decode_problem, paths))
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="harness-decode") as pool:
            problems = list(pool.map(decode_problem, paths, chunksize=16))
    return {path: problem for path, problem in zip(paths, problems, strict=True) if problem is not None}


def decode_problem(path: str) -> str | None:
    """Why the file at `path` does not decode to an RGB image (TensorFlow's first line), else None."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    except tf.errors.OpError as error:
        lines = _NODE.sub("", str(error.message or "").strip()).splitlines()
        return _OP.sub("", lines[0]).strip() if lines else type(error).__name__
    return None


def _shuffled(listing: Listing, seed: int) -> tuple[list[str], np.ndarray]:
    """`index_directory(shuffle=True, seed=seed)`'s shuffle of the listing's paths and labels."""
    return shuffled(listing.files, listing.labels, seed)


def _dataset(
    paths: list[str], labels: np.ndarray, image_size: tuple[int, int], shuffle_seed: int | None
) -> tf.data.Dataset:
    """Keras's `paths_and_labels_to_dataset` for `label_mode="int"`, `color_mode="rgb"`, bilinear resizing."""
    ds = tf.data.Dataset.zip((tf.data.Dataset.from_tensor_slices(paths), tf.data.Dataset.from_tensor_slices(labels)))
    if shuffle_seed is not None:
        ds = ds.shuffle(buffer_size=SHUFFLE_BUFFER, seed=shuffle_seed)

    def read(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        # decode_image(dtype=uint8) scales 16-bit PNGs to 0..255 (the high byte) and drops alpha.
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(image, image_size, method="bilinear")
        image.set_shape((*image_size, 3))
        return image, label

    return ds.map(read, num_parallel_calls=tf.data.AUTOTUNE)


def _listed(where: str, files: dict[str, str], done: str = "") -> str:
    """`where` has N files that do not decode, then one line per file: its path and why."""
    lines = [f"  {path}: {reason}" for path, reason in files.items()]
    shown = capped(lines, '(bad_files="skip" lists them all in the metrics JSON)')
    verb = "does" if len(files) == 1 else "do"
    head = f"The {where} has {plural(len(files), 'file')} that {verb} not decode as images"
    return "\n".join([f"{head}{f', {done}' if done else ''}:", *shown])
