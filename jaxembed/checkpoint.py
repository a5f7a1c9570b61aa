"""Checkpoints of any pytree of arrays on orbax: atomic folders, checked restores, onto any mesh.

One format: a checkpoint is a folder written by `orbax-checkpoint
<https://orbax.readthedocs.io>`_ (every device writes its own shards) plus
``jaxembed_manifest.json``, written last, with the SHA-256 and size of every file, the
SHA-256 of every array, the ``metadata`` dict and the PRNG implementation of every key
array. :func:`save_checkpoint` writes the folder beside the target and swaps it in with two
renames (:func:`jaxembed._files.atomic_folder`), so a kill at any moment leaves the old
checkpoint or the new one. :func:`restore_checkpoint` checks every file against the
manifest, compares the stored tree with a template (``like``: paths, shapes, dtypes) and
reads each array onto the template's placement -- another mesh shape or placement than the
one that saved works -- then checks every array's SHA-256. :func:`read_checkpoint_metadata`
reads the metadata without reading any array.

:class:`CheckpointManager` keeps a run's checkpoints as step folders (keep the last N, or
the N best by a metric; list steps; restore the latest). :class:`jaxembed.train.Trainer`
(``save``/``restore``) and :class:`jaxembed.train.ModelCheckpoint` write these folders.

Single-file ``.jxe`` checkpoints of jaxembed 0.1 (msgpack) still load, read-only, with a
``DeprecationWarning``; :func:`convert_checkpoint` turns one into a folder.

Examples:
    >>> import tempfile, os
    >>> tree = {"table": jnp.arange(6.0).reshape(3, 2), "step": jnp.int32(7)}
    >>> path = save_checkpoint(os.path.join(tempfile.mkdtemp(), "ckpt"), tree, metadata={"note": "demo"})
    >>> restored = restore_checkpoint(path, like=tree)
    >>> restored["table"].tolist(), int(restored["step"])
    ([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], 7)
    >>> read_checkpoint_metadata(path)
    {'note': 'demo'}
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import msgpack
import numpy as np

from jaxembed import _checks, _files

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "restore_checkpoint",
    "read_checkpoint_metadata",
    "CheckpointManager",
    "convert_checkpoint",
    "write_orbax_manifest",
    "verify_orbax_folder",
    "save_streamed_checkpoint",
    "restore_streamed_checkpoint",
]

_MAGIC = b"JAXEMBED-CKPT\x00"  # jaxembed 0.1's single-file format (read-only now)
_FORMAT_VERSION = 1
_DIGEST_SIZE = 32  # sha256


class CheckpointError(ValueError):
    """A checkpoint is corrupted, not a checkpoint, or does not match the template."""


def _is_key_array(x: Any) -> bool:
    return isinstance(x, jax.Array | jax.ShapeDtypeStruct) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_impl(x: Any) -> str | None:
    if not _is_key_array(x):
        return None
    return str(jax.random.key_impl(x)) if isinstance(x, jax.Array) else str(x.dtype._impl)


def _describe(shape: Any, dtype: Any, key_impl: str | None) -> str:
    kind = f"key<{key_impl}>" if key_impl else str(dtype)
    return f"shape {tuple(shape)} {kind}"


def _leaf_mismatch(name: str, entry: Mapping[str, Any], leaf: Any) -> str | None:
    """How a stored leaf's record (``shape``, ``dtype``, ``key_impl``) differs from ``leaf``, or ``None``."""
    key_impl = _key_impl(leaf)
    if key_impl is not None:
        data = jax.eval_shape(jax.random.key_data, leaf)
        shape, dtype = data.shape, data.dtype
    else:
        shape, dtype = np.shape(leaf), (leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype)
    want = (tuple(shape), np.dtype(dtype).name, key_impl)
    if (tuple(entry["shape"]), entry["dtype"], entry["key_impl"]) == want:
        return None
    return (
        f"{name}: checkpoint has {_describe(entry['shape'], entry['dtype'], entry['key_impl'])}, "
        f"model expects {_describe(*want)}"
    )


def _orbax() -> Any:
    try:
        import orbax.checkpoint as ocp
    except ImportError:  # pragma: no cover - a core dependency; a broken install gets here
        raise ImportError("Checkpoints need orbax-checkpoint: pip install orbax-checkpoint.") from None
    return ocp


def _is_json(value: Any) -> bool:
    """Whether JSON stores ``value`` exactly: str keys; str, number, bool, None, list, dict values."""
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False


def _json_metadata(name: str, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """``metadata`` as a plain dict that JSON stores exactly, or a ``ValueError`` naming ``name``."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not _is_json(dict(metadata)):
        raise ValueError(
            f"`{name}` must be a dict that JSON stores exactly (str keys; str, number, bool, None, "
            f"list and dict values). Received: {name}={_checks.described(metadata)}."
        )
    return json.loads(json.dumps(dict(metadata)))


# ---------------------------------------------------------------- the manifest
_MANIFEST = "jaxembed_manifest.json"
_MANIFEST_FORMAT = "jaxembed-orbax-manifest"


def _array_digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and C-order bytes."""
    digest = hashlib.sha256(f"{array.dtype.name}{tuple(array.shape)}".encode())
    # The bytes as a flat uint8 view (no copy of a contiguous array, whatever its dtype).
    digest.update(memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))
    return digest.hexdigest()


def _host_array(leaf: Any) -> np.ndarray | None:
    """The whole array on this host, or ``None`` when other processes hold parts of it."""
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return None
    if _is_key_array(leaf):
        leaf = jax.random.key_data(leaf)
    return np.asarray(jax.device_get(leaf))


def _folder_files(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder).as_posix())
        for p in folder.rglob("*")
        if p.is_file() and p.name != _MANIFEST
    )


