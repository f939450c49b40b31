"""The report package on synthetic results: terminal table, PNGs, TensorBoard logs, HTML and Markdown."""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report import (
    experiment_dirs,
    export_lines,
    interval_lines,
    no_result_row,
    rows_for,
    safe_name,
    summary_lines,
    write_index,
    write_report,
    write_tensorboard,
)
from harness.report.plots import confusion_matrix, training_curves
from harness.report.terminal import format_duration
from harness.results import Check, ExperimentResult, ExportResult, PhaseResult

PARAMETRISED = "exp[MobileNetV2-0.001]"


def phase(
    name: str, kind: str, *, epochs: int, run: int, start: float, test: bool = True, trainable: int = 12_810
) -> PhaseResult:
    history = {
        "loss": [1.2 * start * math.exp(-0.35 * i) for i in range(run)],
        "val_loss": [1.3 * start * math.exp(-0.3 * i) + 0.05 for i in range(run)],
        "accuracy": [min(0.99, 0.55 + 0.4 * (1 - start) + 0.06 * i) for i in range(run)],
        "val_accuracy": [min(0.97, 0.52 + 0.4 * (1 - start) + 0.05 * i) for i in range(run)],
    }
    return PhaseResult(
        name=name,
        kind=kind,
        epochs=epochs,
        epochs_run=run,
        history=history,
        val_accuracy=history["val_accuracy"][-1],
        val_loss=history["val_loss"][-1],
        test_accuracy=history["val_accuracy"][-1] - 0.01 if test else None,
        test_loss=history["val_loss"][-1] + 0.02 if test else None,
        trainable_params=trainable,
        non_trainable_params=2_257_984 - trainable,
        wall_time_s=4.2 * run,
        training_path="features" if kind == "feature_extraction" else "activations@block_12_expand",
        training_path_reason="the whole backbone is frozen"
        if kind == "feature_extraction"
        else "layers below block_12_ are frozen",
        cache="miss",
        cached_val_accuracy=None,
    )


def result(name: str, *, class_names: list[str], test: bool = True, failed_check: bool = False) -> ExperimentResult:
    n = len(class_names)
    matrix = [[(30 if i == j else 2 + (i + j) % 3) for j in range(n)] for i in range(n)]
    checks = [
        Check("frozen_weights_unchanged", "head", True, "max |change| == 0", "0 (154 variables)"),
        Check(
            "min_val_accuracy",
            None,
            not failed_check,
            ">= 0.950",
            "0.870",
            ["val accuracy after 'fine_tune' (the final phase)"] if failed_check else [],
        ),
    ]
    splits = {"train": 600, "validation": 150} | ({"test": 150} if test else {})
    return ExperimentResult(
        name=name,
        seed=1234,
        backbone="MobileNetV2",
        weights="imagenet",
        dataset="synthetic",
        num_classes=n,
        split_sizes=splits,
        phases=[
            phase("head", "feature_extraction", epochs=4, run=4, start=1.0, test=test),
            phase("fine_tune", "fine_tune", epochs=5, run=3, start=0.45, test=test, trainable=1_862_000),
        ],
        checks=checks,
        wall_time_s=31.5,
        class_names=class_names,
        confusion_matrix=matrix,
        confusion_split="test" if test else "validation",
    )


@pytest.fixture(scope="module")
def results() -> list[ExperimentResult]:
    return [
        result("cats_vs_dogs", class_names=["cat", "dog"]),
        result(PARAMETRISED, class_names=["mono", "poly", "crack", "inactive"], test=False, failed_check=True),
    ]


def items(results):
    return [(results[0], "passed", {"val_accuracy": 0.85, "test_accuracy": 0.86}), (results[1], "failed", None)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, results: list[ExperimentResult]) -> Path:
    """The report without TensorBoard logs: no TensorFlow import, so these tests stay fast."""
    return write_report(tmp_path_factory.mktemp("report"), items(results), tensorboard=False)


@pytest.fixture(scope="module")
def tensorboard_report(tmp_path_factory: pytest.TempPathFactory, results: list[ExperimentResult]) -> Path:
    """The full report, TensorBoard logs included (imports TensorFlow: most of this module's time)."""
    return write_report(tmp_path_factory.mktemp("report"), items(results))


# ------------------------------------------------------------------------------------ terminal


