"""State shared by the experiments of one pytest session: options, results, caches.

TensorFlow is imported only when the first experiment runs.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from harness import __version__, spec
from harness.paths import atomic_write_text
from harness.results import ExperimentResult

SESSION_KEY = pytest.StashKey["Session"]()


@dataclass
class Session:
    config: pytest.Config
    results: dict[str, ExperimentResult] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @classmethod
    def of(cls, config: pytest.Config) -> "Session":
        if SESSION_KEY not in config.stash:
            config.stash[SESSION_KEY] = cls(config)
        return config.stash[SESSION_KEY]

    def progress(self) -> Callable[[str], None] | None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.config.get_verbosity() < 0:
            return None
        return lambda line: reporter.write_line(f"  [harness] {line}")

    def run(self, experiment: spec.Experiment) -> ExperimentResult:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from harness import engine, freezing
        from harness.backbones import WeightsUnavailableError
        from harness.cache import FeatureCache
        from harness.collect import HarnessFailure
        from harness.data.loading import DataError

        options = engine.RunOptions(
            seed=self.config.getoption("harness_seed"),
            cache=FeatureCache.default(),
            feature_cache=not self.config.getoption("no_feature_cache"),
            progress=self.progress(),
        )
        try:
            result = engine.run(experiment, options, self.results)
        except WeightsUnavailableError as error:
            pytest.skip(f"{experiment.name}: {error}")
        except (spec.SpecError, DataError) as error:
            raise HarnessFailure(f"{experiment.location}: {error}") from None
        except freezing.RuleError as error:
            raise HarnessFailure(
                f"{experiment.location}: invalid spec: {error} (checked on the built model of {experiment.backbone.name!r})"
            ) from None
        self.results[experiment.name] = result
        return result

    def metrics(self) -> dict[str, Any]:
        return {
            "harness_version": __version__,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "experiments": {
                name: {"outcome": self.outcomes.get(name, "unknown"), **result.to_json()}
                for name, result in self.results.items()
            },
        }

    def write_metrics(self, path: str) -> Path:
        target = Path(path)
        atomic_write_text(target, json.dumps(self.metrics(), indent=2, sort_keys=True) + "\n")
        return target
