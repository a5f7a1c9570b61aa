"""Keras regularizers by name and config, as penalty functions ``array -> scalar``.

Each regularizer is a frozen dataclass with Keras's config keys, called on a
weight (or activation) array and returning a scalar penalty with Keras's exact
formula. ``get`` accepts a name (``"l2"``), a Keras config dict, an instance or
any callable.

Examples:
    >>> penalty = get("l2")
    >>> penalty
    L2(l2=0.01)
    >>> round(float(penalty(jnp.array([[1.0, 2.0]]))), 6)  # 0.01 * (1 + 4)
    0.05
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxembed.keras._objects import KerasObject, KerasObjects

__all__ = ["Regularizer", "L1", "L2", "L1L2", "get", "serialize"]


def _check_factor(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"`{name}` must be a non-negative number. Received: {name}={value!r} "
            f"(of type {type(value).__name__})."
        )


class Regularizer(KerasObject):
    """Base class: ``__call__(x)`` returns a scalar penalty."""

    def __call__(self, x: jax.Array) -> jax.Array:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class L1(Regularizer):
    """``l1 * sum(|x|)``."""

    l1: float = 0.01

    def __post_init__(self):
        _check_factor("l1", self.l1)

    def __call__(self, x):
        return self.l1 * jnp.sum(jnp.abs(x))


@dataclasses.dataclass(frozen=True)
class L2(Regularizer):
    """``l2 * sum(x**2)``."""

    l2: float = 0.01

    def __post_init__(self):
        _check_factor("l2", self.l2)

    def __call__(self, x):
        return self.l2 * jnp.sum(jnp.square(x))


@dataclasses.dataclass(frozen=True)
class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``; Keras's defaults are both 0."""

    l1: float = 0.0
    l2: float = 0.0

    def __post_init__(self):
        _check_factor("l1", self.l1)
        _check_factor("l2", self.l2)

    def __call__(self, x):
        penalty = jnp.zeros((), dtype=jnp.result_type(x, jnp.float32))
        if self.l1:
            penalty = penalty + self.l1 * jnp.sum(jnp.abs(x))
        if self.l2:
            penalty = penalty + self.l2 * jnp.sum(jnp.square(x))
        return penalty


_REGISTRY = KerasObjects(
    "regularizer",
    "keras.regularizers",
    [L1, L2, L1L2],
    {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2},
)


def get(identifier: Any) -> Callable[[jax.Array], jax.Array] | None:
    """Resolves a Keras regularizer identifier; ``None`` means no penalty.

    Examples:
        >>> get({"class_name": "L1L2", "config": {"l1": 0.1, "l2": 0.2}})
        L1L2(l1=0.1, l2=0.2)
    """
    return _REGISTRY.get(identifier)


def serialize(regularizer: Callable | None) -> dict[str, Any] | Callable | None:
    """Keras's serialized dict for a jaxembed regularizer (``None`` for none).

    Examples:
        >>> serialize(L2(0.5))["config"]
        {'l2': 0.5}
    """
    return _REGISTRY.serialize(regularizer)
