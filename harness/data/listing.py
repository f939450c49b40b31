"""Class folders listed, shuffled and split as Keras's `index_directory` does, for any kind of file.

`keras.utils.image_dataset_from_directory` and `text_dataset_from_directory` list their files
with the same `index_directory`: the class sub-folders sorted by name (or `class_names`, in that
order); below each, every file whose lower-cased name ends with an allowed extension, the folders
walked with `os.walk` in sorted order and the names sorted within each; then the paths and the
labels each shuffled with a fresh `np.random.RandomState(seed)`, and the last
`int(validation_split * n)` held out for validation. `harness.data.folder` (images) and
`harness.data.text_files` (texts) both list, shuffle and split with this module, which imports
no TensorFlow. Unlike Keras, a name that starts with "." is never a class, a file or a folder
to walk (`.ipynb_checkpoints`, `.git`, macOS's `._photo.jpg`).

The messages' shared parts live here too: a class folder without files, a class with too few
examples, a list of at most `SHOWN` lines.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from harness.spec.validators import class_folders

__all__ = [
    "SHOWN",
    "Listing",
    "capped",
    "class_differences",
    "empty_class_folders",
    "files_below",
    "list_files",
    "minimum",
    "paragraph",
    "plural",
    "shuffled",
    "split",
    "too_few",
]

# How many lines a message lists per kind of problem, then "... and N more".
SHOWN = 100

T = TypeVar("T")


@dataclass
class Listing:
    """The files of one folder, class by class in Keras's order (before its shuffle)."""

    root: str
    where: str  # the folder as messages name it: "image folder '/data/cells'"
    class_names: list[str]
    files: list[str]  # paths under `root`, as Keras joins them
    labels: list[int]

    def relative(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def counts(self) -> list[int]:
        return np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=len(self.class_names)).tolist()

    def without(self, left_out: Iterable[str]) -> Listing:
        gone = set(left_out)
        kept = [(f, label) for f, label in zip(self.files, self.labels, strict=True) if f not in gone]
        return Listing(self.root, self.where, self.class_names, [f for f, _ in kept], [label for _, label in kept])


def list_files(
    root: str, where: str, extensions: tuple[str, ...], class_names: Sequence[str] | None = None
) -> tuple[Listing, dict[str, str]]:
    """The files of folder `root` with one of `extensions` (lower case) as Keras indexes them, and
    the class folders without such a file, each with what it holds instead (`{"birds/": "empty"}`).

    With `class_names` (a test folder) the classes are those, in that order, and a class without
    a folder lists no file: the caller reports the difference (`class_differences`).
    """
    names = list(class_names) if class_names is not None else [p.name for p in class_folders(root)]
    files: list[str] = []
    labels: list[int] = []
    empty: dict[str, str] = {}
    for label, name in enumerate(names):
        if not os.path.isdir(os.path.join(root, name)):
            continue
        found, others = files_below(os.path.join(root, name), extensions)
        if not found:
            kinds = sorted({os.path.splitext(o)[1].lower() or "no extension" for o in others})
            empty[f"{name}/"] = f"{plural(len(others), 'other file')} ({', '.join(kinds)})" if others else "empty"
        files += found
        labels += [label] * len(found)
    return Listing(root, where, names, files, labels), empty


def files_below(class_dir: str, extensions: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The files below `class_dir` in Keras's order (`os.walk`, roots sorted, then names), and the other files."""
    walked = []
    for root, folders, names in os.walk(class_dir):
        folders[:] = [f for f in folders if not f.startswith(".")]
        walked.append((root, names))
    found: list[str] = []
    others: list[str] = []
    for root, names in sorted(walked, key=lambda entry: entry[0]):
        for name in sorted(names):
            if name.startswith("."):
                continue
            (found if name.lower().endswith(extensions) else others).append(os.path.join(root, name))
    return found, others


def class_differences(names: Sequence[str], class_names: Sequence[str]) -> str:
    """How the classes `names` differ from `class_names`: "missing 'owls'; extra 'bats'", or ""."""
    missing = [n for n in class_names if n not in names]
    extra = [n for n in names if n not in class_names]
    differences = [
        f"missing {', '.join(map(repr, missing))}" if missing else "",
        f"extra {', '.join(map(repr, extra))}" if extra else "",
    ]
    return "; ".join(d for d in differences if d)


def shuffled(items: Sequence[T], labels: Sequence[int], seed: int) -> tuple[list[T], np.ndarray]:
    """`index_directory(shuffle=True, seed=seed)`'s shuffle: the items and the labels, each with a fresh RandomState.

    A list's shuffle draws the same swaps whatever it holds: shuffling the positions of `items`
    moves them as shuffling Keras's list of paths moves the paths.
    """
    order = list(range(len(items)))
    np.random.RandomState(seed).shuffle(order)
    shuffled_labels = np.asarray(labels, dtype=np.int32)
    np.random.RandomState(seed).shuffle(shuffled_labels)
    return [items[i] for i in order], shuffled_labels


def split(
    items: list[T], labels: np.ndarray, validation_split: float
) -> tuple[tuple[list[T], np.ndarray], tuple[list[T], np.ndarray]]:
    """Keras's `get_training_or_validation_split`: the last `int(validation_split * n)` are held out."""
    held_out = int(validation_split * len(items))
    if held_out <= 0:  # Keras would train on nothing: the count checks ask 1 / validation_split per class
        raise ValueError(f"validation_split={validation_split} of {len(items)} examples holds out none of them")
    return (items[:-held_out], labels[:-held_out]), (items[-held_out:], labels[-held_out:])


def minimum(validation_split: float | None, floor: int) -> int:
    """The fewest examples a class may have: `floor`, and for a training source 1 / validation_split."""
    return floor if validation_split is None else max(floor, math.ceil(1 / validation_split - 1e-9))


def too_few(
    where: str,
    counts: dict[str, int],
    validation_split: float | None,
    *,
    floor: int,
    noun: str,
    after: str = "",
    fix: str,
) -> str | None:
    """The message naming every class of `counts` with fewer examples than `minimum(validation_split, floor)`."""
    least = minimum(validation_split, floor)
    few = [(name, n) for name, n in counts.items() if n < least]
    if not few:
        return None
    why = f"at least {least} {noun}s"
    if least > floor:
        why += " (1 / validation_split, so that the validation split holds one of them)"
    head = f"The {where} has {plural(len(few), 'class')} with too few {noun}s{after}: every class needs {why}."
    return paragraph(head, [f"  {name}: {plural(n, noun)}" for name, n in few], fix)


def empty_class_folders(where: str, empty: dict[str, str], what: str, fix: str) -> str:
    """The message naming the class folders of `empty` (from `list_files`), which hold no `what`."""
    each = "it" if len(empty) == 1 else "each"
    head = f"The {where} has {plural(len(empty), 'class folder')} without {what}: {each} would be a class without examples."
    return paragraph(head, [f"  {name}: {held}" for name, held in empty.items()], fix)


def paragraph(head: str, lines: Sequence[str], fix: str) -> str:
    """A problem: `head`, at most `SHOWN` of `lines`, then `fix`; "" (no problem) without lines."""
    return "\n".join([head, *capped(lines), fix]) if lines else ""


def capped(lines: Sequence[str], more: str = "") -> list[str]:
    """The first `SHOWN` of `lines`, then "  ... and N more" (followed by `more`) for the rest."""
    if len(lines) <= SHOWN:
        return list(lines)
    return [*lines[:SHOWN], f"  ... and {len(lines) - SHOWN} more{f' {more}' if more else ''}"]


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('s') else 's'}"
