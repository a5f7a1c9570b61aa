"""The Keras layer table (private): each supported layer kind from and to its Keras config and arrays."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxembed.keras.io._embedding import _embedding_from
from jaxembed.keras.io._graph import _LayerConfig, _snake_case
from jaxembed.keras.io._h5 import _PRECISION
from jaxembed.nn._embedding import Embedding
from jaxembed.nn._pooling import Flatten, GlobalAveragePooling1D
from jaxembed.nn._sequential import Activation, KerasSequential, _keras_class
from jaxembed.tables import _quant as quant


def _dense(config: Mapping[str, Any], arrays: list[np.ndarray], where: str) -> list[nnx.Module]:
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


def _layer_from_config(layer: _LayerConfig, arrays: list[np.ndarray], seed: int) -> list[nnx.Module]:
    config = layer.config
    if layer.class_name == "Embedding":
        return [_embedding_from(arrays, config, layer.name, layer.path, seed, {})]
    if layer.class_name == "Dense":
        return _dense(config, arrays, layer.path)
    if layer.class_name == "GlobalAveragePooling1D":
        if config.get("data_format", "channels_last") != "channels_last":
            raise ValueError(
                f"GlobalAveragePooling1D {layer.name!r}: only data_format='channels_last' is supported."
            )
        return [GlobalAveragePooling1D(keepdims=bool(config.get("keepdims", False)))]
    if layer.class_name == "Flatten":
        return [Flatten()]
    if layer.class_name == "Dropout":
        if config.get("noise_shape") is not None:
            raise ValueError(f"Dropout {layer.name!r}: noise_shape is not supported.")
        return [nnx.Dropout(float(config.get("rate", 0.0)), rngs=nnx.Rngs(dropout=seed))]
    if layer.class_name == "Activation":
        return [Activation(config.get("activation", "linear"))]
    raise ValueError(
        f"Layer {layer.name!r} is a {layer.class_name}; KerasSequential loads Embedding, "
        "GlobalAveragePooling1D, Flatten, Dropout, Dense and Activation layers."
    )


# ===================================================================== write
def _stored_embedding(layer: Embedding) -> list[np.ndarray]:
    """What Keras's ``save_own_variables`` writes for ``layer`` (LoRA merged in)."""
    spec = layer.spec
    if spec.quantization_mode is None:
        return [np.asarray(layer.effective_table(), dtype=layer.embeddings.dtype)]
    table = layer.quantized_table()
    if layer.lora_enabled:  # Keras dequantizes, adds the LoRA delta and quantizes again
        table = quant.quantize(
            layer.effective_table(), spec.quantization_mode, block_size=spec.quantization_block_size
        )
    stored = [np.asarray(table.values), np.asarray(table.scale)]
    if table.zero is not None:
        stored += [
            np.asarray(table.zero),
            np.asarray(quant.group_index(spec.output_dim, spec.quantization_block_size)),
        ]
    return stored


def _stored(layer: nnx.Module) -> list[np.ndarray]:
    if isinstance(layer, Embedding):
        return _stored_embedding(layer)
    if isinstance(layer, nnx.Linear):
        arrays = [np.asarray(layer.kernel[...])]
        if layer.bias is not None:
            arrays.append(np.asarray(layer.bias[...]))
        return arrays
    return []


@dataclasses.dataclass(frozen=True)
class _KerasLayer:
    layer: nnx.Module
    path: str  # layers/<snake>[_n]
    name: str  # Keras layer name
    activation: str  # a Dense layer's activation (a fused Activation after it)


def _sequential_layout(model: KerasSequential) -> list[_KerasLayer]:
    """The Keras layers a KerasSequential stands for, with Sequential's HDF5 paths."""
    found, counts = [], {}
    layers = list(model.layers)
    for position, layer in enumerate(layers):
        if isinstance(layer, Activation) and layer.fused:
            continue
        snake = _snake_case(_keras_class(layer))
        index = counts.get(snake, 0)
        counts[snake] = index + 1
        path_name = snake + (f"_{index}" if index else "")
        name = layer.spec.name if isinstance(layer, Embedding) else path_name
        following = layers[position + 1] if position + 1 < len(layers) else None
        activation = "linear"
        if isinstance(layer, nnx.Linear) and isinstance(following, Activation) and following.fused:
            activation = following.name
        found.append(_KerasLayer(layer, f"layers/{path_name}", name, activation))
    return found


_FLOAT32_POLICY = {
    "module": "keras",
    "class_name": "DTypePolicy",
    "config": {"name": "float32"},
    "registered_name": None,
}
_JAXEMBED_ONLY_KEYS = ("input_length", "lookup", "invalid_ids", "param_dtype")


def _keras_layer_config(entry: _KerasLayer) -> dict[str, Any]:
    layer = entry.layer
    common = {"name": entry.name, "trainable": True, "dtype": _FLOAT32_POLICY}
    if isinstance(layer, Embedding):
        config = {k: v for k, v in layer.get_config().items() if k not in _JAXEMBED_ONLY_KEYS}
        if not all(isinstance(v, (dict, list, str, int, float, bool, type(None))) for v in config.values()):
            raise ValueError(f"Embedding {entry.name!r} has a custom (non-Keras) callable in its config.")
    elif isinstance(layer, nnx.Linear):
        config = common | {
            "units": layer.out_features,
            "activation": entry.activation,
            "use_bias": layer.bias is not None,
        }
    elif isinstance(layer, nnx.Dropout):
        config = common | {"rate": float(layer.rate), "seed": None, "noise_shape": None}
    elif isinstance(layer, GlobalAveragePooling1D):
        config = common | {"data_format": "channels_last", "keepdims": bool(layer.keepdims)}
    elif isinstance(layer, Flatten):
        config = common | {"data_format": "channels_last"}
    else:  # a standalone Activation layer
        config = common | {"activation": layer.name}
    return {
        "module": "keras.layers",
        "class_name": _keras_class(layer),
        "config": config,
        "registered_name": None,
    }
