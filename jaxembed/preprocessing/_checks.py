"""Argument checks of the preprocessing layers (private): Keras's rules, messages that name the value."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

OUTPUT_MODES: tuple[str, ...] = ("int", "one_hot", "multi_hot", "count", "tf_idf")
_ALIASES = {"binary": "multi_hot", "tf-idf": "tf_idf"}


def described(value: Any) -> str:
    """``value!r (of type T)``, the way the messages report a received value."""
    return f"{value!r} (of type {type(value).__name__})"


def output_mode(layer: str, value: Any, allowed: Sequence[str]) -> str:
    """Keras's ``output_mode`` check, with its aliases ``"binary"`` and ``"tf-idf"``."""
    value = _ALIASES.get(value, value) if isinstance(value, str) else value
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"Unknown value for `output_mode` argument of {layer}. Allowed values are: {tuple(allowed)}. "
            f"Received: output_mode={described(value)}."
        )
    return value


def integer(name: str, value: Any, *, minimum: int, allow_none: bool = False) -> int | None:
    """An integer ``>= minimum`` (anything ``operator.index`` accepts, not ``bool``)."""
    if value is None and allow_none:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        rule = "None or an integer" if allow_none else "an integer"
        raise TypeError(
            f"`{name}` must be {rule} >= {minimum}. Received: {name}={described(value)}."
        ) from None
    if number < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={described(value)}.")
    return number


def boolean(name: str, value: Any) -> bool:
    """A Python or NumPy bool."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(f"`{name}` must be True or False. Received: {name}={described(value)}.")
    return bool(value)


def salt(layer: str, value: Any) -> list[int] | None:
    """Keras's ``salt``: ``None``, one integer (used twice) or two integers; the SipHash key."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        parts = list(value)
    elif not isinstance(value, (tuple, list)):
        parts = [value, value]
    else:
        parts = None
    try:
        if parts is None or any(isinstance(part, bool) for part in parts):
            raise TypeError
        parts = [operator.index(part) for part in parts]
    except TypeError:
        raise ValueError(
            f"The `salt` argument for `{layer}` can only be a tuple of size 2 integers, or a single integer. "
            f"Received: salt={described(value)}."
        ) from None
    for part in parts:
        if not -(2**63) <= part < 2**64:
            raise ValueError(f"Each `salt` integer must fit in 64 bits. Received: salt={value!r}.")
    return parts
