"""The row-sparse train step: row-sparse table gradients and lazy updates inside a train step."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxembed import sparse
from jaxembed.nn._embedding import Embedding, embedding_layers, regularization_loss
from jaxembed.sparse import _recorder
from jaxembed.train._state import LossFn, Metrics, RowSparseOptState, TrainState, _loss_and_metrics


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
        for path, node in embedding_layers(model)
        if isinstance(node.embeddings, nnx.Param) and node.spec.quantization_mode is None
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
            with _recorder._record_lookups(owners, probes) as recorder:
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
                for path, node in embedding_layers(model):
                    if _table_key((*path, "embeddings")) not in keys:
                        node.apply_constraint()
                _, params, rest = nnx.split(model, nnx.Param, ...)
        opt_state = RowSparseOptState(dense_state, table_states)
        return TrainState(state.step + 1, params, rest, opt_state), {"loss": loss, **metrics}

    return train_step
