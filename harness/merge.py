"""`python -m harness merge OUT SHARD_DIR ...`: the outputs of `--shard K/N` runs, combined as one session's.

Each shard's folder holds what its session wrote there:

- `metrics.json` (`--metrics-json SHARD_DIR/metrics.json`), required;
- `baselines.json`, a copy of the baseline file after `--update-baselines`, if baselines were recorded;
- `exports/` (`--export-dir SHARD_DIR/exports`), if exports were written;
- `report/` (`--report-dir SHARD_DIR/report`), if a report was written.

`merge` writes `OUT/metrics.json` with every shard's experiments, `OUT/baselines.json` (each
experiment's entry from the shard that recorded it, the others as every shard left them),
`OUT/exports/` (every shard's export folders) and `OUT/report/` (every shard's figures and
TensorBoard logs, under one index of every experiment), published together as a session
publishes its outputs (`harness.outputs`). The regression gate is decided again over every
shard's paired comparisons together, Holm-corrected at the shards' `--gate-alpha`: the verdicts
are one session's. The exit status is 1 when an experiment failed or the gate rejects a
comparison only now (printed as `FAILED at the session's end`), 2 for unusable input, else 0.
No TensorFlow.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import baselines, gate
from harness.outputs import Outputs, StagingFolder
from harness.report.index import experiment_dirs, write_index
from harness.report.metrics_json import metrics_text
from harness.report.terminal import gate_lines
from harness.results import ExperimentResult

METRICS, BASELINES, EXPORTS, REPORT = "metrics.json", "baselines.json", "exports", "report"
FAILED_OUTCOMES = ("failed", "error")


class MergeError(Exception):
    """A shard's folder cannot be merged: the message says which and why."""


def read_shard(folder: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A shard's metrics document and its baseline entries (None without `baselines.json`)."""
    path = folder / METRICS
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document.get("experiments"), dict):
            raise ValueError("no `experiments` object")
    except (OSError, ValueError, AttributeError) as error:
        raise MergeError(f"{path}: not a metrics file written by --metrics-json ({error})") from None
    recorded = None
    if (folder / BASELINES).exists():
        try:
            recorded = baselines.load(folder / BASELINES)
        except baselines.BaselineFileError as error:
            raise MergeError(str(error)) from None
    return document, recorded


def merged_metrics(documents: Sequence[dict[str, Any]], names: Sequence[str]) -> tuple[dict[str, Any], gate.Family]:
    """One metrics document of every shard's experiments, its gate decided again over them all."""
    experiments: dict[str, Any] = {}
    for document, name in zip(documents, names, strict=True):
        for experiment, entry in document["experiments"].items():
            if experiment in experiments:
                raise MergeError(f"experiment {experiment!r} ran in two shards (again in {name}): shard K/N runs only")
            experiments[experiment] = entry
    for key in ("harness_version", "gate_alpha"):
        values = {json.dumps(d.get(key)) for d in documents if d.get(key) is not None}
        if len(values) > 1:
            raise MergeError(f"the shards differ in {key}: {sorted(values)}; merge the shards of one run")
    alpha = next((d["gate_alpha"] for d in documents if d.get("gate_alpha") is not None), None)
    family = gate.Family(alpha=gate.DEFAULT_ALPHA if alpha is None else float(alpha))
    family.merge(
        [
            gate.Comparison.from_json(comparison)
            for entry in experiments.values()
            for comparison in (entry.get("gate") or {}).values()
        ]
    )
    document = {
        "harness_version": documents[0].get("harness_version"),
        "started": min(str(d.get("started", "")) for d in documents),
        "gate_alpha": alpha,
        "experiments": experiments,
    }
    return document, family


def merged_baselines(shards: Sequence[tuple[dict[str, Any], dict[str, Any] | None]]) -> dict[str, Any] | None:
    """The baseline entries of one session: each experiment's from the shard that ran it, where
    that shard recorded one; the others as every shard left them. None when no shard recorded."""
    recorded = [(document, entries) for document, entries in shards if entries is not None]
    if not recorded:
        return None
    merged = {name: entry for name, entry in recorded[0][1].items() if all(name in e for _, e in recorded)}
    for document, entries in recorded:
        merged.update({name: entries[name] for name in document["experiments"] if name in entries})
    return dict(sorted(merged.items()))