def test_summary_lines_are_aligned_whatever_the_name_length(results):
    long_name = "a_rather_long_experiment_name[EfficientNetLite0-0.0001-balanced-augmented]"
    rows = (
        rows_for(results[0], "passed", {"test_accuracy": 0.88})
        + rows_for(results[1], "failed", None)
        + rows_for(result(long_name, class_names=["a", "b"]), "passed", None)
        + [no_result_row("weights_missing", "skipped")]
    )
    lines = summary_lines(rows)
    assert len({len(line) for line in lines}) == 1
    assert lines[0].split() == [
        "experiment",
        "phase",
        "epochs",
        "val",
        "acc",
        "test",
        "acc",
        "baseline",
        "delta",
        "trainable",
        "time",
        "result",
    ]
    assert set(lines[1]) == {"-"}
    # Every column starts at the same offset on every line: "phase" lines up under its header.
    column = lines[0].index("phase")
    assert [line[column:].split()[0] for line in lines[2:]] == ["head", "fine_tune"] * 3 + ["-"]
    assert lines[2 + 4].startswith(long_name)
    assert lines[-1].split() == ["weights_missing"] + ["-"] * 8 + ["SKIPPED"]


def test_summary_fits_a_ci_log_for_usual_names(results):
    lines = summary_lines(rows_for(results[1], "failed", None))
    assert len(lines[0]) <= 110, lines[0]


def test_baseline_and_delta_only_on_the_final_phase(results):
    head, fine_tune = rows_for(results[0], "passed", {"val_accuracy": 0.85, "test_accuracy": 0.86})
    assert (head.baseline, head.delta, head.outcome) == (None, None, None)
    assert fine_tune.baseline == 0.86 and fine_tune.baseline_metric == "test_accuracy"
    assert fine_tune.delta == pytest.approx(results[0].final.test_accuracy - 0.86)
    assert fine_tune.outcome == "PASSED"
    line = summary_lines([head, fine_tune])[-1]
    assert "0.860" in line and f"{fine_tune.delta:+.3f}" in line and line.rstrip().endswith("PASSED")


def test_baseline_falls_back_to_validation_without_a_test_split(results):
    final = rows_for(results[1], "failed", {"val_accuracy": 0.9, "test_accuracy": 0.91})[-1]
    assert final.baseline_metric == "val_accuracy"
    assert final.delta == pytest.approx(results[1].final.val_accuracy - 0.9)
    assert "0.900 (val)" in summary_lines([final])[-1]


def test_missing_baseline_reads_as_a_dash(results):
    cells = summary_lines(rows_for(results[1], "failed", None))[-1].split()
    assert cells[-5:-3] == ["-", "-"]  # baseline, delta


@pytest.mark.parametrize(
    ("seconds", "shown"), [(8.44, "8.4s"), (59.96, "1m00s"), (185, "3m05s"), (3725, "1h02m"), (None, "-")]
)
def test_format_duration(seconds, shown):
    assert format_duration(seconds) == shown


# ------------------------------------------------------------------------------------- names


def test_safe_name_keeps_parametrised_names_readable():
    assert safe_name(PARAMETRISED) == "exp-MobileNetV2-0.001"
    assert safe_name("a/../b c") == "a-..-b-c"
    assert safe_name("[]") == "experiment"
    long = safe_name("x" * 300)
    assert len(long) <= 80 and long != safe_name("x" * 301)


def test_experiment_dirs_are_unique_and_order_independent():
    names = ["a[x y]", "a[x-y]", "b"]
    dirs = experiment_dirs(names)
    assert len(set(dirs.values())) == 3 and dirs["b"] == "b"
    assert dirs == experiment_dirs(reversed(names))


# -------------------------------------------------------------------------------------- plots


