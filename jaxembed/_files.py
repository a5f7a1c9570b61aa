"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

Every writer in jaxembed (checkpoints, Keras files, plots, Projector files, vocabularies)
goes through :func:`atomic_path`: the data is written to a temporary file in the target's
folder, flushed to disk, given the permissions a plain ``open()`` would have given it, and
renamed over the target; the folder is then synced so the rename itself survives a crash.
If writing fails, the temporary file is removed and the old target is left untouched.

Folders (orbax checkpoints) go through :func:`atomic_folder`: the new folder is written
beside the old one, synced, and swapped in by two renames (old aside, new in) before the old
one is deleted. :func:`recover_folder` finishes or undoes a swap a kill interrupted, so a
reader always finds the old folder or the whole new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _new_file_mode() -> int:
    """The mode ``open()`` would give a new file (``mkstemp`` makes them 0600)."""
    current = os.umask(0)
    os.umask(current)
    return 0o666 & ~current


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # a failure here (disk full, I/O error) aborts the write
    finally:
        os.close(descriptor)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it replaces ``path``.

    The caller writes the whole file to the yielded path (by name, so libraries such as
    h5py or matplotlib can open it themselves). Missing parent folders are created.

    Example:
        >>> import os, tempfile
        >>> target = os.path.join(tempfile.mkdtemp(), "notes.txt")
        >>> with atomic_path(target) as temporary:
        ...     _ = temporary.write_text("hello")
        >>> from pathlib import Path
        >>> Path(target).read_text()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
        _fsync_file(temporary)
        os.chmod(temporary, _new_file_mode())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically; returns the path."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    return Path(path)


def _fsync_tree(folder: Path) -> None:
    """Flushes every file and folder under ``folder`` (the folders too, so their entries last)."""
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync_file(Path(root) / name)
        _fsync_folder(Path(root))


def _siblings(path: Path, kind: str) -> list[Path]:
    if not path.parent.is_dir():
        return []
    prefix = f".{path.name}.{kind}-"
    return sorted(entry for entry in path.parent.iterdir() if entry.name.startswith(prefix))


def recover_folder(path: str | os.PathLike, *, clean: bool = False) -> Path:
    """Undoes a folder swap of :func:`atomic_folder` that a kill interrupted; returns the folder to read.

    A kill between the two renames leaves no folder at ``path`` and the old one set aside as
    ``.NAME.old-*``: it is renamed back (or, if the folder cannot be renamed, returned as it
    is). A set-aside old folder next to a complete ``path`` is deleted. With ``clean``
    (the writer does this), unfinished ``.NAME.new-*`` folders are deleted too.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> folder = Path(tempfile.mkdtemp()) / "ckpt"
        >>> (folder.parent / ".ckpt.old-1").mkdir()  # as a kill between the renames leaves it
        >>> recover_folder(folder) == folder, folder.is_dir()
        (True, True)
    """
    path = Path(path).absolute()
    old = _siblings(path, "old")
    if old and not path.exists():
        newest = max(old, key=lambda entry: entry.stat().st_mtime)
        try:
            os.rename(newest, path)
            _fsync_folder(path.parent)
        except OSError:  # a read-only folder: read the set-aside copy where it is
            return newest
        old.remove(newest)
    if path.exists():
        for entry in old:
            shutil.rmtree(entry, ignore_errors=True)
    if clean:
        for entry in _siblings(path, "new"):
            shutil.rmtree(entry, ignore_errors=True)
    return path


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yields an empty temporary folder beside ``path``; on success it replaces ``path`` as one unit.

    The caller writes everything into the yielded folder. Then every file in it is synced,
    the old ``path`` (if any) is renamed aside, the new folder renamed to ``path``, and the
    old one deleted. A kill at any moment leaves the old folder or the new one, never a mix:
    :func:`recover_folder` (which readers call) puts the old one back if the kill fell
    between the two renames. If writing raises, the temporary folder is removed and ``path``
    is untouched. One writer per ``path`` at a time.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> target = Path(tempfile.mkdtemp()) / "set"
        >>> with atomic_folder(target) as temporary:
        ...     _ = (temporary / "a.txt").write_text("new")
        >>> sorted(p.name for p in target.iterdir())
        ['a.txt']
    """
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(path, clean=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
    try:
        yield temporary
        swap_folder(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def swap_folder(temporary: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Syncs the complete folder ``temporary`` and puts it at ``path``, replacing any old folder there.

    The old folder is renamed aside (``.NAME.old-*``), the new one renamed in, and the
    old one deleted; :func:`recover_folder` undoes a kill between the two renames. If the
    second rename fails, the old folder is put back. :func:`atomic_folder` ends with this;
    call it directly when several processes wrote ``temporary`` together.
    """
    temporary, path = Path(temporary), Path(path).absolute()
    os.chmod(temporary, _new_file_mode() | ((_new_file_mode() & 0o444) >> 2))  # r -> x for folders
    _fsync_tree(temporary)
    aside = None
    try:
        if path.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.rmdir(aside)  # only the unique name is wanted
            os.rename(path, aside)
        os.rename(temporary, path)
    except BaseException:
        if aside is not None and not path.exists():
            os.rename(aside, path)
        raise
    _fsync_folder(path.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return path


def remove_folder(path: str | os.PathLike) -> None:
    """Deletes the folder ``path`` as one unit: renamed aside (``.NAME.deleted-*``) first, then removed.

    A kill during the removal leaves no folder at ``path`` and a set-aside copy that a later
    cleaner may delete; a reader never finds half of the folder at ``path``.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> target = Path(tempfile.mkdtemp()) / "old"
        >>> (target / "x").mkdir(parents=True)
        >>> remove_folder(target)
        >>> target.exists(), list(target.parent.iterdir())
        (False, [])
    """
    path = Path(path).absolute()
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.deleted-", dir=path.parent))
    os.rmdir(aside)  # only the unique name is wanted
    os.rename(path, aside)
    _fsync_folder(path.parent)
    shutil.rmtree(aside, ignore_errors=True)
