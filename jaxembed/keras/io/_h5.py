"""Keras files on disk (private): open a ``.keras`` zip or a ``.weights.h5`` file; read, write datasets."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator
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
                if _WEIGHTS_IN_ARCHIVE not in names:
                    raise KerasFileError(
                        f"{path!r} is a zip archive but not a .keras file: it has no {_WEIGHTS_IN_ARCHIVE!r} "
                        f"(found {sorted(names)[:10]})."
                    )
                if "config.json" in names:
                    config = json.loads(archive.read("config.json"))
                payload = io.BytesIO(archive.read(_WEIGHTS_IN_ARCHIVE))
        except (zipfile.BadZipFile, EOFError, json.JSONDecodeError) as error:
            raise KerasFileError(f"{path!r} is a damaged .keras archive: {error}.") from error
        source: Any = payload
    else:
        source = path
    try:
        h5 = h5py.File(source, "r")
    except OSError as error:
        raise KerasFileError(
            f"{path!r} is not a Keras weights file (.keras archive or .weights.h5 HDF5 file); "
            f"it may be truncated or of another format: {error}."
        ) from error
    try:
        yield _KerasFile(h5, config)
    finally:
        h5.close()


def _read_dataset(dataset: h5py.Dataset) -> np.ndarray:
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
    try:
        return [_read_dataset(group[k]) for k in keys]
    except (OSError, RuntimeError, KeyError) as error:
        raise KerasFileError(
            f"The variables at {group.name!r} cannot be read (damaged file?): {error}."
        ) from error


def _write_dataset(group: h5py.Group, key: str, array: np.ndarray) -> None:
    if array.dtype == jnp.bfloat16:
        dataset = group.create_dataset(key, data=array.view(np.dtype("V2")))
        dataset.attrs["dtype"] = "bfloat16"
    else:
        group.create_dataset(key, data=array)


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Calls ``write(temporary_path)`` next to ``path``, then renames the result onto ``path``."""
    with _files.atomic_path(path) as temporary:
        write(str(temporary))


def _write_weights(target: str | io.BytesIO, model_name: str, entries: list[tuple[str, str, list]]) -> None:
    with h5py.File(target, "w") as h5:
        h5.create_group("vars").attrs["name"] = model_name
        for layer_path, layer_name, arrays in entries:
            group = h5.create_group(f"{layer_path}/vars")
            group.attrs["name"] = layer_name
            for index, array in enumerate(arrays):
                _write_dataset(group, str(index), array)
