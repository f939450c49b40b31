"""`SpecError`, where a spec was declared, and the validators every constructor uses.

Each validator checks one argument and raises `SpecError` in Keras's form: the field, what was
expected, how to fix it when that is known, then what was received.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# NumPy's seed range (`np.random.default_rng`, `keras.utils.set_random_seed`).
MAX_SEED = 2**32


class SpecError(ValueError):
    """A spec that cannot run: names the field, the expectation and what was received."""

    def __init__(self, field: str, expected: str, received: Any, *, hint: str = "", shown: str | None = None) -> None:
        self.field = field
        self.expected = expected
        self.received = received
        self.hint = hint
        self.location: SourceLocation | None = None
        message = f"`{field}` {expected}."
        if hint:
            message += f" {hint}"
        if shown is None:  # `shown` replaces "name=value" where what was received spans several arguments
            shown = f"{field.rsplit('.', 1)[-1]}={received!r}"
        message += f" Received: {shown}"
        super().__init__(message)


@dataclass(frozen=True)
class SourceLocation:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def _check(condition: bool, field: str, expected: str, received: Any, hint: str = "") -> None:
    if not condition:
        raise SpecError(field, expected, received, hint=hint)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """An int or a finite float, never a bool (True is an int to Python, never a number to a spec)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: Any, field: str) -> int:
    _check(_is_int(value) and value > 0, field, "must be a positive integer", value)
    return int(value)


def _non_negative_int(value: Any, field: str) -> int:
    _check(_is_int(value) and value >= 0, field, "must be a non-negative integer", value)
    return int(value)


def _positive_float(value: Any, field: str) -> float:
    _check(_is_number(value) and value > 0, field, "must be a positive finite number", value)
    return float(value)


def _fraction(value: Any, field: str, *, low_open: bool = False) -> float:
    ok = _is_number(value) and (0 < value <= 1 if low_open else 0 <= value <= 1)
    interval = "in (0, 1]" if low_open else "in [0, 1]"
    _check(ok, field, f"must be a number {interval}", value)
    return float(value)


def _learning_rate(value: Any, field: str) -> float:
    """A learning rate in (0, 1]: above 1 is surely a typo (1e3 for 1e-3)."""
    _check(_is_number(value) and 0 < value <= 1, field, "must be a learning rate in (0, 1], such as 1e-3", value)
    return float(value)


def _seed(value: Any, field: str) -> int:
    _check(
        _is_int(value) and 0 <= value < MAX_SEED, field, "must be an integer in [0, 2**32) (NumPy's seed range)", value
    )
    return int(value)


def _bool(value: Any, field: str) -> bool:
    """Strictly True or False: the string "false" is truthy to Python, so it is refused here."""
    _check(isinstance(value, bool), field, "must be True or False (a bool, not a string or a number)", value)
    return value


def _sequence(value: Any, field: str, example: str) -> tuple[Any, ...]:
    """A list or tuple; a single object is refused with the fix (wrap it in brackets).

    `example` is the bracketed form shown in the hint, e.g. "[min_val_accuracy(0.9)]".
    """
    _check(
        isinstance(value, (list, tuple)),
        field,
        "must be a list",
        value,
        hint=f"Wrap a single value in brackets: {field.rsplit('.', 1)[-1]}={example}.",
    )
    return tuple(value)


def _image_size(value: Any, field: str) -> tuple[int, int]:
    if _is_int(value):
        value = (value, value)
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) and v >= 8 for v in value)
    _check(ok, field, "must be an int or (height, width) of ints >= 8", value)
    return (int(value[0]), int(value[1]))


def _sequence_length(value: Any, field: str) -> int:
    """Tokens per text: an int >= 2 (room for the start and end tokens a classifier's preprocessor adds)."""
    ok = _is_int(value) and value >= 2
    _check(ok, field, "must be an int >= 2 (tokens per text, the special tokens included)", value)
    return int(value)


def _class_names(value: Any, field: str, num_classes: int | None) -> tuple[str, ...]:
    """A list of distinct, non-empty class names, label 0 first; `num_classes` of them when that is given."""
    ok = isinstance(value, (list, tuple)) and all(isinstance(n, str) and n.strip() for n in value)
    _check(ok and len(value) >= 2, field, "must be a list of at least two non-empty strings, label 0 first", value)
    repeated = sorted({n for n in value if list(value).count(n) > 1})
    _check(not repeated, field, f"must name each class once: {', '.join(map(repr, repeated))} repeated", value)
    if num_classes is not None:
        _check(
            len(value) == num_classes,
            field,
            f"must hold one name per class: num_classes={num_classes}, {len(value)} names",
            value,
        )
    return tuple(value)


# --------------------------------------------------------------------------- TFDS split strings

