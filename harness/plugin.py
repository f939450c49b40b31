"""The pytest plugin (entry point `pytest11: harness`): options, collection hook, session hooks.

This module imports neither TensorFlow nor the engine: collecting specs stays cheap.

PYTEST_DONT_REWRITE: a plugin holds no test asserts. Marked, it is never rewritten, so a nested
pytest run (pytester) does not warn that it was imported before it could be rewritten, which
it does when an editable install loads the package through setuptools' import finder.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

from harness import workers
from harness.gate import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, DEFAULT_TOLERANCE
from harness.paths import ENV_CACHE_DIR
from harness.spec.validators import MAX_SEED
from harness.spec.vocabulary import FROZEN_RUNTIMES, PRECISIONS, STRATEGIES


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "Transfer-learning experiments (keras-transfer-harness)")
    group.addoption(
        "--metrics-json",
        metavar="PATH",
        default=None,
        help="Write per-experiment, per-phase metrics and invariant outcomes to PATH as JSON",
    )
    group.addoption(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help=f"Harness cache root for features, activations and converted weights (default ${ENV_CACHE_DIR} "
        "or ~/.cache/keras-transfer-harness)",
    )
    group.addoption(
        "--clear-harness-cache",
        action="store_true",
        default=False,
        help="Remove every cached feature and activation file before running",
    )
    group.addoption(
        "--no-feature-cache",
        action="store_true",
        default=False,
        help="Run every phase through the full network, as the plain Keras recipe does",
    )
    group.addoption(
        "--frozen-runtime",
        choices=FROZEN_RUNTIMES,
        default="auto",
        help="What runs the frozen layers' one forward pass: auto (default: LiteRT's XNNPACK kernels on a "
        "machine without a GPU, Keras's Model.predict where TensorFlow sees one), litert or keras",
    )
    group.addoption(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="What the layers compute in: float32 (default), mixed (Keras's mixed_float16 where TensorFlow sees a "
        "GPU, mixed_bfloat16 on a CPU with AMX, else float32), mixed_float16 or mixed_bfloat16. Variables, "
        "BatchNorm statistics, the softmax and the loss stay float32",
    )
    group.addoption(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="Where each experiment trains: default (one device) or mirrored (tf.distribute.MirroredStrategy over "
        "every GPU the process sees, else its logical CPUs; the global batch is the phase's batch_size)",
    )
    group.addoption(
        "--seed",
        dest="harness_seed",
        type=int,
        default=None,
        metavar="N",
        help="Seed every experiment with N instead of the seed its spec declares",
    )
    group.addoption(
        "--deterministic",
        action="store_true",
        default=False,
        help="Enable TensorFlow op determinism (tf.config.experimental.enable_op_determinism)",
    )
    group.addoption(
        "--repeats",
        type=int,
        default=1,
        metavar="N",
        help="Run each experiment under N seeds (its seed, seed+1, ...): every seed's checks must hold, and the "
        "spread of its accuracies is reported (and recorded with --update-baselines)",
    )
    group.addoption(
        "--update-baselines",
        action="store_true",
        default=False,
        help="Record the selected experiments' results as their new baselines",
    )
    group.addoption(
        "--tolerance",
        type=float,
        default=None,
        metavar="DROP",
        help="Largest accepted accuracy drop against a baseline when the spec sets none (default: what the "
        f"baseline's recorded spread allows, else {DEFAULT_TOLERANCE})",
    )
    group.addoption(
        "--gate-alpha",
        type=float,
        default=DEFAULT_ALPHA,
        metavar="ALPHA",
        help="False-alarm rate of the paired gate across the session's comparisons, Holm-corrected "
        f"(default {DEFAULT_ALPHA})",
    )
    group.addoption(
        "--min-effect",
        type=float,
        default=DEFAULT_MIN_EFFECT,
        metavar="DROP",
        help="Smallest accuracy drop a significantly worse run must show to fail the paired gate "
        f"(default {DEFAULT_MIN_EFFECT})",
    )
    group.addoption(
        "--report-dir",
        metavar="DIR",
        default=None,
        help="Write training curves, confusion matrices, TensorBoard logs and an index page to DIR",
    )
    group.addoption(
        "--export-dir",
        metavar="DIR",
        default=None,
        help="Export each experiment that passed to DIR/<name>/: model.keras, a SavedModel, LiteRT float32 and "
        "int8, labels.txt and model_card.json, each measured against the trained model",
    )
    group.addoption(
        "--export-all",
        action="store_true",
        default=False,
        help="With --export-dir, export every experiment that trained, failed ones too",
    )
    group.addoption(
        "--threads-per-worker",
        default="auto",
        metavar="N",
        help="Under pytest-xdist (-n): the threads each worker's TensorFlow, OpenMP and LiteRT pools use: auto "
        "(default: the cores divided by the workers), a number, or off (each pool's default: every core)",
    )
    group.addoption(
        "--shard",
        default=None,
        metavar="K/N",
        help="Run the K-th of N parts of the selected experiments (deterministic, balanced by the durations the "
        "baselines record, beats groups kept together); combine the parts with: python -m harness merge",
    )
    parser.addini(
        "harness_spec_dirs", "Folder names whose Python files are experiment specs", type="args", default=["specs"]
    )
    parser.addini(
        "harness_baselines",
        "Baseline file of the regression gate, relative to the rootdir",
        default="specs/baselines.json",
    )


def pytest_configure(config: pytest.Config) -> None:
    tolerance = config.getoption("tolerance")
    if tolerance is not None and not 0 <= tolerance <= 1:
        raise pytest.UsageError(f"--tolerance must be an accuracy drop in [0, 1], such as 0.02. Received: {tolerance}")
    for option, name, example in (("min_effect", "--min-effect", "0.01"), ("gate_alpha", "--gate-alpha", "0.05")):
        value = config.getoption(option)
        if not 0 <= value <= 1:
            raise pytest.UsageError(f"{name} must be a number in [0, 1], such as {example}. Received: {value}")
    if config.getoption("repeats") < 1:
        raise pytest.UsageError(
            f"--repeats must be a number of seeds, 1 or more. Received: {config.getoption('repeats')}"
        )
    seed = config.getoption("harness_seed")
    if seed is not None and not 0 <= seed < MAX_SEED:
        raise pytest.UsageError(f"--seed must be an integer in [0, 2**32) (NumPy's seed range). Received: {seed}")
    if config.getoption("export_all") and not config.getoption("export_dir"):
        raise pytest.UsageError("--export-all needs --export-dir DIR: where the exports are written")
    threads = config.getoption("threads_per_worker")
    if threads not in ("auto", "off") and not (threads.isdigit() and int(threads) > 0):
        raise pytest.UsageError(f"--threads-per-worker must be auto, off or a number of threads. Received: {threads}")
    if config.getoption("shard") is not None:
        from harness.sharding import Shard

        config.pluginmanager.register(Shard(config.getoption("shard")), "harness-shard")
    _distribute(config)
    cache_dir = config.getoption("cache_dir")
    if cache_dir:
        os.environ[ENV_CACHE_DIR] = str(Path(cache_dir).expanduser().resolve())
    if config.getoption("clear_harness_cache"):
        from harness.cache import FeatureCache
        from harness.paths import remove_stale_cache_temporaries

        # First the temporaries killed writers left: beside the features, the converted weights, ...
        temporaries = remove_stale_cache_temporaries()
        config.stash[_CLEARED] = (FeatureCache.default().clear(), temporaries)


_CLEARED = pytest.StashKey[tuple[int, int]]()  # cached feature entries, stale temporary files


def _distribute(config: pytest.Config) -> None:
    """Under pytest-xdist. The controller schedules with `--dist loadgroup` where `load` was
    asked (or implied by -n): experiments tied by `beats` then run on one worker, in order. A
    worker takes its share of the cores and its GPU before it imports TensorFlow."""
    from harness import worker_resources

    if not workers.is_worker(config):
        if getattr(config.option, "dist", "no") == "load":
            config.option.dist = "loadgroup"
        from harness.controller import Controller

        config.pluginmanager.register(Controller(config), "harness-controller")
        return
    given = workers.worker_input(config)
    if given.get(workers.LOADGROUP):  # xdist's workers parse the command line, not the controller's options
        config.option.loadgroup = True
    worker_resources.share(
        os.environ,
        index=int(str(given.get("workerid", "gw0")).removeprefix("gw") or 0),
        workers=int(given.get("workercount", 1)),
        setting=config.getoption("threads_per_worker"),
        available=worker_resources.cores(),
        gpus=worker_resources.gpu_count(),
    )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    # xdist's controller, per worker: the scheduling, and where workers stage exports (the controller publishes them).
    from harness.session import Session
    from harness.workers import EXPORT_STAGING

    config = node.config  # type: ignore[attr-defined]
    node.workerinput[workers.LOADGROUP] = config.getoption("dist") == "loadgroup"  # type: ignore[attr-defined]
    exports = Session.of(config).export_dir
    if exports is not None:
        node.workerinput[EXPORT_STAGING] = str(exports.staging.path)  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> str | None:
    if _CLEARED in config.stash:
        entries, temporaries = config.stash[_CLEARED]
        return f"harness: removed {entries} cached feature files and {temporaries} stale temporary files"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(
    file_path: Path, parent: pytest.Collector
) -> Generator[None, list[pytest.Collector], list[pytest.Collector]]:
    # A wrapper: a spec file named on the command line is also collected by pytest's python plugin
    # (as a test module, whatever its name); that module would import the spec a second time and
    # report its error again as a raw traceback. A spec file is collected as a spec only.
    collectors = yield
    spec_file = _spec_file(file_path, parent)
    if spec_file is None:
        return collectors
    return [c for c in collectors if not (isinstance(c, pytest.Module) and c.path == file_path)] + [spec_file]


def _spec_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".py" or file_path.name.startswith("_") or file_path.name == "conftest.py":
        return None
    config = parent.config
    relative = file_path.relative_to(config.rootpath) if file_path.is_relative_to(config.rootpath) else file_path
    if not set(relative.parts[:-1]) & set(config.getini("harness_spec_dirs")):
        return None
    from harness.collect import SpecFile

    return SpecFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Checks every `beats(...)` target (a bad one is a collection error of its experiment) and runs
    # each experiment after those it must beat: a topological order, stable otherwise. First, so
    # that a target deselected by -k still counts as collected (its baseline then stands in).
    from harness.collect import group_by_beats, order_by_beats
    from harness.workers import is_worker

    order_by_beats(config, items)
    if is_worker(config):
        group_by_beats(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    # The experiments selected to run (after -k and -m): the paired gate plans its Holm family from
    # them. A shard plans from every shard's (harness.sharding, which set them already).
    from harness.collect import ExperimentItem
    from harness.session import Session

    if session.config.getoption("shard") is None:
        names = [i.experiment.name for i in session.items if isinstance(i, ExperimentItem)]
        Session.of(session.config).selected = names


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    # pytest stops at any collection error; a broken spec file is reported as one, but the
    # experiments of the other files still run. Any other collection error stops as usual.
    from harness.collect import BROKEN_SPEC_FILES

    broken = session.config.stash.get(BROKEN_SPEC_FILES, set())
    if broken and session.testsfailed == len(broken):
        session.config.option.continue_on_collection_errors = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    from harness.collect import ExperimentItem
    from harness.session import Session

    if isinstance(item, ExperimentItem) and (report.when == "call" or report.skipped):
        from harness.results import plain_params

        session = Session.of(item.config)
        session.outcomes[item.experiment.name] = report.outcome
        session.params[item.experiment.name] = plain_params(item.experiment.params)
        if call.excinfo is not None and item.experiment.name not in session.results:
            # It stopped before a result (skip, data or spec error, a crash): the reports say why.
            session.errors[item.experiment.name] = call.excinfo.exconly().strip()
        if report.skipped and isinstance(report.longrepr, tuple) and item.experiment.location:
            # Point the skip at the spec's line, not at the harness code that raised it.
            report.longrepr = (item.experiment.location.path, item.experiment.location.line, report.longrepr[2])
        if workers.is_worker(item.config):  # the controller writes the session's outputs: send it the record
            from harness.controller import record_of

            worker = str(workers.worker_input(item.config).get("workerid", "worker"))
            setattr(report, workers.ATTRIBUTE, record_of(session, item.experiment.name, worker).encode())
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # The session's outputs (baselines, metrics JSON, report, exports) are staged, then published
    # together in one commit with Ctrl-C held back (harness/outputs.py): all new, or all as they were.
    from harness.outputs import Outputs
    from harness.session import SESSION_KEY

    state = session.config.stash.get(SESSION_KEY, None)
    if state is None or workers.is_worker(session.config):  # a worker's results went to the controller
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        state.discard_exports()  # an interrupted run leaves no partial baseline, metrics, report or export behind
        session.config.stash[_NOTES] = [f"interrupted: {_LEFT_AS_THEY_WERE}"]
        return
    state.finish_gate()
    if state.late_failures:  # rejected once every p-value was known: the gate fails the session
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    outputs = Outputs()
    try:
        notes = state.stage_outputs(outputs)
        if outputs.commit():
            notes.append("Ctrl-C came while the outputs were published: they were completed first")
            session.exitstatus = pytest.ExitCode.INTERRUPTED
    # A writer's error (OSError from a full disk, TensorBoard's own) ends no session in a traceback.
    except (KeyboardInterrupt, Exception) as error:  # noqa: BLE001
        outputs.discard()
        state.discard_exports()  # also when the error came before `stage_outputs` took them in
        interrupted = isinstance(error, KeyboardInterrupt)
        session.exitstatus = pytest.ExitCode.INTERRUPTED if interrupted else pytest.ExitCode.TESTS_FAILED
        why = "interrupted" if interrupted else f"could not write them ({type(error).__name__}: {error})"
        notes = [f"{why}: {_LEFT_AS_THEY_WERE}"]
        session.config.stash[_STOPPED] = (
            "KeyboardInterrupt" if interrupted else "the session's outputs were not written"
        )
    session.config.stash[_NOTES] = notes


_LEFT_AS_THEY_WERE = "the baselines, metrics, report and exports were left as they were"
_STOPPED = pytest.StashKey[str]()
_NOTES = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    from harness.session import SESSION_KEY

    state = config.stash.get(SESSION_KEY, None)
    lines = state.summary_lines() if state is not None else []
    if lines:
        terminalreporter.write_sep("=", "harness summary")
        for line in lines:
            terminalreporter.write_line(line)
    if _STOPPED in config.stash:  # as pytest marks a run it stopped
        terminalreporter.write_sep("!", config.stash[_STOPPED])
    # Printed here, after pytest ends the progress line, rather than at the end of "[100%]".
    for note in config.stash.get(_NOTES, []):
        terminalreporter.write_line(f"harness: {note}")
