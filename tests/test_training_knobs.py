"""What a phase's schedule, label smoothing, weight decay and `checkpoint_best` do to training.

The schedules' rates at known steps are compared with their formulas (Keras's `CosineDecay`
with warm-up; PyTorch's `OneCycleLR` with cosine annealing, re-derived here). The rest train
the tiny experiment of `tiny_models` (64 training images, a second or two a run). At their
defaults the knobs must build exactly the optimizer and the loss the engine built before them,
and train the same weights bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from tiny_models import make_data, noise_data, tiny_backbone

from harness import spec

pytest.importorskip("tensorflow")

import keras

from harness import engine, training_options  # imports TensorFlow

pytestmark = pytest.mark.slow  # builds Keras objects; most tests train the tiny model

STEPS = 4  # 64 training images in batches of 16


def tiny(*phases: spec.Phase, data: Callable[[], Any] = make_data) -> spec.Experiment:
    return spec.experiment(
        name="knobs",
        dataset=spec.arrays(data, image_size=16),
        backbone=spec.custom_backbone("tiny", tiny_backbone),
        head=spec.classifier_head(dropout_rate=0.0),
        phases=phases,
    )


def train(experiment: spec.Experiment, **options: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """Runs `experiment`; returns the result and the final weights by path."""
    run = engine.run(experiment, engine.RunOptions(**options))
    return run.result, {v.path: np.array(v.numpy(), copy=True) for v in run.model.model.weights}


def head(**knobs: Any) -> spec.Phase:
    arguments = {"epochs": 3, "learning_rate": 5e-2, "batch_size": 16, **knobs}
    return spec.feature_extraction(**arguments)


def rates(schedule: Any, steps: range) -> np.ndarray:
    return np.array([float(keras.ops.convert_to_numpy(schedule(s))) for s in steps])


# ---------------------------------------------------------------------- defaults: today's objects


def config(optimizer: keras.optimizers.Optimizer) -> dict[str, Any]:
    return {k: v for k, v in optimizer.get_config().items() if k != "name"}


@pytest.mark.parametrize("name", sorted(spec.OPTIMIZERS))
def test_defaults_build_todays_optimizer_and_loss(name: str) -> None:
    phase = spec.feature_extraction(epochs=2, learning_rate=3e-4, optimizer=name)
    built = training_options.optimizer(phase, 3e-4, STEPS)
    before = getattr(keras.optimizers, spec.OPTIMIZERS[name])(learning_rate=3e-4)  # the engine's old call
    assert type(built) is type(before)
    assert config(built) == config(before)
    assert training_options.learning_rate(phase, 3e-4, STEPS) == 3e-4  # a float, not a schedule
    assert training_options.loss(phase) == "sparse_categorical_crossentropy"


def test_defaults_train_bit_for_bit_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default path against the engine's construction before the knobs existed (patched back in)."""
    experiment = tiny(head(), spec.fine_tune(unfreeze_from="block_2_", epochs=1, learning_rate=1e-3, batch_size=16))
    result, now = train(experiment)
    monkeypatch.setattr(
        training_options,
        "optimizer",
        lambda phase, rate, steps: engine.optimizer_class(phase.optimizer)(learning_rate=rate),
    )
    monkeypatch.setattr(training_options, "loss", lambda phase: "sparse_categorical_crossentropy")
    old_result, old = train(experiment)
    assert sorted(now) == sorted(old)
    for path in now:
        assert now[path].tobytes() == old[path].tobytes(), path
    assert [p.history for p in result.phases] == [p.history for p in old_result.phases]
    assert all("learning_rate" not in p.history and p.best_epoch is None for p in result.phases)


# ---------------------------------------------------------------------- schedules against their formulas


def test_cosine_with_warmup_matches_the_formula() -> None:
    peak, low, warmup_epochs, epochs = 1e-3, 1e-5, 1, 3
    phase = head(epochs=epochs, learning_rate=peak, schedule=spec.cosine(warmup_epochs=1, min_learning_rate=low))
    schedule = training_options.learning_rate(phase, peak, STEPS)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    total, warmup = epochs * STEPS, warmup_epochs * STEPS

    def formula(step: int) -> float:
        if step < warmup:
            return peak * step / warmup
        done = min(step - warmup, total - warmup) / (total - warmup)
        return low + (peak - low) * 0.5 * (1 + math.cos(math.pi * done))

    steps = range(total + 3)
    np.testing.assert_allclose(rates(schedule, steps), [formula(s) for s in steps], rtol=1e-5, atol=1e-10)
    assert rates(schedule, range(warmup, warmup + 1))[0] == pytest.approx(peak)  # the peak after warm-up
    assert rates(schedule, range(total, total + 1))[0] == pytest.approx(low)  # the floor at the end
    # The backbone's rate follows the same curve, scaled to its own peak.
    backbone = training_options.learning_rate(phase, peak / 10, STEPS)
    np.testing.assert_allclose(rates(backbone, steps), rates(schedule, steps) / 10, rtol=1e-5)


