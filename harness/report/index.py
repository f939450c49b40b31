"""The report folder: `index.html` and `index.md`, and one sub-folder of figures and logs per experiment.

    <out_dir>/index.html, index.md
    <out_dir>/<safe experiment name>/curves.png, confusion.png, tensorboard/{train,validation}

The HTML is self-contained (inline CSS, no scripts, no external resources); images are linked
relatively, so the folder can be moved or uploaded as a CI artifact as a whole.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.paths import atomic_write_text
from harness.report.tables import markdown_escape, markdown_table, section_tables
from harness.report.terminal import COLUMNS, SummaryRow, cells, format_duration, interval_text, rows_for
from harness.results import Check, ExperimentResult

CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion.png"
TENSORBOARD_DIR = "tensorboard"
TITLE = "Transfer-learning experiments"
_MAX_NAME = 80

Baseline = Mapping[str, Any]


def safe_name(name: str) -> str:
    """Returns a file-name-safe form of an experiment name: `exp[MobileNetV2-0.001]` -> `exp-MobileNetV2-0.001`.

    Runs of characters other than letters, digits, ".", "_" and "-" become one "-". Names that
    are long (over 80 characters) are cut and get a short hash of the full name.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "experiment"
    if len(cleaned) > _MAX_NAME:
        cleaned = f"{cleaned[: _MAX_NAME - 9].rstrip('-.')}-{_digest(name)}"
    return cleaned


def experiment_dirs(names: Iterable[str]) -> dict[str, str]:
    """Maps each experiment name to its folder name, unique among `names`.

    Names whose safe forms collide (`a[x y]` and `a[x-y]`) each get a short hash of the full
    name appended, so the mapping does not depend on the order of `names`.
    """
    names = list(dict.fromkeys(names))
    safe = {name: safe_name(name) for name in names}
    counts: dict[str, int] = {}
    for folder in safe.values():
        counts[folder.lower()] = counts.get(folder.lower(), 0) + 1  # case-insensitive file systems
    return {
        name: folder if counts[folder.lower()] == 1 else f"{folder}-{_digest(name)}" for name, folder in safe.items()
    }


def write_report(
    out_dir: str | os.PathLike[str],
    items: Sequence[tuple[ExperimentResult, str, Baseline | None]],
    *,
    tensorboard: bool = True,
    shown_root: Path | None = None,
) -> Path:
    """Writes the whole report: per experiment its curves, confusion matrix and TensorBoard logs, then the index.

    Every file is written atomically; a TensorBoard log folder is replaced as a whole.

    Args:
        out_dir: the report folder (created when missing).
        items: `(result, outcome, baseline)` per experiment; `outcome` as pytest reports it
            ("passed", "failed"), `baseline` the accepted metrics or `None`.
        tensorboard: whether to write TensorBoard event files (imports TensorFlow).
            Defaults to `True`.
        shown_root: where the index says the report is, when it is written elsewhere first
            (a staging folder published later). Defaults to `out_dir`.

    Returns:
        The path of `index.html`.
    """
    from harness.report import plots

    items = list(items)
    root = Path(out_dir)
    folders = experiment_dirs(result.name for result, _, _ in items)
    for result, _, _ in items:
        folder = root / folders[result.name]
        # What this run does not write is removed, so that nothing from an earlier run into the
        # same folder survives: the index links every figure it finds.
        if result.phases:
            plots.training_curves(result, folder / CURVES_FILE)
        else:
            _remove(folder / CURVES_FILE)
        if result.confusion_matrix:
            plots.confusion_matrix(result, folder / CONFUSION_FILE)
        else:
            _remove(folder / CONFUSION_FILE)
        if tensorboard and result.phases:
            from harness.report.tensorboard import write_tensorboard

            write_tensorboard(result, folder / TENSORBOARD_DIR)
        else:
            _remove(folder / TENSORBOARD_DIR)
    baselines = {result.name: baseline for result, _, baseline in items if baseline is not None}
    return write_index([(result, outcome) for result, outcome, _ in items], root, baselines, shown_root=shown_root)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def write_index(
    results_with_outcomes: Sequence[tuple[ExperimentResult, str]],
    out_dir: str | os.PathLike[str],
    baselines: Mapping[str, Baseline] | None = None,
    *,
    shown_root: Path | None = None,
) -> Path:
    """Writes `index.html` and `index.md` into `out_dir`.

    Both hold the summary table (the rows of the terminal summary), then per experiment its
    phases, invariant checks (obtained against expected), figures and TensorBoard log folder.
    Figures and logs are linked only where they exist under `out_dir/<folder>/`
    (see `write_report`).

    Args:
        results_with_outcomes: `(result, outcome)` per experiment, in the order to show them.
        out_dir: the report folder (created when missing).
        baselines: the accepted metrics per experiment name; experiments without one show "-".
            Defaults to no baselines.
        shown_root: where the index says the report is (see `write_report`). Defaults to `out_dir`.

    Returns:
        The path of `index.html`.
    """
    results_with_outcomes = list(results_with_outcomes)
    root = Path(out_dir)
    baselines = baselines or {}
    folders = experiment_dirs(result.name for result, _ in results_with_outcomes)
    shown = root if shown_root is None else shown_root
    entries = [
        _Entry(
            result, outcome.upper(), folders[result.name], root, rows_for(result, outcome, baselines.get(result.name))
        )
        for result, outcome in results_with_outcomes
    ]
    for entry in entries:  # the logs where users will find them
        entry.logdir = None if entry.logdir is None else str((shown / entry.folder / TENSORBOARD_DIR).resolve())
    atomic_write_text(root / "index.md", _markdown(entries, shown))
    index = root / "index.html"
    atomic_write_text(index, _html(entries, shown))
    return index


