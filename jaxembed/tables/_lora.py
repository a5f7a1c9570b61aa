"""LoRA (low-rank adaptation) of an embedding table with Keras 3's semantics, as pure functions.

The base table ``W`` ``(input_dim, output_dim)`` is frozen; two small trainable
matrices ``A`` ``(input_dim, rank)`` and ``B`` ``(rank, output_dim)`` (float32,
``A`` drawn from ``he_uniform``, ``B`` zeros, so training starts from ``W``)
define the effective table

.. math::

    W_{\\text{eff}} = W + \\frac{\\alpha}{r} A B

with ``alpha = lora_alpha`` (default: the rank ``r``). A lookup never forms
``A B``: ``W_eff[ids] = W[ids] + (alpha / r) * A[ids] @ B``, ``O(ids.size * rank * output_dim)``.
Saving a LoRA layer writes the merged table (:func:`merged_table`), as Keras does.

Examples:
    >>> import numpy as np
    >>> base = jnp.array([[.1, .2], [.3, .4], [.5, .6]])
    >>> a = jnp.array([[.1, .1], [.2, .2], [.3, .3]])
    >>> b = jnp.array([[.5, .5], [.6, .6]])
    >>> np.asarray(merged_table(base, a, b, rank=2, alpha=3), float).round(3).tolist()  # base + 1.5 a@b
    [[0.265, 0.365], [0.63, 0.73], [0.995, 1.095]]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxembed import ops
from jaxembed._checks import positive_int
from jaxembed.keras import initializers

__all__ = ["scaling", "init_factors", "delta", "merged_table", "lookup_delta"]

_PRECISION = jax.lax.Precision.HIGHEST


def _check_rank(rank: Any) -> int:
    """Returns ``rank`` as an int if it is a positive integer, else raises ``ValueError``.

    Examples:
        >>> _check_rank(4)
        4
    """
    return positive_int("rank", rank)


def _check_alpha(alpha: Any, rank: int) -> float | int:
    """``alpha`` as given (a positive number), or ``rank`` when ``None`` (Keras's default).

    Examples:
        >>> _check_alpha(None, 8), _check_alpha(16, 8)
        (8, 16)
    """
    if alpha is None:
        return rank
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float, np.integer, np.floating))
        or not np.isfinite(alpha)
        or alpha <= 0
    ):
        raise ValueError(f"`lora_alpha` must be a positive finite number. Received: lora_alpha={alpha!r}.")
    return alpha.item() if isinstance(alpha, np.generic) else alpha


def scaling(rank: int, alpha: float) -> float:
    """The factor ``alpha / rank`` that multiplies ``A @ B``.

    Examples:
        >>> scaling(2, 3)
        1.5
    """
    return alpha / rank


def init_factors(
    key: jax.Array,
    input_dim: int,
    output_dim: int,
    rank: int,
    *,
    a_initializer: Any = "he_uniform",
    b_initializer: Any = "zeros",
) -> tuple[jax.Array, jax.Array]:
    """Fresh float32 ``A`` ``(input_dim, rank)`` and ``B`` ``(rank, output_dim)``.

    The initializers are Keras identifiers (names, config dicts, callables).

    Examples:
        >>> a, b = init_factors(jax.random.key(0), 10, 4, 2)
        >>> a.shape, b.shape, float(jnp.abs(b).max())
        ((10, 2), (2, 4), 0.0)
    """
    key_a, key_b = jax.random.split(key)
    a = initializers.get(a_initializer)(key_a, (input_dim, rank), jnp.float32)
    b = initializers.get(b_initializer)(key_b, (rank, output_dim), jnp.float32)
    return jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)


def delta(a: jax.Array, b: jax.Array, *, rank: int, alpha: float) -> jax.Array:
    """The full update ``(alpha / rank) * A @ B`` (``O(input_dim)``; for merging, not lookups).

    Examples:
        >>> delta(jnp.ones((3, 1)), jnp.full((1, 2), 2.0), rank=1, alpha=1).tolist()
        [[2.0, 2.0], [2.0, 2.0], [2.0, 2.0]]
    """
    return scaling(rank, alpha) * jnp.matmul(a, b, precision=_PRECISION)


def merged_table(table: jax.Array, a: jax.Array, b: jax.Array, *, rank: int, alpha: float) -> jax.Array:
    """``W + (alpha / rank) * A @ B`` in ``table``'s dtype: what Keras saves for a LoRA layer."""
    return (table + delta(a, b, rank=rank, alpha=alpha)).astype(table.dtype)


def lookup_delta(
    a: jax.Array,
    b: jax.Array,
    ids: jax.typing.ArrayLike,
    *,
    rank: int,
    alpha: float,
    invalid_ids: ops.InvalidIds = "nan",
) -> jax.Array:
    """``(alpha / rank) * A[ids] @ B``: the LoRA part of a lookup, ``(*ids.shape, output_dim)``.

    Examples:
        >>> a = jnp.array([[.1, .1], [.2, .2], [.3, .3]])
        >>> b = jnp.array([[.5, .5], [.6, .6]])
        >>> np.asarray(lookup_delta(a, b, jnp.array([2]), rank=2, alpha=3), float).round(4).tolist()
        [[0.495, 0.495]]
    """
    rows = ops.lookup(a, ids, invalid_ids=invalid_ids)
    return scaling(rank, alpha) * jnp.matmul(rows, b, precision=_PRECISION)
