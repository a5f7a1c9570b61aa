"""``CategoryEncoding``: integer ids -> one-hot, multi-hot or count vectors, as in Keras."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse

from jaxembed.preprocessing import _checks
from jaxembed.preprocessing._encoding import encode, output_shape
from jaxembed.preprocessing._inputs import integer_array

__all__ = ["CategoryEncoding"]


def float_dtype(name: str, dtype: Any, default: str = "float32") -> np.dtype:
    """A dtype argument as the NumPy dtype JAX will use (``float64`` is ``float32`` without x64)."""
    try:
        resolved = np.dtype(default if dtype is None else dtype)
    except TypeError:
        raise ValueError(
            f"`{name}` must be a dtype name. Received: {name}={_checks.described(dtype)}."
        ) from None
    return np.dtype(jax.dtypes.canonicalize_dtype(resolved))


class CategoryEncoding:
    """Integer ids in ``[0, num_tokens)`` -> vectors, with Keras's ``CategoryEncoding`` semantics.

    ``"one_hot"`` encodes every id (a trailing axis of size 1 is replaced); ``"multi_hot"``
    and ``"count"`` encode each sample, the last axis (``(..., length) -> (..., num_tokens)``; a rank-1
    input is one sample). ``count_weights`` (same shape as the ids) weight the counts. The call
    is pure ``jax.numpy`` and runs under ``jax.jit``. Concrete inputs are checked: an id outside
    ``[0, num_tokens)`` raises ``ValueError`` (Keras's TensorFlow backend raises, its JAX backend
    drops the id); inside ``jit`` such ids are dropped, as in Keras on JAX.

    Args:
        num_tokens: the vector size; ids must be below it.
        output_mode: ``"multi_hot"`` (default), ``"one_hot"`` or ``"count"`` (``"binary"`` is
            ``"multi_hot"``).
        sparse: return a ``jax.experimental.sparse.BCOO`` (as Keras's JAX backend does).
        name: a name (kept in the config).
        dtype: the output dtype (default float32).

    Examples:
        >>> layer = jaxembed.CategoryEncoding(num_tokens=4, output_mode="count")
        >>> layer(jnp.array([[0, 1, 1], [3, 3, 2]])).tolist()
        [[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 2.0]]
        >>> jax.jit(jaxembed.CategoryEncoding(3, output_mode="one_hot"))(jnp.array([2, 0])).tolist()
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """

    def __init__(
        self,
        num_tokens: int | None = None,
        output_mode: str = "multi_hot",
        sparse: bool = False,
        *,
        name: str | None = None,
        dtype: Any = None,
    ):
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode not in ("count", "one_hot", "multi_hot"):
            raise ValueError(
                f"Unknown arg for output_mode: {output_mode}. Allowed values are 'count', 'one_hot' and "
                f"'multi_hot'. Received: output_mode={_checks.described(output_mode)}."
            )
        if num_tokens is None:
            raise ValueError(
                "num_tokens must be set to use this layer. If the number of tokens is not known beforehand, "
                "use the IntegerLookup layer instead."
            )
        number = _checks.integer("num_tokens", num_tokens, minimum=-(2**63))
        if number < 1:
            raise ValueError(f"`num_tokens` must be >= 1. Received: num_tokens={num_tokens!r}.")
        self.num_tokens = number
        self.output_mode = output_mode
        self.sparse = _checks.boolean("sparse", sparse)
        self.name = name
        self.dtype = float_dtype("dtype", dtype)

    def __call__(self, inputs: Any, count_weights: Any = None) -> jax.Array | jsparse.BCOO:
        """Encodes ``inputs``; see the class docs."""
        if count_weights is not None and self.output_mode != "count":
            raise ValueError(
                "`count_weights` is not used when `output_mode` is not `'count'`. "
                f"Received `count_weights={count_weights}`."
            )
        if isinstance(inputs, jax.Array | jax.core.Tracer):
            if not jnp.issubdtype(inputs.dtype, jnp.integer):
                raise TypeError(
                    f"CategoryEncoding ids must be integers. Received a JAX array of dtype {inputs.dtype}."
                )
            ids = inputs
        else:
            ids = jnp.asarray(integer_array(inputs, "inputs", "CategoryEncoding").astype(np.int32))
        if not isinstance(ids, jax.core.Tracer) and ids.size:
            bad = np.asarray(ids)[(np.asarray(ids) < 0) | (np.asarray(ids) >= self.num_tokens)]
            if bad.size:
                raise ValueError(
                    f"CategoryEncoding ids must be in [0, num_tokens) = [0, {self.num_tokens}). "
                    f"Received out-of-range ids {bad[:10].tolist()}."
                )
        weights = None
        if count_weights is not None:
            weights = jnp.asarray(count_weights, self.dtype)
            if weights.shape != ids.shape:
                raise ValueError(
                    f"`count_weights` must have the shape of the ids {tuple(ids.shape)}. "
                    f"Received shape {tuple(weights.shape)}."
                )
        return encode(
            ids, self.output_mode, self.num_tokens, self.dtype, count_weights=weights, sparse=self.sparse
        )

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """The output shape for ids of ``input_shape``.

        Examples:
            >>> jaxembed.CategoryEncoding(5).compute_output_shape((8, 3))
            (8, 5)
        """
        return output_shape(tuple(input_shape), self.output_mode, self.num_tokens)

    def get_config(self) -> dict[str, Any]:
        """Keras's config keys.

        Examples:
            >>> jaxembed.CategoryEncoding(3, output_mode="count").get_config()["output_mode"]
            'count'
        """
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "num_tokens": self.num_tokens,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CategoryEncoding:
        """The layer of a :meth:`get_config` (or Keras) config; unknown keys are errors."""
        keys = ("name", "num_tokens", "output_mode", "sparse")
        return cls(**_checks.config_arguments("CategoryEncoding", config, keys))

    def __repr__(self) -> str:
        return f"CategoryEncoding(num_tokens={self.num_tokens}, output_mode={self.output_mode!r})"
