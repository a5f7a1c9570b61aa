"""Text datasets from files: folder-per-class (and raw aclImdb, as a folder or tarball), CSV and JSONL."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import os
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from jaxembed.datasets._common import DatasetError, TextDataset, verify_file


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{where} is not UTF-8 text ({error}).") from None


def load_text_folder(
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    extensions: Sequence[str] = (".txt",),
) -> TextDataset:
    """One subfolder per class, one text per file, as Keras's ``text_dataset_from_directory``.

    Labels follow the sorted subfolder names (or ``class_names``, which also
    picks which subfolders to read); files are found recursively inside each
    class folder and read as UTF-8, in sorted path order (shuffle with your
    batches, e.g. :class:`jaxembed.train.Batches`).

    Args:
        path: the folder holding the class folders.
        class_names: the classes to read, in label order (default: all subfolders, sorted).
        extensions: file suffixes to read.

    Raises:
        ValueError: ``class_names`` repeats a name or names something that is not a
            subfolder name (``/``, ``..``).
        DatasetError: no class folders, a missing or empty class, or a file that is not UTF-8.

    Examples:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for name, text in [("pos/a.txt", "great"), ("neg/b.txt", "awful"), ("pos/c.txt", "fine")]:
        ...     (root / name).parent.mkdir(exist_ok=True)
        ...     _ = (root / name).write_text(text)
        >>> data = load_text_folder(root)
        >>> data.class_names, data.texts, data.labels.tolist()
        (['neg', 'pos'], ['awful', 'great', 'fine'], [0, 1, 1])
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"No folder at {str(root)!r}.")
    found = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    names = _check_class_names(class_names) if class_names is not None else found
    if not names:
        raise DatasetError(f"{str(root)!r} has no subfolders; expected one folder of text files per class.")
    missing = [name for name in names if name not in found]
    if missing:
        raise DatasetError(f"Class folders {missing} are not in {str(root)!r} (it has {found}).")
    texts, labels = [], []
    suffixes = tuple(extension.lower() for extension in extensions)
    for label, name in enumerate(names):
        files = sorted(
            p for p in (root / name).rglob("*") if p.is_file() and p.name.lower().endswith(suffixes)
        )
        if not files:
            raise DatasetError(
                f"Class {name!r} is empty: no {list(suffixes)} files under {str(root / name)!r}."
            )
        texts += [_decode(file.read_bytes(), repr(str(file))) for file in files]
        labels += [label] * len(files)
    return TextDataset(texts, np.asarray(labels, np.int32), names)


def _check_class_names(class_names: Sequence[str]) -> list[str]:
    if isinstance(class_names, str):
        raise ValueError(
            "`class_names` must be a list of folder names, not one string. "
            f"Received: class_names={class_names!r}."
        )
    names = list(class_names)
    for name in names:
        # A class is one folder directly inside `path`: no separators, no way out of it.
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise ValueError(
                "`class_names` must hold names of subfolders of `path` (no '/', '\\', '.' or '..'). "
                f"Received: class_names={names!r}."
            )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"`class_names` must not repeat a class (each name is one label). Received {repeated} more than "
            f"once in class_names={names!r}."
        )
    return names


ACLIMDB_CLASSES = ["neg", "pos"]


