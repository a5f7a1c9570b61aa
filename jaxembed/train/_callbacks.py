"""The callbacks of :func:`jaxembed.train.fit`: History, Callback, EarlyStopping, ModelCheckpoint."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from jaxembed.train._state import _copy_tree

if TYPE_CHECKING:
    from jaxembed.train._trainer import Trainer


@dataclasses.dataclass
class History:
    """What :func:`fit` returns (Keras's ``History``).

    Attributes:
        history: per-epoch means, e.g. ``{"loss": [...], "val_loss": [...]}``.
        step_losses: the training loss of every step, in order.
        epoch: the epoch numbers run (0-based).
    """

    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    step_losses: list[float] = dataclasses.field(default_factory=list)
    epoch: list[int] = dataclasses.field(default_factory=list)


class Callback:
    """Base class for :func:`fit` callbacks; override the hooks you need.

    Set ``trainer.stop_training = True`` to end training after this epoch.
    """

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float], trainer: Trainer) -> None:
        """Called after each epoch with its mean metrics (and validation metrics)."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Called once after the last epoch."""


def _improvement_sign(mode: str, monitor: str) -> float:
    if mode == "auto":
        mode = "max" if any(word in monitor for word in ("acc", "auc", "precision", "recall")) else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"`mode` must be 'min', 'max' or 'auto'. Received: mode={mode!r}.")
    return -1.0 if mode == "min" else 1.0


def _monitored(logs: Mapping[str, float], monitor: str) -> float:
    if monitor not in logs:
        raise KeyError(f"Monitored metric {monitor!r} is not in the epoch logs; available: {sorted(logs)}.")
    return logs[monitor]


class EarlyStopping(Callback):
    """Stops :func:`fit` when ``monitor`` has not improved for ``patience`` epochs (Keras semantics).

    Args:
        monitor: a key of the epoch logs (``"val_loss"``, ``"loss"``, a metric).
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names).
        baseline: a value the metric must beat.
        restore_best_weights: on stopping, put back the state of the best epoch.

    Examples:
        >>> stopper = EarlyStopping(monitor="loss", patience=1)
        >>> stopper.stopped_epoch
        -1
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
    ):
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.sign = _improvement_sign(mode, monitor)
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.stopped_epoch = -1

    def on_train_begin(self, trainer: Trainer) -> None:
        self.wait = 0
        self.best = -math.inf if self.baseline is None else self.sign * self.baseline
        self.best_state = None
        self.best_epoch = -1
        self.stopped_epoch = -1

    def on_epoch_end(self, epoch: int, logs: dict[str, float], trainer: Trainer) -> None:
        score = self.sign * _monitored(logs, self.monitor)
        if score - self.min_delta > self.best:
            self.best, self.best_epoch, self.wait = score, epoch, 0
            if self.restore_best_weights:
                self.best_state = _copy_tree(trainer.state)
            return
        self.wait += 1
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            trainer.stop_training = True
            if self.best_state is not None:
                trainer.state = self.best_state


class ModelCheckpoint(Callback):
    """Saves the trainer's checkpoint at the end of epochs (atomically, see :meth:`Trainer.save`).

    Args:
        path: the file; ``{epoch}`` in it is formatted with the 0-based epoch number.
        monitor: with ``save_best_only``, the log key to compare.
        save_best_only: save only when ``monitor`` improved.
        mode: ``"min"``, ``"max"`` or ``"auto"``.

    Examples:
        >>> ModelCheckpoint("ckpt-{epoch}.jxe").path
        'ckpt-{epoch}.jxe'
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
    ):
        self.path = str(path)
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.sign = _improvement_sign(mode, monitor)
        self.best = -math.inf
        self.saved: list[str] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float], trainer: Trainer) -> None:
        if self.save_best_only:
            score = self.sign * _monitored(logs, self.monitor)
            if score <= self.best:
                return
            self.best = score
        target = self.path.format(epoch=epoch)
        trainer.save(target)
        self.saved.append(target)