def test_cosine_without_warmup_starts_at_the_peak() -> None:
    phase = head(epochs=2, learning_rate=1e-2, schedule=spec.cosine())
    schedule = training_options.learning_rate(phase, 1e-2, STEPS)
    total = 2 * STEPS
    expected = [1e-2 * 0.5 * (1 + math.cos(math.pi * s / total)) for s in range(total + 1)]
    np.testing.assert_allclose(rates(schedule, range(total + 1)), expected, rtol=1e-5, atol=1e-10)


def pytorch_one_cycle(step: int, total: int, peak: float, pct: float, div: float, final_div: float) -> float:
    """`torch.optim.lr_scheduler.OneCycleLR.get_lr` (anneal_strategy="cos", three_phase=False), transcribed."""
    initial = peak / div
    phases = [
        {"end_step": float(pct * total) - 1, "start_lr": initial, "end_lr": peak},
        {"end_step": total - 1, "start_lr": peak, "end_lr": initial / final_div},
    ]
    start_step = 0.0
    for i, phase in enumerate(phases):
        end_step = phase["end_step"]
        if step <= end_step or i == len(phases) - 1:
            pct_done = (step - start_step) / (end_step - start_step)
            start, end = phase["start_lr"], phase["end_lr"]
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct_done) + 1)
        start_step = end_step
    raise AssertionError


@pytest.mark.parametrize(("epochs", "pct", "div", "final_div"), [(5, 0.25, 25.0, 1e4), (3, 0.3, 10.0, 100.0)])
def test_one_cycle_matches_pytorch(epochs: int, pct: float, div: float, final_div: float) -> None:
    peak = 1e-3
    phase = head(
        epochs=epochs,
        learning_rate=peak,
        schedule=spec.one_cycle(pct_start=pct, div_factor=div, final_div_factor=final_div),
    )
    schedule = training_options.learning_rate(phase, peak, STEPS)
    total = epochs * STEPS
    steps = range(total)
    expected = [pytorch_one_cycle(s, total, peak, pct, div, final_div) for s in steps]
    np.testing.assert_allclose(rates(schedule, steps), expected, rtol=1e-4, atol=1e-12)
    got = rates(schedule, range(total + 2))
    assert got[0] == pytest.approx(peak / div, rel=1e-5)
    assert got.max() <= peak * (1 + 1e-6)
    if float(pct * total).is_integer():  # else the peak falls between two steps, as in PyTorch
        assert got.max() == pytest.approx(peak, rel=1e-5)
    assert got[total - 1] == pytest.approx(peak / (div * final_div), rel=1e-4)
    assert got[total + 1] == pytest.approx(got[total - 1], rel=1e-6)  # stays at the floor past the end
    # Serialisable: a saved model's optimizer carries it.
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    np.testing.assert_allclose(rates(again, steps), rates(schedule, steps))


def test_one_cycle_max_rate_and_the_backbone_ratio() -> None:
    phase = spec.fine_tune(
        unfreeze_all=True,
        epochs=2,
        learning_rate=1e-4,
        backbone_learning_rate=1e-5,
        schedule=spec.one_cycle(max_learning_rate=1e-3),
    )
    head_rates = rates(training_options.learning_rate(phase, 1e-4, STEPS), range(2 * STEPS))
    backbone_rates = rates(training_options.learning_rate(phase, 1e-5, STEPS), range(2 * STEPS))
    assert head_rates.max() == pytest.approx(1e-3, rel=1e-5)
    np.testing.assert_allclose(backbone_rates, head_rates / 10, rtol=1e-5)


# ---------------------------------------------------------------------- training with the knobs


def test_a_schedule_is_logged_per_epoch_and_shown_in_the_progress_lines() -> None:
    lines: list[str] = []
    phase = head(epochs=3, schedule=spec.cosine(warmup_epochs=1, min_learning_rate=1e-4))
    result, _ = train(tiny(phase), progress=lines.append)
    logged = result.phases[0].history["learning_rate"]
    schedule = training_options.learning_rate(phase, 5e-2, STEPS)
    # The rate at the end of each epoch: the optimizer's after its last step.
    np.testing.assert_allclose(logged, rates(schedule, range(STEPS, 4 * STEPS, STEPS)), rtol=1e-5)
    assert logged[0] == pytest.approx(5e-2) and logged[-1] == pytest.approx(1e-4)
    assert [line.split(" lr=")[1].split()[0] for line in lines] == [f"{r:.1e}" for r in logged]
    assert result.phases[0].config["schedule"] == {"kind": "cosine", "warmup_epochs": 1, "min_learning_rate": 1e-4}
    assert result.to_json()["phases"][0]["config"]["schedule"]["kind"] == "cosine"


