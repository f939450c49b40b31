"""The export folder's promises, without TensorFlow: staged, published whole, never half-written.

Also the model card and `labels.txt` built from a result, and the Wilson intervals they carry.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import spec
from harness.export import card
from harness.export.publish import ExportDir, folder_name
from harness.results import Check, ExperimentResult, ExportResult, PhaseResult
from harness.stats import accuracy_interval


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_staged_exports_appear_only_when_published(tmp_path: Path) -> None:
    exports = ExportDir(tmp_path / "exports")
    with exports.stage("a") as folder:
        (folder / "model.keras").write_bytes(b"new")
    assert not (tmp_path / "exports" / "a").exists()  # staged, not yet published
    assert exports.staged() == {"a": tmp_path / "exports" / "a"}
    published = exports.staging.publish()
    assert published == [tmp_path / "exports" / "a"]
    assert _files(tmp_path / "exports") == {"a/model.keras": b"new"}  # and the staging folder is gone


def test_publishing_replaces_an_earlier_export_whole(tmp_path: Path) -> None:
    old = tmp_path / "a"
    old.mkdir()
    (old / "model.keras").write_bytes(b"old")
    (old / "stale.txt").write_bytes(b"from an older harness")
    exports = ExportDir(tmp_path)
    with exports.stage("a") as folder:
        (folder / "model.keras").write_bytes(b"new")
    exports.staging.publish()
    assert _files(tmp_path) == {"a/model.keras": b"new"}


def test_an_export_interrupted_while_written_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "model.keras").write_bytes(b"old")
    exports = ExportDir(tmp_path)

    def write_half() -> None:
        with exports.stage("a") as folder:
            (folder / "model.keras").write_bytes(b"half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_half()
    assert exports.staging.publish() == []
    assert _files(tmp_path) == {"a/model.keras": b"old"}


def test_a_discarded_or_closed_staging_publishes_nothing(tmp_path: Path) -> None:
    exports = ExportDir(tmp_path)
    for name in ("failed", "other"):
        with exports.stage(name) as folder:
            (folder / "labels.txt").write_text("x\n")
    exports.discard("failed")
    assert [p.name for p in exports.staging.publish()] == ["other"]
    with exports.stage("interrupted") as folder:
        (folder / "labels.txt").write_text("x\n")
    exports.staging.close()  # what an interrupted session does
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_folder_names_keep_parametrised_names_readable_and_safe() -> None:
    assert folder_name("grid[lr=0.001,dropout=0.2]") == "grid[lr=0.001,dropout=0.2]"
    assert folder_name("a/b c") == "a_b_c"


# ---------------------------------------------------------------------------------- model card


def _result() -> ExperimentResult:
    phase = PhaseResult(
        name="feature_extraction",
        kind="feature_extraction",
        epochs=3,
        epochs_run=3,
        history={},
        val_accuracy=0.9,
        val_loss=0.3,
        test_accuracy=0.85,
        test_loss=0.4,
        trainable_params=10,
        non_trainable_params=292,
        wall_time_s=1.0,
        training_path="features",
        training_path_reason="",
        cache="miss",
    )
    return ExperimentResult(
        name="tiny",
        seed=3,
        backbone="tiny",
        weights=None,
        dataset="in-memory arrays",
        num_classes=2,
        split_sizes={"train": 64, "validation": 40, "test": 20},
        phases=[phase],
        checks=[Check("baseline_test_accuracy", None, True, ">= 0.8", "0.85")],
        class_names=["good", "defective"],
        exports=[ExportResult("litert", "model_float32.tflite", 1234, "test", 20, 2e-7, 1.0, 0.85)],
    )


def _experiment() -> spec.Experiment:
    return spec.experiment(
        name="tiny",
        dataset=spec.arrays(lambda: None, image_size=16),
        backbone=spec.custom_backbone("tiny", lambda shape: None),
        head=spec.classifier_head(),
        phases=[spec.feature_extraction(epochs=3, learning_rate=5e-2, batch_size=16)],
        expect=[],
    )


def test_model_card_holds_what_a_user_deploys_by() -> None:
    document = card.model_card(_experiment(), _result(), spec_file="specs/tiny.py")
    assert document["experiment"] == "tiny"
    assert document["spec"]["file"] == "specs/tiny.py"
    assert document["classes"] == ["good", "defective"]
    assert document["input"]["shape"] == [16, 16, 3]
    assert document["input"]["dtype"]["litert_int8"] == "uint8"
    assert document["phases"] == [
        {
            "name": "feature_extraction",
            "kind": "feature_extraction",
            "epochs": 3,
            "epochs_run": 3,
            "optimizer": "adam",
            "learning_rate": 0.05,
            "batch_size": 16,
            "trainable_params": 10,
            "non_trainable_params": 292,
        }
    ]
    metrics = document["metrics"]
    assert (metrics["val_accuracy"], metrics["test_accuracy"]) == (0.9, 0.85)
    assert metrics["val_accuracy_ci"] == accuracy_interval(0.9, 40)
    assert metrics["test_accuracy_ci"] == accuracy_interval(0.85, 20)
    assert metrics["n"] == {"validation": 40, "test": 20}
    assert document["baseline"] == "passed"
    assert document["exports"][0]["max_abs_diff"] == 2e-7
    assert document["seed"] == 3
    assert {"harness", "python", "tensorflow", "keras", "ai-edge-litert", "cpu", "device"} <= set(
        document["environment"]
    )


def test_baseline_verdict() -> None:
    result = _result()
    assert card.baseline_verdict(result) == "passed"
    result.checks.append(Check("baseline_val_accuracy", None, False, ">= 0.9", "0.8"))
    assert card.baseline_verdict(result) == "failed"
    result.checks = []
    assert card.baseline_verdict(result) == "no baseline"
    assert (
        card.model_card(_experiment(), result, spec_file="s", recording_baselines=True)["baseline"] == "being recorded"
    )


def test_labels_text_is_one_class_per_line_in_output_order() -> None:
    assert card.labels_text(["good", "defective"]) == "good\ndefective\n"


def test_metrics_json_carries_intervals_next_to_each_accuracy() -> None:
    shown = _result().to_json()
    assert shown["val_accuracy_ci"] == accuracy_interval(0.9, 40)
    assert shown["test_accuracy_ci"] == accuracy_interval(0.85, 20)
    assert shown["phases"][0]["test_accuracy_ci"] == accuracy_interval(0.85, 20)
