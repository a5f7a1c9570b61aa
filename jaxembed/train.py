"""Training on optax and Flax NNX: a jitted train step, an eval step, ``fit`` and checkpoints.

The model is split once (``nnx.split``) into a static graph and a
:class:`TrainState` pytree; the steps are pure functions
``(state, batch) -> (new_state, metrics)`` compiled once with ``jax.jit``, the
train step donating the old state's buffers. Nothing per step copies, hashes
or syncs the model: the user's module is refreshed (:meth:`Trainer.sync_model`)
only when asked, and at the end of :func:`fit`.

Inside the train step the loss gets :func:`jaxembed.regularization_loss` added
(table penalties and the activity penalties of this forward pass), only
``nnx.Param`` variables are differentiated and updated (frozen tables are
:class:`jaxembed.FrozenParam`), and :func:`jaxembed.apply_constraints` runs after
each optimizer update, as Keras does.

The "gradients + optimizer update" part is one small function,
:func:`dense_update`; pass another one with the same signature as ``update=``
to change only that part. ``row_sparse=True`` (in :class:`Trainer`,
:func:`init_train_state`, :func:`make_train_step`) switches the model's
trainable embedding tables to row-sparse gradients and lazy updates
(:mod:`jaxembed.sparse`): a step then costs ``O(batch)``, not ``O(vocabulary)``.

Examples:
    >>> import optax
    >>> model = jaxembed.Embedding(4, 2, weights=jnp.array([[1., 1.], [1., 2.], [2., 2.], [3., 3.]]))
    >>> def loss_fn(model, batch):
    ...     return jnp.mean((model(batch["ids"]) - batch["target"]) ** 2)
    >>> trainer = Trainer(model, optax.sgd(0.5), loss_fn)
    >>> batch = {"ids": jnp.array([0, 1, 2, 1]), "target": jnp.zeros((4, 2))}
    >>> metrics = trainer.train_step(batch)
    >>> sorted(metrics), int(trainer.state.step)
    (['loss'], 1)
    >>> trainer.sync_model().embeddings[...][3].tolist()  # "mouse" was not looked up
    [3.0, 3.0]
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from jaxembed import sparse
from jaxembed.checkpoint import restore_checkpoint, save_checkpoint
from jaxembed.layers import Embedding, apply_constraints, regularization_loss

__all__ = [
    "TrainState",
    "RowSparseOptState",
    "row_sparse_tables",
    "LossFn",
    "UpdateFn",
    "dense_update",
    "init_train_state",
    "make_train_step",
    "make_eval_step",
    "Trainer",
    "Batches",
    "History",
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "fit",
]

Metrics = dict[str, jax.Array]
LossFn = Callable[[nnx.Module, Any], "jax.Array | tuple[jax.Array, Mapping[str, jax.Array]]"]
"""``loss_fn(model, batch)`` returns a scalar loss, or ``(loss, metrics)`` with a dict of scalars."""


class TrainState(NamedTuple):
    """Everything a train step reads and writes, as one pytree (checkpointed as a whole)."""

    step: jax.Array  # () int32: optimizer steps taken
    params: nnx.State  # the model's nnx.Param variables: what the optimizer updates
    rest: nnx.State  # every other variable: frozen tables, activity losses, rng counters, ...
    opt_state: optax.OptState  # the optax transformation's state for ``params``


UpdateFn = Callable[
    [optax.GradientTransformation, Callable[[nnx.State], tuple[jax.Array, Any]], nnx.State, optax.OptState],
    tuple[nnx.State, optax.OptState, jax.Array, Any],
]
"""``update(optimizer, loss_of, params, opt_state) -> (params, opt_state, loss, aux)``."""


def dense_update(
    optimizer: optax.GradientTransformation,
    loss_of: Callable[[nnx.State], tuple[jax.Array, Any]],
    params: nnx.State,
    opt_state: optax.OptState,
) -> tuple[nnx.State, optax.OptState, jax.Array, Any]:
    """Dense gradients of ``loss_of`` at ``params``, then one optax update.

    This is the swappable heart of the train step: ``loss_of(params)`` returns
    ``(loss, aux)``; the result is ``(new_params, new_opt_state, loss, aux)``.

    Examples:
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> loss_of = lambda p: (jnp.sum(p["w"] ** 2), None)
        >>> optimizer = optax.sgd(0.25)
        >>> new, _, loss, _ = dense_update(optimizer, loss_of, params, optimizer.init(params))
        >>> new["w"].tolist(), float(loss)
        ([0.5, -1.0], 5.0)
    """
    (loss, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, aux


def _loss_and_metrics(output: Any) -> tuple[jax.Array, Metrics]:
    if isinstance(output, tuple) and len(output) == 2:
        loss, metrics = output
        if not isinstance(metrics, Mapping):
            raise TypeError(
                "loss_fn must return a scalar loss or (loss, metrics) with metrics a dict of scalars. "
                f"Received a second element of type {type(metrics).__name__}."
            )
        metrics = dict(metrics)
    else:
        loss, metrics = output, {}
    if jnp.shape(loss) != ():
        raise ValueError(f"loss_fn must return a scalar loss. Received an array of shape {jnp.shape(loss)}.")
    if "loss" in metrics:
        raise ValueError("loss_fn's metrics may not be named 'loss' (that name is the training loss).")
    return loss, metrics


def _copy_tree(tree: Any) -> Any:
    return jax.tree.map(
        lambda x: jnp.array(x, copy=True) if isinstance(x, jax.Array) else copy.deepcopy(x), tree
    )


def init_train_state(
    model: nnx.Module, optimizer: optax.GradientTransformation, *, row_sparse: bool = False
) -> tuple[nnx.GraphDef, TrainState]:
    """Splits ``model`` once into its static graph and a fresh :class:`TrainState` (step 0).

    The state holds copies of the model's arrays, so a step that donates it
    never deletes arrays the module still uses. Use the graph with
    :func:`make_train_step` / :func:`make_eval_step` to write your own loop,
    and ``nnx.update(model, state.params, state.rest)`` to write results back.

    Examples:
        >>> model = jaxembed.Embedding(3, 2, trainable=False, rngs=0)
        >>> graphdef, state = init_train_state(model, optax.adam(1e-3))
        >>> int(state.step), len(jax.tree.leaves(state.params)), len(jax.tree.leaves(state.rest))
        (0, 0, 1)

    With ``row_sparse=True`` the optimizer state is a :class:`RowSparseOptState`
    (see :func:`make_train_step`).
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = _copy_tree(params), _copy_tree(rest)
    if row_sparse:
        opt_state = _init_row_sparse_opt_state(model, optimizer, params)
    else:
        opt_state = optimizer.init(params)
    return graphdef, TrainState(jnp.zeros((), jnp.int32), params, rest, opt_state)


