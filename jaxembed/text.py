"""Text → padded integer ids, with the semantics of Keras's ``TextVectorization`` (``output_mode="int"``).

:class:`TextVectorizer` runs the same four steps as Keras, in plain Python and
NumPy (no TensorFlow):

1. **standardize** -- ``"lower_and_strip_punctuation"`` (the default) lowercases
   ASCII letters only (``tf.strings.lower`` leaves ``"É"`` alone) and deletes
   the 32 ASCII punctuation characters of Keras's regex
   ``[!"#$%&()\\*\\+,-\\./:;<=>?@\\[\\\\\\]^_`{|}~\\']``; also ``"lower"``,
   ``"strip_punctuation"``, ``None`` or a callable ``str -> str``;
2. **split** on runs of ASCII whitespace (space, ``\\t \\n \\v \\f \\r``), as
   ``tf.strings.split`` does -- a no-break space does not split a word;
3. **look up** each token: id 0 is padding (``""``), id 1 is out of vocabulary
   (``"[UNK]"``), the vocabulary starts at id 2;
4. **pad or truncate** to ``output_sequence_length`` (zeros at the end), or pad
   to the longest text of the batch.

:meth:`TextVectorizer.adapt` orders the vocabulary as Keras does: by count,
most frequent first, and ties by the token itself in *reverse* code-point order
(Keras sorts ``(count, token)`` ascending with ``np.lexsort`` and reverses it),
keeping ``max_tokens - 2`` tokens. ``tests/test_text.py`` checks vocabulary
and ids against ``keras.layers.TextVectorization``.

Examples:
    >>> vectorizer = TextVectorizer(max_tokens=6, output_sequence_length=5)
    >>> vectorizer.adapt(["The cat sat.", "The dog sat!", "the end"])
    >>> vectorizer.get_vocabulary()
    ['', '[UNK]', 'the', 'sat', 'end', 'dog']
    >>> vectorizer(["The cat ate the dog"]).tolist()
    [[2, 1, 1, 2, 5]]
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from jaxembed import _checks
from jaxembed._files import write_text
from jaxembed.preprocessing._checks import output_mode as _check_output_mode
from jaxembed.preprocessing._lookups import StringLookup

__all__ = [
    "PAD_TOKEN",
    "OOV_TOKEN",
    "STANDARDIZE_MODES",
    "SPLIT_MODES",
    "OUTPUT_MODES",
    "TextVectorizer",
    "pad_sequences",
]

PAD_TOKEN = ""
"""The token of id 0 (padding), Keras's ``mask_token`` for string vocabularies."""
OOV_TOKEN = "[UNK]"
"""The token of id 1, which every word outside the vocabulary maps to."""
STANDARDIZE_MODES: tuple[str, ...] = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
"""The named ``standardize`` modes (``None`` and callables are accepted too)."""

