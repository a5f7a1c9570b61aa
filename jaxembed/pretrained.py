"""Pretrained word vectors: GloVe, word2vec and fastText files → tables aligned to a vocabulary.

Two steps, as in Keras's "Using pre-trained word embeddings" guide:

* :func:`load_vectors` streams a vector file -- GloVe text (no header), word2vec / fastText
  text (``.vec``, a ``"count dim"`` header) or word2vec binary -- and keeps only what you ask
  for (the first ``limit`` words, or only the words of ``vocabulary``), so a 5 GB file is read
  line by line and never held whole.
* :func:`embedding_matrix` builds the ``(input_dim, output_dim)`` table for a
  :class:`jaxembed.TextVectorizer` (or ``StringLookup``) vocabulary: one row per vocabulary
  entry, the mask and OOV rows zero, words without a vector zero or random, with the hits and
  misses counted. Pass it as ``Embedding(..., weights=matrix, trainable=False)`` to keep it
  fixed, or leave the layer trainable to fine-tune it.

Files are hostile until checked: a ragged row, a header whose counts disagree with the file,
text that is not UTF-8, a value that is not a number (or is NaN or infinite) raise
:class:`VectorFileError` naming the line (text) or the entry (binary).

Examples:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "glove.txt"
    >>> _ = path.write_text("the 0.5 0.25\\ncat 1 2\\ndog 3 4\\n")
    >>> words, vectors = load_vectors(path)
    >>> words, vectors.dtype.name, vectors.shape
    (['the', 'cat', 'dog'], 'float32', (3, 2))
    >>> table = embedding_matrix((words, vectors), ["", "[UNK]", "cat", "mouse"])
    >>> table.matrix.tolist(), table.misses
    ([[0.0, 0.0], [0.0, 0.0], [1.0, 2.0], [0.0, 0.0]], ['mouse'])
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple, get_args

import numpy as np

from jaxembed._checks import one_of, positive_int

__all__ = [
    "VectorFormat",
    "VECTOR_FORMATS",
    "CasePolicy",
    "VectorFileError",
    "Vectors",
    "EmbeddingMatrix",
    "detect_format",
    "load_vectors",
    "embedding_matrix",
]

VectorFormat = Literal["auto", "glove", "word2vec", "word2vec-binary"]
"""``"glove"``: text, no header; ``"word2vec"``: text with a ``"count dim"`` header (fastText ``.vec``
too); ``"word2vec-binary"``: that header, then each word, a space and ``dim`` little-endian float32."""
VECTOR_FORMATS: tuple[str, ...] = get_args(VectorFormat)
"""The valid values of ``format``."""
CasePolicy = Literal["exact", "lower", "exact_then_lower"]
"""How :func:`embedding_matrix` matches a vocabulary word to the file's words."""

_CHUNK = 1 << 20


class VectorFileError(ValueError):
    """A vector file is malformed: ragged rows, wrong header counts, bad text or bad numbers."""


class Vectors(NamedTuple):
    """Words and their vectors, in file order.

    Attributes:
        words: the words kept (the first occurrence of a repeated word).
        vectors: ``(len(words), dim)`` float32, row ``i`` the vector of ``words[i]``.

    Examples:
        >>> vectors = Vectors(["cat", "dog"], np.array([[1, 1], [1, 2]], np.float32))
        >>> vectors.word_index(), vectors.dim
        ({'cat': 0, 'dog': 1}, 2)
    """

    words: list[str]
    vectors: np.ndarray

    @property
    def dim(self) -> int:
        """The vector size."""
        return int(self.vectors.shape[1])

    def word_index(self) -> dict[str, int]:
        """Word → row."""
        return {word: i for i, word in enumerate(self.words)}


class EmbeddingMatrix(NamedTuple):
    """The output of :func:`embedding_matrix`.

    Attributes:
        matrix: ``(len(vocabulary), dim)`` float32: the table for ``Embedding(weights=...)``.
        hits: vocabulary words that got a pretrained vector.
        misses: vocabulary words without one (their rows are zero or random); the mask and
            OOV tokens are in neither list.

    Examples:
        >>> result = embedding_matrix((["cat"], np.ones((1, 2), np.float32)), ["", "[UNK]", "cat", "emu"])
        >>> result.hits, result.misses, f"{result.hit_rate:.2f}"
        (['cat'], ['emu'], '0.50')
    """

    matrix: np.ndarray
    hits: list[str]
    misses: list[str]

    @property
    def hit_rate(self) -> float:
        """The share of the vocabulary's words (mask and OOV left out) found in the vectors."""
        total = len(self.hits) + len(self.misses)
        return len(self.hits) / total if total else 0.0


