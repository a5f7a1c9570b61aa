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

import contextlib
import dataclasses
import inspect
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jaxembed import ops
from jaxembed._checks import positive_int
from jaxembed.keras import constraints, initializers, regularizers
from jaxembed.tables import _quant as quant
from jaxembed.tables._parts import DenseTable, LoRAPart, QuantizedTablePart

__all__ = [
    "Argument",
    "ARGUMENTS",
    "InitializerLike",
    "RegularizerLike",
    "ConstraintLike",
    "DTypeLike",
    "KerasObject",
    "QuantizationConfigLike",
    "TableSharding",
    "EmbeddingSpec",
    "Quantization",
    "parse_dtype",
    "parse_quantization_config",
    "quantization_arguments",
    "resolve_quantize_arguments",
]

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


_REQUIRED = inspect.Parameter.empty


@dataclasses.dataclass(frozen=True)
class Argument:
    """One of the Embedding layer's Keras arguments: its name, default and type.

    Attributes:
        name: the Keras name.
        default: the default (``inspect.Parameter.empty`` for ``input_dim`` and ``output_dim``).
        annotation: the type, as a string (for signatures and Linen fields).
    """

    name: str
    default: Any
    annotation: str

    @property
    def required(self) -> bool:
        """Whether the argument has no default."""
        return self.default is _REQUIRED


class KerasObject(Protocol):
    """A live Keras object that serializes itself (a ``DTypePolicy``, a ``QuantizationConfig``):
    Keras is optional, so such arguments are typed by what jaxembed calls on them."""

    def get_config(self) -> dict[str, Any]:
        """The object's Keras config."""
        ...


# The types of the Keras arguments (used in the constructors' signatures and the Linen fields).
InitializerLike = str | Mapping[str, Any] | Callable[..., jax.typing.ArrayLike]
"""A Keras initializer name (``"uniform"``, ``"HeNormal"``), its config dict, an initializer
object, or a callable ``(key, shape, dtype) -> array``."""
RegularizerLike = str | Mapping[str, Any] | Callable[[jax.Array], jax.typing.ArrayLike] | None
"""A Keras regularizer name (``"l2"``), its config dict, a callable ``table -> penalty``, or ``None``."""
ConstraintLike = str | Mapping[str, Any] | Callable[[jax.Array], jax.Array] | None
"""A Keras constraint name (``"non_neg"``), its config dict, a callable ``table -> table``, or ``None``."""
DTypeLike = str | type | np.dtype | Mapping[str, Any] | KerasObject | None
"""A floating dtype or its name, a Keras policy name (``"mixed_bfloat16"``, ``"int8_from_float32"``),
a ``keras.DTypePolicy`` (its config dict), or ``None`` (not said)."""

TableSharding = (
    jax.sharding.NamedSharding | jax.sharding.PartitionSpec | tuple[str | tuple[str, ...] | None, ...] | None
)
"""Where a table goes on a mesh: a ``NamedSharding``, or a ``PartitionSpec`` / mesh-axis names per
table axis (the mesh from ``jax.set_mesh``), or ``None`` (see :mod:`jaxembed.sharding`)."""

ARGUMENTS: tuple[Argument, ...] = (
    Argument("input_dim", _REQUIRED, "int"),
    Argument("output_dim", _REQUIRED, "int"),
    Argument("embeddings_initializer", "uniform", "InitializerLike"),
    Argument("embeddings_regularizer", None, "RegularizerLike"),
    Argument("embeddings_constraint", None, "ConstraintLike"),
    Argument("activity_regularizer", None, "RegularizerLike"),
    Argument("mask_zero", False, "bool"),
    Argument("input_length", None, "int | Sequence[int | None] | None"),
    Argument("name", None, "str | None"),
    Argument("trainable", True, "bool"),
    Argument("dtype", None, "DTypeLike"),
    Argument("param_dtype", None, "DTypeLike"),
    Argument("lookup", "take", "ops.LookupMethod"),
    Argument("invalid_ids", "nan", "ops.InvalidIds"),
)
"""The 14 arguments of an Embedding, spelled out once: :meth:`EmbeddingSpec.create` reads its
names and defaults, the Linen module's fields come from it, and a test checks that the NNX
constructors' written-out signatures (:class:`jaxembed.Embedding`,
:class:`jaxembed.ReversibleEmbedding`) have exactly these names, defaults and types."""
KERAS_ARGUMENT_NAMES: tuple[str, ...] = tuple(a.name for a in ARGUMENTS)
"""The names in :data:`ARGUMENTS`, in order."""


