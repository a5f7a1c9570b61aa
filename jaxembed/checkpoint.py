"""Checkpoints of any pytree of arrays: atomic writes, bit-identical restores, clear errors.

A checkpoint is one file: a magic header, the SHA-256 of the payload, and a
msgpack payload holding every leaf's raw bytes, dtype and shape under its pytree
path (``jax.tree_util.keystr``). Writing goes to a temporary file in the same
folder that is fsynced and then renamed over the target (``os.replace``), so a
crash mid-save leaves the previous checkpoint intact. Restoring needs a
template pytree (``like``) of the same structure: every leaf is checked against
it (path, shape and dtype), and the error names what does not match.

:class:`jaxembed.train.Trainer` uses these functions for model + optimizer
state + step; they work for any pytree (``nnx.State``, optax states, dicts).

Examples:
    >>> import tempfile, os
    >>> tree = {"table": jnp.arange(6.0).reshape(3, 2), "step": jnp.int32(7)}
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.jxe")
    >>> _ = save_checkpoint(path, tree, metadata={"note": "demo"})
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
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import msgpack
import numpy as np

from jaxembed import _files

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "restore_checkpoint",
    "read_checkpoint_metadata",
    "save_sharded_checkpoint",
    "restore_sharded_checkpoint",
    "write_orbax_manifest",
    "verify_orbax_folder",
    "save_streamed_checkpoint",
    "restore_streamed_checkpoint",
]

_MAGIC = b"JAXEMBED-CKPT\x00"
_FORMAT_VERSION = 1
_DIGEST_SIZE = 32  # sha256


class CheckpointError(ValueError):
    """A checkpoint file is corrupted, not a checkpoint, or does not match the template."""


def _is_key_array(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _encode_leaf(leaf: Any) -> dict[str, Any]:
    key_impl = None
    if _is_key_array(leaf):
        key_impl = str(jax.random.key_impl(leaf))
        leaf = jax.random.key_data(leaf)
    array = np.asarray(jax.device_get(leaf))
    return {
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "data": np.ascontiguousarray(array).tobytes(),
        "key_impl": key_impl,
    }


def _describe(shape: Any, dtype: Any, key_impl: str | None) -> str:
    kind = f"key<{key_impl}>" if key_impl else str(dtype)
    return f"shape {tuple(shape)} {kind}"


def save_checkpoint(path: str | os.PathLike, tree: Any, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Writes every leaf of ``tree`` to ``path`` atomically; returns the path.

    Args:
        path: file to write; its folder is created if missing. An existing file
            is replaced only once the new one is completely on disk.
        tree: a pytree of arrays (NumPy, JAX, typed PRNG keys) and scalars.
        metadata: small msgpack-able dict stored alongside (e.g. the step).

    Returns:
        The checkpoint's path.

    Examples:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a", "ckpt.jxe")
        >>> save_checkpoint(path, {"w": jnp.ones(2)}).name
        'ckpt.jxe'
    """
    path = Path(path)
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    payload = msgpack.packb(
        {
            "version": _FORMAT_VERSION,
            "leaves": {jax.tree_util.keystr(key): _encode_leaf(leaf) for key, leaf in leaves},
            "metadata": dict(metadata or {}),
        },
        use_bin_type=True,
    )
    digest = hashlib.sha256(payload).digest()
    _files.write_bytes(path, _MAGIC + digest + payload)
    return path


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {str(path)!r}.")
    raw = path.read_bytes()
    if not raw.startswith(_MAGIC):
        raise CheckpointError(
            f"{str(path)!r} is not a jaxembed checkpoint: it does not start with the header {_MAGIC!r} "
            f"(first bytes: {raw[: len(_MAGIC)]!r})."
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


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata`` dict stored by :func:`save_checkpoint` (the file is verified first).

    Examples:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.jxe")
        >>> read_checkpoint_metadata(save_checkpoint(path, [jnp.zeros(1)], metadata={"step": 3}))
        {'step': 3}
    """
    return _read_payload(Path(path))["metadata"]


def restore_checkpoint(path: str | os.PathLike, like: Any) -> Any:
    """Reads a checkpoint into a pytree with the structure, shapes and dtypes of ``like``.

    Leaves come back bit-identical to what was saved, as JAX arrays placed with
    the sharding of the matching leaf of ``like`` (NumPy leaves stay NumPy).

    Args:
        path: a file written by :func:`save_checkpoint`.
        like: template pytree (e.g. the freshly built model state); its values
            are not used, only its paths, shapes, dtypes and placements.

    Returns:
        A pytree with ``like``'s structure holding the saved values.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is corrupted or not a checkpoint, or its leaves
            do not match ``like`` (the message names each path and both shapes).

    Examples:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.jxe")
        >>> _ = save_checkpoint(path, {"table": jnp.zeros((4, 2))})
        >>> restore_checkpoint(path, like={"table": jnp.zeros((5, 2))})
        Traceback (most recent call last):
        ...
        jaxembed.checkpoint.CheckpointError: Checkpoint ... model expects shape (5, 2) float32.
    """
    path = Path(path)
    stored = _read_payload(path)["leaves"]
    template, treedef = jax.tree_util.tree_flatten_with_path(like)
    expected_paths = [jax.tree_util.keystr(key) for key, _ in template]
    problems = _path_problems(expected_paths, list(stored))
    for name, (_, leaf) in zip(expected_paths, template):
        if name not in stored:
            continue
        entry = stored[name]
        key_impl = str(jax.random.key_impl(leaf)) if _is_key_array(leaf) else None
        if key_impl is not None:
            want_shape, want_dtype = jax.random.key_data(leaf).shape, jax.random.key_data(leaf).dtype
        else:
            want_shape, want_dtype = (
                np.shape(leaf),
                (leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype),
            )
        if (tuple(entry["shape"]), entry["dtype"], entry["key_impl"]) != (
            tuple(want_shape),
            np.dtype(want_dtype).name,
            key_impl,
        ):
            problems.append(
                f"{name}: checkpoint has {_describe(entry['shape'], entry['dtype'], entry['key_impl'])}, "
                f"model expects {_describe(want_shape, np.dtype(want_dtype).name, key_impl)}"
            )
    if problems:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} does not match the model: " + "; ".join(problems) + "."
        )
    leaves = [_decode_leaf(stored[name], leaf) for name, (_, leaf) in zip(expected_paths, template)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _path_problems(expected: list[str], stored: list[str]) -> list[str]:
    problems = []
    missing = [p for p in expected if p not in set(stored)]
    extra = [p for p in stored if p not in set(expected)]
    if missing:
        problems.append(f"missing from the checkpoint: {', '.join(missing)}")
    if extra:
        problems.append(f"in the checkpoint but not in the model: {', '.join(extra)}")
    return problems


def _decode_leaf(entry: dict[str, Any], like: Any) -> Any:
    array = np.frombuffer(entry["data"], dtype=jnp.dtype(entry["dtype"])).reshape(entry["shape"]).copy()
    if entry["key_impl"] is not None:
        return jax.device_put(jax.random.wrap_key_data(array, impl=entry["key_impl"]), like.sharding)
    if isinstance(like, jax.Array):
        return jax.device_put(array, like.sharding)
    if isinstance(like, np.ndarray):
        return array
    return array[()] if array.ndim == 0 else array


# --------------------------------------------------------- sharded checkpoints (orbax)
def _orbax() -> Any:
    try:
        import orbax.checkpoint as ocp
    except ImportError:  # pragma: no cover - the sharding extra installs it
        raise ImportError(
            "Sharded checkpoints need orbax-checkpoint: pip install 'jaxembed[sharding]'."
        ) from None
    return ocp


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


def write_orbax_manifest(folder: str | os.PathLike, tree: Any) -> Path:
    """Writes the integrity manifest of an orbax checkpoint folder; returns its path.

    The manifest (``jaxembed_manifest.json``, written last and atomically) holds the
    SHA-256 and size of every file orbax wrote and the SHA-256 of every array of ``tree``
    (dtype, shape and bytes; arrays that other processes share are covered by the file
    checksums only). :func:`verify_orbax_folder` and :func:`restore_sharded_checkpoint`
    check it, so any orbax checkpoint folder can carry it.

    Args:
        folder: a complete orbax checkpoint folder.
        tree: the pytree that was saved into it.

    Returns:
        The manifest's path.

    Examples:
        >>> import tempfile, os
        >>> path = save_sharded_checkpoint(os.path.join(tempfile.mkdtemp(), "c"), {"t": jnp.ones(2)})
        >>> write_orbax_manifest(path, {"t": jnp.ones(2)}).name
        'jaxembed_manifest.json'
    """
    folder = Path(folder)
    files = {}
    for name in _folder_files(folder):
        files[name] = {"size": (folder / name).stat().st_size, "sha256": _files_digest(folder / name)}
    arrays = {}
    for key, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        array = _host_array(leaf)
        arrays[_slash_path(key)] = None if array is None else _array_digest(array)
    document = {"format": _MANIFEST_FORMAT, "version": 1, "files": files, "arrays": arrays}
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
            "save_sharded_checkpoint, or its save did not finish. Pass verify=False to read an orbax "
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
        and all(
            isinstance(entry, dict)
            and isinstance(entry.get("size"), int)
            and isinstance(entry.get("sha256"), str)
            for entry in document["files"].values()
        )
        and all(entry is None or isinstance(entry, str) for entry in document["arrays"].values())
    )
    if not ok:
        raise CheckpointError(
            f"{where}: its {_MANIFEST} is corrupted or of another version (expected format "
            f"{_MANIFEST_FORMAT!r} version 1 with 'files' and 'arrays')."
        )
    return document


def verify_orbax_folder(path: str | os.PathLike) -> dict[str, Any]:
    """Checks every file of an orbax checkpoint folder against its manifest; returns the manifest.

    Raises:
        FileNotFoundError: no folder at ``path``.
        CheckpointError: no or damaged manifest, or a file that is missing, of another size,
            with another SHA-256 or not listed (the message names the file).

    Examples:
        >>> import tempfile, os
        >>> path = save_sharded_checkpoint(os.path.join(tempfile.mkdtemp(), "c"), {"t": jnp.ones(2)})
        >>> sorted(verify_orbax_folder(path)["arrays"])
        ['t']
    """
    folder = _files.recover_folder(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"No sharded checkpoint folder at {str(Path(path).absolute())!r}.")
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


def save_sharded_checkpoint(path: str | os.PathLike, tree: Any, *, overwrite: bool = False) -> Path:
    """Saves a pytree of (possibly sharded) arrays with orbax-checkpoint; returns the folder.

    Every device writes its own shards (every process, in a multi-process run,
    must call this with the same ``path``). The checkpoint is written into a new
    folder beside ``path``, with an integrity manifest (:func:`write_orbax_manifest`)
    written last; only then is it swapped in (old folder renamed aside, new one renamed
    in, old one deleted). A kill at any moment leaves the old checkpoint or the
    new one restorable, never a mix and never neither.

    Args:
        path: the checkpoint folder (must not exist unless ``overwrite``).
        tree: a pytree of JAX arrays, e.g. a ``TrainState`` whose table is placed on a mesh.
        overwrite: replace an existing checkpoint at ``path`` (it stays until the new
            one is complete).

    Returns:
        The checkpoint folder.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.

    Examples:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt")
        >>> save_sharded_checkpoint(path, {"table": jnp.ones((4, 2))}).name
        'ckpt'
    """
    ocp = _orbax()
    path = _files.recover_folder(Path(path).absolute())
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"A checkpoint already exists at {str(path)!r}; pass overwrite=True to replace it."
        )
    if jax.process_count() > 1:
        return _save_sharded_multiprocess(ocp, path, tree)
    with _files.atomic_folder(path) as temporary:
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(temporary, tree, force=True)  # our own empty folder
            checkpointer.wait_until_finished()
        write_orbax_manifest(temporary, tree)
    return path


def _save_sharded_multiprocess(ocp: Any, path: Path, tree: Any) -> Path:
    """Every process writes its shards into one shared new folder; process 0 seals and swaps it in."""
    from jax.experimental import multihost_utils

    temporary = path.parent / f".{path.name}.new-processes"
    if jax.process_index() == 0:
        _files.recover_folder(path, clean=True)  # also removes a stale shared folder
    multihost_utils.sync_global_devices(f"jaxembed save {path}: start")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(temporary, tree, force=True)
        checkpointer.wait_until_finished()
    multihost_utils.sync_global_devices(f"jaxembed save {path}: written")
    if jax.process_index() == 0:
        write_orbax_manifest(temporary, tree)  # arrays split over processes: covered by file checksums
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
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return leaf
    return jax.ShapeDtypeStruct(np.shape(leaf), leaf.dtype, sharding=getattr(leaf, "sharding", None))


def restore_sharded_checkpoint(path: str | os.PathLike, like: Any, *, verify: bool = True) -> Any:
    """Reads a :func:`save_sharded_checkpoint` folder onto the placements of ``like``.

    ``like`` may live on another mesh than the one that saved -- another shape,
    another placement (rows saved, columns restored): each device reads only the
    pieces of its new shards.

    Before anything is read, every file is checked against the folder's manifest
    (:func:`verify_orbax_folder`); after reading, every array whose values this process
    holds whole is checked against its recorded SHA-256. A save that a kill interrupted
    between its two renames is recovered first (the old checkpoint is put back).

    Args:
        path: the checkpoint folder.
        like: a pytree of arrays or ``jax.ShapeDtypeStruct`` (with ``sharding``) giving
            the structure, shapes, dtypes and target placements.
        verify: check the manifest and the arrays' checksums (``False`` reads any orbax
            folder, e.g. one written without jaxembed, with no integrity check).

    Returns:
        ``like``'s structure holding the saved values, placed like ``like``.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        CheckpointError: the folder is not a checkpoint, is damaged (names the file or
            array), or its tree's paths or shapes differ from ``like``'s (lists each difference).

    Examples:
        >>> import tempfile, os
        >>> path = save_sharded_checkpoint(os.path.join(tempfile.mkdtemp(), "c"), {"t": jnp.ones((4, 2))})
        >>> restore_sharded_checkpoint(path, like={"t": jnp.zeros((4, 2))})["t"].tolist()
        [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """
    ocp = _orbax()
    given = Path(path).absolute()
    path = _files.recover_folder(given)
    if not path.is_dir():
        raise FileNotFoundError(f"No sharded checkpoint folder at {str(given)!r}.")
    manifest = verify_orbax_folder(path) if verify else None
    abstract = jax.tree.map(_abstract, like)
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
        wanted = {_slash_path(key): leaf for key, leaf in jax.tree_util.tree_flatten_with_path(abstract)[0]}
        problems = _path_problems(list(wanted), list(saved))
        for name, leaf in wanted.items():
            if name in saved and (tuple(saved[name].shape), np.dtype(saved[name].dtype)) != (
                tuple(leaf.shape),
                np.dtype(leaf.dtype),
            ):
                problems.append(
                    f"{name}: checkpoint has "
                    f"{_describe(saved[name].shape, np.dtype(saved[name].dtype), None)}, "
                    f"model expects {_describe(leaf.shape, np.dtype(leaf.dtype), None)}"
                )
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
    if manifest is not None:
        recorded = manifest["arrays"]
        changed = []
        for key, leaf in jax.tree_util.tree_flatten_with_path(restored)[0]:
            name = _slash_path(key)
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
    # Leaves of ``like`` that JAX may still move (uncommitted, e.g. a step counter made by
    # jnp.zeros) come back uncommitted too, so they mix with arrays on any mesh.
    return jax.tree.map(
        lambda new, old: jnp.asarray(np.asarray(new)) if getattr(old, "committed", True) is False else new,
        restored,
        like,
    )


# ------------------------------------------------- streamed checkpoints (orbax, block by block)
_STREAM_MANIFEST = "jaxembed-streamed.json"


def save_streamed_checkpoint(
    path: str | os.PathLike, tree: Any, *, block_bytes: int = 64 * 2**20, overwrite: bool = False
) -> Path:
    """Saves a pytree of arrays with orbax block by block, so the save needs only a block's memory.

    :func:`save_sharded_checkpoint` hands orbax whole arrays, and orbax copies each to host
    memory before writing: saving a 12.8 GB table needs 12.8 GB more. Here every array is cut
    into blocks of rows (at most ``block_bytes`` each) and each block is one small orbax save, so
    the extra memory is one block. Arrays are written in their own dtype (a bfloat16 table stays
    bfloat16). The folder is written beside ``path`` and renamed into place when complete.

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
    import json
    import shutil
    import tempfile

    ocp = _orbax()
    path = Path(path).absolute()
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"A checkpoint already exists at {str(path)!r}; pass overwrite=True to replace it."
        )
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, int) or block_bytes < 1:
        raise ValueError(f"`block_bytes` must be a positive integer. Received: block_bytes={block_bytes!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    entries = []
    try:
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
        if path.exists():
            shutil.rmtree(path)
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
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
    import json

    ocp = _orbax()
    path = Path(path).absolute()
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
        key_impl = str(jax.random.key_impl(leaf)) if _is_key_array(leaf) else None
        data = jax.eval_shape(jax.random.key_data, leaf) if key_impl else leaf
        if (tuple(entry["shape"]), entry["dtype"], entry["key_impl"]) != (
            tuple(np.shape(data)),
            np.dtype(data.dtype).name,
            key_impl,
        ):
            problems.append(
                f"{name}: checkpoint has {_describe(entry['shape'], entry['dtype'], entry['key_impl'])}, "
                f"model expects {_describe(np.shape(data), np.dtype(data.dtype).name, key_impl)}"
            )
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