def load_aclimdb(path: str | os.PathLike, subset: str = "train", *, sha256: str | None = None) -> TextDataset:
    """The raw Large Movie Review Dataset: ``aclImdb/{train,test}/{neg,pos}/*.txt`` (label 1 = pos).

    ``path`` is the extracted ``aclImdb`` folder (or the folder holding it) or
    the ``aclImdb_v1.tar.gz`` tarball, read in place without extracting. The
    unlabelled ``train/unsup`` reviews are left out.

    A tarball is read to its last byte: a compressed one (``.tar.gz``, ``.tar.bz2``,
    ``.tar.xz``) must pass its format's checksum, and any tarball must end with the
    end-of-archive marker with nothing but zeros after the last member, so a damaged
    or cut file raises instead of giving part of the dataset. A plain ``.tar`` has no
    checksum over the reviews' bytes; pass ``sha256`` to check the whole file.

    Args:
        path: folder or ``.tar.gz``/``.tar.bz2``/``.tar.xz``/``.tar`` file.
        subset: ``"train"`` or ``"test"``.
        sha256: check a tarball against this digest first (e.g. the one the dataset's
            site publishes).

    Raises:
        DatasetError: a truncated, corrupted or unreadable tarball, a checksum mismatch,
            or a missing or empty class.

    Examples:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp()) / "aclImdb"
        >>> for name in ["test/pos/0_9.txt", "test/neg/1_2.txt", "train/unsup/2_0.txt"]:
        ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
        ...     _ = (root / name).write_text("review " + name)
        >>> data = load_aclimdb(root, "test")
        >>> data.labels.tolist(), data.class_names
        ([0, 1], ['neg', 'pos'])
    """
    if subset not in ("train", "test"):
        raise ValueError(f"`subset` must be 'train' or 'test'. Received: subset={subset!r}.")
    source = Path(path)
    if source.is_file():
        if sha256 is not None:
            verify_file(source, sha256)
        return _aclimdb_tarball(source, subset)
    for folder in (source / subset, source / "aclImdb" / subset):
        if folder.is_dir():
            return load_text_folder(folder, class_names=ACLIMDB_CLASSES)
    if not source.exists():
        raise FileNotFoundError(f"No aclImdb folder or tarball at {str(source)!r}.")
    raise DatasetError(f"{str(source)!r} has no {subset!r} folder; expected aclImdb/{subset}/neg and /pos.")


_COMPRESSED = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)


def _open_stream(path: Path):
    with open(path, "rb") as handle:
        magic = handle.read(6)
    for prefix, opener in _COMPRESSED:
        if magic.startswith(prefix):
            return opener(path, "rb")
    return open(path, "rb")


def _check_tar_end(path: Path, end: int) -> None:
    """Reads the whole (decompressed) stream: its checksum must hold and only zeros may follow ``end``.

    ``tarfile`` stops quietly at the first header it cannot read, and never reads a
    compressed stream to its end (where gzip, bzip2 and xz keep their checksums). So
    the stream is read once more to its last byte: a damaged header shows as data after
    the point where ``tarfile`` stopped, damaged compressed data as a checksum error,
    and a file cut at a member boundary as a missing end-of-archive marker.
    """
    position, trailing = 0, 0
    with _open_stream(path) as stream:
        while chunk := stream.read(1 << 20):
            tail = chunk[max(end - position, 0) :] if position + len(chunk) > end else b""
            if tail.strip(b"\0"):
                raise DatasetError(
                    f"{str(path)!r} is corrupted: the tar archive has unreadable data after byte {end} "
                    "(a damaged header; members after it would be lost)."
                )
            trailing += len(tail)
            position += len(chunk)
    if trailing < 1024:
        raise DatasetError(
            f"{str(path)!r} is truncated: the tar archive ends at byte {position} without its "
            "end-of-archive marker (two zero blocks)."
        )


def _aclimdb_tarball(path: Path, subset: str) -> TextDataset:
    found: dict[str, list[tuple[str, str]]] = {name: [] for name in ACLIMDB_CLASSES}
    try:
        with _open_stream(path) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                parts = PurePosixPath(member.name).parts
                if (
                    member.isfile()
                    and len(parts) >= 3
                    and parts[-3] == subset
                    and parts[-2] in found
                    and parts[-1].endswith(".txt")
                ):
                    raw = archive.extractfile(member).read()
                    found[parts[-2]].append((member.name, _decode(raw, f"{member.name!r} in {str(path)!r}")))
            end = archive.offset
        _check_tar_end(path, end)
    except DatasetError:
        raise
    except _TAR_ERRORS as error:
        raise DatasetError(
            f"{str(path)!r} is not a readable tar archive (truncated or corrupted: "
            f"{type(error).__name__}: {error})."
        ) from None
    texts, labels = [], []
    for label, name in enumerate(ACLIMDB_CLASSES):
        if not found[name]:
            raise DatasetError(f"Class {name!r} is empty: {str(path)!r} has no {subset}/{name}/*.txt files.")
        texts += [text for _, text in sorted(found[name])]
        labels += [label] * len(found[name])
    return TextDataset(texts, np.asarray(labels, np.int32), list(ACLIMDB_CLASSES))