def arguments_with_defaults(input_dim: Any, output_dim: Any, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """All 14 arguments: the given ones over the schema's defaults (unknown names raise ``TypeError``).

    Examples:
        >>> arguments_with_defaults(4, 2, {"mask_zero": True})["lookup"]
        'take'
    """
    unknown = sorted(set(arguments) - set(KERAS_ARGUMENT_NAMES[2:]))
    if unknown:
        raise TypeError(
            f"Unexpected Embedding argument(s) {unknown}. Expected a subset of {list(KERAS_ARGUMENT_NAMES)}."
        )
    values = {a.name: a.default for a in ARGUMENTS[2:]} | dict(arguments)
    return {"input_dim": input_dim, "output_dim": output_dim, **values}


def keras_arguments(values: Mapping[str, Any]) -> dict[str, Any]:
    """The 12 keyword arguments of :data:`ARGUMENTS` (after the two sizes) picked from ``values``
    (a constructor's ``locals()``), for :meth:`EmbeddingSpec.create`.

    Examples:
        >>> values = {a.name: a.default for a in ARGUMENTS} | {"mask_zero": True, "rngs": 0}
        >>> picked = keras_arguments(values)
        >>> len(picked), picked["mask_zero"], "rngs" in picked
        (12, True, False)
    """
    return {a.name: values[a.name] for a in ARGUMENTS[2:]}


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
    # The parts (jaxembed.tables): swapped by ``Embedding.quantize`` / ``Embedding.enable_lora``.
    table: DenseTable | QuantizedTablePart = DenseTable()
    lora: LoRAPart | None = None

    @classmethod
    def create(cls, input_dim: int, output_dim: int, **arguments: Any) -> EmbeddingSpec:
        """Checks every argument (the names and defaults of :data:`ARGUMENTS`) and resolves Keras identifiers.

        Raises:
            TypeError: for a name that is not one of :data:`ARGUMENTS`.
            ValueError: for a non-positive or non-integer size, an unknown
                initializer/regularizer/constraint/lookup name, a non-float dtype.
        """
        a = arguments_with_defaults(input_dim, output_dim, arguments)
        dtype, param_dtype, mask_zero = a["dtype"], a["param_dtype"], a["mask_zero"]
        trainable, name = a["trainable"], a["name"]
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
            embeddings_initializer=initializers.get(a["embeddings_initializer"]),
            embeddings_regularizer=regularizers.get(a["embeddings_regularizer"]),
            embeddings_constraint=constraints.get(a["embeddings_constraint"]),
            activity_regularizer=regularizers.get(a["activity_regularizer"]),
            mask_zero=bool(mask_zero),
            input_length=_input_length(a["input_length"]),
            name=name or _DEFAULT_NAME,
            trainable=bool(trainable),
            dtype=compute or variable,
            param_dtype=variable,
            lookup=ops._check_lookup_method(a["lookup"]),
            invalid_ids=ops._check_invalid_ids_mode(a["invalid_ids"]),
        )

    # ------------------------------------------------------------------ parts
    @property
    def quantization_mode(self) -> str | None:
        """``"int8"``/``"int4"`` for a quantized table part, else ``None`` (Keras's attribute)."""
        return getattr(self.table, "mode", None)

    @property
    def quantization_block_size(self) -> int | None:
        """The int4 block size (``None``: per row, or not int4)."""
        return getattr(self.table, "block_size", None)

    @property
    def quantization_value_range(self) -> tuple[int, int] | None:
        """A custom int8 ``AbsMaxQuantizer`` range (``None``: Keras's default, or not int8)."""
        return getattr(self.table, "value_range", None)

    @property
    def quantization_inputs(self) -> bool | None:
        """Whether a quantized projection quantizes its inputs (Keras's activation quantizer);
        ``None`` when not quantized."""
        return getattr(self.table, "quantize_inputs", None)

    @property
    def lora_rank(self) -> int | None:
        """The LoRA part's rank, or ``None`` without one."""
        return None if self.lora is None else self.lora.rank

    @property
    def lora_alpha(self) -> float | None:
        """The LoRA part's ``alpha``, or ``None`` without one."""
        return None if self.lora is None else self.lora.alpha

    def keras_arguments(self) -> dict[str, Any]:
        """The 14 arguments as resolved objects, by :data:`ARGUMENTS` name (for :meth:`create`)."""
        return {name: getattr(self, name) for name in KERAS_ARGUMENT_NAMES}

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
            initializer = self.embeddings_initializer
            if isinstance(initializer, initializers.Initializer):
                # Chunk by chunk for large tables: no full-size float32 draw of a low-precision table.
                return initializers.initialize_table(initializer, key, self.table_shape, self.param_dtype)
            table = initializer(key, self.table_shape, self.param_dtype)  # a custom callable: checked
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
            config["quantization_config"] = _quantization_config(
                mode, block_size, self.quantization_value_range, self.quantization_inputs
            )
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
            arguments["quantization_config"] = quantization  # resolved (the policy is now the source's)
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
        known = set(KERAS_ARGUMENT_NAMES) | {"weights"} | set(extra)
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


