"""The rows of a CSV file of texts, and what is wrong with them, for `harness.data.text_files`.

Each function returns what it read with its problems as paragraphs ("" where there is none);
`read_text_csv` raises them all together. The file is comma-separated (`csv`'s "excel" dialect,
quoted fields may span lines); a row is named by the line it starts on; a row whose cells are all
blank is skipped; the column names and the labels are stripped.
"""

from __future__ import annotations

import csv
import difflib
import io
import re

from harness.data import text_encodings
from harness.data.listing import paragraph, plural

__all__ = ["CALL", "classes_of_rows", "columns_problem", "decoding_problem", "parse"]

# The spec constructor that the fixes name.
CALL = "text_csv"
_INTEGER = re.compile(r"[+-]?[0-9]+")

Rows = list[tuple[int, list[str]]]  # (the line a row starts on, its cells)


def decoding_problem(where: str, data: bytes, runs: list[tuple[int, int]], encoding: str) -> str:
    """The lines of the file `data` that hold bytes that do not decode (`runs`), each with the first of them."""
    first: dict[int, tuple[int, int]] = {}
    for start, end in runs:
        first.setdefault(text_encodings.line_of(data, start, encoding), (start, end))
    guess = text_encodings.guess(data, encoding)
    decodes = f"; it decodes as {guess}" if guess else ""
    head = f"The {where} has {plural(len(first), 'line')} that {_do(len(first))} not decode as {encoding}{decodes}:"
    lines = [f"  line {line}: {text_encodings.describe(data, *run, encoding)}" for line, run in first.items()]
    fix = f'Read it with {CALL}(..., encoding="{guess or "..."}"), or convert it to {encoding}.'
    return paragraph(head, lines, fix)


def parse(content: str, where: str) -> tuple[list[str] | None, Rows, list[str]]:
    """The header (None without one), the rows of its length, and the problems."""
    header: list[str] | None = None
    rows: Rows = []
    wrong: list[str] = []
    problems: list[str] = []
    reader = csv.reader(io.StringIO(content, newline=""))
    end = 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if all(not cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip() for cell in record]
            elif len(record) == len(header):
                rows.append((start, record))
            else:
                wrong.append(f"  line {start}: {plural(len(record), 'field')}")
    except csv.Error as error:
        problems.append(f"The {where} cannot be parsed as CSV from line {end + 1} on: {error}.\nFix the file there.")
    if header is None and not problems:
        head = f"The {where} is empty: it needs a header row naming its columns, then a row per text."
        problems.append(f"{head}\nWrite a header row such as `text,label` first.")
    elif header is not None and not rows and not wrong and not problems:
        problems.append(f"The {where} has a header but no rows.\nAdd a row per text below the header.")
    head = f"The {where} has {plural(len(wrong), 'row')} with the wrong number of fields (its header has {len(header or [])}):"
    problems.append(paragraph(head, wrong, 'Quote the fields that hold commas ("a, b"), or fix those rows.'))
    return header, rows, problems


def columns_problem(where: str, header: list[str], columns: dict[str, str], at: dict[str, list[int]]) -> str:
    """The `columns` ({field: name}) that the header lacks (with a close match) or has more than once.

    `at` holds, per field, the positions of the header's columns of that name.
    """
    lines = []
    for field, name in columns.items():
        if not at[field]:
            close = difflib.get_close_matches(name, header, n=1)
            lines.append(f"  {field}={name!r}: no such column{f'; did you mean {close[0]!r}?' if close else ''}")
        elif len(at[field]) > 1:
            numbers = ", ".join(str(i + 1) for i in at[field])
            lines.append(f"  {field}={name!r}: {len(at[field])} columns have that name (columns {numbers})")
    fix = (
        f"Its columns are {', '.join(map(repr, header))}: name them in {CALL}(..., text_column=..., label_column=...)."
    )
    if len(header) == 1 and any(separator in header[0] for separator in ";\t|"):
        fix += " Its header is a single column: is the file comma-separated?"
    if header[0].startswith("\u00ef\u00bb\u00bf"):  # UTF-8's byte-order mark, decoded as cp1252 or latin-1
        fix += ' It starts with the byte-order mark of UTF-8: is it written in "utf-8"?'
    return paragraph(f"The {where} does not have the columns named:", lines, fix)


def classes_of_rows(where: str, labels: dict[int, str], column: str) -> tuple[dict[int, str], list[str], str]:
    """The class of each line with a label (`labels`: stripped, by line), the classes sorted, and
    the problem when integers and names mix (naming the lines of the fewer)."""
    labelled = {line: label for line, label in labels.items() if label}
    integers = {line for line, label in labelled.items() if _INTEGER.fullmatch(label)}
    if integers and len(integers) == len(labelled):
        named = {line: str(int(label)) for line, label in labelled.items()}
        return named, sorted(set(named.values()), key=int), ""
    odd = integers if 2 * len(integers) < len(labelled) else set(labelled) - integers
    head = (
        f"The label column {column!r} of the {where} mixes integers and names: its labels must be all one or the other."
    )
    lines = [f"  line {line}: {labelled[line]!r}" for line in sorted(odd)] if integers else []
    fix = "Label every row with a class number, or every row with a class name."
    return labelled, sorted(set(labelled.values())), paragraph(head, lines, fix)


def _do(n: int) -> str:
    return "does" if n == 1 else "do"