# ------------------------------------------------------------------ format detection


def _header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(part.isdigit() for part in parts):
        return int(parts[0]), int(parts[1])
    return None


def _looks_like_text_row(line: bytes, dim: int) -> bool:
    try:
        parts = line.decode("utf-8").rstrip().split(" ")
        [float(value) for value in parts[-dim:]]
    except (UnicodeDecodeError, ValueError):
        return False
    return len(parts) >= dim + 1


def detect_format(path: str | os.PathLike) -> str:
    """``"glove"``, ``"word2vec"`` or ``"word2vec-binary"``, from the first lines of the file.

    A first line of two integers is a word2vec header; the file is then text if the next line
    is UTF-8 holding a word and ``dim`` numbers, binary otherwise. Without a header it is GloVe
    text.

    Raises:
        VectorFileError: an empty file.

    Examples:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.vec"
        >>> _ = path.write_text("2 3\\ncat 1 2 3\\ndog 4 5 6\\n")
        >>> detect_format(path)
        'word2vec'
    """
    with open(path, "rb") as file:
        first = file.readline()
        if not first.strip():
            raise VectorFileError(
                f"{os.fspath(path)!r} is empty (line 1 has nothing); expected word vectors."
            )
        header = _header(first)
        if header is None:
            return "glove"
        second = file.readline()
        if not second or _looks_like_text_row(second, header[1]):
            return "word2vec"
        return "word2vec-binary"


# ------------------------------------------------------------------ readers


def _check_values(values: np.ndarray, where: str, word: str) -> None:
    if not np.all(np.isfinite(values)):
        bad = values[~np.isfinite(values)][0]
        raise VectorFileError(f"{where}: the vector of {word!r} has a non-finite value ({bad}).")


def _text_entries(
    file: BinaryIO, path: str, dim: int | None, first_line: int, encoding: str
) -> Iterator[tuple[str, Sequence[str] | None, str]]:
    """Yields ``(word, value strings, where)`` per non-blank line; ``dim`` None: from the first row."""
    for number, raw in enumerate(file, start=first_line):
        where = f"{path!r} line {number}"
        try:
            line = raw.decode(encoding).rstrip()
        except UnicodeDecodeError as error:
            raise VectorFileError(f"{where} is not {encoding} text ({error}).") from None
        if not line:
            continue
        parts = line.split(" ")
        if dim is None:
            dim = len(parts) - 1
            if dim < 1:
                raise VectorFileError(f"{where} has a word but no numbers; expected 'word v1 v2 ...'.")
        if len(parts) < dim + 1 or (len(parts) > dim + 1 and _all_numbers(parts[1:-dim])):
            raise VectorFileError(
                f"{where} has {len(parts) - 1} values after the word, expected {dim} "
                f"(ragged row: every row needs the same number of values)."
            )
        # GloVe 840B has a few words containing spaces: the word is everything before the last dim.
        yield " ".join(parts[:-dim]), parts[-dim:], where


def _all_numbers(parts: Sequence[str]) -> bool:
    try:
        [float(part) for part in parts]
    except ValueError:
        return False
    return True


def _to_vector(values: Sequence[str], where: str, word: str) -> np.ndarray:
    try:
        vector = np.array([np.float32(value) for value in values], np.float32)
    except ValueError:
        bad = next(value for value in values if not _all_numbers([value]))
        raise VectorFileError(f"{where}: {bad!r} in the vector of {word!r} is not a number.") from None
    _check_values(vector, where, word)
    return vector


