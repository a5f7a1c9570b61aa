"""Argument checks of the preprocessing layers (private): Keras's rules and its per-layer messages.

The generic checks (integers, booleans, how a received value is shown) are ``jaxembed._checks``'s,
re-exported here so the layers call one module; this file adds only what Keras words per layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jaxembed._checks import as_index, boolean, described, integer

__all__ = ["OUTPUT_MODES", "boolean", "config_arguments", "described", "integer", "output_mode", "salt"]

OUTPUT_MODES: tuple[str, ...] = ("int", "one_hot", "multi_hot", "count", "tf_idf")
_ALIASES = {"binary": "multi_hot", "tf-idf": "tf_idf"}


def output_mode(layer: str, value: Any, allowed: Sequence[str]) -> str:
    """Keras's ``output_mode`` check, with its aliases ``"binary"`` and ``"tf-idf"``."""
    value = _ALIASES.get(value, value) if isinstance(value, str) else value
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"Unknown value for `output_mode` argument of {layer}. Allowed values are: {tuple(allowed)}. "
            f"Received: output_mode={described(value)}."
        )
    return value


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
    numbers = None if parts is None else [as_index(part) for part in parts]
    if numbers is None or None in numbers:
        raise ValueError(
            f"The `salt` argument for `{layer}` can only be a tuple of size 2 integers, or a single integer. "
            f"Received: salt={described(value)}."
        )
    parts = numbers
    for part in parts:
        if not -(2**63) <= part < 2**64:
            raise ValueError(f"Each `salt` integer must fit in 64 bits. Received: salt={value!r}.")
    return parts


def config_arguments(layer: str, config: Any, keys: Sequence[str]) -> dict[str, Any]:
    """A layer's ``get_config`` (or Keras) config as its constructor's keyword arguments.

    Keras's ``trainable`` is dropped and a serialized ``DTypePolicy`` becomes its dtype name;
    ``dtype`` and ``keys`` are accepted, any other key is a ``ValueError`` naming the layer.
    """
    if not isinstance(config, dict):
        raise TypeError(f"`config` must be a dict. Received: {described(config)}.")
    arguments = {key: value for key, value in config.items() if key != "trainable"}
    dtype = arguments.get("dtype")
    if isinstance(dtype, dict):  # Keras's serialized DTypePolicy
        arguments["dtype"] = dtype.get("config", {}).get("name")
    unknown = sorted(set(arguments) - set(keys) - {"dtype"})
    if unknown:
        raise ValueError(f"Unrecognized keyword argument(s) in the {layer} config: {unknown}.")
    return arguments
