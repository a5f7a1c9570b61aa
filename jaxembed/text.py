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
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from jaxembed._files import write_text

__all__ = [
    "PAD_TOKEN",
    "OOV_TOKEN",
    "STANDARDIZE_MODES",
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
_FORMAT_VERSION = 2  # 2 adds the "sha256" of config and vocabulary; files of version 1 still load
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


def _check_standardize(standardize: Any) -> None:
    if standardize is None or callable(standardize) or standardize in STANDARDIZE_MODES:
        return
    raise ValueError(
        f"`standardize` must be one of {STANDARDIZE_MODES}, None or a callable str -> str. "
        f"Received: standardize={standardize!r}."
    )


def _check_optional_size(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be None or an integer >= {minimum}. Received: {name}={value!r}.")
    return int(value)


class TextVectorizer:
    """Strings → ``(batch, length)`` int32 ids, as Keras's ``TextVectorization(output_mode="int")``.

    Args:
        max_tokens: the vocabulary's largest size, *including* padding and
            ``"[UNK]"`` (so ``max_tokens - 2`` learned words); ``None`` keeps all.
        standardize: ``"lower_and_strip_punctuation"``, ``"lower"``,
            ``"strip_punctuation"``, ``None`` or a callable ``str -> str``
            (Keras hands a callable a tensor; here it gets one Python string).
        output_sequence_length: pad with 0 / truncate every row to this length;
            ``None`` pads to the longest text of each call.
        vocabulary: a vocabulary to start with (see :meth:`set_vocabulary`).

    Examples:
        >>> vectorizer = TextVectorizer(output_sequence_length=4, vocabulary=["good", "film"])
        >>> vectorizer(["Good film!", "A GOOD, good film."]).tolist()
        [[2, 3, 0, 0], [1, 2, 2, 3]]
        >>> vectorizer.vocabulary_size()
        4
    """

    def __init__(
        self,
        max_tokens: int | None = None,
        *,
        standardize: str | Callable[[str], str] | None = "lower_and_strip_punctuation",
        output_sequence_length: int | None = None,
        vocabulary: Sequence[str] | str | os.PathLike | None = None,
    ):
        _check_standardize(standardize)
        self.max_tokens = _check_optional_size("max_tokens", max_tokens, 3)
        self.standardize = standardize
        self.output_sequence_length = _check_optional_size(
            "output_sequence_length", output_sequence_length, 1
        )
        self._vocabulary: list[str] = [PAD_TOKEN, OOV_TOKEN]
        self._index: dict[str, int] = {}
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # ------------------------------------------------------------ the steps
    def standardize_text(self, text: str) -> str:
        """Step 1 on one string (what Keras's ``standardize`` does).

        Examples:
            >>> TextVectorizer().standardize_text("Don't PANIC, Émile!")
            'dont panic Émile'
        """
        if self.standardize == "lower_and_strip_punctuation":
            return text.lower().translate(_STRIP) if text.isascii() else text.translate(_LOWER_AND_STRIP)
        if self.standardize == "lower":
            return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
        if self.standardize == "strip_punctuation":
            return text.translate(_STRIP)
        if self.standardize is None:
            return text
        result = self.standardize(text)
        if not isinstance(result, str):
            raise TypeError(
                "The `standardize` callable must return a str. "
                f"Received {type(result).__name__} for {text!r}."
            )
        return result

    def tokenize(self, text: str) -> list[str]:
        """Steps 1 and 2: the tokens of one string, before the vocabulary lookup.

        Examples:
            >>> TextVectorizer().tokenize("  Hello,\\tworld\\u00a0again ")
            ['hello', 'world\\xa0again']
        """
        if not isinstance(text, str):
            raise TypeError(f"Texts must be str. Received {type(text).__name__}: {text!r}.")
        return _split(self.standardize_text(text))

    # ------------------------------------------------------------ vocabulary
    def adapt(self, texts: Iterable[str], steps: int | None = None) -> None:
        """Learns the vocabulary from ``texts``, in Keras's order (see the module docs).

        ``texts`` is an iterable of strings or of batches of them (lists or arrays, as a
        ``tf.data`` dataset or a generator yields; ``bytes`` are decoded as UTF-8); ``steps``
        reads only that many items, as Keras's ``adapt(data, steps=...)``.

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
        for step, item in enumerate(texts):
            if steps is not None and step >= steps:
                break
            batch = [item] if isinstance(item, (str, bytes)) else np.asarray(item, dtype=object).reshape(-1)
            for text in batch:
                counts.update(self.tokenize(text.decode("utf-8") if isinstance(text, bytes) else text))
        counts.pop(PAD_TOKEN, None)
        counts.pop(OOV_TOKEN, None)
        ordered = sorted(counts.items(), key=lambda item: (item[1], item[0]), reverse=True)
        if self.max_tokens is not None:
            ordered = ordered[: self.max_tokens - 2]
        self._set_words([token for token, _ in ordered])

    def _set_words(self, words: list[str]) -> None:
        self._vocabulary = [PAD_TOKEN, OOV_TOKEN, *words]
        self._index = {token: index for index, token in enumerate(words, start=2)}

    def set_vocabulary(self, vocabulary: Sequence[str] | str | os.PathLike) -> None:
        """Sets the vocabulary from a list of tokens or a text file with one token per line.

        The list may start with ``""`` and ``"[UNK]"`` (as :meth:`get_vocabulary`
        returns it) or leave them out; they are added. Like Keras, duplicate tokens,
        other empty tokens or a vocabulary larger than ``max_tokens`` are errors.

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
                self._check_and_set(vocabulary)
            except (ValueError, TypeError) as error:
                raise ValueError(f"The vocabulary file {str(source)!r} is not usable: {error}") from None
        else:
            self._check_and_set(vocabulary)

    @staticmethod
    def _read_vocabulary_file(path: Path) -> list[str]:
        if not path.is_file():
            raise FileNotFoundError(f"No vocabulary file at {str(path)!r}.")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"The vocabulary file {str(path)!r} is not UTF-8 text ({error}).") from None
        return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")

    def _check_and_set(self, vocabulary: Sequence[str]) -> None:
        words = [str(token) if isinstance(token, np.str_) else token for token in vocabulary]
        if words[:1] == [PAD_TOKEN]:
            words = words[1:]
        if words[:1] == [OOV_TOKEN]:
            words = words[1:]
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
        if self.max_tokens is not None and len(words) + 2 > self.max_tokens:
            raise ValueError(
                f"The vocabulary has {len(words) + 2} tokens (with '' and '[UNK]'), more than "
                f"max_tokens={self.max_tokens}."
            )
        self._set_words(words)

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        """The vocabulary, index by index: ``["", "[UNK]", most frequent word, ...]``.

        With ``include_special_tokens=False``, the learned words only (Keras's argument).

        Examples:
            >>> TextVectorizer(vocabulary=["x"]).get_vocabulary()
            ['', '[UNK]', 'x']
            >>> TextVectorizer(vocabulary=["x"]).get_vocabulary(include_special_tokens=False)
            ['x']
        """
        return list(self._vocabulary if include_special_tokens else self._vocabulary[2:])

    def vocabulary_size(self) -> int:
        """Number of ids, padding and ``"[UNK]"`` included (the Embedding's ``input_dim``).

        Examples:
            >>> TextVectorizer(vocabulary=["x", "y"]).vocabulary_size()
            4
        """
        return len(self._vocabulary)

    # ------------------------------------------------------------ vectorize
    def __call__(self, texts: Iterable[str]) -> np.ndarray:
        """Vectorizes ``texts`` into an ``(len(texts), length)`` int32 array (0 = padding).

        ``length`` is ``output_sequence_length``, or the longest text's token count
        (at least 1). Keras returns int64; the ids are the same.
        """
        if isinstance(texts, str):
            raise TypeError("Pass a list of strings (a batch), not one string: vectorizer([text]).")
        limit = self.output_sequence_length
        get = self._index.get
        rows = []
        for text in texts:
            tokens = self.tokenize(text)
            rows.append(list(map(get, tokens[:limit] if limit else tokens, repeat(1))))
        length = limit if limit else max([1, *map(len, rows)])
        out = np.zeros((len(rows), length), np.int32)
        for row, ids in enumerate(rows):
            out[row, : len(ids)] = ids
        return out

    # ------------------------------------------------------------ files
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (without the vocabulary), Keras's names.

        Examples:
            >>> TextVectorizer(100, output_sequence_length=8).get_config()["max_tokens"]
            100
        """
        return {
            "max_tokens": self.max_tokens,
            "standardize": self.standardize,
            "split": "whitespace",
            "output_mode": "int",
            "output_sequence_length": self.output_sequence_length,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Writes config and vocabulary to one JSON file atomically (temporary file, then rename).

        The file also records the SHA-256 of config and vocabulary, which :meth:`load`
        checks, so a damaged or edited file is refused rather than loaded differently.

        Raises:
            ValueError: when ``standardize`` is a callable (it cannot be saved).

        Examples:
            >>> import tempfile, os
            >>> path = os.path.join(tempfile.mkdtemp(), "vocab.json")
            >>> _ = TextVectorizer(output_sequence_length=3, vocabulary=["hi"]).save(path)
            >>> TextVectorizer.load(path)(["hi there"]).tolist()
            [[2, 1, 0]]
        """
        if callable(self.standardize):
            raise ValueError(
                "A TextVectorizer with a callable `standardize` cannot be saved; save the vocabulary "
                "with save_vocabulary() and rebuild the vectorizer with the same callable."
            )
        config, vocabulary = self.get_config(), self.get_vocabulary()
        document = {"format": _FORMAT, "version": _FORMAT_VERSION, "config": config}
        document["vocabulary"] = vocabulary
        document["sha256"] = _content_digest(config, vocabulary)
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
        if document.get("version") not in (1, _FORMAT_VERSION):
            raise ValueError(
                f"{str(path)!r} has format version {document.get('version')!r}; "
                f"this jaxembed reads versions 1 and {_FORMAT_VERSION}."
            )
        return cls._from_document(document, path)

    @classmethod
    def _from_document(cls, document: dict[str, Any], path: Path) -> TextVectorizer:
        where = f"{str(path)!r} is not a saved TextVectorizer"
        keys = {"format", "version", "config", "vocabulary"} | (
            {"sha256"} if document["version"] == 2 else set()
        )
        if set(document) != keys:
            raise ValueError(f"{where}: its keys are {sorted(document)}; expected exactly {sorted(keys)}.")
        config = document["config"]
        config_keys = {"max_tokens", "standardize", "split", "output_mode", "output_sequence_length"}
        if not isinstance(config, dict) or set(config) != config_keys:
            found = sorted(config) if isinstance(config, dict) else type(config).__name__
            raise ValueError(
                f"{where}: 'config' is {found}; expected a map of exactly {sorted(config_keys)}."
            )
        for key, wanted in (("split", "whitespace"), ("output_mode", "int")):
            if config[key] != wanted:
                raise ValueError(
                    f"{where}: config key {key!r} is {config[key]!r}; "
                    f"this TextVectorizer supports only {wanted!r}."
                )
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
        if "sha256" in keys and document["sha256"] != _content_digest(config, vocabulary):
            raise ValueError(
                f"{str(path)!r} is corrupted: the SHA-256 of its config and vocabulary does not match "
                "its 'sha256' key (the file was modified or damaged after saving)."
            )
        for key in ("max_tokens", "output_sequence_length"):
            value = config[key]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{where}: config key {key!r} is {value!r}; expected an integer or null.")
        try:
            return cls(
                config["max_tokens"],
                standardize=config["standardize"],
                output_sequence_length=config["output_sequence_length"],
                vocabulary=vocabulary,
            )
        except (ValueError, TypeError) as error:
            raise ValueError(f"{where}: {error}") from None

    def save_vocabulary(self, path: str | os.PathLike) -> Path:
        """Writes the learned words one per line (UTF-8), atomically, without ``""`` and ``"[UNK]"``.

        That is the layout Keras reads: TensorFlow's vocabulary-file reader
        refuses empty lines, and Keras adds the two reserved tokens itself.
        ``keras.layers.TextVectorization(vocabulary=path)`` and :meth:`set_vocabulary`
        read this file.

        Examples:
            >>> import tempfile, os
            >>> path = os.path.join(tempfile.mkdtemp(), "vocab.txt")
            >>> _ = TextVectorizer(vocabulary=["b", "a"]).save_vocabulary(path)
            >>> TextVectorizer(vocabulary=path).get_vocabulary()
            ['', '[UNK]', 'b', 'a']
        """
        broken = [token for token in self._vocabulary if "\n" in token or "\r" in token]
        if broken:
            raise ValueError(f"Tokens with line breaks cannot be written one per line: {broken[:3]}.")
        return write_text(path, "".join(f"{token}\n" for token in self._vocabulary[2:]))

    def __repr__(self) -> str:
        return (
            f"TextVectorizer(max_tokens={self.max_tokens}, standardize={self.standardize!r}, "
            f"output_sequence_length={self.output_sequence_length}, vocabulary_size={self.vocabulary_size()})"
        )


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
