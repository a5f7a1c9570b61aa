"""Row-sparse updates: one optax transformation applied to a "gathered view" of the parameters.

The view holds the dense parameters with their dense gradients and, for each table with a
:class:`~jaxembed.sparse.RowSparseGrad`, only the rows the gradient touches: the summed
gradient rows ``(K, D)``, the table's rows and the rows of every optimizer-state leaf that
belongs to the table (its leading dimension is the table's row count ``V``: ``(V, D)``
moments, a ``(V,)`` row-wise accumulator, ...). Global state leaves (the step count, a PRNG
key) are shared. ``tx.update`` runs once on the view and the new rows are scattered back
with ``mode="drop"`` (padding ids write nothing). See :mod:`jaxembed.sparse`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxembed.sparse._grad import (
    _CHUNK_ROWS,
    PAD_ID,
    RowSparseGrad,
    _grad_dtype,
    _inside,
    _set_rows,
    coalesce,
)

__all__ = [
    "ELEMENTWISE_OPTIMIZERS",
    "LazyTransformation",
    "apply_row_sparse",
    "check_row_sparse",
    "check_elementwise",
    "lazy",
]

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
    "row-wise rules (jaxembed's rowwise_adagrad, partial_rowwise_adam, stochastic_rounding)",
    "clip_by_global_norm and novograd (the untouched rows' gradient is zero and adds nothing to a norm)",
    "chains of these and of element-wise pieces (scale_by_adam, scale_by_rms, trace, "
    "add_decayed_weights, scale, scale_by_learning_rate, clip)",
)
"""The optax transformations a row-sparse update accepts: the update of a touched row depends on
that row of the gradient, parameters and state, on global scalars (the step count) and on
quantities that the untouched rows do not change (a global gradient norm). Rejected: lamb, lars,
fromage, adafactor, sm3, scale_by_trust_ratio and anything else that needs the whole
table. :func:`check_row_sparse` decides by running the transformation."""


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


def _suffix_owner(state_path: tuple, param_paths: Sequence[tuple], leaf: Any, params: Sequence[Any]) -> int:
    """The parameter a state leaf belongs to: the longest parameter path that ends its path, with the
    same leading dimension (optax states mirror the parameter tree: ``mu``, ``nu``, row-wise
    accumulators); ``-1`` for a global leaf (a step count, a PRNG key)."""
    best, best_len = -1, -1
    for i, path in enumerate(param_paths):
        n = len(path)
        if n > best_len and tuple(state_path[len(state_path) - n :]) == tuple(path):
            param_shape, leaf_shape = jnp.shape(params[i]), jnp.shape(leaf)
            if param_shape == () and leaf_shape == ():
                best, best_len = i, n
            elif param_shape and leaf_shape and leaf_shape[0] == param_shape[0]:
                best, best_len = i, n
    return best


def _empty_like(x: Any) -> Any:
    return x[:0] if jnp.ndim(x) else x


def apply_row_sparse(
    tx: optax.GradientTransformation,
    grads: Any,
    state: optax.OptState,
    params: Any,
    *,
    dense_fraction: float | None = 0.25,
    chunked: bool = True,
) -> tuple[Any, optax.OptState]:
    """One step of ``tx`` on a pytree whose tables have row-sparse gradients: ``(new_params, new_state)``.

    ``grads`` mirrors ``params``: a dense gradient at each ordinary leaf and a
    :class:`RowSparseGrad` at each table leaf (``(V, D)``; its ids may repeat, and ids
    outside ``[0, V)`` mean "no row"). ``state`` is ``tx.init(params)``. ``tx.update`` runs
    once on the gathered view (module docstring); untouched rows keep their values and state
    bit for bit (lazy semantics: TF's ``LazyAdam``, torch's ``SparseAdam``) while global leaves
    advance once per step. The result is new parameters, not updates: the update of a table
    would be ``(V, D)``, the very array a row-sparse step avoids -- so the rule chains *inside*
    (``optax.chain(clip_by_global_norm, adam)`` is one ``tx``), not with transformations after it.

    Donate the parameters and the state under ``jax.jit`` (parameters first, the order of the
    outputs) and the scatters write in place: a step is ``O(K * D)`` per table. A table whose
    gradient can hold at least ``dense_fraction`` of its rows is updated over the whole table and
    kept only in the touched rows (same numbers; streaming a small table beats sorting). With
    ``chunked`` (for transformations whose rows do not interact, :func:`check_row_sparse`), a
    gradient of more than 4,096 rows is applied 4,096 rows at a time: smaller temporaries, same
    numbers.

    Args:
        tx: the optax transformation (see :data:`ELEMENTWISE_OPTIMIZERS`).
        grads: the gradients, as described.
        state: ``tx.init(params)``.
        params: the parameters.
        dense_fraction: from which fraction of a table's rows the masked dense path is used;
            ``None`` always gathers.
        chunked: apply large gradients in chunks of 4,096 rows (only sound when the update of a row
            depends on that row alone and global scalars; not with ``clip_by_global_norm``).

    Returns:
        ``(new_params, new_state)``.

    Examples:
        >>> params = {"table": jnp.zeros((6, 2)), "bias": jnp.zeros(2)}
        >>> tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1.0))
        >>> grads = {"table": coalesce(jnp.array([4, 4]), jnp.ones((2, 2)), num_rows=6), "bias": jnp.zeros(2)}
        >>> new, _ = apply_row_sparse(tx, grads, tx.init(params), params, chunked=False)
        >>> [round(v, 4) for v in new["table"][:, 0].tolist()]  # row 4's gradient (2, 2), clipped to norm 1
        [0.0, 0.0, 0.0, 0.0, -0.7071, 0.0]
    """
    chunk_rows = _CHUNK_ROWS if chunked else None
    return _apply(tx, grads, state, params, dense_fraction=dense_fraction, chunk_rows=chunk_rows)


def _apply(
    tx: optax.GradientTransformation,
    grads: Any,
    state: optax.OptState,
    params: Any,
    *,
    dense_fraction: float | None,
    chunk_rows: int | None,
) -> tuple[Any, optax.OptState]:
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [path for path, _ in flat]
    leaves = [leaf for _, leaf in flat]
    grad_leaves = treedef.flatten_up_to(grads)
    state_flat, state_def = jax.tree_util.tree_flatten_with_path(state)
    state_leaves = [leaf for _, leaf in state_flat]
    owners = [_suffix_owner(path, paths, leaf, leaves) for path, leaf in state_flat]

    # Each table's rows: ("rows", index, read) gathered, ("masked", touched) whole table.
    plans: dict[int, tuple] = {}
    view_params, view_grads = list(leaves), list(grad_leaves)
    for i, (leaf, grad) in enumerate(zip(leaves, grad_leaves)):
        if not isinstance(grad, RowSparseGrad):
            continue
        num_rows = leaf.shape[0]
        dtype = _grad_dtype(leaf, grad.rows)
        if dense_fraction is not None and grad.ids.shape[0] >= dense_fraction * num_rows:
            index = _inside(grad.ids, num_rows)
            touched = jnp.zeros((num_rows,), bool).at[index].set(True, mode="drop")
            view_grads[i] = jnp.zeros(leaf.shape, dtype).at[index].add(grad.rows.astype(dtype), mode="drop")
            plans[i] = ("masked", touched)
        else:
            grad = coalesce(grad.ids, grad.rows, num_rows)
            index = _inside(grad.ids, num_rows)
            # Reading a padding slot from the last row is harmless: its write is dropped. (A plain
            # clipped gather is several times faster on CPU than a bounds-checked filling one.)
            read = jnp.minimum(index, num_rows - 1)
            view_params[i] = jnp.take(leaf, read, axis=0, mode="clip")
            view_grads[i] = grad.rows.astype(dtype)  # coalesce gave zero rows to the padding
            plans[i] = ("rows", index, read)
    chunk = {
        i
        for i, plan in plans.items()
        if chunk_rows is not None and plan[0] == "rows" and plan[1].shape[0] > chunk_rows
    }

    def state_view(select: Callable[[int, Any], Any]) -> optax.OptState:
        return state_def.unflatten([select(owner, leaf) for owner, leaf in zip(owners, state_leaves)])

    def rows_of(owner: int, leaf: Any) -> Any:
        if owner in plans and plans[owner][0] == "rows":
            return jnp.take(leaf, plans[owner][2], axis=0, mode="clip")
        return leaf

    def write_back(owner: int, old: Any, new: Any) -> Any:
        plan = plans.get(owner)
        if plan is None:
            return new
        if plan[0] == "masked":
            mask = plan[1].reshape(plan[1].shape + (1,) * (jnp.ndim(old) - 1))
            return jnp.where(mask, new.astype(old.dtype), old)
        return _set_rows(old, plan[1], new)

    with jax.named_scope("jaxembed_row_sparse_update"):
        # One update of everything except the chunked tables (given empty there).
        main_params = [_empty_like(p) if i in chunk else p for i, p in enumerate(view_params)]
        main_grads = [_empty_like(g) if i in chunk else g for i, g in enumerate(view_grads)]
        main_state = state_view(lambda o, leaf: _empty_like(leaf) if o in chunk else rows_of(o, leaf))
        updates, new_view_state = tx.update(
            treedef.unflatten(main_grads), main_state, treedef.unflatten(main_params)
        )
        new_view = treedef.flatten_up_to(optax.apply_updates(treedef.unflatten(main_params), updates))
        new_leaves = [
            p if i in chunk else write_back(i, p, n) for i, (p, n) in enumerate(zip(leaves, new_view))
        ]
        new_state_leaves = [
            old if o in chunk else write_back(o, old, new)
            for o, old, new in zip(owners, state_leaves, jax.tree.leaves(new_view_state))
        ]
        for c in sorted(chunk):
            new_leaves[c], new_state_leaves = _chunked_table(
                tx,
                treedef,
                state_def,
                c,
                plans[c][1],
                view_grads[c],
                leaves,
                state_leaves,
                new_state_leaves,
                owners,
                chunk_rows,
            )
    return treedef.unflatten(new_leaves), state_def.unflatten(new_state_leaves)


def _chunked_table(
    tx: optax.GradientTransformation,
    treedef: Any,
    state_def: Any,
    c: int,
    ids: jax.Array,
    grad_rows: jax.Array,
    leaves: list[Any],
    old_state: list[Any],
    new_state: list[Any],
    owners: list[int],
    chunk_rows: int,
) -> tuple[jax.Array, list[Any]]:
    """Table ``c``'s gathered update, ``chunk_rows`` rows at a time; every other leaf is empty in the view and
    the global state leaves keep their old values (the main update advanced them once)."""
    table, num_rows, size = leaves[c], leaves[c].shape[0], ids.shape[0]
    mine = [o == c for o in owners]

    def body(i: jax.Array, carry: tuple[jax.Array, list[jax.Array]]) -> tuple[jax.Array, list[jax.Array]]:
        table, rows_state = carry
        # The chunks' ids are disjoint; the last chunk ends at K and drops the ids that the one
        # before it already updated.
        start = jnp.minimum(i * chunk_rows, size - chunk_rows)
        fresh = start + jnp.arange(chunk_rows) >= i * chunk_rows
        chunk_ids = jnp.where(fresh, lax.dynamic_slice_in_dim(ids, start, chunk_rows), num_rows)
        read = jnp.minimum(chunk_ids, num_rows - 1)
        chunk_grad = lax.dynamic_slice_in_dim(grad_rows, start, chunk_rows)
        rows = jnp.take(table, read, axis=0, mode="clip")
        view_params = [rows if j == c else _empty_like(p) for j, p in enumerate(leaves)]
        view_grads = [chunk_grad if j == c else jnp.zeros_like(_empty_like(p)) for j, p in enumerate(leaves)]
        it = iter(rows_state)
        view_state = state_def.unflatten(
            [
                jnp.take(next(it), read, axis=0, mode="clip") if m else (old if o < 0 else _empty_like(old))
                for m, o, old in zip(mine, owners, old_state)
            ]
        )
        updates, new_view_state = tx.update(
            treedef.unflatten(view_grads), view_state, treedef.unflatten(view_params)
        )
        new_rows = optax.apply_updates(rows, treedef.flatten_up_to(updates)[c])
        table = _set_rows(table, chunk_ids, new_rows)
        new_rows_state = [n for m, n in zip(mine, jax.tree.leaves(new_view_state)) if m]
        rows_state = [_set_rows(old, chunk_ids, new) for old, new in zip(rows_state, new_rows_state)]
        return table, rows_state

    rows_state = [leaf for m, leaf in zip(mine, old_state) if m]
    chunks = -(-size // chunk_rows)
    table, rows_state = lax.fori_loop(0, chunks, body, (table, rows_state))
    it = iter(rows_state)
    return table, [next(it) if m else leaf for m, leaf in zip(mine, new_state)]


# ------------------------------------------------------------------ the acceptance check
def _run_check(tx: optax.GradientTransformation) -> tuple[str | None, bool]:
    """Runs ``tx`` densely and row-sparsely, two steps on a small problem: (reason rejected, chunkable)."""
    rng = np.random.default_rng(0)
    params = {
        "table": jnp.asarray(rng.normal(size=(8, 4)), jnp.float32),
        "dense": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
    }
    # Rows 1 and 3 are touched in both steps (compared); 4 and 2 once; 0, 5, 6, 7 never.
    steps = [
        (np.array([3, 1, 4, 3, PAD_ID]), rng.normal(size=(5, 4))),
        (np.array([1, 2, 3, -1, 1]), rng.normal(size=(5, 4))),
    ]
    runs = {"dense": (params, tx.init(params)), "sparse": (params, tx.init(params))}
    runs["chunks"] = runs["sparse"]
    for ids, rows in steps:
        grad = RowSparseGrad(jnp.asarray(ids, jnp.int32), jnp.asarray(rows, jnp.float32))
        dense_grad = jnp.asarray(rng.normal(size=(3,)), jnp.float32)
        full = {"table": grad.to_dense(8), "dense": dense_grad}
        dense_params, dense_state = runs["dense"]
        updates, dense_state = tx.update(full, dense_state, dense_params)
        runs["dense"] = optax.apply_updates(dense_params, updates), dense_state
        for run, chunk_rows in (("sparse", None), ("chunks", 2)):
            runs[run] = _apply(
                tx,
                {"table": grad, "dense": dense_grad},
                runs[run][1],
                runs[run][0],
                dense_fraction=None,
                chunk_rows=chunk_rows,
            )

    def close(a: Any, b: Any) -> bool:
        return bool(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6))

    dense, sparse, chunks = runs["dense"][0], runs["sparse"][0], runs["chunks"][0]
    compared, untouched = np.array([1, 3]), np.array([0, 5, 6, 7])
    same = close(dense["table"][compared], sparse["table"][compared]) and close(
        dense["dense"], sparse["dense"]
    )
    same &= np.array_equal(np.asarray(sparse["table"])[untouched], np.asarray(params["table"])[untouched])
    if not same:
        return "its row-sparse update of the touched rows differs from its dense update", False
    return None, close(chunks["table"], sparse["table"]) and close(chunks["dense"], sparse["dense"])


def check_row_sparse(tx: optax.GradientTransformation, *, name: str = "row_sparse()") -> bool:
    """Checks that ``tx`` can be applied row-sparsely; returns whether its rows can be chunked.

    Runs ``tx`` for two steps on a small problem (an ``(8, 4)`` table and a dense leaf),
    densely and through :func:`apply_row_sparse`, and compares the rows touched in both
    steps and the dense leaf (they must agree), and the untouched rows (they must not
    move). Element-wise and row-wise transformations pass, and so does
    ``clip_by_global_norm`` (zero rows add nothing to the norm); transformations that need
    the whole table (lamb's trust ratio, adafactor's factored statistics) fail. A second run
    that applies the rows one at a time tells whether large gradients may be applied in
    chunks (not with a global norm).

    Args:
        tx: an optax transformation.
        name: how the caller is called, for the error message.

    Returns:
        Whether the update of a row depends only on that row and global scalars (chunkable).

    Raises:
        TypeError: ``tx`` is not an ``optax.GradientTransformation``.
        ValueError: ``tx`` cannot be applied row-sparsely.

    Examples:
        >>> check_row_sparse(optax.adam(1e-3))
        True
        >>> check_row_sparse(optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)))
        False
        >>> check_row_sparse(optax.lamb(1e-3))
        Traceback (most recent call last):
        ...
        ValueError: row_sparse() needs an optax transformation that can update the touched rows alone...
    """
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(
            f"{name} wraps an optax.GradientTransformation (e.g. optax.adam(1e-3)). "
            f"Received: {type(tx).__name__}."
        )
    try:
        reason, separable = _run_check(tx)
    except Exception as error:  # a transformation that needs extra arguments, mixes shapes, ...
        reason, separable = f"running it on a small table failed ({type(error).__name__}: {error})", False
    if reason is not None:
        raise ValueError(
            f"{name} needs an optax transformation that can update the touched rows alone (an element-wise "
            "optax transformation or a row-wise one: the update of each row depends only on that row of the "
            "gradient, parameters and state, plus global scalars such as the step count or the global "
            f"gradient norm); {reason}. Accepted: {', '.join(ELEMENTWISE_OPTIMIZERS)}. Not accepted: lamb, "
            "lars, fromage, adafactor, sm3 and other transformations that need the whole table "
            "-- use the dense update for those."
        )
    return separable


def check_elementwise(tx: optax.GradientTransformation) -> None:
    """Deprecated: use :func:`check_row_sparse` (which also accepts row-wise rules and clipping).

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     check_elementwise(optax.adam(1e-3))
    """
    warnings.warn(
        "jaxembed.sparse.check_elementwise is deprecated; use jaxembed.sparse.check_row_sparse.",
        DeprecationWarning,
        stacklevel=2,
    )
    check_row_sparse(tx, name="lazy()")


def lazy(
    tx: optax.GradientTransformation, *, check: bool = True, dense_fraction: float | None = 0.25
) -> LazyTransformation:
    """Turns an optax transformation into a lazy, row-sparse one for a single table.

    ``init(table)`` is ``tx.init(table)``. ``update(grad, state, table)`` is
    :func:`apply_row_sparse` with the table as the whole parameter tree: it sums
    repeated ids (:func:`coalesce`), gathers the rows ``grad.ids`` of the table and of
    every state leaf with the table's leading dimension (``(V, D)`` moments, ``(V,)``
    row-wise accumulators), runs ``tx.update`` on those rows and scatters them back
    with ``.at[ids].set(..., mode="drop")``; global leaves take their new values, so the
    step count advances once per update. Under ``jax.jit(..., donate_argnums=...)`` the
    scatters write in place: a step is ``O(K * output_dim)``, independent of
    ``num_rows``. Gradients of more than 4,096 rows are applied 4,096 rows at a time
    when ``tx`` allows it (same numbers, smaller temporaries).

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
    the global ids. ``grad`` may hold repeated ids (they are summed).

    Small tables: when ``grad`` can hold at least ``dense_fraction`` of the
    table's rows, the update runs over the whole table and keeps the new values
    only in the touched rows (see :func:`apply_row_sparse`).

    Args:
        tx: an optax transformation that :func:`check_row_sparse` accepts.
        check: run :func:`check_row_sparse` when wrapping (with ``False``, large
            gradients are chunked: ``tx`` must not need a global norm).
        dense_fraction: the fraction of rows from which the masked dense path is
            used; ``None`` always gathers and scatters.

    Returns:
        A :class:`LazyTransformation`.

    Raises:
        ValueError: ``tx`` cannot be applied row-sparsely.

    Examples:
        >>> table = jnp.ones((1000, 4))
        >>> opt = lazy(optax.adam(1e-2))
        >>> state = opt.init(table)
        >>> grad = RowSparseGrad(jnp.array([7, 7, 42]), jnp.ones((3, 4)))  # 7 twice: summed
        >>> step = jax.jit(lambda t, s, g: opt.update(g, s, t), donate_argnums=(0, 1))
        >>> table, state = step(table, state, grad)
        >>> int(state[0].count), int((table != 1).any(axis=1).sum())
        (1, 2)
    """
    chunked = check_row_sparse(tx, name="lazy()") if check else True

    def update(
        grad: RowSparseGrad, state: optax.OptState, table: jax.Array
    ) -> tuple[jax.Array, optax.OptState]:
        small = dense_fraction is not None and grad.ids.shape[0] >= dense_fraction * table.shape[0]
        with jax.named_scope("jaxembed_lazy_update_small_table" if small else "jaxembed_lazy_update"):
            return apply_row_sparse(tx, grad, state, table, dense_fraction=dense_fraction, chunked=chunked)

    return LazyTransformation(tx.init, update)
