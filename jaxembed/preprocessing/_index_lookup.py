"""The vocabulary lookup shared by :class:`StringLookup` and :class:`IntegerLookup` (private).

Keras's ``IndexLookup`` semantics without TensorFlow: the id layout ``[mask][OOV x num_oov_indices]
[tokens...]`` (the mask slot only in ``output_mode="int"``), ``adapt`` ordering by count then token,
both descending (Keras's ``np.lexsort(...)[::-1]``), OOV buckets by ``floormod`` or by TensorFlow's
string hashes, IDF weights ``log(1 + documents / (1 + document_count))``.

Strings are looked up on the host with a dict; integers with a sorted vocabulary and
``searchsorted``, in NumPy for host inputs and in ``jax.numpy`` for JAX arrays (so
:class:`IntegerLookup` runs under ``jax.jit``).
"""

from __future__ import annotations

import collections
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse

from jaxembed._files import write_text
from jaxembed.preprocessing import _checks
from jaxembed.preprocessing._encoding import encode, output_shape
from jaxembed.preprocessing._hash_functions import buckets

_FORMAT_VERSION = 1
_CONFIG_IGNORED = ("trainable", "dtype", "vocabulary_size", "has_input_vocabulary")


def check_extra_kwargs(layer: str, kwargs: dict[str, Any]) -> None:
    """Keras's config-only keys are accepted and ignored; any other keyword is a ``ValueError``."""
    unknown = {key: value for key, value in kwargs.items() if key not in _CONFIG_IGNORED}
    if unknown:
        raise ValueError(f"Unrecognized keyword argument(s) for {layer}: {unknown}")