def write_orbax_manifest(
    folder: str | os.PathLike, tree: Any, *, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Writes the integrity manifest of an orbax checkpoint folder; returns its path.

    The manifest (``jaxembed_manifest.json``, written last and atomically) holds the
    SHA-256 and size of every file orbax wrote, the SHA-256 of every array of ``tree``
    (dtype, shape and bytes; arrays that other processes share are covered by the file
    checksums only), the PRNG implementation of every key array and ``metadata``.
    :func:`save_checkpoint` calls it; :func:`verify_orbax_folder` and
    :func:`restore_checkpoint` check it, so any orbax checkpoint folder can carry it.

    Args:
        folder: a complete orbax checkpoint folder.
        tree: the pytree that was saved into it (key arrays as keys, not key data).
        metadata: a small JSON-able dict to store (read back by :func:`read_checkpoint_metadata`).

    Returns:
        The manifest's path.

    Raises:
        ValueError: ``metadata`` is not a dict that JSON stores exactly.

    Examples:
        >>> import tempfile, os
        >>> path = save_checkpoint(os.path.join(tempfile.mkdtemp(), "c"), {"t": jnp.ones(2)})
        >>> write_orbax_manifest(path, {"t": jnp.ones(2)}, metadata={"step": 1}).name
        'jaxembed_manifest.json'
    """
    folder = Path(folder)
    metadata = _json_metadata("metadata", metadata)
    files = {}
    for name in _folder_files(folder):
        files[name] = {"size": (folder / name).stat().st_size, "sha256": _files_digest(folder / name)}
    arrays, keys, empty = {}, {}, {}
    for key, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        array = _host_array(leaf)
        arrays[_slash_path(key)] = None if array is None else _array_digest(array)
        if _is_key_array(leaf):
            keys[_slash_path(key)] = _key_impl(leaf)
        if np.size(leaf) == 0:
            empty[_slash_path(key)] = list(np.shape(leaf if array is None else array))
    document = {
        "format": _MANIFEST_FORMAT,
        "version": 1,
        "files": files,
        "arrays": arrays,
        "keys": keys,
        "empty": empty,
        "metadata": metadata,
    }
    return _files.write_text(folder / _MANIFEST, json.dumps(document, indent=1, sort_keys=True) + "\n")


def _files_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(folder: Path) -> dict[str, Any]:
    where = f"Checkpoint {str(folder)!r}"
    manifest = folder / _MANIFEST
    if not manifest.is_file():
        raise CheckpointError(
            f"{where} has no integrity manifest ({_MANIFEST}): it is not a folder written by "
            "save_checkpoint, or its save did not finish. Pass verify=False to read an orbax "
            "folder without checks."
        )
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{where}: its {_MANIFEST} is corrupted (not valid JSON: {error}).") from None
    ok = (
        isinstance(document, dict)
        and document.get("format") == _MANIFEST_FORMAT
        and document.get("version") == 1
        and isinstance(document.get("files"), dict)
        and isinstance(document.get("arrays"), dict)
        and isinstance(document.get("keys", {}), dict)
        and isinstance(document.get("empty", {}), dict)
        and all(
            isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)
            for shape in document.get("empty", {}).values()
        )
        and isinstance(document.get("metadata", {}), dict)
        and all(
            isinstance(entry, dict)
            and isinstance(entry.get("size"), int)
            and isinstance(entry.get("sha256"), str)
            for entry in document["files"].values()
        )
        and all(entry is None or isinstance(entry, str) for entry in document["arrays"].values())
        and all(isinstance(entry, str) for entry in document.get("keys", {}).values())
    )
    if not ok:
        raise CheckpointError(
            f"{where}: its {_MANIFEST} is corrupted or of another version (expected format "
            f"{_MANIFEST_FORMAT!r} version 1 with 'files' and 'arrays')."
        )
    return document


def verify_orbax_folder(path: str | os.PathLike) -> dict[str, Any]:
    """Checks every file of a checkpoint folder against its manifest; returns the manifest.

    Raises:
        FileNotFoundError: no folder at ``path``.
        CheckpointError: no or damaged manifest, or a file that is missing, of another size,
            with another SHA-256 or not listed (the message names the file).

    Examples:
        >>> import tempfile, os
        >>> path = save_checkpoint(os.path.join(tempfile.mkdtemp(), "c"), {"t": jnp.ones(2)})
        >>> sorted(verify_orbax_folder(path)["arrays"])
        ['t']
    """
    folder = _files.recover_folder(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"No checkpoint folder at {str(Path(path).absolute())!r}.")
    document = _read_manifest(folder)
    problems = []
    present = set(_folder_files(folder))
    for name, entry in sorted(document["files"].items()):
        file = folder / name
        if name not in present:
            problems.append(f"{name} is missing")
        elif file.stat().st_size != entry["size"]:
            problems.append(f"{name} has {file.stat().st_size} bytes, the manifest records {entry['size']}")
        elif _files_digest(file) != entry["sha256"]:
            problems.append(f"{name} has another SHA-256 than the manifest records (modified after saving)")
    extra = sorted(present - set(document["files"]))
    if extra:
        problems.append(f"files not in the manifest: {', '.join(extra[:5])}")
    if problems:
        raise CheckpointError(f"Checkpoint {str(folder)!r} is corrupted: " + "; ".join(problems) + ".")
    return document


# ---------------------------------------------------------------- save / restore
def _storable(tree: Any) -> Any:
    """What orbax writes: key arrays as their key data, host values as NumPy arrays.

    orbax refuses arrays with no elements: each is written as one zero of its dtype, and the
    manifest records its shape (``"empty"``).
    """

    def leaf(x: Any) -> Any:
        if _is_key_array(x):
            x = jax.random.key_data(x)
        x = x if isinstance(x, jax.Array) else np.asarray(x)
        return np.zeros((1,), x.dtype) if x.size == 0 else x

    return jax.tree.map(leaf, tree)


def save_checkpoint(
    path: str | os.PathLike,
    tree: Any,
    *,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Saves a pytree of (possibly sharded) arrays as an orbax checkpoint folder; returns the folder.

    Every device writes its own shards (every process, in a multi-process run, must call
    this with the same ``path``). The checkpoint is written into a new folder beside
    ``path`` with an integrity manifest (:func:`write_orbax_manifest`) written last; only
    then is it swapped in (old folder renamed aside, new one renamed in, old one deleted).
    A kill at any moment leaves the old checkpoint or the new one restorable, never a mix
    and never neither.

    Args:
        path: the checkpoint folder; missing parent folders are created.
        tree: a pytree of arrays -- JAX arrays on any placement (e.g. a ``TrainState`` whose
            table is placed on a mesh), NumPy arrays, scalars, typed PRNG keys.
        metadata: a small JSON-able dict stored in the manifest (e.g. the step), read back
            by :func:`read_checkpoint_metadata` without reading any array.
        overwrite: replace an existing checkpoint at ``path`` (it stays until the new one
            is complete); ``False`` refuses to.

    Returns:
        The checkpoint folder (absolute).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false, or ``path`` is a file.
        ValueError: ``metadata`` is not a dict that JSON stores exactly.

    Examples:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt")
        >>> save_checkpoint(path, {"table": jnp.ones((4, 2))}, metadata={"step": 3}).name
        'ckpt'
        >>> save_checkpoint(path, {"table": jnp.ones((4, 2))}, overwrite=False)
        Traceback (most recent call last):
        ...
        FileExistsError: A checkpoint already exists at '...ckpt'; pass overwrite=True to replace it.
    """
    ocp = _orbax()
    metadata = _json_metadata("metadata", metadata)
    overwrite = _checks.boolean("overwrite", overwrite)
    path = Path(path).absolute()
    if path.is_file():  # e.g. a single-file checkpoint of jaxembed 0.1 under the same name
        raise FileExistsError(
            f"{str(path)!r} is a file; a checkpoint is a folder and does not replace a file. Save to "
            "another path, or convert the file with convert_checkpoint (if it is an old checkpoint) "
            "and remove it."
        )
    path = _files.recover_folder(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"A checkpoint already exists at {str(path)!r}; pass overwrite=True to replace it."
        )
    storable = _storable(tree)
    if jax.process_count() > 1:
        return _save_multiprocess(ocp, path, tree, storable, metadata)
    with _files.atomic_folder(path) as temporary:
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(temporary, storable, force=True)  # our own empty folder
            checkpointer.wait_until_finished()
        write_orbax_manifest(temporary, tree, metadata=metadata)
    return path


def _save_multiprocess(ocp: Any, path: Path, tree: Any, storable: Any, metadata: dict[str, Any]) -> Path:
    """Every process writes its shards into one shared new folder; process 0 seals and swaps it in."""
    from jax.experimental import multihost_utils

    temporary = path.parent / f".{path.name}.new-processes"
    if jax.process_index() == 0:
        _files.recover_folder(path, clean=True)  # also removes a stale shared folder
    multihost_utils.sync_global_devices(f"jaxembed save {path}: start")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(temporary, storable, force=True)
        checkpointer.wait_until_finished()
    multihost_utils.sync_global_devices(f"jaxembed save {path}: written")
    if jax.process_index() == 0:
        # arrays split over processes: covered by the file checksums
        write_orbax_manifest(temporary, tree, metadata=metadata)
        _files.swap_folder(temporary, path)
    multihost_utils.sync_global_devices(f"jaxembed save {path}: swapped")
    return path


def _slash_path(path: tuple[Any, ...]) -> str:
    """``params/embeddings/value``: orbax stores NamedTuples and objects as dicts, so compare names only."""
    names = []
    for entry in path:
        for attribute in ("key", "name", "idx"):
            if hasattr(entry, attribute):
                names.append(str(getattr(entry, attribute)))
                break
        else:
            names.append(str(entry))
    return "/".join(names)


def _abstract(leaf: Any) -> Any:
    """What orbax restores ``leaf`` from: a placed ``ShapeDtypeStruct`` (key data for keys), or NumPy."""
    if _is_key_array(leaf):
        data = jax.eval_shape(jax.random.key_data, leaf)
        sharding = jax.random.key_data(leaf).sharding if isinstance(leaf, jax.Array) else None
        return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=sharding)
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return leaf
    if isinstance(leaf, jax.Array):
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding)
    return np.asarray(leaf)


