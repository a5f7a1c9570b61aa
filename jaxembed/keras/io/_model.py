"""Whole models and weights files (private): ``load_model``, ``save_weights``, ``save_model``."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import nnx

from jaxembed._optional import require
from jaxembed.keras.io._graph import _chain, _layer_configs
from jaxembed.keras.io._h5 import (
    _WEIGHTS_IN_ARCHIVE,
    _arrays,
    _atomic_write,
    _layer_groups,
    _open,
    _write_weights,
)
from jaxembed.keras.io._layers import (
    _FLOAT32_POLICY,
    _embedding_stored,
    _keras_layer_config,
    _layer_from_config,
    _sequential_layout,
    _stored,
)
from jaxembed.nn._embedding import Embedding
from jaxembed.nn._sequential import KerasSequential

h5py = require("h5py", "jaxembed.keras.io", "keras")

__all__ = ["load_model", "save_weights", "save_model"]


def load_model(path: str | os.PathLike, *, seed: int = 0) -> KerasSequential:
    """Loads a Keras ``.keras`` text model (Sequential or a Functional chain) as a :class:`KerasSequential`.

    Supported layers: Embedding (also int8/int4/LoRA), GlobalAveragePooling1D
    (``channels_last``), Flatten, Dropout, Dense (with an activation from
    ``Activation.NAMES``) and Activation. The model comes back in eval mode
    (Dropout off), ready to predict like ``model.predict``; call ``model.train()``
    to train it.

    Args:
        path: the ``.keras`` archive (the config is needed to know the layers).
        seed: seed of the Dropout layers' random streams.

    Raises:
        ValueError: for a weights-only file, an unsupported layer or model,
            or variables that do not fit the config.

    Examples:
        See ``docs/keras.md``.
    """
    with _open(path) as keras_file:
        if keras_file.config is None:
            raise ValueError(f"{os.fspath(path)!r} has no config.json; load_model needs a .keras archive.")
        model_config = keras_file.config
        model_class = model_config.get("class_name")
        if model_class not in ("Sequential", "Functional"):
            raise ValueError(
                "load_model reads Sequential and Functional models; "
                f"{os.fspath(path)!r} holds a {model_class!r} "
                "(a subclassed model's layers load one by one with load_embedding)."
            )
        groups = _layer_groups(keras_file.h5)
        layers: list[nnx.Module] = []
        for layer in _chain(_layer_configs(model_config), model_class):
            if layer.path.count("layers/") > 1:
                continue  # inside a nested model, reported below
            arrays = _arrays(groups[layer.path]) if layer.path in groups else []
            layers.extend(_layer_from_config(layer, arrays, seed))
    model = KerasSequential(layers, name=model_config.get("config", {}).get("name", "sequential"))
    model.eval()
    return model


def save_weights(
    model: Embedding | KerasSequential,
    path: str | os.PathLike,
    *,
    h5_path: str | None = None,
) -> None:
    """Writes a ``.weights.h5`` file that ``keras.Model.load_weights`` reads.

    A :class:`KerasSequential` is written with the Sequential/Functional layout
    (``layers/embedding``, ``layers/dense_1``, ...), so it loads into the same
    Keras model built as Sequential or as a Functional chain. A lone
    :class:`jaxembed.Embedding` is written at ``h5_path`` (default
    ``"layers/embedding"``: the first Embedding of a Keras model). LoRA tables
    are merged and quantized ones stay quantized, as Keras saves them. The file
    is written to a temporary file and renamed, so a failed save leaves no
    partial file.

    Raises:
        ValueError: if ``path`` does not end in ``.weights.h5`` (Keras requires it).
        TypeError: for another kind of model.

    Examples:
        >>> import tempfile, os, h5py
        >>> model = KerasSequential([
        ...     jaxembed.Embedding(10, 4, rngs=0), jaxembed.Flatten(), nnx.Linear(12, 1, rngs=nnx.Rngs(0))
        ... ])
        >>> path = os.path.join(tempfile.mkdtemp(), "model.weights.h5")
        >>> save_weights(model, path)
        >>> with h5py.File(path) as h5:
        ...     print(sorted(h5["layers"]), h5["layers/dense/vars/0"].shape)
        ['dense', 'embedding', 'flatten'] (12, 1)
    """
    path = os.fspath(path)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"The file name must end in `.weights.h5`, as Keras requires. Received: {path!r}.")
    if isinstance(model, Embedding):
        layer_path = (h5_path or "layers/embedding").strip("/")
        # A lone table (an EmbeddingBag's too): the file holds arrays only, no layer class.
        entries = [(layer_path, model.spec.name, _embedding_stored(model))]
        model_name = "sequential"
    elif isinstance(model, KerasSequential):
        if h5_path is not None:
            raise ValueError(
                "`h5_path` applies to a lone Embedding; a KerasSequential writes Keras's own layout."
            )
        entries = [(e.path, e.name, _stored(e.layer)) for e in _sequential_layout(model)]
        model_name = model.name
    else:
        raise TypeError(
            f"save_weights writes an Embedding or a KerasSequential. Received a {type(model).__name__}."
        )
    _atomic_write(path, lambda temporary: _write_weights(temporary, model_name, entries))


def save_model(model: KerasSequential, path: str | os.PathLike, *, input_length: int | None = None) -> None:
    """Writes a ``.keras`` archive that ``keras.saving.load_model`` opens as a Sequential model.

    The archive holds ``config.json`` (an ``InputLayer`` of int32 ids of length
    ``input_length`` -- required when a Flatten needs it -- then each layer's
    Keras config), ``metadata.json`` and ``model.weights.h5`` (as
    :func:`save_weights`). It is written to a temporary file and renamed.

    Raises:
        ValueError: if ``path`` does not end in ``.keras``.
        TypeError: for a model that is not a :class:`KerasSequential`.

    Examples:
        >>> import tempfile, os
        >>> model = KerasSequential([jaxembed.Embedding(10, 4, rngs=0), jaxembed.GlobalAveragePooling1D()])
        >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
        >>> save_model(model, path)
        >>> [type(layer).__name__ for layer in load_model(path).layers]
        ['Embedding', 'GlobalAveragePooling1D']
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"The file name must end in `.keras`. Received: {path!r}.")
    if not isinstance(model, KerasSequential):
        raise TypeError(f"save_model writes a KerasSequential. Received a {type(model).__name__}.")
    layout = _sequential_layout(model)
    batch_shape = [None, input_length]
    input_layer = {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "registered_name": None,
        "config": {
            "batch_shape": batch_shape,
            "dtype": "int32",
            "sparse": False,
            "ragged": False,
            "name": "input_layer",
        },
    }
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "registered_name": None,
        "config": {
            "name": model.name,
            "trainable": True,
            "dtype": _FLOAT32_POLICY,
            "layers": [input_layer, *(_keras_layer_config(entry) for entry in layout)],
        },
        "build_config": {"input_shape": batch_shape},
        "compile_config": None,
    }
    entries = [(e.path, e.name, _stored(e.layer)) for e in layout]
    _write_archive(path, config, model.name, entries)


def _write_archive(
    path: str,
    config: dict[str, Any],
    model_name: str,
    entries: list[tuple[str, str, list[np.ndarray] | Mapping[str, np.ndarray]]],
    assets: Mapping[str, str] | None = None,
) -> None:
    """The one ``.keras`` writer: ``metadata.json``, ``config.json``, ``model.weights.h5`` (the
    ``entries``, as :func:`save_weights`) and ``assets/<member>`` texts, written atomically."""
    weights = io.BytesIO()
    _write_weights(weights, model_name, entries)

    def write(temporary: str) -> None:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("metadata.json", json.dumps({"saved_by": "jaxembed"}))
            archive.writestr("config.json", json.dumps(config))
            archive.writestr(_WEIGHTS_IN_ARCHIVE, weights.getvalue())
            for member, text in (assets or {}).items():
                archive.writestr(f"assets/{member}", text.encode("utf-8"))

    _atomic_write(path, write)