def test_training_curves_png(tmp_path, results):
    from PIL import Image

    path = training_curves(results[1], tmp_path / "curves.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert 900 <= image.width <= 1300 and 350 <= image.height <= 600
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary left behind


@pytest.mark.parametrize("classes", [["cat", "dog"], ["mono", "poly", "crack", "inactive"]])
def test_confusion_matrix_png(tmp_path, classes):
    from PIL import Image

    path = confusion_matrix(result("cm", class_names=classes), tmp_path / "confusion.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= 500 and image.height >= 450


def test_index_facts_show_a_parametrised_experiments_params(tmp_path, results):
    swept = dataclasses.replace(
        results[0], name="swept[MobileNetV2-0.001]", params={"model": "MobileNetV2", "learning_rate": 0.001}
    )
    write_index([(swept, "passed"), (results[1], "failed")], tmp_path)
    markdown = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert "- params: model='MobileNetV2', learning_rate=0.001" in markdown
    assert markdown.count("- params:") == 1  # only the parametrised experiment has the line
    assert "<dt>params</dt><dd>model=&#x27;MobileNetV2&#x27;, learning_rate=0.001</dd>" in (
        tmp_path / "index.html"
    ).read_text(encoding="utf-8")


def test_index_shows_each_export_with_its_size_and_agreement(tmp_path, results):
    exported = dataclasses.replace(
        results[0],
        export_dir="exports/exp",
        exports=[
            ExportResult("litert", "model_float32.tflite", 13_466_684, "test", 525, 7.27e-6, 1.0, 0.857),
            ExportResult("litert_int8", "model_int8.tflite", 3_981_000, "test", 525, 0.604, 0.98286, 0.863),
        ],
    )
    write_index([(exported, "passed"), (results[1], "failed")], tmp_path)
    markdown = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert "- exported to: exports/exp" in markdown
    assert "| litert | model_float32.tflite | 13.47 MB | 7.3e-06 | 100.00% | 0.857 | 525 test |" in markdown
    assert "| litert_int8 | model_int8.tflite | 3.98 MB | 6.0e-01 | 98.29% | 0.863 | 525 test |" in markdown
    assert markdown.count("### Exports") == 1  # the other experiment was not exported
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<h3>Exports</h3>" in html and "<td class=num>3.98 MB</td>" in html
    (line,) = export_lines([exported, results[1]])
    assert line == (
        f"exports of {exported.name} (exports/exp): litert 13.47 MB max|dp|=7.3e-06 argmax=100.00% acc=0.857, "
        "litert_int8 3.98 MB max|dp|=6.0e-01 argmax=98.29% acc=0.863"
    )


def test_interval_lines_give_each_final_accuracy_its_wilson_interval_and_n(results):
    result = dataclasses.replace(results[0], split_sizes={"train": 1705, "validation": 394, "test": 525})
    result.phases = [dataclasses.replace(result.final, val_accuracy=349 / 394, test_accuracy=450 / 525)]
    assert interval_lines([result]) == [
        f"95% intervals of {result.name}: val 0.886 [0.851, 0.914] n=394, test 0.857 [0.825, 0.884] n=525"
    ]


def test_confusion_matrix_names_the_split(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.axes import Axes

    titles = []
    set_title = Axes.set_title
    monkeypatch.setattr(
        Axes,
        "set_title",
        lambda self, label, *args, **kwargs: titles.append(label) or set_title(self, label, *args, **kwargs),
    )
    confusion_matrix(result("a", class_names=["x", "y"]), tmp_path / "test.png")
    confusion_matrix(result("a", class_names=["x", "y"], test=False), tmp_path / "validation.png")
    assert ["test split" in titles[0], "validation split" in titles[1]] == [True, True]


def test_plots_need_data(tmp_path):
    empty = ExperimentResult("empty", 0, "b", None, "d", 2, {"train": 1})
    with pytest.raises(ValueError, match="confusion_matrix=None"):
        confusion_matrix(empty, tmp_path / "c.png")
    with pytest.raises(ValueError, match="phases=\\[\\]"):
        training_curves(empty, tmp_path / "t.png")


# ------------------------------------------------------------------------------------- report


def test_report_files(report):
    out = report.parent
    assert report.name == "index.html" and (out / "index.md").is_file()
    for folder in ("cats_vs_dogs", "exp-MobileNetV2-0.001"):
        assert sorted(p.name for p in (out / folder).iterdir()) == ["confusion.png", "curves.png"]
    assert not list(out.rglob(".*")), "temporary files left behind"
    assert "TensorBoard" not in report.read_text(encoding="utf-8")  # nothing linked that was not written


def test_a_rerun_into_the_same_folder_links_no_figure_of_the_earlier_run(tmp_path, results):
    write_report(tmp_path, items(results), tensorboard=False)
    crashed = ExperimentResult(
        name="cats_vs_dogs",
        seed=1234,
        backbone="MobileNetV2",
        weights="imagenet",
        dataset="synthetic",
        num_classes=2,
        split_sizes={},
    )  # stopped before training
    index = write_report(tmp_path, [(crashed, "failed", None)], tensorboard=False)
    assert list((tmp_path / "cats_vs_dogs").iterdir()) == []
    assert "cats_vs_dogs/" not in index.read_text(encoding="utf-8")
    assert "cats_vs_dogs/" not in (tmp_path / "index.md").read_text(encoding="utf-8")


def test_report_files_are_readable_like_new_files(report):
    mask = os.umask(0o022)
    os.umask(mask)
    for path in (report, report.parent / "index.md", report.parent / "cats_vs_dogs" / "curves.png"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


def test_html_holds_the_table_figures_and_checks(report, results):
    text = report.read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text and "https://" not in text
    # The summary: one row per phase; name and result span an experiment's rows.
    assert text.count("<tr class=first>") == 2 and text.count("<tr>") >= 2
    assert '<td rowspan=2><a href="#exp-MobileNetV2-0.001">exp[MobileNetV2-0.001]</a></td>' in text
    assert '<section id="exp-MobileNetV2-0.001">' in text
    assert (
        '<td rowspan=2 class="outcome failed">FAILED</td>' in text
        and '<td rowspan=2 class="outcome passed">PASSED</td>' in text
    )
    assert (
        "<td class=num>3/5</td><td class=num>0.840</td><td class=num>0.830</td><td class=num>0.860</td><td class=num>-0.030</td>"
        in text
    )
    assert '<img src="exp-MobileNetV2-0.001/curves.png"' in text and '<img src="cats_vs_dogs/confusion.png"' in text
    assert "obtained <code>0.870</code>, expected <code>&gt;= 0.950</code>" in text
    assert "val accuracy after &#x27;fine_tune&#x27; (the final phase)" in text


def test_markdown_holds_the_table_figures_and_checks(report):
    text = (report.parent / "index.md").read_text(encoding="utf-8")
    assert "| experiment | phase | epochs | val acc | test acc | baseline | delta | trainable | time | result |" in text
    assert "| exp[MobileNetV2-0.001] | fine_tune | 3/5 |" in text
    assert "![training curves](exp-MobileNetV2-0.001/curves.png)" in text
    assert "![confusion matrix](cats_vs_dogs/confusion.png)" in text
    assert "- **FAILED** min_val_accuracy: obtained `0.870`, expected `>= 0.950`" in text
    assert "## exp[MobileNetV2-0.001]: FAILED" in text


def _events(run: Path):
    import tensorflow as tf

    scalars, texts = {}, {}
    files = list(run.glob("events.out.tfevents.*"))
    assert len(files) == 1
    for event in tf.compat.v1.train.summary_iterator(str(files[0])):
        for value in event.summary.value:
            data = tf.make_ndarray(value.tensor)
            if value.metadata.plugin_data.plugin_name == "scalars":
                scalars.setdefault(value.tag, []).append((event.step, float(data)))
            else:
                texts[value.tag] = data.item().decode("utf-8")
    return scalars, texts


@pytest.mark.slow
def test_tensorboard_logs_are_written_and_linked(tensorboard_report):
    out = tensorboard_report.parent
    for folder in ("cats_vs_dogs", "exp-MobileNetV2-0.001"):
        logdir = out / folder / "tensorboard"
        assert sorted(p.name for p in logdir.iterdir()) == ["train", "validation"]
        for index in (tensorboard_report, out / "index.md"):
            assert str(logdir.resolve()) in index.read_text(encoding="utf-8")
    assert f"tensorboard --logdir {out.resolve()}" in tensorboard_report.read_text(encoding="utf-8")
    assert not list(out.rglob(".*")), "temporary folders left behind"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((out / "cats_vs_dogs" / "tensorboard").stat().st_mode) == 0o777 & ~mask


@pytest.mark.slow
def test_tensorboard_scalars_span_all_phases(tensorboard_report, results):
    logdir = tensorboard_report.parent / "exp-MobileNetV2-0.001" / "tensorboard"
    train, texts = _events(logdir / "train")
    validation, _ = _events(logdir / "validation")
    head, fine_tune = results[1].phases
    assert set(train) == set(validation) == {"loss", "accuracy"}
    assert [step for step, _ in train["loss"]] == list(range(1, 8))
    assert [v for _, v in train["loss"]] == pytest.approx(head.history["loss"] + fine_tune.history["loss"])
    assert [v for _, v in validation["accuracy"]] == pytest.approx(
        head.history["val_accuracy"] + fine_tune.history["val_accuracy"]
    )
    assert "| fine_tune | fine_tune | 3/5 | activations@block_12_expand" in texts["phases"]
    assert "**FAILED** min_val_accuracy" in texts["checks"]


@pytest.mark.slow
def test_tensorboard_rewrite_replaces_the_logs(tensorboard_report, results):
    logdir = tensorboard_report.parent / "cats_vs_dogs" / "tensorboard"
    write_tensorboard(results[0], logdir)
    train, _ = _events(logdir / "train")  # still one event file, seven points
    assert len(train["loss"]) == 7
    assert not [p for p in logdir.parent.iterdir() if p.name.startswith(".")]


def test_importing_the_package_loads_neither_matplotlib_nor_tensorflow():
    code = "import sys, harness.report; print(sorted({'matplotlib', 'tensorflow'} & set(sys.modules)))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_a_result_reads_back_from_its_metrics_json(results):
    import json

    for original in results:
        written = json.loads(json.dumps(original.to_json()))  # through the file's text
        assert ExperimentResult.from_json(written) == original
    assert ExperimentResult.from_json({**results[0].to_json(), "added_by_a_later_version": 1}) == results[0]