def make_train_step(
    graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    loss_fn: LossFn,
    *,
    regularization: bool = True,
    constraints: bool = True,
    update: UpdateFn = dense_update,
    row_sparse: bool = False,
) -> Callable[[TrainState, Any], tuple[TrainState, Metrics]]:
    """The pure train step ``(state, batch) -> (new_state, metrics)`` (not yet jitted).

    Args:
        graphdef: from ``nnx.split(model, nnx.Param, ...)``.
        optimizer: any optax ``GradientTransformation``.
        loss_fn: ``loss_fn(model, batch)`` → loss or ``(loss, metrics)``.
        regularization: add :func:`jaxembed.regularization_loss` to the loss.
        constraints: run :func:`jaxembed.apply_constraints` after each update.
        update: gradients + optimizer update (default :func:`dense_update`).
        row_sparse: train the model's trainable embedding tables
            (:func:`row_sparse_tables`) with row-sparse gradients and
            :func:`jaxembed.sparse.lazy` updates of ``optimizer`` (which must be
            element-wise); every other parameter keeps the dense update. The
            tables' regularizers and constraints apply to the rows the batch
            looked up. The state must come from
            ``init_train_state(..., row_sparse=True)``; ``update`` is not used.

    Returns:
        A function to wrap in ``jax.jit(..., donate_argnums=0)``; its metrics
        hold ``"loss"`` (including penalties) and ``loss_fn``'s metrics.

    Examples:
        >>> model = jaxembed.Embedding(3, 2, weights=jnp.ones((3, 2)))
        >>> graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        >>> optimizer = optax.sgd(0.1)
        >>> state = TrainState(jnp.array(0), params, rest, optimizer.init(params))
        >>> step = jax.jit(make_train_step(graphdef, optimizer, lambda m, b: jnp.sum(m(b))))
        >>> state, metrics = step(state, jnp.array([0, 0]))
        >>> state.params["embeddings"][...].tolist()
        [[0.800000011920929, 0.800000011920929], [1.0, 1.0], [1.0, 1.0]]
    """

    if row_sparse:
        return _make_row_sparse_train_step(
            graphdef, optimizer, loss_fn, regularization=regularization, constraints=constraints
        )

    def train_step(state: TrainState, batch: Any) -> tuple[TrainState, Metrics]:
        def loss_of(params: nnx.State) -> tuple[jax.Array, tuple[Metrics, nnx.State]]:
            model = nnx.merge(graphdef, params, state.rest, copy=True)
            loss, metrics = _loss_and_metrics(loss_fn(model, batch))
            if regularization:
                loss = loss + regularization_loss(model)
            _, _, rest = nnx.split(model, nnx.Param, ...)
            return loss, (metrics, rest)

        with jax.named_scope("jaxembed_train_step"):
            params, opt_state, loss, (metrics, rest) = update(
                optimizer, loss_of, state.params, state.opt_state
            )
            if constraints:
                model = nnx.merge(graphdef, params, rest, copy=True)
                apply_constraints(model)
                _, params, rest = nnx.split(model, nnx.Param, ...)
        return TrainState(state.step + 1, params, rest, opt_state), {"loss": loss, **metrics}

    return train_step


