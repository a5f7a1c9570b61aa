"""Compositional embeddings: vocabularies larger than memory from small tables.

* :class:`QREmbedding` -- the quotient-remainder trick (Shi et al., 2020,
  "Compositional Embeddings Using Complementary Partitions for Memory-Efficient
  Recommendation Systems"): id ``i`` is looked up in a quotient table at
  ``i // num_buckets`` and a remainder table at ``i % num_buckets``, and the two
  vectors are combined by product, sum or concatenation. Every id has a distinct
  pair of rows, so no two ids share both; a vocabulary of ``V`` needs about
  ``V / m + m`` rows instead of ``V`` (``2 * sqrt(V)`` at ``m = sqrt(V)``).
* :class:`HashedEmbedding` -- the hashing trick: any integer id is hashed into
  ``num_bins`` rows (collisions share a row).

Both are made of :class:`jaxembed.Embedding` tables, so everything an Embedding
offers applies to each part (initializers, ``param_dtype``, sharding), and a
row-sparse train step (``Trainer(model, row_sparse(tx), loss_fn)``) finds the parts and
updates only the rows a batch looked up.

Examples:
    >>> layer = QREmbedding(10**9, 16, num_buckets=2**15, rngs=0)
    >>> layer.quotient.input_dim, layer.remainder.input_dim  # 63,283 rows stand for 10**9
    (30518, 32768)
    >>> layer(jnp.array([[7, 999_999_999]])).shape
    (1, 2, 16)
"""

from __future__ import annotations

import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxembed._checks import positive_int
from jaxembed.nn._embedding import Embedding, _key_from

__all__ = ["QREmbedding", "HashedEmbedding", "hash_ids"]

Combiner = Literal["mul", "add", "concat"]
_COMBINERS = ("mul", "add", "concat")


