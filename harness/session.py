"""State shared by the experiments of one pytest session: options, results, caches.

TensorFlow is imported only when the first experiment runs.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from harness import __version__, baselines, spec
from harness.paths import atomic_write_text, relative_to_root
from harness.results import ExperimentResult

SESSION_KEY = pytest.StashKey["Session"]()


@dataclass
class Session:
    config: pytest.Config
    results: dict[str, ExperimentResult] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # why an experiment has no result
    started: float = field(default_factory=time.time)
    # Every experiment name each collected spec file declares (relative path -> names).
    collected: dict[str, list[str]] = field(default_factory=dict)
    new_baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    _baselines: dict[str, dict[str, Any]] | None = None
    baseline_error: str | None = None  # why the baseline file cannot be read, if it cannot

    @classmethod
    def of(cls, config: pytest.Config) -> "Session":
        if SESSION_KEY not in config.stash:
            config.stash[SESSION_KEY] = cls(config)
        return config.stash[SESSION_KEY]

    def progress(self) -> Callable[[str], None] | None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or self.config.get_verbosity() < 0:
            return None

        def write(line: str) -> None:
            # Like pytest's live logging: step outside output capture so the line shows now.
            if capture is None:
                reporter.write_line(f"  [harness] {line}")
                return
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"  [harness] {line}")

        return write

    def run(self, experiment: spec.Experiment, nodeid: str) -> ExperimentResult:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from harness import engine
        from harness.backbones import WeightsUnavailableError
        from harness.cache import FeatureCache
        from harness.collect import HarnessFailure
        from harness.data.loading import DataError

        options = engine.RunOptions(
            seed=self.config.getoption("harness_seed"),
            deterministic=self.config.getoption("deterministic"),
            cache=FeatureCache.default(),
            feature_cache=not self.config.getoption("no_feature_cache"),
            frozen_runtime=self.config.getoption("frozen_runtime"),
            progress=self.progress(),
        )
        self.baselines()
        if self.baseline_error is not None:  # the gate cannot run: say so before training
            raise HarnessFailure(self.baseline_error)
        try:
            result = engine.run(experiment, options, self.reference_metrics())
        except WeightsUnavailableError as error:
            pytest.skip(f"{experiment.name}: {error}")
        except spec.SpecError as error:
            raise HarnessFailure(f"{experiment.location}: invalid spec: {error}") from None
        except DataError as error:
            raise HarnessFailure(f"{experiment.location}: {error}") from None
        self.results[experiment.name] = result
        self._gate(experiment, result, nodeid)
        return result

    def reference_metrics(self) -> dict[str, dict[str, Any]]:
        """Final metrics of other experiments for `beats`: this session's, else their baselines."""
        metrics = {name: {**entry, "source": "the baseline"} for name, entry in self.baselines().items()}
        for name, result in self.results.items():
            metrics[name] = {"val_accuracy": result.final.val_accuracy, "test_accuracy": result.final.test_accuracy,
                             "source": "this session"}
        return metrics

    # ------------------------------------------------------------------ regression gate

    @property
    def baseline_path(self) -> Path:
        return self.config.rootpath / self.config.getini("harness_baselines")

    @property
    def updating_baselines(self) -> bool:
        return bool(self.config.getoption("update_baselines"))

    def baselines(self) -> dict[str, dict[str, Any]]:
        """The recorded entries; {} when the file cannot be read, and `baseline_error` says why.

        Every experiment then fails with that message, and the reports show no baselines,
        instead of each experiment and the terminal summary failing with a traceback.
        """
        if self._baselines is None:
            try:
                self._baselines = baselines.load(self.baseline_path)
            except baselines.BaselineFileError as error:
                self._baselines, self.baseline_error = {}, str(error)
        return self._baselines

    def spec_file(self, experiment: spec.Experiment) -> str:
        return relative_to_root(experiment.location.path if experiment.location else "?", self.config.rootpath)

    def _gate(self, experiment: spec.Experiment, result: ExperimentResult, nodeid: str) -> None:
        if self.updating_baselines:
            if not result.failures:
                self.new_baselines[experiment.name] = baselines.entry_for(result, self.spec_file(experiment))
            return
        recorded = self.baselines().get(experiment.name)
        if recorded is None:
            warnings.warn(pytest.PytestWarning(
                f"{experiment.name}: no baseline recorded in {self.baseline_path.name}; the regression gate is off for it. "
                f"Record one with: pytest '{nodeid}' --update-baselines"
            ))
            return
        tolerance = experiment.tolerance if experiment.tolerance is not None else self.config.getoption("tolerance")
        gate = baselines.Gate(tolerance=tolerance, update_command=f"pytest '{nodeid}' --update-baselines")
        result.checks.extend(baselines.compare(result, recorded, gate))

    def write_baselines(self) -> list[str]:
        """Merges this session's entries into the baseline file; returns the stale names removed."""
        recorded = self.baselines()
        if self.baseline_error is not None:
            return []  # the experiments failed with the reason; the file stays for the user to fix
        merged, stale = baselines.updated(
            recorded,
            self.new_baselines,
            self.collected,
            existing_specs=[s for s in {e.get("spec") for e in {**recorded, **self.new_baselines}.values()}
                            if s and (self.config.rootpath / s).exists()],
        )
        if merged != recorded:
            baselines.save(self.baseline_path, merged)
        return stale

    def metrics(self) -> dict[str, Any]:
        return {
            "harness_version": __version__,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "experiments": {
                **{name: {"outcome": outcome, "error": self.errors.get(name)}
                   for name, outcome in self.outcomes.items() if name not in self.results},
                **{name: {"outcome": self.outcomes.get(name, "unknown"), **result.to_json()}
                   for name, result in self.results.items()},
            },
        }

    def report_items(self) -> list[tuple[ExperimentResult, str, dict[str, Any] | None]]:
        recorded = self.baselines()
        return [(result, self.outcomes.get(name, "unknown"), recorded.get(name)) for name, result in self.results.items()]

    def summary_lines(self) -> list[str]:
        from harness.report import no_result_row, rows_for, summary_lines

        rows = [row for result, outcome, baseline in self.report_items() for row in rows_for(result, outcome, baseline)]
        rows += [no_result_row(name, outcome) for name, outcome in self.outcomes.items() if name not in self.results]
        return summary_lines(rows) if rows else []

    def write_report(self, out_dir: str) -> Path:
        from harness.report import write_report

        return write_report(out_dir, self.report_items())

    def write_metrics(self, path: str) -> Path:
        target = Path(path)
        atomic_write_text(target, json.dumps(self.metrics(), indent=2, sort_keys=True) + "\n")
        return target
