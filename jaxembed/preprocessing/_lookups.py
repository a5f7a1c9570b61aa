"""``StringLookup`` and ``IntegerLookup``: Keras's lookup layers over the shared :mod:`._index_lookup`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxembed.preprocessing._checks import described
from jaxembed.preprocessing._hash_functions import buckets_jnp
from jaxembed.preprocessing._index_lookup import IndexLookup, _int_dtype, shared_arguments
from jaxembed.preprocessing._inputs import integer_array, string_array

__all__ = ["StringLookup", "IntegerLookup"]


class StringLookup(IndexLookup):
    """Strings -> integer ids (or one/multi-hot, count, TF-IDF vectors), as ``keras.layers.StringLookup``.

    Ids are laid out as Keras lays them out: with ``output_mode="int"``, id 0 is ``mask_token``
    (if set), then ``num_oov_indices`` ids for out-of-vocabulary strings (several OOV ids are
    chosen by FarmHash64, or SipHash with ``salt``, exactly as TensorFlow), then the vocabulary.
    In the other modes the mask slot is left out and mask tokens are dropped. Lookups run on the
    host (NumPy); the ids come back as a JAX array (int32 unless ``jax_enable_x64``, as Keras on
    JAX). ``invert=True`` maps ids back to a NumPy ``str`` array.

    Args:
        max_tokens: the most ids (mask and OOV included); ``None`` for no cap.
        num_oov_indices: OOV ids; 0 makes an unknown string an error.
        mask_token: the token of id 0 (``None``: no mask).
        oov_token: the token of OOV ids in :meth:`get_vocabulary` and when inverting.
        vocabulary: tokens, or a path to a UTF-8 text file with one per line.
        idf_weights: with ``output_mode="tf_idf"`` and a ``vocabulary``: one weight per token.
        invert: map ids to tokens.
        output_mode: ``"int"``, ``"one_hot"``, ``"multi_hot"``, ``"count"`` or ``"tf_idf"``.
        pad_to_max_tokens: make vector outputs ``max_tokens`` wide.
        sparse: return vector outputs as ``jax.experimental.sparse.BCOO`` (Keras allows this only on
            TensorFlow; the values equal the dense output).
        encoding: the text encoding of ``bytes`` inputs.
        name: a name (kept in the config).
        salt: one or two integers: hash OOV strings with SipHash-2-4 keyed by them.
        oov_method: accepted for Keras configs; strings are always hashed (FarmHash64 or SipHash).
        **kwargs: Keras's ``trainable``, ``dtype``, ``vocabulary_size`` and ``has_input_vocabulary``
            (config keys) are accepted and ignored; any other name is a ``ValueError``, as in Keras.

    Examples:
        >>> layer = jaxembed.StringLookup(vocabulary=["cat", "dog", "snake"])
        >>> layer([["dog", "cow"], ["cat", "snake"]]).tolist()
        [[2, 0], [1, 3]]
        >>> jaxembed.StringLookup(vocabulary=["cat", "dog"], output_mode="multi_hot")(
        ...     [["dog", "dog"], ["cat", "bird"]]).tolist()
        [[0, 0, 1], [1, 1, 0]]
        >>> jaxembed.StringLookup(vocabulary=["cat", "dog"], invert=True)([2, 0, 1]).tolist()
        ['dog', '[UNK]', 'cat']
    """

    _layer_name = "StringLookup"
    _format = "jaxembed-string-lookup"

    def __init__(
        self,
        max_tokens: int | None = None,
        num_oov_indices: int = 1,
        mask_token: str | None = None,
        oov_token: str = "[UNK]",
        vocabulary: Sequence[str] | np.ndarray | str | os.PathLike | None = None,
        idf_weights: Sequence[float] | np.ndarray | None = None,
        invert: bool = False,
        output_mode: str = "int",
        pad_to_max_tokens: bool = False,
        sparse: bool = False,
        encoding: str = "utf-8",
        name: str | None = None,
        salt: int | Sequence[int] | None = None,
        oov_method: str = "floormod",
        **kwargs: Any,
    ):
        if not isinstance(encoding, str):
            raise TypeError(f"`encoding` must be a str. Received: encoding={described(encoding)}.")
        "x".encode(encoding)  # an unknown encoding raises LookupError here, not at the first call
        self.encoding = encoding
        super().__init__(**shared_arguments(locals()))

    def _check_special(self, name: str, token: Any) -> Any:
        if isinstance(token, bytes):
            token = token.decode(self.encoding)
        if not isinstance(token, str):
            raise TypeError(f"`{name}` must be a str or None. Received: {name}={described(token)}.")
        return token

    def _parse_line(self, line: str) -> str:
        return line

    def _host_tokens(self, data: Any, what: str) -> np.ndarray:
        return string_array(data, what, "StringLookup", self.encoding)

    def _host_ids(self, data: Any) -> np.ndarray:
        return integer_array(data, "ids", "StringLookup")

    def _inverted_output(self, out: np.ndarray) -> np.ndarray:
        return np.array(out.tolist(), dtype=str) if out.size else out.astype(str)

    def get_config(self) -> dict[str, Any]:
        """Keras's ``StringLookup`` config (see :meth:`IndexLookup.get_config`)."""
        return {**super().get_config(), "encoding": self.encoding}


