"""IMDB in Keras's ``imdb.npz`` format, read without arbitrary unpickling, with Keras's load_data rules."""

from __future__ import annotations

import io
import json
import lzma
import os
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from jaxembed.datasets._common import DatasetError, fetch, verify_file

KERAS_DATA_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
"""The folder Keras downloads ``imdb.npz`` and ``imdb_word_index.json`` from."""
IMDB_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
"""SHA-256 of Keras's ``imdb.npz`` (the digest ``keras.datasets.imdb`` checks)."""
IMDB_WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"
"""MD5 of Keras's ``imdb_word_index.json`` (Keras lists this file by MD5 only)."""

# The only globals an object array of lists needs to be rebuilt from its pickle stream (numpy 1
# and numpy 2 spellings). Lists and ints are pickle opcodes, not globals; anything else -- a
# function to call, a class to build -- is refused before it is looked up.
_ARRAY_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ARRAY_GLOBALS:
            raise DatasetError(
                f"Refusing to unpickle {module}.{name}: an imdb.npz holds only NumPy arrays of lists of "
                "ints, so this file is corrupted or malicious."
            )
        return super().find_class(module, name)


def _read_member(raw: bytes, where: str) -> np.ndarray:
    stream = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            _, _, dtype = np.lib.format.read_array_header_2_0(stream)
        if not dtype.hasobject:
            stream.seek(0)
            return np.lib.format.read_array(stream, allow_pickle=False)
        array = _ArrayOnlyUnpickler(stream).load()
    except DatasetError as error:
        raise DatasetError(f"{where}: {error}") from None
    except Exception as error:  # truncated streams raise many kinds of errors
        raise DatasetError(
            f"{where} is not a readable .npy array ({type(error).__name__}: {error})."
        ) from None
    if not isinstance(array, np.ndarray):
        raise DatasetError(f"{where} holds a pickled {type(array).__name__}, not an array.")
    return array


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads every array of an ``.npz`` file without arbitrary unpickling.

    Numeric arrays are read with ``allow_pickle=False``. Object arrays (Keras's
    ``imdb.npz`` stores each split as an object array of Python lists, which NumPy
    can only save as a pickle) are rebuilt by an unpickler that allows the three
    NumPy globals an array needs and refuses every other one, so a tampered
    file cannot run code.

    Raises:
        DatasetError: for a file that is not a zip archive, is truncated, or
            pickles anything but arrays.

    Examples:
        >>> import tempfile, os, pathlib
        >>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
        >>> np.savez(path, y=np.array([0, 1]))
        >>> read_npz(path)["y"].tolist()
        [0, 1]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No file at {str(path)!r}.")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(".npy"):
                    arrays[member[:-4]] = _read_member(
                        archive.read(member), f"{str(path)!r} member {member!r}"
                    )
    except DatasetError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        zlib.error,
        lzma.LZMAError,
        NotImplementedError,  # an unsupported compression method
        RuntimeError,  # an encrypted member
        ValueError,
    ) as error:
        raise DatasetError(
            f"{str(path)!r} is not a readable .npz archive (truncated, corrupted or not a zip file: "
            f"{type(error).__name__}: {error})."
        ) from None
    return arrays


def _imdb_arrays(path: Path) -> dict[str, np.ndarray]:
    arrays = read_npz(path)
    missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in arrays]
    if missing:
        raise DatasetError(
            f"{str(path)!r} is not in Keras's imdb.npz format: it lacks {missing} (found {sorted(arrays)})."
        )
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 1 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(
                f"{str(path)!r}: x_{split} and y_{split} must be 1-D and equally long; "
                f"got shapes {x.shape} and {y.shape}."
            )
        for row, sequence in enumerate(x):
            if not isinstance(sequence, (list, np.ndarray)) or not all(
                isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 0 for w in sequence
            ):
                raise DatasetError(
                    f"{str(path)!r}: x_{split}[{row}] must be a list of non-negative ints; "
                    f"got {str(sequence)[:80]}."
                )
    return arrays


