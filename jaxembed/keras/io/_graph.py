"""Keras model configs (private): the layer graph of a ``config.json``, flattened to a chain."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any


# ============================================================ model configs
def _snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case``: ``GlobalAveragePooling1D`` -> ``global_average_pooling1d``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name


@dataclasses.dataclass(frozen=True)
class _LayerConfig:
    class_name: str
    name: str
    config: dict[str, Any]
    path: str  # HDF5 path of its variables
    inbound: tuple[str, ...]  # names of the layers feeding it (Functional models)
    constants: tuple[Any, ...] = ()  # non-tensor positional arguments (NotEqual(x, 0) has 0)


def _layer_configs(model_config: Mapping[str, Any] | None, prefix: str = "") -> list[_LayerConfig]:
    """The layers of a Sequential/Functional config, flattened, with their HDF5 paths."""
    if not model_config or "layers" not in (model_config.get("config") or {}):
        return []
    layers = []
    counts: dict[str, int] = {}
    for entry in model_config["config"]["layers"]:
        class_name = entry.get("class_name", "")
        if class_name == "InputLayer" and model_config.get("class_name") == "Sequential":
            continue  # Sequential.layers leaves its input layer out, so it takes no name
        snake = _snake_case(class_name)
        index = counts.get(snake, 0)
        counts[snake] = index + 1
        path = f"{prefix}layers/{snake}" + (f"_{index}" if index else "")
        config = entry.get("config") or {}
        inbound, constants = [], []
        for node in entry.get("inbound_nodes") or []:
            for arg in node.get("args", []) if isinstance(node, Mapping) else []:
                for tensor in arg if isinstance(arg, list) else [arg]:
                    if isinstance(tensor, Mapping) and "keras_history" in (tensor.get("config") or {}):
                        inbound.append(tensor["config"]["keras_history"][0])
                    else:
                        constants.append(tensor)
        name = config.get("name", entry.get("name", ""))
        layers.append(_LayerConfig(class_name, name, config, path, tuple(inbound), tuple(constants)))
        layers.extend(_layer_configs(entry, prefix=path + "/"))
    return layers


# ---------------------------------------------------------------- load whole
def _is_padding_mask(layer: _LayerConfig, configs: list[_LayerConfig]) -> bool:
    """Keras's Functional graph computes an Embedding's mask_zero mask as a NotEqual(ids, 0) node."""
    masked_inputs = {
        c.inbound[0]
        for c in configs
        if c.class_name == "Embedding" and c.config.get("mask_zero") and c.inbound
    }
    return layer.class_name == "NotEqual" and layer.constants == (0,) and set(layer.inbound) <= masked_inputs


def _chain(configs: list[_LayerConfig], model_class: str) -> list[_LayerConfig]:
    layers = [c for c in configs if c.class_name != "InputLayer" and not _is_padding_mask(c, configs)]
    if model_class == "Functional":
        previous = next((c.name for c in configs if c.class_name == "InputLayer"), None)
        for layer in layers:
            if len(layer.inbound) != 1 or (previous is not None and layer.inbound[0] != previous):
                raise ValueError(
                    f"Only a chain of layers (one input, each layer feeding the next) loads into "
                    f"KerasSequential; layer {layer.name!r} takes {list(layer.inbound)}."
                )
            previous = layer.name
    return layers
