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
from jaxembed._spec import EmbeddingSpec
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


def _storage_kind(
    arrays: Sequence[np.ndarray], output_dim: int | None
) -> tuple[str | None, int | None, int | None]:
    """``(quantization, output_dim, block_size)`` from the stored arrays of an Embedding."""
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
    raise KerasFileError(
        "These variables are not an Embedding's: expected [table], [int8 values, scale] or "
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
            kind, output_dim, _ = _storage_kind(arrays, output_dim)
        except KerasFileError:
            if config is None:
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
    kind, output_dim, block_size = _storage_kind(arrays, output_dim)
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
    if kind is not None:
        # The stored arrays decide the layout (a config may predate block sizes).
        config["quantization_config"] = (
            "int8" if kind == "int8" else f"int4/{-1 if block_size is None else block_size}"
        )
    for key, value in overrides.items():
        config[key] = value
    arguments = _embedding_arguments(config)
    if kind is None and "weights" not in arguments:
        arguments["weights"] = arrays[0]  # a plain table: no initializer draw to throw away
    layer = Embedding(**arguments, rngs=rngs)
    _assign_stored(layer, arrays, where)
    return layer


def _embedding_arguments(config: Mapping[str, Any]) -> dict[str, Any]:
    config = dict(config)
    quantization = config.pop("quantization_config", None)
    arguments = EmbeddingSpec.arguments_from_config(config, lora_and_quantization=True)
    if isinstance(quantization, str):  # decided from the stored arrays: wins over the dtype policy
        arguments["quantization_config"] = quantization
    elif quantization is not None and "quantization_config" not in arguments:
        arguments["quantization_config"] = quantization
    return arguments


def _assign_stored(layer: Embedding, arrays: Sequence[np.ndarray], where: str) -> None:
    """Puts Keras's stored variables into ``layer`` (zeroing LoRA factors, as Keras's load does)."""
    targets = ["embeddings"]
    if layer.quantization_mode is not None:
        targets.append("embeddings_scale")
        if hasattr(layer, "embeddings_zero"):
            targets.append("embeddings_zero")
    if len(arrays) < len(targets):
        raise ValueError(
            f"{where!r} holds {len(arrays)} variables; this layer needs {len(targets)} ({targets})."
        )
    for target, array in zip(targets, arrays):
        variable = getattr(layer, target)
        expected = variable.shape
        if target == "embeddings_scale" and array.size == math.prod(expected):
            array = array.reshape(expected)  # Keras keeps a (rows, 1) scale for single-group int4
        if array.shape != expected:
            raise ValueError(
                f"The {target} variable at {where!r} has shape {array.shape}; "
                f"the layer's config needs {expected}."
            )
        variable[...] = jnp.asarray(array, variable.dtype)
    if layer.lora_enabled:
        layer.lora_embeddings_a[...] = jnp.zeros_like(layer.lora_embeddings_a[...])
        layer.lora_embeddings_b[...] = jnp.zeros_like(layer.lora_embeddings_b[...])


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
    arrays = [np.asarray(keras_layer._embeddings)]
    if layer.quantization_mode is not None:
        arrays.append(np.asarray(keras_layer.embeddings_scale))
        if hasattr(keras_layer, "embeddings_zero"):
            arrays.append(np.asarray(keras_layer.embeddings_zero))
    _assign_stored(layer, arrays, keras_layer.name)
    if layer.lora_enabled:
        layer.lora_embeddings_a[...] = jnp.asarray(np.asarray(keras_layer.lora_embeddings_a))
        layer.lora_embeddings_b[...] = jnp.asarray(np.asarray(keras_layer.lora_embeddings_b))
    return layer
