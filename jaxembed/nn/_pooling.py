"""Keras's sequence-to-vector layers used after an Embedding, as Flax NNX modules.

``GlobalAveragePooling1D`` honours the Embedding's padding mask
(:func:`jaxembed.ops.masked_mean`); ``Flatten`` is the seed tutorial's
``Embedding(1000, 64, input_length=50)`` → ``(batch, 3200)`` step.

Examples:
    >>> embed = jaxembed.Embedding(10, 4, mask_zero=True, rngs=0)
    >>> ids = jnp.array([[3, 5, 0, 0]])
    >>> pooled = GlobalAveragePooling1D()(embed(ids), mask=embed.compute_mask(ids))
    >>> pooled.shape
    (1, 4)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxembed import ops

__all__ = ["GlobalAveragePooling1D", "Flatten"]


class GlobalAveragePooling1D(nnx.Module):
    """Mean over the steps axis of ``(batch, steps, features)``, ignoring masked steps.

    Args:
        keepdims: keep the pooled axis with length 1, as Keras's ``keepdims``.

    Examples:
        >>> x = jnp.array([[[1.0], [3.0], [100.0]]])
        >>> GlobalAveragePooling1D()(x, mask=jnp.array([[True, True, False]])).tolist()
        [[2.0]]
    """

    def __init__(self, *, keepdims: bool = False):
        self.keepdims = keepdims

    def __call__(self, x: jax.Array, mask: jax.typing.ArrayLike | None = None) -> jax.Array:
        if x.ndim != 3:
            raise ValueError(
                f"GlobalAveragePooling1D expects (batch, steps, features) inputs. Received shape {x.shape}."
            )
        pooled = ops.masked_mean(x, mask, axis=1)
        return pooled[:, None, :] if self.keepdims else pooled


class Flatten(nnx.Module):
    """Flattens everything but the batch axis: ``(batch, *dims)`` → ``(batch, prod(dims))``.

    Examples:
        >>> Flatten()(jnp.zeros((8, 50, 64))).shape
        (8, 3200)
    """

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))
