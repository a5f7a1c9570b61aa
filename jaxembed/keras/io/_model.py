"""Read and write Keras 3 model files without Keras: embeddings and small text models.

Keras 3 saves a model as a ``.keras`` zip archive (``config.json``,
``metadata.json``, ``model.weights.h5``) or its weights alone as a
``.weights.h5`` HDF5 file. In the HDF5 file each layer's variables are the
datasets ``<path>/vars/0``, ``<path>/vars/1``, ... and ``<path>/vars`` carries the
layer's name as an attribute. ``<path>`` depends on how the model was written:

* Sequential and Functional models: ``layers/<class in snake_case>``, with
  ``_1``, ``_2``, ... for the second, third, ... layer of the same class
  (``layers/embedding``, ``layers/embedding_1``, ``layers/dense``);
* subclassed models: the attribute name (``token_embedding/vars/0``), or
  ``layers/embedding_<n>`` when Keras reached the layer through ``model.layers``
  first; nested models nest the paths (``layers/functional/layers/embedding``).

An Embedding stores ``[table]`` (a LoRA layer stores the merged table), an
int8 one ``[values, scale]``, an int4 one ``[packed values, scale]`` per channel
or ``[packed values, scale, zero, g_idx]`` grouped (:mod:`jaxembed.tables`).
bfloat16 tables are 2-byte opaque datasets with a ``dtype="bfloat16"`` attribute.

This module reads those files with ``h5py``, ``zipfile`` and ``json`` only
(Keras is never imported), and writes ``.weights.h5`` files that
``keras.Model.load_weights`` reads and ``.keras`` archives that
``keras.saving.load_model`` opens. :class:`KerasSequential` is the small
Flax NNX container a Sequential/Functional text model loads into.

Examples:
    >>> import tempfile, os
    >>> layer = jaxembed.Embedding(4, 2, weights=jnp.array([[1, 1], [1, 2], [2, 2], [3, 3]]))
    >>> path = os.path.join(tempfile.mkdtemp(), "table.weights.h5")
    >>> save_weights(layer, path)
    >>> [(e.path, e.shape) for e in list_embeddings(path)]
    [('layers/embedding', (4, 2))]
    >>> load_embedding(path)(jnp.array([3])).tolist()
    [[3.0, 3.0]]
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxembed import _files
from jaxembed._optional import require
from jaxembed._spec import EmbeddingSpec
from jaxembed.nn._embedding import Embedding
from jaxembed.nn._pooling import Flatten, GlobalAveragePooling1D
from jaxembed.nn._sequential import Activation, KerasSequential, _keras_class
from jaxembed.tables import _quant as quant

h5py = require("h5py", "jaxembed.keras.io", "keras")

__all__ = [
    "EmbeddingEntry",
    "list_embeddings",
    "load_embedding",
    "load_model",
    "from_keras_layer",
    "save_weights",
    "save_model",
]

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
        >>> save_weights(table, path)
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
        >>> save_weights(jaxembed.Embedding(5, 3, rngs=0), path)
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
        entries = [(layer_path, model.spec.name, _stored(model))]
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


def _write_weights(target: str | io.BytesIO, model_name: str, entries: list[tuple[str, str, list]]) -> None:
    with h5py.File(target, "w") as h5:
        h5.create_group("vars").attrs["name"] = model_name
        for layer_path, layer_name, arrays in entries:
            group = h5.create_group(f"{layer_path}/vars")
            group.attrs["name"] = layer_name
            for index, array in enumerate(arrays):
                _write_dataset(group, str(index), array)


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
    weights = io.BytesIO()
    _write_weights(weights, model.name, entries)

    def write(temporary: str) -> None:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("metadata.json", json.dumps({"saved_by": "jaxembed"}))
            archive.writestr("config.json", json.dumps(config))
            archive.writestr(_WEIGHTS_IN_ARCHIVE, weights.getvalue())

    _atomic_write(path, write)