def _finish(new: Any, old: Any, key_impl: str | None) -> Any:
    """A restored leaf in the kind of ``old``: NumPy stays NumPy, keys are keys again."""
    if not isinstance(old, jax.Array | jax.ShapeDtypeStruct):
        array = np.asarray(new)
        return array if isinstance(old, np.ndarray) else array[()]
    if isinstance(new, np.ndarray):  # an array with no elements, made here
        sharding = getattr(old, "sharding", None)
        if sharding is not None and key_impl is not None:
            sharding = jax.random.key_data(old).sharding if isinstance(old, jax.Array) else None
        new = jnp.asarray(new) if sharding is None else jax.device_put(new, sharding)
    # Leaves of ``like`` that JAX may still move (uncommitted, e.g. a step counter made by
    # jnp.zeros) come back uncommitted too, so they mix with arrays on any mesh.
    if getattr(old, "committed", True) is False:
        new = jnp.asarray(np.asarray(new))
    if key_impl is not None:
        new = jax.random.wrap_key_data(new, impl=key_impl)
    return new


def restore_checkpoint(path: str | os.PathLike, like: Any, *, verify: bool = True) -> Any:
    """Reads a checkpoint onto the structure and placements of ``like``.

    ``like`` may live on another mesh than the one that saved -- another shape, another
    placement (rows saved, columns restored), one device: each device reads only the
    pieces of its new shards. Values come back bit-identical.

    Before anything is read, every file is checked against the folder's manifest
    (:func:`verify_orbax_folder`); after reading, every array whose values this process
    holds whole is checked against its recorded SHA-256. A save that a kill interrupted
    between its two renames is recovered first (the old checkpoint is put back).

    A single-file ``.jxe`` checkpoint of jaxembed 0.1 is read too (its SHA-256 and every
    leaf checked), with a ``DeprecationWarning``: convert it with :func:`convert_checkpoint`.

    Args:
        path: the checkpoint folder (or an old ``.jxe`` file).
        like: a pytree of arrays or ``jax.ShapeDtypeStruct`` (with ``sharding``) giving
            the structure, shapes, dtypes and target placements (e.g. a freshly built
            train state); its values are not used. NumPy leaves come back as NumPy.
        verify: check the manifest and the arrays' checksums (``False`` reads any orbax
            folder, e.g. one written without jaxembed, with no integrity check).

    Returns:
        ``like``'s structure holding the saved values, placed like ``like``.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        CheckpointError: the folder is not a checkpoint, is damaged (names the file or
            array), or its tree's paths, shapes or dtypes differ from ``like``'s (lists
            each difference).

    Examples:
        >>> import tempfile, os
        >>> path = save_checkpoint(os.path.join(tempfile.mkdtemp(), "c"), {"t": jnp.ones((4, 2))})
        >>> restore_checkpoint(path, like={"t": jnp.zeros((4, 2))})["t"].tolist()
        [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
        >>> restore_checkpoint(path, like={"t": jnp.zeros((5, 2))})
        Traceback (most recent call last):
        ...
        jaxembed.checkpoint.CheckpointError: Checkpoint ... model expects shape (5, 2) float32.
    """
    given = Path(path).absolute()
    if given.is_file():
        return _restore_old_file(given, like, _open_old_file(given))
    ocp = _orbax()
    path = _files.recover_folder(given)
    if not path.is_dir():
        raise FileNotFoundError(f"No checkpoint at {str(given)!r}.")
    if verify:
        manifest = verify_orbax_folder(path)
    else:
        manifest = _read_manifest(path) if (path / _MANIFEST).is_file() else None
    stored_keys = {} if manifest is None else manifest.get("keys", {})
    empty = {} if manifest is None else manifest.get("empty", {})
    flat_like, treedef = jax.tree_util.tree_flatten_with_path(like)
    names = [_slash_path(key) for key, _ in flat_like]
    impls = [_key_impl(leaf) for _, leaf in flat_like]
    wants = [_abstract(leaf) for _, leaf in flat_like]
    # an array without elements was stored as one zero (orbax refuses empty arrays)
    placeholders = [
        np.zeros((1,), want.dtype) if name in empty and np.size(want) == 0 else want
        for name, want in zip(names, wants)
    ]
    abstract = jax.tree_util.tree_unflatten(treedef, placeholders)
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            stored = checkpointer.metadata(path).item_metadata.tree
        except Exception as error:  # orbax raises many kinds for a folder that is not a checkpoint
            raise CheckpointError(
                f"{str(path)!r} is not a readable orbax checkpoint: its metadata cannot be read "
                f"({type(error).__name__}: {error})."
            ) from None
        if not isinstance(stored, Mapping | list | tuple):
            raise CheckpointError(
                f"{str(path)!r} is not a readable orbax checkpoint: it records no tree of arrays "
                f"(found {type(stored).__name__})."
            )
        saved = {
            _slash_path(key): leaf
            for key, leaf in jax.tree_util.tree_flatten_with_path(
                stored, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype")
            )[0]
        }
        for name, shape in empty.items():
            if name in saved:
                saved[name] = jax.ShapeDtypeStruct(tuple(shape), saved[name].dtype)
        problems = _path_problems(names, list(saved))
        for name, impl, leaf in zip(names, impls, wants):
            if name not in saved:
                continue
            stored_impl = stored_keys.get(name, impl if manifest is None else None)
            have = (tuple(saved[name].shape), np.dtype(saved[name].dtype).name, stored_impl)
            want = (tuple(np.shape(leaf)), np.dtype(leaf.dtype).name, impl)
            if have != want:
                problems.append(f"{name}: checkpoint has {_stored(*have)}, model expects {_stored(*want)}")
        if problems:
            raise CheckpointError(
                f"Checkpoint {str(path)!r} does not match the model: " + "; ".join(problems) + "."
            )
        try:
            restored = checkpointer.restore(path, abstract)
        except Exception as error:
            raise CheckpointError(
                f"Checkpoint {str(path)!r} is corrupted: orbax cannot read its arrays "
                f"({type(error).__name__}: {error})."
            ) from None
    restored_leaves = [
        np.zeros(np.shape(want), want.dtype) if placeholder is not want else new
        for new, want, placeholder in zip(jax.tree_util.tree_leaves(restored), wants, placeholders)
    ]
    if manifest is not None and verify:
        recorded = manifest["arrays"]
        changed = []
        for name, leaf in zip(names, restored_leaves):
            array = _host_array(leaf)
            if name not in recorded:
                changed.append(f"{name} (not in the manifest)")
            elif recorded[name] is not None and array is not None and _array_digest(array) != recorded[name]:
                changed.append(name)
        if changed:
            raise CheckpointError(
                f"Checkpoint {str(path)!r} is corrupted: the restored values of {', '.join(changed)} "
                "do not match the SHA-256 recorded when it was saved."
            )
    return jax.tree_util.tree_unflatten(
        treedef,
        [_finish(new, old, impl) for new, (_, old), impl in zip(restored_leaves, flat_like, impls)],
    )


