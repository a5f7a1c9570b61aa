"""Trainer (a model, an optax transformation and a loss, compiled into steps) and Keras-style fit."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from jaxembed._checks import positive_int
from jaxembed.checkpoint import restore_checkpoint, save_checkpoint
from jaxembed.train._callbacks import Callback, History
from jaxembed.train._state import LossFn, Metrics, UpdateFn, _copy_tree
from jaxembed.train._step import dense_update, init_train_state, make_eval_step, make_train_step


class Trainer:
    """A model, an optax transformation and a loss, compiled into train and eval steps.

    The trainer owns a copy of the model's state (:attr:`state`), so the jitted
    step can donate its buffers; the module you passed is refreshed from it by
    :meth:`sync_model` (and at the end of :func:`fit`).

    Args:
        model: a Flax NNX module (e.g. containing :class:`jaxembed.Embedding`).
        optimizer: any optax ``GradientTransformation`` (``optax.adam(1e-3)``, chains, ...).
        loss_fn: ``loss_fn(model, batch)`` → scalar loss or ``(loss, metrics)``.
        eval_fn: loss for :meth:`eval_step` (default ``loss_fn``).
        regularization: add :func:`jaxembed.regularization_loss` to the loss.
        constraints: apply :func:`jaxembed.apply_constraints` after every update.
        update: the gradients + optimizer update function (default
            :func:`dense_update`).
        row_sparse: row-sparse gradients and lazy updates for the embedding
            tables (see :func:`make_train_step`); ``O(batch)`` steps at any vocabulary size.

    Attributes:
        state: the current :class:`TrainState`.
        stop_training: set by callbacks (e.g. :class:`EarlyStopping`) to end :func:`fit`.

    Examples:
        >>> model = jaxembed.Embedding(4, 2, rngs=0)
        >>> trainer = Trainer(model, optax.adam(1e-2), lambda m, ids: jnp.mean(m(ids) ** 2))
        >>> for _ in range(3):
        ...     metrics = trainer.train_step(jnp.array([0, 1]))
        >>> int(trainer.state.step), trainer.eval_step(jnp.array([0, 1]))["loss"].shape
        (3, ())
    """

    def __init__(
        self,
        model: nnx.Module,
        optimizer: optax.GradientTransformation,
        loss_fn: LossFn,
        *,
        eval_fn: LossFn | None = None,
        regularization: bool = True,
        constraints: bool = True,
        update: UpdateFn = dense_update,
        row_sparse: bool = False,
    ):
        if not isinstance(model, nnx.Module):
            raise TypeError(f"`model` must be a flax.nnx.Module. Received: {type(model).__name__}.")
        if not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(
                "`optimizer` must be an optax.GradientTransformation (e.g. optax.adam(1e-3)). "
                f"Received: {type(optimizer).__name__}."
            )
        self.model = model
        self.optimizer = optimizer
        self.graphdef, self.state = init_train_state(model, optimizer, row_sparse=row_sparse)
        self.stop_training = False
        train = make_train_step(
            self.graphdef,
            optimizer,
            loss_fn,
            regularization=regularization,
            constraints=constraints,
            update=update,
            row_sparse=row_sparse,
        )
        evaluate = make_eval_step(self.graphdef, eval_fn or loss_fn, regularization=regularization)
        self._train_step = jax.jit(train, donate_argnums=0)
        self._eval_step = jax.jit(evaluate)

    def train_step(self, batch: Any) -> Metrics:
        """One optimizer step on ``batch``; returns the metrics as device arrays (no host sync)."""
        self.state, metrics = self._train_step(self.state, batch)
        return metrics

    def eval_step(self, batch: Any) -> Metrics:
        """The eval metrics of the current state on ``batch`` (device arrays)."""
        return self._eval_step(self.state, batch)

    def sync_model(self) -> nnx.Module:
        """Writes the trainer's current state (a copy) into the model you passed; returns it."""
        nnx.update(self.model, _copy_tree(self.state.params), _copy_tree(self.state.rest))
        return self.model

    def save(self, path: str | os.PathLike) -> Path:
        """Saves model + optimizer state + step to ``path`` atomically (see :mod:`jaxembed.checkpoint`)."""
        return save_checkpoint(path, self.state, metadata={"step": int(self.state.step)})

    def restore(self, path: str | os.PathLike) -> int:
        """Loads model + optimizer state + step from ``path`` (checked against this model); returns the step.

        The module you passed is updated too.
        """
        self.state = restore_checkpoint(path, like=self.state)
        self.sync_model()
        return int(self.state.step)

    def fit(self, data: Iterable[Any], **kwargs: Any) -> History:
        """``fit(self, data, **kwargs)``; see :func:`fit`."""
        return fit(self, data, **kwargs)


