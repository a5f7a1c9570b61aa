"""The Embedding layer's arguments: validation, Keras configs, shapes, penalties.

:class:`EmbeddingSpec` is the one place where Keras's constructor arguments
are checked and turned into JAX objects, and where ``get_config`` /
``from_config`` dicts are written and read. The NNX module
(:class:`jaxembed.Embedding`) and the Linen module
(:class:`jaxembed.linen.Embedding`) both hold one, so they accept the same
arguments, raise the same errors and write the same configs.

Examples:
    >>> spec = EmbeddingSpec.create(1000, 64, input_length=50)
    >>> spec.output_shape((None, 50))
    (None, 50, 64)
    >>> spec.get_config()["embeddings_initializer"]["class_name"]
    'RandomUniform'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxembed import ops
from jaxembed._checks import positive_int
from jaxembed.keras import constraints, initializers, regularizers
from jaxembed.tables import _quant as quant

__all__ = ["EmbeddingSpec", "parse_dtype", "parse_quantization_config"]

_DEFAULT_NAME = "embedding"
_MIXED_POLICIES = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
# Keys that Keras writes into an Embedding config and that carry no meaning here.
_IGNORED_KERAS_KEYS = ("batch_input_shape", "batch_shape", "sparse", "ragged")


def _dtype_name(dtype: Any) -> str:
    return jnp.dtype(dtype).name


def parse_dtype(dtype: Any) -> tuple[jnp.dtype | None, jnp.dtype | None]:
    """Reads a Keras ``dtype`` argument as ``(compute_dtype, variable_dtype)``.

    Accepts ``None``, a dtype or its name (``"bfloat16"``), a Keras mixed
    policy name (``"mixed_bfloat16"``: compute bfloat16, variables float32),
    or Keras's serialized ``DTypePolicy`` dict. ``None`` entries mean "not
    said".

    Examples:
        >>> parse_dtype("mixed_bfloat16")
        (dtype(bfloat16), dtype('float32'))
        >>> parse_dtype({"class_name": "DTypePolicy", "config": {"name": "float32"}})
        (dtype('float32'), dtype('float32'))
    """
    if dtype is None:
        return None, None
    if isinstance(dtype, Mapping):
        name = (dtype.get("config") or {}).get("name")
        if name is None:
            raise ValueError(f"A DTypePolicy dict needs config['name']. Received: dtype={dict(dtype)!r}.")
        return parse_dtype(name)
    if isinstance(dtype, str) and dtype in _MIXED_POLICIES:
        return jnp.dtype(_MIXED_POLICIES[dtype]), jnp.dtype("float32")
    if hasattr(dtype, "compute_dtype") and hasattr(dtype, "variable_dtype"):  # a keras.DTypePolicy
        return parse_dtype(dtype.compute_dtype)[0], parse_dtype(dtype.variable_dtype)[0]
    try:
        resolved = jnp.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or not jnp.issubdtype(resolved, jnp.floating):
        raise ValueError(
            "`dtype` must be a floating-point dtype or a Keras policy name "
            f"({', '.join(_MIXED_POLICIES)}). Received: dtype={dtype!r}."
        )
    return resolved, resolved


def _is_policy(dtype: Any) -> bool:
    return (
        isinstance(dtype, Mapping)
        or (isinstance(dtype, str) and dtype in _MIXED_POLICIES)
        or hasattr(dtype, "variable_dtype")
    )


def _floating_dtype(name: str, dtype: Any) -> jnp.dtype:
    try:
        resolved = jnp.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or not jnp.issubdtype(resolved, jnp.floating):
        raise ValueError(f"`{name}` must be a floating-point dtype. Received: {name}={dtype!r}.")
    return resolved


def _input_length(value: Any) -> tuple[int | None, ...] | None:
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(None if v is None else positive_int("input_length", v) for v in items)


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
    """Validated, hashable arguments of an Embedding layer (use :meth:`create`)."""

    input_dim: int
    output_dim: int
    embeddings_initializer: Callable
    embeddings_regularizer: Callable | None
    embeddings_constraint: Callable | None
    activity_regularizer: Callable | None
    mask_zero: bool
    input_length: tuple[int | None, ...] | None
    name: str
    trainable: bool
    dtype: jnp.dtype
    param_dtype: jnp.dtype
    lookup: str
    invalid_ids: str
    # LoRA and quantization (Keras 3); set by ``Embedding.enable_lora`` / ``Embedding.quantize``.
    lora_rank: int | None = None
    lora_alpha: float | None = None
    quantization_mode: str | None = None
    quantization_block_size: int | None = None

    @classmethod
    def create(
        cls,
        input_dim: int,
        output_dim: int,
        *,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        activity_regularizer: Any = None,
        mask_zero: bool = False,
        input_length: int | Sequence[int | None] | None = None,
        name: str | None = None,
        trainable: bool = True,
        dtype: Any = None,
        param_dtype: Any = None,
        lookup: str = "take",
        invalid_ids: str = "nan",
    ) -> EmbeddingSpec:
        """Checks every argument and resolves Keras identifiers.

        Raises:
            ValueError: for a non-positive or non-integer size, an unknown
                initializer/regularizer/constraint/lookup name, a non-float dtype.
        """
        # Flax semantics for a plain dtype (compute only; the table stays float32 unless
        # param_dtype says otherwise); Keras semantics for a policy ("mixed_bfloat16", a
        # DTypePolicy object or dict), which names both.
        compute, policy_variable = parse_dtype(dtype)
        if param_dtype is not None:
            variable = _floating_dtype("param_dtype", param_dtype)
        elif _is_policy(dtype):
            variable = policy_variable
        else:
            variable = jnp.dtype("float32")
        if not isinstance(mask_zero, (bool, np.bool_)):
            raise ValueError(f"`mask_zero` must be a bool. Received: mask_zero={mask_zero!r}.")
        if not isinstance(trainable, (bool, np.bool_)):
            raise ValueError(f"`trainable` must be a bool. Received: trainable={trainable!r}.")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"`name` must be a string. Received: name={name!r}.")
        return cls(
            input_dim=_input_dim(input_dim),
            output_dim=positive_int("output_dim", output_dim),
            embeddings_initializer=initializers.get(embeddings_initializer),
            embeddings_regularizer=regularizers.get(embeddings_regularizer),
            embeddings_constraint=constraints.get(embeddings_constraint),
            activity_regularizer=regularizers.get(activity_regularizer),
            mask_zero=bool(mask_zero),
            input_length=_input_length(input_length),
            name=name or _DEFAULT_NAME,
            trainable=bool(trainable),
            dtype=compute or variable,
            param_dtype=variable,
            lookup=ops._check_lookup_method(lookup),
            invalid_ids=ops._check_invalid_ids_mode(invalid_ids),
        )

    # ----------------------------------------------------------------- shapes
    @property
    def table_shape(self) -> tuple[int, int]:
        """``(input_dim, output_dim)``."""
        return (self.input_dim, self.output_dim)

    def output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        """Keras's ``compute_output_shape``: ``(*input_shape, output_dim)``.

        With ``input_length``, the trailing axes of ``input_shape`` must agree
        with it; ``None`` entries are filled in from it (Keras 2 semantics).
        """
        shape = list(input_shape)
        if self.input_length is not None:
            n = len(self.input_length)
            if len(shape) < n:
                raise ValueError(
                    f"`input_length` is {self._length_str()}, but the input has shape "
                    f"{tuple(input_shape)}: it needs at least {n} axes."
                )
            for i, expected in enumerate(self.input_length):
                axis = len(shape) - n + i
                if expected is not None and shape[axis] is not None and shape[axis] != expected:
                    raise ValueError(
                        f"`input_length` is {self._length_str()}, but the input has shape "
                        f"{tuple(input_shape)}: axis {axis} has length {shape[axis]}, expected {expected}."
                    )
                if shape[axis] is None:
                    shape[axis] = expected
        return (*shape, self.output_dim)

    def check_ids_shape(self, shape: Sequence[int]) -> None:
        """Raises ``ValueError`` if ``shape`` disagrees with ``input_length``."""
        if self.input_length is not None:
            self.output_shape(shape)

    def _length_str(self) -> str:
        length = self.input_length
        return str(length[0]) if length is not None and len(length) == 1 else str(length)

    # ----------------------------------------------------------------- values
    def initial_table(self, key: jax.Array, weights: Any = None) -> jax.Array:
        """The starting table: ``weights`` if given (checked), else drawn from the initializer (checked)."""
        if weights is None:
            table = self.embeddings_initializer(key, self.table_shape, self.param_dtype)
            if not hasattr(table, "shape") or not hasattr(table, "dtype"):  # a list, a scalar: no tracer
                table = np.asarray(table)
            shape, dtype = tuple(table.shape), table.dtype
            if shape != self.table_shape or not (
                jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
            ):
                raise ValueError(
                    f"`embeddings_initializer` must return an array of shape (input_dim, output_dim) = "
                    f"{self.table_shape} with a real dtype (it is called as initializer(key, shape, dtype) "
                    f"with dtype {self.param_dtype}). Received {self.embeddings_initializer!r}, which "
                    f"returned shape {shape} of dtype {dtype}."
                )
            return jnp.asarray(table, self.param_dtype)
        if isinstance(weights, (list, tuple)) and len(weights) == 1:
            weights = weights[0]
        array = np.asarray(weights)
        if array.shape != self.table_shape:
            raise ValueError(
                f"`weights` must have shape (input_dim, output_dim) = {self.table_shape}. "
                f"Received an array of shape {array.shape}."
            )
        if (
            not (np.issubdtype(array.dtype, np.number) or array.dtype == jnp.bfloat16)
            or array.dtype == np.bool_
        ):
            raise ValueError(f"`weights` must be numeric. Received dtype {array.dtype}.")
        if np.iscomplexobj(array):
            raise ValueError(
                f"`weights` must be real numbers; a complex table cannot be cast to {self.param_dtype} "
                f"without losing its imaginary part. Received dtype {array.dtype}."
            )
        return jnp.asarray(array, self.param_dtype)

    def table_penalty(self, table: jax.Array) -> jax.Array:
        """``embeddings_regularizer(table)`` (0.0 without one), as in Keras's ``model.losses``."""
        if self.embeddings_regularizer is None:
            return jnp.zeros((), jnp.float32)
        return jnp.asarray(self.embeddings_regularizer(table), jnp.float32)

    def activity_penalty(self, outputs: jax.Array) -> jax.Array:
        """``activity_regularizer(outputs) / batch_size`` (Keras 3's normalization)."""
        if self.activity_regularizer is None:
            return jnp.zeros((), jnp.float32)
        penalty = jnp.asarray(self.activity_regularizer(outputs), jnp.float32)
        if outputs.ndim > 0 and outputs.shape[0] > 0:
            penalty = penalty / outputs.shape[0]
        return penalty

    # ---------------------------------------------------------------- configs
    def _keras_dtype(self) -> dict[str, Any]:
        compute, variable = _dtype_name(self.dtype), _dtype_name(self.param_dtype)
        name = compute
        if variable == "float32" and compute in _MIXED_POLICIES.values() and compute != variable:
            name = "mixed_" + compute
        return {
            "module": "keras",
            "class_name": "DTypePolicy",
            "config": {"name": name},
            "registered_name": None,
        }

    def get_config(self) -> dict[str, Any]:
        """Keras's config dict for this layer.

        The keys are Keras 3's, so a default layer's config loads in
        ``keras.layers.Embedding.from_config``. jaxembed's own arguments
        (``input_length``, ``lookup``, ``invalid_ids``, a ``param_dtype`` that no
        Keras policy expresses) are added only when they differ from the defaults.
        """
        config: dict[str, Any] = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": self._keras_dtype(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
            "quantization_config": None,
        }
        if self.quantization_mode is not None:
            mode, block_size = self.quantization_mode, self.quantization_block_size
            config["dtype"] = _quantized_policy(mode, block_size, config["dtype"])
            config["quantization_config"] = _quantization_config(mode, block_size)
        if self.lora_rank is not None:
            config["lora_rank"] = self.lora_rank
            config["lora_alpha"] = self.lora_alpha
        if self.input_length is not None:
            length = self.input_length
            config["input_length"] = length[0] if len(length) == 1 else list(length)
        if self.lookup != "take":
            config["lookup"] = self.lookup
        if self.invalid_ids != "nan":
            config["invalid_ids"] = self.invalid_ids
        _, policy_variable = parse_dtype(_source_policy(config["dtype"]))
        if policy_variable != self.param_dtype:
            config["param_dtype"] = _dtype_name(self.param_dtype)
        return config

    @staticmethod
    def arguments_from_config(
        config: Mapping[str, Any], *, lora_and_quantization: bool = False
    ) -> dict[str, Any]:
        """Constructor keyword arguments from a config written by Keras (2 or 3) or jaxembed.

        Args:
            config: the config dict.
            lora_and_quantization: the caller accepts ``lora_rank``, ``lora_alpha``
                and ``quantization_config`` arguments (the NNX layer does); a
                Keras quantized dtype policy (``"int8_from_float32"``,
                ``"int4/128_from_float32"``) becomes ``quantization_config``.

        Raises:
            ValueError: for keys that are not Embedding arguments (listing them).
            NotImplementedError: for LoRA or quantization settings when
                ``lora_and_quantization`` is false.
        """
        arguments = dict(config)
        quantization = _quantization_from_config(arguments.get("dtype"), arguments.get("quantization_config"))
        arguments["dtype"] = _source_policy(arguments.get("dtype"))
        if quantization is not None:
            arguments["quantization_config"] = _quantization_config(*quantization)
        if lora_and_quantization:
            extra = ("lora_rank", "lora_alpha", "quantization_config")
            return EmbeddingSpec._checked_arguments(arguments, extra=extra)
        return EmbeddingSpec._checked_arguments(arguments, extra=())

    @staticmethod
    def _checked_arguments(arguments: dict[str, Any], extra: tuple[str, ...]) -> dict[str, Any]:
        if isinstance(arguments.get("dtype"), str):  # Keras 2 wrote the policy as a plain name
            arguments["dtype"] = {"class_name": "DTypePolicy", "config": {"name": arguments["dtype"]}}
        for key in _IGNORED_KERAS_KEYS:
            value = arguments.pop(key, None)
            if key in ("batch_input_shape", "batch_shape") and value is not None:
                if arguments.get("input_length") is None and len(value) >= 2:
                    arguments["input_length"] = list(value[1:]) if len(value) > 2 else value[1]
        for key in ("quantization_config", "lora_rank", "lora_alpha"):
            if key not in extra and arguments.pop(key, None) is not None:
                raise NotImplementedError(
                    f"This config sets {key!r}; LoRA and quantized Keras embeddings are supported by "
                    "jaxembed.Embedding (Flax NNX) only."
                )
        spec_only = {"quantization_mode", "quantization_block_size"}
        known = ({f.name for f in dataclasses.fields(EmbeddingSpec)} - spec_only) | {"weights"} | set(extra)
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise ValueError(
                f"Unknown Embedding config keys {unknown}; expected a subset of {sorted(known)}."
            )
        return arguments


