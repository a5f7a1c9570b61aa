"""Trainer (a model, an optax transformation and a loss, compiled into steps) and Keras-style fit."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from jaxembed._checks import positive_int
from jaxembed.checkpoint import CheckpointManager, restore_checkpoint, save_checkpoint
from jaxembed.train._callbacks import Callback, History, TerminateOnNaN
from jaxembed.train._rules import UpdateRule, as_rule
from jaxembed.train._state import LossFn, Metrics, UpdateFn, _copy_tree
from jaxembed.train._step import init_train_state, make_eval_step, make_train_step


class Trainer:
    """A model, an update rule and a loss, compiled into train and eval steps.

    The trainer owns a copy of the model's state (:attr:`state`), so the jitted
    step can donate its buffers; the module you passed is refreshed from it by
    :meth:`sync_model` (and at the end of :func:`fit`).

    Args:
        model: a Flax NNX module (e.g. containing :class:`jaxembed.Embedding`).
        optimizer: the update rule: any optax ``GradientTransformation`` (``optax.adam(1e-3)``,
            chains, ...: dense gradients everywhere), :func:`dense` (the same) or
            :func:`row_sparse` (row-sparse gradients for the embedding tables, ``tx`` on the
            gathered view; ``O(batch)`` steps at any vocabulary size).
        loss_fn: ``loss_fn(model, batch)`` → scalar loss or ``(loss, metrics)``.
        eval_fn: loss for :meth:`eval_step` (default ``loss_fn``).
        regularization: add :func:`jaxembed.regularization_loss` to the loss.
        constraints: apply :func:`jaxembed.apply_constraints` after every update.
        update: for a dense rule, the gradients + optimizer update function (default
            :func:`dense_update`).
        row_sparse: deprecated; ``row_sparse=True`` means ``row_sparse(optimizer)``.

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

        Row-sparse: the same, with the rule as one value.

        >>> from jaxembed.train import row_sparse
        >>> trainer = Trainer(model, row_sparse(optax.adam(1e-2)), lambda m, ids: jnp.mean(m(ids) ** 2))
        >>> _ = trainer.train_step(jnp.array([0, 1]))
        >>> [bool(v) for v in (trainer.state.params["embeddings"][...] != model.embeddings[...]).any(axis=1)]
        [True, True, False, False]
    """

    def __init__(
        self,
        model: nnx.Module,
        optimizer: optax.GradientTransformation | UpdateRule,
        loss_fn: LossFn,
        *,
        eval_fn: LossFn | None = None,
        regularization: bool = True,
        constraints: bool = True,
        update: UpdateFn | None = None,
        row_sparse: bool | None = None,
    ):
        if not isinstance(model, nnx.Module):
            raise TypeError(f"`model` must be a flax.nnx.Module. Received: {type(model).__name__}.")
        rule = as_rule(optimizer, flag=row_sparse, where="Trainer")
        self.model = model
        self.optimizer = rule.tx
        self.rule = rule
        self.graphdef, self.state = init_train_state(model, rule)
        self.stop_training = False
        train = make_train_step(
            self.graphdef,
            rule,
            loss_fn,
            regularization=regularization,
            constraints=constraints,
            update=update,
        )
        evaluate = make_eval_step(self.graphdef, eval_fn or loss_fn, regularization=regularization)
        self._train_step = jax.jit(train, donate_argnums=0)
        self._eval_step = jax.jit(evaluate)

    def train_step(self, batch: Any) -> Metrics:
        """One optimizer step on ``batch``; returns the metrics as device arrays (no host sync).

        Integer arrays of ``batch`` still on the host (NumPy) are checked first: JAX
        (without ``jax_enable_x64``) cuts int64 to int32, so an id of 2**32 + 5 would reach
        the step as 5 and train another row. Such values raise ``ValueError`` here.
        """
        _check_host_integers(batch)
        self.state, metrics = self._train_step(self.state, batch)
        return metrics

    def eval_step(self, batch: Any) -> Metrics:
        """The eval metrics of the current state on ``batch`` (device arrays); see :meth:`train_step`."""
        _check_host_integers(batch)
        return self._eval_step(self.state, batch)

    def sync_model(self) -> nnx.Module:
        """Writes the trainer's current state (a copy) into the model you passed; returns it."""
        nnx.update(self.model, _copy_tree(self.state.params), _copy_tree(self.state.rest))
        return self.model

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Saves model + optimizer state + step as a checkpoint folder; returns the folder.

        The folder is an orbax checkpoint with an integrity manifest
        (:func:`jaxembed.checkpoint.save_checkpoint`): written beside ``path`` and swapped
        in, so a kill leaves the old checkpoint or the new one. Tables placed on a mesh are
        written shard by shard. The metadata holds ``{"step": ...}``
        (:func:`jaxembed.checkpoint.read_checkpoint_metadata`).

        Args:
            path: the checkpoint folder.
            overwrite: replace an existing checkpoint at ``path`` (``False`` refuses to).

        Returns:
            The checkpoint folder.

        Examples:
            >>> import tempfile, os
            >>> loss = lambda m, ids: m(ids).sum()
            >>> trainer = Trainer(jaxembed.Embedding(4, 2, rngs=0), optax.sgd(0.1), loss)
            >>> _ = trainer.train_step(jnp.array([1, 2]))
            >>> path = trainer.save(os.path.join(tempfile.mkdtemp(), "ckpt"))
            >>> fresh = Trainer(jaxembed.Embedding(4, 2, rngs=1), optax.sgd(0.1), loss)
            >>> fresh.restore(path)
            1
            >>> bool((fresh.model.embeddings[...] == trainer.state.params["embeddings"][...]).all())
            True
        """
        return save_checkpoint(path, self.state, metadata={"step": int(self.state.step)}, overwrite=overwrite)

    def restore(self, path: str | os.PathLike | CheckpointManager, *, step: int | None = None) -> int:
        """Loads model + optimizer state + step (checked against this model); returns the step.

        The arrays are read onto this trainer's placements, so a checkpoint saved with the
        table on one mesh restores onto another mesh shape or placement (or one device). The
        module you passed is updated too.

        Args:
            path: a checkpoint folder (:meth:`save`), an old single-file ``.jxe`` checkpoint
                (read with a ``DeprecationWarning``), or a
                :class:`jaxembed.checkpoint.CheckpointManager`.
            step: with a manager, the step to restore (default: its latest).

        Returns:
            The restored step count.

        Raises:
            FileNotFoundError: no checkpoint there.
            jaxembed.checkpoint.CheckpointError: damaged, or not this model's (names each leaf).
        """
        if isinstance(path, CheckpointManager):
            self.state = path.restore(self.state, step=step)
        elif step is not None:
            raise ValueError(
                f"`step` is for a CheckpointManager; a path names one checkpoint. Received: step={step!r}."
            )
        else:
            self.state = restore_checkpoint(path, like=self.state)
        self.sync_model()
        return int(self.state.step)

    def fit(self, data: Iterable[Any], **kwargs: Any) -> History:
        """``fit(self, data, **kwargs)``; see :func:`fit`."""
        return fit(self, data, **kwargs)


_INT32 = np.iinfo(np.int32)


def _check_host_integers(batch: Any) -> None:
    """Refuses host integers that ``jax.jit`` would silently wrap to int32 (ids >= 2**31)."""
    if jax.config.jax_enable_x64:
        return
    for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
        if (
            isinstance(leaf, (np.ndarray, np.generic))
            and leaf.dtype.kind in "iu"
            and leaf.dtype.itemsize >= 4
        ):
            if leaf.dtype in (np.int32, np.uint8, np.int8, np.int16, np.uint16) or leaf.size == 0:
                continue
            low, high = leaf.min(), leaf.max()
            if low < _INT32.min or high > _INT32.max:
                bad = high if high > _INT32.max else low
                where = jax.tree_util.keystr(path) or "the top"
                raise ValueError(
                    f"The batch's {leaf.dtype} array at {where} holds {int(bad)}, outside int32 "
                    f"[{_INT32.min}, {_INT32.max}]: JAX would cut it to int32 and the step would use "
                    "another value (another row, for ids). Use ids below 2**31 (input_dim <= 2**31 - 1)."
                )


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
    terminate_on_nan: bool = False,
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

    A loss that is NaN or infinite gives one ``RuntimeWarning`` per call (the
    model's values are then probably NaN too); ``terminate_on_nan=True`` (or a
    :class:`TerminateOnNaN` callback) stops training at the first such loss read.

    Args:
        trainer: the :class:`Trainer` to train.
        data: batches for ``trainer``'s ``loss_fn``.
        epochs: number of passes.
        steps_per_epoch: cap on batches per epoch (default: all of ``data``).
        validation_data: batches to evaluate after each epoch.
        callbacks: :class:`Callback` objects (e.g. :class:`EarlyStopping`).
        progress: show a tqdm progress bar with the live loss and metrics.
        log_every: steps between progress-bar updates and ``on_batch_end`` calls
            (each one syncs the host).
        terminate_on_nan: stop at the first non-finite loss (adds :class:`TerminateOnNaN`).

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
    if not isinstance(terminate_on_nan, bool):
        raise ValueError(
            f"`terminate_on_nan` must be a bool. Received: terminate_on_nan={terminate_on_nan!r}."
        )
    callbacks = list(callbacks)
    if terminate_on_nan and not any(isinstance(c, TerminateOnNaN) for c in callbacks):
        callbacks.append(TerminateOnNaN())
    # Read the loss every log_every steps only when something shows or uses it.
    per_batch = [c for c in callbacks if type(c).on_batch_end is not Callback.on_batch_end]
    history = History()
    warned = False
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
            if (progress or per_batch) and len(step_metrics) % log_every == 0:
                latest = {k: float(v) for k, v in jax.device_get(step_metrics[-1]).items()}
                if progress:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in latest.items()})
                warned = _warn_if_not_finite(latest["loss"], int(trainer.state.step), warned)
                for callback in per_batch:
                    callback.on_batch_end(int(trainer.state.step), latest, trainer)
                if trainer.stop_training:
                    break
        if not step_metrics:
            bar.close()
            raise ValueError(
                f"Epoch {epoch} got no batches from `data`. Pass a re-iterable (a list, a Batches), "
                "not a one-shot iterator or generator."
            )
        losses = [float(loss) for loss in jax.device_get([m["loss"] for m in step_metrics])]
        first_step = int(trainer.state.step) - len(losses) + 1
        for offset, loss in enumerate(losses):
            warned = _warn_if_not_finite(loss, first_step + offset, warned)
        history.step_losses.extend(losses)
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


def _warn_if_not_finite(loss: float, step: int, warned: bool) -> bool:
    """Warns (once per fit) about a non-finite loss; returns whether a warning has been given."""
    if warned or math.isfinite(loss):
        return warned
    warnings.warn(
        f"fit: the loss is {loss} at step {step}; the model's parameters are probably not finite "
        "any more. Lower the learning rate or clip gradients; pass terminate_on_nan=True (or a "
        "TerminateOnNaN callback) to stop at the first such loss.",
        RuntimeWarning,
        stacklevel=3,
    )
    return True


def _length_or_none(data: Iterable[Any]) -> int | None:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None