_FORMAT = "jaxembed-text-vectorizer"
_FORMAT_VERSION = 3  # 2 adds the "sha256" of config and vocabulary; 3 the split/ngrams/output-mode keys
# and "idf_weights"; files of versions 1 and 2 still load
# ASCII-only lowercasing (tf.strings.lower without an encoding) and Keras's punctuation set,
# which is exactly string.punctuation.
_ASCII_LOWER = {
    ord(upper): ord(lower) for upper, lower in zip(string.ascii_uppercase, string.ascii_lowercase)
}
_STRIP = dict.fromkeys(map(ord, string.punctuation))
_LOWER_AND_STRIP = {**_ASCII_LOWER, **_STRIP}
# tf.strings.split splits on ASCII whitespace only; Python's str.split() also splits on
# \x1c-\x1f, \x85, \xa0 and other Unicode spaces, so it is used only when none are present.
_PYTHON_ONLY_SPACE = re.compile(r"[\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_ASCII_SPACE = re.compile(r"[ \t\n\v\f\r]+")


def _content_digest(config: Any, vocabulary: Any) -> str:
    canonical = json.dumps([config, vocabulary], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _split(text: str) -> list[str]:
    if _PYTHON_ONLY_SPACE.search(text) is None:
        return text.split()
    return [token for token in _ASCII_SPACE.split(text) if token]


def _lower_and_strip(text: str) -> str:
    return text.lower().translate(_STRIP) if text.isascii() else text.translate(_LOWER_AND_STRIP)


def _lower(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _strip(text: str) -> str:
    return text.translate(_STRIP)


_STANDARDIZERS: dict[str | None, Callable[[str], str] | None] = {
    "lower_and_strip_punctuation": _lower_and_strip,
    "lower": _lower,
    "strip_punctuation": _strip,
    None: None,
}
_SPLITTERS: dict[str | None, Callable[[str], list[str]]] = {
    "whitespace": _split,
    "character": list,
    None: lambda text: [text],
}


SPLIT_MODES: tuple[str, ...] = ("whitespace", "character")
"""The named ``split`` modes (``None`` and callables are accepted too)."""
OUTPUT_MODES: tuple[str, ...] = ("int", "one_hot", "multi_hot", "count", "tf_idf")
"""Keras's output modes; all but ``"int"`` give one vector per text (a :class:`StringLookup`'s)."""


def _check_standardize(standardize: Any) -> None:
    if standardize is None or callable(standardize) or standardize in STANDARDIZE_MODES:
        return
    raise ValueError(
        f"`standardize` must be one of {STANDARDIZE_MODES}, None or a callable on a NumPy str array. "
        f"Received: standardize={standardize!r}."
    )


def _check_split(split: Any) -> None:
    if split is None or callable(split) or split in SPLIT_MODES:
        return
    raise ValueError(f"`split` must be one of {SPLIT_MODES}, None or a callable. Received: split={split!r}.")


def _check_ngrams(ngrams: Any) -> tuple[int, ...] | None:
    """Keras's rule: ``None``, an integer n (widths 1..n) or a tuple of integers (those widths)."""
    if ngrams is None:
        return None
    width = _checks.as_index(ngrams)
    if width is not None and width >= 1:
        return tuple(range(1, width + 1))
    widths = [_checks.as_index(n) for n in ngrams] if isinstance(ngrams, tuple) and ngrams else [None]
    if all(n is not None and n >= 1 for n in widths):
        return tuple(widths)
    raise ValueError(
        "`ngrams` must be None, a positive integer, or a tuple of positive integers. "
        f"Received: ngrams={ngrams!r} (of type {type(ngrams).__name__})."
    )


def _check_optional_size(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    number = _checks.as_index(value)
    if number is None or number < minimum:
        raise ValueError(f"`{name}` must be None or an integer >= {minimum}. Received: {name}={value!r}.")
    return number


def _ngrams(tokens: list[str], widths: tuple[int, ...]) -> list[str]:
    """``tf.strings.ngrams(tokens, widths, separator=" ")``: every width in turn, short texts give none."""
    out: list[str] = []
    for width in widths:
        if width == 1:
            out.extend(tokens)
        else:
            out.extend(" ".join(tokens[start : start + width]) for start in range(len(tokens) - width + 1))
    return out


def _as_texts(result: Any, count: int, what: str) -> list[str]:
    """A user callable's batch result as ``count`` Python strings, or a ``TypeError`` naming it."""
    values = result.tolist() if hasattr(result, "tolist") else result
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != count:
        raise TypeError(
            f"The `{what}` callable must return one entry per text ({count}). "
            f"Received {type(result).__name__}: {str(result)[:80]}."
        )
    values = [value.decode("utf-8") if isinstance(value, bytes) else value for value in values]
    if what == "standardize" and not all(isinstance(value, str) for value in values):
        raise TypeError(f"The `standardize` callable must return str entries. Received: {values[:3]!r}.")
    return values


class TextVectorizer:
    """Strings → ids or vectors, as Keras's ``TextVectorization``: standardize, split, ngrams, look up.

    ``output_mode="int"`` gives ``(batch, length)`` int32 ids (0 = padding, 1 = ``"[UNK]"``); the
    vector modes give one ``(batch, depth)`` row per text -- ``"multi_hot"`` (1 where a token
    occurs), ``"count"``, ``"tf_idf"`` (counts times IDF weights, float32) -- and ``"one_hot"``
    gives ``(batch, tokens, depth)``; these are a :class:`jaxembed.StringLookup`'s outputs (mask
    ``""``, one OOV id at 0, ``depth = vocabulary_size()``, or ``max_tokens`` with
    ``pad_to_max_tokens``), with ``sparse=True`` as ``jax.experimental.sparse.BCOO``.

    Args:
        max_tokens: the vocabulary's largest size, special tokens included (``""`` and
            ``"[UNK]"`` in ``"int"`` mode, ``"[UNK]"`` in the others); ``None`` keeps all.
        standardize: ``"lower_and_strip_punctuation"``, ``"lower"``,
            ``"strip_punctuation"``, ``None`` or a callable. As Keras does off TensorFlow, a
            callable receives the batch as a 1-D NumPy ``str`` array and returns the
            standardized texts (e.g. ``np.char.lower``).
        split: ``"whitespace"`` (runs of ASCII whitespace), ``"character"`` (Unicode code
            points), ``None`` (each text is one token) or a callable that receives the
            standardized batch (a 1-D NumPy ``str`` array) and returns a list of tokens per text.
        ngrams: ``None``, an integer n (n-grams of widths 1 to n) or a tuple of widths; the
            n-grams of a text are its tokens joined by one space, width by width.
        output_mode: ``"int"``, ``"one_hot"``, ``"multi_hot"``, ``"count"`` or ``"tf_idf"``
            (Keras's aliases ``"binary"`` and ``"tf-idf"`` too).
        output_sequence_length: ``"int"`` only: pad with 0 / truncate every row to this length;
            ``None`` pads to the longest text of each call.
        pad_to_max_tokens: vector modes: make every row ``max_tokens`` wide.
        vocabulary: a vocabulary to start with (see :meth:`set_vocabulary`).
        idf_weights: ``"tf_idf"`` with a ``vocabulary``: one weight per vocabulary token.
        sparse: vector modes: return ``BCOO`` arrays.
        ragged: only ``False``: JAX has no ragged arrays (Keras allows ``True`` only on
            TensorFlow and raises ``ValueError`` elsewhere, as here).

    Raises:
        ValueError: for a bad argument (named, with the value received) or a combination Keras
            refuses (``output_sequence_length`` or ``ragged`` outside ``"int"``, ``ngrams``
            without ``split``).

    Examples:
        >>> vectorizer = TextVectorizer(output_sequence_length=4, vocabulary=["good", "film"])
        >>> vectorizer(["Good film!", "A GOOD, good film."]).tolist()
        [[2, 3, 0, 0], [1, 2, 2, 3]]
        >>> vectorizer.vocabulary_size()
        4
        >>> counts = TextVectorizer(output_mode="count", ngrams=2, vocabulary=["good", "good film"])
        >>> counts(["Good film, good!"]).tolist()  # [UNK] (film, "film good"), good, "good film"
        [[2, 2, 1]]
    """

    def __init__(
        self,
        max_tokens: int | None = None,
        *,
        standardize: str | Callable[[np.ndarray], Any] | None = "lower_and_strip_punctuation",
        split: str | Callable[[np.ndarray], Any] | None = "whitespace",
        ngrams: int | tuple[int, ...] | None = None,
        output_mode: str = "int",
        output_sequence_length: int | None = None,
        pad_to_max_tokens: bool = False,
        vocabulary: Sequence[str] | str | os.PathLike | None = None,
        idf_weights: Sequence[float] | np.ndarray | None = None,
        sparse: bool = False,
        ragged: bool = False,
    ):
        _check_standardize(standardize)
        _check_split(split)
        self._ngram_widths = _check_ngrams(ngrams)
        self.max_tokens = _check_optional_size("max_tokens", max_tokens, 3)
        self.standardize = standardize
        self.split = split
        self.ngrams = ngrams
        self.output_sequence_length = _check_optional_size(
            "output_sequence_length", output_sequence_length, 1
        )
        mode = output_mode
        self.output_mode = _check_output_mode("TextVectorizer", output_mode, OUTPUT_MODES)
        if self.output_mode != "int" and self.output_sequence_length is not None:
            raise ValueError(
                "`output_sequence_length` must not be set if `output_mode` is not `'int'`. "
                f"Received: output_sequence_length={output_sequence_length} and output_mode={mode!r}."
            )
        self.ragged = _checks.boolean("ragged", ragged)
        if self.ragged:
            raise ValueError(
                "`ragged=True` is not supported: JAX has no ragged arrays (Keras allows it only on the "
                "TensorFlow backend). Use output_mode='int' with padding, or tokenize() per text. "
                "Received: ragged=True."
            )
        if self._ngram_widths is not None and split is None:
            raise ValueError(f"`ngrams` needs a `split`. Received: ngrams={ngrams!r} and split=None.")
        self.pad_to_max_tokens = _checks.boolean("pad_to_max_tokens", pad_to_max_tokens)
        self.sparse = _checks.boolean("sparse", sparse)
        self._lookup = self._new_lookup()
        self._input_vocabulary: list[str] | None = None
        self._input_idf_weights: list[float] | None = None
        if self.output_mode == "tf_idf" and vocabulary is not None and idf_weights is None:
            raise ValueError(
                "When specifying the `vocabulary` argument in TF-IDF output mode, the `idf_weights` "
                "argument must also be provided."
            )
        if idf_weights is not None and self.output_mode != "tf_idf":
            raise ValueError(
                "`idf_weights` should only be set if `output_mode` is `'tf_idf'`. "
                f"Received: output_mode={self.output_mode!r}."
            )
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
            if not isinstance(vocabulary, (str, os.PathLike)):
                self._input_vocabulary = self.get_vocabulary(include_special_tokens=False)
                self._input_idf_weights = None if idf_weights is None else np.asarray(idf_weights).tolist()

    def _new_lookup(self) -> StringLookup:
        # Keras's TextVectorization is exactly this StringLookup after its string steps.
        lookup = StringLookup(
            max_tokens=self.max_tokens,
            mask_token=PAD_TOKEN,
            oov_token=OOV_TOKEN,
            output_mode=self.output_mode,
            pad_to_max_tokens=self.pad_to_max_tokens,
            sparse=self.sparse,
        )
        lookup._set([], None)  # an empty vocabulary: every token is "[UNK]"
        return lookup

    # ------------------------------------------------------------ the steps
    def _standardize_all(self, texts: list[str]) -> list[str]:
        mode = self.standardize
        if callable(mode):
            return _as_texts(mode(np.array(texts, dtype=str).reshape(len(texts))), len(texts), "standardize")
        standardize = _STANDARDIZERS[mode]
        return texts if standardize is None else list(map(standardize, texts))

    def _token_rows(self, texts: Iterable[Any]) -> Iterator[list[str]]:
        """Steps 1-3 on a batch: each text's tokens (n-grams included), before the lookup.

        Without callables, text by text (an iterator: the rows of a large batch are never all held).
        """
        if isinstance(texts, str):
            raise TypeError("Pass a list of strings (a batch), not one string: vectorizer([text]).")
        return self._rows(texts.reshape(-1).tolist() if isinstance(texts, np.ndarray) else texts)

    def _rows(self, texts: Iterable[Any]) -> Iterator[list[str]]:
        widths = self._ngram_widths
        if callable(self.standardize) or callable(self.split):
            for row in self._callable_rows(list(texts)):
                yield row if widths is None else _ngrams(row, widths)
            return
        standardize = _STANDARDIZERS[self.standardize]
        split = _SPLITTERS[self.split]
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"Texts must be str. Received {type(text).__name__}: {text!r}.")
            tokens = split(text if standardize is None else standardize(text))
            yield tokens if widths is None else _ngrams(tokens, widths)

    def _callable_rows(self, texts: list[str]) -> list[list[str]]:
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"Texts must be str. Received {type(text).__name__}: {text!r}.")
        standardized = self._standardize_all(texts)
        if not callable(self.split):
            return list(map(_SPLITTERS[self.split], standardized))
        result = self.split(np.array(standardized, dtype=str).reshape(len(standardized)))
        rows = []
        for row in _as_texts(result, len(standardized), "split"):
            row = row.tolist() if hasattr(row, "tolist") else row
            if isinstance(row, str) or not all(isinstance(token, (str, bytes)) for token in row):
                raise TypeError(f"The `split` callable must return a list of str per text. Received {row!r}.")
            rows.append([t.decode("utf-8") if isinstance(t, bytes) else t for t in row])
        return rows

    def standardize_text(self, text: str) -> str:
        """Step 1 on one string (what Keras's ``standardize`` does).

        Examples:
            >>> TextVectorizer().standardize_text("Don't PANIC, Émile!")
            'dont panic Émile'
        """
        return self._standardize_all([text])[0]

    def tokenize(self, text: str) -> list[str]:
        """Steps 1-3 on one string: its tokens (and n-grams), before the vocabulary lookup.

        Examples:
            >>> TextVectorizer().tokenize("  Hello,\\tworld\\u00a0again ")
            ['hello', 'world\\xa0again']
            >>> TextVectorizer(ngrams=(1, 3)).tokenize("a b c")
            ['a', 'b', 'c', 'a b c']
        """
        if not isinstance(text, str):
            raise TypeError(f"Texts must be str. Received {type(text).__name__}: {text!r}.")
        return next(self._token_rows([text]))

    # ------------------------------------------------------------ vocabulary
    def adapt(self, texts: Iterable[Any], steps: int | None = None) -> None:
        """Learns the vocabulary (and, in ``"tf_idf"``, the IDF weights) from ``texts``, as Keras does.

        ``texts`` is an iterable of strings or of batches of them (lists or arrays, as a
        ``tf.data`` dataset or a generator yields; ``bytes`` are decoded as UTF-8); ``steps``
        reads only that many items, as Keras's ``adapt(data, steps=...)``. Tokens are ordered by
        count, most frequent first, ties by the token in reverse code-point order; each text is
        one document for the IDF weights (:class:`jaxembed.StringLookup`'s ``adapt``).

        Examples:
            >>> vectorizer = TextVectorizer()
            >>> vectorizer.adapt(["b a", "a c b", "d"])
            >>> vectorizer.get_vocabulary()  # a and b twice; c and d once, in reverse order
            ['', '[UNK]', 'b', 'a', 'd', 'c']
        """
        if isinstance(texts, str):
            raise TypeError("adapt expects an iterable of strings, not one string; wrap it in a list.")
        _check_optional_size("steps", steps, 1)
        counts: collections.Counter[str] = collections.Counter()
        document_counts: collections.Counter[str] = collections.Counter()
        documents = 0
        per_document = self.output_mode == "tf_idf"
        for step, item in enumerate(texts):
            if steps is not None and step >= steps:
                break
            batch = [item] if isinstance(item, (str, bytes)) else np.asarray(item, dtype=object).reshape(-1)
            rows = self._token_rows(
                [text.decode("utf-8") if isinstance(text, bytes) else text for text in batch]
            )
            for tokens in rows:
                counts.update(tokens)
                if per_document:
                    document_counts.update(set(tokens))
                    documents += 1
        # The tokens are counted here (they are str already); StringLookup orders them and weighs them.
        lookup = self._new_lookup()
        if not lookup.learn(counts, document_counts, documents):
            lookup = self._new_lookup()  # no tokens at all: an empty vocabulary, as before
        self._lookup = lookup
        self._input_vocabulary = self._input_idf_weights = None

    def set_vocabulary(
        self, vocabulary: Sequence[str] | str | os.PathLike, idf_weights: Sequence[float] | None = None
    ) -> None:
        """Sets the vocabulary from a list of tokens or a text file with one token per line.

        The list may start with the special tokens as :meth:`get_vocabulary` returns them
        (``""`` and ``"[UNK]"``) or leave them out; they are added. Like Keras, duplicate tokens,
        other empty tokens or a vocabulary larger than ``max_tokens`` are errors. In
        ``"tf_idf"`` mode ``idf_weights`` gives one weight per listed token (the OOV id gets
        their mean when it is not listed, as in Keras).

        Examples:
            >>> vectorizer = TextVectorizer()
            >>> vectorizer.set_vocabulary(["", "[UNK]", "yes", "no"])
            >>> vectorizer.get_vocabulary()
            ['', '[UNK]', 'yes', 'no']
        """
        if isinstance(vocabulary, (str, os.PathLike)):
            source = vocabulary
            vocabulary = self._read_vocabulary_file(Path(vocabulary))
            try:
                self._check_and_set(vocabulary, idf_weights)
            except (ValueError, TypeError) as error:
                raise ValueError(f"The vocabulary file {str(source)!r} is not usable: {error}") from None
        else:
            self._check_and_set(vocabulary, idf_weights)

    @staticmethod
    def _read_vocabulary_file(path: Path) -> list[str]:
        if not path.is_file():
            raise FileNotFoundError(f"No vocabulary file at {str(path)!r}.")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"The vocabulary file {str(path)!r} is not UTF-8 text ({error}).") from None
        return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")

    def _check_and_set(self, vocabulary: Sequence[str], idf_weights: Sequence[float] | None) -> None:
        words = [str(token) if isinstance(token, np.str_) else token for token in vocabulary]
        weights = None if idf_weights is None else list(np.asarray(idf_weights, np.float32).reshape(-1))
        oov_weight = None  # a listed "[UNK]" keeps its own IDF weight (else the lookup gives it the mean)
        for special in (PAD_TOKEN, OOV_TOKEN):
            if words[:1] == [special]:
                words = words[1:]
                if weights is not None and len(weights) == len(words) + 1:
                    oov_weight, weights = weights[0], weights[1:]
        for position, token in enumerate(words):
            if not isinstance(token, str):
                raise TypeError(f"Vocabulary tokens must be str. Received {token!r} at position {position}.")
            if token in (PAD_TOKEN, OOV_TOKEN):
                raise ValueError(
                    f"The reserved token {token!r} may only come first ('' then '[UNK]'); "
                    f"found it among the words at position {position}."
                )
        duplicates = [token for token, count in collections.Counter(words).items() if count > 1]
        if duplicates:
            raise ValueError(f"The vocabulary has repeated tokens: {duplicates[:5]}.")
        special = 2 if self.output_mode == "int" else 1
        if self.max_tokens is not None and len(words) + special > self.max_tokens:
            raise ValueError(
                f"The vocabulary has {len(words) + special} tokens (with the special tokens), more than "
                f"max_tokens={self.max_tokens}."
            )
        lookup = self._new_lookup()
        if words and oov_weight is not None and self.output_mode == "tf_idf":
            lookup.set_vocabulary([OOV_TOKEN, *words], [oov_weight, *weights])
        elif words:
            lookup.set_vocabulary(words, weights)
        self._lookup = lookup

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        """The vocabulary, index by index: ``["", "[UNK]", most frequent token, ...]``.

        In the vector modes there is no padding id: ``["[UNK]", ...]`` (Keras's layout). With
        ``include_special_tokens=False``, the learned tokens only.

        Examples:
            >>> TextVectorizer(vocabulary=["x"]).get_vocabulary()
            ['', '[UNK]', 'x']
            >>> TextVectorizer(vocabulary=["x"]).get_vocabulary(include_special_tokens=False)
            ['x']
            >>> TextVectorizer(vocabulary=["x"], output_mode="multi_hot").get_vocabulary()
            ['[UNK]', 'x']
        """
        return self._lookup.get_vocabulary(include_special_tokens)

    def vocabulary_size(self) -> int:
        """Number of ids, special tokens included (the Embedding's ``input_dim`` in ``"int"`` mode).

        Examples:
            >>> TextVectorizer(vocabulary=["x", "y"]).vocabulary_size()
            4
        """
        return self._lookup.vocabulary_size()

    @property
    def idf_weights(self) -> np.ndarray | None:
        """``"tf_idf"``: the weight of every output column (float32); ``None`` in the other modes."""
        return self._lookup.idf_weights

    # ------------------------------------------------------------ vectorize
    def __call__(self, texts: Iterable[str]) -> Any:
        """Vectorizes a batch of ``texts``.

        ``"int"``: an ``(len(texts), length)`` int32 NumPy array (0 = padding), ``length`` being
        ``output_sequence_length`` or the longest text's token count (at least 1); Keras returns
        int64, the ids are the same. Vector modes: the :class:`jaxembed.StringLookup` output
        for the padded tokens (a JAX array, or ``BCOO`` with ``sparse=True``).
        """
        rows = self._token_rows(texts)
        if self.output_mode != "int":
            rows = list(rows)
        if self.output_mode == "one_hot" and self.split is not None:
            # (batch, tokens, depth), TensorFlow's ragged one-hot padded with zero rows; without a
            # split each text is one token and the rows are (batch, depth), as Keras gives them.
            return self._lookup(_padded(rows, None)[..., None])
        if self.output_mode != "int":
            return self._lookup(_padded(rows, None))
        limit = self.output_sequence_length
        get = self._lookup._index.get
        if self.split in SPLIT_MODES:  # these never make an empty token
            ids = [list(map(get, tokens[:limit] if limit else tokens, repeat(1))) for tokens in rows]
        else:  # an empty token is the mask: id 0, as in Keras
            ids = [[0 if t == PAD_TOKEN else get(t, 1) for t in (r[:limit] if limit else r)] for r in rows]
        length = limit if limit else max([1, *map(len, ids)])
        out = np.zeros((len(ids), length), np.int32)
        for row, values in enumerate(ids):
            out[row, : len(values)] = values
        return out

    # ------------------------------------------------------------ files
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, Keras's names (``vocabulary``/``idf_weights`` when they were given).

        Examples:
            >>> TextVectorizer(100, output_sequence_length=8).get_config()["max_tokens"]
            100
            >>> config = TextVectorizer(ngrams=2, vocabulary=["a"]).get_config()
            >>> TextVectorizer.from_config(config).get_vocabulary()
            ['', '[UNK]', 'a']
        """
        return {
            "max_tokens": self.max_tokens,
            "standardize": self.standardize,
            "split": self.split,
            "ngrams": self.ngrams,
            "output_mode": self.output_mode,
            "output_sequence_length": self.output_sequence_length,
            "pad_to_max_tokens": self.pad_to_max_tokens,
            "sparse": self.sparse,
            "ragged": self.ragged,
            "vocabulary": self._input_vocabulary,
            "idf_weights": self._input_idf_weights,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextVectorizer:
        """Builds a vectorizer from :meth:`get_config`'s config or a Keras ``TextVectorization`` one.

        Keras's bookkeeping keys (``name``, ``trainable``, ``dtype``, ``vocabulary_size``,
        ``has_input_vocabulary``, ``encoding="utf-8"``) are accepted and ignored; a list
        ``ngrams`` (JSON) is read as a tuple; any other key is an error.

        The file also records the SHA-256 of config and vocabulary, which :meth:`load`
        checks, so a damaged or edited file is refused rather than loaded differently.

        Raises:
            ValueError: for an unknown key or another ``encoding``.
        """
        if not isinstance(config, dict):
            raise TypeError(f"`config` must be a dict. Received: {type(config).__name__}.")
        arguments = dict(config)
        for key in _KERAS_IGNORED:
            arguments.pop(key, None)
        encoding = arguments.pop("encoding", "utf-8")
        if encoding not in ("utf-8", "UTF-8"):
            raise ValueError(f"TextVectorizer reads UTF-8 text only. Received: encoding={encoding!r}.")
        unknown = sorted(set(arguments) - set(_CONFIG_KEYS))
        if unknown:
            raise ValueError(f"Unrecognized key(s) in the TextVectorizer config: {unknown}.")
        if isinstance(arguments.get("ngrams"), list):
            arguments["ngrams"] = tuple(arguments["ngrams"])
        max_tokens = arguments.pop("max_tokens", None)
        return cls(max_tokens, **arguments)

    def save(self, path: str | os.PathLike) -> Path:
        """Writes config, vocabulary (and IDF weights) to one JSON file atomically.

        Raises:
            ValueError: when ``standardize`` or ``split`` is a callable (it cannot be saved).

        Examples:
            >>> import tempfile, os
            >>> path = os.path.join(tempfile.mkdtemp(), "vocab.json")
            >>> _ = TextVectorizer(output_sequence_length=3, vocabulary=["hi"]).save(path)
            >>> TextVectorizer.load(path)(["hi there"]).tolist()
            [[2, 1, 0]]
        """
        if callable(self.standardize) or callable(self.split):
            raise ValueError(
                "A TextVectorizer with a callable `standardize` or `split` cannot be saved; save the "
                "vocabulary with save_vocabulary() and rebuild the vectorizer with the same callable."
            )
        config = self.get_config()
        del config["vocabulary"], config["idf_weights"]  # saved below, with the special tokens
        if isinstance(config["ngrams"], tuple):
            config["ngrams"] = list(config["ngrams"])
        vocabulary = [PAD_TOKEN, OOV_TOKEN, *self.get_vocabulary(include_special_tokens=False)]
        document = {"format": _FORMAT, "version": _FORMAT_VERSION, "config": config}
        document["vocabulary"] = vocabulary
        content: Any = vocabulary
        if self.output_mode == "tf_idf":
            idf = self.idf_weights  # the OOV id's weight, then one per word
            document["idf_weights"] = None if idf is None else idf[: self.vocabulary_size()].tolist()
            content = {"vocabulary": vocabulary, "idf_weights": document["idf_weights"]}
        document["sha256"] = _content_digest(config, content)
        return write_text(path, json.dumps(document, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> TextVectorizer:
        """Reads a vectorizer written by :meth:`save`; see there for an example.

        Raises:
            FileNotFoundError: for a missing file.
            ValueError: for a file that is not exactly what :meth:`save` writes: another
                format or version, a missing, extra or ill-typed key (named), an
                ``output_mode`` or ``split`` this class does not support, or a checksum
                that does not match (the file was damaged or edited).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No saved TextVectorizer at {str(path)!r}.")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{str(path)!r} is not a saved TextVectorizer (not valid JSON: {error})."
            ) from None
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise ValueError(f"{str(path)!r} is not a saved TextVectorizer (no format {_FORMAT!r} field).")
        if document.get("version") not in (1, 2, _FORMAT_VERSION):
            raise ValueError(
                f"{str(path)!r} has format version {document.get('version')!r}; "
                f"this jaxembed reads versions 1 to {_FORMAT_VERSION}."
            )
        return cls._from_document(document, path)

    @classmethod
    def _from_document(cls, document: dict[str, Any], path: Path) -> TextVectorizer:
        where = f"{str(path)!r} is not a saved TextVectorizer"
        version = document["version"]
        config = document["config"]
        tf_idf = version == 3 and isinstance(config, dict) and config.get("output_mode") == "tf_idf"
        keys = {"format", "version", "config", "vocabulary"} | ({"sha256"} if version >= 2 else set())
        keys |= {"idf_weights"} if tf_idf else set()
        if set(document) != keys:
            raise ValueError(f"{where}: its keys are {sorted(document)}; expected exactly {sorted(keys)}.")
        config_keys = {"max_tokens", "standardize", "split", "output_mode", "output_sequence_length"}
        if version == 3:
            config_keys |= {"ngrams", "pad_to_max_tokens", "sparse", "ragged"}
        if not isinstance(config, dict) or set(config) != config_keys:
            found = sorted(config) if isinstance(config, dict) else type(config).__name__
            raise ValueError(
                f"{where}: 'config' is {found}; expected a map of exactly {sorted(config_keys)}."
            )
        for key, allowed in (("split", (*SPLIT_MODES, None)), ("output_mode", OUTPUT_MODES)):
            if config[key] not in allowed:
                raise ValueError(
                    f"{where}: config key {key!r} is {config[key]!r}; expected one of {allowed}."
                )
        for key in ("pad_to_max_tokens", "sparse", "ragged"):
            if key in config and not isinstance(config[key], bool):
                raise ValueError(f"{where}: config key {key!r} is {config[key]!r}; expected true or false.")
        ngrams = config.get("ngrams")
        if ngrams is not None and not (
            (isinstance(ngrams, int) and not isinstance(ngrams, bool))
            or (isinstance(ngrams, list) and all(type(n) is int for n in ngrams))
        ):
            raise ValueError(
                f"{where}: config key 'ngrams' is {ngrams!r}; expected null, an integer or a list."
            )
        idf = document.get("idf_weights")
        if idf is not None and not (isinstance(idf, list) and all(type(w) in (int, float) for w in idf)):
            raise ValueError(f"{where}: 'idf_weights' must be a list of numbers or null.")
        if config["standardize"] is not None and config["standardize"] not in STANDARDIZE_MODES:
            raise ValueError(
                f"{where}: config key 'standardize' is {config['standardize']!r}; expected one of "
                f"{STANDARDIZE_MODES} or null."
            )
        vocabulary = document["vocabulary"]
        # A string here would be read as a file path by set_vocabulary: only a list is a saved vocabulary.
        if not isinstance(vocabulary, list) or not all(isinstance(token, str) for token in vocabulary):
            raise ValueError(
                f"{where}: 'vocabulary' must be a list of strings (the tokens); "
                f"got {type(vocabulary).__name__}."
            )
        if vocabulary[:2] != [PAD_TOKEN, OOV_TOKEN]:
            raise ValueError(
                f"{where}: 'vocabulary' must start with {PAD_TOKEN!r} and {OOV_TOKEN!r}, as save() "
                f"writes it; it starts with {vocabulary[:2]!r}."
            )
        content = {"vocabulary": vocabulary, "idf_weights": idf} if tf_idf else vocabulary
        if "sha256" in keys and document["sha256"] != _content_digest(config, content):
            raise ValueError(
                f"{str(path)!r} is corrupted: the SHA-256 of its config and vocabulary does not match "
                "its 'sha256' key (the file was modified or damaged after saving)."
            )
        for key in ("max_tokens", "output_sequence_length"):
            value = config[key]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{where}: config key {key!r} is {value!r}; expected an integer or null.")
        arguments = dict(config)
        if isinstance(arguments.get("ngrams"), list):
            arguments["ngrams"] = tuple(arguments["ngrams"])
        words = vocabulary[2:]
        try:
            vectorizer = cls(arguments.pop("max_tokens"), **arguments)
            if words:
                vectorizer.set_vocabulary(words if idf is None else [OOV_TOKEN, *words], idf)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{where}: {error}") from None
        return vectorizer

    def save_vocabulary(self, path: str | os.PathLike) -> Path:
        """Writes the learned tokens one per line (UTF-8), atomically, without the special tokens.

        That is the layout Keras reads: TensorFlow's vocabulary-file reader
        refuses empty lines, and Keras adds the reserved tokens itself.
        ``keras.layers.TextVectorization(vocabulary=path)`` and :meth:`set_vocabulary`
        read this file.

        Examples:
            >>> import tempfile, os
            >>> path = os.path.join(tempfile.mkdtemp(), "vocab.txt")
            >>> _ = TextVectorizer(vocabulary=["b", "a"]).save_vocabulary(path)
            >>> TextVectorizer(vocabulary=path).get_vocabulary()
            ['', '[UNK]', 'b', 'a']
        """
        words = self.get_vocabulary(include_special_tokens=False)
        broken = [token for token in words if "\n" in token or "\r" in token]
        if broken:
            raise ValueError(f"Tokens with line breaks cannot be written one per line: {broken[:3]}.")
        return write_text(path, "".join(f"{token}\n" for token in words))

    def __repr__(self) -> str:
        return (
            f"TextVectorizer(max_tokens={self.max_tokens}, standardize={self.standardize!r}, "
            f"split={self.split!r}, ngrams={self.ngrams!r}, output_mode={self.output_mode!r}, "
            f"output_sequence_length={self.output_sequence_length}, vocabulary_size={self.vocabulary_size()})"
        )