def _label_order(values: list[str]) -> list[str]:
    unique = set(values)
    try:
        return sorted(unique, key=int)
    except ValueError:
        return sorted(unique)


def load_text_table(
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    label_column: str = "label",
    format: str | None = None,
) -> TextDataset:
    """A CSV file (with a header row) or a JSON Lines file, one example per row.

    Labels are read as strings; the classes are their sorted distinct values
    (numerically when they are all integers, so ``"0"``, ``"1"``, ``"10"``).

    Args:
        path: the ``.csv`` or ``.jsonl``/``.ndjson`` file.
        text_column: the column (CSV) or key (JSONL) holding the text.
        label_column: the one holding the label.
        format: ``"csv"`` or ``"jsonl"`` (default: from the file suffix).

    Raises:
        DatasetError: missing columns (names the ones present), a bad JSON line
            (names the line), a row without text, or no rows.

    Examples:
        >>> import tempfile, os, pathlib
        >>> path = os.path.join(tempfile.mkdtemp(), "reviews.csv")
        >>> _ = pathlib.Path(path).write_text('text,label\\n"Loved it, really",pos\\nMeh,neg\\n')
        >>> data = load_text_table(path)
        >>> data.texts, data.labels.tolist(), data.class_names
        (['Loved it, really', 'Meh'], [1, 0], ['neg', 'pos'])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No file at {str(path)!r}.")
    kind = format or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(path.suffix.lower())
    if kind not in ("csv", "jsonl"):
        raise ValueError(
            f"`format` must be 'csv' or 'jsonl' (or the file must end in .csv/.jsonl). "
            f"Received: format={format!r} for {str(path)!r}."
        )
    text = _decode(path.read_bytes(), repr(str(path)))
    rows = _csv_rows(text, path) if kind == "csv" else _jsonl_rows(text, path)
    texts, values = [], []
    for where, row in rows:
        missing = [column for column in (text_column, label_column) if column not in row]
        if missing:
            raise DatasetError(f"{where} has no column {missing}; it has {sorted(row)}.")
        if not isinstance(row[text_column], str):
            raise DatasetError(f"{where}: {text_column!r} must be a string; got {row[text_column]!r}.")
        if row[label_column] is None or row[label_column] == "":
            raise DatasetError(f"{where}: the label {label_column!r} is empty.")
        texts.append(row[text_column])
        values.append(str(row[label_column]))
    if not texts:
        raise DatasetError(f"{str(path)!r} has no examples.")
    class_names = _label_order(values)
    ids = {name: i for i, name in enumerate(class_names)}
    return TextDataset(texts, np.asarray([ids[v] for v in values], np.int32), class_names)


def _csv_rows(text: str, path: Path) -> list[tuple[str, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = [(f"{str(path)!r} line {reader.line_num}", row) for row in reader]
    except csv.Error as error:
        raise DatasetError(f"{str(path)!r} line {reader.line_num} is not valid CSV ({error}).") from None
    if reader.fieldnames is None:
        raise DatasetError(f"{str(path)!r} is empty; a CSV file needs a header row naming its columns.")
    repeated = sorted({name for name in reader.fieldnames if reader.fieldnames.count(name) > 1})
    if repeated:
        raise DatasetError(
            f"{str(path)!r} has the header column(s) {repeated} more than once; each column needs its own "
            f"name (header: {reader.fieldnames})."
        )
    for where, row in rows:
        if None in row or None in row.values():
            raise DatasetError(
                f"{where} has a different number of fields than the header {reader.fieldnames}."
            )
    return rows


def _jsonl_rows(text: str, path: Path) -> list[tuple[str, dict]]:
    rows = []
    # JSON Lines are separated by "\n" (optionally "\r\n") only: str.splitlines would also cut
    # at U+2028, U+2029 and U+0085, which JSON strings may hold unescaped.
    lines = text.split("\n")
    for number, line in enumerate((line.removesuffix("\r") for line in lines), start=1):
        if not line.strip():
            continue
        where = f"{str(path)!r} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{where} is not valid JSON ({error}).") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{where} must be a JSON object; got {type(row).__name__}.")
        rows.append((where, row))
    return rows
