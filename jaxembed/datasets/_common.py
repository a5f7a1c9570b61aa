"""What every loader shares: the dataset type, its hash split, errors, checksums and downloads."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from jaxembed._files import atomic_path


class DatasetError(ValueError):
    """A dataset file is missing pieces, truncated, malformed or fails its checksum."""


@dataclasses.dataclass(frozen=True)
class TextDataset:
    """Texts with integer labels and the class names the labels index.

    Attributes:
        texts: the examples, as Python strings.
        labels: ``(len(texts),)`` int32 class ids; ``class_names[labels[i]]`` is the class.
        class_names: the classes, in label order.

    Examples:
        >>> data = TextDataset(["good", "bad", "fine"], np.array([1, 0, 1], np.int32), ["neg", "pos"])
        >>> len(data), data.class_names[data.labels[0]]
        (3, 'pos')
    """

    texts: list[str]
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels.")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, rows: Sequence[int] | np.ndarray) -> TextDataset:
        """The examples at ``rows`` (indices or a boolean mask), same classes.

        Examples:
            >>> data = TextDataset(["a", "b", "c"], np.array([0, 1, 0], np.int32), ["x", "y"])
            >>> data.subset([2, 0]).texts
            ['c', 'a']
        """
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return TextDataset([self.texts[i] for i in rows], self.labels[rows], list(self.class_names))

    def split(self, test_fraction: float = 0.2) -> tuple[TextDataset, TextDataset]:
        """A fixed ``(train, test)`` split by a hash of each text (:func:`hash_split`).

        Examples:
            >>> data = TextDataset([f"text {i}" for i in range(100)], np.zeros(100, np.int32), ["only"])
            >>> train, test = data.split(0.2)
            >>> len(train) + len(test), 10 < len(test) < 30
            (100, True)
        """
        test = hash_split(self.texts, test_fraction)
        return self.subset(~test), self.subset(test)

    def class_counts(self) -> dict[str, int]:
        """How many examples each class has.

        Examples:
            >>> TextDataset(["a", "b", "c"], np.array([0, 1, 0], np.int32), ["x", "y"]).class_counts()
            {'x': 2, 'y': 1}
        """
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(count) for name, count in zip(self.class_names, counts)}


def hash_split(texts: Sequence[str], test_fraction: float = 0.2) -> np.ndarray:
    """Which texts are test examples: ``True`` where the SHA-256 of the text falls in the test share.

    The split depends on each text alone (not on order, count or a seed), so it
    is the same on every machine and stays put when examples are added; equal
    texts always land on the same side.

    Args:
        texts: the examples.
        test_fraction: the expected share of test examples, in ``(0, 1)``.

    Returns:
        A boolean ``(len(texts),)`` array.

    Examples:
        >>> hash_split(["first text", "second text", "first text"], 0.5).tolist()
        [False, True, False]
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1). Received: test_fraction={test_fraction!r}.")
    threshold = int(test_fraction * 2**32)
    return np.array(
        [
            int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") < threshold
            for text in texts
        ],
        dtype=bool,
    )


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in 1 MiB chunks.

    Examples:
        >>> import tempfile, os, pathlib
        >>> path = os.path.join(tempfile.mkdtemp(), "x.txt")
        >>> _ = pathlib.Path(path).write_text("abc")
        >>> file_digest(path)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _algorithm(expected: str) -> str:
    # Keras records SHA-256 for imdb.npz and MD5 (32 hex digits) for imdb_word_index.json.
    return {64: "sha256", 32: "md5"}.get(len(expected), "sha256")


def verify_file(path: str | os.PathLike, expected: str) -> Path:
    """Checks ``path`` against a SHA-256 (64 hex digits) or MD5 (32) digest; raises :class:`DatasetError`.

    Examples:
        >>> import tempfile, os, pathlib
        >>> path = os.path.join(tempfile.mkdtemp(), "x.txt")
        >>> _ = pathlib.Path(path).write_text("abc")
        >>> verify_file(path, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad").name
        'x.txt'
    """
    algorithm = _algorithm(expected)
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise DatasetError(
            f"Checksum mismatch for {os.fspath(path)!r}: its {algorithm.upper()} is {actual}, "
            f"expected {expected.lower()}. The file is truncated, corrupted or a different file; "
            "delete it and download it again."
        )
    return Path(path)


def default_cache_dir() -> Path:
    """Where downloads are cached: ``$JAXEMBED_DATA`` or ``~/.cache/jaxembed/datasets``.

    Examples:
        >>> default_cache_dir().name in ("datasets", os.environ.get("JAXEMBED_DATA", "datasets"))
        True
    """
    configured = os.environ.get("JAXEMBED_DATA")
    return Path(configured) if configured else Path.home() / ".cache" / "jaxembed" / "datasets"


def fetch(
    url: str,
    checksum: str,
    *,
    filename: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Returns a cached copy of ``url``, downloading it first if needed; the digest is always checked.

    The download streams into a temporary file in the cache folder, is hashed on
    the way, and is renamed into place only if its digest matches, so a failed or
    interrupted download never leaves a file that looks complete. A cached file
    is checked again on every call.

    Args:
        url: where the file lives (``https://``, or ``file://`` for a local copy).
        checksum: its SHA-256 (64 hex digits) or MD5 (32, for files Keras lists by MD5).
        filename: the name in the cache (default: the URL's last part).
        cache_dir: the cache folder (default :func:`default_cache_dir`).
        progress: show a download progress bar.

    Raises:
        DatasetError: when the file's digest does not match (nothing is cached then).
        OSError: when the download fails (e.g. no network).

    Examples:
        >>> import tempfile, pathlib
        >>> source = pathlib.Path(tempfile.mkdtemp()) / "data.txt"
        >>> _ = source.write_text("abc")
        >>> sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        >>> fetch(source.as_uri(), sha, cache_dir=tempfile.mkdtemp(), progress=False).read_text()
        'abc'
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = folder / (filename or url.rstrip("/").rsplit("/", 1)[-1])
    if target.is_file():
        return verify_file(target, checksum)
    algorithm = _algorithm(checksum)
    digest = hashlib.new(algorithm)
    # atomic_path removes the temporary file if anything below raises, a mismatch included.
    with atomic_path(target) as temporary, open(temporary, "wb") as out:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = response.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total else None, unit="B", unit_scale=True, disable=not progress
            ) as bar:
                bar.set_description(f"downloading {target.name}")
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != checksum.lower():
            raise DatasetError(
                f"Checksum mismatch for {url}: the downloaded file's {algorithm.upper()} is "
                f"{digest.hexdigest()}, expected {checksum.lower()}. Nothing was cached."
            )
    return target
