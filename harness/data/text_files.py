"""Text data sets read from disk and checked before anything trains: a text folder or a CSV file.

A text folder is read as `keras.utils.text_dataset_from_directory` reads it (`harness.data.listing`,
shared with image folders): one sub-folder per class, sorted by name, and below each every `.txt`
file; `split_texts(texts, validation_split, seed)` then gives the very splits, in the very order,
of `text_dataset_from_directory(path, validation_split=..., subset="both", seed=seed)` (tested).
A CSV file has a header row naming its columns: `text_column` holds the texts, `label_column`
their classes. This module imports no TensorFlow.

A reader finds every problem of its source, then raises them all in one `TextProblems` (a
`DataError`): a paragraph per kind, each naming the files or lines, what was expected and the
fix. `gather` adds the problems of several sources and the training source's count check (which
needs `validation_split`) to one list, so that one error lists everything wrong with a data set:

    found: list[str] = []
    train, skipped = gather(found, partial(read_text_folder, path), validation_split)
    test, _ = gather(found, partial(read_text_folder, test_path, class_names=train.class_names))
    if found:
        raise DataError("\\n".join(found))

Where Keras says nothing, or a CSV file has no Keras counterpart:

- a text is kept exactly as it decodes (nothing stripped; a UTF-8 byte-order mark stays, as it
  stays in the bytes Keras reads), but one of only whitespace is reported as empty;
- a name that starts with "." is never a class or a file (`.ipynb_checkpoints`, `._notes.txt`);
- an encoding Python does not know is a `DataError` at once: nothing could be decoded;
- a file that does not decode is named with its first bad bytes; a CSV file with each line that
  holds some;
- a CSV file is comma-separated (`csv`'s "excel" dialect); a byte-order mark before its header is
  dropped; its column names and labels are stripped; a row whose cells are all blank is skipped;
  a row is named by the line it starts on;
- CSV labels: when every label is an integer ("0", "07", "-1") the classes are the distinct
  numbers, sorted as numbers and named as `int` writes them ("07" and "7" are class "7");
  otherwise the distinct labels sorted as strings. A column that mixes integers with other
  labels is a problem (the rows of the smaller kind are named).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.data import csv_rows, text_encodings
from harness.data.errors import DataError, SkippedFilesWarning
from harness.data.listing import (
    capped,
    class_differences,
    empty_class_folders,
    list_files,
    paragraph,
    plural,
    shuffled,
    split,
    too_few,
)
from harness.spec.validators import class_folders

__all__ = [
    "MIN_TEXTS",
    "TEXT_EXTENSIONS",
    "TextProblems",
    "Texts",
    "check_counts",
    "gather",
    "read_text_csv",
    "read_text_folder",
    "shuffled_texts",
    "split_texts",
]

# `text_dataset_from_directory`'s `formats`, compared with the lower-cased file name.
TEXT_EXTENSIONS = (".txt",)
# The fewest texts a class may have (the training source also needs 1 / validation_split).
MIN_TEXTS = 5
# The spec constructors that the fixes name.
_FOLDER = "text_folder"
_SKIP = f'leave them out with {_FOLDER}(..., bad_files="skip")'

R = TypeVar("R")


@dataclass
class Texts:
    """The texts of one data set's split source, in Keras's order (before any shuffle)."""

    where: str  # as messages name it: "text folder '/data/bbc'" or "CSV file '/data/x.csv'"
    class_names: list[str]
    texts: list[str]
    labels: list[int]  # index into class_names
    sources: list[str]  # per text: its file relative to the folder ("sport/001.txt"), or "line 17" of a CSV file

    def counts(self) -> dict[str, int]:
        """The number of texts of each class, in `class_names`' order."""
        found = dict.fromkeys(self.class_names, 0)
        for label in self.labels:
            found[self.class_names[label]] += 1
        return found

    def _take(self, order: Sequence[int], labels: Sequence[int]) -> Texts:
        texts, sources = [self.texts[i] for i in order], [self.sources[i] for i in order]
        return Texts(self.where, list(self.class_names), texts, [int(label) for label in labels], sources)


