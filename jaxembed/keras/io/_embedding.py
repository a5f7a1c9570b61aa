"""Embedding layers in Keras files (private): list, load, convert a live Keras layer."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxembed._optional import require
from jaxembed._spec import EmbeddingSpec, Quantization, parse_quantization_config
from jaxembed.keras.io._graph import _layer_configs
from jaxembed.keras.io._h5 import KerasFileError, _arrays, _KerasFile, _layer_groups, _open
from jaxembed.nn._embedding import Embedding

h5py = require("h5py", "jaxembed.keras.io", "keras")


# =========================================================== embeddings: read
@dataclasses.dataclass(frozen=True)
class EmbeddingEntry:
    """An Embedding layer found in a Keras file.

    Attributes:
        name: the Keras layer name (``""`` if the file does not record it).
        path: HDF5 path of its variables, without ``/vars``.
        shape: ``(input_dim, output_dim)``, or ``None`` when a per-channel
            quantized table without a config leaves ``output_dim`` open.
        quantization: ``None``, ``"int8"``, ``"int4"`` (``"int8 or int4"`` when undecidable).
        config: its Keras config when the file has one (``.keras``), else ``None``.
    """

    name: str
    path: str
    shape: tuple[int, int] | None
    quantization: str | None
    config: dict[str, Any] | None


_AUTO_EMBEDDING_NAME = re.compile(r"^embedding(_\d+)?$")


class _IncompleteTable(KerasFileError):
    """An Embedding's quantized values stored without their scale (a damaged or partial file)."""


def _storage_kind(
    arrays: Sequence[np.ndarray], output_dim: int | None, where: str = ""
) -> tuple[str | None, int | None, int | None]:
    """``(quantization, output_dim, block_size)`` from the stored arrays of an Embedding at ``where``."""
    if len(arrays) == 1 and arrays[0].ndim == 2 and not np.issubdtype(arrays[0].dtype, np.integer):
        return None, arrays[0].shape[1], None
    if len(arrays) == 4 and arrays[0].dtype == np.int8 and arrays[3].ndim == 1:
        g_idx = arrays[3]
        return "int4", g_idx.shape[0], int(np.sum(g_idx == 0))
    if len(arrays) == 2 and arrays[0].dtype == np.int8 and arrays[0].ndim == 2 and arrays[1].ndim == 1:
        width = arrays[0].shape[1]
        if output_dim is None:
            return "int8 or int4", None, None
        if output_dim == width:
            return "int8", output_dim, None
        if math.ceil(output_dim / 2) == width:
            return "int4", output_dim, None
        raise KerasFileError(
            f"A quantized table of width {width} cannot have output_dim={output_dim} "
            f"(int8 stores output_dim columns, int4 ceil(output_dim / 2))."
        )
    if arrays and arrays[0].ndim == 2 and arrays[0].dtype == np.int8 and len(arrays) < 2:
        raise _IncompleteTable(
            f"The Embedding at {where!r} stores quantized int8 values of shape {arrays[0].shape} but no "
            "scale: a quantized Embedding stores [values, scale] (int8, per-channel int4) or "
            "[values, scale, zero, g_idx] (grouped int4). The file is incomplete or damaged."
        )
    raise KerasFileError(
        f"The variables at {where!r} are not an Embedding's: expected [table], [int8 values, scale] or "
        f"[int4 values, scale, zero, g_idx]; found {[(a.shape, str(a.dtype)) for a in arrays]}."
    )


def _entries(keras_file: _KerasFile) -> tuple[list[EmbeddingEntry], dict[str, h5py.Group]]:
    groups = _layer_groups(keras_file.h5)
    configs = _layer_configs(keras_file.config)
    by_path = {c.path: c for c in configs}
    entries = []
    for path, group in groups.items():
        config = by_path.get(path)
        if config is not None and config.class_name != "Embedding":
            continue
        name = str(group.attrs.get("name", config.name if config else ""))
        leaf = path.rsplit("/", 1)[-1]
        if config is None and not (_AUTO_EMBEDDING_NAME.match(leaf) or _AUTO_EMBEDDING_NAME.match(name)):
            continue  # without a config, only auto-named paths/layers are known Embeddings
        arrays = _arrays(group)
        if not arrays:
            continue
        output_dim = config.config.get("output_dim") if config else None
        try:
            kind, output_dim, _ = _storage_kind(arrays, output_dim, path)
        except KerasFileError as error:
            if config is None and not isinstance(error, _IncompleteTable):
                continue  # an auto-named layer of another class
            raise
        shape = None if output_dim is None else (arrays[0].shape[0], output_dim)
        entries.append(
            EmbeddingEntry(name, path, shape, kind, None if config is None else dict(config.config))
        )
    return entries, groups