def _binary_entries(
    file: BinaryIO, path: str, count: int, dim: int, encoding: str
) -> Iterator[tuple[str, bytes, str]]:
    """Yields ``(word, raw float32 bytes, where)`` for each of the ``count`` entries."""
    size = 4 * dim
    buffer = b""
    offset = 0
    for entry in range(1, count + 1):
        where = f"{path!r} entry {entry} of {count}"
        while True:
            space = buffer.find(b" ", offset)
            if space >= 0 and len(buffer) - space - 1 >= size:
                break
            more = file.read(_CHUNK)
            if not more:
                raise VectorFileError(
                    f"{where}: the file ends inside this entry; the header promised {count} vectors "
                    f"of {dim} float32 (truncated, or not a word2vec binary file)."
                )
            buffer, offset = buffer[offset:] + more, 0
        raw_word = buffer[offset:space].lstrip(b"\n")
        try:
            word = raw_word.decode(encoding)
        except UnicodeDecodeError as error:
            raise VectorFileError(
                f"{where}: the word {raw_word[:40]!r} is not {encoding} ({error})."
            ) from None
        yield word, buffer[space + 1 : space + 1 + size], where
        offset = space + 1 + size
    # Only line breaks may follow the last entry: more data means the header's count is too small.
    rest = buffer[offset:] + file.read(_CHUNK)
    if rest.strip(b"\n\r "):
        raise VectorFileError(
            f"{path!r} has more data after the {count} vectors its header (line 1) announces; "
            "fix the header's count."
        )


def load_vectors(
    path: str | os.PathLike,
    format: VectorFormat = "auto",
    *,
    limit: int | None = None,
    vocabulary: Iterable[str] | None = None,
    encoding: str = "utf-8",
) -> Vectors:
    """Reads word vectors from a GloVe, word2vec/fastText text or word2vec binary file.

    The file is streamed: only the kept vectors are held in memory, and reading stops after
    ``limit`` words or once every ``vocabulary`` word was found. A repeated word keeps its first
    vector (as gensim does). Words and vectors are those ``gensim``'s
    ``KeyedVectors.load_word2vec_format`` reads from the same file (``no_header=True`` for
    GloVe), in float32.

    Args:
        path: the vector file.
        format: one of :data:`VECTOR_FORMATS`; ``"auto"`` uses :func:`detect_format`.
        limit: keep at most the first ``limit`` words of the file (None: all).
        vocabulary: keep only these words (exact match; see :func:`embedding_matrix` for case).
        encoding: the text encoding of the words (and of the numbers, for text files).

    Returns:
        :class:`Vectors` ``(words, vectors)``.

    Raises:
        VectorFileError: a malformed file, naming the line (or binary entry): a row with a
            different number of values, a header whose count disagrees with the rows, text
            that is not ``encoding``, a value that is not a number, NaN or infinite.
        ValueError: a bad ``format`` or ``limit``.

    Examples:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "vectors.vec"
        >>> _ = path.write_text("3 2\\nthe 0.5 0.25\\ncat 1 2\\ndog 3 4\\n")
        >>> load_vectors(path, limit=2).words
        ['the', 'cat']
        >>> load_vectors(path, vocabulary={"dog", "emu"}).vectors.tolist()
        [[3.0, 4.0]]
    """
    one_of("format", format, VECTOR_FORMATS)
    limit = positive_int("limit", limit, allow_none=True)
    wanted = None if vocabulary is None else set(vocabulary)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No vector file at {str(path)!r}.")
    kind = detect_format(path) if format == "auto" else format
    name = str(path)
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[str] = set()

    def done() -> bool:
        return (limit is not None and len(words) >= limit) or (
            wanted is not None and len(seen & wanted) == len(wanted)
        )

    with open(path, "rb") as file:
        count = dim = None
        first_line = 1
        if kind != "glove":
            raw = file.readline()
            header = _header(raw)
            if header is None:
                raise VectorFileError(
                    f"{name!r} line 1 must be the word2vec header 'count dim' (two positive integers). "
                    f"Received {raw[:60]!r}. For GloVe files (no header) use format='glove'."
                )
            count, dim = header
            if dim < 1:
                raise VectorFileError(f"{name!r} line 1: the header's dim must be positive. Received {dim}.")
            first_line = 2
        if kind == "word2vec-binary":
            entries = _binary_entries(file, name, count, dim, encoding)
            for number, (word, raw_vector, where) in enumerate(entries, start=1):
                if done():
                    break
                if word in seen or (wanted is not None and word not in wanted):
                    seen.add(word)
                    continue
                seen.add(word)
                vector = np.frombuffer(raw_vector, "<f4").astype(np.float32)
                _check_values(vector, where, word)
                words.append(word)
                rows.append(vector)
        else:
            found = 0
            for word, values, where in _text_entries(file, name, dim, first_line, encoding):
                found += 1
                if count is not None and found > count:
                    raise VectorFileError(
                        f"{where} is vector {found}, but the header (line 1) says the file has {count}. "
                        "Fix the header's count."
                    )
                if dim is None:
                    dim = len(values)
                if word in seen or (wanted is not None and word not in wanted):
                    seen.add(word)
                    continue
                seen.add(word)
                words.append(word)
                rows.append(_to_vector(values, where, word))
                if done():
                    break
            else:
                if count is not None and found < count:
                    raise VectorFileError(
                        f"{name!r} ends after {found} vectors (line {first_line + found - 1} or later), "
                        f"but the header (line 1) says {count}. The file is truncated or the header is wrong."
                    )
                if dim is None:
                    raise VectorFileError(f"{name!r} has no vectors.")
    vectors = np.stack(rows) if rows else np.zeros((0, dim or 0), np.float32)
    return Vectors(words, vectors)


