"""A phase's schedule, label smoothing, weight decay and best-epoch checkpoint, checked at collection.

TensorFlow-free: these run as pytest collection runs a spec file. What the knobs do to training
is `test_training_knobs.py`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import (
    arrays,
    checkpoint_best,
    cosine,
    early_stopping,
    efficientnet_lite0,
    experiment,
    feature_extraction,
    fine_tune,
    one_cycle,
    reduce_lr_on_plateau,
)
from harness.spec import Cosine, OneCycle, SpecError
from harness.spec.schedules import phase_config

RATE = "must be a learning rate in [0, 1)"

EXACT = [
    # ------------------------------------------------------------------ cosine
    pytest.param(
        lambda: cosine(warmup_epochs=-1),
        "`cosine.warmup_epochs` must be a non-negative integer. Received: warmup_epochs=-1",
        id="cosine-negative-warmup",
    ),
    pytest.param(
        lambda: cosine(warmup_epochs=0.5),
        "`cosine.warmup_epochs` must be a non-negative integer. Received: warmup_epochs=0.5",
        id="cosine-fractional-warmup",
    ),
    pytest.param(
        lambda: cosine(min_learning_rate=1.0),
        f"`cosine.min_learning_rate` {RATE}. Received: min_learning_rate=1.0",
        id="cosine-min-rate-too-high",
    ),
    pytest.param(
        lambda: cosine(min_learning_rate="0"),
        f"`cosine.min_learning_rate` {RATE}. Received: min_learning_rate='0'",
        id="cosine-min-rate-string",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=2, schedule=cosine(warmup_epochs=2)),
        "`feature_extraction.schedule.warmup_epochs` must be fewer than the phase's epochs (2), or the rate "
        "never decays. Received: warmup_epochs=2",
        id="cosine-warmup-as-long-as-the-phase",
    ),
    pytest.param(
        lambda: fine_tune(epochs=2, unfreeze_all=True, learning_rate=1e-5, schedule=cosine(min_learning_rate=1e-4)),
        "`fine_tune.schedule.min_learning_rate` must be below the phase's learning_rate (1e-05). "
        "Received: min_learning_rate=0.0001",
        id="cosine-min-rate-above-the-peak",
    ),
    # ------------------------------------------------------------------ one_cycle
    pytest.param(
        lambda: one_cycle(max_learning_rate=3.0),
        "`one_cycle.max_learning_rate` must be a learning rate in (0, 1], such as 1e-3. Received: max_learning_rate=3.0",
        id="one-cycle-max-rate",
    ),
    pytest.param(
        lambda: one_cycle(pct_start=1.0),
        "`one_cycle.pct_start` must be a number in (0, 1). Received: pct_start=1.0",
        id="one-cycle-pct-start",
    ),
    pytest.param(
        lambda: one_cycle(div_factor=0.5),
        "`one_cycle.div_factor` must be a number >= 1. Received: div_factor=0.5",
        id="one-cycle-div-factor",
    ),
    pytest.param(
        lambda: one_cycle(final_div_factor=True),
        "`one_cycle.final_div_factor` must be a number >= 1. Received: final_div_factor=True",
        id="one-cycle-final-div-factor-bool",
    ),
    # ------------------------------------------------------------------ schedule on a phase
    pytest.param(
        lambda: feature_extraction(epochs=2, schedule="cosine"),
        "`feature_extraction.schedule` must be None, cosine(...) or one_cycle(...). Received: schedule='cosine'",
        id="schedule-a-string",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=2, schedule=cosine),
        "`feature_extraction.schedule` must be None, cosine(...) or one_cycle(...). Received: schedule=<function cosine",
        id="schedule-not-called",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=2, schedule=one_cycle(), callbacks=[reduce_lr_on_plateau()]),
        "`feature_extraction.callbacks[0]` must not be reduce_lr_on_plateau(...) in a phase with a schedule "
        "(Keras cannot set a scheduled rate). Drop one of the two. Received: callbacks[0]=ReduceLROnPlateau(",
        id="schedule-with-reduce-lr",
    ),
    # ------------------------------------------------------------------ label smoothing
    pytest.param(
        lambda: feature_extraction(epochs=1, label_smoothing=1.0),
        "`feature_extraction.label_smoothing` must be a number in [0, 1), such as 0.1. Received: label_smoothing=1.0",
        id="label-smoothing-one",
    ),
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_all=True, label_smoothing=-0.1),
        "`fine_tune.label_smoothing` must be a number in [0, 1), such as 0.1. Received: label_smoothing=-0.1",
        id="label-smoothing-negative",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, label_smoothing=None),
        "`feature_extraction.label_smoothing` must be a number in [0, 1), such as 0.1. Received: label_smoothing=None",
        id="label-smoothing-none",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, label_smoothing=False),
        "`feature_extraction.label_smoothing` must be a number in [0, 1), such as 0.1. Received: label_smoothing=False",
        id="label-smoothing-bool",
    ),
    # ------------------------------------------------------------------ weight decay
    pytest.param(
        lambda: feature_extraction(epochs=1, weight_decay=-1e-4),
        "`feature_extraction.weight_decay` must be None or a number >= 0, such as 1e-4. Received: weight_decay=-0.0001",
        id="weight-decay-negative",
    ),
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_all=True, weight_decay="1e-4"),
        "`fine_tune.weight_decay` must be None or a number >= 0, such as 1e-4. Received: weight_decay='1e-4'",
        id="weight-decay-string",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, weight_decay=float("inf")),
        "`feature_extraction.weight_decay` must be None or a number >= 0, such as 1e-4. Received: weight_decay=inf",
        id="weight-decay-infinite",
    ),
    # ------------------------------------------------------------------ checkpoint_best
    pytest.param(
        lambda: checkpoint_best(monitor="val_acc"),
        "`checkpoint_best.monitor` must be one of ('val_loss', 'val_accuracy', 'loss', 'accuracy'). "
        "Received: monitor='val_acc'",
        id="checkpoint-monitor",
    ),
    pytest.param(
        lambda: checkpoint_best(mode="maximum"),
        "`checkpoint_best.mode` must be one of ('auto', 'min', 'max'). Received: mode='maximum'",
        id="checkpoint-mode",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, callbacks=[checkpoint_best(), checkpoint_best(monitor="val_accuracy")]),
        "`feature_extraction.callbacks` must hold checkpoint_best(...) at most once. Received: callbacks=[",
        id="checkpoint-twice",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, callbacks=checkpoint_best()),
        "`feature_extraction.callbacks` must be a list. Wrap a single value in brackets: "
        "callbacks=[early_stopping()]. Received: callbacks=CheckpointBest(monitor='val_loss', mode='auto')",
        id="checkpoint-not-in-a-list",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, callbacks=["checkpoint_best"]),
        "`feature_extraction.callbacks[0]` must be early_stopping(...), reduce_lr_on_plateau(...) or "
        "checkpoint_best(...). Received: callbacks[0]='checkpoint_best'",
        id="callback-not-a-callback",
    ),
]


@pytest.mark.parametrize(("build", "message"), EXACT)
def test_spec_error_message(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        build()
    text = str(excinfo.value)
    assert text.startswith(message), text  # a Received: value with a long repr is compared up to its start
    assert text.count("Received: ") == 1, text


def test_defaults_leave_the_phase_as_before() -> None:
    phase = feature_extraction(epochs=1)
    assert (phase.schedule, phase.label_smoothing, phase.weight_decay) == (None, 0.0, None)
    assert phase == feature_extraction(epochs=1, schedule=None, label_smoothing=0.0, weight_decay=None)


def test_the_knobs_are_kept_as_declared() -> None:
    phase = fine_tune(
        epochs=3,
        unfreeze_from=-4,
        learning_rate=1e-4,
        schedule=cosine(warmup_epochs=1, min_learning_rate=1e-6),
        label_smoothing=0.1,
        weight_decay=0,
        callbacks=[early_stopping(), checkpoint_best(monitor="val_accuracy")],
    )
    assert phase.schedule == Cosine(1, 1e-6)
    assert (phase.label_smoothing, phase.weight_decay) == (0.1, 0.0)
    assert isinstance(phase.weight_decay, float)
    assert one_cycle() == OneCycle(None, 0.25, 25.0, 1e4)
    assert phase_config(phase) == {
        "optimizer": "adam",
        "learning_rate": 1e-4,
        "backbone_learning_rate": None,
        "batch_size": 32,
        "schedule": {"kind": "cosine", "warmup_epochs": 1, "min_learning_rate": 1e-6},
        "label_smoothing": 0.1,
        "weight_decay": 0.0,
        "checkpoint_best": {"monitor": "val_accuracy", "mode": "auto"},
    }
    assert phase_config(feature_extraction(epochs=1, schedule=one_cycle(max_learning_rate=1e-2)))["schedule"] == {
        "kind": "one_cycle",
        "max_learning_rate": 1e-2,
        "pct_start": 0.25,
        "div_factor": 25.0,
        "final_div_factor": 1e4,
    }


def test_staged_unfreezing_validates_at_collection() -> None:
    """The README's example: fine_tune stages that unfreeze deeper at lower rates, each with its own name."""
    staged = experiment(
        name="staged_unfreezing",
        dataset=arrays(dict, image_size=32),
        backbone=efficientnet_lite0(weights=None),
        phases=[
            feature_extraction(epochs=3, learning_rate=1e-3),
            fine_tune(name="stage_1", unfreeze_from="block_13_", epochs=2, learning_rate=1e-4),
            fine_tune(name="stage_2", unfreeze_from="block_11_", epochs=2, learning_rate=3e-5, schedule=cosine()),
            fine_tune(
                name="stage_3",
                unfreeze_from="block_8_",
                epochs=3,
                learning_rate=1e-5,
                schedule=cosine(warmup_epochs=1),
                label_smoothing=0.1,
                callbacks=[checkpoint_best(monitor="val_accuracy")],
            ),
        ],
    )
    assert [p.name for p in staged.phases] == ["feature_extraction", "stage_1", "stage_2", "stage_3"]
    with pytest.raises(SpecError, match="block_80_"):  # each stage's prefix is checked against the catalog
        experiment(
            name="staged_typo",
            dataset=arrays(dict, image_size=32),
            backbone=efficientnet_lite0(weights=None),
            phases=[fine_tune(name="stage_1", unfreeze_from="block_80_", epochs=1)],
        )


