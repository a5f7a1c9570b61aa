"""The functional step core: gradients + optimizer update, train and eval steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxembed.nn._embedding import apply_constraints, regularization_loss
from jaxembed.train._row_sparse import _init_row_sparse_opt_state, _make_row_sparse_train_step
from jaxembed.train._state import LossFn, Metrics, TrainState, UpdateFn, _copy_tree, _loss_and_metrics


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
