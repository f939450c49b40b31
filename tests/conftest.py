"""Fixtures for the plugin tests: `pytester`, and a `specs` folder that trains in-process.

Every test that asks for `spec_pytester` trains (it imports the engine, so TensorFlow and
Keras) and is marked `slow` here, so `pytest tests -m "not slow"` leaves it out.

`pytester.runpytest_inprocess` restores `sys.modules` after every run, so a module first
imported inside a run is imported again by the next one; NumPy and TensorFlow refuse that
("cannot load module more than once per process"). NumPy is imported here, and
`spec_pytester` imports the engine (TensorFlow, Keras) before its first run, so they stay
loaded for the whole worker process.
"""

from __future__ import annotations

import os

import numpy  # noqa: F401  (see above: spec files import it inside in-process runs)
import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """`pytester` whose runs load pytest's own plugins and the harness plugin only.

    Other installed plugins would load in every run too, and some import heavy modules while
    running (Hypothesis's imports `hypothesis`, seconds), again each time since `sys.modules`
    is restored. Loading the plugin through its `pytest11` entry point is checked by
    `test_collection.py::test_collect_only_does_not_import_tensorflow`, which runs plain pytest.
    """
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p harness.plugin")
    return pytester


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Before `-m` deselects: a test that trains through `spec_pytester` is slow wherever it is.
    for item in items:
        if "spec_pytester" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def _engine_loaded() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import harness.engine  # noqa: F401


@pytest.fixture
def spec_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, _engine_loaded: None) -> pytest.Pytester:
    """`pytester` with TensorFlow already loaded and the harness cache in a temporary folder.

    `--cache-dir` sets `HARNESS_CACHE_DIR` in this very process; `monkeypatch` undoes it.
    """
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(pytester.path.parent / "harness-cache"))
    return pytester