class TextProblems(DataError):
    """Every problem a reader found in its source, the count check without validation split included.

    `problems` holds one paragraph per kind of problem, the count check left out; `result` is
    what the reader would have returned, with the texts it could read; `skipped` is how many files
    it left out and `reported` the classes already named as missing or empty (`gather` uses them).
    """

    def __init__(self, problems: list[str], result: Any, *, skipped: int = 0, reported: Collection[str] = ()) -> None:
        self.problems, self.result, self.skipped, self.reported = problems, result, skipped, frozenset(reported)
        super().__init__("\n".join([*problems, *check_counts(_texts_of(result), skipped=skipped, reported=reported)]))

    def __reduce__(self) -> tuple[type[DataError], tuple[str]]:
        return DataError, (str(self),)  # pickled (to another process) as the plain error it reads as


def read_text_folder(
    root: str,
    *,
    encoding: str = "utf-8",
    class_names: Sequence[str] | None = None,
    bad_files: str = "error",
    where: str | None = None,
) -> tuple[Texts, dict[str, str]]:
    """Reads every `.txt` file below each class sub-folder of `root`, in Keras's order.

    Args:
        root: the folder of class sub-folders.
        encoding: what the files are written in. Defaults to `"utf-8"`.
        class_names: the training classes, for a test folder: its class folders must be exactly
            these, and labels index into them in this order. Defaults to the sub-folders, sorted.
        bad_files: `"error"` (a file that does not decode or holds no text is a problem) or
            `"skip"` (it is left out with a `SkippedFilesWarning`, and the classes are counted
            without it). Defaults to `"error"`.
        where: the folder as messages name it. Defaults to `"text folder '<root>'"`.

    Returns:
        The texts, and the files left out with `bad_files="skip"` ({relative path: reason}).

    Raises:
        TextProblems: every problem of the folder (see the module's docstring).
    """
    text_encodings.check_encoding(encoding)
    if bad_files not in ("error", "skip"):
        raise ValueError(f'bad_files must be "error" or "skip". Received: bad_files={bad_files!r}')
    where = where or f"text folder {os.fspath(root)!r}"
    if not os.path.isdir(root):
        raise DataError(f"The {where} is not a folder: a text folder holds a sub-folder of .txt files per class.")
    names = [p.name for p in class_folders(root)]
    problems = [_classes_problem(where, names, class_names, "class folders")]
    listing, empty = list_files(root, where, TEXT_EXTENSIONS, class_names)
    if empty:
        fix = 'Add .txt files, or remove the folder (a folder whose name starts with "." is never a class).'
        problems.append(empty_class_folders(where, empty, "text files (.txt)", fix))
    texts, labels, sources = [], [], []
    bad: dict[str, dict[str, str]] = {"cannot be read": {}, f"not {encoding}": {}, "empty": {}}
    guesses = set()
    for path, label in zip(listing.files, listing.labels, strict=True):
        source = listing.relative(path)
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as error:
            bad["cannot be read"][source] = str(error.strerror or error)
            continue
        text, runs = text_encodings.decode(data, encoding)
        if runs:
            guesses.add(guess := text_encodings.guess(data, encoding))
            more = f", and {len(runs) - 1} more after it" if len(runs) > 1 else ""
            described = text_encodings.describe(data, *runs[0], encoding)
            bad[f"not {encoding}"][source] = f"{described}{more}{_decodes_as(guess)}"
        elif _blank(text):
            bad["empty"][source] = f"only whitespace ({plural(len(data), 'byte')})" if data else "0 bytes"
        else:
            texts.append(text)
            labels.append(label)
            sources.append(source)
    skipped = {source: f"{kind}: {why}" for kind, files in bad.items() for source, why in files.items()}
    if bad_files == "skip" and skipped:
        head = f"The {where} has {plural(len(skipped), 'file')} that {_do(len(skipped))} not decode or hold no text"
        lines = capped([f"  {source}: {why}" for source, why in skipped.items()])
        message = "\n".join([f'{head}, left out ({_FOLDER}(..., bad_files="skip")):', *lines])
        warnings.warn(message, SkippedFilesWarning, stacklevel=2)
    left_out = len(skipped)  # the classes are counted without them either way
    if bad_files == "error":
        guess = guesses.pop() if len(guesses) == 1 else ""
        problems += _file_problems(where, bad["cannot be read"], bad[f"not {encoding}"], bad["empty"], encoding, guess)
        skipped = {}
    result = (Texts(where, listing.class_names, texts, labels, sources), skipped)
    reported = [n for n in listing.class_names if n not in names or f"{n}/" in empty]
    _raise_if(problems, result, skipped=left_out, reported=reported)
    return result