def _stored(shape: tuple[int, ...], dtype: str, key_impl: str | None) -> str:
    """How an orbax leaf is described: ``shape (4, 2) float32``, key data with its implementation."""
    return _describe(shape, dtype, None) + (f" (the data of key<{key_impl}>)" if key_impl else "")


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata`` dict stored by :func:`save_checkpoint`, read without reading any array.

    Only the manifest is read (it is written last, so it exists only for a complete save);
    :func:`verify_orbax_folder` or :func:`restore_checkpoint` check the data. An old
    ``.jxe`` file is verified and read, with a ``DeprecationWarning``.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        CheckpointError: no or damaged manifest (or a damaged old file).

    Examples:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt")
        >>> read_checkpoint_metadata(save_checkpoint(path, [jnp.zeros(1)], metadata={"step": 3}))
        {'step': 3}
    """
    given = Path(path).absolute()
    if given.is_file():
        return _open_old_file(given)["metadata"]
    folder = _files.recover_folder(given)
    if not folder.is_dir():
        raise FileNotFoundError(f"No checkpoint at {str(given)!r}.")
    return dict(_read_manifest(folder).get("metadata", {}))


def _path_problems(expected: list[str], stored: list[str]) -> list[str]:
    problems = []
    missing = [p for p in expected if p not in set(stored)]
    extra = [p for p in stored if p not in set(expected)]
    if missing:
        problems.append(f"missing from the checkpoint: {', '.join(missing)}")
    if extra:
        problems.append(f"in the checkpoint but not in the model: {', '.join(extra)}")
    return problems


# ------------------------------------------ jaxembed 0.1's single-file checkpoints (read-only)
def _warn_old_file(path: Path) -> None:
    warnings.warn(
        f"{str(path)!r} is a single-file checkpoint of jaxembed 0.1 (msgpack). It is read for now, "
        "but only orbax checkpoint folders are written and this reader will go: convert it with "
        "jaxembed.checkpoint.convert_checkpoint(old_file, new_folder, like=...).",
        DeprecationWarning,
        stacklevel=3,
    )


def _open_old_file(path: Path) -> dict[str, Any]:
    """The checked content of an old ``.jxe`` file; warns (after the checks) that it is deprecated."""
    content = _read_payload(path)
    _warn_old_file(path)
    return content


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {str(path)!r}.")
    raw = path.read_bytes()
    if not raw.startswith(_MAGIC):
        raise CheckpointError(
            f"{str(path)!r} is not a jaxembed checkpoint: checkpoints are folders, and this file is not a "
            f"single-file checkpoint of jaxembed 0.1 either (no {_MAGIC!r} header; first bytes: "
            f"{raw[: len(_MAGIC)]!r})."
        )
    digest = raw[len(_MAGIC) : len(_MAGIC) + _DIGEST_SIZE]
    payload = raw[len(_MAGIC) + _DIGEST_SIZE :]
    actual = hashlib.sha256(payload).digest()
    if digest != actual:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is corrupted: the SHA-256 of its {len(payload)}-byte payload is "
            f"{actual.hex()[:16]}..., but the header records {digest.hex()[:16]}... "
            "(truncated or modified after writing)."
        )
    try:
        content = msgpack.unpackb(payload, raw=False)
    except Exception as error:  # checksummed, so only a writer bug gets here
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is corrupted: cannot decode its payload ({error})."
        ) from None
    version = content.get("version") if isinstance(content, dict) else None
    if version != _FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} has format version {version!r}; "
            f"this jaxembed reads version {_FORMAT_VERSION}."
        )
    # The SHA-256 is not keyed: anyone can write a file whose checksum matches. So every
    # field is checked before it is used, and a forged one is a CheckpointError naming it.
    if not isinstance(content.get("leaves"), dict) or not isinstance(content.get("metadata"), dict):
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is malformed: expected a 'leaves' map and a 'metadata' map."
        )
    for name, entry in content["leaves"].items():
        problem = _entry_problem(entry)
        if problem:
            raise CheckpointError(f"Checkpoint {str(path)!r} is malformed: leaf {name!r} {problem}.")
    return content


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with one stored leaf, or ``None``."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data", "key_impl"}:
        return "must be a map of exactly 'dtype', 'shape', 'data' and 'key_impl'"
    shape, data, key_impl = entry["shape"], entry["data"], entry["key_impl"]
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        return f"has shape {shape!r}; expected a list of non-negative ints"
    try:
        dtype = np.dtype(jnp.dtype(entry["dtype"])) if isinstance(entry["dtype"], str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.hasobject or dtype.name != entry["dtype"]:
        return f"has dtype {entry['dtype']!r}; expected the name of a numeric dtype"
    needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not isinstance(data, bytes) or len(data) != needed:
        size = len(data) if isinstance(data, bytes) else type(data).__name__
        return f"has {size} bytes of data; shape {tuple(shape)} {dtype.name} needs {needed}"
    if key_impl is not None and not isinstance(key_impl, str):
        return f"has key_impl {key_impl!r}; expected None or a PRNG implementation name"
    return None


_OLD_ROW_SPARSE = (".opt_state.dense", ".opt_state.tables")


def _restore_old_file(
    path: Path, like: Any, content: dict[str, Any] | None = None, *, skip: str | None = None
) -> Any:
    """Reads an old ``.jxe`` file into ``like``'s structure (leaves under ``skip`` come from ``like``)."""
    stored = (content or _read_payload(path))["leaves"]
    template, treedef = jax.tree_util.tree_flatten_with_path(like)
    expected_paths = [jax.tree_util.keystr(key) for key, _ in template]
    if skip is not None:
        stored = {name: entry for name, entry in stored.items() if not name.startswith(skip)}
        kept = [not name.startswith(skip) for name in expected_paths]
    else:
        kept = [True] * len(expected_paths)
    if any(name.startswith(_OLD_ROW_SPARSE) for name in stored) and any(
        name.startswith(".opt_state.inner") for name in expected_paths
    ):
        raise CheckpointError(
            f"Checkpoint {str(path)!r} was saved by jaxembed 0.1.0's row-sparse trainer: its optimizer "
            "state is RowSparseOptState(dense=..., tables=...) (one lazy state per table), while today's "
            "row-sparse state is RowSparseOptState(inner=tx.init(params)); the two do not match leaf by "
            "leaf. Its parameters and step still load: convert_checkpoint(old_file, new_folder, "
            "like=trainer.state, optimizer_state='reset') keeps them and starts the optimizer state "
            "afresh."
        )
    wanted = [name for name, keep in zip(expected_paths, kept) if keep]
    problems = _path_problems(wanted, list(stored))
    for name, (_, leaf) in zip(expected_paths, template):
        if name not in stored:
            continue
        problem = _leaf_mismatch(name, stored[name], leaf)
        if problem:
            problems.append(problem)
    if problems:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} does not match the model: " + "; ".join(problems) + "."
        )
    leaves = [
        _decode_leaf(stored[name], leaf) if keep else leaf
        for name, keep, (_, leaf) in zip(expected_paths, kept, template)
    ]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _decode_leaf(entry: dict[str, Any], like: Any) -> Any:
    array = np.frombuffer(entry["data"], dtype=jnp.dtype(entry["dtype"])).reshape(entry["shape"]).copy()
    sharding = getattr(like, "sharding", None)
    if entry["key_impl"] is not None:
        key = jax.random.wrap_key_data(array, impl=entry["key_impl"])
        return key if sharding is None else jax.device_put(key, sharding)
    if isinstance(like, jax.Array | jax.ShapeDtypeStruct):
        return jnp.asarray(array) if sharding is None else jax.device_put(array, sharding)
    if isinstance(like, np.ndarray):
        return array
    return array[()] if array.ndim == 0 else array