# --------------------------------------------------------------- quantization configs
_QUANTIZED_POLICIES = ("QuantizedDTypePolicy", "Int4DTypePolicy")


def _quantized_policy(mode: str, block_size: int | None, source: dict[str, Any]) -> dict[str, Any]:
    """Keras's dtype policy of a quantized layer (``int8_from_float32``, ``int4/128_from_float32``)."""
    source_name = source["config"]["name"]
    if mode == "int8":
        return {
            "module": "keras.dtype_policies",
            "class_name": "QuantizedDTypePolicy",
            "config": {"mode": "int8", "source_name": source_name},
            "registered_name": None,
        }
    return {
        "module": "keras.dtype_policies",
        "class_name": "Int4DTypePolicy",
        "config": {"mode": f"int4/{-1 if block_size is None else block_size}", "source_name": source_name},
        "registered_name": None,
    }


def _quantization_config(mode: str, block_size: int | None) -> dict[str, Any]:
    """Keras's serialized ``Int8QuantizationConfig`` / ``Int4QuantizationConfig``."""
    if mode == "int8":
        quantizer = {
            "module": "keras.quantizers",
            "class_name": "AbsMaxQuantizer",
            "config": {"value_range": [-127, 127], "epsilon": 1e-07, "output_dtype": "int8"},
            "registered_name": None,
        }
        return {
            "module": "keras.quantizers",
            "class_name": "Int8QuantizationConfig",
            "config": {"weight_quantizer": None, "activation_quantizer": quantizer},
            "registered_name": None,
        }
    return {
        "module": "keras.quantizers",
        "class_name": "Int4QuantizationConfig",
        "config": {
            "weight_quantizer": None,
            "activation_quantizer": None,
            "block_size": -1 if block_size is None else block_size,
        },
        "registered_name": None,
    }


