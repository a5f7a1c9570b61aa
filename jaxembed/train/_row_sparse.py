"""The row-sparse train step: row-sparse table gradients and lazy updates inside a train step."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxembed import sparse
from jaxembed.nn import _capture
from jaxembed.nn._embedding import Embedding, embedding_layers, regularization_loss
from jaxembed.train._rules import RowSparse
from jaxembed.train._state import LossFn, Metrics, RowSparseOptState, TrainState, _loss_and_metrics


def _table_key(path: Sequence[Any]) -> str:
    return "/".join(map(str, path))


def row_sparse_tables(model: nnx.Module) -> dict[str, Embedding]:
    """The tables a :func:`row_sparse` rule trains row-sparsely, keyed by their path in ``model``.

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
        _table_key((*path, name)): node
        for path, node in embedding_layers(model)
        if node.spec.table.row_sparse and node._row_sparse_table
        for name in node.spec.table.trainable_variables(node.part_variables(node.spec.table))
    }


def _check_row_wise_constraints(tables: Mapping[str, Embedding]) -> None:
    for key, layer in tables.items():
        axis = getattr(layer.spec.embeddings_constraint, "axis", None)
        if axis is not None and axis not in (1, -1):
            raise ValueError(
                "A row_sparse(tx) rule applies the table constraint to the rows a batch looked up, so it "
                f"must act row by row; the constraint of {key!r} normalizes along axis={axis!r} (each column "
                "over the whole vocabulary). Use axis=1 (e.g. max_norm with axis=1) or the dense rule."
            )


def _split_tables(params: nnx.State, keys: set[str]) -> tuple[nnx.State, nnx.State]:
    return nnx.split_state(params, lambda path, _: _table_key(path) in keys, ...)


def _init_row_sparse_opt_state(model: nnx.Module, rule: RowSparse, params: nnx.State) -> RowSparseOptState:
    _check_row_wise_constraints(row_sparse_tables(model))
    return RowSparseOptState(rule.tx.init(params))


def _leaf_key(path: Sequence[Any]) -> str:
    """The table key of a leaf of ``nnx.State`` params (``("embed", "embeddings", .value)`` paths)."""
    return _table_key([entry.key for entry in path if isinstance(entry, jax.tree_util.DictKey)])


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
    rule: RowSparse,
    loss_fn: LossFn,
    *,
    regularization: bool,
    constraints: bool,
) -> Callable[[TrainState, Any], tuple[TrainState, Metrics]]:
    tx = rule.tx

    def train_step(state: TrainState, batch: Any) -> tuple[TrainState, Metrics]:
        if not isinstance(state.opt_state, RowSparseOptState):
            raise TypeError(
                "A row_sparse(tx) train step needs the state of init_train_state(model, row_sparse(tx)); "
                f"its opt_state is a {type(state.opt_state).__name__}, not a RowSparseOptState."
            )
        model = nnx.merge(graphdef, state.params, state.rest, copy=True)
        specs = {key: layer.spec for key, layer in row_sparse_tables(model).items()}
        keys = set(specs)
        tables, dense = _split_tables(state.params, keys)
        flat_leaves, treedef = jax.tree_util.tree_flatten_with_path(state.params)
        arrays = {_leaf_key(path): leaf for path, leaf in flat_leaves if _leaf_key(path) in keys}

        def forward(dense_params: nnx.State, probes: dict[str, list[jax.Array]] | None):
            # The tables are constants here: the loss is differentiated with respect to the
            # probes that each tapped lookup adds to the rows it gathered (jaxembed.nn._capture).
            model = nnx.merge(graphdef, nnx.merge_state(dense_params, tables), state.rest, copy=True)
            layers = {key: layer for key, layer in row_sparse_tables(model).items() if key in keys}
            with _capture.tapping(layers, probes) as taps:
                loss, metrics = _loss_and_metrics(loss_fn(model, batch))
                if regularization:
                    loss = loss + regularization_loss(model)  # without the tapped tables' penalties
            _, _, rest = nnx.split(model, nnx.Param, ...)
            return loss, (metrics, rest, {key: tap.ids for key, tap in taps.items()})

        with jax.named_scope("jaxembed_row_sparse_train_step"):
            # The probes are inputs of the differentiated function, so their shapes -- the shapes of
            # the rows each lookup gathers -- must be known before it is traced: a first, abstract
            # trace of the loss (jax.eval_shape, compile time only, no FLOPs at run time) finds them.
            id_shapes = jax.eval_shape(lambda d: forward(d, None)[1][2], dense)
            probes = {
                key: [jnp.zeros((*i.shape, arrays[key].shape[1]), arrays[key].dtype) for i in id_shapes[key]]
                for key in keys
            }
            (loss, (metrics, rest, ids)), (dense_grads, probe_grads) = jax.value_and_grad(
                forward, argnums=(0, 1), has_aux=True
            )(dense, probes)

            table_grads = {}
            for key in sorted(keys):
                table, spec = arrays[key], specs[key]
                dim = table.shape[1]
                grad = sparse.RowSparseGrad(  # per lookup; the update sums repeated ids
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
                table_grads[key] = grad

            dense_by_key = {
                _leaf_key(path): g for path, g in jax.tree_util.tree_flatten_with_path(dense_grads)[0]
            }
            grads = treedef.unflatten(
                [
                    table_grads.get(_leaf_key(path), dense_by_key.get(_leaf_key(path)))
                    for path, _ in flat_leaves
                ]
            )
            params, inner = sparse.apply_row_sparse(
                tx,
                grads,
                state.opt_state.inner,
                state.params,
                dense_fraction=rule.dense_fraction,
                chunked=rule.chunked,
            )
            if constraints:
                model = nnx.merge(graphdef, params, rest, copy=True)
                for path, node in embedding_layers(model):
                    tapped = [name for name in node.spec.table.names if _table_key((*path, name)) in keys]
                    if not tapped:  # the other tables' constraints, on the whole table as usual
                        node.apply_constraint()
                    for name in tapped:  # the touched rows only
                        key = _table_key((*path, name))
                        if specs[key].embeddings_constraint is not None:
                            variable = node.part_variables(node.spec.table)[name]
                            variable[...] = _constrain_rows(
                                specs[key].embeddings_constraint, variable[...], table_grads[key].ids
                            )
                _, params, rest = nnx.split(model, nnx.Param, ...)
        return TrainState(state.step + 1, params, rest, RowSparseOptState(inner)), {"loss": loss, **metrics}

    return train_step