# ------------------------------------------------------------------ the table


def embedding_matrix(
    vectors: Vectors | tuple[Sequence[str], np.ndarray],
    vocabulary: Sequence[str],
    *,
    mask_token: str | None = "",
    oov_token: str | None = "[UNK]",
    case: CasePolicy = "exact",
    missing: Literal["zeros", "random"] = "zeros",
    seed: int = 0,
) -> EmbeddingMatrix:
    """The ``(len(vocabulary), dim)`` table whose row ``i`` is the pretrained vector of ``vocabulary[i]``.

    ``vocabulary`` is a lookup's vocabulary in id order, e.g.
    ``TextVectorizer.get_vocabulary()`` (``["", "[UNK]", "the", ...]``). The ``mask_token`` and
    ``oov_token`` rows are zero (the padding row is never trained through a mask anyway);
    other words without a vector get zeros (Keras's guide) or, with ``missing="random"``,
    normal values with the pretrained vectors' standard deviation (seeded), which lets
    fine-tuning tell them apart.

    Args:
        vectors: from :func:`load_vectors`, or ``(words, (n, dim) array)``.
        vocabulary: the words, in id order.
        mask_token: the padding entry (row of zeros, not counted); None if there is none.
        oov_token: the out-of-vocabulary entry (row of zeros, not counted); None if none.
        case: ``"exact"``: match words as they are; ``"lower"``: look up each vocabulary
            word lowercased; ``"exact_then_lower"``: exact first, then lowercased. (Files like
            GloVe are lowercase; ``TextVectorizer`` lowercases by default.)
        missing: ``"zeros"`` or ``"random"`` for words without a vector.
        seed: the NumPy seed of ``missing="random"``.

    Returns:
        :class:`EmbeddingMatrix` ``(matrix, hits, misses)``.

    Raises:
        ValueError: bad ``case`` or ``missing``, or vectors that are not ``(n, dim)``.

    Examples:
        >>> words, table = ["The", "cat"], np.array([[1, 1], [1, 2]], np.float32)
        >>> result = embedding_matrix((words, table), ["", "[UNK]", "the", "cat"], case="exact_then_lower")
        >>> result.matrix.tolist(), result.misses
        ([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 2.0]], ['the'])
        >>> layer = jaxembed.Embedding(4, 2, weights=result.matrix, trainable=False, mask_zero=True)
        >>> layer(jnp.array([3])).tolist()
        [[1.0, 2.0]]
    """
    one_of("case", case, get_args(CasePolicy))
    one_of("missing", missing, ("zeros", "random"))
    words, table = vectors
    table = np.asarray(table, np.float32)
    if table.ndim != 2 or table.shape[0] != len(words):
        raise ValueError(
            f"`vectors` must be (words, array of shape (len(words), dim)). Received {len(words)} words "
            f"and an array of shape {table.shape}."
        )
    index = {}
    for i, word in enumerate(words):
        index.setdefault(word, i)
    dim = table.shape[1]
    if missing == "random":
        scale = float(table.std()) if table.size else 1.0
        matrix = np.random.default_rng(seed).normal(0.0, scale, (len(vocabulary), dim)).astype(np.float32)
    else:
        matrix = np.zeros((len(vocabulary), dim), np.float32)
    hits, misses = [], []
    for row, word in enumerate(vocabulary):
        if word == mask_token or word == oov_token:
            matrix[row] = 0.0
            continue
        candidates = {"exact": [word], "lower": [word.lower()], "exact_then_lower": [word, word.lower()]}[
            case
        ]
        found = next((index[c] for c in candidates if c in index), None)
        if found is None:
            misses.append(word)
        else:
            matrix[row] = table[found]
            hits.append(word)
    return EmbeddingMatrix(matrix, hits, misses)