class _Entry:
    def __init__(self, result: ExperimentResult, outcome: str, folder: str, root: Path, rows: list[SummaryRow]) -> None:
        self.result, self.outcome, self.folder, self.rows = result, outcome, folder, rows
        self.curves = f"{folder}/{CURVES_FILE}" if (root / folder / CURVES_FILE).is_file() else None
        self.confusion = f"{folder}/{CONFUSION_FILE}" if (root / folder / CONFUSION_FILE).is_file() else None
        logdir = root / folder / TENSORBOARD_DIR
        self.logdir = str(logdir.resolve()) if logdir.is_dir() else None

    def facts(self) -> list[tuple[str, str]]:
        r = self.result
        splits = ", ".join(f"{split} {size:,}" for split, size in r.split_sizes.items())
        classes = ", ".join(r.class_names) if r.class_names else str(r.num_classes)
        params = [("params", ", ".join(f"{name}={value!r}" for name, value in r.params.items()))] if r.params else []
        return [
            ("backbone", f"{r.backbone} ({r.weights or 'random'} weights)"),
            ("data set", r.dataset),
            *params,
            ("splits", splits or "-"),
            (f"classes ({r.num_classes})", classes),
            *([("final accuracy (95% interval)", interval_text(r))] if r.phases else []),
            ("seed", str(r.seed)),
            ("wall time", format_duration(r.wall_time_s)),
            *([("exported to", r.export_dir)] if r.export_dir else []),
        ]


def _counts(entries: list[_Entry]) -> str:
    tally: dict[str, int] = {}
    for entry in entries:
        tally[entry.outcome.lower()] = tally.get(entry.outcome.lower(), 0) + 1
    if not entries:
        return "No experiments."
    noun = "experiment" if len(entries) == 1 else "experiments"
    return f"{len(entries)} {noun}: " + ", ".join(f"{n} {outcome}" for outcome, n in tally.items()) + "."


# ---------------------------------------------------------------------------------------- HTML

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232a;
       max-width: 1180px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 2.2em; padding-top: .6em; border-top: 1px solid #d5dae0; }
h3 { font-size: 1.02em; margin: 1.3em 0 .4em; }
code { font: .9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f2f4f6;
       padding: .1em .3em; border-radius: 3px; word-break: break-all; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: .4em 0; }
