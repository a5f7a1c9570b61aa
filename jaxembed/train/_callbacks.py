"""The callbacks of :func:`jaxembed.train.fit`: History, Callback, EarlyStopping, ModelCheckpoint."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from jaxembed.checkpoint import CheckpointManager
from jaxembed.train._state import TrainState, _copy_tree


@runtime_checkable
class TrainerLike(Protocol):
    """What the callbacks use of a trainer: its state, its stop flag and its ``save``.

    :class:`Trainer` is one; a callback types its ``trainer`` argument with this, so the
    callbacks do not depend on the trainer's module.

    Attributes:
        state: the current :class:`TrainState` (a callback may replace it).
        stop_training: set to ``True`` to end :func:`fit`.

    Examples:
        >>> import optax
        >>> model = jaxembed.Embedding(4, 2, rngs=0)
        >>> trainer = jaxembed.train.Trainer(model, optax.sgd(0.1), lambda m, ids: m(ids).sum())
        >>> isinstance(trainer, TrainerLike)
        True
    """

    state: TrainState
    stop_training: bool

    def save(self, path: str | os.PathLike) -> Path:
        """Saves the state to the checkpoint folder ``path``; returns it."""
        ...


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

    def on_train_begin(self, trainer: TrainerLike) -> None:
        """Called once before the first epoch."""

    def on_batch_end(self, step: int, logs: dict[str, float], trainer: TrainerLike) -> None:
        """Called every ``log_every`` steps of :func:`fit`, when the host reads the loss.

        ``step`` is the trainer's step count and ``logs`` the metrics of that step
        (``{"loss": ...}``); set ``trainer.stop_training = True`` to stop at once.
        """

    def on_epoch_end(self, epoch: int, logs: dict[str, float], trainer: TrainerLike) -> None:
        """Called after each epoch with its mean metrics (and validation metrics)."""

    def on_train_end(self, trainer: TrainerLike) -> None:
        """Called once after the last epoch."""


def _improvement_sign(mode: str, monitor: str) -> float:
    if mode == "auto":
        mode = "max" if any(word in monitor for word in ("acc", "auc", "precision", "recall")) else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"`mode` must be 'min', 'max' or 'auto'. Received: mode={mode!r}.")
    return -1.0 if mode == "min" else 1.0


def _improves(score: float, best: float, min_delta: float = 0.0) -> bool:
    """Whether ``score`` beats ``best`` by more than ``min_delta``; NaN and inf never do.

    ``score - min_delta > best`` is false for NaN, but an infinite score (a diverged
    ``-inf`` loss, or ``+inf`` accuracy) would pass it: only finite scores count.
    """
    return math.isfinite(score) and score - min_delta > best


def _non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"`{name}` must be a non-negative integer. "
            f"Received: {name}={value!r} (of type {type(value).__name__})."
        )
    return value


def _finite_number(name: str, value: object, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(
            f"`{name}` must be a finite number{' or None' if allow_none else ''}. "
            f"Received: {name}={value!r} (of type {type(value).__name__})."
        )
    return float(value)


def _monitored(logs: Mapping[str, float], monitor: str) -> float:
    if monitor not in logs:
        raise KeyError(f"Monitored metric {monitor!r} is not in the epoch logs; available: {sorted(logs)}.")
    return logs[monitor]


class EarlyStopping(Callback):
    """Stops :func:`fit` when ``monitor`` has not improved for ``patience`` epochs (Keras semantics).

    Args:
        monitor: a key of the epoch logs (``"val_loss"``, ``"loss"``, a metric).
        min_delta: smallest change that counts as an improvement. A NaN or infinite
            score never counts as one.
        patience: epochs without improvement before stopping (a non-negative int).
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
        self.min_delta = abs(_finite_number("min_delta", min_delta))
        self.patience = _non_negative_int("patience", patience)
        self.sign = _improvement_sign(mode, monitor)
        self.baseline = _finite_number("baseline", baseline, allow_none=True)
        self.restore_best_weights = restore_best_weights
        self.stopped_epoch = -1

    def on_train_begin(self, trainer: TrainerLike) -> None:
        self.wait = 0
        self.best = -math.inf if self.baseline is None else self.sign * self.baseline
        self.best_state = None
        self.best_epoch = -1
        self.stopped_epoch = -1

    def on_epoch_end(self, epoch: int, logs: dict[str, float], trainer: TrainerLike) -> None:
        score = self.sign * _monitored(logs, self.monitor)
        if _improves(score, self.best, self.min_delta):
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
    """Saves the trainer's checkpoint at the end of epochs (an orbax folder, see :meth:`Trainer.save`).

    Args:
        path: the checkpoint folder, or a :class:`jaxembed.checkpoint.CheckpointManager`.
            As in Keras, a path is formatted with ``str.format`` at the end of each epoch:
            ``{epoch}`` is the 1-based epoch number (Keras writes ``epoch + 1``) and every key
            of the epoch's logs is a placeholder too (``"ckpt-{epoch:02d}-{val_loss:.2f}"``).
            A manager saves each epoch as the step ``trainer.state.step``, with the epoch's
            logs as its metrics, and keeps its ``max_to_keep`` steps (the newest, or the best
            by its ``best_fn``).
        monitor: with ``save_best_only``, the log key to compare.
        save_best_only: save only when ``monitor`` improved (a NaN or infinite score
            never counts as an improvement, so a diverged epoch never replaces the best).
        mode: ``"min"``, ``"max"`` or ``"auto"``.

    Attributes:
        saved: the folders written, in order.

    Raises:
        KeyError: at the end of an epoch, when ``path`` names a placeholder that is neither
            ``epoch`` nor a key of the logs (the message lists the keys there are).

    Examples:
        >>> checkpoint = ModelCheckpoint("ckpt-{epoch:02d}-{val_loss:.2f}")
        >>> checkpoint.file_path(0, {"loss": 0.5, "val_loss": 0.4567})
        'ckpt-01-0.46'

        With a manager (keep the 3 newest epochs' steps):

        >>> import tempfile
        >>> from jaxembed.checkpoint import CheckpointManager
        >>> ModelCheckpoint(CheckpointManager(tempfile.mkdtemp(), max_to_keep=3)).manager.max_to_keep
        3
    """

    def __init__(
        self,
        path: str | os.PathLike | CheckpointManager,
        *,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
    ):
        self.manager = path if isinstance(path, CheckpointManager) else None
        self.path = None if self.manager is not None else str(path)
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.sign = _improvement_sign(mode, monitor)
        self.best = -math.inf
        self.saved: list[str] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float], trainer: TrainerLike) -> None:
        if self.save_best_only:
            score = self.sign * _monitored(logs, self.monitor)
            if not _improves(score, self.best):  # a NaN or inf epoch never replaces the best
                return
            self.best = score
        if self.manager is not None:
            step = int(trainer.state.step)
            target = self.manager.save(step, trainer.state, metrics=logs, overwrite=True)
            self.saved.append(str(target))
            return
        target = self.file_path(epoch, logs)
        trainer.save(target)
        self.saved.append(target)

    def file_path(self, epoch: int, logs: dict[str, float]) -> str:
        """The folder written at the end of 0-based ``epoch`` with these ``logs`` (Keras's rule).

        Args:
            epoch: the 0-based epoch that just ended (``fit`` passes it so); ``{epoch}`` is
                filled with ``epoch + 1``.
            logs: the epoch's metrics, each a placeholder by its name.

        Returns:
            ``path`` with its placeholders filled.

        Raises:
            KeyError: if ``path`` names a placeholder that is not there.
            TypeError: this callback saves into a manager (its folders are
                ``manager.step_path(step)``).

        Examples:
            >>> ModelCheckpoint("run/{epoch}").file_path(4, {})
            'run/5'
        """
        if self.path is None:
            raise TypeError(
                "This ModelCheckpoint saves into a CheckpointManager: its folders are named by the "
                "step (manager.step_path(step)), not by file_path."
            )
        try:
            return self.path.format(**{**logs, "epoch": epoch + 1})
        except KeyError as error:
            raise KeyError(
                f"`path` of ModelCheckpoint names a placeholder that is not filled: {error}. "
                f"Received: path={self.path!r}; the placeholders there are "
                f"{sorted(['epoch', *logs])}."
            ) from None


