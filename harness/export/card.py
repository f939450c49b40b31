"""What an export folder says about its model: `labels.txt` and `model_card.json`. No TensorFlow.

The model card holds what a user needs to deploy and trust the model: the experiment and where
its spec is, the data set and classes, the backbone, the phases, the final metrics with their
95% intervals, every check and the baseline verdict, the input each file takes, every exported
file with its size and measured agreement, the seed and the environment that produced it
(`harness.environment.fingerprint`: versions, CPU, device).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from harness import environment, spec
from harness.results import ExperimentResult

CARD_VERSION = 1


def write(
    folder: Path, experiment: spec.Experiment, result: ExperimentResult, *, spec_file: str, recording: bool
) -> None:
    """Writes `labels.txt` and `model_card.json` of `result` into its export folder."""
    (folder / "labels.txt").write_text(labels_text(result.class_names), encoding="utf-8")
    document = model_card(experiment, result, spec_file=spec_file, recording_baselines=recording)
    (folder / "model_card.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def labels_text(class_names: list[str]) -> str:
    """One class name per line, in output order: line i names output i."""
    return "".join(f"{name}\n" for name in class_names)


def model_card(
    experiment: spec.Experiment, result: ExperimentResult, *, spec_file: str, recording_baselines: bool = False
) -> dict[str, Any]:
    """The `model_card.json` document of `result` (its checks evaluated, its exports measured)."""
    final = result.final
    return {
        "card_version": CARD_VERSION,
        "experiment": result.name,
        "spec": {"file": spec_file, "line": experiment.location.line if experiment.location else None},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dataset": result.dataset,
        "classes": result.class_names,
        "split_sizes": result.split_sizes,
        "backbone": {"name": result.backbone, "weights": result.weights},
        "input": _input(experiment),
        "phases": [
            {
                "name": declared.name,
                "kind": declared.kind,
                "epochs": declared.epochs,
                "epochs_run": ran.epochs_run,
                "optimizer": declared.optimizer,
                "learning_rate": declared.learning_rate,
                "batch_size": declared.batch_size,
                "trainable_params": ran.trainable_params,
                "non_trainable_params": ran.non_trainable_params,
            }
            for declared, ran in zip(experiment.phases, result.phases, strict=True)
        ],
        "metrics": {
            "val_accuracy": final.val_accuracy,
            "test_accuracy": final.test_accuracy,
            **result.intervals(final),
            "n": {"validation": result.split_sizes["validation"], "test": result.split_sizes.get("test")},
        },
        "checks": [
            {"check": c.title, "passed": c.passed, "obtained": c.obtained, "expected": c.expected}
            for c in result.checks
        ],
        "baseline": "being recorded" if recording_baselines else baseline_verdict(result),
        "exports": [dataclasses.asdict(e) for e in result.exports],
        "exports_unavailable": result.exports_unavailable,
        "seed": result.seed,
        "params": result.params,
        "environment": environment.fingerprint(),
    }


def _input(experiment: spec.Experiment) -> dict[str, Any]:
    """What each exported file takes and returns."""
    if experiment.modality == spec.TEXT:
        return {
            "texts": "raw strings, tokenised inside the model by the backbone's keras-hub preprocessor "
            "(`model.keras`: load it after `import harness.export.raw_text`; `saved_model`: after `import tensorflow_text`)",
            "sequence_length": experiment.input_size,
            "dtype": {"keras": "string", "saved_model": "string", "litert": "int32 token ids (the app tokenises)"},
            "litert_inputs": "the preprocessor's outputs (token_ids, padding_mask, ...) padded to sequence_length",
            "output": "class probabilities in the order of labels.txt",
        }
    height, width = experiment.image_size
    return {
        "shape": [height, width, 3],
        "pixels": "RGB, 0..255, resized to the input size as the harness does (tf.image.resize, bilinear)",
        "dtype": {"keras": "float32", "saved_model": "float32", "litert": "float32", "litert_int8": "uint8"},
        "output": "class probabilities in the order of labels.txt (litert_int8: uint8, scale 1/256)",
    }


def baseline_verdict(result: ExperimentResult) -> str:
    """ "passed" or "failed" by the regression gate's checks; "no baseline" when none ran."""
    gated = [c for c in result.checks if c.name.startswith("baseline_")]
    if not gated:
        return "no baseline"
    return "passed" if all(c.passed for c in gated) else "failed"