def _int_dtype() -> np.dtype:
    """The integer dtype JAX gives ``int64`` values: int32 unless ``jax_enable_x64`` is set (as in Keras)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.int64))


class IndexLookup:
    """Base of :class:`StringLookup` and :class:`IntegerLookup`; not public (Keras does not export it)."""

    _layer_name = "IndexLookup"
    _format = "jaxembed-index-lookup"

    def __init__(
        self,
        max_tokens: int | None,
        num_oov_indices: int,
        mask_token: Any,
        oov_token: Any,
        vocabulary: Any = None,
        idf_weights: Any = None,
        invert: bool = False,
        output_mode: str = "int",
        sparse: bool = False,
        pad_to_max_tokens: bool = False,
        oov_method: str = "floormod",
        salt: Any = None,
        name: str | None = None,
        **config_only: Any,
    ):
        layer = self._layer_name
        check_extra_kwargs(layer, config_only)
        self.max_tokens = _checks.integer("max_tokens", max_tokens, minimum=0, allow_none=True)
        if self.max_tokens is not None and self.max_tokens <= 1:
            raise ValueError(
                f"If set, `max_tokens` must be greater than 1. Received: max_tokens={max_tokens!r}."
            )
        self.pad_to_max_tokens = _checks.boolean("pad_to_max_tokens", pad_to_max_tokens)
        if self.pad_to_max_tokens and self.max_tokens is None:
            raise ValueError(
                "If pad_to_max_tokens is True, must set `max_tokens`. Received: max_tokens=None."
            )
        try:
            self.num_oov_indices = _checks.integer("num_oov_indices", num_oov_indices, minimum=0)
        except ValueError:
            raise ValueError(
                "`num_oov_indices` must be greater than or equal to 0. "
                f"Received: num_oov_indices={num_oov_indices!r}."
            ) from None
        if oov_method not in ("floormod", "farmhash"):
            raise ValueError(
                f"Unknown value for `oov_method` argument of {layer}. Allowed values are: "
                f"('floormod', 'farmhash'). Received: oov_method={_checks.described(oov_method)}."
            )
        if salt is not None and self._is_integer and oov_method != "farmhash":
            raise ValueError(
                f"`salt` can only be used when `oov_method='farmhash'`. Received: oov_method={oov_method}"
            )
        self.salt = _checks.salt(layer, salt)
        self.oov_method = oov_method
        self.output_mode = _checks.output_mode(layer, output_mode, _checks.OUTPUT_MODES)
        self.invert = _checks.boolean("invert", invert)
        self.sparse = _checks.boolean("sparse", sparse)
        if self.invert and self.output_mode != "int":
            raise ValueError(
                "`output_mode` must be `'int'` when `invert` is true. "
                f"Received: output_mode={self.output_mode}"
            )
        if self.sparse and self.output_mode == "int":
            raise ValueError(
                "`sparse` may only be true if `output_mode` is `'one_hot'`, `'multi_hot'`, `'count'` or "
                f"`'tf_idf'`. Received: sparse={sparse} and output_mode={self.output_mode}"
            )
        if idf_weights is not None and self.output_mode != "tf_idf":
            raise ValueError(
                "`idf_weights` should only be set if `output_mode` is `'tf_idf'`. "
                f"Received: idf_weights={idf_weights} and output_mode={self.output_mode}"
            )
        self.mask_token = None if mask_token is None else self._check_special("mask_token", mask_token)
        self.oov_token = None if oov_token is None else self._check_special("oov_token", oov_token)
        self.name = name
        self._tokens: list[Any] = []
        self._idf: np.ndarray | None = None
        self._tables: dict[Any, tuple[jax.Array, jax.Array]] = {}
        self.input_vocabulary = None
        self.input_idf_weights = None
        self._has_input_vocabulary = vocabulary is not None
        if self.output_mode == "tf_idf" and vocabulary is not None and idf_weights is None:
            raise ValueError(
                "When specifying the `vocabulary` argument, in TF-IDF output mode, the `idf_weights` "
                "argument must also be provided."
            )
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
            if not isinstance(vocabulary, (str, os.PathLike)):
                self.input_vocabulary = self._as_list(vocabulary)
                self.input_idf_weights = None if idf_weights is None else np.asarray(idf_weights).tolist()
        self._frozen_size = config_only.get("vocabulary_size")  # Keras's config key, kept for round trips

    # ------------------------------------------------------------------ hooks for the two layers
    _is_integer = False

    def _check_special(self, name: str, token: Any) -> Any:
        raise NotImplementedError

    def _host_tokens(self, data: Any, what: str) -> np.ndarray:
        """``data`` as a NumPy array of tokens (object array of str, or int64); raises on mixed types."""
        raise NotImplementedError

    def _host_ids(self, data: Any) -> np.ndarray:
        """``data`` as an int64 NumPy array of ids (for ``invert=True``)."""
        raise NotImplementedError

    def _parse_line(self, line: str) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------ layout
    def _oov_start_index(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self) -> int:
        return self._oov_start_index() + self.num_oov_indices

    def vocabulary_size(self) -> int:
        """The number of ids: mask and OOV slots plus the tokens (the Embedding's ``input_dim``).

        Examples:
            >>> jaxembed.StringLookup(vocabulary=["a", "b"]).vocabulary_size()
            3
        """
        return self._token_start_index() + len(self._tokens)

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[Any]:
        """The token of every id, in id order (mask and OOV tokens first unless excluded).

        Examples:
            >>> jaxembed.StringLookup(vocabulary=["a", "b"], mask_token="").get_vocabulary()
            ['', '[UNK]', 'a', 'b']
        """
        special = [self.oov_token] * self.num_oov_indices
        if self._oov_start_index():
            special = [self.mask_token, *special]
        vocabulary = [*special, *self._tokens]
        return vocabulary if include_special_tokens else vocabulary[self._token_start_index() :]

    @property
    def idf_weights(self) -> np.ndarray | None:
        """The ``tf_idf`` weights of every output column (``None`` in the other modes), float32."""
        return None if self._idf is None else self._idf.copy()

    # ------------------------------------------------------------------ vocabulary
    def _as_list(self, vocabulary: Any) -> list[Any]:
        tokens = self._host_tokens(vocabulary, "vocabulary")
        if tokens.ndim != 1:
            raise ValueError(f"`vocabulary` must be 1-D. Received a vocabulary of shape {tokens.shape}.")
        return tokens.tolist()

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        """Sets the vocabulary (a sequence or a text file with one token per line) and IDF weights.

        The sequence may start with the special tokens exactly as :meth:`get_vocabulary` returns
        them, or leave them out. Keras's rules hold: no repeated tokens, the mask (and, when
        inverting, the OOV token) only at the start, at most ``max_tokens`` ids in all.

        Raises:
            ValueError: for an empty or invalid vocabulary or mismatched ``idf_weights``.

        Examples:
            >>> layer = jaxembed.StringLookup()
            >>> layer.set_vocabulary(["x", "y"])
            >>> layer(["y", "z"]).tolist()
            [2, 0]
        """
        if self.output_mode == "tf_idf" and idf_weights is None:
            raise ValueError("`idf_weights` must be set if output_mode is 'tf_idf'.")
        if self.output_mode != "tf_idf" and idf_weights is not None:
            raise ValueError(
                "`idf_weights` should only be set if output_mode is `'tf_idf'`. "
                f"Received: output_mode={self.output_mode} and idf_weights={idf_weights}"
            )
        if isinstance(vocabulary, (str, os.PathLike)):
            if self.output_mode == "tf_idf":
                raise ValueError("output_mode `'tf_idf'` does not support loading a vocabulary from file.")
            path = Path(vocabulary)
            if not path.is_file():
                raise ValueError(f"Vocabulary file {str(path)} does not exist.")
            lines = path.read_text(encoding="utf-8").splitlines()
            while lines and lines[-1] == "":
                lines.pop()
            vocabulary = [self._parse_line(line) for line in lines]
        tokens = self._as_list(vocabulary)
        if not tokens:
            raise ValueError(f"Cannot set an empty vocabulary. Received: vocabulary={tokens}")
        token_start = self._token_start_index()
        special = self.get_vocabulary()[:token_start]
        found_special = tokens[:token_start] == special
        words = tokens[token_start:] if found_special else tokens
        repeated = [token for token, count in collections.Counter(words).items() if count > 1]
        if repeated:
            raise ValueError(
                "The passed vocabulary has at least one repeated term. Please uniquify your dataset. "
                f"The repeated terms are: {repeated}"
            )
        for token_name, token, applies in (
            ("mask_token", self.mask_token, True),
            ("oov_token", self.oov_token, self.invert),
        ):
            if applies and token is not None and token in words:
                index = len(tokens) - 1 - tokens[::-1].index(token)
                raise ValueError(
                    f"Found reserved {'mask' if token_name == 'mask_token' else 'OOV'} token at unexpected "
                    "location in `vocabulary`. Note that passed `vocabulary` does not need to include the "
                    "OOV and mask tokens. Either remove all mask and OOV tokens, or include them only at the "
                    f"start of the vocabulary in precisely this order: {special}. "
                    f"Received: {token_name}={token!r} at vocabulary index {index}."
                )
        size = token_start + len(words)
        if self.max_tokens is not None and size > self.max_tokens:
            raise ValueError(
                "Attempted to set a vocabulary larger than the maximum vocab size. Received vocabulary size "
                f"is {size}; `max_tokens` is {self.max_tokens}."
            )
        idf = None
        if self.output_mode == "tf_idf":
            weights = np.asarray(idf_weights, dtype=np.float32)
            if weights.ndim != 1:
                raise ValueError(
                    f"TF-IDF data must be a 1-index array. Received: idf_weights of shape {weights.shape}"
                )
            if len(weights) != len(tokens):
                raise ValueError(
                    "`idf_weights` must be the same length as vocabulary. "
                    f"len(idf_weights) is {len(weights)}; len(vocabulary) is {len(tokens)}"
                )
            front = 0 if found_special else token_start
            idf = np.concatenate([np.full(front, np.average(weights), np.float32), weights])
            idf = self._pad_idf(idf)
        self._set(words, idf)
        self._has_input_vocabulary = True

    def _pad_idf(self, idf: np.ndarray) -> np.ndarray:
        if self.pad_to_max_tokens and self.max_tokens is not None:
            idf = np.concatenate([idf, np.zeros(max(0, self.max_tokens - len(idf)), np.float32)])
        return idf.astype(np.float32)

    def _set(self, words: list[Any], idf: np.ndarray | None) -> None:
        self._tokens = list(words)
        self._index = {
            token: position for position, token in enumerate(self._tokens, self._token_start_index())
        }
        self._idf = idf
        self._tables = {}
        if self._is_integer:
            keys = np.asarray(self._tokens, dtype=np.int64)
            order = np.argsort(keys, kind="stable")
            self._sorted_keys = keys[order]
            self._sorted_ids = order.astype(np.int64) + self._token_start_index()

    # ------------------------------------------------------------------ adapt
    def adapt(self, data: Any, steps: int | None = None) -> None:
        """Learns the vocabulary (and IDF weights in ``"tf_idf"``) from ``data``, as Keras does.

        ``data`` is an array-like of tokens (a 1-D array is a column: one document per token) or an
        iterable of batches (each 1-D batch is one document). Tokens are ordered by count and then
        by token, both descending; the mask and OOV tokens are left out; ``max_tokens`` caps the
        size.

        Raises:
            ValueError: after a fixed ``vocabulary``, for data with no tokens, or mixed types.

        Examples:
            >>> layer = jaxembed.StringLookup()
            >>> layer.adapt(["b", "a", "b", "c"])
            >>> layer.get_vocabulary()
            ['[UNK]', 'b', 'c', 'a']
        """
        if self._has_input_vocabulary:
            raise ValueError(
                f"Cannot adapt layer '{self.name or type(self).__name__}' after setting a static vocabulary "
                "via `vocabulary` argument or `set_vocabulary()` method."
            )
        steps = _checks.integer("steps", steps, minimum=1, allow_none=True)
        counts: collections.Counter[Any] = collections.Counter()
        document_counts: collections.Counter[Any] = collections.Counter()
        documents = 0
        if isinstance(data, (list, tuple, np.ndarray, jax.Array)) or np.isscalar(data):
            tokens = self._host_tokens(data, "adapt data")
            batches: Iterable[np.ndarray] = [tokens[:, None] if tokens.ndim == 1 else tokens]
        else:
            if not isinstance(data, Iterable):
                raise TypeError(
                    f"`adapt` expects an array-like or an iterable of batches. Received: {type(data)}."
                )
            batches = (self._host_tokens(batch, "adapt data") for batch in data)
        for step, batch in enumerate(batches):
            if steps is not None and step >= steps:
                break
            batch = batch.reshape(1, -1) if batch.ndim < 2 else batch
            counts.update(batch.reshape(-1).tolist())
            if self.output_mode == "tf_idf":
                if batch.ndim > 2:
                    raise ValueError(
                        f"`tf_idf` adapt data must be rank 1 or 2. Received shape {batch.shape}."
                    )
                for document in batch.tolist():
                    document_counts.update(set(document))
                documents += batch.shape[0]
        if not self.learn(counts, document_counts, documents):
            raise ValueError(
                f"`adapt` found no tokens to learn a vocabulary from (received empty data, or only the mask "
                f"and OOV tokens). Received: data={_checks.described(data)}."
            )

    def learn(
        self, counts: collections.Counter[Any], document_counts: collections.Counter[Any], documents: int
    ) -> bool:
        """The second half of :meth:`adapt`: the vocabulary (and IDF weights) from token counts.

        ``counts`` (changed in place: the special tokens are removed) holds each token's count,
        ``document_counts`` the number of documents it occurs in, out of ``documents`` (both used
        only in ``"tf_idf"``). Returns ``False``, setting nothing, when no token is left. For callers
        that count tokens themselves (``TextVectorizer``); ordering and IDF rules stay here.

        Examples:
            >>> layer = jaxembed.StringLookup()
            >>> layer.learn(collections.Counter(["b", "a", "b"]), collections.Counter(), 0)
            True
            >>> layer.get_vocabulary()
            ['[UNK]', 'b', 'a']
        """
        for special in (self.mask_token, self.oov_token):
            if special is not None:
                counts.pop(special, None)
        if not counts:
            return False
        ordered = sorted(counts.items(), key=lambda item: (item[1], item[0]), reverse=True)
        if self.max_tokens:
            ordered = ordered[: self.max_tokens - self._token_start_index()]
        words = [token for token, _ in ordered]
        idf = None
        if self.output_mode == "tf_idf":
            weights = np.array(
                [math.log(1 + documents / (1 + document_counts[token])) for token in words], np.float32
            )
            idf = np.concatenate([np.full(self._token_start_index(), weights.mean(), np.float32), weights])
            idf = self._pad_idf(idf)
        self._set(words, idf)
        return True

    # ------------------------------------------------------------------ call
    def _depth(self) -> int:
        if self.pad_to_max_tokens:
            return int(self.max_tokens)
        if not self._tokens:
            raise RuntimeError(
                f"When using `output_mode={self.output_mode}` and `pad_to_max_tokens=False`, you must set "
                "the layer's vocabulary before calling it. Either pass a `vocabulary` argument to the layer, "
                "or call `adapt` with some sample data."
            )
        return self.vocabulary_size()

    def __call__(self, inputs: Any) -> Any:
        """Looks ``inputs`` up; see the class docs for the output of each ``output_mode``."""
        if self.output_mode != "int":
            self._depth()
        if self._is_integer and isinstance(inputs, jax.Array | jax.core.Tracer):
            return self._call_jnp(inputs)
        if self.invert:
            return self._invert_host(self._host_ids(inputs))
        tokens = self._host_tokens(inputs, "inputs")
        ids = self._ids_host(tokens)
        if self.output_mode == "int":
            return jnp.asarray(ids.astype(_int_dtype()))
        return self._encode(jnp.asarray(ids.astype(np.int32)))

    def _ids_host(self, tokens: np.ndarray) -> np.ndarray:
        flat = tokens.reshape(-1)
        if self._is_integer:
            ids = np.full(flat.shape, -1, np.int64)
            if len(self._sorted_keys):
                position = np.clip(np.searchsorted(self._sorted_keys, flat), 0, len(self._sorted_keys) - 1)
                found = self._sorted_keys[position] == flat
                ids = np.where(found, self._sorted_ids[position], -1)
        else:
            get = self._index.get
            ids = np.fromiter((get(token, -1) for token in flat.tolist()), np.int64, count=flat.size)
        masked = np.zeros(flat.shape, bool) if self.mask_token is None else flat == self.mask_token
        missing = (ids == -1) & ~masked
        if missing.any():
            if self.num_oov_indices == 0:
                unknown = flat[missing][:10].tolist()
                raise ValueError(
                    "When `num_oov_indices=0` all inputs should be in vocabulary, found OOV values "
                    f"{unknown}, consider setting `num_oov_indices=1`."
                )
            ids[missing] = self._oov_ids_host(flat[missing])
        ids[masked] = 0 if self.output_mode == "int" else -1
        return ids.reshape(tokens.shape)

    def _oov_ids_host(self, unknown: np.ndarray) -> np.ndarray:
        start = self._oov_start_index()
        if self.num_oov_indices == 1:
            return np.full(unknown.shape, start, np.int64)
        if self._is_integer and self.oov_method == "floormod":
            return np.mod(unknown, self.num_oov_indices) + start
        return buckets(unknown.tolist(), self.num_oov_indices, self.salt) + start

    def _invert_host(self, tokens: np.ndarray) -> Any:
        if tokens.dtype == object or not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(
                f"With `invert=True`, {self._layer_name} expects integer ids. Received dtype {tokens.dtype}."
            )
        ids = tokens.astype(np.int64)
        vocabulary = self.get_vocabulary()
        start = self._token_start_index()
        table = np.array([*vocabulary[:start], *self._tokens], dtype=object)
        in_range = (ids >= start) & (ids < len(table))
        out = np.full(ids.shape, self.oov_token, dtype=object)
        out[in_range] = table[ids[in_range]]
        if self.mask_token is not None:
            out[ids == 0] = self.mask_token
        return self._inverted_output(out)

    def _inverted_output(self, out: np.ndarray) -> Any:
        raise NotImplementedError

    def _encode(self, ids: jax.Array) -> jax.Array | jsparse.BCOO:
        depth = self._depth()
        if self.output_mode == "tf_idf":
            counts = encode(ids, "count", depth, jnp.float32)
            out = counts * jnp.asarray(self._idf)
            return (
                jsparse.BCOO.fromdense(out, nse=max(1, min(int(ids.size), int(out.size))))
                if self.sparse
                else out
            )
        return encode(ids, self.output_mode, depth, _int_dtype(), sparse=self.sparse)

    def _call_jnp(self, inputs: jax.Array) -> Any:
        raise NotImplementedError

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """The output shape for inputs of ``input_shape`` (Keras's ``compute_output_shape``).

        Examples:
            >>> layer = jaxembed.StringLookup(vocabulary=["a", "b"], output_mode="one_hot")
            >>> layer.compute_output_shape((None, 4))
            (None, 4, 3)
        """
        depth = self.max_tokens if self.pad_to_max_tokens else self.vocabulary_size()
        return output_shape(tuple(input_shape), self.output_mode, int(depth))

    # ------------------------------------------------------------------ config and files
    def get_config(self) -> dict[str, Any]:
        """Keras's config keys and values (``vocabulary`` only when it was given as a sequence).

        Examples:
            >>> config = jaxembed.StringLookup(vocabulary=["a"]).get_config()
            >>> config["vocabulary"], config["num_oov_indices"], config["oov_token"]
            (['a'], 1, '[UNK]')
        """
        return {
            "name": self.name,
            "invert": self.invert,
            "max_tokens": self.max_tokens,
            "num_oov_indices": self.num_oov_indices,
            "oov_token": self.oov_token,
            "mask_token": self.mask_token,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "pad_to_max_tokens": self.pad_to_max_tokens,
            "idf_weights": self.input_idf_weights,
            "vocabulary": self.input_vocabulary,
            "vocabulary_size": self.vocabulary_size() if self._tokens else self._frozen_size,
            "oov_method": self.oov_method,
            "salt": self.salt,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> IndexLookup:
        """Builds a layer from :meth:`get_config`'s (or Keras's) config; unknown keys are errors.

        Examples:
            >>> layer = jaxembed.StringLookup(vocabulary=["a", "b"])
            >>> jaxembed.StringLookup.from_config(layer.get_config()).get_vocabulary()
            ['[UNK]', 'a', 'b']
        """
        if not isinstance(config, dict):
            raise TypeError(f"`config` must be a dict. Received: {_checks.described(config)}.")
        arguments = dict(config)
        unknown = sorted(set(arguments) - cls._config_keys() - set(_CONFIG_IGNORED) - {"kwargs"})
        if unknown:
            raise ValueError(f"Unrecognized keyword argument(s) in the {cls.__name__} config: {unknown}.")
        return cls(**arguments)

    @classmethod
    def _config_keys(cls) -> set[str]:
        """The config keys: the layer's constructor arguments."""
        return keyword_names(cls.__init__)

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the config, the vocabulary and the IDF weights to one JSON file, atomically.

        Examples:
            >>> import os, tempfile
            >>> path = os.path.join(tempfile.mkdtemp(), "lookup.json")
            >>> layer = jaxembed.StringLookup()
            >>> layer.adapt(["a", "b", "b"])
            >>> _ = layer.save(path)
            >>> jaxembed.StringLookup.load(path).get_vocabulary()
            ['[UNK]', 'b', 'a']
        """
        config = self.get_config()
        config.pop("vocabulary_size")
        document = {
            "format": self._format,
            "version": _FORMAT_VERSION,
            "config": config,
            "vocabulary": self.get_vocabulary(include_special_tokens=False),
            "idf_weights": None if self._idf is None else self._idf.tolist(),
        }
        return write_text(path, json.dumps(document, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> IndexLookup:
        """Reads a layer written by :meth:`save`, checking every field (see there for an example).

        Raises:
            FileNotFoundError: for a missing file.
            ValueError: for a file that is not a saved layer of this class, an unknown key, or bad values.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No saved {cls.__name__} at {str(path)!r}.")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{str(path)!r} is not a saved {cls.__name__} (not valid JSON: {error})."
            ) from None
        if not isinstance(document, dict) or document.get("format") != cls._format:
            raise ValueError(
                f"{str(path)!r} is not a saved {cls.__name__} (no format {cls._format!r} field)."
            )
        unknown = sorted(set(document) - {"format", "version", "config", "vocabulary", "idf_weights"})
        if unknown:
            raise ValueError(f"{str(path)!r} has unknown key {unknown[0]!r}; refusing to load it.")
        if document.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has format version {document.get('version')!r}; this jaxembed reads "
                f"version {_FORMAT_VERSION}."
            )
        config, words, idf = document.get("config"), document.get("vocabulary"), document.get("idf_weights")
        if not isinstance(config, dict) or not isinstance(words, list):
            raise ValueError(f"{str(path)!r}: `config` must be an object and `vocabulary` a list.")
        config = dict(config)
        config["vocabulary"], config["idf_weights"] = None, None
        layer = cls.from_config(config)
        if idf is not None and not (isinstance(idf, list) and all(type(w) in (int, float) for w in idf)):
            raise ValueError(f"{str(path)!r}: `idf_weights` must be a list of numbers.")
        if (idf is None) != (layer.output_mode != "tf_idf" or not words):
            raise ValueError(
                f"{str(path)!r}: `idf_weights` must be given exactly when output_mode is 'tf_idf'."
            )
        if words:
            special = layer.get_vocabulary()
            if idf is None:
                layer.set_vocabulary(special + words)
            else:
                if len(idf) != len(special) + len(words) and len(idf) != layer.max_tokens:
                    raise ValueError(f"{str(path)!r}: {len(idf)} idf_weights for {len(words)} tokens.")
                layer.set_vocabulary(special + words, idf[: len(special) + len(words)])
            layer._has_input_vocabulary = document["config"].get("vocabulary") is not None
        return layer

    def save_assets(self, dir_path: str | os.PathLike) -> None:
        """Writes ``vocabulary.txt`` (every id's token, one a line) into ``dir_path``, as Keras does.

        Like Keras, nothing is written when the vocabulary was passed to the constructor (it is in
        the config then). The write is atomic.

        Examples:
            >>> import tempfile
            >>> folder = tempfile.mkdtemp()
            >>> layer = jaxembed.StringLookup(mask_token="<mask>")
            >>> layer.set_vocabulary(["apple", "kiwi"])
            >>> layer.save_assets(folder)
            >>> again = jaxembed.StringLookup(mask_token="<mask>")
            >>> again.load_assets(folder)
            >>> again.get_vocabulary()
            ['<mask>', '[UNK]', 'apple', 'kiwi']
        """
        if self.input_vocabulary is not None:
            return
        tokens = [str(token) for token in self.get_vocabulary()]
        broken = [token for token in tokens if "\n" in token or "\r" in token]
        if broken:
            raise ValueError(f"Tokens with line breaks cannot be written one per line: {broken[:3]}.")
        write_text(Path(dir_path) / "vocabulary.txt", "\n".join(tokens))

    def load_assets(self, dir_path: str | os.PathLike) -> None:
        """Reads ``vocabulary.txt`` from ``dir_path`` (written by :meth:`save_assets` or Keras).

        Only that file is read; its lines are checked like any vocabulary.
        """
        if self.input_vocabulary is not None:
            return
        path = Path(dir_path) / "vocabulary.txt"
        if not path.is_file():
            raise FileNotFoundError(f"No vocabulary asset at {str(path)!r}.")
        self.set_vocabulary_asset(path.read_text(encoding="utf-8"))

    def set_vocabulary_asset(self, text: str, idf_weights: Any = None) -> None:
        """Sets the vocabulary from the text of a Keras ``vocabulary.txt`` asset (all ids' tokens).

        ``idf_weights`` (a ``"tf_idf"`` layer's stored variable, one per output column) may come
        with it; otherwise the layer's current weights are kept.
        """
        lines = text.splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        values = [self._parse_line(line) for line in lines]
        if self.output_mode == "tf_idf":
            weights = self._idf if idf_weights is None else np.asarray(idf_weights, np.float32)
            if weights is None:
                raise ValueError("A 'tf_idf' layer needs its idf_weights with the vocabulary asset.")
            if weights.ndim != 1 or len(weights) < len(values):
                raise ValueError(
                    f"{len(values)} vocabulary entries but idf_weights of shape {weights.shape}."
                )
            self.set_vocabulary(values, idf_weights=weights[: len(values)])
        else:
            self.set_vocabulary(values)
        self._has_input_vocabulary = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(output_mode={self.output_mode!r}, "
            f"num_oov_indices={self.num_oov_indices}, "
            f"mask_token={self.mask_token!r}, vocabulary_size={self.vocabulary_size()})"
        )


def keyword_names(function: Any) -> set[str]:
    """The keyword argument names of ``function`` (a constructor), for ``from_config``."""
    import inspect

    return {name for name in inspect.signature(function).parameters if name != "self"}


_SHARED_ARGUMENTS = keyword_names(IndexLookup.__init__) - {"config_only"}


def shared_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """What a lookup layer's constructor hands to :class:`IndexLookup`, from its ``locals()``: the
    shared arguments, plus its ``**kwargs`` (Keras's config-only keys, checked there)."""
    return {**{k: v for k, v in arguments.items() if k in _SHARED_ARGUMENTS}, **arguments["kwargs"]}


__all__: Sequence[str] = ["IndexLookup"]