def read_text_csv(
    path: str,
    *,
    text_column: str,
    label_column: str,
    encoding: str = "utf-8",
    class_names: Sequence[str] | None = None,
    where: str | None = None,
) -> Texts:
    """Reads the texts and labels of CSV file `path`: a header row, then a row per text.

    Args:
        path: the CSV file, comma-separated, its first row naming the columns.
        text_column: the column of the texts.
        label_column: the column of their classes (names, or integers).
        encoding: what the file is written in. Defaults to `"utf-8"`.
        class_names: the training classes, for a test file: its labels must be exactly these,
            and labels index into them in this order. Defaults to the labels found, sorted.
        where: the file as messages name it. Defaults to `"CSV file '<path>'"`.

    Raises:
        TextProblems: every problem of the file (see the module's docstring).
    """
    text_encodings.check_encoding(encoding)
    where = where or f"CSV file {os.fspath(path)!r}"
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise DataError(f"The {where} cannot be read: {error.strerror or error}.") from None
    content, runs = text_encodings.decode(data, encoding)
    problems = [csv_rows.decoding_problem(where, data, runs, encoding)]
    header, rows, parsing = csv_rows.parse(content.removeprefix("\ufeff"), where)
    problems += parsing
    nothing = Texts(where, list(class_names or []), [], [], [])
    if header is None:
        raise TextProblems([p for p in problems if p], nothing)
    columns = {"text_column": text_column, "label_column": label_column}
    at = {field: [i for i, name in enumerate(header) if name == column] for field, column in columns.items()}
    problems.append(csv_rows.columns_problem(where, header, columns, at))
    text_at, label_at = (found[0] if len(found) == 1 else None for found in at.values())
    if text_at is not None:
        blank = [f"  line {line}" for line, row in rows if _blank(row[text_at])]
        head = (
            f"The {where} has {plural(len(blank), 'row')} whose text (column {text_column!r}) is empty or whitespace:"
        )
        problems.append(paragraph(head, blank, "Fill in their text, or remove those rows."))
    if label_at is None:  # `columns_problem` named it
        raise TextProblems([p for p in problems if p], nothing)
    unlabelled = [f"  line {line}" for line, row in rows if not row[label_at].strip()]
    head = f"The {where} has {plural(len(unlabelled), 'row')} without a label (column {label_column!r}):"
    problems.append(paragraph(head, unlabelled, "Label them, or remove those rows."))
    named, found, mixed = csv_rows.classes_of_rows(
        where, {line: row[label_at].strip() for line, row in rows}, label_column
    )
    problems.append(mixed)
    if found or class_names is not None:  # else the rows' problems say why there is no class
        problems.append(_classes_problem(where, found, class_names, "classes", label_column))
    names = list(class_names) if class_names is not None else found
    if text_at is None:  # `columns_problem` named it; no class can be counted
        raise TextProblems([p for p in problems if p], Texts(where, names, [], [], []), reported=names)
    kept = [
        (f"line {line}", row[text_at], names.index(named[line]))
        for line, row in rows
        if named.get(line) in names and not _blank(row[text_at])
    ]
    texts = Texts(where, names, [t for _, t, _ in kept], [c for _, _, c in kept], [s for s, _, _ in kept])
    _raise_if(problems, texts, reported=[n for n in names if n not in found])
    return texts


def split_texts(texts: Texts, validation_split: float, seed: int) -> tuple[Texts, Texts]:
    """Keras's shuffle (seed) then hold-out of the last int(validation_split * n): (train, validation)."""
    if not 0 < validation_split < 1:
        raise ValueError(f"validation_split must be in (0, 1). Received: validation_split={validation_split!r}")
    order, labels = shuffled(range(len(texts.texts)), texts.labels, seed)
    (train, train_labels), (validation, validation_labels) = split(order, labels, validation_split)
    return texts._take(train, train_labels.tolist()), texts._take(validation, validation_labels.tolist())


def shuffled_texts(texts: Texts, seed: int) -> Texts:
    """Keras's shuffle (seed) without a split: a test folder or CSV file."""
    order, labels = shuffled(range(len(texts.texts)), texts.labels, seed)
    return texts._take(order, labels.tolist())