_ACTIVATION_QUANTIZER = {
    "module": "keras.quantizers",
    "class_name": "AbsMaxQuantizer",
    "config": {"value_range": [-127, 127], "epsilon": 1e-07, "output_dtype": "int8"},
    "registered_name": None,
}


def _quantization_config(
    mode: str,
    block_size: int | None,
    value_range: tuple[int, int] | None = None,
    quantize_inputs: bool = True,
) -> dict[str, Any] | None:
    """Keras's serialized ``Int8QuantizationConfig`` / ``Int4QuantizationConfig``.

    Per-channel int4 writes ``block_size: None``, as Keras does; a custom int8 value range
    is written as the ``weight_quantizer`` Keras would write (an ``AbsMaxQuantizer``), and the
    activation quantizer as Keras's default ``AbsMaxQuantizer`` or ``None`` (weight-only).
    Grouped int4 that quantizes its inputs has no Keras config (Keras refuses one): it is
    written as ``None``, which Keras reads with the dtype policy alone, as it wrote it.
    """
    activation = dict(_ACTIVATION_QUANTIZER) if quantize_inputs else None
    if mode == "int8":
        weight_quantizer = None
        if value_range is not None:
            weight_quantizer = {
                "module": "keras.quantizers",
                "class_name": "AbsMaxQuantizer",
                "config": {
                    "value_range": list(value_range),
                    "epsilon": quant._EPSILON,
                    "output_dtype": "int8",
                    "axis": [-1],
                },
                "registered_name": None,
            }
        return {
            "module": "keras.quantizers",
            "class_name": "Int8QuantizationConfig",
            "config": {"weight_quantizer": weight_quantizer, "activation_quantizer": activation},
            "registered_name": None,
        }
    if quantize_inputs and block_size is not None:
        return None
    return {
        "module": "keras.quantizers",
        "class_name": "Int4QuantizationConfig",
        "config": {
            "weight_quantizer": None,
            "activation_quantizer": activation,
            "block_size": block_size,
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
    if isinstance(dtype, str) and "_from_" in dtype:  # a Keras policy name, so Keras's semantics
        name = dtype.split("_from_", 1)[1]
        return {
            "module": "keras",
            "class_name": "DTypePolicy",
            "config": {"name": name},
            "registered_name": None,
        }
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


class Quantization(NamedTuple):
    """A layer's quantization: the mode, the int4 block size, a custom int8 value range, and
    whether the reverse projection quantizes its inputs.

    Attributes:
        mode: ``"int8"`` or ``"int4"``.
        block_size: int4 columns per group; ``None`` for one scale per row (and for int8).
        value_range: a custom int8 ``AbsMaxQuantizer`` range such as ``(-50, 50)``;
            ``None`` for Keras's default ``(-127, 127)`` (int4 has only its default ``(-8, 7)``).
        quantize_inputs: Keras's activation quantizer: the inputs of a quantized projection
            (:meth:`jaxembed.Embedding.attend`, ``ReversibleEmbedding(reverse=True)``) are
            quantized per row to int8 (``True``, an ``AbsMaxQuantizer``) or stay float
            (``False``, ``activation_quantizer=None``: weight-only). The default ``True`` is
            Keras's for a layer without a quantization config (a quantized dtype policy alone);
            ``Int8QuantizationConfig()`` says ``True`` and ``Int4QuantizationConfig()`` ``False``.
    """

    mode: str
    block_size: int | None
    value_range: tuple[int, int] | None = None
    quantize_inputs: bool = True


_KERAS_QUANTIZATION_CONFIGS = ("Int8QuantizationConfig", "Int4QuantizationConfig")
_DEFAULT_VALUE_RANGES = {"int8": (-127, 127), "int4": (-8, 7)}


def _serialized(value: Any) -> Any:
    """A live Keras ``QuantizationConfig`` / quantizer as the dict Keras would serialize it to."""
    if isinstance(value, (str, Mapping, Quantization)) or not hasattr(value, "get_config"):
        return value
    name = type(value).__name__
    if name not in (*_KERAS_QUANTIZATION_CONFIGS, "AbsMaxQuantizer"):
        return {"class_name": name}  # refused by name below (a GPTQConfig may not even serialize)
    return {"class_name": name, "config": dict(value.get_config())}


def _weight_quantizer_range(quantizer: Any, mode: str) -> tuple[int, int] | None:
    """The value range a ``weight_quantizer`` sets (``None``: Keras's default), or a clear refusal.

    jaxembed honours what Keras's Embedding honours of an ``AbsMaxQuantizer``: the value range
    (int8; int4 must keep ``(-8, 7)``, per channel). Any other setting is refused by name, so
    no quantizer is ever dropped silently.
    """
    quantizer = _serialized(quantizer)
    if quantizer is None:
        return None
    received = f"Received: weight_quantizer={quantizer!r}."
    if not isinstance(quantizer, Mapping) or quantizer.get("class_name") != "AbsMaxQuantizer":
        raise ValueError(f"The only weight quantizer jaxembed applies is Keras's AbsMaxQuantizer. {received}")
    inner = quantizer.get("config") or {}
    axis = inner.get("axis")
    if axis is not None and list(axis if isinstance(axis, (list, tuple)) else [axis]) != [-1]:
        raise ValueError(f"An Embedding's AbsMaxQuantizer must quantize along axis -1 (per row). {received}")
    epsilon = inner.get("epsilon", quant._EPSILON)
    if not np.isclose(float(epsilon), quant._EPSILON, rtol=1e-6, atol=0.0):
        raise ValueError(
            f"An AbsMaxQuantizer epsilon other than Keras's default {quant._EPSILON} is not supported. "
            f"{received}"
        )
    if inner.get("output_dtype", "int8") != "int8":
        raise ValueError(f"The weight quantizer's output_dtype must be 'int8', as Keras requires. {received}")
    value_range = inner.get("value_range", _DEFAULT_VALUE_RANGES["int8"])
    try:
        low, high = (_integer(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"`value_range` must be two integers (low, high). {received}") from None
    if mode == "int4":
        if (low, high) != _DEFAULT_VALUE_RANGES["int4"]:
            raise ValueError(
                f"Int4 quantization requires a weight_quantizer with value_range=(-8, 7), as Keras does. "
                f"{received}"
            )
        return None
    if not -128 <= low < 0 < high <= 127:
        raise ValueError(
            f"An int8 weight quantizer's `value_range` must satisfy -128 <= low < 0 < high <= 127. {received}"
        )
    return None if (low, high) == _DEFAULT_VALUE_RANGES["int8"] else (low, high)


def _quantizes_inputs(quantizer: Any) -> bool:
    """Whether an ``activation_quantizer`` quantizes the inputs (Keras's default ``AbsMaxQuantizer``),
    or not (``None``: weight-only); any other quantizer is refused by name, never dropped."""
    if quantizer is None:
        return False
    received = f"Received: activation_quantizer={quantizer!r}."
    if not isinstance(quantizer, Mapping) or quantizer.get("class_name") != "AbsMaxQuantizer":
        raise ValueError(
            "The activation quantizers jaxembed applies are None (weight-only) and Keras's default "
            f"AbsMaxQuantizer. {received}"
        )
    inner = quantizer.get("config") or {}
    axis = inner.get("axis")
    if axis is not None and list(axis if isinstance(axis, (list, tuple)) else [axis]) != [-1]:
        raise ValueError(f"An activation AbsMaxQuantizer must quantize along axis -1 (per row). {received}")
    value_range = inner.get("value_range", _DEFAULT_VALUE_RANGES["int8"])
    epsilon = inner.get("epsilon", quant._EPSILON)
    try:
        default_range = tuple(_integer(v) for v in value_range) == _DEFAULT_VALUE_RANGES["int8"]
    except (TypeError, ValueError):
        default_range = False
    if (
        not default_range
        or not np.isclose(float(epsilon), quant._EPSILON, rtol=1e-6, atol=0.0)
        or inner.get("output_dtype", "int8") != "int8"
    ):
        raise ValueError(
            "Only Keras's default activation AbsMaxQuantizer (value_range=(-127, 127), epsilon=1e-07, "
            f"output_dtype='int8') is supported. {received}"
        )
    return True


def _integer(value: Any) -> int:
    """``operator.index`` that also refuses bools (a value range of ``(False, True)`` is a mistake)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("a bool is not an integer here")
    return operator.index(value)


def parse_quantization_config(value: Any) -> Quantization | None:
    """A :class:`Quantization` from a ``quantization_config`` argument, or ``None``.

    Accepts ``None``, a mode name (``"int8"``, ``"int4"`` = grouped with
    block size 128), ``"int4/64"``-style policy modes, Keras's
    ``Int8QuantizationConfig`` / ``Int4QuantizationConfig`` (the objects or their
    serialized dicts) and a :class:`Quantization`. A ``weight_quantizer`` is
    honoured (an int8 ``AbsMaxQuantizer(axis=-1, value_range=...)``; Keras's
    defaults given explicitly) or refused with a ``ValueError``, never dropped.
    ``block_size`` ``None`` means one scale per row.

    Raises:
        ValueError: for an unknown mode or config class, or a quantizer jaxembed cannot apply.
        NotImplementedError: for Keras modes an Embedding does not have (``"gptq"``, ``"awq"``, ``"float8"``).

    Examples:
        >>> parse_quantization_config("int4")
        Quantization(mode='int4', block_size=128, value_range=None, quantize_inputs=False)
        >>> per_channel = {"class_name": "Int4QuantizationConfig", "config": {"block_size": None}}
        >>> parse_quantization_config(per_channel)
        Quantization(mode='int4', block_size=None, value_range=None, quantize_inputs=False)
    """
    value = _serialized(value)
    if value is None or isinstance(value, Quantization):
        return value
    if isinstance(value, str):
        mode, _, block = value.partition("/")
        quant._check_mode(mode)
        if mode == "int8":
            if block:
                raise ValueError(f"int8 quantization takes no block size. Received: {value!r}.")
            return Quantization("int8", None)
        # A mode name is Keras's quantize(mode): Int4QuantizationConfig() is weight-only.
        if block == "None":  # an older Keras spelling of per-channel int4 ("int4/None_from_float32")
            return Quantization("int4", None, quantize_inputs=False)
        if not block:
            return Quantization("int4", quant.DEFAULT_INT4_BLOCK_SIZE, quantize_inputs=False)
        try:
            size = int(block)
        except ValueError:
            raise ValueError(
                "`quantization_config` must be 'int8', 'int4' or 'int4/<block size>' with an integer block "
                f"size (-1 for one scale per row). Received: quantization_config={value!r}."
            ) from None
        return Quantization("int4", quant._check_block_size(size), quantize_inputs=False)
    if isinstance(value, Mapping):
        name = value.get("class_name")
        inner = value.get("config") or {}
        if name not in _KERAS_QUANTIZATION_CONFIGS:
            mode = str(name or "").removesuffix("QuantizationConfig").removesuffix("Config").lower()
            if mode in quant._KERAS_ONLY_MODES:  # GPTQConfig, AWQConfig, Float8QuantizationConfig
                quant._check_mode(mode)
            raise ValueError(
                "`quantization_config` must be 'int8', 'int4', or a Keras Int8QuantizationConfig / "
                f"Int4QuantizationConfig (object or serialized dict). Received: class_name={name!r}."
            )
        mode = "int8" if name == "Int8QuantizationConfig" else "int4"
        # Keras reads a missing block_size as per-channel (configs saved before it existed).
        block_size = quant._check_block_size(inner.get("block_size")) if mode == "int4" else None
        weight_quantizer = inner.get("weight_quantizer")
        # Keras reads a missing activation_quantizer as None (weight-only).
        activation_quantizer = _serialized(inner.get("activation_quantizer"))
        if (
            mode == "int4"
            and block_size is not None
            and (weight_quantizer, activation_quantizer) != (None, None)
        ):
            raise ValueError(
                "Int4 sub-channel quantization (block_size > 0) does not support custom quantizers, as in "
                f"Keras: use block_size=None for per-channel int4. Received: block_size={block_size}."
            )
        return Quantization(
            mode,
            block_size,
            _weight_quantizer_range(weight_quantizer, mode),
            _quantizes_inputs(activation_quantizer),
        )
    raise ValueError(
        "`quantization_config` must be None, a mode name ('int8', 'int4') or a Keras quantization config. "
        f"Received: {value!r} (of type {type(value).__name__})."
    )


def resolve_quantize_arguments(mode: str | None, block_size: int | None, config: Any) -> Quantization:
    """The quantization that ``Embedding.quantize(mode, block_size=..., config=...)`` asks for.

    As Keras's ``quantize(mode, config=...)``: the mode may come from the config alone,
    and a mode that contradicts the config is refused. ``block_size`` (jaxembed's shortcut
    for ``Int4QuantizationConfig(block_size=...)``) applies to int4 only.

    Examples:
        >>> resolve_quantize_arguments("int4", None, None)
        Quantization(mode='int4', block_size=None, value_range=None, quantize_inputs=False)
        >>> resolve_quantize_arguments(None, 128, {"class_name": "Int8QuantizationConfig", "config": {}})
        Quantization(mode='int8', block_size=None, value_range=None, quantize_inputs=False)
    """
    from_config = parse_quantization_config(config)
    if mode is None:
        if from_config is None:
            raise ValueError("You must provide either `mode` or `config` to `quantize`.")
        mode = from_config.mode
    quant._check_mode(mode)
    if from_config is not None:
        if from_config.mode != mode:
            raise ValueError(
                f"Contradictory arguments: mode={mode!r} but the config's mode is {from_config.mode!r}."
            )
        if block_size != quant.DEFAULT_INT4_BLOCK_SIZE and block_size != from_config.block_size:
            raise ValueError(
                f"`block_size={block_size!r}` contradicts the config's "
                f"block_size={from_config.block_size!r}; give it in one place."
            )
        return from_config
    if mode == "int8":
        if block_size != quant.DEFAULT_INT4_BLOCK_SIZE:
            raise ValueError(
                f"`block_size` applies to int4 only. Received: mode='int8', block_size={block_size!r}."
            )
        return Quantization("int8", None)
    return Quantization("int4", quant._check_block_size(block_size), quantize_inputs=False)


def quantization_arguments(dtype: Any, quantization_config: Any) -> tuple[Any, Quantization | None]:
    """``(dtype, quantization)`` from constructor arguments that may name a Keras quantized policy.

    ``dtype="int8_from_float32"`` (or ``"int4_from_mixed_bfloat16"``, a
    ``QuantizedDTypePolicy`` dict, ...) is what Keras's constructor and ``from_config``
    accept: the float policy after ``_from_`` becomes the layer's dtype and the mode
    quantizes the table (a bare ``"int4"`` policy is per-channel, as in Keras).

    Examples:
        >>> dtype, quantization = quantization_arguments("int4_from_mixed_bfloat16", None)
        >>> dtype["config"]["name"], quantization
        ('mixed_bfloat16', Quantization(mode='int4', block_size=None, value_range=None, quantize_inputs=True))
    """
    return _source_policy(dtype), _quantization_from_config(dtype, quantization_config)


QuantizationConfigLike = str | Mapping[str, Any] | Quantization | KerasObject | None
"""``"int8"``, ``"int4"``, ``"int4/<block size>"``, a Keras ``Int8QuantizationConfig`` /
``Int4QuantizationConfig`` (the object or its serialized dict), a :class:`Quantization`, or ``None``."""


class _ConfigError(TypeError, ValueError):
    """A config that does not build a layer: Keras raises ``TypeError``; earlier jaxembed, ``ValueError``."""


@contextlib.contextmanager
def config_errors(class_name: str, config: Mapping[str, Any]) -> Iterator[None]:
    """Turns a ``ValueError`` raised while building from ``config`` into Keras's ``TypeError``.

    The error is both a ``TypeError`` (as Keras's ``from_config``) and a ``ValueError``.
    """
    try:
        yield
    except ValueError as error:
        if isinstance(error, _ConfigError):
            raise
        raise _ConfigError(
            f"Error when deserializing class {class_name!r} using config={dict(config)!r}: {error}"
        ) from error


def _quantization_from_config(dtype: Any, quantization_config: Any) -> Quantization | None:
    """The quantization a Keras layer config describes (policy and/or quantization_config).

    The policy names the mode Keras builds the variables for; a ``quantization_config`` of
    the same mode adds its block size and quantizer (Keras prefers the config's block size).
    """
    from_policy = None
    if isinstance(dtype, Mapping) and dtype.get("class_name") in _QUANTIZED_POLICIES:
        mode = (dtype.get("config") or {}).get("mode", "")
        from_policy = parse_quantization_config(mode if mode != "int4" else "int4/-1")
    elif isinstance(dtype, str) and "_from_" in dtype:
        mode = dtype.split("_from_", 1)[0]
        from_policy = parse_quantization_config(mode if mode != "int4" else "int4/-1")
    from_config = parse_quantization_config(quantization_config)
    if from_policy is None:
        return from_config
    if from_config is not None and from_config.mode == from_policy.mode:
        return from_config
    # A policy without a config: Keras's build falls back to its default activation quantizer
    # (AbsMaxQuantizer) for int8 and int4 alike.
    return from_policy._replace(quantize_inputs=True)


# ReversibleEmbedding's own arguments (Keras 3), shared by the NNX and Linen modules.
_REVERSE_ARGUMENTS = ("tie_weights", "reverse_dtype", "logit_soft_cap")


def _check_reverse_arguments(tie_weights: Any, reverse_dtype: Any, logit_soft_cap: Any):
    if not isinstance(tie_weights, (bool, np.bool_)):
        raise ValueError(f"`tie_weights` must be a bool. Received: tie_weights={tie_weights!r}.")
    if reverse_dtype is not None:
        reverse_dtype = _floating_dtype("reverse_dtype", reverse_dtype)
    if logit_soft_cap is not None:
        if (
            isinstance(logit_soft_cap, bool)
            or not isinstance(logit_soft_cap, (int, float, np.integer, np.floating))
            or not logit_soft_cap > 0
        ):
            raise ValueError(
                "`logit_soft_cap` must be None or a positive number. "
                f"Received: logit_soft_cap={logit_soft_cap!r} (of type {type(logit_soft_cap).__name__})."
            )
        logit_soft_cap = float(logit_soft_cap)
    return bool(tie_weights), reverse_dtype, logit_soft_cap