def test_training_curves_add_a_learning_rate_panel_for_a_schedule(tmp_path: Path) -> None:
    from PIL import Image

    from harness.report.plots import training_curves
    from harness.results import ExperimentResult, PhaseResult

    def ran(name: str, history: dict[str, list[float]]) -> PhaseResult:
        return PhaseResult(name, "fine_tune", 3, 3, history, 0.9, 0.3, None, None, 10, 0, 1.0, "features", "", "miss")

    curves = {"loss": [0.9, 0.6, 0.5], "val_loss": [1.0, 0.7, 0.6], "accuracy": [0.6, 0.8, 0.9]}
    curves["val_accuracy"] = [0.6, 0.8, 0.9]
    result = ExperimentResult("sched", 0, "tiny", None, "arrays", 2, {"train": 64, "validation": 32})
    result.phases = [ran("constant", curves), ran("cosine", {**curves, "learning_rate": [1e-3, 5e-4, 1e-6]})]
    with Image.open(training_curves(result, tmp_path / "with_rate.png")) as image:
        with_rate = image.width
    result.phases = [ran("constant", curves)]
    with Image.open(training_curves(result, tmp_path / "without.png")) as image:
        without = image.width
    assert with_rate > without * 1.3  # a third panel, only when a phase logged its rate