def convert_checkpoint(
    old_file: str | os.PathLike,
    new_folder: str | os.PathLike,
    *,
    like: Any,
    optimizer_state: Literal["keep", "reset"] = "keep",
    overwrite: bool = False,
) -> Path:
    """Converts a single-file ``.jxe`` checkpoint of jaxembed 0.1 into a checkpoint folder.

    The old file is verified (its SHA-256 and every leaf) and read into ``like``'s
    structure, exactly as the old ``restore_checkpoint`` did, then written with
    :func:`save_checkpoint` (its metadata too). The old file is left as it is.

    A row-sparse train state saved by jaxembed 0.1.0 kept its optimizer state as
    ``RowSparseOptState(dense=..., tables=...)``, which today's
    ``RowSparseOptState(inner=...)`` cannot take leaf by leaf: pass
    ``optimizer_state="reset"`` to keep the parameters, other variables and step and take
    the optimizer state from ``like`` (a freshly initialized one).

    Args:
        old_file: the ``.jxe`` file.
        new_folder: the checkpoint folder to write.
        like: the template the old file is read into, e.g. ``trainer.state`` of a freshly
            built :class:`jaxembed.train.Trainer` of the same model and optimizer.
        optimizer_state: ``"keep"`` (convert it too) or ``"reset"`` (``like.opt_state``).
        overwrite: replace an existing checkpoint at ``new_folder``.

    Returns:
        The new checkpoint folder.

    Raises:
        FileNotFoundError: no file at ``old_file``.
        CheckpointError: the old file is damaged or does not match ``like`` (names each leaf).
        FileExistsError: ``new_folder`` exists and ``overwrite`` is false.

    Examples:
        >>> import tempfile, os
        >>> from jaxembed.checkpoint import _write_old_file
        >>> folder = tempfile.mkdtemp()
        >>> old = _write_old_file(os.path.join(folder, "old.jxe"), {"t": jnp.ones(2)}, {"step": 5})
        >>> new = convert_checkpoint(old, os.path.join(folder, "new"), like={"t": jnp.zeros(2)})
        >>> restore_checkpoint(new, like={"t": jnp.zeros(2)})["t"].tolist(), read_checkpoint_metadata(new)
        ([1.0, 1.0], {'step': 5})
    """
    old_file = Path(old_file).absolute()
    _checks.one_of("optimizer_state", optimizer_state, ("keep", "reset"))
    content = _read_payload(old_file)
    if optimizer_state == "reset":
        if not hasattr(like, "opt_state") or not hasattr(like, "_replace"):
            raise ValueError(
                "`optimizer_state='reset'` needs `like` to be a train state with an `opt_state` field "
                f"(trainer.state). Received: like of type {type(like).__name__}."
            )
        tree = _restore_old_file(old_file, like, content, skip=".opt_state")
    else:
        tree = _restore_old_file(old_file, like, content)
    return save_checkpoint(new_folder, tree, metadata=content["metadata"], overwrite=overwrite)