def list_embeddings(path: str | os.PathLike) -> list[EmbeddingEntry]:
    """The Embedding layers of a ``.keras`` or ``.weights.h5`` file.

    With a ``config.json`` (``.keras``), Embeddings are the layers whose class is
    ``Embedding``. A bare ``.weights.h5`` has no classes: layers whose path or
    recorded name is Keras's automatic ``embedding``/``embedding_<n>`` are listed;
    other layers can still be loaded by ``h5_path`` (see :func:`load_embedding`).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a readable Keras file.

    Examples:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "q.weights.h5")
        >>> table = jaxembed.Embedding(300, 16, rngs=0)
        >>> table.quantize("int4")
        >>> jaxembed.keras.io.save_weights(table, path)
        >>> list_embeddings(path)[0].quantization
        'int4'
    """
    with _open(path) as keras_file:
        return _entries(keras_file)[0]


def _describe(entries: Sequence[EmbeddingEntry]) -> str:
    return ", ".join(f"{e.name or '?'} (at {e.path!r}, shape {e.shape})" for e in entries) or "none"


def _select(
    entries: list[EmbeddingEntry],
    groups: Mapping[str, h5py.Group],
    source: str,
    name: str | None,
    h5_path: str | None,
) -> tuple[str, EmbeddingEntry | None]:
    if h5_path is not None:
        h5_path = h5_path.strip("/").removesuffix("/vars")
        if h5_path not in groups:
            available = sorted(p for p, g in groups.items() if len(g.keys()))
            raise KeyError(
                f"{source} has no layer variables at {h5_path!r}. Paths with variables: {available}."
            )
        return h5_path, next((e for e in entries if e.path == h5_path), None)
    if name is not None:
        matches = [e for e in entries if e.name == name]
        if not matches:  # a layer with a chosen name in a file without config.json
            named = [p for p, g in groups.items() if g.attrs.get("name") == name and len(g.keys())]
            if len(named) == 1:
                return named[0], None
            raise KeyError(
                f"{source} has no Embedding layer named {name!r}. Embedding layers: {_describe(entries)}."
            )
        return matches[0].path, matches[0]
    if len(entries) != 1:
        raise ValueError(
            f"{source} has {len(entries)} Embedding layers; pass name= or h5_path= to choose one. "
            f"Embedding layers: {_describe(entries)}."
        )
    return entries[0].path, entries[0]


def load_embedding(
    path: str | os.PathLike,
    name: str | None = None,
    *,
    h5_path: str | None = None,
    config: Mapping[str, Any] | None = None,
    rngs: Any = 0,
    **overrides: Any,
) -> Embedding:
    """Builds a :class:`jaxembed.Embedding` from a Keras file's Embedding layer.

    Args:
        path: a ``.keras`` archive or a ``.weights.h5`` file.
        name: the Keras layer name to load (from ``config.json`` or the name
            recorded in the weights file).
        h5_path: or the HDF5 path of its variables (``"layers/embedding_1"``,
            ``"token_embedding"``); needed for a subclassed model's layer that
            Keras did not name automatically.
        config: the layer's Keras config, for a ``.weights.h5`` file whose
            table alone cannot tell (``mask_zero``, a per-channel int4 vs int8
            table); by default the one in ``config.json``, else ``input_dim``/
            ``output_dim`` from the stored table.
        rngs: seed for variables the file does not hold (none for a plain table).
        **overrides: constructor arguments that replace the config's
            (``lookup="one_hot"``, ``invalid_ids="checkify"``, ``mask_zero=True``, ...).

    Returns:
        An Embedding with the stored table (quantized tables stay quantized;
        a LoRA layer's merged table comes back with zero ``A`` and ``B``, as in Keras).

    Raises:
        KeyError: for a missing name or path (listing the ones that exist).
        ValueError: for a file that is not Keras's, several Embeddings and no
            choice, or variables that do not fit the config.

    Examples:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "t.weights.h5")
        >>> jaxembed.keras.io.save_weights(jaxembed.Embedding(5, 3, rngs=0), path)
        >>> load_embedding(path, mask_zero=True).compute_mask(jnp.array([0, 2])).tolist()
        [False, True]
    """
    with _open(path) as keras_file:
        entries, groups = _entries(keras_file)
        chosen_path, entry = _select(entries, groups, repr(os.fspath(path)), name, h5_path)
        arrays = _arrays(groups[chosen_path])
        layer_name = str(groups[chosen_path].attrs.get("name", entry.name if entry else ""))
    if config is None:
        config = entry.config if entry is not None and entry.config is not None else None
    return _embedding_from(arrays, config, layer_name, chosen_path, rngs, overrides)


