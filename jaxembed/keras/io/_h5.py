"""Keras files on disk (private): open a ``.keras`` zip or a ``.weights.h5`` file; read, write datasets."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxembed import _files
from jaxembed._optional import require

h5py = require("h5py", "jaxembed.keras.io", "keras")

_WEIGHTS_IN_ARCHIVE = "model.weights.h5"
_PRECISION = jax.lax.Precision.HIGHEST


# ============================================================== opening files
class KerasFileError(ValueError):
    """A file that is not a readable Keras 3 model or weights file."""


@dataclasses.dataclass
class _KerasFile:
    h5: h5py.File
    config: dict[str, Any] | None  # config.json of a .keras archive


def _check_member_names(path: str, names: list[str]) -> None:
    """Refuses archive members whose names are absolute or climb out with ``..`` (Keras warns, skips)."""
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise KerasFileError(
                f"{path!r} is not a safe .keras archive: its member {name!r} has an absolute path or "
                "'..' (a .keras archive holds only config.json, metadata.json and model.weights.h5)."
            )


def _check_hdf5(h5: h5py.File, path: str) -> None:
    """Refuses anything in an HDF5 file that would make reading it touch another file.

    Every link is inspected without being followed: external links and soft links are
    refused (Keras writes neither), and so are datasets whose data lives in external
    files or that are virtual (mapped from other files). This runs before any data is read.
    """
    seen: set[int] = set()

    def walk(group: h5py.Group) -> None:
        for name in group:
            where = f"{group.name.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise KerasFileError(
                    f"{path!r} has an external link at {where!r} to {link.filename!r}:{link.path!r}; "
                    "Keras weights files hold no links, and following it would read another file."
                )
            if isinstance(link, h5py.SoftLink):
                raise KerasFileError(
                    f"{path!r} has a soft link at {where!r} to {link.path!r}; "
                    "Keras weights files hold no links."
                )
            item = group[name]
            if hash(item.id) in seen:
                continue
            seen.add(hash(item.id))
            if isinstance(item, h5py.Group):
                walk(item)
            elif isinstance(item, h5py.Dataset):
                if item.external:
                    files = sorted(
                        {
                            entry[0] if isinstance(entry[0], str) else entry[0].decode()
                            for entry in item.external
                        }
                    )
                    raise KerasFileError(
                        f"{path!r}: the dataset {where!r} keeps its data in external files {files}; "
                        "a weights file must hold its own data."
                    )
                if item.is_virtual:
                    raise KerasFileError(
                        f"{path!r}: the dataset {where!r} is a virtual dataset mapped from other files; "
                        "a weights file must hold its own data."
                    )

    try:
        walk(h5)
    except KerasFileError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError) as error:
        raise KerasFileError(f"{path!r}: the HDF5 file is damaged or truncated: {error}.") from None


@contextlib.contextmanager
def _open(path: str | os.PathLike) -> Iterator[_KerasFile]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such Keras file: {path!r}.")
    config = None
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                _check_member_names(path, names)
                if _WEIGHTS_IN_ARCHIVE not in names:
                    raise KerasFileError(
                        f"{path!r} is a zip archive but not a .keras file: it has no {_WEIGHTS_IN_ARCHIVE!r} "
                        f"(found {sorted(names)[:10]})."
                    )
                if "config.json" in names:
                    config = json.loads(archive.read("config.json"))
                    if not isinstance(config, dict):
                        raise KerasFileError(
                            f"{path!r}: its config.json holds a JSON {type(config).__name__}; "
                            "a Keras model config is a JSON object."
                        )
                payload = io.BytesIO(archive.read(_WEIGHTS_IN_ARCHIVE))
        except KerasFileError:
            raise
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            EOFError,
            OSError,
            zlib.error,
            NotImplementedError,  # an unsupported compression method
            RuntimeError,  # an encrypted member
            ValueError,  # config.json that is not JSON or not UTF-8
        ) as error:
            raise KerasFileError(
                f"{path!r} is a damaged .keras archive ({type(error).__name__}: {error})."
            ) from None
        source: Any = payload
    else:
        source = path
    try:
        h5 = h5py.File(source, "r")
    except OSError as error:
        raise KerasFileError(
            f"{path!r} is not a Keras weights file (.keras archive or .weights.h5 HDF5 file); "
            f"it may be truncated or of another format: {error}."
        ) from None
    try:
        _check_hdf5(h5, path)
        yield _KerasFile(h5, config)
    except KerasFileError as error:
        if path in str(error):
            raise
        raise KerasFileError(f"{path!r}: {error}") from None  # a damaged dataset found while reading
    finally:
        h5.close()


def _read_dataset(dataset: h5py.Dataset) -> np.ndarray:
    # _open has refused external and virtual storage; this guards any other caller too.
    if dataset.external or dataset.is_virtual:
        raise KerasFileError(f"The dataset {dataset.name!r} keeps its data outside the file.")
    # A Fletcher-32 checksum (jaxembed writes one on every non-scalar dataset) is checked by
    # HDF5 on this read; a mismatch is an OSError, which the callers turn into KerasFileError.
    if dataset.attrs.get("dtype") == "bfloat16":
        return np.asarray(dataset[()]).view(jnp.bfloat16)
    return np.asarray(dataset[()])


def _layer_groups(h5: h5py.File) -> dict[str, h5py.Group]:
    """Every ``<path>/vars`` group in the file, keyed by ``<path>`` (``""`` for the model)."""
    found: dict[str, h5py.Group] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group) and (name == "vars" or name.endswith("/vars")):
            found[name[: -len("vars")].rstrip("/")] = obj

    try:
        h5.visititems(visit)
    except (OSError, RuntimeError, KeyError) as error:
        raise KerasFileError(f"The HDF5 file is damaged or truncated: {error}.") from error
    return found


def _arrays(group: h5py.Group) -> list[np.ndarray]:
    keys = sorted((k for k in group.keys() if k.isdigit()), key=int)
    if keys != [str(index) for index in range(len(keys))]:
        # Keras numbers a layer's variables 0, 1, ..., n - 1 and refuses a store that is not so.
        raise KerasFileError(
            f"The variables at {group.name!r} are numbered {keys}; Keras numbers a layer's variables "
            f"0 to {len(keys) - 1} without gaps, so the file is damaged or was edited by hand."
        )
    try:
        return [_read_dataset(group[k]) for k in keys]
    except (OSError, RuntimeError, KeyError) as error:
        raise KerasFileError(
            f"The variables at {group.name!r} cannot be read (damaged file?): {error}."
        ) from error


def _write_dataset(group: h5py.Group, key: str, array: np.ndarray) -> None:
    # Fletcher-32 (HDF5's checksum filter, which Keras's h5py reads transparently) on every
    # dataset that can be chunked: a flipped bit in the data is an error on read, not a
    # different table. Scalars and empty arrays cannot carry a filter.
    checksum = {"fletcher32": True} if array.ndim and array.size else {}
    if array.dtype == jnp.bfloat16:
        dataset = group.create_dataset(key, data=array.view(np.dtype("V2")), **checksum)
        dataset.attrs["dtype"] = "bfloat16"
    else:
        group.create_dataset(key, data=array, **checksum)


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Calls ``write(temporary_path)`` next to ``path``, then renames the result onto ``path``."""
    with _files.atomic_path(path) as temporary:
        write(str(temporary))


def _write_weights(
    target: str | io.BytesIO,
    model_name: str,
    entries: list[tuple[str, str, list[np.ndarray] | Mapping[str, np.ndarray]]],
) -> None:
    """Keras's weights layout: per layer ``<path>/vars`` with the arrays as ``0``, ``1``, ... (a
    list: variables), or under their own names (a mapping: what a layer's ``save_own_variables``
    stores by key, such as a lookup's ``idf_weights``)."""
    # The HDF5 1.10 file format checksums its metadata (object headers, B-trees) too.
    with h5py.File(target, "w", libver=("v110", "latest")) as h5:
        h5.create_group("vars").attrs["name"] = model_name
        for layer_path, layer_name, arrays in entries:
            group = h5.create_group(f"{layer_path}/vars")
            group.attrs["name"] = layer_name
            named = arrays.items() if isinstance(arrays, Mapping) else enumerate(arrays)
            for key, array in named:
                _write_dataset(group, str(key), np.asarray(array))
