"""The pytest plugin (entry point `pytest11: harness`): options, collection hook, session hooks.

This module imports neither TensorFlow nor the engine: collecting specs stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.paths import ENV_CACHE_DIR


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "Transfer-learning experiments (keras-transfer-harness)")
    group.addoption("--metrics-json", metavar="PATH", default=None,
                    help="Write per-experiment, per-phase metrics and invariant outcomes to PATH as JSON")
    group.addoption("--cache-dir", metavar="DIR", default=None,
                    help=f"Harness cache root for features, activations and converted weights (default ${ENV_CACHE_DIR} "
                         "or ~/.cache/keras-transfer-harness)")
    group.addoption("--clear-harness-cache", action="store_true", default=False,
                    help="Remove every cached feature and activation file before running")
    group.addoption("--no-feature-cache", action="store_true", default=False,
                    help="Run every phase through the full network, as the plain Keras recipe does")
    group.addoption("--seed", dest="harness_seed", type=int, default=None, metavar="N",
                    help="Seed every experiment with N instead of the seed its spec declares")
    parser.addini("harness_spec_dirs", "Folder names whose Python files are experiment specs", type="args",
                  default=["specs"])


def pytest_configure(config: pytest.Config) -> None:
    cache_dir = config.getoption("cache_dir")
    if cache_dir:
        os.environ[ENV_CACHE_DIR] = str(Path(cache_dir).expanduser().resolve())
    if config.getoption("clear_harness_cache"):
        from harness.cache import FeatureCache

        config.stash[_CLEARED] = FeatureCache.default().clear()


_CLEARED = pytest.StashKey[int]()


def pytest_report_header(config: pytest.Config) -> str | None:
    if _CLEARED in config.stash:
        return f"harness: removed {config.stash[_CLEARED]} cached feature files"
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".py" or file_path.name.startswith("_") or file_path.name == "conftest.py":
        return None
    config = parent.config
    relative = file_path.relative_to(config.rootpath) if file_path.is_relative_to(config.rootpath) else file_path
    if not set(relative.parts[:-1]) & set(config.getini("harness_spec_dirs")):
        return None
    from harness.collect import SpecFile

    return SpecFile.from_parent(parent, path=file_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # An experiment that must beat another runs after it (stable otherwise).
    from harness.collect import ExperimentItem
    from harness.spec import Beats

    def depends(item: pytest.Item) -> bool:
        return isinstance(item, ExperimentItem) and any(isinstance(e, Beats) for e in item.experiment.expect)

    items.sort(key=depends)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    from harness.collect import ExperimentItem
    from harness.session import Session

    if isinstance(item, ExperimentItem) and (report.when == "call" or report.skipped):
        Session.of(item.config).outcomes[item.experiment.name] = report.outcome
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("metrics_json")
    if not path or exitstatus == pytest.ExitCode.INTERRUPTED:
        return  # an interrupted run leaves no partial report behind
    from harness.session import Session

    written = Session.of(session.config).write_metrics(path)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"harness: metrics written to {written}")