th, td { padding: .28em .7em; border-bottom: 1px solid #e3e6ea; text-align: left; vertical-align: top; }
th { background: #f5f7f9; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr.first td { border-top: 1px solid #b9c0c8; }
td[rowspan] { vertical-align: middle; }
.outcome { font-weight: 700; }
.passed { color: #17803d; } .failed { color: #c62828; } .skipped { color: #8a6d00; }
.badge { font-size: .75em; padding: .15em .5em; border-radius: 3px; color: #fff; vertical-align: middle; }
.badge.passed { background: #17803d; } .badge.failed { background: #c62828; } .badge.skipped { background: #a88600; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: .15em 1em; margin: .5em 0; }
dl.facts dt { color: #5b6670; } dl.facts dd { margin: 0; }
ul.checks { list-style: none; padding-left: 0; }
ul.checks li { margin: .25em 0; padding: .3em .6em; border-left: 4px solid #17803d; background: #f4faf6; }
ul.checks li.failed { border-left-color: #c62828; background: #fdf3f3; color: inherit; }
ul.checks .detail { margin: .2em 0 0 1.2em; color: #4a545e; font-size: .92em; white-space: pre-wrap; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.figures img { max-width: 100%; border: 1px solid #e3e6ea; }
.muted { color: #6b7580; }
"""


def _html(entries: list[_Entry], root: Path) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{e(TITLE)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{e(TITLE)}</h1>",
        f"<p>{e(_counts(entries))}</p>",
    ]
    if any(entry.logdir for entry in entries):
        out.append(f"<p>All TensorBoard logs: <code>tensorboard --logdir {e(str(root.resolve()))}</code></p>")
    out.append(_html_summary(entries))
    for entry in entries:
        out.extend(_html_section(entry))
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def _html_summary(entries: list[_Entry]) -> str:
    """The terminal summary's rows; an experiment's name and result span its phase rows."""
    e = html.escape
    head = "".join(f"<th{' class=num' if align == '>' else ''}>{e(name)}</th>" for name, align in COLUMNS)
    body = []
    for entry in entries:
        span = f" rowspan={len(entry.rows)}" if len(entry.rows) > 1 else ""
        for index, row in enumerate(entry.rows):
            tds = []
            for (name, align), text in zip(COLUMNS, cells(row), strict=False):
                if name == "experiment":
                    if index == 0:
                        tds.append(f'<td{span}><a href="#{e(entry.folder)}">{e(text)}</a></td>')
                elif name == "result":
                    if index == 0:
                        tds.append(f'<td{span} class="outcome {e(entry.outcome.lower())}">{e(entry.outcome)}</td>')
                else:
                    tds.append(f"<td{' class=num' if align == '>' else ''}>{e(text)}</td>")
            body.append(f"<tr{' class=first' if index == 0 else ''}>{''.join(tds)}</tr>")
    return (
        f'<table class="summary">\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body) + "\n</tbody>\n</table>"
    )


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: frozenset[int]) -> str:
    def line(tag: str, texts: Sequence[str]) -> str:
        cells_ = (f"<{tag}{' class=num' if i in numeric else ''}>{html.escape(t)}</{tag}>" for i, t in enumerate(texts))
        return "<tr>" + "".join(cells_) + "</tr>"

    body = "\n".join(line("td", row) for row in rows)
    return f"<table>\n<thead>{line('th', header)}</thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _html_section(entry: _Entry) -> list[str]:
    e = html.escape
    result = entry.result
    out = [
        f'<section id="{e(entry.folder)}">',
        f'<h2>{e(result.name)} <span class="badge {e(entry.outcome.lower())}">{e(entry.outcome)}</span></h2>',
        '<dl class="facts">' + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in entry.facts()) + "</dl>",
    ]
    for title, (header, rows), numeric in section_tables(result):
        out.append(f"<h3>{e(title)}</h3>")
        out.append(_html_table(header, rows, numeric))
    out.append(f"<h3>Checks ({_check_counts(result.checks)})</h3>")
    if result.checks:
        out.append('<ul class="checks">')
        for check in result.checks:
            state = "passed" if check.passed else "failed"
            details = "".join(f'<div class="detail">{e(line)}</div>' for line in check.details)
            out.append(
                f'<li class="{state}"><span class="outcome {state}">{state.upper()}</span> '
                f"{e(check.title)}: obtained <code>{e(check.obtained)}</code>, "
                f"expected <code>{e(check.expected)}</code>{details}</li>"
            )
        out.append("</ul>")
    else:
        out.append('<p class="muted">No invariant checks.</p>')
    figures = [
        (src, alt) for src, alt in ((entry.curves, "training curves"), (entry.confusion, "confusion matrix")) if src
    ]
    if figures:
        out.append("<h3>Figures</h3>")
        out.append(
            '<div class="figures">'
            + "".join(
                f'<a href="{e(src)}"><img src="{e(src)}" alt="{e(alt)} of {e(result.name)}"></a>'
                for src, alt in figures
            )
            + "</div>"
        )
    if entry.logdir:
        out.append(f"<p>TensorBoard log folder: <code>{e(entry.logdir)}</code></p>")
    out.append("</section>")
    return out


# ------------------------------------------------------------------------------------ Markdown


def _markdown(entries: list[_Entry], root: Path) -> str:
    out = [f"# {TITLE}", "", _counts(entries), ""]
    if any(entry.logdir for entry in entries):
        out += [f"All TensorBoard logs: {_md_code(f'tensorboard --logdir {root.resolve()}')}", ""]
    out += markdown_table(
        [name for name, _ in COLUMNS],
        [cells(row) for entry in entries for row in entry.rows],
        numeric={i for i, (_, align) in enumerate(COLUMNS) if align == ">"},
    )
    for entry in entries:
        result = entry.result
        out += ["", f"## {markdown_escape(result.name)}: {entry.outcome}", ""]
        out += [f"- {k}: {markdown_escape(v)}" for k, v in entry.facts()]
        for title, (header, rows), numeric in section_tables(result):
            out += ["", f"### {title}", "", *markdown_table(header, rows, numeric=numeric)]
        out += ["", f"### Checks ({_check_counts(result.checks)})", ""]
        if not result.checks:
            out.append("No invariant checks.")
        for check in result.checks:
            state = "PASSED" if check.passed else "**FAILED**"
            title = markdown_escape(check.title)
            out.append(f"- {state} {title}: obtained {_md_code(check.obtained)}, expected {_md_code(check.expected)}")
            out += [f"  - {markdown_escape(line)}" for line in check.details]
        figures = [
            (src, alt) for src, alt in ((entry.curves, "training curves"), (entry.confusion, "confusion matrix")) if src
        ]
        if figures:
            out += ["", "### Figures"]
            for src, alt in figures:
                out += ["", f"![{alt}]({src})"]
        if entry.logdir:
            out += ["", f"TensorBoard log folder: {_md_code(entry.logdir)}"]
    return "\n".join(out) + "\n"


def _md_code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text.replace(chr(10), ' ')}{pad}{fence}"


# -------------------------------------------------------------------------------------- shared


def _check_counts(checks: list[Check]) -> str:
    failed = sum(not c.passed for c in checks)
    return f"{len(checks) - failed} passed, {failed} failed" if failed else f"{len(checks)} passed"


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
