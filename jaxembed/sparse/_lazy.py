"""Row-sparse gradients (coalesce) and the lazy optax transformation; see :mod:`jaxembed.sparse`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxembed import ops

__all__ = [
    "PAD_ID",
    "ELEMENTWISE_OPTIMIZERS",
    "RowSparseGrad",
    "LazyTransformation",
    "coalesce",
    "value_and_row_sparse_grad",
    "lazy",
    "check_elementwise",
]

PAD_ID: int = int(np.iinfo(np.int32).max)
"""The id that pads :attr:`RowSparseGrad.ids` to its static size (out of range of any table)."""

ELEMENTWISE_OPTIMIZERS: tuple[str, ...] = (
    "sgd (also with momentum= and nesterov=True)",
    "adam",
    "adamw",
    "adamax",
    "adamaxw",
    "nadam",
    "nadamw",
    "amsgrad",
    "adabelief",
    "yogi",
    "radam",
    "adagrad",
    "rmsprop",
    "lion",
    "sign_sgd",
    "chains of element-wise pieces (scale_by_adam, scale_by_rms, trace, add_decayed_weights, "
    "scale, scale_by_learning_rate, clip)",
)
"""The optax transformations :func:`lazy` accepts: each entry of their update depends only on the
same entry of the gradient, parameters and state (plus global scalars such as the step count).
Not element-wise, hence rejected: lamb, lars, fromage, novograd, adafactor, sm3,
clip_by_global_norm, scale_by_trust_ratio, and anything else that mixes entries."""


class RowSparseGrad(NamedTuple):
    """The gradient of a table as its touched rows: ``dense[ids[k]] += rows[k]``, zero elsewhere.

    Like an uncoalesced sparse COO tensor, ``ids`` may repeat (their rows add
    up); :func:`coalesce` returns the unique, sorted form with the unused tail
    padded with :data:`PAD_ID` (and zero rows). Any id outside
    ``[0, num_rows)`` means "no row".

    Attributes:
        ids: ``(K,)`` int32 row ids (unique and padded after :func:`coalesce`).
        rows: ``(K, output_dim)`` the gradient row of each id.

    Examples:
        >>> grad = RowSparseGrad(jnp.array([2, PAD_ID]), jnp.array([[1.0, 2.0], [0.0, 0.0]]))
        >>> grad.to_dense(3).tolist()
        [[0.0, 0.0], [0.0, 0.0], [1.0, 2.0]]
    """

    ids: jax.Array  # (K,) int32: unique ids, padded with PAD_ID
    rows: jax.Array  # (K, D): the summed gradient row of each id

    def to_dense(self, num_rows: int) -> jax.Array:
        """The dense ``(num_rows, output_dim)`` gradient (for tests and inspection; ``O(num_rows)``)."""
        dense = jnp.zeros((num_rows, self.rows.shape[-1]), self.rows.dtype)
        return dense.at[_inside(self.ids, num_rows)].add(self.rows, mode="drop")


_CHUNK_ROWS = 4096
"""Rows per chunk of the lazy update when a gradient holds more (see :func:`lazy`)."""


def _inside(ids: jax.Array, num_rows: int) -> jax.Array:
    """``ids`` with every id outside ``[0, num_rows)`` replaced by ``num_rows`` (dropped/filled by ``.at``).

    ``.at[]`` wraps negative indices like NumPy; mapping them out of range first
    makes "negative" mean "no row", as for ids past the end.
    """
    return jnp.where((ids >= 0) & (ids < num_rows), ids, num_rows)


def coalesce(
    ids: jax.typing.ArrayLike,
    rows: jax.typing.ArrayLike,
    num_rows: int,
    *,
    size: int | None = None,
) -> RowSparseGrad:
    """Sums the gradient rows of repeated ids: per-lookup gradients → a :class:`RowSparseGrad`.

    One single-key sort of the ids finds the unique ones (run starts and a
    cumulative sum number them), a binary search maps each lookup to its unique
    id and a scatter-add sums the rows. Ids outside ``[0, num_rows)``
    (padding, negative ids) are dropped.

    Args:
        ids: integer ids of any shape (``N`` of them).
        rows: ``(*ids.shape, output_dim)`` gradient of each looked-up row.
        num_rows: the table's number of rows.
        size: the static number of unique ids to hold (default ``N``, which is
            always enough); unique ids beyond ``size`` are dropped.

    Returns:
        ``RowSparseGrad(ids (size,), rows (size, output_dim))``, ids ascending.

    Examples:
        >>> grad = coalesce(jnp.array([[4, 1], [4, -1]]), jnp.ones((2, 2, 3)), num_rows=5)
        >>> grad.ids.tolist()[:2], grad.rows[:, 0].tolist()
        ([1, 4], [1.0, 2.0, 0.0, 0.0])
    """
    ids = jnp.ravel(jnp.asarray(ids)).astype(jnp.int32)
    rows = jnp.asarray(rows)
    n = ids.shape[0]
    rows = rows.reshape(n, rows.shape[-1]) if n else rows.reshape(0, rows.shape[-1])
    size = n if size is None else int(size)
    with jax.named_scope("jaxembed_coalesce"):
        keys = jnp.where((ids >= 0) & (ids < num_rows), ids, PAD_ID)
        sorted_keys = lax.sort(keys)  # one operand: several times faster than sorting (key, position)
        starts = jnp.concatenate([jnp.ones((min(n, 1),), bool), sorted_keys[1:] != sorted_keys[:-1]])
        run = jnp.cumsum(starts, dtype=jnp.int32) - 1  # the unique-id number of each sorted position
        # Keep XLA from fusing the sort into the binary search (which recomputes it).
        sorted_keys, run, keys = lax.optimization_barrier((sorted_keys, run, keys))
        unique = jnp.full((size,), PAD_ID, jnp.int32).at[run].set(sorted_keys, mode="drop")
        inverse = run[jnp.searchsorted(sorted_keys, keys, method="scan")]
        # Dropped ids add zero rows, so the padding's rows are zero. (Masking the input rather than
        # the sums also keeps XLA:CPU from a schedule that made the following scatters 3x slower.)
        rows = jnp.where((keys != PAD_ID)[:, None], rows, jnp.zeros((), rows.dtype))
        summed = jnp.zeros((size, rows.shape[-1]), rows.dtype).at[inverse].add(rows, mode="drop")
    return RowSparseGrad(unique, summed)


def value_and_row_sparse_grad(
    fun: Callable[..., Any],
    table: jax.Array,
    ids: jax.typing.ArrayLike,
    *args: Any,
    has_aux: bool = False,
    size: int | None = None,
) -> tuple[Any, RowSparseGrad]:
    """``fun(table[ids], *args)`` and its gradient for ``table`` as a :class:`RowSparseGrad`.

    The derivative is taken with respect to the gathered rows
    ``(*ids.shape, output_dim)``, then :func:`coalesce` sums repeated ids: no
    ``(num_rows, output_dim)`` array is ever built.

    Args:
        fun: ``fun(rows, *args)`` → scalar (or ``(scalar, aux)`` with ``has_aux``).
        table: ``(num_rows, output_dim)``.
        ids: ids of any shape; looked up with :func:`jaxembed.ops.lookup`
            (traced invalid ids give NaN rows and no gradient row).
        *args: further arguments of ``fun`` (not differentiated).
        has_aux: ``fun`` returns ``(value, aux)``.
        size: static number of unique ids to hold (see :func:`coalesce`).

    Returns:
        ``(value, grad)`` (``((value, aux), grad)`` with ``has_aux``).

    Examples:
        >>> table = jnp.arange(8.0).reshape(4, 2)
        >>> loss, grad = value_and_row_sparse_grad(lambda r: jnp.sum(r ** 2), table, jnp.array([1, 1]))
        >>> float(loss), grad.ids[:1].tolist(), grad.rows[0].tolist()
        (26.0, [1], [8.0, 12.0])
    """
    ids = jnp.asarray(ids)
    rows = ops.lookup(table, ids)
    value, row_grads = jax.value_and_grad(fun, has_aux=has_aux)(rows, *args)
    return value, coalesce(ids, row_grads, table.shape[0], size=size)


class LazyTransformation(NamedTuple):
    """A row-sparse optimizer for one table: ``init(table)`` and ``update(grad, state, table)``.

    ``update(grad: RowSparseGrad, state, table) -> (new_table, new_state)``. The
    signature is stable: ids of ``grad`` outside ``[0, table.shape[0])`` (the
    :data:`PAD_ID` padding, negative ids) are ignored for reads and writes, so the
    same function updates a local shard inside ``shard_map`` once the caller has
    shifted global ids to the shard's local coordinates. Repeated ids are summed.
    """

    init: Callable[[jax.Array], optax.OptState]
    update: Callable[[RowSparseGrad, optax.OptState, jax.Array], tuple[jax.Array, optax.OptState]]


def _probe_update(tx: optax.GradientTransformation, params, grads):
    updates, state = tx.update(grads, tx.init(params), params)
    return updates, state


def check_elementwise(tx: optax.GradientTransformation) -> None:
    """Raises ``ValueError`` unless ``tx`` updates each entry from that entry alone.

    Runs ``tx`` on a small ``(6, 4)`` table twice: once as is, once with one
    gradient entry made huge. An element-wise transformation changes only that
    entry of the update and of its state; anything that mixes entries (a global
    norm, a trust ratio, factored statistics) changes others, or keeps state of
    another shape, and is rejected with the list of accepted transformations.

    Examples:
        >>> import optax
        >>> check_elementwise(optax.adam(1e-3))
        >>> check_elementwise(optax.lamb(1e-3))
        Traceback (most recent call last):
        ...
        ValueError: lazy() needs an element-wise optax transformation...
    """
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(
            "lazy() wraps an optax.GradientTransformation (e.g. optax.adam(1e-3)). "
            f"Received: {type(tx).__name__}."
        )
    rng = np.random.default_rng(0)
    params = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    grads = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    reason = None
    try:
        state = tx.init(params)
        shapes = {jnp.shape(leaf) for leaf in jax.tree.leaves(state)}
        if not shapes <= {(), params.shape}:
            reason = f"its state has leaves of shapes {sorted(shapes - {(), params.shape})}, not per entry"
        else:
            base_updates, base_state = _probe_update(tx, params, grads)
            bumped = grads.at[2, 1].set(1e4)
            updates, new_state = _probe_update(tx, params, bumped)
            others = np.ones(params.shape, bool)
            others[2, 1] = False
            same = np.array_equal(np.asarray(base_updates)[others], np.asarray(updates)[others])
            for before, after in zip(jax.tree.leaves(base_state), jax.tree.leaves(new_state)):
                if jnp.shape(before) == params.shape:
                    same &= np.array_equal(np.asarray(before)[others], np.asarray(after)[others])
            if not same:
                reason = "changing one gradient entry changed the update or state of other entries"
    except Exception as error:  # a transformation that needs extra arguments, ...
        reason = f"running it on a small table failed ({type(error).__name__}: {error})"
    if reason is not None:
        raise ValueError(
            "lazy() needs an element-wise optax transformation, one whose update of each entry "
            "depends only on that entry of the gradient, parameters and state (plus global scalars "
            f"such as the step count); {reason}. Accepted: {', '.join(ELEMENTWISE_OPTIMIZERS)}. "
            "Not accepted: lamb, lars, fromage, novograd, adafactor, sm3, clip_by_global_norm and "
            "other transformations that mix entries -- use the dense update for those."
        )


def lazy(
    tx: optax.GradientTransformation, *, check: bool = True, dense_fraction: float | None = 0.25
) -> LazyTransformation:
    """Turns an element-wise optax transformation into a lazy, row-sparse one for a table.

    ``init(table)`` is ``tx.init(table)``: the state has the usual per-entry
    leaves (Adam's ``mu``, ``nu``: ``(num_rows, output_dim)``) and global scalars
    (the step count). ``update(grad, state, table)`` sums repeated ids
    (:func:`coalesce`), gathers the rows ``grad.ids`` of the table and of every
    per-entry state leaf, runs
    ``tx.update`` on those ``(K, output_dim)`` rows, and scatters the new rows
    back with ``.at[ids].set(..., mode="drop")``; global leaves take their new
    values, so the step count advances once per update. Under
    ``jax.jit(..., donate_argnums=...)`` the scatters write in place: a step is
    ``O(K * output_dim)``, independent of ``num_rows``. Gradients of more than
    4,096 rows are applied 4,096 rows at a time (same numbers, smaller
    temporaries).

    Donate the table *before* the state, the order of the outputs: JAX hands each
    donated buffer to the first output of the same shape, so
    ``jax.jit(opt.update, donate_argnums=(1, 2))`` would give the table's buffer
    to Adam's first moment and copy all three arrays on every step. Jit
    ``lambda table, state, grad: opt.update(grad, state, table)`` instead, as in
    the example (a train step that takes and returns one state pytree is fine).

    Semantics are those of TensorFlow Addons' ``LazyAdam`` and torch's ``SparseAdam``: rows not
    in ``grad`` keep their values and state bit for bit (their moments are not
    decayed). Lazy SGD equals dense SGD.

    Contract (stable): ids outside ``[0, table.shape[0])`` -- :data:`PAD_ID`
    padding, negative ids, ids of another shard -- are ignored for both reads
    and writes, so the update runs unchanged on one shard of a row-sharded table
    inside ``shard_map`` after the caller subtracts the shard's first row from
    the global ids. ``grad`` may hold repeated ids (they are summed), so
    callers need not coalesce first.

    Small tables: when ``grad`` can hold at least ``dense_fraction`` of the
    table's rows (``K >= dense_fraction * num_rows``, decided when tracing), the
    update runs over the whole table (with a table-sized gradient) and keeps the
    new values only in the touched rows -- the same lazy semantics, but streaming
    a small table through the cache beats sorting the ids and gathering and
    scattering most of its rows.

    Args:
        tx: an element-wise optax transformation (see :data:`ELEMENTWISE_OPTIMIZERS`).
        check: verify that ``tx`` is element-wise (:func:`check_elementwise`)
            when wrapping.
        dense_fraction: the fraction of rows from which the masked dense path is
            used; ``None`` always gathers and scatters.

    Returns:
        A :class:`LazyTransformation`.

    Raises:
        ValueError: ``tx`` is not element-wise.

    Examples:
        >>> import optax
        >>> table = jnp.ones((1000, 4))
        >>> opt = lazy(optax.adam(1e-2))
        >>> state = opt.init(table)
        >>> grad = RowSparseGrad(jnp.array([7, 7, 42]), jnp.ones((3, 4)))  # 7 twice: summed
        >>> step = jax.jit(lambda t, s, g: opt.update(g, s, t), donate_argnums=(0, 1))
        >>> table, state = step(table, state, grad)
        >>> int(state[0].count), int((table != 1).any(axis=1).sum())
        (1, 2)
    """
    if check:
        check_elementwise(tx)

    def init(table: jax.Array) -> optax.OptState:
        return tx.init(table)

    def update(
        grad: RowSparseGrad, state: optax.OptState, table: jax.Array
    ) -> tuple[jax.Array, optax.OptState]:
        if dense_fraction is not None and grad.ids.shape[0] >= dense_fraction * table.shape[0]:
            return _masked_dense_update(tx, grad, state, table)
        with jax.named_scope("jaxembed_lazy_update"):
            num_rows = table.shape[0]
            grad = coalesce(grad.ids, grad.rows, num_rows)
            ids = _inside(grad.ids, num_rows)

            def per_row(leaf: Any) -> bool:
                return jnp.shape(leaf) == table.shape

            # Reading a padding slot from the last row is harmless: its write is dropped. (A plain
            # clipped gather is several times faster on CPU than a bounds-checked filling one.)
            per_row_leaves, treedef = jax.tree.flatten(state)
            is_row = [per_row(leaf) for leaf in per_row_leaves]

            def with_rows(rows_of_leaves: list[Any]) -> optax.OptState:
                it = iter(rows_of_leaves)
                return treedef.unflatten([next(it) if r else leaf for r, leaf in zip(is_row, per_row_leaves)])

            def step_rows(
                table: jax.Array, leaves: list[jax.Array], chunk_ids: jax.Array, chunk_grad: jax.Array
            ) -> tuple[jax.Array, list[jax.Array]]:
                read = jnp.minimum(chunk_ids, num_rows - 1)
                rows = jnp.take(table, read, axis=0, mode="clip")
                row_state = with_rows([jnp.take(leaf, read, axis=0, mode="clip") for leaf in leaves])
                # coalesce gave zero rows to the padding and to ids outside the table.
                updates, new_row_state = tx.update(chunk_grad.astype(table.dtype), row_state, rows)
                table = table.at[chunk_ids].set(optax.apply_updates(rows, updates), mode="drop")
                new_leaves = [n for r, n in zip(is_row, jax.tree.leaves(new_row_state)) if r]
                leaves = [
                    old.at[chunk_ids].set(new.astype(old.dtype), mode="drop")
                    for old, new in zip(leaves, new_leaves)
                ]
                return table, leaves

            leaves = [leaf for r, leaf in zip(is_row, per_row_leaves) if r]
            size = ids.shape[0]
            if size > _CHUNK_ROWS:
                # Chunks keep the step's temporaries small (a few MiB, not several (K, D) arrays),
                # which on CPU spares fresh pages on every step. The chunks' ids are disjoint; the
                # last chunk ends at K and drops the ids that the one before it already updated.
                def body(i: jax.Array, carry: tuple[jax.Array, list[jax.Array]]):
                    start = jnp.minimum(i * _CHUNK_ROWS, size - _CHUNK_ROWS)
                    fresh = start + jnp.arange(_CHUNK_ROWS) >= i * _CHUNK_ROWS
                    chunk_ids = lax.dynamic_slice_in_dim(ids, start, _CHUNK_ROWS)
                    return step_rows(
                        *carry,
                        jnp.where(fresh, chunk_ids, num_rows),
                        lax.dynamic_slice_in_dim(grad.rows, start, _CHUNK_ROWS),
                    )

                chunks = -(-size // _CHUNK_ROWS)
                new_table, new_leaves = lax.fori_loop(0, chunks, body, (table, leaves))
            else:
                new_table, new_leaves = step_rows(table, leaves, ids, grad.rows)
            # The global leaves (the step count) advance once: tx.update on zero rows gives them.
            empty = jnp.zeros((0, table.shape[1]), table.dtype)
            _, global_state = tx.update(empty, with_rows([leaf[:0] for leaf in leaves]), empty)
            it = iter(new_leaves)
            new_state = treedef.unflatten(
                [next(it) if r else g for r, g in zip(is_row, jax.tree.leaves(global_state))]
            )
        return new_table, new_state

    return LazyTransformation(init, update)


def _masked_dense_update(
    tx: optax.GradientTransformation, grad: RowSparseGrad, state: optax.OptState, table: jax.Array
) -> tuple[jax.Array, optax.OptState]:
    """The lazy update computed over the whole table, kept only in the touched rows (small tables)."""
    with jax.named_scope("jaxembed_lazy_update_small_table"):
        num_rows = table.shape[0]
        ids = _inside(grad.ids, num_rows)
        touched = jnp.zeros((num_rows, 1), bool).at[ids].set(True, mode="drop")
        dense_grad = jnp.zeros_like(table).at[ids].add(grad.rows.astype(table.dtype), mode="drop")
        updates, new_state = tx.update(dense_grad, state, table)
        new_table = jnp.where(touched, optax.apply_updates(table, updates), table)
        new_state = jax.tree.map(
            lambda old, new: (
                jnp.where(touched, new.astype(old.dtype), old) if jnp.shape(old) == table.shape else new
            ),
            state,
            new_state,
        )
    return new_table, new_state
