"""The Keras layer table (private): one entry per layer class, from and to its Keras config and arrays.

Each :class:`_LayerKind` says everything the I/O code needs about one Keras layer class: its
class name, the module type it loads into, how a Keras config and the stored arrays become
modules, how a module becomes a Keras config again, and which arrays it stores. The table is
built once, at import, as read-only mappings (by Keras class name and by module type); adding
a layer kind means adding one entry to ``_KINDS``.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxembed.keras.io._embedding import _assign_stored, _embedding_from
from jaxembed.keras.io._graph import _LayerConfig, _snake_case
from jaxembed.keras.io._h5 import _PRECISION
from jaxembed.nn._embedding import Embedding
from jaxembed.nn._pooling import Flatten, GlobalAveragePooling1D
from jaxembed.nn._reversible import ReversibleEmbedding
from jaxembed.nn._sequential import Activation, KerasSequential

_FLOAT32_POLICY = {
    "module": "keras",
    "class_name": "DTypePolicy",
    "config": {"name": "float32"},
    "registered_name": None,
}
_JAXEMBED_ONLY_KEYS = ("input_length", "lookup", "invalid_ids", "param_dtype")


@dataclasses.dataclass(frozen=True)
class _KerasLayer:
    """A module of a KerasSequential as the Keras layer it stands for."""

    layer: nnx.Module
    path: str  # layers/<snake>[_n]
    name: str  # Keras layer name
    activation: str  # a Dense layer's activation (a fused Activation after it)


@dataclasses.dataclass(frozen=True)
class _LayerKind:
    """One Keras layer class: its name, its module type, config and arrays both ways.

    Attributes:
        class_name: Keras's class name (``"Embedding"``, ``"Dense"``).
        module_type: the jaxembed / Flax NNX class it loads into (matched exactly, so a
            subclass such as ``EmbeddingBag`` is not silently written as its base).
        load: ``(layer config, stored arrays, seed) -> modules`` (a Dense with an
            activation loads as a Linear and a fused Activation).
        config: the layer's Keras ``config`` dict (without ``name``/``trainable``/``dtype``
            for the simple kinds: :func:`_keras_layer_config` adds those).
        stored: the arrays Keras's ``save_own_variables`` writes, in order.
        layer_name: the Keras layer name of a module (``None``: the automatic path name).
    """

    class_name: str
    module_type: type
    load: Callable[[_LayerConfig, list[np.ndarray], int], list[nnx.Module]]
    config: Callable[[_KerasLayer], dict[str, Any]]
    stored: Callable[[nnx.Module], list[np.ndarray]] = lambda module: []
    layer_name: Callable[[nnx.Module], str | None] = lambda module: None


def _no_arrays(layer: _LayerConfig, arrays: list[np.ndarray]) -> None:
    if arrays:
        raise ValueError(
            f"The {layer.class_name} layer {layer.name!r} at {layer.path!r} should store no variables; "
            f"found {[a.shape for a in arrays]}."
        )


# ------------------------------------------------------------------ Embedding
def _embedding_load(layer: _LayerConfig, arrays: list[np.ndarray], seed: int) -> list[nnx.Module]:
    return [_embedding_from(arrays, layer.config, layer.name, layer.path, seed, {})]


def _embedding_config(entry: _KerasLayer) -> dict[str, Any]:
    config = {k: v for k, v in entry.layer.get_config().items() if k not in _JAXEMBED_ONLY_KEYS}
    if not all(isinstance(v, (dict, list, str, int, float, bool, type(None))) for v in config.values()):
        raise ValueError(f"Embedding {entry.name!r} has a custom (non-Keras) callable in its config.")
    return config


def _embedding_stored(layer: Embedding) -> list[np.ndarray]:
    """What Keras's ``save_own_variables`` writes for ``layer``: its table part's Keras weights,
    with a LoRA part merged in first (Keras dequantizes, adds the delta and quantizes again)."""
    part = layer.spec.table
    variables = layer.part_variables(part)
    if layer.spec.lora is not None:  # requantized over the layer's variable dtype, as its own scales
        variables = part.create(layer.effective_table().astype(layer.spec.param_dtype))
    return [np.asarray(array) for _, array in part.keras_weights(variables)]


# -------------------------------------------------------- ReversibleEmbedding
def _reversible_load(layer: _LayerConfig, arrays: list[np.ndarray], seed: int) -> list[nnx.Module]:
    """Keras stores the table part's arrays, then an untied ``reverse_embeddings`` (+ scale, zero)."""
    module = ReversibleEmbedding.from_config(dict(layer.config), rngs=seed)
    table_count = len(module.spec.table.keras_weight_names())
    reverse = module.reverse_part
    expected = table_count + (0 if reverse is None else len(reverse.keras_weight_names()))
    if len(arrays) != expected:
        raise ValueError(
            f"The ReversibleEmbedding layer {layer.name!r} at {layer.path!r} should store {expected} "
            f"variables for its config; found {len(arrays)} ({[a.shape for a in arrays]})."
        )
    _assign_stored(module, arrays[:table_count], layer.path)
    if reverse is not None:
        reverse.set_keras_weights(module.part_variables(reverse), arrays[table_count:])
    return [module]