def _embedding_from(
    arrays: list[np.ndarray],
    config: Mapping[str, Any] | None,
    name: str,
    where: str,
    rngs: Any,
    overrides: Mapping[str, Any],
) -> Embedding:
    output_dim = None if config is None else config.get("output_dim")
    kind, output_dim, block_size = _storage_kind(arrays, output_dim, where)
    if kind == "int8 or int4":
        raise ValueError(
            f"The table at {where!r} is quantized per row with width {arrays[0].shape[1]}: int8 with "
            f"output_dim={arrays[0].shape[1]} or int4 with output_dim={2 * arrays[0].shape[1] - 1} or "
            f"{2 * arrays[0].shape[1]}. Pass config={{'output_dim': ...}} (or load the .keras file)."
        )
    input_dim = arrays[0].shape[0]
    if config is None:
        config = {"input_dim": input_dim, "output_dim": output_dim, "name": name or "embedding"}
        if arrays[0].dtype == jnp.bfloat16:
            config["dtype"] = "bfloat16"
    config = dict(config)
    if (config.get("input_dim"), config.get("output_dim")) != (input_dim, output_dim):
        raise ValueError(
            f"The config says input_dim={config.get('input_dim')}, output_dim={config.get('output_dim')} "
            "but the "
            f"variables at {where!r} hold a ({input_dim}, {output_dim}) table."
        )
    for key, value in overrides.items():
        config[key] = value
    stored = None
    if kind is not None and "quantization_config" not in overrides:
        stored = Quantization(kind, block_size)  # the arrays decide the layout (a config may predate it)
    arguments = _embedding_arguments(config, stored)
    if kind is None and "weights" not in arguments:
        arguments["weights"] = arrays[0]  # a plain table: no initializer draw to throw away
    layer = Embedding(**arguments, rngs=rngs)
    _assign_stored(layer, arrays, where)
    return layer


def _embedding_arguments(config: Mapping[str, Any], stored: Quantization | None = None) -> dict[str, Any]:
    """Constructor arguments from a Keras config; ``stored``: the layout the file's arrays have.

    The stored layout wins over the config's mode and block size; the config's weight
    quantizer (a custom int8 value range) is kept when its mode is the stored one.
    """
    arguments = EmbeddingSpec.arguments_from_config(config, lora_and_quantization=True)
    if stored is not None:
        said = parse_quantization_config(arguments.get("quantization_config"))
        if said is not None and said.mode == stored.mode:
            stored = stored._replace(value_range=said.value_range, quantize_inputs=said.quantize_inputs)
        arguments["quantization_config"] = stored
    return arguments


def _assign_stored(layer: Embedding, arrays: Sequence[np.ndarray], where: str) -> None:
    """Puts Keras's stored variables into ``layer``'s table part (a LoRA part is zeroed, as in Keras)."""
    part = layer.spec.table
    variables = layer.part_variables(part)
    expected = [(name, np.shape(array)) for name, array in part.keras_weights(variables)]
    if len(arrays) < len(expected):
        raise ValueError(
            f"{where!r} holds {len(arrays)} variables; this layer needs {len(expected)} "
            f"({[name for name, _ in expected]})."
        )
    fitted = []
    for (name, shape), array in zip(expected, arrays):
        squeezed = tuple(d for d in array.shape if d != 1) == tuple(d for d in shape if d != 1)
        if array.shape != shape and squeezed:
            array = array.reshape(shape)  # Keras keeps a (rows, 1) scale for single-group int4
        if array.shape != shape:
            raise ValueError(
                f"The {name} variable at {where!r} has shape {array.shape}; the layer's config needs {shape}."
            )
        fitted.append(array)
    part.set_keras_weights(variables, fitted)
    if layer.spec.lora is not None:
        layer.spec.lora.zero(layer.part_variables(layer.spec.lora))


def from_keras_layer(keras_layer: Any, *, rngs: Any = 0, **overrides: Any) -> Embedding:
    """A :class:`jaxembed.Embedding` equal to a live ``keras.layers.Embedding`` (Keras needed only for it).

    Copies the config and the variables as they are: the base table, LoRA
    ``A``/``B`` unmerged, quantized values, scales and zero points.

    Raises:
        TypeError: for an object that is not a built Keras Embedding layer.

    Examples:
        >>> import keras
        >>> keras_layer = keras.layers.Embedding(3, 2, mask_zero=True, weights=np.eye(3, 2))
        >>> layer = from_keras_layer(keras_layer)
        >>> layer(jnp.array([1])).tolist(), layer.mask_zero
        ([[0.0, 1.0]], True)
    """
    if type(keras_layer).__name__ != "Embedding" or not hasattr(keras_layer, "get_config"):
        raise TypeError(
            f"Expected a keras.layers.Embedding. Received an object of type {type(keras_layer).__name__}."
        )
    if not getattr(keras_layer, "built", False):
        raise ValueError("The Keras layer is not built yet: call it once or call build() first.")
    config = dict(keras_layer.get_config()) | overrides
    layer = Embedding(**_embedding_arguments(config), rngs=rngs)
    # Keras keeps the stored table as ``_embeddings`` (``embeddings`` is its merged view).
    keras_names = {"embeddings": "_embeddings"}
    table_names = layer.spec.table.keras_weight_names()
    _assign_stored(
        layer,
        [np.asarray(getattr(keras_layer, keras_names.get(n, n))) for n in table_names],
        keras_layer.name,
    )
    if layer.spec.lora is not None:
        lora = layer.spec.lora
        lora.set_keras_weights(
            layer.part_variables(lora),
            [np.asarray(getattr(keras_layer, n)) for n in lora.keras_weight_names()],
        )
    return layer