def merged_report(
    target: Path, document: dict[str, Any], shards: Sequence[tuple[dict[str, Any], Path]], shown_root: Path
) -> None:
    """Writes into `target` the report one session would have written for the merged `document`:
    each shard's per-experiment folders (curves, confusion matrix, TensorBoard logs), renamed as
    the merged index names them, and the index of every experiment that produced a result (which
    says the report is at `shown_root`: `target` is its staging folder)."""
    with_results = _with_results(document)
    folders = experiment_dirs(with_results)
    for shard_document, folder in shards:
        # The shard's session named its folders among its own experiments with results.
        named = experiment_dirs(_with_results(shard_document))
        for name, source in named.items():
            if (folder / REPORT / source).is_dir():
                shutil.copytree(folder / REPORT / source, target / folders[name])
    # The baseline each shown accuracy is compared with: what the gate compared it with.
    shown = {
        name: {metric: comparison["baseline"] for metric, comparison in entry["gate"].items()}
        for name, entry in with_results.items()
        if entry.get("gate")
    }
    items = [(ExperimentResult.from_json(entry), str(entry["outcome"])) for entry in with_results.values()]
    write_index(items, target, shown, shown_root=shown_root)


def _with_results(document: dict[str, Any]) -> dict[str, Any]:
    """The experiments of a metrics document that produced a result (the others hold only their outcome)."""
    return {name: entry for name, entry in document["experiments"].items() if "name" in entry}


def merge(out: Path, folders: Sequence[Path]) -> int:
    """Merges the shards' `folders` into `out`; returns the exit status (see the module's docstring)."""
    shards = [read_shard(folder) for folder in folders]
    document, family = merged_metrics([d for d, _ in shards], [str(f) for f in folders])
    late = family.finish()
    for comparison in family.comparisons:
        document["experiments"][comparison.experiment]["gate"][comparison.metric] = comparison.to_json()
    outputs = Outputs()
    try:
        outputs.text(out / METRICS, metrics_text(document))
        entries = merged_baselines(shards)
        if entries is not None:
            outputs.text(out / BASELINES, baselines.file_text(entries))
        exports = [p for f in folders if (f / EXPORTS).is_dir() for p in sorted((f / EXPORTS).iterdir())]
        if exports:
            staging = outputs.folder(StagingFolder(out / EXPORTS))
            for folder in exports:
                if folder.is_dir() and not folder.name.startswith("."):
                    shutil.copytree(folder, staging.path / folder.name)
        reports = [(d, f) for (d, _), f in zip(shards, folders, strict=True) if (f / REPORT).is_dir()]
        if reports:
            staging = outputs.folder(StagingFolder(out / REPORT))
            merged_report(staging.path, document, reports, shown_root=out / REPORT)
        outputs.commit()
    except BaseException:
        outputs.discard()
        raise
    outcomes = [entry.get("outcome") for entry in document["experiments"].values()]
    failed = sum(outcome in FAILED_OUTCOMES for outcome in outcomes)
    print(
        f"harness merge: {len(outcomes)} experiments from {len(folders)} shards into {out}: "
        f"{outcomes.count('passed')} passed, {failed} failed, {outcomes.count('skipped')} skipped"
    )
    for line in gate_lines(family.comparisons, late):
        print(line)
    return 1 if failed or late else 0


def main(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m harness merge", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where the merged metrics.json, baselines.json, exports/ and report/ go")
    parser.add_argument("shards", type=Path, nargs="+", help="each shard's folder (see above)")
    arguments = parser.parse_args(argv)
    try:
        return merge(arguments.out, arguments.shards)
    except MergeError as error:
        print(f"harness merge: {error}", file=sys.stderr)
        return 2