def make_eval_step(
    graphdef: nnx.GraphDef, loss_fn: LossFn, *, regularization: bool = True
) -> Callable[[TrainState, Any], Metrics]:
    """The pure eval step ``(state, batch) -> metrics``: the model in eval mode, no update.

    The model is switched to ``model.eval()`` (dropout off, running batch
    statistics) inside the step; ``"loss"`` includes the regularization
    penalties when ``regularization`` is on, so it compares with the train loss.

    Examples:
        >>> model = jaxembed.Embedding(3, 2, weights=jnp.ones((3, 2)))
        >>> graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        >>> state = TrainState(jnp.array(0), params, rest, ())
        >>> step = jax.jit(make_eval_step(graphdef, lambda m, b: jnp.sum(m(b))))
        >>> float(step(state, jnp.array([0, 2]))["loss"])
        4.0
    """

    def eval_step(state: TrainState, batch: Any) -> Metrics:
        with jax.named_scope("jaxembed_eval_step"):
            model = nnx.merge(graphdef, state.params, state.rest, copy=True)
            model.eval()
            loss, metrics = _loss_and_metrics(loss_fn(model, batch))
            if regularization:
                loss = loss + regularization_loss(model)
        return {"loss": loss, **metrics}

    return eval_step


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


class Batches:
    """Re-iterable mini-batches of a pytree of arrays, reshuffled every epoch from a seed.

    Args:
        data: a pytree (dict, tuple, array) of arrays sharing the leading axis.
        batch_size: examples per batch.
        shuffle: draw a new permutation each epoch (NumPy ``Generator`` seeded by ``seed``).
        seed: the shuffling seed; the same seed gives the same batches, epoch by epoch.
        drop_remainder: drop the last short batch (keeps one compiled batch shape).

    Examples:
        >>> batches = Batches({"x": np.arange(5)}, batch_size=2, shuffle=False)
        >>> len(batches), [b["x"].tolist() for b in batches]
        (3, [[0, 1], [2, 3], [4]])
    """

    def __init__(
        self,
        data: Any,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_remainder: bool = False,
    ):
        leaves = jax.tree.leaves(data)
        if not leaves:
            raise ValueError("`data` has no arrays.")
        sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(
                f"Every array in `data` needs the same leading (example) axis. Received sizes {sizes}."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}.")
        self.data = jax.tree.map(np.asarray, data)
        self.size = sizes.pop()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_remainder = drop_remainder
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        whole = self.size // self.batch_size
        return whole if self.drop_remainder or self.size % self.batch_size == 0 else whole + 1

    def __iter__(self):
        order = self._rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            yield jax.tree.map(lambda leaf: leaf[index], self.data)


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
        path: the file. As in Keras, it is formatted with ``str.format`` at the end of each
            epoch: ``{epoch}`` is the 1-based epoch number (Keras writes ``epoch + 1``) and
            every key of the epoch's logs is a placeholder too (``"ckpt-{epoch:02d}-{val_loss:.2f}.jxe"``).
        monitor: with ``save_best_only``, the log key to compare.
        save_best_only: save only when ``monitor`` improved.
        mode: ``"min"``, ``"max"`` or ``"auto"``.

    Raises:
        KeyError: at the end of an epoch, when ``path`` names a placeholder that is neither
            ``epoch`` nor a key of the logs (the message lists the keys there are).

    Examples:
        >>> checkpoint = ModelCheckpoint("ckpt-{epoch:02d}-{val_loss:.2f}.jxe")
        >>> checkpoint.file_path(0, {"loss": 0.5, "val_loss": 0.4567})
        'ckpt-01-0.46.jxe'
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
        target = self.file_path(epoch, logs)
        trainer.save(target)
        self.saved.append(target)

    def file_path(self, epoch: int, logs: dict[str, float]) -> str:
        """The file written at the end of 0-based ``epoch`` with these ``logs`` (Keras's rule).

        Args:
            epoch: the 0-based epoch that just ended (``fit`` passes it so); ``{epoch}`` is
                filled with ``epoch + 1``.
            logs: the epoch's metrics, each a placeholder by its name.

        Returns:
            ``path`` with its placeholders filled.

        Raises:
            KeyError: if ``path`` names a placeholder that is not there.

        Examples:
            >>> ModelCheckpoint("run/{epoch}.jxe").file_path(4, {})
            'run/5.jxe'
        """
        try:
            return self.path.format(**{**logs, "epoch": epoch + 1})
        except KeyError as error:
            raise KeyError(
                f"`path` of ModelCheckpoint names a placeholder that is not filled: {error}. "
                f"Received: path={self.path!r}; the placeholders there are "
                f"{sorted(['epoch', *logs])}."
            ) from None


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
    for name, value in (("epochs", epochs), ("log_every", log_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}.")
    if steps_per_epoch is not None and (
        isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1
    ):
        raise ValueError(
            f"`steps_per_epoch` must be a positive integer or None. Received: {steps_per_epoch!r}."
        )
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


# ------------------------------------------------------------------------ row-sparse training


class RowSparseOptState(NamedTuple):
    """The optimizer state of a row-sparse train step (``init_train_state(..., row_sparse=True)``).

    Attributes:
        dense: ``optimizer.init`` of every parameter except the row-sparse tables.
        tables: for each row-sparse table, keyed by its path in the model (e.g.
            ``"embed/embeddings"``), its :func:`jaxembed.sparse.lazy` state
            (for Adam: a global step count and per-row moments).
    """

    dense: optax.OptState
    tables: dict[str, optax.OptState]


def _table_key(path: Sequence[Any]) -> str:
    return "/".join(map(str, path))


def row_sparse_tables(model: nnx.Module) -> dict[str, Embedding]:
    """The tables ``row_sparse=True`` trains row-sparsely, keyed by their path in ``model``.

    These are the trainable float tables of the :class:`jaxembed.Embedding`
    layers. Frozen tables are not trained at all; quantized tables are not
    trainable; a LoRA-enabled layer's table is frozen and its small LoRA
    factors keep the dense update.

    Examples:
        >>> class Tagger(nnx.Module):
        ...     def __init__(self):
        ...         self.words = jaxembed.Embedding(100, 4, rngs=0)
        ...         self.tags = jaxembed.Embedding(10, 4, trainable=False, rngs=0)
        >>> sorted(row_sparse_tables(Tagger()))
        ['words/embeddings']
    """
    return {
        _table_key((*path, "embeddings")): node
        for path, node in nnx.iter_graph(model)
        if isinstance(node, Embedding)
        and isinstance(node.embeddings, nnx.Param)
        and node.spec.quantization_mode is None
    }


def _check_row_wise_constraints(tables: Mapping[str, Embedding]) -> None:
    for key, layer in tables.items():
        axis = getattr(layer.spec.embeddings_constraint, "axis", None)
        if axis is not None and axis not in (1, -1):
            raise ValueError(
                f"row_sparse=True applies the table constraint to the rows a batch looked up, so it must "
                f"act row by row; the constraint of {key!r} normalizes along axis={axis!r} (each column "
                "over the whole vocabulary). Use axis=1 (e.g. max_norm with axis=1) or row_sparse=False."
            )


def _split_tables(params: nnx.State, keys: set[str]) -> tuple[nnx.State, nnx.State]:
    return nnx.split_state(params, lambda path, _: _table_key(path) in keys, ...)


def _init_row_sparse_opt_state(
    model: nnx.Module, optimizer: optax.GradientTransformation, params: nnx.State
) -> RowSparseOptState:
    tables = row_sparse_tables(model)
    _check_row_wise_constraints(tables)
    lazy_tx = sparse.lazy(optimizer)
    table_state, dense = _split_tables(params, set(tables))
    return RowSparseOptState(
        optimizer.init(dense),
        {_table_key(path): lazy_tx.init(variable[...]) for path, variable in nnx.to_flat_state(table_state)},
    )


def _touched_rows(table: jax.Array, ids: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    num_rows = table.shape[0]
    valid = (ids >= 0) & (ids < num_rows)
    index = jnp.where(valid, ids, num_rows)
    return index, valid, table.at[index].get(mode="fill", fill_value=0)


def _row_penalty(penalty_fn: Callable, table: jax.Array, grad: sparse.RowSparseGrad):
    """The table penalty of the touched rows and the gradient with its derivative added."""
    _, valid, rows = _touched_rows(table, grad.ids)
    penalty, row_grads = jax.value_and_grad(penalty_fn)(rows)
    row_grads = jnp.where(valid[:, None], row_grads, 0).astype(grad.rows.dtype)
    return penalty, grad._replace(rows=grad.rows + row_grads)


def _constrain_rows(constraint: Callable, table: jax.Array, ids: jax.Array) -> jax.Array:
    index, _, rows = _touched_rows(table, ids)
    return table.at[index].set(constraint(rows).astype(table.dtype), mode="drop")


def _make_row_sparse_train_step(
    graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    loss_fn: LossFn,
    *,
    regularization: bool,
    constraints: bool,
) -> Callable[[TrainState, Any], tuple[TrainState, Metrics]]:
    lazy_tx = sparse.lazy(optimizer)

    def train_step(state: TrainState, batch: Any) -> tuple[TrainState, Metrics]:
        if not isinstance(state.opt_state, RowSparseOptState):
            raise TypeError(
                "A row_sparse=True train step needs the state of init_train_state(model, optimizer, "
                f"row_sparse=True); its opt_state is a {type(state.opt_state).__name__}, "
                "not a RowSparseOptState."
            )
        keys = set(state.opt_state.tables)
        model = nnx.merge(graphdef, state.params, state.rest, copy=True)
        specs = {key: layer.spec for key, layer in row_sparse_tables(model).items() if key in keys}
        tables, dense = _split_tables(state.params, keys)
        flat_tables = list(nnx.to_flat_state(tables))
        arrays = {_table_key(path): variable[...] for path, variable in flat_tables}

        def forward(dense_params: nnx.State, probes: dict[str, list[jax.Array]] | None):
            # The tables are constants here: the loss is differentiated with respect to the
            # probes added to the rows each lookup gathered (jaxembed.sparse), never the tables.
            model = nnx.merge(graphdef, nnx.merge_state(dense_params, tables), state.rest, copy=True)
            owners = {id(layer): key for key, layer in row_sparse_tables(model).items() if key in keys}
            with sparse._record_lookups(owners, probes) as recorder:
                loss, metrics = _loss_and_metrics(loss_fn(model, batch))
                if regularization:
                    loss = loss + regularization_loss(model)  # without the tracked tables' penalties
            _, _, rest = nnx.split(model, nnx.Param, ...)
            return loss, (metrics, rest, recorder.ids)

        with jax.named_scope("jaxembed_row_sparse_train_step"):
            id_shapes = jax.eval_shape(lambda d: forward(d, None)[1][2], dense)
            probes = {
                key: [jnp.zeros((*i.shape, arrays[key].shape[1]), arrays[key].dtype) for i in id_shapes[key]]
                for key in keys
            }
            (loss, (metrics, rest, ids)), (dense_grads, probe_grads) = jax.value_and_grad(
                forward, argnums=(0, 1), has_aux=True
            )(dense, probes)

            new_arrays, table_states = {}, {}
            for key in sorted(keys):
                table, spec = arrays[key], specs[key]
                dim = table.shape[1]
                grad = sparse.RowSparseGrad(  # per lookup; the lazy update sums repeated ids
                    jnp.concatenate([jnp.ravel(i) for i in ids[key]] or [jnp.zeros((0,), jnp.int32)]),
                    jnp.concatenate([g.reshape(-1, dim) for g in probe_grads[key]] or [jnp.zeros((0, dim))]),
                )
                touched_rows_needed = (regularization and spec.embeddings_regularizer is not None) or (
                    constraints and spec.embeddings_constraint is not None
                )
                if touched_rows_needed:  # each touched row once
                    grad = sparse.coalesce(grad.ids, grad.rows, table.shape[0])
                if regularization and spec.embeddings_regularizer is not None:
                    penalty, grad = _row_penalty(spec.table_penalty, table, grad)
                    loss = loss + penalty
                table, table_states[key] = lazy_tx.update(grad, state.opt_state.tables[key], table)
                if constraints and spec.embeddings_constraint is not None:
                    table = _constrain_rows(spec.embeddings_constraint, table, grad.ids)
                new_arrays[key] = table

            updates, dense_state = optimizer.update(dense_grads, state.opt_state.dense, dense)
            dense = optax.apply_updates(dense, updates)
            new_tables = nnx.from_flat_state(
                [(path, variable.replace(new_arrays[_table_key(path)])) for path, variable in flat_tables]
            )
            params = nnx.merge_state(dense, new_tables)
            if constraints:  # the other tables' constraints, on the whole table as usual
                model = nnx.merge(graphdef, params, rest, copy=True)
                for path, node in nnx.iter_graph(model):
                    if isinstance(node, Embedding) and _table_key((*path, "embeddings")) not in keys:
                        node.apply_constraint()
                _, params, rest = nnx.split(model, nnx.Param, ...)
        opt_state = RowSparseOptState(dense_state, table_states)
        return TrainState(state.step + 1, params, rest, opt_state), {"loss": loss, **metrics}

    return train_step
