"""Preprocessing layers in ``.keras`` archives (private): ``load_lookups`` and ``save_lookups``.

Keras keeps a ``StringLookup``/``IntegerLookup`` vocabulary that was learned with ``adapt`` (or
set with ``set_vocabulary``) outside the config: as the asset ``assets/<layer path>/vocabulary.txt``
of the zip archive, every id's token on its own line, and a ``"tf_idf"`` layer's weights as the
variable ``<layer path>/vars/idf_weights`` of ``model.weights.h5``. A vocabulary given to the
constructor is in the config instead. ``Hashing``, ``HashedCrossing`` and ``CategoryEncoding``
are their config alone. Reading uses only those members of the archive; writing goes through the
one ``.keras`` writer of :func:`jaxembed.keras.io.save_model`.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxembed.keras.io._graph import _layer_configs, _snake_case
from jaxembed.keras.io._h5 import KerasFileError, _open
from jaxembed.keras.io._layers import _FLOAT32_POLICY
from jaxembed.keras.io._model import _write_archive
from jaxembed.preprocessing import CategoryEncoding, HashedCrossing, Hashing, IntegerLookup, StringLookup

__all__ = ["load_lookups", "save_lookups"]

PreprocessingLayer = StringLookup | IntegerLookup | Hashing | HashedCrossing | CategoryEncoding
"""The layers a ``.keras`` archive holds for :func:`load_lookups` / :func:`save_lookups`."""

_LOOKUPS = {"StringLookup": StringLookup, "IntegerLookup": IntegerLookup}
_CLASSES: dict[str, type] = {
    **_LOOKUPS,
    "Hashing": Hashing,
    "HashedCrossing": HashedCrossing,
    "CategoryEncoding": CategoryEncoding,
}
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


def load_lookups(path: str | os.PathLike) -> dict[str, PreprocessingLayer]:
    """The categorical preprocessing layers of a Keras ``.keras`` archive, by layer name.

    ``StringLookup`` and ``IntegerLookup`` layers are rebuilt from their Keras config
    (:meth:`StringLookup.from_config`) and given the vocabulary Keras stored for them (the
    ``vocabulary.txt`` asset, and the IDF weights of a ``"tf_idf"`` layer), so they map values to
    the same ids as the Keras layers; ``Hashing``, ``HashedCrossing`` and ``CategoryEncoding``
    layers are rebuilt from their config.

    Args:
        path: a ``.keras`` archive written by Keras (``model.save``) or by :func:`save_lookups`.

    Returns:
        ``{layer name: jaxembed layer}`` in the order of the model's config.

    Raises:
        KerasFileError: for a file that is not a ``.keras`` archive or a damaged asset.
        ValueError: for a vocabulary that breaks the lookup rules (repeated tokens, ...).

    Examples:
        See ``docs/keras.md`` (the preprocessing layers).
    """
    where = os.fspath(path)
    found: dict[str, PreprocessingLayer] = {}
    with _open(path) as keras_file:
        if keras_file.config is None:
            raise KerasFileError(f"{where!r} has no config.json; lookups load from a .keras archive.")
        layers = [layer for layer in _layer_configs(keras_file.config) if layer.class_name in _CLASSES]
        with zipfile.ZipFile(path) as archive:
            for layer in layers:
                lookup = _CLASSES[layer.class_name].from_config(_own_config(layer.config))
                if layer.class_name not in _LOOKUPS:
                    found[layer.name] = lookup
                    continue
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


# Keys every Keras layer config has; the preprocessing layers' own configs leave them out.
_BASE_KEYS = ("trainable", "dtype")


def _own_config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _BASE_KEYS}


def save_lookups(
    layers: Sequence[PreprocessingLayer] | Mapping[str, PreprocessingLayer], path: str | os.PathLike
) -> None:
    """Writes preprocessing layers into a ``.keras`` archive that ``keras.saving.load_model`` opens.

    The archive holds the layers as an unbuilt Keras ``Sequential`` (its ``config.json``, no input:
    what Keras writes for string lookups on its JAX backend, where a string ``Input`` is not
    possible), each lookup's vocabulary as Keras stores it (the ``assets/<layer path>/vocabulary.txt``
    asset when the vocabulary is not in the config, a ``"tf_idf"`` layer's ``idf_weights`` in
    ``model.weights.h5``), and the configs of ``Hashing``, ``HashedCrossing`` and
    ``CategoryEncoding`` layers. Keras reads each layer back with ``model.get_layer(name)`` and maps
    values to the same outputs; :func:`load_lookups` reads them back here. The write is atomic.

    Args:
        layers: the layers, named by their ``name`` (a sequence) or by the keys (a mapping, which
            renames them); names must be unique, as in a Keras model.
        path: the archive to write; must end in ``.keras``.

    Raises:
        ValueError: for a path without ``.keras``, repeated names, or tokens with line breaks.
        TypeError: for a layer that is not one of jaxembed's preprocessing layers.

    Examples:
        >>> import os, tempfile
        >>> colour = jaxembed.StringLookup(name="colour")
        >>> colour.adapt(["red", "blue", "red"])
        >>> path = os.path.join(tempfile.mkdtemp(), "lookups.keras")
        >>> save_lookups([colour, jaxembed.CategoryEncoding(4, "one_hot", name="one_hot")], path)
        >>> again = load_lookups(path)
        >>> list(again), again["colour"].get_vocabulary()
        (['colour', 'one_hot'], ['[UNK]', 'red', 'blue'])
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"The file name must end in `.keras`. Received: {path!r}.")
    named = _named(layers)
    entries, assets, configs = [], {}, []
    counts: dict[str, int] = {}
    for name, layer in named.items():
        class_name = type(layer).__name__
        snake = _snake_case(class_name)
        index = counts.get(snake, 0)
        counts[snake] = index + 1
        layer_path = f"layers/{snake}" + (f"_{index}" if index else "")
        config = {"name": name, "trainable": True, "dtype": _FLOAT32_POLICY}
        config |= {k: v for k, v in layer.get_config().items() if k != "name"}
        stored: dict[str, np.ndarray] = {}
        if class_name in _LOOKUPS:
            if layer.input_vocabulary is None:
                tokens = [str(token) for token in layer.get_vocabulary()]
                broken = [token for token in tokens if "\n" in token or "\r" in token]
                if broken:
                    raise ValueError(
                        f"The {class_name} {name!r} has tokens with line breaks, which a vocabulary.txt "
                        f"asset (one token a line) cannot hold: {broken[:3]}."
                    )
                assets[f"{layer_path}/vocabulary.txt"] = "\n".join(tokens)
            if layer.output_mode == "tf_idf":
                stored["idf_weights"] = np.asarray(layer.idf_weights, np.float32)
        entries.append((layer_path, name, stored))
        configs.append(
            {"module": "keras.layers", "class_name": class_name, "config": config, "registered_name": None}
        )
    model = {
        "module": "keras",
        "class_name": "Sequential",
        "registered_name": None,
        "config": {"name": "preprocessing", "trainable": True, "dtype": _FLOAT32_POLICY, "layers": configs},
        "compile_config": None,
    }
    _write_archive(path, model, "preprocessing", entries, assets)


def _named(layers: Sequence[PreprocessingLayer] | Mapping[str, PreprocessingLayer]) -> dict[str, Any]:
    items = list(layers.items()) if isinstance(layers, Mapping) else [(None, layer) for layer in layers]
    named: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for name, layer in items:
        if type(layer) not in _CLASSES.values():
            raise TypeError(
                f"save_lookups writes {', '.join(_CLASSES)} layers (jaxembed.preprocessing). "
                f"Received a {type(layer).__name__}."
            )
        if name is None:
            name = layer.name
        if name is None:  # Keras's automatic name: the class in snake case, then _1, _2, ...
            snake = _snake_case(type(layer).__name__)
            index = counts.get(snake, 0)
            counts[snake] = index + 1
            name = snake + (f"_{index}" if index else "")
        if not isinstance(name, str) or not name:
            raise ValueError(f"Layer names must be non-empty strings. Received: {name!r}.")
        if name in named:
            raise ValueError(f"Layer names in a Keras model must be unique; {name!r} appears twice.")
        named[name] = layer
    return named
