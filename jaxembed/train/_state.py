"""The train state and the types the steps share."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

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
