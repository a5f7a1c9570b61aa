"""Ids -> one-hot, multi-hot or count vectors (private): the one encoder every preprocessing layer uses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import sparse as jsparse


def encode(
    ids: jax.Array,
    output_mode: str,
    depth: int,
    dtype: jnp.dtype,
    *,
    count_weights: jax.Array | None = None,
    sparse: bool = False,
) -> jax.Array | jsparse.BCOO:
    """Encodes integer ``ids`` in ``[0, depth)`` as Keras's ``encode_categorical_inputs`` does.

    Ids outside ``[0, depth)`` (the lookups' dropped mask positions) contribute nothing. A scalar
    is one sample. ``"one_hot"`` drops a trailing axis of size 1 and appends ``depth``;
    ``"multi_hot"`` and ``"count"`` reduce the last axis of rank-1 or rank-2 ids (Keras's rank-3
    behaviour reduces axis 1 instead, so rank 3 and more is refused rather than copied).
    """
    ids = jnp.asarray(ids)
    if ids.ndim == 0:
        ids = ids[None]
    if output_mode == "one_hot":
        if ids.ndim > 1 and ids.shape[-1] == 1:
            ids = ids[..., 0]
        dense = jax.nn.one_hot(ids, depth, dtype=dtype)
    else:
        if ids.ndim > 2:
            raise ValueError(
                f'`output_mode="{output_mode}"` encodes the last axis of rank-1 or rank-2 inputs. Received '
                f"inputs of shape {tuple(ids.shape)}; reshape them to (-1, {ids.shape[-1]}) first."
            )
        rows = ids if ids.ndim == 2 else ids[None]
        valid = (rows >= 0) & (rows < depth)
        safe = jnp.where(valid, rows, depth)  # index `depth` is out of range: dropped
        row_index = jnp.broadcast_to(jnp.arange(rows.shape[0])[:, None], rows.shape)
        if output_mode == "multi_hot":
            out = jnp.zeros((rows.shape[0], depth), dtype).at[row_index, safe].set(1, mode="drop")
        else:
            weights = jnp.ones(rows.shape, dtype) if count_weights is None else count_weights
            weights = jnp.asarray(weights).reshape(rows.shape)
            out = (
                jnp.zeros((rows.shape[0], depth), weights.dtype).at[row_index, safe].add(weights, mode="drop")
            )
        dense = out if ids.ndim == 2 else out[0]
    if not sparse:
        return dense
    nse = max(1, min(int(ids.size), int(dense.size)))  # at most one non-zero per id
    return jsparse.BCOO.fromdense(dense, nse=nse)
