"""``HashedCrossing``: pairs (or more) of features -> one hash bucket, as ``keras.layers.HashedCrossing``.

Keras calls TensorFlow's ``tf.sparse.cross_hashed``: each feature's 64-bit fingerprint (FarmHash64
of a string's UTF-8 bytes; an integer's own two's-complement bits) is folded into a running
hash that starts at ``0xDECAFCAFFE`` with TensorFlow's ``FingerprintCat64``, and the result is
taken modulo ``num_bins``. This module computes the same on the host (NumPy) and, for integer
JAX arrays, in ``jax.numpy`` (so it runs under ``jax.jit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse

from jaxembed.preprocessing import _checks
from jaxembed.preprocessing._encoding import encode
from jaxembed.preprocessing._hash_functions import _U64, _remainder, divisor_words, fingerprints
from jaxembed.preprocessing._hashing import bins_dtype
from jaxembed.preprocessing._inputs import as_array, host_values, object_array

__all__ = ["HashedCrossing"]

_KEY = 0xDECAFCAFFE
_MUL = 0xC6A4A7935BD1E995
_MASK64 = (1 << 64) - 1


def _cat_host(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """TensorFlow's ``FingerprintCat64`` on uint64 arrays (NumPy wraps modulo 2**64)."""
    mul = np.uint64(_MUL)
    with np.errstate(over="ignore"):
        result = first ^ mul
        mixed = second * mul
        result ^= (mixed ^ (mixed >> np.uint64(47))) * mul
        result *= mul
        result = (result ^ (result >> np.uint64(47))) * mul
        return result ^ (result >> np.uint64(47))


def _cat_jnp(first: _U64, second: _U64) -> _U64:
    mul = _U64.const(_MUL)
    result = first ^ mul
    result = result ^ ((second * mul).shift_mix() * mul)
    result = result * mul
    return (result.shift_mix() * mul).shift_mix()


