"""Row-sparse gradients for embedding tables and lazy (row-sparse) optax updates.

:func:`coalesce` sums per-lookup gradient rows into a :class:`RowSparseGrad`;
:func:`value_and_row_sparse_grad` differentiates a loss with respect to the gathered rows, never
the table; :func:`lazy` wraps an element-wise optax transformation so an update touches only the
looked-up rows of the table and of its state. See :mod:`jaxembed.sparse._lazy` for the semantics.

Examples:
    >>> import optax
    >>> opt = lazy(optax.sgd(1.0))
    >>> table = jnp.zeros((3, 1))
    >>> grad = coalesce(jnp.array([2, 2]), jnp.ones((2, 1)), num_rows=3)
    >>> table, _ = opt.update(grad, opt.init(table), table)
    >>> table[:, 0].tolist()
    [0.0, 0.0, -2.0]
"""

from jaxembed.sparse._lazy import (
    ELEMENTWISE_OPTIMIZERS,
    PAD_ID,
    LazyTransformation,
    RowSparseGrad,
    check_elementwise,
    coalesce,
    lazy,
    value_and_row_sparse_grad,
)

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
