"""State shared by the experiments of one pytest session, and the pipeline each experiment runs through.

`Session.run` is engine, then exports, then checks, then record: `harness.engine.run` trains,
`harness.export.measure` writes and measures the exports that expectations read (every format
with `--export-dir`), `harness.checks.evaluate` evaluates everything asserted about the run,
and the session keeps the result (and, with `--update-baselines`, the new baseline entry) for
the reports written at the end of the session. With `--export-dir`, an experiment that passed
(any, with `--export-all`) has its export staged, with its model card; the session's end
publishes them (`harness.export.publish`).

The project root (`Session.root`) is where the baseline file and the spec paths it records are
relative to. TensorFlow is imported only when the first experiment runs.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness import baselines, checks, environment, errors, gate, modalities, spec, workers
from harness.export import card
from harness.export.publish import ExportDir, folder_name
from harness.outputs import Outputs, StagingFolder
from harness.paths import relative_to_root
from harness.results import ExperimentResult
from harness.rootdir import project_root

if TYPE_CHECKING:  # imports TensorFlow, which collection must not
    from harness.session_memo import SessionMemo

SESSION_KEY = pytest.StashKey["Session"]()


@dataclass
class Session:
    config: pytest.Config
    results: dict[str, ExperimentResult] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # why an experiment has no result
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # a parametrised experiment's arguments
    started: float = field(default_factory=time.time)
    # Every experiment name each collected spec file declares (path relative to `root` -> names).
    collected: dict[str, list[str]] = field(default_factory=dict)
    new_baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    _recorded: dict[str, Any] | None = None  # the baseline file's entries as written, invalid ones included
    baseline_error: str | None = None  # why the baseline file cannot be read, if it cannot
    invalid_baselines: dict[str, str] = field(default_factory=dict)  # experiment -> what is wrong with its entry
    selected: list[str] = field(default_factory=list)  # the experiments selected to run (after -k and -m)
    late_failures: list[gate.Comparison] = field(default_factory=list)  # rejected only at the session's end
    # In a pytest-xdist worker: the progress lines of the running experiment, sent with its report.
    pending_progress: list[str] = field(default_factory=list)
    memo: SessionMemo | None = None  # what the experiments share (harness.session_memo), made by the first

    @classmethod
    def of(cls, config: pytest.Config) -> Session:
        if SESSION_KEY not in config.stash:
            config.stash[SESSION_KEY] = cls(config)
        return config.stash[SESSION_KEY]

    @cached_property
    def root(self) -> Path:
        """The project root: pytest's rootdir as determined without the harness options' values.

        pytest determines its rootdir from the command line before plugins add their options, so
        the value of an option written with a space (`--cache-dir DIR`) counts as a path argument
        there and can move the rootdir out of a project without an ini file. `config.option`
        holds the path arguments after the full parse, without option values.
        """
        return project_root(self.config)

    def shown(self, path: str | os.PathLike[str]) -> str:
        """`path` as messages show it: relative to the folder pytest was invoked in when below it."""
        return relative_to_root(Path(path), self.config.invocation_params.dir)

    def progress(self) -> Callable[[str], None] | None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if self.config.get_verbosity() < 0:
            return None
        if workers.is_worker(self.config):  # xdist shows no worker's output: the controller prints them
            return self.pending_progress.append
        if reporter is None:
            return None

        def write(line: str) -> None:
            # Like pytest's live logging: step outside output capture so the line shows now.
            if capture is None:
                reporter.write_line(f"  [harness] {line}")
                return
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"  [harness] {line}")

        return write

    # ------------------------------------------------------------------ the pipeline

    def run(self, experiment: spec.Experiment, nodeid: str) -> ExperimentResult:
        """Trains `experiment`, evaluates its checks and records the result."""
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from harness import engine
        from harness.cache import FeatureCache
        from harness.session_memo import SessionMemo

        self.memo = self.memo or SessionMemo()

        options = engine.RunOptions(
            seed=self.config.getoption("harness_seed"),
            deterministic=self.config.getoption("deterministic"),
            cache=FeatureCache.default(),
            feature_cache=not self.config.getoption("no_feature_cache"),
            frozen_runtime=self.config.getoption("frozen_runtime"),
            precision=self.config.getoption("precision"),
            strategy=self.config.getoption("strategy"),
            progress=self.progress(),
            memo=self.memo,
        )
        recorded = self.baselines()
        if self.baseline_error is not None:  # the gate cannot run: say so before training
            raise errors.HarnessFailure(self.baseline_error)
        if experiment.name in self.invalid_baselines and not self.updating_baselines:
            raise errors.HarnessFailure(
                f"The baseline of {experiment.name!r} in {self.shown(self.baseline_path)} is invalid: "
                f"{self.invalid_baselines[experiment.name]}. Fix it by hand, or record it again with: "
                f"pytest '{self.command_target(nodeid)}' --update-baselines"
            )
        with errors.reported(experiment):
            run = engine.run(experiment, options)
            observed = self._observed(run, recorded.get(experiment.name, {}))
            self._export_and_check(experiment, run, recorded, nodeid, observed)
            if self.config.getoption("repeats") > 1:
                self._repeat(experiment, options, run.result, recorded)
        result = run.result
        self.results[experiment.name] = result
        if self.updating_baselines and not result.failures:
            entry = baselines.entry_for(result, self.spec_file(experiment), environment.fingerprint(), observed)
            self.new_baselines[experiment.name] = baselines.kept_duration(entry, recorded.get(experiment.name))
        return result

    def _repeat(
        self, experiment: spec.Experiment, options: Any, first: ExperimentResult, recorded: dict[str, Any]
    ) -> None:
        """`--repeats N`: runs `experiment` under the N - 1 seeds after `first`'s and evaluates
        their checks (not the gate, nor the exports'); `first` gets the spread and their failures."""
        import dataclasses

        from harness import engine

        without_exports = dataclasses.replace(
            experiment, expect=tuple(e for e in experiment.expect if not spec.exported_formats((e,)))
        )
        others = []
        for seed in range(first.seed + 1, first.seed + self.config.getoption("repeats")):
            run = engine.run(without_exports, dataclasses.replace(options, seed=seed))
            checks.evaluate(without_exports, run, results=self.results, recorded=recorded, gate=None)
            others.append(run.result)
        checks.merge_repeats(first, others)

    def _observed(self, run: Any, baseline: dict[str, Any]) -> dict[str, gate.Observed] | None:
        """What a baseline records and a baseline with predictions is compared with; None when neither is needed."""
        return gate.observed(run) if self.updating_baselines or "predictions" in baseline else None

    def _export_and_check(
        self,
        experiment: spec.Experiment,
        run: Any,
        recorded: dict[str, dict[str, Any]],
        nodeid: str,
        observed: dict[str, gate.Observed] | None,
    ) -> None:
        """Measures the exports the expectations read, evaluates the checks, and with `--export-dir`
        stages the export of an experiment that passed (or of any, with `--export-all`)."""
        from harness.export import measure

        result = run.result
        needed = spec.exported_formats(experiment.expect)
        exports = self.export_dir

        def evaluate() -> None:
            checks.evaluate(
                experiment,
                run,
                results=self.results,
                recorded=recorded,
                gate=self._gate(experiment, nodeid),
                observed=observed,
            )

        if exports is None:
            if needed:
                with tempfile.TemporaryDirectory(prefix="harness-export-") as temporary:
                    result.exports = measure.export(run, needed, Path(temporary))
            evaluate()
            return
        every = modalities.room(experiment.modality).export_formats
        with exports.stage(experiment.name) as folder:
            if needed:
                result.exports = measure.export(run, every, folder, required=needed)
            evaluate()
            kept = self.config.getoption("export_all") or not result.failures
            if kept:
                if not needed:
                    result.exports = measure.export(run, every, folder, required=())
                card.write(
                    folder, experiment, result, spec_file=self.spec_file(experiment), recording=self.updating_baselines
                )
        if not kept:
            exports.discard(experiment.name)

    @cached_property
    def export_dir(self) -> ExportDir | None:
        """`--export-dir`, where exports are staged and then published; None without it."""
        option = self.config.getoption("export_dir")
        if option is None:
            return None
        staging = workers.worker_input(self.config).get(workers.EXPORT_STAGING)  # a worker stages into the controller's
        return ExportDir(Path(option).expanduser(), staging=None if staging is None else Path(staging))

    def discard_exports(self) -> None:
        """Removes the exports staged this session (it was interrupted, or its outputs were not written)."""
        if self.export_dir is not None:
            self.export_dir.staging.close()

    def _gate(self, experiment: spec.Experiment, nodeid: str) -> baselines.Gate | None:
        """The regression gate of `experiment`; None while baselines are being recorded."""
        if self.updating_baselines:
            return None
        # A spec's number, else its "measured", else --tolerance, else the spread recorded, else the default.
        option = self.config.getoption("tolerance")
        number = experiment.tolerance if isinstance(experiment.tolerance, float) else option
        measured = "required" if experiment.tolerance == "measured" else None
        if experiment.tolerance is None and option is None:
            measured = "if recorded"
        return baselines.Gate(
            tolerance=gate.DEFAULT_TOLERANCE if number is None else float(number),
            measured=measured,
            update_command=f"pytest '{self.command_target(nodeid)}' --update-baselines",
            file=self.shown(self.baseline_path),
            environment=environment.fingerprint(),
            min_effect=self.config.getoption("min_effect"),
            family=self.family,
        )

    @cached_property
    def family(self) -> gate.Family:
        """The session's paired comparisons, planned from the selected experiments' baselines."""
        planned = gate.planned(self.baselines(), self.selected)
        return gate.Family(alpha=self.config.getoption("gate_alpha"), expected=planned)

    @property
    def gated(self) -> gate.Family | None:
        """`family` once an experiment was gated; None before, and throughout `--update-baselines`."""
        return self.__dict__.get("family")

    def comparisons(self, name: str) -> list[gate.Comparison]:
        """Experiment `name`'s gated comparisons so far (none while baselines are recorded)."""
        return [c for c in self.gated.comparisons if c.experiment == name] if self.gated else []

    def finish_gate(self) -> None:
        """Decides the paired comparisons again with every p-value known; any rejected only now
        fail the session (`late_failures`)."""
        if self.gated:
            self.late_failures = self.gated.finish()

    def command_target(self, nodeid: str) -> str:
        """`nodeid` (relative to pytest's rootdir) as a command run where pytest was invoked selects it."""
        file, separator, rest = nodeid.partition("::")
        return f"{self.shown(self.config.rootpath / file)}{separator}{rest}"

    # ------------------------------------------------------------------ baselines

    @property
    def baseline_path(self) -> Path:
        return self.root / self.config.getini("harness_baselines")

    @property
    def updating_baselines(self) -> bool:
        return bool(self.config.getoption("update_baselines"))

    def baselines(self) -> dict[str, dict[str, Any]]:
        """The valid recorded entries; {} when the file cannot be read, and `baseline_error` says why.

        Every experiment then fails with that message, and the reports show no baselines,
        instead of each experiment and the terminal summary failing with a traceback. An entry
        that is invalid (a wrong type, NaN, out of range) is left out; `invalid_baselines` says
        what is wrong with it, and only its experiment fails.
        """
        recorded = self._recorded_entries()
        return {name: entry for name, entry in recorded.items() if name not in self.invalid_baselines}

    def _recorded_entries(self) -> dict[str, Any]:
        if self._recorded is None:
            try:
                self._recorded = baselines.load(self.baseline_path)
            except baselines.BaselineFileError as error:
                self._recorded, self.baseline_error = {}, str(error)
            self.invalid_baselines = baselines.invalid_entries(self._recorded)
        return self._recorded

    def spec_file(self, experiment: spec.Experiment) -> str:
        return relative_to_root(experiment.location.path if experiment.location else "?", self.root)

    def stage_baselines(self, outputs: Outputs) -> list[str]:
        """Stages this session's entries merged into the baseline file; returns the stale names removed."""
        recorded = self._recorded_entries()
        if self.baseline_error is not None:
            return []  # the experiments failed with the reason; the file stays for the user to fix
        valid = {**self.baselines(), **self.new_baselines}
        merged, stale = baselines.updated(
            recorded,
            self.new_baselines,
            self.collected,
            existing_specs=[s for s in {e.get("spec") for e in valid.values()} if s and (self.root / s).exists()],
        )
        if merged != recorded:
            outputs.text(self.baseline_path, baselines.file_text(merged))
        return stale

    # ------------------------------------------------------------------ reports

    def report_items(self) -> list[tuple[ExperimentResult, str, dict[str, Any] | None]]:
        recorded = self.baselines()
        return [
            (result, self.outcomes.get(name, "unknown"), recorded.get(name)) for name, result in self.results.items()
        ]

    def summary_lines(self) -> list[str]:
        from harness.report import (
            export_lines,
            gate_lines,
            interval_lines,
            no_result_row,
            rows_for,
            slice_lines,
            spread_lines,
            summary_lines,
            unpredicted_lines,
        )

        rows = [row for result, outcome, baseline in self.report_items() for row in rows_for(result, outcome, baseline)]
        rows += [no_result_row(name, outcome) for name, outcome in self.outcomes.items() if name not in self.results]
        results = list(self.results.values())
        comparisons = self.gated.comparisons if self.gated else []
        lines = [*summary_lines(rows), *interval_lines(results), *spread_lines(results), *slice_lines(results)]
        lines += [*unpredicted_lines(results), *export_lines(results)]
        return [*lines, *gate_lines(comparisons, self.late_failures)] if rows else []

    # ------------------------------------------------------------------ the session's end

    def stage_outputs(self, outputs: Outputs) -> list[str]:
        """Stages every output the options ask for into `outputs`; returns the notes to print once
        they are committed (see `harness.outputs`: all are published together, or none)."""
        from harness.report import write_report
        from harness.report.metrics_json import metrics, metrics_text

        notes = []
        if self.export_dir is not None:
            staged = self.export_dir.staged()
            for name, result in self.results.items():
                if folder_name(name) in staged:
                    result.export_dir = self.shown(staged[folder_name(name)])
            outputs.folder(self.export_dir.staging)
            if staged:
                notes.append(f"exports of {len(staged)} experiments written to {self.shown(self.export_dir.root)}")
        if self.updating_baselines:
            stale = self.stage_baselines(outputs)
            shown = self.shown(self.baseline_path)
            notes.append(f"baselines of {len(self.new_baselines)} experiments recorded in {shown}")
            notes += [f"stale baseline removed from {shown}: {name}" for name in stale]
        path = self.config.getoption("metrics_json")
        if path:
            document = metrics(
                self.results,
                self.outcomes,
                self.errors,
                self.params,
                started=self.started,
                gate=self.gated,
            )
            outputs.text(path, metrics_text(document))
            notes.append(f"metrics written to {path}")
        report_dir = self.config.getoption("report_dir")
        if report_dir:
            staging = outputs.folder(StagingFolder(report_dir))
            write_report(staging.path, self.report_items(), shown_root=Path(report_dir))
            notes.append(f"report written to {Path(report_dir) / 'index.html'}")
        return notes