class QREmbedding(nnx.Module):
    """Quotient-remainder embedding: ``combine(Q[i // num_buckets], R[i % num_buckets])``.

    Args:
        input_dim: vocabulary size; ids must lie in ``[0, input_dim)``.
        output_dim: size of each output vector.
        num_buckets: rows of the remainder table (``m``); the quotient table has
            ``ceil(input_dim / m)``. Default ``ceil(sqrt(input_dim))``.
        combiner: ``"mul"`` (element-wise product, the paper's best), ``"add"``,
            or ``"concat"`` (the quotient part gives the first
            ``ceil(output_dim / 2)`` columns, the remainder part the rest).
        embeddings_initializer: Keras initializer of both tables (default
            ``"uniform"``; both tables drawn independently, as in the paper, so
            ids that share a quotient row start apart).
        mask_zero: id 0 is padding (:meth:`compute_mask` gives ``ids != 0``).
        param_dtype: storage dtype of both tables.
        dtype: compute dtype of the output.
        rngs: ``nnx.Rngs``, a seed or a key.
        **kwargs: further :class:`jaxembed.Embedding` arguments for both tables
            (``embeddings_regularizer``, ``lookup``, ``embeddings_sharding``, ...).

    Raises:
        ValueError: a size is not a positive integer or ``combiner`` is unknown.

    Shapes:
        ``ids``: any integer shape ``(...)`` → ``(..., output_dim)``.

    Examples:
        >>> qr = QREmbedding(100, 4, num_buckets=10, combiner="concat", rngs=0)
        >>> qr(jnp.array([0, 99])).shape, qr.quotient.embeddings.shape, qr.remainder.embeddings.shape
        ((2, 4), (10, 2), (10, 2))
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        *,
        num_buckets: int | None = None,
        combiner: Combiner = "mul",
        embeddings_initializer: Any = "uniform",
        mask_zero: bool = False,
        param_dtype: Any = None,
        dtype: Any = None,
        rngs: nnx.Rngs | int | jax.Array | None = None,
        **kwargs: Any,
    ):
        input_dim = positive_int("input_dim", input_dim)
        output_dim = positive_int("output_dim", output_dim)
        if num_buckets is None:
            num_buckets = math.isqrt(input_dim - 1) + 1
        num_buckets = positive_int("num_buckets", num_buckets)
        if combiner not in _COMBINERS:
            raise ValueError(f"`combiner` must be one of {_COMBINERS}. Received: combiner={combiner!r}.")
        if combiner == "concat" and output_dim < 2:
            raise ValueError(
                f'`output_dim` must be at least 2 with combiner="concat". Received: output_dim={output_dim}.'
            )
        self.input_dim, self.output_dim = input_dim, output_dim
        self.num_buckets, self.combiner, self.mask_zero = num_buckets, combiner, mask_zero
        key = _key_from(rngs)
        width_q = (output_dim + 1) // 2 if combiner == "concat" else output_dim
        width_r = output_dim - width_q if combiner == "concat" else output_dim
        common = dict(param_dtype=param_dtype, dtype=dtype, **kwargs)
        self.quotient = Embedding(
            -(-input_dim // num_buckets),
            width_q,
            embeddings_initializer=embeddings_initializer,
            name="quotient",
            rngs=jax.random.fold_in(key, 0),
            **common,
        )
        self.remainder = Embedding(
            num_buckets,
            width_r,
            embeddings_initializer=embeddings_initializer,
            name="remainder",
            rngs=jax.random.fold_in(key, 1),
            **common,
        )

    def __call__(self, ids: jax.typing.ArrayLike) -> jax.Array:
        """Looks up ``ids`` (any shape) → ``(*ids.shape, output_dim)``."""
        ids = jnp.asarray(ids)
        if not isinstance(ids, jax.core.Tracer) and ids.size:
            host = np.asarray(ids)
            if np.issubdtype(host.dtype, np.integer) and (host.min() < 0 or host.max() >= self.input_dim):
                bad = host[(host < 0) | (host >= self.input_dim)].ravel()[:5].tolist()
                raise ValueError(
                    f"ids must lie in [0, input_dim={self.input_dim}). Received out-of-range ids {bad}."
                )
        ids = ids.astype(jnp.int32)
        # Invalid traced ids (< 0 or >= input_dim) map to an out-of-range quotient: NaN rows, no gradient.
        quotient_ids = jnp.where((ids >= 0) & (ids < self.input_dim), ids // self.num_buckets, -1)
        q = self.quotient(quotient_ids)
        r = self.remainder(jnp.remainder(ids, self.num_buckets))
        if self.combiner == "mul":
            return q * r
        if self.combiner == "add":
            return q + r
        return jnp.concatenate([q, r], axis=-1)

    def compute_mask(self, ids: jax.typing.ArrayLike, mask: Any = None) -> jax.Array | None:
        """``ids != 0`` when ``mask_zero``, else ``None``."""
        return jnp.asarray(ids) != 0 if self.mask_zero else None


_GOLDEN = 0x9E3779B9


def hash_ids(ids: jax.typing.ArrayLike, num_bins: int, *, salt: int = 0) -> jax.Array:
    """Hashes integer ids (any values, any shape) into ``[0, num_bins)``: MurmurHash3's 32-bit finalizer.

    The ids' 32-bit patterns (64-bit ids fold their high half in first) are mixed
    with ``salt`` and avalanched, so neighbouring ids land in unrelated bins. This
    is not Keras's ``Hashing`` layer (which hashes the ids' decimal strings with
    FarmHash): put that layer in front and use an :class:`jaxembed.Embedding` of
    ``num_bins`` rows to reproduce Keras's bins.

    Args:
        ids: integer ids.
        num_bins: the number of bins.
        salt: mixed into the hash; different salts give independent hashes.

    Returns:
        ``int32`` bins of ``ids.shape``.

    Examples:
        >>> hash_ids(jnp.array([0, 1, 2, 10**9]), 8).tolist()
        [0, 7, 6, 4]
    """
    num_bins = positive_int("num_bins", num_bins)
    ids = jnp.asarray(ids)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise TypeError(f"hash_ids needs integer ids. Received dtype {ids.dtype}.")
    if jnp.dtype(ids.dtype).itemsize == 8:
        x = (ids ^ (ids >> 32)).astype(jnp.uint32)
    else:
        x = ids.astype(jnp.uint32)
    x = x ^ jnp.uint32((salt * _GOLDEN) & 0xFFFFFFFF)
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    x = x ^ (x >> 16)
    return (x % jnp.uint32(num_bins)).astype(jnp.int32)


class HashedEmbedding(nnx.Module):
    """The hashing trick: any integer id → one of ``num_bins`` rows (``hash_ids``).

    Args:
        num_bins: rows of the table. With ``mask_zero``, id 0 keeps row 0 (and
            is masked) and every other id hashes into rows ``1..num_bins - 1``.
        output_dim: size of each vector.
        salt: the hash's salt (see :func:`hash_ids`).
        mask_zero: id 0 is padding.
        rngs: ``nnx.Rngs``, a seed or a key.
        **kwargs: further :class:`jaxembed.Embedding` arguments for the table
            (``embeddings_initializer``, ``param_dtype``, ``dtype``, ...).

    Shapes:
        ``ids``: any integer shape ``(...)`` → ``(..., output_dim)``.

    Examples:
        >>> layer = HashedEmbedding(1000, 8, mask_zero=True, rngs=0)
        >>> layer(jnp.array([0, 123456789, 2**31 - 1])).shape, layer.compute_mask(jnp.array([0, 5])).tolist()
        ((3, 8), [False, True])
    """

    def __init__(
        self,
        num_bins: int,
        output_dim: int,
        *,
        salt: int = 0,
        mask_zero: bool = False,
        rngs: nnx.Rngs | int | jax.Array | None = None,
        **kwargs: Any,
    ):
        num_bins = positive_int("num_bins", num_bins)
        if mask_zero and num_bins < 2:
            raise ValueError(
                f"`num_bins` must be at least 2 with mask_zero=True. Received: num_bins={num_bins}."
            )
        if isinstance(salt, bool) or not isinstance(salt, int):
            raise ValueError(
                f"`salt` must be an integer. Received: salt={salt!r} (of type {type(salt).__name__})."
            )
        self.num_bins, self.salt, self.mask_zero = num_bins, salt, mask_zero
        self.table = Embedding(num_bins, output_dim, name="hashed", rngs=rngs, **kwargs)

    def bins(self, ids: jax.typing.ArrayLike) -> jax.Array:
        """The row of each id."""
        ids = jnp.asarray(ids)
        if not self.mask_zero:
            return hash_ids(ids, self.num_bins, salt=self.salt)
        return jnp.where(ids == 0, 0, 1 + hash_ids(ids, self.num_bins - 1, salt=self.salt))

    def __call__(self, ids: jax.typing.ArrayLike) -> jax.Array:
        """Looks up the bins of ``ids`` → ``(*ids.shape, output_dim)``."""
        return self.table(self.bins(ids))

    def compute_mask(self, ids: jax.typing.ArrayLike, mask: Any = None) -> jax.Array | None:
        """``ids != 0`` when ``mask_zero``, else ``None``."""
        return jnp.asarray(ids) != 0 if self.mask_zero else None
