"""Callbacks of a phase: `early_stopping` and `reduce_lr_on_plateau`, with Keras's meaning, and `checkpoint_best`."""

from __future__ import annotations

from dataclasses import dataclass

from harness.spec.validators import _bool, _check, _is_number, _non_negative_int
from harness.spec.vocabulary import MONITORS


@dataclass(frozen=True)
class EarlyStopping:
    monitor: str = "val_loss"
    patience: int = 3
    restore_best_weights: bool = True


@dataclass(frozen=True)
class ReduceLROnPlateau:
    monitor: str = "val_loss"
    factor: float = 0.5
    patience: int = 2
    min_lr: float = 1e-7


@dataclass(frozen=True)
class CheckpointBest:
    monitor: str = "val_loss"
    mode: str = "auto"


Callback = EarlyStopping | ReduceLROnPlateau | CheckpointBest

# `checkpoint_best(mode=...)`: as Keras's callbacks, "auto" is "max" for accuracies, else "min".
CHECKPOINT_MODES = ("auto", "min", "max")


def early_stopping(*, monitor: str = "val_loss", patience: int = 3, restore_best_weights: bool = True) -> EarlyStopping:
    """`keras.callbacks.EarlyStopping` for a phase (with `min_delta=0`, as in Keras).

    The defaults differ from Keras's (`patience=0`, `restore_best_weights=False`), which stop at
    the first epoch without progress and keep the last weights: a phase of a few epochs
    would stop on noise, and the checks would see weights worse than the best epoch's.

    Args:
        monitor: "val_loss", "val_accuracy", "loss" or "accuracy". Defaults to "val_loss" (as Keras).
        patience: Epochs without improvement before stopping, >= 0. Defaults to 3 (Keras: 0).
        restore_best_weights: Restore the weights of the best epoch when stopping. Defaults to
            True (Keras: False).
    """
    _check(monitor in MONITORS, "early_stopping.monitor", f"must be one of {MONITORS}", monitor)
    return EarlyStopping(
        monitor,
        _non_negative_int(patience, "early_stopping.patience"),
        _bool(restore_best_weights, "early_stopping.restore_best_weights"),
    )


def reduce_lr_on_plateau(
    *, monitor: str = "val_loss", factor: float = 0.5, patience: int = 2, min_lr: float = 1e-7
) -> ReduceLROnPlateau:
    """`keras.callbacks.ReduceLROnPlateau` for a phase.

    The defaults differ from Keras's (`factor=0.1`, `patience=10`, `min_lr=0`): a phase here
    runs a few epochs, where 10 epochs of patience would never act.

    Args:
        monitor: "val_loss", "val_accuracy", "loss" or "accuracy". Defaults to "val_loss" (as Keras).
        factor: The learning rate is multiplied by this, in (0, 1). Defaults to 0.5 (Keras: 0.1).
        patience: Epochs without improvement before reducing, >= 0. Defaults to 2 (Keras: 10).
        min_lr: The lowest learning rate, in [0, 1) and below the phase's `learning_rate`.
            Defaults to 1e-7 (Keras: 0).
    """
    _check(monitor in MONITORS, "reduce_lr_on_plateau.monitor", f"must be one of {MONITORS}", monitor)
    _check(_is_number(factor) and 0 < factor < 1, "reduce_lr_on_plateau.factor", "must be in (0, 1)", factor)
    _check(
        _is_number(min_lr) and 0 <= min_lr < 1,
        "reduce_lr_on_plateau.min_lr",
        "must be a learning rate in [0, 1)",
        min_lr,
    )
    return ReduceLROnPlateau(
        monitor, float(factor), _non_negative_int(patience, "reduce_lr_on_plateau.patience"), float(min_lr)
    )


def checkpoint_best(*, monitor: str = "val_loss", mode: str = "auto") -> CheckpointBest:
    """The phase ends with the weights of its best epoch by `monitor` (kept in memory, no file).

    After every epoch that improves on the best value so far (strictly, as Keras's
    `min_delta=0`), the model's weights are copied; when training ends they are restored, so
    every check and the next phase see the best epoch's weights. The result records that epoch
    (`best_epoch`, 1-based). Unlike `early_stopping`, the phase runs all its epochs. It restores
    after any `early_stopping(restore_best_weights=True)` of the same phase, so it has the last word.

    Args:
        monitor: "val_loss", "val_accuracy", "loss" or "accuracy". Defaults to "val_loss".
        mode: "min", "max" or "auto" ("max" for accuracies, "min" for losses). Defaults to "auto".
    """
    _check(monitor in MONITORS, "checkpoint_best.monitor", f"must be one of {MONITORS}", monitor)
    _check(mode in CHECKPOINT_MODES, "checkpoint_best.mode", f"must be one of {CHECKPOINT_MODES}", mode)
    return CheckpointBest(monitor, mode)
