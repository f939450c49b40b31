"""`@parametrize`: one experiment per combination of values, like `pytest.mark.parametrize`."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.spec.registry import _caller_location
from harness.spec.validators import SpecError, _check

# What `-k` reads as part of a name: pytest's expression parser splits on spaces and brackets
# and reads `and`, `or`, `not` as operators.
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")
_K_KEYWORDS = ("and", "or", "not")
_ARGNAME = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Parametrization:
    argnames: tuple[str, ...]
    argvalues: tuple[tuple[Any, ...], ...]
    ids: tuple[str, ...] | None


def _argnames(argnames: Any) -> tuple[str, ...]:
    field = "parametrize.argnames"
    if isinstance(argnames, str):
        names = tuple(n.strip() for n in argnames.split(","))
    else:
        _check(isinstance(argnames, (list, tuple)), field, "must be a string 'a, b' or a list of names", argnames)
        names = tuple(argnames)
    for n in names:
        if isinstance(n, str) and len(n.split()) > 1:
            raise SpecError(
                field,
                "must separate names with commas",
                argnames,
                hint=f"Write {', '.join(n.split())!r} instead of {n!r}.",
            )
        _check(
            isinstance(n, str) and _ARGNAME.fullmatch(n) is not None,
            field,
            "must be parameter names (identifiers) separated by commas",
            argnames,
        )
    _check(len(set(names)) == len(names), field, "must not repeat a name", argnames)
    return names


def _check_id(pid: str, field: str, generated: bool) -> None:
    hint = "Give ids=[...] of letters, digits, '_', '-' and '.'." if generated else ""
    _check(
        _SAFE_ID.fullmatch(pid) is not None and pid not in _K_KEYWORDS,
        field,
        "must hold only letters, digits, '_', '-' or '.' and not be 'and', 'or' or 'not' (so that -k can select it)",
        pid,
        hint=hint,
    )


def parametrize(
    argnames: str | Sequence[str], argvalues: Sequence[Any], *, ids: Sequence[str] | None = None
) -> Callable:
    """Like `pytest.mark.parametrize`, for a function that returns an experiment.

    Stacked decorators multiply. Each combination becomes its own test item named
    `name[id]`, where the id joins the values with "-" (or uses `ids`).

        @parametrize("learning_rate", [1e-3, 1e-4])
        @parametrize("model", ["MobileNetV2", "ResNet50"])
        def flowers(model, learning_rate):
            return experiment(name="flowers", backbone=backbone(model), ...)

    Args:
        argnames: Comma-separated parameter names of the decorated function ("model, learning_rate"),
            or a list of them.
        argvalues: A list of values (one name) or of tuples of values (several names).
        ids: A list of one id per value, for the test names. Defaults to None: the values
            joined with "-". Ids hold only letters, digits, '_', '-' and '.' so that `-k` selects them.
    """
    names = _argnames(argnames)
    _check(
        isinstance(argvalues, (list, tuple)),
        "parametrize.argvalues",
        "must be a list of values",
        argvalues,
        hint="Wrap a single value in brackets: argvalues=[value].",
    )
    values = []
    for v in argvalues:
        if len(names) > 1:
            _check(isinstance(v, (list, tuple)), "parametrize.argvalues", f"must hold {len(names)} values per entry", v)
        values.append(tuple(v) if len(names) > 1 else (v,))
        _check(len(values[-1]) == len(names), "parametrize.argvalues", f"must hold {len(names)} values per entry", v)
    _check(len(values) > 0, "parametrize.argvalues", "must hold at least one value", argvalues)
    if ids is not None:
        _check(
            isinstance(ids, (list, tuple)) and len(ids) == len(values),
            "parametrize.ids",
            f"must hold one id per value ({len(values)})",
            list(ids) if isinstance(ids, (list, tuple)) else ids,
        )
        for pid in ids:
            _check(isinstance(pid, str), "parametrize.ids", "must be strings", pid)
            _check_id(pid, "parametrize.ids", generated=False)
        shown = list(ids)
    else:
        shown = ["-".join(_id(v) for v in entry) for entry in values]
        for pid in shown:
            _check_id(pid, "parametrize.argvalues", generated=True)
    duplicated = sorted({pid for pid in shown if shown.count(pid) > 1})
    _check(
        not duplicated,
        "parametrize.ids" if ids is not None else "parametrize.argvalues",
        "must give each value a distinct id",
        duplicated[0] if duplicated else None,
        hint="" if ids is not None else "Give ids=[...] to tell equal-looking values apart.",
    )

    def decorate(function: Callable) -> Callable:
        _check(callable(function), "parametrize", "must decorate a function that returns an experiment", function)
        parameters = inspect.signature(function).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        unknown = [n for n in names if n not in parameters and not takes_any]
        _check(
            not unknown,
            "parametrize.argnames",
            f"must be parameters of {function.__name__}({', '.join(parameters)})",
            unknown[0] if unknown else None,
        )
        # Decorators apply bottom-up; as with pytest, the one nearest the function comes first in the id.
        existing = getattr(function, "_harness_parametrize", ())
        repeated = [n for p in existing for n in p.argnames if n in names]
        _check(
            not repeated,
            "parametrize.argnames",
            f"must not repeat a name another @parametrize of {function.__name__} gives",
            repeated[0] if repeated else None,
        )
        parametrization = Parametrization(names, tuple(values), None if ids is None else tuple(ids))
        function._harness_parametrize = (*existing, parametrization)  # type: ignore[attr-defined]
        function._harness_location = _caller_location()  # type: ignore[attr-defined]
        return function

    return decorate


def _id(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return str(value)
    return getattr(value, "name", None) or type(value).__name__


def expand(function: Callable) -> list[tuple[str, dict[str, Any]]]:
    """All (id, kwargs) combinations of a parametrised function, in pytest's order."""
    combos: list[tuple[str, dict[str, Any]]] = [("", {})]
    for param in function._harness_parametrize:  # type: ignore[attr-defined]
        new = []
        for suffix, kwargs in combos:
            for i, values in enumerate(param.argvalues):
                pid = param.ids[i] if param.ids else "-".join(_id(v) for v in values)
                new.append(
                    (
                        "-".join(filter(None, (suffix, pid))),
                        {**kwargs, **dict(zip(param.argnames, values, strict=True))},
                    )
                )
        combos = new
    suffixes = [suffix for suffix, _ in combos]
    duplicated = sorted({s for s in suffixes if suffixes.count(s) > 1})
    if duplicated:
        error = SpecError(
            f"{function.__name__}.ids",
            "must be distinct across the stacked @parametrize decorators",
            duplicated[0],
            hint="Give ids=[...] to tell the combinations apart.",
        )
        error.location = getattr(function, "_harness_location", None)
        raise error
    return combos