@pytest.mark.parametrize("feature_cache", [True, False], ids=["cached", "full"])
def test_one_cycle_trains_with_two_rates(feature_cache: bool) -> None:
    phase = spec.fine_tune(
        unfreeze_from="block_2_",
        epochs=2,
        learning_rate=1e-2,
        backbone_learning_rate=1e-3,
        batch_size=16,
        schedule=spec.one_cycle(),
    )
    result, _ = train(tiny(phase), feature_cache=feature_cache)
    assert result.phases[0].training_path == ("activations@block_2_conv" if feature_cache else "full")
    assert len(result.phases[0].history["learning_rate"]) == 2


def test_label_smoothing_changes_the_loss_and_keeps_accuracy() -> None:
    plain, _ = train(tiny(head()))
    smoothed, _ = train(tiny(head(label_smoothing=0.1)))
    before, after = plain.phases[0], smoothed.phases[0]
    # A real effect: a smoothed target costs more once the predictions are confident.
    assert after.history["loss"][-1] > before.history["loss"][-1] + 0.02
    assert after.history["loss"] != before.history["loss"]
    # The accuracy metric still reads sparse labels: the tiny data is learnt either way.
    assert min(after.history["accuracy"][-1], after.history["val_accuracy"][-1], after.val_accuracy) >= 0.9
    assert after.config["label_smoothing"] == 0.1 and before.config["label_smoothing"] == 0.0


def test_smoothed_sparse_loss_is_keras_categorical_crossentropy_with_smoothing() -> None:
    labels = np.array([0, 2, 1, 2])
    predicted = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3], [0.5, 0.25, 0.25]], dtype="float32")
    smoothed = training_options.SmoothedSparseCrossentropy(0.1)
    reference = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)
    one_hot = np.eye(3, dtype="float32")[labels]
    assert float(smoothed(labels, predicted)) == pytest.approx(float(reference(one_hot, predicted)), rel=1e-6)
    assert float(smoothed(labels[:, None], predicted)) == pytest.approx(float(reference(one_hot, predicted)), rel=1e-6)
    again = keras.losses.deserialize(keras.losses.serialize(smoothed))
    assert again.label_smoothing == 0.1


def test_weight_decay_shrinks_the_weights() -> None:
    def head_norm(weights: dict[str, np.ndarray]) -> float:
        return float(np.linalg.norm(next(w for p, w in weights.items() if "predictions" in p and "kernel" in p)))

    _, plain = train(tiny(head(optimizer="sgd", learning_rate=1e-1)))
    decayed_result, decayed = train(tiny(head(optimizer="sgd", learning_rate=1e-1, weight_decay=0.5)))
    # 12 steps of decoupled decay multiply the kernel by (1 - 0.1 * 0.5) each: about 0.54.
    assert head_norm(decayed) < 0.8 * head_norm(plain)
    assert decayed_result.phases[0].config["weight_decay"] == 0.5


def test_checkpoint_best_restores_the_best_epoch() -> None:
    # Random labels at a high rate: validation loss wanders up and down, so the best epoch is an early one.
    phase = head(epochs=8, optimizer="sgd", learning_rate=1.0, callbacks=[spec.checkpoint_best(monitor="val_loss")])
    result, _ = train(tiny(phase, data=noise_data))
    ran = result.phases[0]
    losses = ran.history["val_loss"]
    assert ran.best_epoch == int(np.argmin(losses)) + 1
    assert ran.best_epoch < ran.epochs_run, losses  # a later epoch was worse
    # The phase ends with the best epoch's weights: its end-to-end validation loss is that epoch's.
    assert ran.val_loss == pytest.approx(losses[ran.best_epoch - 1], rel=1e-3)
    assert ran.val_loss < losses[-1]
    assert result.to_json()["phases"][0]["best_epoch"] == ran.best_epoch


def test_checkpoint_best_by_accuracy_maximises() -> None:
    phase = head(epochs=3, callbacks=[spec.early_stopping(), spec.checkpoint_best(monitor="val_accuracy")])
    result, _ = train(tiny(phase))
    ran = result.phases[0]
    accuracies = ran.history["val_accuracy"]
    assert ran.best_epoch == int(np.argmax(accuracies)) + 1  # the first of equal bests: strict improvement
    assert ran.val_accuracy == pytest.approx(accuracies[ran.best_epoch - 1])
    # early_stopping (by val_loss) has a best epoch of its own; the result records checkpoint_best's.


def test_best_epoch_callback_keeps_the_best_snapshot() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    callback = training_options.BestEpoch(spec.checkpoint_best())
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, (value, loss) in enumerate([(1.0, 0.9), (2.0, 0.5), (3.0, float("nan")), (4.0, 0.7)]):
        for variable in model.weights:
            variable.assign(np.full(variable.shape, value, dtype="float32"))
        callback.on_epoch_end(epoch, {"val_loss": loss})
    callback.on_train_end()
    assert callback.best_epoch == 1
    assert all(np.all(v.numpy() == 2.0) for v in model.weights)
