"""Lookup layers in ``.keras`` archives (private): ``load_lookups``.

Keras keeps a ``StringLookup``/``IntegerLookup`` vocabulary that was learned with ``adapt`` (or
set with ``set_vocabulary``) outside the config: as the asset ``assets/<layer path>/vocabulary.txt``
of the zip archive, every id's token on its own line, and a ``"tf_idf"`` layer's weights as the
variable ``<layer path>/vars/idf_weights`` of ``model.weights.h5``. A vocabulary given to the
constructor is in the config instead. Only those two members of the archive are read.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from jaxembed.keras.io._graph import _layer_configs
from jaxembed.keras.io._h5 import KerasFileError, _open
from jaxembed.preprocessing import IntegerLookup, StringLookup

__all__ = ["load_lookups"]

_CLASSES = {"StringLookup": StringLookup, "IntegerLookup": IntegerLookup}
_MAX_ASSET_BYTES = 1 << 30


def _asset_text(archive: zipfile.ZipFile, member: str, where: str) -> str | None:
    try:
        info = archive.getinfo(member)
    except KeyError:
        return None
    if info.file_size > _MAX_ASSET_BYTES:
        raise KerasFileError(
            f"{where}: the vocabulary asset {member!r} is {info.file_size} bytes; refusing it."
        )
    try:
        return archive.read(member).decode("utf-8")
    except UnicodeDecodeError as error:
        raise KerasFileError(f"{where}: the vocabulary asset {member!r} is not UTF-8 ({error}).") from None


def load_lookups(path: str | os.PathLike) -> dict[str, StringLookup | IntegerLookup]:
    """The ``StringLookup`` and ``IntegerLookup`` layers of a Keras ``.keras`` archive, by layer name.

    Each layer is rebuilt from its Keras config (:meth:`StringLookup.from_config`) and given the
    vocabulary Keras stored for it (the ``vocabulary.txt`` asset, and the IDF weights of a
    ``"tf_idf"`` layer), so it maps values to the same ids as the Keras layer.

    Args:
        path: a ``.keras`` archive written by Keras (``model.save``).

    Returns:
        ``{layer name: jaxembed layer}`` in the order of the model's config.

    Raises:
        KerasFileError: for a file that is not a ``.keras`` archive or a damaged asset.
        ValueError: for a vocabulary that breaks the lookup rules (repeated tokens, ...).

    Examples:
        See ``docs/keras.md`` (the preprocessing layers).
    """
    where = os.fspath(path)
    found: dict[str, StringLookup | IntegerLookup] = {}
    with _open(path) as keras_file:
        if keras_file.config is None:
            raise KerasFileError(f"{where!r} has no config.json; lookups load from a .keras archive.")
        layers = [layer for layer in _layer_configs(keras_file.config) if layer.class_name in _CLASSES]
        with zipfile.ZipFile(path) as archive:
            for layer in layers:
                lookup = _CLASSES[layer.class_name].from_config(dict(layer.config))
                idf = _idf_weights(keras_file.h5, layer.path) if lookup.output_mode == "tf_idf" else None
                text = _asset_text(archive, f"assets/{layer.path}/vocabulary.txt", where)
                if text is not None and layer.config.get("vocabulary") is None:
                    lookup.set_vocabulary_asset(text, idf_weights=idf)
                elif text is None and layer.config.get("vocabulary") is None:
                    raise KerasFileError(
                        f"{where!r}: the {layer.class_name} {layer.name!r} has no vocabulary in its config "
                        f"and no asset assets/{layer.path}/vocabulary.txt."
                    )
                found[layer.name] = lookup
    return found


def _idf_weights(h5: Any, layer_path: str) -> np.ndarray | None:
    key = f"{layer_path}/vars/idf_weights"
    if key not in h5:
        return None
    weights = np.asarray(h5[key][()])
    if weights.ndim != 1 or weights.dtype.kind != "f":
        raise KerasFileError(
            f"{key}: idf_weights must be a 1-D float array; found {weights.dtype} {weights.shape}."
        )
    return weights.astype(np.float32)
