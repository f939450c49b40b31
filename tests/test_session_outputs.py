"""The session's outputs commit together: all new, or all as they were, whenever Ctrl-C comes.

Unit tests of `harness.outputs` (no TensorFlow), then pytester runs that interrupt the end of a
session that writes baselines, metrics, a report and exports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiny_specs import experiment_text, spec_file

from harness import outputs as outputs_lib
from harness.outputs import STAGING_MARK, Outputs, StagingFolder, deferred_interrupt


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_nothing_changes_until_the_commit_and_then_everything(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("old")
    (tmp_path / "report" / "exp").mkdir(parents=True)
    (tmp_path / "report" / "exp" / "curves.png").write_text("old")
    (tmp_path / "report" / "exp" / "gone.png").write_text("old")
    outputs = Outputs()
    outputs.text(tmp_path / "metrics.json", "new")
    report = outputs.folder(StagingFolder(tmp_path / "report"))
    (report.path / "exp").mkdir()
    (report.path / "exp" / "curves.png").write_text("new")
    (report.path / "index.html").write_text("new")
    assert (tmp_path / "metrics.json").read_text() == "old"
    assert not outputs.commit()
    assert _tree(tmp_path) == {
        "metrics.json": b"new",
        "report/exp/curves.png": b"new",  # the experiment's folder replaced whole
        "report/index.html": b"new",
    }


def test_discard_leaves_every_destination_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "baselines.json").write_text("old")
    outputs = Outputs()
    outputs.text(tmp_path / "baselines.json", "new")
    report = outputs.folder(StagingFolder(tmp_path / "report"))
    (report.path / "index.html").write_text("new")
    outputs.discard()
    assert _tree(tmp_path) == {"baselines.json": b"old"}
    assert list((tmp_path / "report").iterdir()) == []


def test_ctrl_c_is_held_back_during_the_commit() -> None:
    # Python's own Ctrl-C handler, whatever this process started with: a job started in the
    # background by a non-interactive shell (`cmd &`, as some CI runners do) inherits SIGINT ignored.
    started_with = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with deferred_interrupt() as held:
            os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt here
        assert held == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):  # and the usual handler is back
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, started_with)


def _ctrl_c_inside_the_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C arrives as the commit starts, once Ctrl-C is held back."""
    hold = outputs_lib.deferred_interrupt

    @contextlib.contextmanager
    def held_then_pressed() -> Iterator[list[int]]:
        with hold() as held:
            os.kill(os.getpid(), signal.SIGINT)
            yield held

    monkeypatch.setattr(outputs_lib, "deferred_interrupt", held_then_pressed)


def test_commit_reports_a_ctrl_c_that_came_meanwhile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = Outputs()
    outputs.text(tmp_path / "a.json", "a")
    outputs.text(tmp_path / "b.json", "b")
    _ctrl_c_inside_the_commit(monkeypatch)
    assert outputs.commit()
    assert _tree(tmp_path) == {"a.json": b"a", "b.json": b"b"}


def test_staging_of_a_killed_session_is_removed_by_the_next(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{STAGING_MARK}{dead.stdout.strip()}-abc"
    live = tmp_path / f"{STAGING_MARK}{os.getpid()}-def"
    for folder in (stale, live):
        (folder / "exp").mkdir(parents=True)
    staging = StagingFolder(tmp_path)
    assert staging.path.exists()
    assert not stale.exists() and live.exists()
    staging.close()


def test_staging_a_file_removes_the_temporaries_a_killed_session_left_beside_it(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".metrics.harness-tmp-{dead.stdout.strip()}-abc123.json"
    stale.write_text("{half")
    outputs = Outputs()
    outputs.text(tmp_path / "metrics.json", "{}")
    outputs.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


# ------------------------------------------------------------------------------ whole sessions

WITH_TEST = "lambda: make_data(test=True)"
END_OPTIONS = (
    "--update-baselines",
    "--metrics-json",
    "metrics.json",
    "--report-dir",
    "report",
    "--export-dir",
    "exports",
)


def _session(pytester: pytest.Pytester) -> dict[str, bytes]:
    """A first session that writes every output; returns every file of the project after it."""
    pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("tiny", data=WITH_TEST, expect=""))})
    pytester.runpytest_inprocess(*END_OPTIONS, "-p", "no:cacheprovider").assert_outcomes(passed=1)
    return _outputs(pytester.path)


def _outputs(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in _tree(root).items() if not k.startswith(("specs/tiny.py", "specs/__pycache__"))}


def test_ctrl_c_while_the_outputs_are_prepared_leaves_them_all_as_they_were(
    spec_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _session(spec_pytester)
    assert {"specs/baselines.json", "metrics.json", "report/index.html", "exports/tiny/model.keras"} <= set(before)

    from harness.report import index

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(index, "write_index", interrupted)  # the report's figures are written, then Ctrl-C
    result = spec_pytester.runpytest_inprocess(*END_OPTIONS, "-p", "no:cacheprovider", "--seed", "1")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert _outputs(spec_pytester.path) == before  # byte for byte; no temporary or staging left
    result.stdout.fnmatch_lines(
        [
            "*! KeyboardInterrupt !*",
            "harness: interrupted: the baselines, metrics, report and exports were left as they were",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_ctrl_c_during_the_commit_completes_it_first(
    spec_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _session(spec_pytester)
    _ctrl_c_inside_the_commit(monkeypatch)
    result = spec_pytester.runpytest_inprocess(*END_OPTIONS, "-p", "no:cacheprovider", "--seed", "1")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    after = _outputs(spec_pytester.path)
    events = [name for name in after if ".tfevents." in name]  # named by their time of writing
    assert len(events) == 2 and not set(events) & set(before)  # the log folder replaced whole
    assert set(after) - set(events) == {name for name in before if ".tfevents." not in name}
    for name in ("specs/baselines.json", "metrics.json", "report/index.html", "exports/tiny/model_card.json"):
        assert after[name] != before[name], name  # every output is the new one
    result.stdout.fnmatch_lines(["harness: Ctrl-C came while the outputs were published: they were completed first"])


def test_an_output_that_cannot_be_written_leaves_the_others_as_they_were(spec_pytester: pytest.Pytester) -> None:
    before = _session(spec_pytester)
    (spec_pytester.path / "blocked").write_text("a file where a folder is needed")
    options = [*END_OPTIONS[:2], "blocked/metrics.json", *END_OPTIONS[3:]]
    result = spec_pytester.runpytest_inprocess(*options, "-p", "no:cacheprovider", "--seed", "1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert {k: v for k, v in _outputs(spec_pytester.path).items() if k != "blocked"} == before
    result.stdout.fnmatch_lines(
        ["harness: could not write them (*blocked*): the baselines, metrics, report and exports were left as they were"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