class IntegerLookup(IndexLookup):
    """Integers -> integer ids (or one/multi-hot, count, TF-IDF vectors), as ``keras.layers.IntegerLookup``.

    The id layout and modes are :class:`StringLookup`'s. Several OOV ids are chosen by
    ``oov_method``: ``"floormod"`` (``value % num_oov_indices``, Keras's default) or
    ``"farmhash"`` (FarmHash64 of the decimal text, or SipHash with ``salt``). NumPy and list
    inputs are looked up in NumPy (int64); JAX arrays with ``jax.numpy`` (a sorted vocabulary
    and ``searchsorted``), so the layer can be called inside ``jax.jit``. Under ``jit`` an
    unknown value with ``num_oov_indices=0`` cannot raise and gives -1 (eager calls raise).

    Args:
        max_tokens: the most ids (mask and OOV included); ``None`` for no cap.
        num_oov_indices: OOV ids; 0 makes an unknown value an error.
        mask_token: the value of id 0 (``None``: no mask).
        oov_token: the value of OOV ids in :meth:`get_vocabulary` and when inverting.
        vocabulary: integers, or a path to a text file with one per line.
        vocabulary_dtype: ``"int64"`` (the only one Keras supports).
        idf_weights: with ``output_mode="tf_idf"`` and a ``vocabulary``: one weight per token.
        invert: map ids to vocabulary values.
        output_mode: ``"int"``, ``"one_hot"``, ``"multi_hot"``, ``"count"`` or ``"tf_idf"``.
        sparse: return vector outputs as ``jax.experimental.sparse.BCOO``.
        pad_to_max_tokens: make vector outputs ``max_tokens`` wide.
        oov_method: ``"floormod"`` or ``"farmhash"``.
        salt: with ``oov_method="farmhash"``: one or two integers keying SipHash-2-4.
        name: a name (kept in the config).
        **kwargs: Keras's config-only keys (ignored); any other name is a ``ValueError``.

    Examples:
        >>> layer = jaxembed.IntegerLookup(vocabulary=[12, 36, 1138, 42])
        >>> layer(jnp.array([[12, 1138, 42], [42, 1000, 36]])).tolist()
        [[1, 3, 4], [4, 0, 2]]
        >>> jax.jit(layer)(jnp.array([36, 7])).tolist()
        [2, 0]
    """

    _layer_name = "IntegerLookup"
    _format = "jaxembed-integer-lookup"
    _is_integer = True

    def __init__(
        self,
        max_tokens: int | None = None,
        num_oov_indices: int = 1,
        mask_token: int | None = None,
        oov_token: int = -1,
        vocabulary: Sequence[int] | np.ndarray | str | os.PathLike | None = None,
        vocabulary_dtype: str = "int64",
        idf_weights: Sequence[float] | np.ndarray | None = None,
        invert: bool = False,
        output_mode: str = "int",
        sparse: bool = False,
        pad_to_max_tokens: bool = False,
        oov_method: str = "floormod",
        salt: int | Sequence[int] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        if vocabulary_dtype != "int64":
            raise ValueError(
                "Only `vocabulary_dtype='int64'` is supported at this time. "
                f"Received: vocabulary_dtype={vocabulary_dtype}"
            )
        self.vocabulary_dtype = vocabulary_dtype
        super().__init__(**shared_arguments(locals()))

    def _check_special(self, name: str, token: Any) -> int:
        if isinstance(token, (bool, np.bool_)) or not isinstance(token, (int, np.integer)):
            raise TypeError(f"`{name}` must be an integer or None. Received: {name}={described(token)}.")
        return int(token)

    def _parse_line(self, line: str) -> int:
        try:
            return int(line)
        except ValueError:
            raise ValueError(
                f"IntegerLookup vocabulary files hold one integer a line. Received line {line!r}."
            ) from None

    def _host_tokens(self, data: Any, what: str) -> np.ndarray:
        return integer_array(data, what, "IntegerLookup")

    def _host_ids(self, data: Any) -> np.ndarray:
        return integer_array(data, "ids", "IntegerLookup")

    def _inverted_output(self, out: np.ndarray) -> jax.Array:
        values = np.array(out.tolist(), dtype=np.int64).reshape(out.shape)
        dtype = _int_dtype()
        if values.size and (values.min() < np.iinfo(dtype).min or values.max() > np.iinfo(dtype).max):
            raise ValueError(
                f"Vocabulary values do not fit in {dtype}; enable jax_enable_x64 to invert to such values."
            )
        return jnp.asarray(values.astype(dtype))

    def _table(self, dtype: Any) -> tuple[jax.Array, jax.Array]:
        """The sorted keys that fit ``dtype`` and their ids, as JAX arrays (cached per dtype)."""
        key = np.dtype(dtype)
        if key not in self._tables:
            info = np.iinfo(key)
            fits = (self._sorted_keys >= info.min) & (self._sorted_keys <= info.max)
            self._tables[key] = (
                jnp.asarray(self._sorted_keys[fits].astype(key)),
                jnp.asarray(self._sorted_ids[fits].astype(_int_dtype())),
            )
        return self._tables[key]

    def _call_jnp(self, inputs: jax.Array) -> Any:
        if not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise TypeError(
                f"IntegerLookup inputs must be integers. Received a JAX array of dtype {inputs.dtype}."
            )
        x = inputs if jnp.issubdtype(inputs.dtype, jnp.signedinteger) else inputs.astype(_int_dtype())
        info = np.iinfo(x.dtype)
        mask = (
            self.mask_token
            if self.mask_token is not None and info.min <= self.mask_token <= info.max
            else None
        )
        out_dtype = _int_dtype()
        if self.invert:
            start = self._token_start_index()
            values = np.asarray(self._tokens, np.int64)
            if values.size and (
                values.min() < np.iinfo(out_dtype).min or values.max() > np.iinfo(out_dtype).max
            ):
                raise ValueError(f"Vocabulary values do not fit in {out_dtype}; enable jax_enable_x64.")
            table = jnp.asarray(values.astype(out_dtype))
            in_range = (x >= start) & (x < start + len(values))
            picked = table[jnp.clip(x - start, 0, max(len(values) - 1, 0))] if len(values) else x
            out = jnp.where(in_range, picked, jnp.asarray(self.oov_token, out_dtype))
            if self.mask_token is not None:
                out = jnp.where(x == 0, jnp.asarray(self.mask_token, out_dtype), out)
            return out.astype(out_dtype)
        keys, ids = self._table(x.dtype)
        if keys.size:
            position = jnp.clip(jnp.searchsorted(keys, x), 0, keys.size - 1)
            found = keys[position] == x
            looked_up = jnp.where(found, ids[position], -1)
        else:
            found = jnp.zeros(x.shape, bool)
            looked_up = jnp.full(x.shape, -1, out_dtype)
        masked = jnp.zeros(x.shape, bool) if mask is None else x == mask
        missing = ~found & ~masked
        start = self._oov_start_index()
        if self.num_oov_indices == 0:
            if not isinstance(missing, jax.core.Tracer) and bool(missing.any()):
                unknown = np.asarray(x)[np.asarray(missing)][:10].tolist()
                raise ValueError(
                    "When `num_oov_indices=0` all inputs should be in vocabulary, found OOV values "
                    f"{unknown}, consider setting `num_oov_indices=1`."
                )
            oov = jnp.full(x.shape, -1, out_dtype)
        elif self.num_oov_indices == 1:
            oov = jnp.full(x.shape, start, out_dtype)
        elif self.oov_method == "floormod":
            oov = (jnp.mod(x, self.num_oov_indices) + start).astype(out_dtype)
        else:
            oov = (buckets_jnp(x, self.num_oov_indices, self.salt) + start).astype(out_dtype)
        result = jnp.where(missing, oov, looked_up)
        result = jnp.where(masked, 0 if self.output_mode == "int" else -1, result).astype(out_dtype)
        if self.output_mode == "int":
            return result
        return self._encode(result)

    def get_config(self) -> dict[str, Any]:
        """Keras's ``IntegerLookup`` config (see :meth:`IndexLookup.get_config`)."""
        return {**super().get_config(), "vocabulary_dtype": self.vocabulary_dtype}
