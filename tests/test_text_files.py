"""Text folders and CSV files read, checked and split as `text_dataset_from_directory` splits them.

The folders and files are written into `tmp_path`. Every test but the one marked `slow` is fast
and imports no TensorFlow: Keras's listing, shuffle and split are re-derived here from its source
(`keras/src/utils/dataset_utils.py`); the slow test compares with Keras itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from harness.data.errors import DataError, SkippedFilesWarning
from harness.data.text_files import (
    MIN_TEXTS,
    TextProblems,
    Texts,
    check_counts,
    gather,
    read_text_csv,
    read_text_folder,
    shuffled_texts,
    split_texts,
)

_SKIP = 'leave them out with text_folder(..., bad_files="skip")'


def _folder(root: Path, counts: dict[str, int]) -> Path:
    """Class folders of small texts, each naming its class and number ("sport 3\\n")."""
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / name / f"{i:03}.txt").write_text(f"{name} {i}\n", encoding="utf-8")
    return root


def _csv(path: Path, text: str, encoding: str = "utf-8") -> str:
    path.write_bytes(text.encode(encoding))
    return str(path)


def _rows(labels: list[str]) -> str:
    return "text,label\n" + "".join(f"text {i},{label}\n" for i, label in enumerate(labels))


def _keras_split(root: Path, seed: int, validation_split: float) -> tuple[list[str], list[str]]:
    """`index_directory(shuffle=True)` then `get_training_or_validation_split`, re-derived: relative paths."""
    classes = sorted(d for d in os.listdir(root) if (root / d).is_dir() and not d.startswith("."))
    paths = []
    for name in classes:
        for folder, _, files in sorted(os.walk(root / name), key=lambda entry: entry[0]):
            paths += [
                os.path.relpath(os.path.join(folder, f), root) for f in sorted(files) if f.lower().endswith(".txt")
            ]
    np.random.RandomState(seed).shuffle(paths)
    held_out = int(validation_split * len(paths))
    return paths[:-held_out], paths[-held_out:]


def _message(read, **arguments) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError) as excinfo:
        read(**arguments)
    return str(excinfo.value)


# --------------------------------------------------------------------------- order, shuffle and split


def test_a_folder_is_read_and_split_in_keras_order(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"tech": 7, "business": 9, "sport": 6})
    (root / "sport" / "archive").mkdir()
    (root / "sport" / "archive" / "old.TXT").write_text("sport old\n")  # below a sub-folder, upper case
    (root / "sport" / "notes.md").write_text("not a text")
    texts, skipped = read_text_folder(str(root))
    assert skipped == {}
    assert texts.where == f"text folder '{root}'"
    assert texts.class_names == ["business", "sport", "tech"]
    assert texts.sources[9:17] == [f"sport/{i:03}.txt" for i in range(6)] + ["sport/archive/old.TXT", "tech/000.txt"]
    assert texts.texts[:2] == ["business 0\n", "business 1\n"] and texts.labels[8:10] == [0, 1]
    read = dict(zip(texts.sources, zip(texts.texts, texts.labels, strict=True), strict=True))
    for seed, validation_split in ((0, 0.2), (7, 0.3), (1337, 0.25)):
        train, validation = split_texts(texts, validation_split, seed)
        assert (train.sources, validation.sources) == _keras_split(root, seed, validation_split), seed
        for part in (train, validation):  # each text keeps its source and its label
            assert [read[s] for s in part.sources] == list(zip(part.texts, part.labels, strict=True))


def test_shuffled_texts_is_the_split_shuffle_without_a_split(tmp_path: Path) -> None:
    texts, _ = read_text_folder(str(_folder(tmp_path, {"a": 5, "b": 6})))
    whole = shuffled_texts(texts, 3)
    train, validation = split_texts(texts, 0.2, 3)
    assert whole.sources == train.sources + validation.sources
    assert whole.labels == train.labels + validation.labels
    assert sorted(whole.sources) == sorted(texts.sources)
    with pytest.raises(ValueError, match=r"validation_split must be in \(0, 1\)"):
        split_texts(texts, 1.0, 3)


def test_texts_are_kept_exactly_and_hidden_names_are_never_read(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"a": 5, "b": 5})
    (root / "a" / "000.txt").write_bytes(b"  two\r\nlines \n")
    (root / "a" / "001.txt").write_bytes("\ufeffmarked caf\u00e9".encode())
    for hidden in (".ipynb_checkpoints", "a/.ipynb_checkpoints"):
        (root / hidden).mkdir()
        (root / hidden / "x-checkpoint.txt").write_bytes(b"\xff")  # would not decode, were it read
    (root / "b" / "._000.txt").write_bytes(b"\x00\x05\x16\x07")  # macOS's AppleDouble file
    texts, _ = read_text_folder(str(root))
    assert texts.class_names == ["a", "b"]
    assert texts.texts[:2] == ["  two\r\nlines \n", "\ufeffmarked caf\u00e9"]  # as Keras reads the bytes
    assert len(texts.texts) == 10


# --------------------------------------------------------------------------- what a text folder may get wrong


def test_files_that_do_not_decode_name_the_offset_the_bytes_and_the_encoding_that_reads_them(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"business": 5, "sport": 6})
    (root / "sport" / "001.txt").write_bytes(b"It didn\x92t rise, said the \x93bank\x94 at noon")
    (root / "sport" / "002.txt").write_bytes(b"x" * 1500 + b"\xe9t\xe9")
    message = _message(read_text_folder, root=str(root))
    assert message == (
        f"The text folder '{root}' has 2 files that do not decode as utf-8:\n"
        "  sport/001.txt: byte 0x92 at offset 7 ('It didn\\x92t rise, said the ba'), and 2 more after it; "
        "it decodes as cp1252\n"
        f"  sport/002.txt: byte 0xe9 at offset 1,500 ('{'x' * 20}\\xe9t'), and 1 more after it; it decodes as cp1252\n"
        'Read them with text_folder(..., encoding="cp1252") if the folder is written in cp1252, convert them to '
        f"utf-8, or {_SKIP}.\n"
        f"The text folder '{root}' has 1 class with too few texts (after leaving out 2 files that do not decode "
        "or hold no text): every class needs at least 5 texts.\n"
        "  sport: 4 texts\n"
        "Add texts of the class, or remove it."
    )
    texts, _ = read_text_folder(str(root), encoding="cp1252")
    assert texts.texts[6] == "It didn\u2019t rise, said the \u201cbank\u201d at noon"


def test_latin_1_is_suggested_where_cp1252_does_not_decode(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"a": 5, "b": 5})
    (root / "a" / "000.txt").write_bytes(b"\x81 undefined in cp1252")
    message = _message(read_text_folder, root=str(root), encoding="cp1252")
    assert message.splitlines()[1:3] == [
        "  a/000.txt: byte 0x81 at offset 0 ('\\x81 undefined in cp1252'); it decodes as latin-1",
        (
            'Read them with text_folder(..., encoding="latin-1") if the folder is written in latin-1, convert them '
            f"to cp1252, or {_SKIP}."
        ),
    ]


def test_empty_and_whitespace_files_are_problems(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"a": 6, "b": 6})
    (root / "a" / "000.txt").write_bytes(b"")
    (root / "b" / "003.txt").write_bytes(b" \r\n\t")
    assert _message(read_text_folder, root=str(root)) == (
        f"The text folder '{root}' has 2 files that do not hold any text (empty, or only whitespace):\n"
        "  a/000.txt: 0 bytes\n"
        "  b/003.txt: only whitespace (4 bytes)\n"
        f"Fill them in, remove them, or {_SKIP}."
    )


def test_a_class_folder_without_texts_says_what_it_holds(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"a": 5, "b": 5})
    (root / "empty").mkdir()
    (root / "pdfs").mkdir()
    (root / "pdfs" / "1.pdf").write_bytes(b"%PDF")
    (root / "pdfs" / "README").write_text("x")
    assert _message(read_text_folder, root=str(root)) == (
        f"The text folder '{root}' has 2 class folders without text files (.txt): each would be a class without "
        "examples.\n"
        "  empty/: empty\n"
        "  pdfs/: 2 other files (.pdf, no extension)\n"
        'Add .txt files, or remove the folder (a folder whose name starts with "." is never a class).'
    )


def test_classes_with_too_few_texts(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"a": 8, "b": 2, "c": MIN_TEXTS})
    assert _message(read_text_folder, root=str(root)) == (
        f"The text folder '{root}' has 1 class with too few texts: every class needs at least 5 texts.\n"
        "  b: 2 texts\n"
        "Add texts of the class, or remove it."
    )
    texts = Texts("text folder '/d'", ["a", "b"], ["x"] * 16, [0] * 8 + [1] * 8, [""] * 16)
    assert check_counts(texts) == []
    assert check_counts(texts, 0.1) == [
        (
            "The text folder '/d' has 2 classes with too few texts: every class needs at least 10 texts "
            "(1 / validation_split, so that the validation split holds one of them).\n"
            "  a: 8 texts\n"
            "  b: 8 texts\n"
            "Add texts of the class, or remove it."
        )
    ]


def test_one_class_folder_is_nothing_to_classify(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"spam": 6})
    assert _message(read_text_folder, root=str(root)) == (
        f"The text folder '{root}' has only one class ('spam'): there is nothing to classify.\n"
        "Add a class folder (a sub-folder of .txt files) per class: at least two classes."
    )


def test_every_problem_of_a_folder_in_one_error(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"business": 6, "sport": 3, "tech": 6})
    (root / "business" / "001.txt").write_bytes(b"caf\xe9")
    (root / "tech" / "002.txt").write_bytes(b"")
    (root / "politics").mkdir()
    (root / "politics" / "notes.md").write_text("x")
    with pytest.raises(TextProblems) as excinfo:
        read_text_folder(str(root))
    assert str(excinfo.value) == (
        f"The text folder '{root}' has 1 class folder without text files (.txt): it would be a class without "
        "examples.\n"
        "  politics/: 1 other file (.md)\n"
        'Add .txt files, or remove the folder (a folder whose name starts with "." is never a class).\n'
        f"The text folder '{root}' has 1 file that does not decode as utf-8:\n"
        "  business/001.txt: byte 0xe9 at offset 3 ('caf\\xe9'); it decodes as cp1252\n"
        'Read them with text_folder(..., encoding="cp1252") if the folder is written in cp1252, convert them to '
        f"utf-8, or {_SKIP}.\n"
        f"The text folder '{root}' has 1 file that does not hold any text (empty, or only whitespace):\n"
        "  tech/002.txt: 0 bytes\n"
        f"Fill them in, remove them, or {_SKIP}.\n"
        f"The text folder '{root}' has 1 class with too few texts (after leaving out 2 files that do not decode "
        "or hold no text): every class needs at least 5 texts.\n"
        "  sport: 3 texts\n"
        "Add texts of the class, or remove it."
    )
    assert len(excinfo.value.problems) == 3  # the count check is added by `str()` and by `gather`
    assert "Traceback" not in str(excinfo.value)


def test_skip_leaves_bad_files_out_with_a_warning_and_counts_without_them(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"a": 6, "b": 7})
    (root / "a" / "001.txt").write_bytes("\ufeffhi".encode("utf-16-le"))  # Windows's "Unicode" text
    (root / "b" / "004.txt").write_bytes(b"\n")
    with pytest.warns(SkippedFilesWarning) as caught:
        texts, skipped = read_text_folder(str(root), bad_files="skip")
    assert str(caught[0].message) == (
        f"The text folder '{root}' has 2 files that do not decode or hold no text, left out "
        '(text_folder(..., bad_files="skip")):\n'
        "  a/001.txt: not utf-8: byte 0xff at offset 0 ('\\xffh\\x00i\\x00'), and 1 more after it; it decodes as "
        "utf-16\n"
        "  b/004.txt: empty: only whitespace (1 byte)"
    )
    assert set(skipped) == {"a/001.txt", "b/004.txt"}
    assert len(texts.texts) == 11 and "a/001.txt" not in texts.sources
    (root / "b" / "000.txt").write_bytes(b"")
    (root / "b" / "001.txt").write_bytes(b"")
    with pytest.warns(SkippedFilesWarning), pytest.raises(DataError) as excinfo:
        read_text_folder(str(root), bad_files="skip")
    assert str(excinfo.value) == (
        f"The text folder '{root}' has 1 class with too few texts (after leaving out 4 files that do not decode "
        "or hold no text): every class needs at least 5 texts.\n"
        "  b: 4 texts\n"
        "Add texts of the class, or remove it."
    )


def test_a_test_folder_needs_the_training_classes_in_their_order(tmp_path: Path) -> None:
    test = _folder(tmp_path, {"cats": 5, "dogs": 5, "bats": 5})
    assert _message(read_text_folder, root=str(test), class_names=["dogs", "cats", "owls"]) == (
        f"The text folder '{test}' must have the classes of the training data (dogs, cats, owls): missing 'owls'; "
        "extra 'bats'. Received: class folders ['bats', 'cats', 'dogs']"
    )
    texts, _ = read_text_folder(str(test), class_names=["dogs", "cats", "bats"], where="test folder 't'")
    assert texts.class_names == ["dogs", "cats", "bats"]
    assert texts.sources[0] == "dogs/000.txt" and texts.labels[:6] == [0] * 5 + [1]


def test_an_unknown_encoding_is_a_clear_error(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"a": 5, "b": 5})
    assert _message(read_text_folder, root=str(root), encoding="utf8x") == (
        '`encoding` must name a text encoding Python knows, such as "utf-8", "cp1252" or "latin-1". '
        "Did you mean 'utf8' or 'utf7' or 'utf32'? Received: encoding='utf8x'"
    )
    assert "Received: encoding='base64'" in _message(read_text_folder, root=str(root), encoding="base64")
    with pytest.raises(ValueError, match="bad_files must be"):
        read_text_folder(str(root), bad_files="ignore")


def test_more_than_a_hundred_problems_of_a_kind_are_cut_short(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"a": 5, "b": 110})
    for i in range(103):
        (root / "b" / f"{i:03}.txt").write_bytes(b"")
    lines = _message(read_text_folder, root=str(root)).splitlines()
    assert lines[0] == f"The text folder '{root}' has 103 files that do not hold any text (empty, or only whitespace):"
    assert lines[100:103] == ["  b/099.txt: 0 bytes", "  ... and 3 more", f"Fill them in, remove them, or {_SKIP}."]


# --------------------------------------------------------------------------- CSV files


def test_a_csv_file_with_string_labels(tmp_path: Path) -> None:
    rows = '\ufefftext , label\n"Hello, world",pos\n"two\nlines",neg\n\n,,\n' + "".join(
        f"text {i}, {'pos' if i % 2 else 'neg'} \n" for i in range(8)
    )
    texts = read_text_csv(_csv(tmp_path / "x.csv", rows), text_column="text", label_column="label")
    assert texts.where == f"CSV file '{tmp_path / 'x.csv'}'"
    assert texts.class_names == ["neg", "pos"]
    assert texts.texts[:3] == ["Hello, world", "two\nlines", "text 0"]
    assert texts.labels[:3] == [1, 0, 0]
    assert texts.sources[:3] == ["line 2", "line 3", "line 7"]  # a row is named by the line it starts on
    train, validation = split_texts(texts, 0.2, 0)
    assert len(train.texts) == 8 and len(validation.texts) == 2


def test_a_csv_file_with_integer_labels_sorts_them_as_numbers(tmp_path: Path) -> None:
    labels = ["2", "10", "07", "7", "-1"] * 5
    texts = read_text_csv(_csv(tmp_path / "x.csv", _rows(labels)), text_column="text", label_column="label")
    assert texts.class_names == ["-1", "2", "7", "10"]
    assert texts.labels[:5] == [1, 3, 2, 2, 0]  # "07" and "7" are one class


def test_a_label_column_that_mixes_integers_and_names(tmp_path: Path) -> None:
    path = _csv(tmp_path / "x.csv", _rows(["1", "0", "n/a"] + ["0", "1"] * 5))
    message = _message(read_text_csv, path=path, text_column="text", label_column="label")
    assert message.splitlines()[:3] == [
        (
            f"The label column 'label' of the CSV file '{path}' mixes integers and names: its labels must be all "
            "one or the other."
        ),
        "  line 4: 'n/a'",
        "Label every row with a class number, or every row with a class name.",
    ]


def test_a_missing_column_names_the_columns_and_the_close_match(tmp_path: Path) -> None:
    path = _csv(tmp_path / "x.csv", _rows(["a", "b"] * 5))
    assert _message(read_text_csv, path=path, text_column="txt", label_column="category") == (
        f"The CSV file '{path}' does not have the columns named:\n"
        "  text_column='txt': no such column; did you mean 'text'?\n"
        "  label_column='category': no such column\n"
        "Its columns are 'text', 'label': name them in text_csv(..., text_column=..., label_column=...)."
    )
    semicolons = _csv(tmp_path / "y.csv", "text;label\nx;a\n")
    assert "the file comma-separated?" in _message(
        read_text_csv, path=semicolons, text_column="text", label_column="label"
    )


def test_a_label_column_with_one_class(tmp_path: Path) -> None:
    path = _csv(tmp_path / "x.csv", _rows(["spam"] * 6))
    assert _message(read_text_csv, path=path, text_column="text", label_column="label") == (
        f"The CSV file '{path}' has only one class in its label column 'label' ('spam'): there is nothing to "
        "classify.\n"
        "Add rows of another class: at least two classes."
    )


def test_a_csv_file_that_does_not_decode_names_each_line(tmp_path: Path) -> None:
    rows = _rows(["a", "b"] * 5).replace("text 3", "caf\u00e9 3").replace("text 8", "na\u00efve 8")
    path = _csv(tmp_path / "x.csv", rows, encoding="cp1252")
    assert _message(read_text_csv, path=path, text_column="text", label_column="label") == (
        f"The CSV file '{path}' has 2 lines that do not decode as utf-8; it decodes as cp1252:\n"
        "  line 5: byte 0xe9 at offset 41 ('caf\\xe9 3,b')\n"
        "  line 10: byte 0xef at offset 85 ('na\\xefve 8,a')\n"
        'Read it with text_csv(..., encoding="cp1252"), or convert it to utf-8.'
    )
    texts = read_text_csv(path, text_column="text", label_column="label", encoding="cp1252")
    assert texts.texts[3] == "caf\u00e9 3"


def test_csv_rows_without_text_or_label_and_of_the_wrong_length(tmp_path: Path) -> None:
    rows = _rows(["a", "b"] * 5) + "  ,a\nno label, \ntoo,many,fields\n"
    path = _csv(tmp_path / "x.csv", rows)
    assert _message(read_text_csv, path=path, text_column="text", label_column="label") == (
        f"The CSV file '{path}' has 1 row with the wrong number of fields (its header has 2):\n"
        "  line 14: 3 fields\n"
        'Quote the fields that hold commas ("a, b"), or fix those rows.\n'
        f"The CSV file '{path}' has 1 row whose text (column 'text') is empty or whitespace:\n"
        "  line 12\n"
        "Fill in their text, or remove those rows.\n"
        f"The CSV file '{path}' has 1 row without a label (column 'label'):\n"
        "  line 13\n"
        "Label them, or remove those rows."
    )


def test_a_csv_file_without_a_header_or_rows(tmp_path: Path) -> None:
    empty = _csv(tmp_path / "x.csv", "\n\n")
    assert _message(read_text_csv, path=empty, text_column="text", label_column="label") == (
        f"The CSV file '{empty}' is empty: it needs a header row naming its columns, then a row per text.\n"
        "Write a header row such as `text,label` first."
    )
    header = _csv(tmp_path / "y.csv", "text,label\n")
    assert _message(read_text_csv, path=header, text_column="text", label_column="label") == (
        f"The CSV file '{header}' has a header but no rows.\nAdd a row per text below the header."
    )


def test_a_test_csv_file_needs_the_training_classes(tmp_path: Path) -> None:
    path = _csv(tmp_path / "x.csv", _rows(["ham", "spam", "eggs"] * 5))
    assert _message(
        read_text_csv, path=path, text_column="text", label_column="label", class_names=["spam", "ham"]
    ) == (
        f"The CSV file '{path}' must have the classes of the training data (spam, ham): extra 'eggs'. "
        "Received: classes ['eggs', 'ham', 'spam']"
    )
    fitting = _csv(tmp_path / "y.csv", _rows(["ham", "spam"] * 5))
    texts = read_text_csv(fitting, text_column="text", label_column="label", class_names=["spam", "ham"])
    assert texts.labels[:2] == [1, 0]


# --------------------------------------------------------------------------- one error for a whole data set


def test_gather_lists_every_source_and_the_training_count_check_together(tmp_path: Path) -> None:
    train_root = _folder(tmp_path / "train", {"a": 8, "b": 6})
    (train_root / "a" / "000.txt").write_bytes(b"")
    test_csv = _csv(tmp_path / "test.csv", _rows(["a", "c"] * 5))
    found: list[str] = []
    train, skipped = gather(found, partial(read_text_folder, str(train_root)), validation_split=0.1)
    test = gather(
        found, partial(read_text_csv, test_csv, text_column="text", label_column="label", class_names=train.class_names)
    )
    assert skipped == {} and len(train.texts) == 13 and test.class_names == ["a", "b"]
    assert [problem.splitlines()[0] for problem in found] == [
        f"The text folder '{train_root}' has 1 file that does not hold any text (empty, or only whitespace):",
        (
            f"The text folder '{train_root}' has 2 classes with too few texts (after leaving out 1 file that does "
            "not decode or hold no text): every class needs at least 10 texts (1 / validation_split, so that the "
            "validation split holds one of them)."
        ),
        (
            f"The CSV file '{test_csv}' must have the classes of the training data (a, b): missing 'b'; extra 'c'. "
            "Received: classes ['a', 'c']"
        ),
    ]
    found.clear()
    good = _folder(tmp_path / "good", {"a": 10, "b": 10})
    texts, _ = gather(found, partial(read_text_folder, str(good)), validation_split=0.1)
    assert found == [] and len(texts.texts) == 20


def test_reading_imports_no_tensorflow() -> None:
    code = "import sys, harness.data.text_files; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr


# --------------------------------------------------------------------------- against Keras itself


@pytest.mark.slow
def test_the_splits_are_text_dataset_from_directorys(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    root = _folder(tmp_path / "train", {"tech": 7, "business": 9, "sport": 6})
    (root / "sport" / "archive").mkdir()
    (root / "sport" / "archive" / "old.TXT").write_bytes(b"sport\r\nold \n")
    (root / "business" / "003.txt").write_bytes("\ufeffmarked".encode())
    test = _folder(tmp_path / "test", {"tech": 5, "business": 5, "sport": 5})
    texts, _ = read_text_folder(str(root))
    for seed, validation_split in ((0, 0.2), (7, 0.3)):
        train_ds, validation_ds = keras.utils.text_dataset_from_directory(
            str(root), validation_split=validation_split, subset="both", seed=seed, batch_size=None, verbose=False
        )
        train, validation = split_texts(texts, validation_split, seed)
        assert train_ds.class_names == texts.class_names
        expected = [(bytes(text), int(label)) for text, label in validation_ds.as_numpy_iterator()]
        assert [(t.encode(), label) for t, label in zip(validation.texts, validation.labels, strict=True)] == expected
        shuffled_again = [(bytes(text), int(label)) for text, label in train_ds.as_numpy_iterator()]
        ours = [(t.encode(), label) for t, label in zip(train.texts, train.labels, strict=True)]
        assert sorted(ours) == sorted(shuffled_again)  # Keras shuffles the training files again in tf.data
    test_texts, _ = read_text_folder(str(test), class_names=texts.class_names)
    test_ds = keras.utils.text_dataset_from_directory(
        str(test), class_names=texts.class_names, shuffle=False, batch_size=None, verbose=False
    )
    expected = [(bytes(text), int(label)) for text, label in test_ds.as_numpy_iterator()]
    assert [(t.encode(), label) for t, label in zip(test_texts.texts, test_texts.labels, strict=True)] == expected
