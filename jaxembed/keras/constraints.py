"""Keras weight constraints by name and config, as projections ``array -> array``.

Keras applies a constraint after each optimizer step; in JAX the training code
does it (see :func:`jaxembed.apply_constraints`). The formulas and defaults are
Keras's, including ``axis=0``: for an ``(input_dim, output_dim)`` table that
normalizes each *column* over the vocabulary. Pass ``axis=1`` to bound the norm
of each embedding vector (row) instead.

Examples:
    >>> project = get({"class_name": "MaxNorm", "config": {"max_value": 1.0, "axis": 1}})
    >>> projected = project(jnp.array([[3.0, 4.0], [0.3, 0.4]]))
    >>> jnp.linalg.norm(projected, axis=1).round(3).tolist()
    [1.0, 0.5]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxembed.keras._objects import KerasObject, KerasObjects

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "get", "serialize"]

EPSILON = 1e-7  # keras.config.epsilon()


class Constraint(KerasObject):
    """Base class: ``__call__(w)`` returns the projected weights."""

    def __call__(self, w: jax.Array) -> jax.Array:
        raise NotImplementedError


def _norms(w: jax.Array, axis: int) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.square(w), axis=axis, keepdims=True))


@dataclasses.dataclass(frozen=True)
class MaxNorm(Constraint):
    """Scales slices along ``axis`` whose L2 norm exceeds ``max_value`` back to it."""

    max_value: float = 2
    axis: int = 0

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = jnp.clip(norms, 0, self.max_value)
        return w * (desired / (EPSILON + norms))


@dataclasses.dataclass(frozen=True)
class MinMaxNorm(Constraint):
    """Moves slice norms into ``[min_value, max_value]`` at rate ``rate``."""

    min_value: float = 0.0
    max_value: float = 1.0
    rate: float = 1.0
    axis: int = 0

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * jnp.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (EPSILON + norms))


@dataclasses.dataclass(frozen=True)
class NonNeg(Constraint):
    """Sets negative weights to zero."""

    def __call__(self, w):
        return jnp.maximum(w, 0)


@dataclasses.dataclass(frozen=True)
class UnitNorm(Constraint):
    """Scales each slice along ``axis`` to unit L2 norm."""

    axis: int = 0

    def __call__(self, w):
        return w / (EPSILON + _norms(w, self.axis))


_REGISTRY = KerasObjects(
    "constraint",
    "keras.constraints",
    [MaxNorm, MinMaxNorm, NonNeg, UnitNorm],
    {"max_norm": MaxNorm, "min_max_norm": MinMaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm},
)


def get(identifier: Any) -> Callable[[jax.Array], jax.Array] | None:
    """Resolves a Keras constraint identifier; ``None`` means unconstrained.

    Examples:
        >>> get("non_neg")(jnp.array([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """
    return _REGISTRY.get(identifier)


def serialize(constraint: Callable | None) -> dict[str, Any] | Callable | None:
    """Keras's serialized dict for a jaxembed constraint (``None`` for none).

    Examples:
        >>> serialize(get("max_norm"))["config"]
        {'max_value': 2, 'axis': 0}
    """
    return _REGISTRY.serialize(constraint)
