"""The shared argument checks (private): choices, integers, booleans and how a received value is shown.

Every module that validates a choice or a size calls these, so the rule and the message
(Keras style: argument name, rule, value and type received) are written once;
``jaxembed.preprocessing._checks`` adds only the preprocessing layers' Keras-worded checks on top.

Examples:
    >>> one_of("lookup", "take", ("take", "one_hot"))
    'take'
    >>> positive_int("input_dim", np.int32(3))
    3
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = ["one_of", "positive_int", "integer", "boolean", "described", "as_index"]

T = TypeVar("T")


def one_of(name: str, value: T, choices: Sequence[Any], *, extra: str = "") -> T:
    """Returns ``value`` if it is one of ``choices``, else raises ``ValueError`` naming ``name``.

    Args:
        name: the argument's name, as the user spells it.
        value: the value received.
        choices: the allowed values.
        extra: more allowed kinds, appended to the rule (e.g. ``", None or a callable"``).

    Raises:
        ValueError: "`name` must be one of (...). Received: name=value."

    Examples:
        >>> one_of("combiner", "max", ("sum", "mean"))
        Traceback (most recent call last):
        ...
        ValueError: `combiner` must be one of ('sum', 'mean'). Received: combiner='max'.
    """
    try:
        ok = value in choices
    except TypeError:  # an unhashable value against a set-like of choices
        ok = False
    if not ok:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}{extra}. Received: {name}={value!r}.")
    return value


def described(value: Any) -> str:
    """``value!r (of type T)``, the way the messages report a received value.

    Examples:
        >>> described(3.7)
        '3.7 (of type float)'
    """
    return f"{value!r} (of type {type(value).__name__})"


def as_index(value: Any) -> int | None:
    """``value`` as an ``int`` if :func:`operator.index` accepts it and it is not a bool, else ``None``.

    Floats (``3.0`` too) and bools are not integers here, as in Keras.

    Examples:
        >>> as_index(np.int64(4)), as_index(True), as_index(4.0)
        (4, None, None)
    """
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def integer(name: str, value: Any, *, minimum: int, allow_none: bool = False) -> int | None:
    """An integer ``>= minimum``: ``TypeError`` for a non-integer, ``ValueError`` below the minimum.

    Examples:
        >>> integer("max_tokens", None, minimum=0, allow_none=True) is None
        True
        >>> integer("num_oov_indices", -1, minimum=0)
        Traceback (most recent call last):
        ...
        ValueError: `num_oov_indices` must be >= 0. Received: num_oov_indices=-1 (of type int).
    """
    if value is None and allow_none:
        return None
    number = as_index(value)
    if number is None:
        rule = "None or an integer" if allow_none else "an integer"
        raise TypeError(f"`{name}` must be {rule} >= {minimum}. Received: {name}={described(value)}.")
    if number < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={described(value)}.")
    return number


def boolean(name: str, value: Any) -> bool:
    """A Python or NumPy bool, as ``bool``; anything else is a ``TypeError``.

    Examples:
        >>> boolean("sparse", np.True_)
        True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False. Received: {name}={described(value)}.")
    return bool(value)


def positive_int(name: str, value: Any, *, allow_none: bool = False) -> int:
    """Returns ``value`` as an ``int`` if it is a positive integer, else raises ``ValueError``.

    Accepts anything :func:`operator.index` accepts (``int``, NumPy integers); rejects ``bool``
    and floats (``3.0`` too), as Keras does.

    Args:
        name: the argument's name, as the user spells it.
        value: the value received.
        allow_none: return ``None`` for ``None`` instead of raising.

    Raises:
        ValueError: "`name` must be a positive integer. Received: name=value (of type T)."

    Examples:
        >>> positive_int("output_dim", 3.7)
        Traceback (most recent call last):
        ...
        ValueError: `output_dim` must be a positive integer. Received: output_dim=3.7 (of type float).
    """
    if allow_none and value is None:
        return None  # type: ignore[return-value]
    number = as_index(value)
    if number is None or number <= 0:
        rule = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"`{name}` must be {rule}. Received: {name}={described(value)}.")
    return int(number)
