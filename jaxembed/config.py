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
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxembed import constraints, initializers, ops, regularizers

__all__ = ["EmbeddingSpec", "parse_dtype"]

_DEFAULT_NAME = "embedding"
_MIXED_POLICIES = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
# Keys that Keras writes into an Embedding config and that carry no meaning here.
_IGNORED_KERAS_KEYS = ("batch_input_shape", "batch_shape", "sparse", "ragged")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or isinstance(value, (float, np.floating)):
        ok = False
    else:
        try:
            value = operator.index(value)
            ok = value > 0
        except TypeError:
            ok = False
    if not ok:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r} "
            f"(of type {type(value).__name__})."
        )
    return value


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
    return tuple(None if v is None else _positive_int("input_length", v) for v in items)


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
            input_dim=_positive_int("input_dim", input_dim),
            output_dim=_positive_int("output_dim", output_dim),
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
            lookup=ops.check_lookup_method(lookup),
            invalid_ids=ops.check_invalid_ids_mode(invalid_ids),
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
        """The starting table: ``weights`` if given (checked), else drawn from the initializer."""
        if weights is None:
            table = self.embeddings_initializer(key, self.table_shape, self.param_dtype)
            return jnp.asarray(table, self.param_dtype)
        if isinstance(weights, (list, tuple)) and len(weights) == 1:
            weights = weights[0]
        array = np.asarray(weights)
        if array.shape != self.table_shape:
            raise ValueError(
                f"`weights` must have shape (input_dim, output_dim) = {self.table_shape}. "
                f"Received an array of shape {array.shape}."
            )
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == jnp.bfloat16) or array.dtype == np.bool_:
            raise ValueError(f"`weights` must be numeric. Received dtype {array.dtype}.")
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
        return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}

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
        if self.input_length is not None:
            length = self.input_length
            config["input_length"] = length[0] if len(length) == 1 else list(length)
        if self.lookup != "take":
            config["lookup"] = self.lookup
        if self.invalid_ids != "nan":
            config["invalid_ids"] = self.invalid_ids
        _, policy_variable = parse_dtype(config["dtype"])
        if policy_variable != self.param_dtype:
            config["param_dtype"] = _dtype_name(self.param_dtype)
        return config

    @staticmethod
    def arguments_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor keyword arguments from a config written by Keras (2 or 3) or jaxembed.

        Raises:
            ValueError: for keys that are not Embedding arguments (listing them).
            NotImplementedError: for LoRA or quantization settings, which this
                layer does not model yet.
        """
        arguments = dict(config)
        if isinstance(arguments.get("dtype"), str):  # Keras 2 wrote the policy as a plain name
            arguments["dtype"] = {"class_name": "DTypePolicy", "config": {"name": arguments["dtype"]}}
        for key in _IGNORED_KERAS_KEYS:
            value = arguments.pop(key, None)
            if key in ("batch_input_shape", "batch_shape") and value is not None:
                if arguments.get("input_length") is None and len(value) >= 2:
                    arguments["input_length"] = list(value[1:]) if len(value) > 2 else value[1]
        for key in ("quantization_config", "lora_rank", "lora_alpha"):
            if arguments.pop(key, None) is not None:
                raise NotImplementedError(
                    f"This config sets {key!r}; LoRA and quantized Keras embeddings are not supported "
                    "by jaxembed.Embedding.from_config."
                )
        known = {f.name for f in dataclasses.fields(EmbeddingSpec)} | {"weights"}
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise ValueError(
                f"Unknown Embedding config keys {unknown}; expected a subset of {sorted(known)}."
            )
        return arguments