_SLICE_BOUND = r"-?\d+%?"
_ONE_SPLIT = re.compile(rf"([A-Za-z_][\w-]*)(?:\[\s*({_SLICE_BOUND})?\s*:\s*({_SLICE_BOUND})?\s*\])?")


def _split(value: Any, field: str) -> str:
    """Checks a TFDS split string such as "train", "train[:80%]", "train[10:20]+test"."""
    _check(isinstance(value, str) and value.strip() != "", field, "must be a TFDS split string", value)
    for part in value.split("+"):
        part = part.strip()
        ok = _ONE_SPLIT.fullmatch(part) is not None
        if ok:
            for bound in re.findall(_SLICE_BOUND, part.partition("[")[2]):
                if bound.endswith("%") and abs(int(bound[:-1])) > 100:
                    ok = False
        _check(
            ok,
            field,
            "must be a TFDS split such as 'train', 'train[:80%]', 'train[100:200]' or 'train+test'",
            value,
        )
    return value


@dataclass(frozen=True)
class SplitSlice:
    """One part of a TFDS split string: a split name and the interval it reads.

    `unit` is "%" (bounds in percent, negative ones already counted from the end), "abs"
    (example indices; a negative bound is left as it is: where it falls needs the split's size)
    or "all" (the whole split).
    """

    name: str
    start: float
    stop: float
    unit: str


def split_slices(value: str) -> tuple[SplitSlice, ...]:
    """The parts of a valid split string (see `_split`), as intervals."""
    slices = []
    for part in value.split("+"):
        match = _ONE_SPLIT.fullmatch(part.strip())
        assert match is not None, value
        name, low, high = match.groups()
        if low is None and high is None:
            slices.append(SplitSlice(name, 0.0, math.inf, "all"))
            continue
        percent = any(b is not None and b.endswith("%") for b in (low, high))
        top = 100.0 if percent else math.inf
        bounds = []
        for bound, default in ((low, 0.0), (high, top)):
            if bound is None:
                bounds.append(default)
                continue
            number = float(bound.rstrip("%"))
            bounds.append(100.0 + number if percent and number < 0 else number)
        slices.append(SplitSlice(name, bounds[0], bounds[1], "%" if percent else "abs"))
    return tuple(slices)


def _intervals_overlap(a: SplitSlice, b: SplitSlice) -> bool:
    """Whether two slices of the same split surely share an example (False when it cannot be known)."""
    if a.name != b.name or a.start >= a.stop or b.start >= b.stop:
        return False
    if "all" in (a.unit, b.unit):
        return True
    if a.unit != b.unit or min(a.start, a.stop, b.start, b.stop) < 0:
        return False  # percent against indices, or an index from the end: needs the split's size
    return max(a.start, b.start) < min(a.stop, b.stop)


def splits_overlap(first: str, second: str) -> str | None:
    """The split name that two split strings both read from, where they surely overlap; else None."""
    for a in split_slices(first):
        for b in split_slices(second):
            if _intervals_overlap(a, b):
                return a.name
    return None


def _hold_out(train_split: str, fraction: Any) -> tuple[str, str]:
    """`train_split` and a held-out fraction of it as two TFDS slices ("train[:80%]", "train[80%:]")."""
    field = "tfds_dataset.validation_split"
    _check(
        _is_number(fraction) and 0 < fraction < 1,
        field,
        "must be a TFDS split string or a fraction in (0, 1) of train_split",
        fraction,
    )
    percent = round(fraction * 100, 6)
    _check(
        percent == int(percent),
        field,
        "must be a fraction in whole percents (TFDS slices in whole percents)",
        fraction,
        hint="Use for example 0.2, or a split string such as 'train[:15%]'.",
    )
    parts = split_slices(train_split)
    if len(parts) != 1 or parts[0].unit != "all":
        raise SpecError(
            field,
            "as a fraction needs an unsliced train_split such as 'train'",
            fraction,
            hint="Or give both as slices: train_split='train[:80%]', validation_split='train[80%:]'.",
            shown=f"validation_split={fraction!r}, train_split={train_split!r}",
        )
    keep = 100 - int(percent)
    return f"{train_split}[:{keep}%]", f"{train_split}[{keep}%:]"


def class_folders(path: str | Path) -> list[Path]:
    """An image folder's class sub-folders, sorted: as in Keras, a name starting with "." is never a class."""
    return sorted((p for p in Path(path).iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _folder(path: Any, field: str, base: Path) -> str:
    _check(isinstance(path, (str, Path)), field, "must be a path to a folder of class sub-folders", path)
    resolved = (base / Path(path).expanduser()).resolve()
    _check(
        resolved.is_dir(), field, f"must be an existing folder of class sub-folders (looked in {resolved})", str(path)
    )
    classes = class_folders(resolved)
    _check(
        len(classes) >= 2,
        field,
        f"must hold at least two class sub-folders ({resolved} holds {len(classes)})",
        str(path),
    )
    return str(resolved)