def _epoch_means(metrics: Sequence[Metrics]) -> dict[str, float]:
    host = jax.device_get(list(metrics))
    return {name: float(np.mean([m[name] for m in host])) for name in host[0]}


def fit(
    trainer: Trainer,
    data: Iterable[Any],
    *,
    epochs: int = 1,
    steps_per_epoch: int | None = None,
    validation_data: Iterable[Any] | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    log_every: int = 10,
) -> History:
    """Trains ``trainer`` over ``epochs`` passes of ``data``; returns the :class:`History`.

    Each epoch iterates ``data`` afresh (a list of batches, a :class:`Batches`,
    any re-iterable), runs the jitted train step on each batch, then the eval
    step over ``validation_data``, and calls the callbacks with the epoch's mean
    metrics (validation ones prefixed ``val_``). One progress bar spans the run;
    it shows the latest step's metrics, then each epoch's means. Steps run
    asynchronously: the host reads the loss only every ``log_every`` steps (for
    the bar) and at the end of each epoch (for the history).
    At the end the trainer's state is written back into the model.

    Args:
        trainer: the :class:`Trainer` to train.
        data: batches for ``trainer``'s ``loss_fn``.
        epochs: number of passes.
        steps_per_epoch: cap on batches per epoch (default: all of ``data``).
        validation_data: batches to evaluate after each epoch.
        callbacks: :class:`Callback` objects (e.g. :class:`EarlyStopping`).
        progress: show a tqdm progress bar with the live loss and metrics.
        log_every: steps between progress-bar updates (each one syncs the host).

    Returns:
        The :class:`History` of per-epoch metrics and per-step losses.

    Examples:
        >>> model = jaxembed.Embedding(4, 2, rngs=0)
        >>> trainer = Trainer(model, optax.sgd(0.5), lambda m, ids: jnp.mean((m(ids) - 1.0) ** 2))
        >>> history = fit(trainer, [jnp.array([0, 1]), jnp.array([2, 3])], epochs=3, progress=False)
        >>> len(history.step_losses), history.history["loss"][-1] < history.history["loss"][0]
        (6, True)
    """
    if not isinstance(trainer, Trainer):
        raise TypeError(
            "`trainer` must be a jaxembed.train.Trainer, "
            "e.g. fit(Trainer(model, optax.adam(1e-3), loss_fn), data). "
            f"Received: {type(trainer).__name__}."
        )
    epochs = positive_int("epochs", epochs)
    log_every = positive_int("log_every", log_every)
    steps_per_epoch = positive_int("steps_per_epoch", steps_per_epoch, allow_none=True)
    history = History()
    trainer.stop_training = False
    for callback in callbacks:
        callback.on_train_begin(trainer)
    per_epoch = steps_per_epoch if steps_per_epoch is not None else _length_or_none(data)
    bar = tqdm(total=None if per_epoch is None else per_epoch * epochs, disable=not progress, unit="step")
    for epoch in range(epochs):
        bar.set_description(f"epoch {epoch + 1}/{epochs}")
        step_metrics: list[Metrics] = []
        for batch in data:
            if steps_per_epoch is not None and len(step_metrics) == steps_per_epoch:
                break
            step_metrics.append(trainer.train_step(batch))
            bar.update(1)
            if progress and len(step_metrics) % log_every == 0:
                bar.set_postfix({k: f"{float(v):.4g}" for k, v in step_metrics[-1].items()})
        if not step_metrics:
            bar.close()
            raise ValueError(
                f"Epoch {epoch} got no batches from `data`. Pass a re-iterable (a list, a Batches), "
                "not a one-shot iterator or generator."
            )
        history.step_losses.extend(float(loss) for loss in jax.device_get([m["loss"] for m in step_metrics]))
        logs = _epoch_means(step_metrics)
        if validation_data is not None:
            eval_metrics = [trainer.eval_step(batch) for batch in validation_data]
            if not eval_metrics:
                bar.close()
                raise ValueError("`validation_data` gave no batches.")
            logs.update({f"val_{k}": v for k, v in _epoch_means(eval_metrics).items()})
        history.epoch.append(epoch)
        for name, value in logs.items():
            history.history.setdefault(name, []).append(value)
        bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()})
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs, trainer)
        if trainer.stop_training:
            break
    bar.close()
    for callback in callbacks:
        callback.on_train_end(trainer)
    trainer.sync_model()
    return history


def _length_or_none(data: Iterable[Any]) -> int | None:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None