def check_counts(
    texts: Texts, validation_split: float | None = None, *, skipped: int = 0, reported: Collection[str] = ()
) -> list[str]:
    """The problem (a list of one paragraph, or an empty list) naming every class of `texts` with
    fewer than `MIN_TEXTS` texts, or (`validation_split`: the training source) `1 / validation_split`.

    `skipped` is how many files were left out before counting; the classes `reported` (as missing
    or empty) are not named again.
    """
    counts = {name: n for name, n in texts.counts().items() if name not in reported}
    after = f" (after leaving out {plural(skipped, 'file')} that {_do(skipped)} not decode or hold no text)"
    after = after if skipped else ""
    fix = "Add texts of the class, or remove it."
    found = too_few(texts.where, counts, validation_split, floor=MIN_TEXTS, noun="text", after=after, fix=fix)
    return [found] if found else []


def gather(found: list[str], read: Callable[[], R], validation_split: float | None = None) -> R:
    """Runs `read` (a reader, its arguments bound), adds every problem it finds and its count check
    (with `validation_split`: the training source's) to `found`, and returns what it read.

    When the reader found problems, what it read is the texts it could read: a test source can
    still be read against their classes, and one error then lists everything wrong.
    """
    try:
        result = read()
        skipped, reported, problems = len(result[1]) if isinstance(result, tuple) else 0, frozenset[str](), []
    except TextProblems as error:
        result, skipped, reported, problems = error.result, error.skipped, error.reported, error.problems
    found += problems + check_counts(_texts_of(result), validation_split, skipped=skipped, reported=reported)
    return result


def _raise_if(problems: list[str], result: Any, *, skipped: int = 0, reported: Collection[str] = ()) -> None:
    """Raises `TextProblems` when `problems` holds one ("" is none) or a class has too few texts."""
    problems = [p for p in problems if p]
    if problems or check_counts(_texts_of(result), skipped=skipped, reported=reported):
        raise TextProblems(problems, result, skipped=skipped, reported=reported)


def _texts_of(result: Any) -> Texts:
    return result[0] if isinstance(result, tuple) else result


def _classes_problem(
    where: str, names: list[str], class_names: Sequence[str] | None, kind: str, column: str = ""
) -> str:
    """A test source whose classes are not `class_names`, or a training source with fewer than two."""
    if class_names is not None:
        if sorted(names) == sorted(class_names):
            return ""
        return (
            f"The {where} must have the classes of the training data ({', '.join(class_names)}): "
            f"{class_differences(names, class_names)}. Received: {kind} {names}"
        )
    if len(names) >= 2:
        return ""
    of = f" in its label column {column!r}" if column else ""
    head = f"The {where} has only one class{of} ({names[0]!r}): there is nothing to classify." if names else ""
    head = head or f"The {where} has no {kind}{of}: a classifier needs at least two classes."
    more = "rows of another class" if column else "a class folder (a sub-folder of .txt files) per class"
    return f"{head}\nAdd {more}: at least two classes."


def _file_problems(
    where: str,
    unreadable: dict[str, str],
    undecodable: dict[str, str],
    empty: dict[str, str],
    encoding: str,
    guess: str,
) -> list[str]:
    """The paragraphs naming the folder's files that cannot be read, do not decode, or hold no text."""
    the = f"The {where} has"
    read = f'Read them with {_FOLDER}(..., encoding="{guess}") if the folder is written in {guess}'
    if not guess:
        read = f"Read them with {_FOLDER}(..., encoding=...) naming the folder's encoding"
    return [
        paragraph(
            f"{the} {plural(len(unreadable), 'file')} that cannot be read:",
            [f"  {source}: {why}" for source, why in unreadable.items()],
            f"Make them readable, or {_SKIP}.",
        ),
        paragraph(
            f"{the} {plural(len(undecodable), 'file')} that {_do(len(undecodable))} not decode as {encoding}:",
            [f"  {source}: {why}" for source, why in undecodable.items()],
            f"{read}, convert them to {encoding}, or {_SKIP}.",
        ),
        paragraph(
            f"{the} {plural(len(empty), 'file')} that {_do(len(empty))} not hold any text (empty, or only whitespace):",
            [f"  {source}: {why}" for source, why in empty.items()],
            f"Fill them in, remove them, or {_SKIP}.",
        ),
    ]


def _blank(text: str) -> bool:
    return not text.lstrip("\ufeff").strip()


def _decodes_as(guess: str) -> str:
    return f"; it decodes as {guess}" if guess else ""


def _do(n: int) -> str:
    return "does" if n == 1 else "do"