def load_imdb(
    path: str | os.PathLike | None = None,
    *,
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
    sha256: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """IMDB reviews as lists of word ids, exactly as ``keras.datasets.imdb.load_data``.

    The same steps in the same order: both splits shuffled with one
    ``np.random.RandomState(seed)`` (train first); every word id shifted by
    ``index_from`` and ``start_char`` put in front; with ``maxlen``, reviews of
    ``maxlen`` ids *or more* dropped (Keras keeps ``len < maxlen``); then ids
    outside ``[skip_top, num_words)`` become ``oov_char`` (or are dropped when
    it is ``None``). Like Keras, ``num_words=None`` means the largest id seen,
    and that id itself falls outside the range.

    Args:
        path: a local ``imdb.npz``; ``None`` downloads Keras's file once from
            ``KERAS_DATA_URL`` into the cache and checks its SHA-256.
        num_words: keep ids below this (the most frequent words); ``None``: see above.
        skip_top: ids below this (the most frequent words) become ``oov_char`` too.
        maxlen: drop reviews with this many ids or more (after ``start_char``).
        seed: the shuffling seed (Keras's default 113).
        start_char: the id put in front of every review (``None``: none).
        oov_char: the id of words cut by ``num_words``/``skip_top`` (``None``: drop them).
        index_from: the offset added to every word id of the file.
        sha256: check a local ``path`` against this digest too (a downloaded
            file is always checked against ``IMDB_SHA256``).
        cache_dir: the download cache (default ``$JAXEMBED_DATA`` or
            ``~/.cache/jaxembed/datasets``).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: object arrays of lists of ids
        and int label arrays (1 = positive).

    Raises:
        ValueError: an argument that is not an integer of its range (``num_words``,
            ``skip_top``, ``maxlen``, ``start_char``, ``oov_char``, ``index_from``, ``seed``).
        DatasetError: bad or truncated file, checksum mismatch, or nothing left
            after ``maxlen``.

    Examples:
        >>> import tempfile, os, pathlib
        >>> def split(*rows):
        ...     x = np.empty(len(rows), dtype=object)
        ...     x[:] = [list(r) for r in rows]
        ...     return x
        >>> path = os.path.join(tempfile.mkdtemp(), "imdb.npz")
        >>> np.savez(path, x_train=split([1, 2], [3]), y_train=np.array([1, 0]),
        ...          x_test=split([4, 4, 2]), y_test=np.array([1]))
        >>> (x_train, y_train), (x_test, y_test) = load_imdb(path, seed=0)
        >>> x_test[0], y_test.tolist()  # 4 + 3 = 7 is the largest id, so it becomes oov_char
        ([1, 2, 2, 5], [1])
    """
    for name, value, minimum, optional in (
        ("num_words", num_words, 0, True),
        ("skip_top", skip_top, 0, False),
        ("maxlen", maxlen, 0, True),
        ("start_char", start_char, 0, True),
        ("oov_char", oov_char, 0, True),
        ("index_from", index_from, 0, False),
        ("seed", seed, 0, False),
    ):
        _check_count(name, value, minimum, optional)
    if path is None:
        path = fetch(KERAS_DATA_URL + "imdb.npz", IMDB_SHA256, cache_dir=cache_dir)
    path = Path(path)
    if sha256 is not None:
        verify_file(path, sha256)
    arrays = _imdb_arrays(path)
    x_train, labels_train = arrays["x_train"], arrays["y_train"]
    x_test, labels_test = arrays["x_test"], arrays["y_test"]

    rng = np.random.RandomState(seed)
    order = np.arange(len(x_train))
    rng.shuffle(order)
    x_train, labels_train = x_train[order], labels_train[order]
    order = np.arange(len(x_test))
    rng.shuffle(order)
    x_test, labels_test = x_test[order], labels_test[order]

    prefix = [start_char] if start_char is not None else []
    x_train = [prefix + [int(w) + index_from for w in x] for x in x_train]
    x_test = [prefix + [int(w) + index_from for w in x] for x in x_test]

    if maxlen:
        keep_train = [len(x) < maxlen for x in x_train]
        keep_test = [len(x) < maxlen for x in x_test]
        x_train = [x for x, keep in zip(x_train, keep_train) if keep]
        x_test = [x for x, keep in zip(x_test, keep_test) if keep]
        labels_train, labels_test = labels_train[keep_train], labels_test[keep_test]
        if not x_train or not x_test:
            raise DatasetError(
                f"No review is shorter than maxlen={maxlen} in one of the splits; increase maxlen."
            )

    sequences = x_train + x_test
    if not num_words:
        num_words = max(max(x) for x in sequences)
    if oov_char is not None:
        sequences = [[w if skip_top <= w < num_words else oov_char for w in x] for x in sequences]
    else:
        sequences = [[w for w in x if skip_top <= w < num_words] for x in sequences]
    split_at = len(x_train)
    return (_object_array(sequences[:split_at]), labels_train), (
        _object_array(sequences[split_at:]),
        labels_test,
    )


def _check_count(name: str, value: Any, minimum: int, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        allowed = f"{'None or ' if optional else ''}an integer >= {minimum}"
        raise ValueError(
            f"`{name}` must be {allowed}. Received: {name}={value!r} (of type {type(value).__name__})."
        )


def _object_array(rows: list[list[int]]) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


def imdb_word_index(
    path: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None
) -> dict[str, int]:
    """Keras's ``imdb_word_index.json``: word → rank (1 = most frequent), before ``index_from``.

    Id ``i + index_from`` in :func:`load_imdb`'s sequences is the word of rank ``i``.

    Args:
        path: a local copy; ``None`` downloads Keras's file into the cache and
            checks it against the MD5 digest Keras lists for it.
        cache_dir: the download cache.

    Raises:
        DatasetError: a file that is not a JSON object of word → positive int.

    Examples:
        >>> import tempfile, os, json, pathlib
        >>> path = os.path.join(tempfile.mkdtemp(), "imdb_word_index.json")
        >>> _ = pathlib.Path(path).write_text(json.dumps({"the": 1, "film": 2}))
        >>> imdb_word_index(path)["film"]
        2
    """
    if path is None:
        path = fetch(KERAS_DATA_URL + "imdb_word_index.json", IMDB_WORD_INDEX_MD5, cache_dir=cache_dir)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No file at {str(path)!r}.")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{str(path)!r} is not a JSON word index ({error}).") from None
    if not isinstance(index, dict) or not all(
        isinstance(rank, int) and not isinstance(rank, bool) and rank > 0 for rank in index.values()
    ):
        raise DatasetError(f"{str(path)!r} must hold a JSON object mapping words to positive ints.")
    return index


def decode_imdb(
    sequence: list[int],
    word_index: dict[str, int],
    *,
    index_from: int = 3,
    start_char: int = 1,
    oov_char: int = 2,
) -> str:
    """Turns one :func:`load_imdb` sequence back into words (``[START]``, ``[OOV]`` for the reserved ids).

    Examples:
        >>> decode_imdb([1, 4, 5, 2], {"the": 1, "film": 2})
        '[START] the film [OOV]'
    """
    words = {rank + index_from: word for word, rank in word_index.items()}
    words[start_char], words[oov_char] = "[START]", "[OOV]"
    return " ".join(words.get(i, "[OOV]") for i in sequence)
