"""Row-sparse gradients: :class:`RowSparseGrad`, :func:`coalesce`, :func:`value_and_row_sparse_grad`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxembed import ops

__all__ = ["PAD_ID", "RowSparseGrad", "coalesce", "value_and_row_sparse_grad"]

PAD_ID: int = int(np.iinfo(np.int32).max)
"""The id that pads :attr:`RowSparseGrad.ids` to its static size (out of range of any table)."""


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
"""Rows per chunk of a row-sparse update when a gradient holds more (see :func:`jaxembed.sparse.lazy`)."""


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


def _is_per_row(leaf: Any, num_rows: int) -> bool:
    """Whether a state leaf holds one entry or row of entries per table row (leading dim ``num_rows``)."""
    return jnp.ndim(leaf) >= 1 and jnp.shape(leaf)[0] == num_rows


def _grad_dtype(table: jax.Array, rows: jax.Array) -> Any:
    """The dtype a table's gradient rows reach the optimizer in: float32 gradients of a bfloat16
    or float16 table stay float32 (rounding happens once, when the update is applied)."""
    return jnp.promote_types(table.dtype, rows.dtype)


def _set_rows(array: jax.Array, ids: jax.Array, rows: jax.Array) -> jax.Array:
    """``array.at[ids].set(rows, mode="drop")``. On CPU, bfloat16 is scattered as its bits: XLA:CPU
    otherwise converts the whole table to float32 and back around the scatter (~0.4 s at 10^6 x 64);
    the bits cost one bfloat16-sized copy instead. float16 scatters in place natively."""
    rows = rows.astype(array.dtype)
    if jnp.dtype(array.dtype) == jnp.dtype(jnp.bfloat16) and jax.default_backend() == "cpu":
        bits = (
            lax.bitcast_convert_type(array, jnp.uint16)
            .at[ids]
            .set(lax.bitcast_convert_type(rows, jnp.uint16), mode="drop")
        )
        return lax.bitcast_convert_type(bits, array.dtype)
    return array.at[ids].set(rows, mode="drop")
