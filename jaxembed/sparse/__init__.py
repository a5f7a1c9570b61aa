"""Row-sparse gradients for embedding tables and lazy (row-sparse) optax updates.

Why: the gradient of ``table[ids]`` with respect to ``table`` is a dense
``(input_dim, output_dim)`` array -- zeros plus a scatter-add of the looked-up
rows' gradients -- and an optax transformation such as Adam then rewrites every
row of the table and of its moment buffers on every step. A step costs
``O(input_dim)`` although a batch touches a few thousand rows.

This module keeps everything ``O(batch)``:

* :func:`coalesce` turns per-lookup gradient rows into a :class:`RowSparseGrad`
  -- the unique ids (static size, padded with :data:`PAD_ID`) and the summed
  gradient row of each -- with one single-key sort (no ``jnp.unique``).
* :func:`value_and_row_sparse_grad` differentiates a loss with respect to the
  *gathered rows*, never the table, so no ``(input_dim, output_dim)`` temporary
  exists.
* :func:`apply_row_sparse` applies one optax transformation to a "gathered view" of a
  parameter pytree: the dense leaves with their gradients and, for each table, only the
  touched rows of the table and of its state leaves (``(V, D)`` moments, ``(V,)`` row-wise
  accumulators); the new rows are scattered back (``.at[ids].set(..., mode="drop")``), in
  place when the caller donates the buffers. :func:`check_row_sparse` accepts a
  transformation by running it densely and sparsely on a small problem; :func:`lazy` is the
  same update for a single table. The train step's rule is :func:`jaxembed.train.row_sparse`.

* Memory-lean optimizers for huge tables, plain optax transformations with state per *row*:
  :func:`rowwise_adagrad` (FBGEMM's ``EXACT_ROWWISE_ADAGRAD``, 4 bytes a row) and
  :func:`partial_rowwise_adam` (``4 * output_dim + 4`` bytes a row); :func:`stochastic_rounding`
  as the last link of a chain for bfloat16/float16 tables; :func:`state_bytes_per_row`.

Lazy semantics (TensorFlow Addons' ``LazyAdam``, PyTorch's ``SparseAdam``): the
step count is global (it advances once per update, touched or not), while the
moments of rows that are not looked up are *not* decayed and their values do not
move. For plain SGD this is exactly the dense update (a row with zero gradient does
not move anyway); for Adam it differs from dense Adam, which keeps moving rows
with zero gradient by their decaying first moment.

Everything here is a pure function on arrays and pytrees (no Flax): it composes
with ``jax.jit`` (donate the table and state), ``jax.grad`` and ``shard_map``.

Examples:
    >>> import optax
    >>> table = jnp.zeros((5, 2))
    >>> opt = lazy(optax.adam(0.1))
    >>> state = opt.init(table)
    >>> grad = coalesce(jnp.array([3, 1, 3]), jnp.ones((3, 2)), num_rows=5)
    >>> table, state = opt.update(grad, state, table)
    >>> [round(v, 3) for v in table[:, 0].tolist()]  # rows 1 and 3 moved, the others did not
    [0.0, -0.1, 0.0, -0.1, 0.0]
"""

from jaxembed.sparse._grad import PAD_ID, RowSparseGrad, coalesce, value_and_row_sparse_grad
from jaxembed.sparse._lazy import (
    ELEMENTWISE_OPTIMIZERS,
    LazyTransformation,
    apply_row_sparse,
    check_elementwise,
    check_row_sparse,
    lazy,
)
from jaxembed.sparse._rowwise import (
    ScaleByPartialRowwiseAdamState,
    ScaleByRowwiseAdagradState,
    StochasticRoundingState,
    partial_rowwise_adam,
    rowwise_adagrad,
    scale_by_partial_rowwise_adam,
    scale_by_rowwise_adagrad,
    state_bytes_per_row,
    stochastic_rounding,
    stochastically_round,
)

__all__ = [
    "PAD_ID",
    "ELEMENTWISE_OPTIMIZERS",
    "RowSparseGrad",
    "LazyTransformation",
    "coalesce",
    "value_and_row_sparse_grad",
    "apply_row_sparse",
    "check_row_sparse",
    "lazy",
    "check_elementwise",
    "rowwise_adagrad",
    "scale_by_rowwise_adagrad",
    "ScaleByRowwiseAdagradState",
    "partial_rowwise_adam",
    "scale_by_partial_rowwise_adam",
    "ScaleByPartialRowwiseAdamState",
    "stochastic_rounding",
    "stochastically_round",
    "StochasticRoundingState",
    "state_bytes_per_row",
]