class HashedCrossing:
    """Crosses two or more categorical features into ``num_bins`` buckets, as Keras's ``HashedCrossing``.

    Each input has shape ``()``, ``(batch,)`` or ``(batch, 1)`` (all the same) and holds strings
    or integers; the output has the inputs' shape (``"int"``) or ends in ``num_bins``
    (``"one_hot"``). Unlike Keras (which then returns raw 64-bit hashes), ``num_bins < 1`` is an
    error.

    Args:
        num_bins: the number of buckets, ``>= 1``.
        output_mode: ``"int"`` or ``"one_hot"``.
        sparse: ``"one_hot"`` output as ``jax.experimental.sparse.BCOO``.
        name: a name (kept in the config).
        dtype: output dtype (int64 for ``"int"``, float32 for ``"one_hot"`` by default).

    Examples:
        >>> layer = jaxembed.HashedCrossing(num_bins=5)
        >>> layer((["A", "B", "A"], [101, 101, 102])).tolist()
        [1, 4, 3]
        >>> jax.jit(layer)((jnp.array([1, 2]), jnp.array([10, 10]))).tolist()
        [1, 4]
    """

    def __init__(
        self,
        num_bins: int,
        output_mode: str = "int",
        sparse: bool = False,
        *,
        name: str | None = None,
        dtype: Any = None,
    ):
        if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
            raise ValueError(
                "`num_bins` for `HashedCrossing` must be a positive integer. "
                f"Received: num_bins={_checks.described(num_bins)}."
            )
        if output_mode not in ("int", "one_hot"):
            raise ValueError(
                "Unknown value for `output_mode` argument of HashedCrossing. Allowed values are: "
                f"('int', 'one_hot'). Received: output_mode={_checks.described(output_mode)}."
            )
        self.num_bins = int(num_bins)
        self.output_mode = output_mode
        self.sparse = _checks.boolean("sparse", sparse)
        if self.sparse and output_mode == "int":
            raise ValueError("`sparse=True` needs `output_mode='one_hot'`. Received: output_mode='int'.")
        self.name = name
        default = "int64" if output_mode == "int" else "float32"
        self._dtype_name = np.dtype(dtype or default).name
        self.dtype = np.dtype(jax.dtypes.canonicalize_dtype(np.dtype(dtype or default)))

    def _check(self, inputs: Any) -> list[Any]:
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(
                f"`HashedCrossing` should be called on a list or tuple of inputs. Received: inputs={inputs!r}"
            )
        if len(inputs) < 2:
            raise ValueError(
                f"`HashedCrossing` should be called on at least two inputs. Received: inputs={inputs!r}"
            )
        return list(inputs)

    def __call__(self, inputs: Sequence[Any]) -> jax.Array:
        """Crosses the features of ``inputs`` (a tuple of arrays of equal shape)."""
        features = self._check(inputs)
        if any(isinstance(x, jsparse.BCOO) or type(x).__name__ == "SparseTensor" for x in features):
            raise ValueError(
                "All `HashedCrossing` inputs should be dense tensors. "
                f"Received types {[type(x).__name__ for x in features]}."
            )
        on_device = all(isinstance(x, jax.Array | jax.core.Tracer) for x in features)
        if not on_device:
            features = [as_array(x) for x in features]
            features = [
                x if isinstance(x, np.ndarray) else object_array(x, "inputs", "HashedCrossing")
                for x in features
            ]
        shapes = [tuple(x.shape) for x in features]
        first = shapes[0]
        if len(first) > 2 or (len(first) == 2 and first[-1] != 1):
            raise ValueError(
                "All `HashedCrossing` inputs should have shape `()`, `(batch_size)` or `(batch_size, 1)`. "
                f"Received shapes {shapes}."
            )
        if any(shape != first for shape in shapes[1:]):
            raise ValueError(
                f"All `HashedCrossing` inputs should have equal shape. Received shapes {shapes}."
            )
        kinds = [x.dtype.kind for x in features]
        if any(kind not in "iuUSO" for kind in kinds):
            raise ValueError(
                "All `HashedCrossing` inputs should have an integer or string dtype. "
                f"Received dtypes {[str(x.dtype) for x in features]}."
            )
        if not on_device:
            features = [host_values(x, f"input {i}", "HashedCrossing") for i, x in enumerate(features)]
        if on_device:
            state = _U64.const(_KEY)
            state = _U64(jnp.broadcast_to(state.hi, first), jnp.broadcast_to(state.lo, first))
            for x in features:
                lo = x.astype(jnp.uint32)
                if x.dtype.itemsize == 8:
                    hi = (x >> 32).astype(jnp.uint32)
                else:
                    hi = jnp.where(x < 0, jnp.uint32(0xFFFFFFFF), jnp.uint32(0))
                state = _cat_jnp(state, _U64(hi, lo))
            divisor, wide = divisor_words(self.num_bins)
            ids = _remainder(state, _U64(divisor[0], divisor[1]), wide)
        else:
            state = np.full(first, _KEY, np.uint64)
            for x in features:
                if x.dtype == object:
                    word = fingerprints(x.reshape(-1).tolist()).reshape(first)
                else:
                    word = x.astype(np.int64).view(np.uint64)
                state = _cat_host(state, word)
            ids = jnp.asarray((state % np.uint64(self.num_bins)).astype(bins_dtype(self.num_bins)))
        if self.output_mode == "int":
            return ids.astype(self.dtype)
        return encode(ids, "one_hot", self.num_bins, self.dtype, sparse=self.sparse)

    def get_config(self) -> dict[str, Any]:
        """Keras's config keys.

        Examples:
            >>> jaxembed.HashedCrossing(5).get_config()
            {'num_bins': 5, 'output_mode': 'int', 'sparse': False, 'name': None, 'dtype': 'int64'}
        """
        return {
            "num_bins": self.num_bins,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "name": self.name,
            "dtype": self._dtype_name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HashedCrossing:
        """The layer of a :meth:`get_config` (or Keras) config; unknown keys are errors."""
        keys = ("name", "num_bins", "output_mode", "sparse")
        return cls(**_checks.config_arguments("HashedCrossing", config, keys))

    def __repr__(self) -> str:
        return f"HashedCrossing(num_bins={self.num_bins}, output_mode={self.output_mode!r})"
