"""Host inputs -> NumPy arrays of tokens (private): strings or integers, mixtures refused as Keras does."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxembed.preprocessing._checks import described

_STRINGS = (str, bytes, np.str_, np.bytes_)


def as_array(data: Any) -> Any:
    """TensorFlow tensors and other array-likes with ``.numpy()`` become NumPy arrays."""
    if isinstance(data, (np.ndarray, jax.Array, list, tuple, str, bytes)):
        return data
    if hasattr(data, "numpy"):  # TensorFlow and torch (CPU) tensors
        return np.asarray(data.numpy())
    if hasattr(data, "__array__"):  # other array-likes
        return np.asarray(data)
    return data


def object_array(data: Any, what: str, layer: str) -> np.ndarray:
    try:
        array = np.array(data, dtype=object)
    except ValueError:
        raise ValueError(
            f"{layer} {what} must be rectangular (every row the same length); pad ragged rows first. "
            f"Received: {described(data)}."
        ) from None
    if (
        array.dtype == object
        and array.size
        and any(isinstance(x, (list, tuple, np.ndarray)) for x in array.flat)
    ):
        raise ValueError(
            f"{layer} {what} must be rectangular; pad ragged rows first. Received: {described(data)}."
        )
    return array


def integer_array(data: Any, what: str, layer: str) -> np.ndarray:
    """``data`` as an int64 NumPy array; floats only when integral; strings, bools and mixtures refused."""
    data = as_array(data)
    if isinstance(data, (np.ndarray, jax.Array)) and data.dtype.kind != "O":
        array = np.asarray(data)
    else:
        array = object_array(data, what, layer)
        kinds = {type(x) for x in array.flat}
        numbers = {k for k in kinds if issubclass(k, (int, np.integer, float, np.floating))}
        if kinds - numbers or any(issubclass(k, (bool, np.bool_)) for k in kinds):
            if numbers - {bool, np.bool_}:
                raise ValueError(
                    f"{layer} {what} mix integers with other types "
                    f"({sorted(k.__name__ for k in kinds)}): Can't convert Python sequence with mixed types."
                )
            raise TypeError(
                f"{layer} {what} must be integers. Received values of type "
                f"{sorted(k.__name__ for k in kinds)}; use StringLookup for strings."
            )
        array = np.array(array.tolist()) if array.size else np.zeros(array.shape, np.int64)
    if array.dtype.kind == "b" or array.dtype.kind not in "iuf":
        raise TypeError(f"{layer} {what} must be integers. Received an array of dtype {array.dtype}.")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array) & (array == np.round(array))):
            bad = array[~(np.isfinite(array) & (array == np.round(array)))][:5].tolist()
            raise TypeError(f"{layer} {what} must be integers. Received non-integer values {bad}.")
    if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{layer} {what} must fit in int64. Received {array.max()}.")
    return array.astype(np.int64)


def string_array(data: Any, what: str, layer: str, encoding: str = "utf-8") -> np.ndarray:
    """``data`` as an object array of Python ``str`` (bytes decoded); numbers and mixtures refused."""
    data = as_array(data)
    if isinstance(data, np.ndarray) and data.dtype.kind == "U":
        return data.astype(object)
    if isinstance(data, np.ndarray) and data.dtype.kind == "S":
        return np.vectorize(lambda b: b.decode(encoding), otypes=[object])(data)
    if isinstance(data, (np.ndarray, jax.Array)) and data.dtype.kind != "O":
        raise TypeError(f"{layer} {what} must be strings. Received an array of dtype {data.dtype}.")
    array = object_array(data, what, layer)
    kinds = {type(x) for x in array.flat}
    if kinds - {str, bytes, np.str_, np.bytes_}:
        if kinds & {str, bytes, np.str_, np.bytes_}:
            raise ValueError(
                f"{layer} {what} mix strings with other types "
                f"({sorted(k.__name__ for k in kinds)}); "
                "Keras refuses this too: Can't convert Python sequence with mixed types to Tensor."
            )
        raise TypeError(
            f"{layer} {what} must be strings. Received values of type "
            f"{sorted(k.__name__ for k in kinds)}; use an integer layer for integers."
        )
    if kinds & {bytes, np.bytes_}:
        return np.vectorize(
            lambda x: x.decode(encoding) if isinstance(x, bytes) else str(x), otypes=[object]
        )(array)
    if np.str_ in kinds:
        return np.vectorize(str, otypes=[object])(array)
    return array


def host_values(data: Any, what: str, layer: str) -> np.ndarray:
    """Strings (object array of ``str``) or integers (int64) -- whichever ``data`` holds; not both."""
    data = as_array(data)
    if isinstance(data, (np.ndarray, jax.Array)) and data.dtype.kind in "US":
        return string_array(data, what, layer)
    if isinstance(data, (np.ndarray, jax.Array)) and data.dtype.kind != "O":
        return integer_array(data, what, layer)
    array = object_array(data, what, layer)
    if array.size and all(isinstance(x, _STRINGS) for x in array.flat):
        return string_array(array, what, layer)
    return integer_array(array, what, layer)