def _write_old_file(path: str | os.PathLike, tree: Any, metadata: Mapping[str, Any] | None = None) -> Path:
    """Writes ``tree`` in jaxembed 0.1's single-file format (for tests and examples of conversion only)."""

    def encode(leaf: Any) -> dict[str, Any]:
        key_impl = _key_impl(leaf)
        array = np.asarray(jax.device_get(jax.random.key_data(leaf) if key_impl else leaf))
        return {
            "dtype": array.dtype.name,
            "shape": list(array.shape),
            "data": np.ascontiguousarray(array).tobytes(),
            "key_impl": key_impl,
        }

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    payload = msgpack.packb(
        {
            "version": _FORMAT_VERSION,
            "leaves": {jax.tree_util.keystr(key): encode(leaf) for key, leaf in leaves},
            "metadata": dict(metadata or {}),
        },
        use_bin_type=True,
    )
    return _files.write_bytes(Path(path), _MAGIC + hashlib.sha256(payload).digest() + payload)


# ---------------------------------------------------------------- a run's checkpoints
_STEP = re.compile(r"^(0|[1-9][0-9]*)$")
_SET_ASIDE = re.compile(r"^\.(0|[1-9][0-9]*)\.(old|new|deleted)-")


class CheckpointManager:
    """A run's checkpoints as step folders: keep the last N (or the N best), list them, restore one.

    Every step is a folder ``directory/<step>`` written by :func:`save_checkpoint` (orbax
    arrays, integrity manifest, atomic swap); its metadata holds ``"step"``, ``"metrics"``
    and the ``metadata`` you pass. A step counts (:meth:`all_steps`) once its folder is
    complete -- a kill mid-save leaves the earlier steps as they were. After each save the
    steps beyond ``max_to_keep`` are deleted: the oldest ones, or with ``best_fn`` the
    worst-scoring ones. The newest step is never deleted (so a run can always resume from
    it; with ``best_fn`` up to ``max_to_keep + 1`` folders remain), and a step is deleted
    by renaming it aside first, so a kill mid-delete never leaves a half-deleted step.

    The names and semantics follow orbax's ``CheckpointManager`` (``max_to_keep``,
    ``best_fn``, ``best_mode``, ``all_steps``, ``latest_step``, ``best_step``). It is a small
    layer on :func:`save_checkpoint` rather than orbax's manager because orbax's manager
    finalizes a step folder before jaxembed's manifest could be written into it (a kill in
    between would leave a step that orbax lists but that has no integrity check), and its
    clean-up deletes folders in place. One process writes to a ``directory`` at a time (in a
    multi-process run, save with :func:`save_checkpoint`, which every process calls).

    Args:
        directory: the folder holding the step folders (created on the first save).
        max_to_keep: how many steps to keep; ``None`` keeps every step.
        best_fn: the score of a step: a key of its ``metrics`` (e.g. ``"val_loss"``) or a
            function ``metrics -> float``. Without it the newest steps are kept. A step
            without metrics, or whose score is NaN or infinite, ranks below every other.
        best_mode: ``"min"`` (lower scores are better) or ``"max"``.

    Raises:
        ValueError: ``max_to_keep`` is not a positive integer or ``best_mode`` not min/max.
        TypeError: ``best_fn`` is neither a string nor callable.

    Examples:
        >>> import tempfile
        >>> manager = CheckpointManager(tempfile.mkdtemp(), max_to_keep=2)
        >>> for step in (10, 20, 30):
        ...     _ = manager.save(step, {"w": jnp.full(2, step)}, metrics={"loss": 1 / step})
        >>> manager.all_steps(), manager.latest_step()
        ([20, 30], 30)
        >>> manager.restore(like={"w": jnp.zeros(2, jnp.int32)})["w"].tolist()
        [30, 30]

        Keep the best step by a metric (and the newest one, to resume from):

        >>> best = CheckpointManager(tempfile.mkdtemp(), max_to_keep=1, best_fn="val_loss")
        >>> for step, loss in [(1, 0.5), (2, 0.2), (3, 0.9)]:
        ...     _ = best.save(step, {"w": jnp.ones(2)}, metrics={"val_loss": loss})
        >>> best.all_steps(), best.best_step(), best.metrics(2)
        ([2, 3], 2, {'val_loss': 0.2})
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_to_keep: int | None = None,
        best_fn: str | Callable[[Mapping[str, float]], float] | None = None,
        best_mode: Literal["min", "max"] = "min",
    ):
        self.directory = Path(directory).absolute()
        self.max_to_keep = _checks.positive_int("max_to_keep", max_to_keep, allow_none=True)
        if best_fn is not None and not isinstance(best_fn, str) and not callable(best_fn):
            raise TypeError(
                "`best_fn` must be a metric name, a function of the metrics, or None. "
                f"Received: best_fn={_checks.described(best_fn)}."
            )
        self.best_fn = best_fn
        self.best_mode = _checks.one_of("best_mode", best_mode, ("min", "max"))

    def __repr__(self) -> str:
        return (
            f"CheckpointManager({str(self.directory)!r}, max_to_keep={self.max_to_keep!r}, "
            f"best_fn={self.best_fn!r}, best_mode={self.best_mode!r})"
        )

    def step_path(self, step: int) -> Path:
        """The folder of ``step`` (whether or not it exists).

        Examples:
            >>> CheckpointManager("run").step_path(12).name
            '12'
        """
        return self.directory / str(_checks.integer("step", step, minimum=0))

    def all_steps(self) -> list[int]:
        """The steps whose checkpoint is complete, in increasing order.

        Examples:
            >>> import tempfile
            >>> CheckpointManager(tempfile.mkdtemp()).all_steps()
            []
        """
        if not self.directory.is_dir():
            return []
        candidates = set()
        for entry in self.directory.iterdir():
            match = _STEP.match(entry.name) or _SET_ASIDE.match(entry.name)
            if match and (match.re is _STEP or match.group(2) == "old"):
                candidates.add(int(match.group(1)))
        steps = []
        for step in sorted(candidates):
            folder = _files.recover_folder(self.directory / str(step))  # an interrupted overwrite
            if (folder / _MANIFEST).is_file():
                steps.append(step)
        return steps

    def latest_step(self) -> int | None:
        """The newest complete step, or ``None`` if there is none."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def metadata(self, step: int | None = None) -> dict[str, Any]:
        """The metadata of ``step`` (default: the latest): ``"step"``, ``"metrics"`` and yours."""
        return read_checkpoint_metadata(self._existing(step))

    def metrics(self, step: int | None = None) -> dict[str, float]:
        """The metrics saved with ``step`` (default: the latest); ``{}`` if none were given."""
        return dict(self.metadata(step).get("metrics", {}))

    def _score(self, step: int) -> float | None:
        metrics = self.metrics(step)
        try:
            score = float(metrics[self.best_fn] if isinstance(self.best_fn, str) else self.best_fn(metrics))
        except (KeyError, TypeError, ValueError):
            return None
        if not math.isfinite(score):
            return None
        return score if self.best_mode == "max" else -score

    def _ranked(self, steps: list[int]) -> list[int]:
        """``steps``, best first (a higher score, then a newer step); unscored steps last."""
        scores = {step: self._score(step) for step in steps}
        return sorted(steps, key=lambda s: (scores[s] is not None, scores[s] or 0.0, s), reverse=True)

    def best_step(self) -> int | None:
        """The step with the best score (``best_fn``), or the latest step without ``best_fn``.

        ``None`` if there is no step, or no step has a finite score.
        """
        steps = self.all_steps()
        if self.best_fn is None or not steps:
            return steps[-1] if steps else None
        best = self._ranked(steps)[0]
        return best if self._score(best) is not None else None

    def save(
        self,
        step: int,
        tree: Any,
        *,
        metrics: Mapping[str, float] | None = None,
        metadata: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Saves ``tree`` as ``step``, then deletes the steps beyond ``max_to_keep``; returns the folder.

        Args:
            step: a non-negative integer (e.g. the optimizer step).
            tree: the pytree to save (see :func:`save_checkpoint`).
            metrics: numbers describing this step (e.g. the epoch's logs), scored by ``best_fn``.
            metadata: more JSON-able values to store (not the keys ``"step"`` or ``"metrics"``).
            overwrite: replace an existing checkpoint of this step.

        Returns:
            The step's folder.

        Raises:
            FileExistsError: the step exists and ``overwrite`` is false.
            ValueError: ``metrics`` is not a dict of numbers, or ``metadata`` not a JSON-able
                dict without the keys ``"step"`` and ``"metrics"``.
        """
        path = self.step_path(step)
        numbers = {}
        for name, value in (metrics or {}).items():
            try:
                numbers[str(name)] = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    "`metrics` must be a dict of numbers. "
                    f"Received: metrics[{name!r}]={_checks.described(value)}."
                ) from None
        user = _json_metadata("metadata", metadata)
        reserved = sorted({"step", "metrics"} & set(user))
        if reserved:
            raise ValueError(
                f"`metadata` may not use the keys {reserved} (the manager stores the step and metrics "
                f"there). Received: metadata={user!r}."
            )
        self._clean()
        saved = save_checkpoint(
            path, tree, metadata={**user, "step": int(path.name), "metrics": numbers}, overwrite=overwrite
        )
        self._collect()
        return saved

    def restore(self, like: Any, step: int | None = None, *, verify: bool = True) -> Any:
        """Restores ``step`` (default: the latest) onto ``like``; see :func:`restore_checkpoint`.

        Raises:
            FileNotFoundError: there is no complete checkpoint of ``step`` (or none at all).
        """
        return restore_checkpoint(self._existing(step), like, verify=verify)

    def _existing(self, step: int | None) -> Path:
        steps = self.all_steps()
        if step is None:
            if not steps:
                raise FileNotFoundError(f"No complete checkpoint in {str(self.directory)!r}.")
            step = steps[-1]
        path = self.step_path(step)
        if int(path.name) not in steps:
            raise FileNotFoundError(
                f"No complete checkpoint of step {int(path.name)} in {str(self.directory)!r}; "
                f"the steps there are {steps}."
            )
        return path

    def _clean(self) -> None:
        """Deletes what killed saves and deletions left (one writer per directory)."""
        if not self.directory.is_dir():
            return
        for entry in self.directory.iterdir():
            match = _SET_ASIDE.match(entry.name)
            if match and match.group(2) in ("new", "deleted"):
                shutil.rmtree(entry, ignore_errors=True)

    def _collect(self) -> None:
        if self.max_to_keep is None:
            return
        steps = self.all_steps()
        if len(steps) <= self.max_to_keep:
            return
        ranked = steps[::-1] if self.best_fn is None else self._ranked(steps)
        keep = set(ranked[: self.max_to_keep]) | {steps[-1]}  # never the newest complete step
        for step in steps:
            if step not in keep:
                _files.remove_folder(self.step_path(step))  # renamed aside, then deleted


# ---------------------------------------------------------------- the old names
def _save_sharded_checkpoint(path: str | os.PathLike, tree: Any, *, overwrite: bool = False) -> Path:
    return save_checkpoint(path, tree, overwrite=overwrite)


def _restore_sharded_checkpoint(path: str | os.PathLike, like: Any, *, verify: bool = True) -> Any:
    return restore_checkpoint(path, like, verify=verify)


_DEPRECATED = {
    "save_sharded_checkpoint": ("save_checkpoint", _save_sharded_checkpoint),
    "restore_sharded_checkpoint": ("restore_checkpoint", _restore_sharded_checkpoint),
}


def __getattr__(name: str) -> Any:
    """``save_sharded_checkpoint`` / ``restore_sharded_checkpoint``: old names, with a warning."""
    if name in _DEPRECATED:
        new, function = _DEPRECATED[name]
        warnings.warn(
            f"jaxembed.checkpoint.{name} is deprecated: use jaxembed.checkpoint.{new}, which writes and "
            "reads the same orbax folders, sharded or not.",
            DeprecationWarning,
            stacklevel=2,
        )
        return function
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------- streamed checkpoints (orbax, block by block)
_STREAM_MANIFEST = "jaxembed-streamed.json"


def save_streamed_checkpoint(
    path: str | os.PathLike, tree: Any, *, block_bytes: int = 64 * 2**20, overwrite: bool = False
) -> Path:
    """Saves a pytree of arrays with orbax block by block, so the save needs only a block's memory.

    :func:`save_checkpoint` hands orbax whole arrays, and orbax copies each to host
    memory before writing: saving a 12.8 GB table needs 12.8 GB more. Here every array is cut
    into blocks of rows (at most ``block_bytes`` each) and each block is one small orbax save, so
    the extra memory is one block. Arrays are written in their own dtype (a bfloat16 table stays
    bfloat16). The folder is written beside ``path`` and swapped in when complete
    (:func:`jaxembed._files.atomic_folder`: a kill leaves the old checkpoint or the new one).

    Args:
        path: the checkpoint folder (must not exist unless ``overwrite``).
        tree: a pytree of arrays (PRNG keys are saved as their key data).
        block_bytes: the largest block, in bytes.
        overwrite: replace an existing checkpoint at ``path``.

    Returns:
        The checkpoint folder.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.

    Examples:
        >>> import tempfile, os
        >>> tree = {"table": jnp.arange(12.0, dtype=jnp.bfloat16).reshape(6, 2), "step": jnp.int32(3)}
        >>> path = save_streamed_checkpoint(os.path.join(tempfile.mkdtemp(), "c"), tree, block_bytes=8)
        >>> back = restore_streamed_checkpoint(path, like=tree)
        >>> back["table"].dtype, back["table"][:, 0].tolist(), int(back["step"])
        (dtype(bfloat16), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0], 3)
    """
    ocp = _orbax()
    path = _files.recover_folder(Path(path).absolute())
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"A checkpoint already exists at {str(path)!r}; pass overwrite=True to replace it."
        )
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, int) or block_bytes < 1:
        raise ValueError(f"`block_bytes` must be a positive integer. Received: block_bytes={block_bytes!r}.")
    entries = []
    with _files.atomic_folder(path) as temporary:
        with ocp.StandardCheckpointer() as checkpointer:
            for number, (key, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(tree)[0]):
                key_impl = str(jax.random.key_impl(leaf)) if _is_key_array(leaf) else None
                array = jax.random.key_data(leaf) if key_impl else jnp.asarray(leaf)
                rows = array.shape[0] if array.ndim else 1
                row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize)
                block_rows = max(1, block_bytes // row_bytes) if array.ndim else 1
                starts = list(range(0, rows, block_rows)) or [0]
                for block, start in enumerate(starts):
                    piece = array[start : start + block_rows] if array.ndim else array
                    checkpointer.save(temporary / f"{number}" / f"{block}", {"block": piece})
                    checkpointer.wait_until_finished()
                entries.append(
                    {
                        "path": _slash_path(key),
                        "shape": list(array.shape),
                        "dtype": array.dtype.name,
                        "key_impl": key_impl,
                        "block_rows": block_rows,
                        "blocks": len(starts),
                    }
                )
        (temporary / _STREAM_MANIFEST).write_text(json.dumps({"format": 1, "leaves": entries}))
    return path


@functools.partial(jax.jit, donate_argnums=0)
def _write_rows(array: jax.Array, block: jax.Array, start: jax.Array) -> jax.Array:
    return jax.lax.dynamic_update_slice_in_dim(array, block.astype(array.dtype), start, axis=0)


def restore_streamed_checkpoint(path: str | os.PathLike, like: Any) -> Any:
    """Reads a :func:`save_streamed_checkpoint` folder block by block into arrays shaped like ``like``.

    Each array is allocated once in its own dtype and filled in place, one block at a time:
    the extra memory is a block or two, not a copy of the array.

    Args:
        path: the checkpoint folder.
        like: a pytree of arrays or ``jax.ShapeDtypeStruct`` with the structure, shapes and dtypes.

    Returns:
        ``like``'s structure holding the saved values.

    Raises:
        FileNotFoundError: no streamed checkpoint at ``path``.
        CheckpointError: the saved paths, shapes or dtypes differ from ``like``'s (each is named).

    Examples:
        >>> import tempfile, os
        >>> path = save_streamed_checkpoint(os.path.join(tempfile.mkdtemp(), "c"), {"t": jnp.ones((3, 2))})
        >>> restore_streamed_checkpoint(path, {"t": jnp.zeros((3, 1))})
        Traceback (most recent call last):
        ...
        jaxembed.checkpoint.CheckpointError: Checkpoint ... model expects shape (3, 1) float32.
    """
    ocp = _orbax()
    path = _files.recover_folder(Path(path).absolute())
    manifest = path / _STREAM_MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"No streamed checkpoint at {str(path)!r} (no {_STREAM_MANIFEST}).")
    entries = json.loads(manifest.read_text())["leaves"]
    flat, treedef = jax.tree_util.tree_flatten_with_path(like)
    wanted = {_slash_path(key): leaf for key, leaf in flat}
    saved = {entry["path"]: entry for entry in entries}
    problems = _path_problems(list(wanted), list(saved))
    for name, leaf in wanted.items():
        entry = saved.get(name)
        if entry is None:
            continue
        problem = _leaf_mismatch(name, entry, leaf)
        if problem:
            problems.append(problem)
    if problems:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} does not match the model: " + "; ".join(problems) + "."
        )
    number = {entry["path"]: i for i, entry in enumerate(entries)}
    out = []
    with ocp.StandardCheckpointer() as checkpointer:
        for key, leaf in flat:
            entry = saved[_slash_path(key)]
            shape, dtype = tuple(entry["shape"]), jnp.dtype(entry["dtype"])
            folder = path / str(number[entry["path"]])
            if not shape:
                array = checkpointer.restore(folder / "0", {"block": jax.ShapeDtypeStruct((), dtype)})[
                    "block"
                ]
            else:
                array = jnp.zeros(shape, dtype)
                for block in range(entry["blocks"]):
                    start = block * entry["block_rows"]
                    rows = min(entry["block_rows"], shape[0] - start)
                    abstract = {"block": jax.ShapeDtypeStruct((rows, *shape[1:]), dtype)}
                    piece = checkpointer.restore(folder / str(block), abstract)["block"]
                    array = _write_rows(array, piece, jnp.int32(start))
                    del piece
            if entry["key_impl"]:
                array = jax.random.wrap_key_data(array, impl=entry["key_impl"])
            out.append(array)
    return jax.tree_util.tree_unflatten(treedef, out)