def _reversible_stored(layer: ReversibleEmbedding) -> list[np.ndarray]:
    """The table part's stored arrays (LoRA merged), then the untied kernel's, as Keras writes them."""
    stored = _embedding_stored(layer)
    if layer.reverse_part is not None:
        variables = layer.part_variables(layer.reverse_part)
        stored += [np.asarray(array) for _, array in layer.reverse_part.keras_weights(variables)]
    return stored


# ---------------------------------------------------------------------- Dense
def _dense_load(layer: _LayerConfig, arrays: list[np.ndarray], seed: int) -> list[nnx.Module]:
    config, where = layer.config, layer.path
    use_bias = config.get("use_bias", True)
    if len(arrays) != (2 if use_bias else 1) or arrays[0].ndim != 2:
        raise ValueError(
            f"The Dense layer at {where!r} should store a kernel{' and a bias' if use_bias else ''}; "
            f"found {[a.shape for a in arrays]}."
        )
    kernel = arrays[0]
    if kernel.shape[1] != config.get("units", kernel.shape[1]):
        raise ValueError(
            f"The Dense layer at {where!r} has units={config['units']} but a kernel of shape {kernel.shape}."
        )
    linear = nnx.Linear(
        kernel.shape[0], kernel.shape[1], use_bias=use_bias, precision=_PRECISION, rngs=nnx.Rngs(0)
    )
    linear.kernel[...] = jnp.asarray(kernel, jnp.float32)
    if use_bias:
        linear.bias[...] = jnp.asarray(arrays[1], jnp.float32)
    activation = config.get("activation", "linear")
    if isinstance(activation, Mapping):
        activation = activation.get("config", {}).get("name", activation.get("class_name"))
    return [linear] if activation in (None, "linear") else [linear, Activation(activation, fused=True)]


def _dense_config(entry: _KerasLayer) -> dict[str, Any]:
    layer = entry.layer
    return {"units": layer.out_features, "activation": entry.activation, "use_bias": layer.bias is not None}


def _dense_stored(layer: nnx.Linear) -> list[np.ndarray]:
    arrays = [np.asarray(layer.kernel[...])]
    if layer.bias is not None:
        arrays.append(np.asarray(layer.bias[...]))
    return arrays


# ------------------------------------------------------ pooling, Flatten, ...
def _pooling_load(layer: _LayerConfig, arrays: list[np.ndarray], seed: int) -> list[nnx.Module]:
    _no_arrays(layer, arrays)
    if layer.config.get("data_format", "channels_last") != "channels_last":
        raise ValueError(
            f"GlobalAveragePooling1D {layer.name!r}: only data_format='channels_last' is supported."
        )
    return [GlobalAveragePooling1D(keepdims=bool(layer.config.get("keepdims", False)))]


def _flatten_load(layer: _LayerConfig, arrays: list[np.ndarray], seed: int) -> list[nnx.Module]:
    _no_arrays(layer, arrays)
    return [Flatten()]


def _dropout_load(layer: _LayerConfig, arrays: list[np.ndarray], seed: int) -> list[nnx.Module]:
    _no_arrays(layer, arrays)
    if layer.config.get("noise_shape") is not None:
        raise ValueError(f"Dropout {layer.name!r}: noise_shape is not supported.")
    return [nnx.Dropout(float(layer.config.get("rate", 0.0)), rngs=nnx.Rngs(dropout=seed))]