_KERAS_IGNORED = ("name", "trainable", "dtype", "vocabulary_size", "has_input_vocabulary")
_CONFIG_KEYS = (
    "max_tokens",
    "standardize",
    "split",
    "ngrams",
    "output_mode",
    "output_sequence_length",
    "pad_to_max_tokens",
    "vocabulary",
    "idf_weights",
    "sparse",
    "ragged",
)


def _padded(rows: list[list[str]], length: int | None) -> np.ndarray:
    """Token rows as one ``(len(rows), width)`` object array, padded with ``""`` (the mask)."""
    width = length if length is not None else max([1, *map(len, rows)])
    out = np.full((len(rows), width), PAD_TOKEN, dtype=object)
    for row, tokens in enumerate(rows):
        out[row, : len(tokens)] = tokens[:width]
    return out


def pad_sequences(
    sequences: Sequence[Sequence[int]],
    maxlen: int | None = None,
    *,
    padding: str = "pre",
    truncating: str = "pre",
    value: int = 0,
) -> np.ndarray:
    """Lists of ids → one ``(len(sequences), maxlen)`` int32 array, as ``keras.utils.pad_sequences``.

    Keras's defaults pad and truncate at the *front* (``"pre"``): a long review
    keeps its last ``maxlen`` ids. Use ``padding="post"`` for zeros at the end.

    Args:
        sequences: lists (or arrays) of integer ids, e.g. from :func:`jaxembed.datasets.load_imdb`.
        maxlen: the output length (default: the longest sequence).
        padding: ``"pre"`` or ``"post"``: where the padding goes.
        truncating: ``"pre"`` or ``"post"``: which end of a long sequence is cut.
        value: the padding id.

    Examples:
        >>> pad_sequences([[1, 2, 3], [4]], maxlen=2).tolist()
        [[2, 3], [0, 4]]
        >>> pad_sequences([[1, 2, 3], [4]], maxlen=2, padding="post", truncating="post").tolist()
        [[1, 2], [4, 0]]
    """
    for name, where in (("padding", padding), ("truncating", truncating)):
        if where not in ("pre", "post"):
            raise ValueError(f"`{name}` must be 'pre' or 'post'. Received: {name}={where!r}.")
    maxlen = _check_optional_size("maxlen", maxlen, 0)
    lengths = [len(sequence) for sequence in sequences]
    length = maxlen if maxlen is not None else max(lengths, default=0)
    out = np.full((len(lengths), length), value, np.int32)
    if length == 0:
        return out
    for row, sequence in enumerate(sequences):
        kept = sequence[-length:] if truncating == "pre" else sequence[:length]
        if len(kept):
            if padding == "post":
                out[row, : len(kept)] = kept
            else:
                out[row, length - len(kept) :] = kept
    return out
