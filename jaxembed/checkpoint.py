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

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import msgpack
import numpy as np

from jaxembed import _files

__all__ = ["CheckpointError", "save_checkpoint", "restore_checkpoint", "read_checkpoint_metadata"]

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
    return content


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
    problems = []
    missing = [p for p in expected_paths if p not in stored]
    extra = [p for p in stored if p not in set(expected_paths)]
    if missing:
        problems.append(f"missing from the checkpoint: {', '.join(missing)}")
    if extra:
        problems.append(f"in the checkpoint but not in the model: {', '.join(extra)}")
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


def _decode_leaf(entry: dict[str, Any], like: Any) -> Any:
    array = np.frombuffer(entry["data"], dtype=jnp.dtype(entry["dtype"])).reshape(entry["shape"]).copy()
    if entry["key_impl"] is not None:
        return jax.device_put(jax.random.wrap_key_data(array, impl=entry["key_impl"]), like.sharding)
    if isinstance(like, jax.Array):
        return jax.device_put(array, like.sharding)
    if isinstance(like, np.ndarray):
        return array
    return array[()] if array.ndim == 0 else array