class TerminateOnNaN(Callback):
    """Stops :func:`fit` at the first loss that is NaN or infinite (Keras's ``TerminateOnNaN``).

    :func:`fit` reads the loss every ``log_every`` steps and at the end of each
    epoch; training stops at the first of those readings that is not finite (the
    steps in between have run, asynchronously). ``fit(..., terminate_on_nan=True)``
    adds this callback. The trainer's state is the one of the last step (it may hold
    NaN values); keep a :class:`ModelCheckpoint` to go back to a good one.

    Examples:
        >>> stopper = TerminateOnNaN()
        >>> stopper.stopped_step is None
        True
    """

    def __init__(self, monitor: str = "loss"):
        self.monitor = monitor
        self.stopped_step: int | None = None

    def on_train_begin(self, trainer: TrainerLike) -> None:
        self.stopped_step = None

    def _check(self, step: int, logs: Mapping[str, float], trainer: TrainerLike) -> None:
        value = logs.get(self.monitor)
        if value is not None and not math.isfinite(value) and self.stopped_step is None:
            self.stopped_step = step
            trainer.stop_training = True

    def on_batch_end(self, step: int, logs: dict[str, float], trainer: TrainerLike) -> None:
        self._check(step, logs, trainer)

    def on_epoch_end(self, epoch: int, logs: dict[str, float], trainer: TrainerLike) -> None:
        self._check(int(trainer.state.step), logs, trainer)
