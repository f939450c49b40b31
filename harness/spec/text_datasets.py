"""Text data sets: a folder of class sub-folders of `.txt` files, and a CSV file.

`tfds_dataset` and `arrays` (`harness.spec.datasets`) take text too, with `sequence_length`. Texts
are tokenised by the backbone's own tokenizer (`harness.data.text_loading`); what is wrong with
the files (undecodable bytes, empty texts, missing columns, too few texts) is found before
training and reported in one error (`harness.data.text_files`).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.spec.registry import _caller_dir
from harness.spec.validators import _check, _folder, _is_number, _seed, _sequence_length
from harness.spec.vocabulary import BAD_FILES, DEFAULT_SEQUENCE_LENGTH, TEXT


@dataclass(frozen=True)
class TextFolder:
    """A folder of class sub-folders of `.txt` files, read as `text_dataset_from_directory` reads it."""

    path: str
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH
    validation_split: float = 0.2
    test_path: str | None = None
    seed: int = 0
    encoding: str = "utf-8"
    bad_files: str = "error"
    modality = TEXT

    @property
    def identity(self) -> dict[str, Any]:
        return {"source": "text_folder", "path": self.path, "seed": self.seed, "encoding": self.encoding}


@dataclass(frozen=True)
class TextCsv:
    """A CSV file with a text column and a label column (labels as strings or ints)."""

    path: str
    text_column: str
    label_column: str
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH
    validation_split: float = 0.2
    test_path: str | None = None
    seed: int = 0
    encoding: str = "utf-8"
    modality = TEXT

    @property
    def identity(self) -> dict[str, Any]:
        return {
            "source": "text_csv",
            "path": self.path,
            "columns": [self.text_column, self.label_column],
            "seed": self.seed,
            "encoding": self.encoding,
        }


def _encoding(value: Any, field: str) -> str:
    try:
        known = isinstance(value, str) and codecs.lookup(value) is not None
    except LookupError:
        known = False
    _check(known, field, "must be a text encoding Python knows, e.g. 'utf-8', 'latin-1' or 'cp1252'", value)
    return str(value)


def _fraction_held_out(value: Any, field: str) -> float:
    _check(_is_number(value) and 0 < value < 1, field, "must be a fraction in (0, 1)", value)
    return float(value)


def _outside(test: str | None, train: str, field: str, given: Any) -> None:
    if test is None:
        return
    train_path, test_path = Path(train), Path(test)
    inside = train_path == test_path or train_path in test_path.parents or test_path in train_path.parents
    _check(not inside, field, f"must be outside the training data {train} and not hold it", str(given))


def _csv_file(path: Any, field: str, base: Path) -> str:
    _check(isinstance(path, (str, Path)), field, "must be the path to a CSV file", path)
    resolved = (base / Path(path).expanduser()).resolve()
    _check(resolved.is_file(), field, f"must be an existing CSV file (looked for {resolved})", str(path))
    return str(resolved)


def text_folder(
    path: str,
    *,
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
    validation_split: float = 0.2,
    test_path: str | None = None,
    seed: int = 0,
    encoding: str = "utf-8",
    bad_files: str = "error",
) -> TextFolder:
    """A folder with one sub-folder of `.txt` files per class, as `text_dataset_from_directory` reads it.

    The files are listed, shuffled and split as Keras does (class folders sorted by name, the
    last `validation_split` of the shuffled files held out). A relative `path` is resolved
    against the spec file's folder. Every file is read and decoded before training: what does
    not decode, empty texts, class folders without texts and classes with too few texts are
    reported together, in one error.

    Args:
        path: The folder of class sub-folders.
        sequence_length: Tokens per text, the special tokens included; longer texts are cut
            (the metrics JSON's `truncated` says what share). Defaults to 128.
        validation_split: Fraction of the texts held out for validation, in (0, 1). Defaults to 0.2.
        test_path: A separate folder (the same class sub-folders) used as the test split, outside
            `path`. Defaults to None (no test split).
        seed: Seed of the train/validation shuffle. Defaults to 0.
        encoding: What the files are decoded with. Defaults to "utf-8".
        bad_files: Files that do not decode or hold no text: "error" fails with them all; "skip"
            leaves them out, with a warning and `skipped_files` in the metrics JSON. Defaults to "error".
    """
    base = _caller_dir()
    resolved = _folder(path, "text_folder.path", base)
    test = None if test_path is None else _folder(test_path, "text_folder.test_path", base)
    _outside(test, resolved, "text_folder.test_path", test_path)
    expected = (
        "must be 'error' (files that do not decode fail the experiment) or 'skip' (they are left out, with a warning)"
    )
    _check(bad_files in BAD_FILES, "text_folder.bad_files", expected, bad_files)
    return TextFolder(
        path=resolved,
        sequence_length=_sequence_length(sequence_length, "text_folder.sequence_length"),
        validation_split=_fraction_held_out(validation_split, "text_folder.validation_split"),
        test_path=test,
        seed=_seed(seed, "text_folder.seed"),
        encoding=_encoding(encoding, "text_folder.encoding"),
        bad_files=bad_files,
    )


def text_csv(
    path: str,
    *,
    text_column: str,
    label_column: str,
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
    validation_split: float = 0.2,
    test_path: str | None = None,
    seed: int = 0,
    encoding: str = "utf-8",
) -> TextCsv:
    """A CSV file (a header row, then one text per row) with a text column and a label column.

    The rows are shuffled with `seed` and the last `validation_split` of them held out, as for a
    text folder. Labels may be strings or ints; the classes are the distinct labels, sorted. A
    relative path is resolved against the spec file's folder. Columns, encoding, empty texts and
    classes are checked before training, every problem in one error.

    Args:
        path: The CSV file.
        text_column: The header of the column holding the texts.
        label_column: The header of the column holding the labels.
        sequence_length: Tokens per text, the special tokens included. Defaults to 128.
        validation_split: Fraction of the rows held out for validation, in (0, 1). Defaults to 0.2.
        test_path: A second CSV file with the same columns and classes, used as the test split.
            Defaults to None (no test split).
        seed: Seed of the train/validation shuffle. Defaults to 0.
        encoding: What the file is decoded with. Defaults to "utf-8".
    """
    base = _caller_dir()
    resolved = _csv_file(path, "text_csv.path", base)
    test = None if test_path is None else _csv_file(test_path, "text_csv.test_path", base)
    _check(test != resolved, "text_csv.test_path", f"must be another file than the training data {resolved}", test_path)
    for field, column in (("text_column", text_column), ("label_column", label_column)):
        _check(isinstance(column, str) and column != "", f"text_csv.{field}", "must be a column header", column)
    _check(
        text_column != label_column,
        "text_csv.label_column",
        f"must be another column than text_column ({text_column!r})",
        label_column,
    )
    return TextCsv(
        path=resolved,
        text_column=text_column,
        label_column=label_column,
        sequence_length=_sequence_length(sequence_length, "text_csv.sequence_length"),
        validation_split=_fraction_held_out(validation_split, "text_csv.validation_split"),
        test_path=test,
        seed=_seed(seed, "text_csv.seed"),
        encoding=_encoding(encoding, "text_csv.encoding"),
    )