def _source_policy(dtype: Any) -> Any:
    """The float policy under a Keras quantized policy (``int8_from_bfloat16`` -> ``bfloat16``)."""
    if isinstance(dtype, Mapping) and dtype.get("class_name") in _QUANTIZED_POLICIES:
        name = (dtype.get("config") or {}).get("source_name", "float32")
        return {
            "module": "keras",
            "class_name": "DTypePolicy",
            "config": {"name": name},
            "registered_name": None,
        }
    if isinstance(dtype, str) and "_from_" in dtype:
        return dtype.split("_from_", 1)[1]
    return dtype


_MAX_INPUT_DIM = 2**31 - 1


def _input_dim(value: Any) -> int:
    input_dim = positive_int("input_dim", value)
    if input_dim > _MAX_INPUT_DIM:
        raise ValueError(
            f"`input_dim` must be at most 2**31 - 1 = {_MAX_INPUT_DIM}: ids are int32 inside JAX "
            f"(without jax_enable_x64), so larger ids would wrap around. Received: input_dim={input_dim}."
        )
    return input_dim


def parse_quantization_config(value: Any) -> tuple[str, int | None] | None:
    """``(mode, block_size)`` from a ``quantization_config`` argument, or ``None``.

    Accepts ``None``, a mode name (``"int8"``, ``"int4"`` = grouped with
    block size 128), ``"int4/64"``-style policy modes, or Keras's serialized
    ``Int8QuantizationConfig`` / ``Int4QuantizationConfig`` dicts.
    ``block_size`` ``None`` means one scale per row.

    Examples:
        >>> parse_quantization_config("int4")
        ('int4', 128)
        >>> parse_quantization_config({"class_name": "Int4QuantizationConfig", "config": {"block_size": -1}})
        ('int4', None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        mode, _, block = value.partition("/")
        quant._check_mode(mode)
        if mode == "int8":
            if block:
                raise ValueError(f"int8 quantization takes no block size. Received: {value!r}.")
            return "int8", None
        if not block:
            return "int4", quant.DEFAULT_INT4_BLOCK_SIZE
        try:
            size = int(block)
        except ValueError:
            raise ValueError(
                "`quantization_config` must be 'int8', 'int4' or 'int4/<block size>' with an integer block "
                f"size (-1 for one scale per row). Received: quantization_config={value!r}."
            ) from None
        return "int4", quant._check_block_size(size)
    if isinstance(value, Mapping):
        name = value.get("class_name")
        inner = value.get("config") or {}
        if inner.get("weight_quantizer") is not None:
            raise ValueError(
                "Custom weight quantizers are not supported; jaxembed uses Keras's default abs-max "
                f"quantizer. Received: weight_quantizer={inner['weight_quantizer']!r}."
            )
        if name == "Int8QuantizationConfig":
            return "int8", None
        if name == "Int4QuantizationConfig":
            # Keras reads a missing block_size as per-channel (configs saved before it existed).
            return "int4", quant._check_block_size(inner.get("block_size"))
        raise ValueError(
            "`quantization_config` must be 'int8', 'int4', or a serialized Int8QuantizationConfig / "
            f"Int4QuantizationConfig. Received: class_name={name!r}."
        )
    raise ValueError(
        "`quantization_config` must be None, a mode name ('int8', 'int4') or a Keras config dict. "
        f"Received: {value!r} (of type {type(value).__name__})."
    )


def _quantization_from_config(dtype: Any, quantization_config: Any) -> tuple[str, int | None] | None:
    """The quantization a Keras layer config describes (policy and/or quantization_config)."""
    from_policy = None
    if isinstance(dtype, Mapping) and dtype.get("class_name") in _QUANTIZED_POLICIES:
        mode = (dtype.get("config") or {}).get("mode", "")
        from_policy = parse_quantization_config(mode if mode != "int4" else "int4/-1")
    elif isinstance(dtype, str) and "_from_" in dtype:
        mode = dtype.split("_from_", 1)[0]
        from_policy = parse_quantization_config(mode if mode != "int4" else "int4/-1")
    if from_policy is not None:
        return from_policy  # the policy is what Keras builds the variables from
    return parse_quantization_config(quantization_config)