def _activation_load(layer: _LayerConfig, arrays: list[np.ndarray], seed: int) -> list[nnx.Module]:
    _no_arrays(layer, arrays)
    return [Activation(layer.config.get("activation", "linear"))]


# ------------------------------------------------------------------ the table
_KINDS: tuple[_LayerKind, ...] = (
    _LayerKind(
        "Embedding",
        Embedding,
        _embedding_load,
        _embedding_config,
        _embedding_stored,
        layer_name=lambda layer: layer.spec.name,
    ),
    _LayerKind(
        "ReversibleEmbedding",
        ReversibleEmbedding,
        _reversible_load,
        _embedding_config,
        _reversible_stored,
        layer_name=lambda layer: layer.spec.name,
    ),
    _LayerKind("Dense", nnx.Linear, _dense_load, _dense_config, _dense_stored),
    _LayerKind(
        "GlobalAveragePooling1D",
        GlobalAveragePooling1D,
        _pooling_load,
        lambda entry: {"data_format": "channels_last", "keepdims": bool(entry.layer.keepdims)},
    ),
    _LayerKind("Flatten", Flatten, _flatten_load, lambda entry: {"data_format": "channels_last"}),
    _LayerKind(
        "Dropout",
        nnx.Dropout,
        _dropout_load,
        lambda entry: {"rate": float(entry.layer.rate), "seed": None, "noise_shape": None},
    ),
    _LayerKind("Activation", Activation, _activation_load, lambda entry: {"activation": entry.layer.name}),
)
# Read-only views, built once: no code registers kinds at run time.
_BY_CLASS_NAME: Mapping[str, _LayerKind] = types.MappingProxyType({k.class_name: k for k in _KINDS})
_BY_MODULE_TYPE: Mapping[type, _LayerKind] = types.MappingProxyType({k.module_type: k for k in _KINDS})


def _kind_of(module: nnx.Module) -> _LayerKind:
    """The table entry of ``module``'s exact type (a subclass has no Keras class of its own)."""
    kind = _BY_MODULE_TYPE.get(type(module))
    if kind is None:
        known = ", ".join(f"{k.module_type.__name__} ({k.class_name})" for k in _KINDS)
        raise TypeError(
            f"{type(module).__name__} has no Keras layer class to be written as. Keras files hold {known}."
        )
    return kind


# ====================================================================== read
def _layer_from_config(layer: _LayerConfig, arrays: list[np.ndarray], seed: int) -> list[nnx.Module]:
    kind = _BY_CLASS_NAME.get(layer.class_name)
    if kind is None:
        raise ValueError(
            f"Layer {layer.name!r} is a {layer.class_name}; KerasSequential loads "
            f"{', '.join(k.class_name for k in _KINDS)} layers."
        )
    return kind.load(layer, arrays, seed)


# ===================================================================== write
def _stored(layer: nnx.Module) -> list[np.ndarray]:
    """The arrays a Keras file stores for ``layer``."""
    return _kind_of(layer).stored(layer)


def _sequential_layout(model: KerasSequential) -> list[_KerasLayer]:
    """The Keras layers a KerasSequential stands for, with Sequential's HDF5 paths."""
    found, counts = [], {}
    layers = list(model.layers)
    for position, layer in enumerate(layers):
        if isinstance(layer, Activation) and layer.fused:
            continue
        kind = _kind_of(layer)
        snake = _snake_case(kind.class_name)
        index = counts.get(snake, 0)
        counts[snake] = index + 1
        path_name = snake + (f"_{index}" if index else "")
        name = kind.layer_name(layer) or path_name
        following = layers[position + 1] if position + 1 < len(layers) else None
        activation = "linear"
        if isinstance(layer, nnx.Linear) and isinstance(following, Activation) and following.fused:
            activation = following.name
        found.append(_KerasLayer(layer, f"layers/{path_name}", name, activation))
    return found


def _keras_layer_config(entry: _KerasLayer) -> dict[str, Any]:
    kind = _kind_of(entry.layer)
    config = kind.config(entry)
    if kind.layer_name(entry.layer) is None:  # the simple kinds: Keras's common keys first
        config = {"name": entry.name, "trainable": True, "dtype": _FLOAT32_POLICY} | config
    return {
        "module": "keras.layers",
        "class_name": kind.class_name,
        "config": config,
        "registered_name": None,
    }
