"""The shared argument checks (private): one "one of these values" check, one positive-integer check.

Every module that validates a choice or a size calls these, so the rule and the message
(Keras style: argument name, rule, value and type received) are written once.

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

__all__ = ["one_of", "positive_int"]

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
    ok = not isinstance(value, (bool, np.bool_, float, np.floating))
    number = value
    if ok:
        try:
            number = operator.index(value)
            ok = number > 0
        except TypeError:
            ok = False
    if not ok:
        rule = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(
            f"`{name}` must be {rule}. Received: {name}={value!r} (of type {type(value).__name__})."
        )
    return int(number)
