"""What a text file is written in: the encoding's name checked, every byte that does not decode found.

`harness.data.text_files` reads texts as bytes and decodes them with `bytes.decode(encoding)`, as
Python does; where that fails, `decode` finds every run of bytes that does not decode (not only
the first, which `UnicodeDecodeError.start` names), `describe` shows one in its context, and
`guess` names an encoding that decodes the whole file, for the message's fix.
"""

from __future__ import annotations

import codecs
import difflib
import encodings.aliases
import re
import threading

from harness.data.errors import DataError

__all__ = ["check_encoding", "decode", "describe", "guess", "line_of"]

# What a file that does not decode may be written in, tried in this order (UTF-16 first when the
# file starts with its byte-order mark): latin-1 decodes any bytes, so it comes last.
GUESSES = ("utf-8", "cp1252", "latin-1")
_CONTEXT = 20  # bytes shown on either side of the bytes that do not decode, within their line
_LINE_END = re.compile(r"\r\n|\r|\n")
_ERRORS = "harness.text_encodings.note"  # the error handler that notes where decoding failed
_noted = threading.local()


def check_encoding(encoding: str) -> None:
    """Raises `DataError`, with the close matches, when Python has no text encoding named `encoding`."""
    if _is_text_encoding(encoding):
        return
    names = {*encodings.aliases.aliases, *encodings.aliases.aliases.values()}
    known = sorted({name.replace("_", "-") for name in names if _is_text_encoding(name)})
    close: dict[str, str] = {}  # the best spelling of each close codec
    for name in difflib.get_close_matches(encoding.lower().replace("_", "-"), known, n=8):
        close.setdefault(codecs.lookup(name).name, name)
    close = dict(list(close.items())[:3])
    hint = f" Did you mean {' or '.join(map(repr, close.values()))}?" if close else ""
    raise DataError(
        f'`encoding` must name a text encoding Python knows, such as "utf-8", "cp1252" or "latin-1".{hint} '
        f"Received: encoding={encoding!r}"
    )


def decode(data: bytes, encoding: str) -> tuple[str, list[tuple[int, int]]]:
    """`data` decoded, and the (start, end) byte offsets of every run that does not decode (each
    decoded as U+FFFD)."""
    try:
        return data.decode(encoding), []
    except UnicodeDecodeError:
        _noted.runs = []
        text = data.decode(encoding, errors=_ERRORS)
        return text, _noted.runs


def describe(data: bytes, start: int, end: int, encoding: str) -> str:
    """The bytes `data[start:end]` in their line: "byte 0x92 at offset 1,203 ('it didn\\x92t work')"."""
    bad = data[start:end]
    before = _LINE_END.split(data[max(0, start - _CONTEXT) : start].decode(encoding, errors="ignore"))[-1]
    after = _LINE_END.split(data[end : end + _CONTEXT].decode(encoding, errors="ignore"))[0]
    context = repr(before)[1:-1] + "".join(f"\\x{b:02x}" for b in bad) + repr(after)[1:-1]
    shown = " ".join(f"0x{b:02x}" for b in bad)
    return f"{'byte' if len(bad) == 1 else 'bytes'} {shown} at offset {start:,} ('{context}')"


def guess(data: bytes, encoding: str) -> str:
    """The first encoding of `GUESSES` other than `encoding` that decodes all of `data`, else ""."""
    marked = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    declared = codecs.lookup(encoding).name
    for name in ("utf-16", *GUESSES) if marked else GUESSES:
        if codecs.lookup(name).name == declared:
            continue
        try:
            data.decode(name)
        except UnicodeDecodeError:
            continue
        return name
    return ""


def line_of(data: bytes, offset: int, encoding: str) -> int:
    """The line (from 1) that byte `offset` of `data` is on, lines ending as `csv` ends them (\\n, \\r\\n, \\r)."""
    before = data[:offset].decode(encoding, errors="replace")
    return 1 + len(_LINE_END.findall(before))


def _is_text_encoding(name: str) -> bool:
    try:
        found = codecs.lookup(name)
    except LookupError:
        return False
    return getattr(found, "_is_text_encoding", True)  # False for "base64", "rot13": `bytes.decode` refuses them


def _note(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    _noted.runs.append((error.start, error.end))
    return "\ufffd", error.end


codecs.register_error(_ERRORS, _note)
