"""``Hashing``: values -> hash buckets, TensorFlow's exact buckets, as ``keras.layers.Hashing``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse

from jaxembed.preprocessing import _checks
from jaxembed.preprocessing._category_encoding import float_dtype
from jaxembed.preprocessing._encoding import encode, output_shape
from jaxembed.preprocessing._hash_functions import buckets, buckets_jnp
from jaxembed.preprocessing._inputs import host_values

__all__ = ["Hashing"]

_MODES = ("int", "one_hot", "multi_hot", "count")


def bins_dtype(num_bins: int) -> np.dtype:
    """int32, or int64 when ``num_bins`` needs it (and ``jax_enable_x64`` is on; else an error)."""
    if num_bins <= 2**31:
        return np.dtype(np.int32)
    if not jax.config.jax_enable_x64:
        raise ValueError(f"num_bins={num_bins} needs int64 bucket ids; enable jax_enable_x64.")
    return np.dtype(np.int64)


class Hashing:
    """Strings or integers -> ``hash(value) % num_bins``, bucket for bucket as ``keras.layers.Hashing``.

    Without ``salt`` the hash is FarmHash64 (TensorFlow's ``to_hash_bucket_fast``), with it
    SipHash-2-4 keyed by the salt (``to_hash_bucket_strong``); integers are hashed as their
    decimal text, as Keras does. With ``mask_value``, that value goes to bucket 0 and the rest
    to ``1 + hash % (num_bins - 1)``. Strings and NumPy/list inputs are hashed on the host;
    integer JAX arrays in ``jax.numpy`` (traceable, so the layer runs under ``jax.jit``).
    Floats are refused (Keras truncates them to integers first; cast explicitly instead).

    Args:
        num_bins: the number of buckets (mask bucket included), ``>= 1``.
        mask_value: a value to send to bucket 0, or ``None``.
        salt: one integer (used twice) or two: the SipHash key; ``None`` for FarmHash64.
        output_mode: ``"int"``, ``"one_hot"``, ``"multi_hot"`` or ``"count"``.
        sparse: vector outputs as ``jax.experimental.sparse.BCOO``.
        name: a name (kept in the config).
        dtype: output dtype: ``"int32"``/``"int64"`` for ``"int"`` (default int64, which JAX
            makes int32 without x64), a float dtype otherwise (default float32).

    Examples:
        >>> layer = jaxembed.Hashing(num_bins=3)
        >>> layer([["A"], ["B"], ["C"], ["D"], ["E"]]).tolist()
        [[1], [0], [1], [1], [2]]
        >>> jax.jit(jaxembed.Hashing(num_bins=3, salt=133))(jnp.array([0, 1, 2])).tolist()
        [1, 2, 0]
    """

    def __init__(
        self,
        num_bins: int,
        mask_value: str | int | None = None,
        salt: int | Sequence[int] | None = None,
        output_mode: str = "int",
        sparse: bool = False,
        *,
        name: str | None = None,
        dtype: Any = None,
    ):
        if num_bins is None or isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)):
            raise ValueError(
                "The `num_bins` for `Hashing` cannot be `None` or non-positive values. "
                f"Received: num_bins={_checks.described(num_bins)}."
            )
        if num_bins <= 0:
            raise ValueError(
                "The `num_bins` for `Hashing` cannot be `None` or non-positive values. "
                f"Received: num_bins={num_bins}."
            )
        if output_mode not in _MODES:
            raise ValueError(
                f"Invalid value for argument `output_mode`. Expected one of {_MODES}. "
                f"Received: output_mode={output_mode}"
            )
        if output_mode == "int":
            name_of = None if dtype is None else np.dtype(dtype).name
            if name_of not in (None, "int32", "int64"):
                raise ValueError(
                    "When `output_mode=\"int\"`, `dtype` should be an integer type, 'int32' or 'in64'. "
                    f"Received: dtype={dtype}"
                )
            self.dtype = np.dtype(jax.dtypes.canonicalize_dtype(np.dtype(dtype or "int64")))
        else:
            self.dtype = float_dtype("dtype", dtype)
        self._dtype_name = np.dtype(dtype or ("int64" if output_mode == "int" else "float32")).name
        if sparse and output_mode == "int":
            raise ValueError(
                '`sparse` may only be true if `output_mode` is `"one_hot"`, `"multi_hot"`, or `"count"`. '
                f"Received: sparse={sparse} and output_mode={output_mode}"
            )
        self.num_bins = int(num_bins)
        self.mask_value = mask_value
        self.salt = _checks.salt("Hashing", salt)
        self.output_mode = output_mode
        self.sparse = _checks.boolean("sparse", sparse)
        self.name = name

    def _hash_bins(self) -> int:
        return self.num_bins - 1 if self.mask_value is not None and self.num_bins > 1 else self.num_bins

    def __call__(self, inputs: Any) -> jax.Array | jsparse.BCOO:
        """Hashes ``inputs`` (any shape; a ``BCOO`` of integers hashes its stored values)."""
        if isinstance(inputs, jsparse.BCOO):
            if self.output_mode != "int":
                raise ValueError(
                    "Sparse (BCOO) inputs need output_mode='int' (their stored values are hashed). "
                    f"Received: output_mode={self.output_mode!r}."
                )
            return jsparse.BCOO((self(inputs.data), inputs.indices), shape=inputs.shape)
        masked_bins = self.mask_value is not None and self.num_bins > 1
        if isinstance(inputs, jax.Array | jax.core.Tracer):
            if not jnp.issubdtype(inputs.dtype, jnp.integer):
                raise TypeError(
                    f"Hashing hashes strings and integers. Received a JAX array of dtype {inputs.dtype}; "
                    "Keras truncates floats to integers first: cast them explicitly."
                )
            ids = buckets_jnp(inputs, self._hash_bins(), self.salt)
            if masked_bins:
                ids = (
                    jnp.where(inputs == self.mask_value, 0, ids + 1)
                    if isinstance(self.mask_value, int)
                    else ids + 1
                )
        else:
            values = host_values(inputs, "inputs", "Hashing")
            flat = values.reshape(-1)
            host_ids = buckets(flat.tolist(), self._hash_bins(), self.salt)
            if masked_bins:
                host_ids = np.where(flat == self.mask_value, 0, host_ids + 1)
            ids = jnp.asarray(host_ids.reshape(values.shape).astype(bins_dtype(self.num_bins)))
        if self.output_mode == "int":
            return ids.astype(self.dtype)
        return encode(ids, self.output_mode, self.num_bins, self.dtype, sparse=self.sparse)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """The output shape for inputs of ``input_shape``.

        Examples:
            >>> jaxembed.Hashing(5, output_mode="multi_hot").compute_output_shape((None, 4))
            (None, 5)
        """
        return output_shape(tuple(input_shape), self.output_mode, self.num_bins)

    def get_config(self) -> dict[str, Any]:
        """Keras's config keys.

        Examples:
            >>> jaxembed.Hashing(8, salt=3).get_config()["salt"]
            [3, 3]
        """
        return {
            "name": self.name,
            "dtype": self._dtype_name,
            "num_bins": self.num_bins,
            "salt": self.salt,
            "mask_value": self.mask_value,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Hashing:
        """The layer of a :meth:`get_config` (or Keras) config; unknown keys are errors."""
        keys = ("mask_value", "name", "num_bins", "output_mode", "salt", "sparse")
        return cls(**_checks.config_arguments("Hashing", config, keys))

    def __repr__(self) -> str:
        return f"Hashing(num_bins={self.num_bins}, salt={self.salt}, output_mode={self.output_mode!r})"
