"""The parts an Embedding layer is made of (private; the API is described in :mod:`jaxembed.tables`).

A part is a small frozen dataclass: the static description of one piece of the layer (a dense
table, a quantized table, a LoRA delta). It owns the names of its variables, knows how to make
them, and computes with them; the layer stores those variables as its own attributes (so state
paths stay ``embeddings``, ``embeddings_scale``, ``lora_embeddings_a``, ... as in Keras) and hands
them back to the part as a ``{name: variable}`` mapping. Parts are hashable, so they live in the
layer's static graph data and survive ``nnx.split``/``nnx.merge``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxembed import ops
from jaxembed.tables import _lora as lora_math
from jaxembed.tables import _quant as quant

__all__ = [
    "FrozenParam",
    "QuantizedVariable",
    "Variables",
    "TablePart",
    "DenseTable",
    "QuantizedTablePart",
    "LoRAPart",
]

Variables = Mapping[str, nnx.Variable]
"""A part's variables by name, as the layer holds them."""


class FrozenParam(nnx.Variable):
    """A table that training leaves alone (``trainable=False``).

    It is not an ``nnx.Param``, so ``nnx.grad``, ``nnx.Optimizer(..., wrt=nnx.Param)``
    and jaxembed's training utilities skip it; the layer also stops gradients
    through it.
    """


class QuantizedVariable(nnx.Variable):
    """An int8/int4 table or its scales and zero points (after :meth:`jaxembed.Embedding.quantize`).

    Not an ``nnx.Param``: quantized tables are not trained (LoRA factors on top are).
    """


def _retyped(variable: nnx.Variable, kind: type[nnx.Variable]) -> nnx.Variable:
    """The same array as a variable of another kind (trainable or frozen), metadata (sharding) kept."""
    if type(variable) is kind:
        return variable
    new = kind(variable[...])
    new.set_metadata(**variable.get_metadata())
    return new


def _kind(trainable: bool) -> type[nnx.Variable]:
    return nnx.Param if trainable else FrozenParam


def _check_shapes(names: Sequence[str], variables: Variables, arrays: Sequence[Any]) -> None:
    for name, value in zip(names, arrays):
        expected = variables[name].shape
        if np.shape(value) != expected:
            raise ValueError(
                f"`set_weights`: {name} must have shape {expected}. Received shape {np.shape(value)}."
            )


def _read(variable: nnx.Variable) -> jax.Array:
    """A variable's array, with gradients stopped unless it is a trained ``nnx.Param``."""
    value = variable[...]
    return value if isinstance(variable, nnx.Param) else jax.lax.stop_gradient(value)


class _NamedArrays:
    """What a part whose Keras weights are exactly its variables, in ``names`` order, shares:
    the Keras weight list both ways (shapes checked) and its trained variables."""

    names: tuple[str, ...]

    def keras_weight_names(self) -> tuple[str, ...]:
        """The names of :meth:`keras_weights`: the part's variables."""
        return self.names

    def keras_weights(self, variables: Variables) -> list[tuple[str, jax.Array]]:
        """The stored arrays, ``(name, array)`` in ``names`` order."""
        return [(name, variables[name][...]) for name in self.names]

    def set_keras_weights(self, variables: Variables, arrays: Sequence[Any]) -> None:
        """Assigns arrays laid out as :meth:`keras_weights` (shapes checked first)."""
        _check_shapes(self.names, variables, arrays)
        for name, value in zip(self.names, arrays):
            variables[name][...] = jnp.asarray(value, variables[name].dtype)

    def trainable_variables(self, variables: Variables) -> dict[str, nnx.Variable]:
        """The variables that are trained ``nnx.Param`` objects."""
        return {k: v for k, v in variables.items() if isinstance(v, nnx.Param)}


class TablePart(Protocol):
    """What every part offers (see the :mod:`jaxembed.tables` docstring for each method)."""

    names: tuple[str, ...]
    row_sparse: bool
    keras_trainable: bool

    def lookup(self, variables: Variables, ids: ops.CheckedIds, *, method: ops.LookupMethod) -> jax.Array:
        """Rows for already-checked ids, ``(*ids.index.shape, output_dim)``."""
        ...

    def dense(self, variables: Variables) -> jax.Array:
        """The dense ``(input_dim, output_dim)`` equivalent (``O(input_dim)``)."""
        ...

    def project(self, variables: Variables, x: jax.Array, *, dtype: jnp.dtype) -> jax.Array:
        """This part's share of the logits ``x @ W.T``, ``(..., input_dim)``."""
        ...

    def keras_weight_names(self) -> tuple[str, ...]:
        """The names of :meth:`keras_weights`, in Keras's order."""
        ...

    def keras_weights(self, variables: Variables) -> list[tuple[str, jax.Array]]:
        """Keras's weights of this part, in Keras's order, as ``(name, array)``."""
        ...

    def set_keras_weights(self, variables: Variables, arrays: Sequence[Any]) -> None:
        """Assigns arrays laid out as :meth:`keras_weights` (shapes checked first)."""
        ...

    def trainable_variables(self, variables: Variables) -> dict[str, nnx.Variable]:
        """The variables training updates."""
        ...

    def with_trainable(self, variables: Variables, trainable: bool) -> dict[str, nnx.Variable]:
        """The variables retyped for ``trainable`` (the part decides what can train)."""
        ...

    def penalty(self, variables: Variables, regularizer: Callable | None) -> jax.Array:
        """The regularizer on this part's trained arrays (0.0 without one, or with none trained)."""
        ...

    def constrain(self, variables: Variables, constraint: Callable | None) -> None:
        """Projects this part's trained arrays with ``constraint`` in place."""
        ...


# ===================================================================== dense
@dataclasses.dataclass(frozen=True)
class DenseTable:
    """A float table ``embeddings`` ``(input_dim, output_dim)``: an ``nnx.Param``, or a
    :class:`FrozenParam` when frozen (not trainable, or under LoRA).

    Examples:
        >>> part = DenseTable()
        >>> variables = part.create(jnp.array([[1.0, 1.0], [1.0, 2.0]]), trainable=True)
        >>> part.lookup(variables, ops.check_ids([1], 2), method="take").tolist()
        [[1.0, 2.0]]
        >>> [name for name, _ in part.keras_weights(variables)]
        ['embeddings']
    """

    names: ClassVar[tuple[str, ...]] = ("embeddings",)

    row_sparse: ClassVar[bool] = True
    """Row-sparse training (:mod:`jaxembed.sparse`) can update this part's trained table."""
    keras_trainable: ClassVar[bool] = True
    """Keras creates these weights trainable (its ``get_weights`` lists such weights first)."""

    def create(self, table: jax.Array, *, trainable: bool = True, **metadata: Any) -> dict[str, nnx.Variable]:
        """The variable holding ``table`` (``metadata``: Flax variable metadata, e.g. sharding)."""
        return {"embeddings": _kind(trainable)(table, **metadata)}

    def lookup(
        self, variables: Variables, ids: ops.CheckedIds, *, method: ops.LookupMethod = "take"
    ) -> jax.Array:
        """``table[ids]`` (gradients stopped when the table is frozen)."""
        return ops.gather(_read(variables["embeddings"]), ids, method=method)

    def dense(self, variables: Variables) -> jax.Array:
        """The table itself."""
        return variables["embeddings"][...]

    def project(self, variables: Variables, x: jax.Array, *, dtype: jnp.dtype) -> jax.Array:
        """``x @ table.T`` in ``dtype``: logits ``(..., input_dim)`` (gradients stopped when frozen)."""
        return jnp.matmul(jnp.asarray(x, dtype), _read(variables["embeddings"]).astype(dtype).T)

    def keras_weight_names(self) -> tuple[str, ...]:
        """``("embeddings",)``."""
        return self.names

    def keras_weights(self, variables: Variables) -> list[tuple[str, jax.Array]]:
        """``[("embeddings", table)]``."""
        return [("embeddings", variables["embeddings"][...])]

    def set_keras_weights(self, variables: Variables, arrays: Sequence[Any]) -> None:
        """Assigns ``[table]`` (shape and numeric dtype checked)."""
        (array,) = arrays
        variable = variables["embeddings"]
        array = np.asarray(array)
        if array.shape != variable.shape:
            raise ValueError(
                f"`weights` must have shape (input_dim, output_dim) = {variable.shape}. "
                f"Received an array of shape {array.shape}."
            )
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == jnp.bfloat16) or array.dtype == bool:
            raise ValueError(f"`weights` must be numeric. Received dtype {array.dtype}.")
        variable[...] = jnp.asarray(array, variable.dtype)

    def trainable_variables(self, variables: Variables) -> dict[str, nnx.Variable]:
        """``{"embeddings": ...}`` when it is an ``nnx.Param``, else ``{}``."""
        return _NamedArrays.trainable_variables(self, variables)

    def with_trainable(self, variables: Variables, trainable: bool) -> dict[str, nnx.Variable]:
        """The table as an ``nnx.Param`` or a :class:`FrozenParam` (sharding metadata kept)."""
        return {"embeddings": _retyped(variables["embeddings"], _kind(trainable))}

    def penalty(self, variables: Variables, regularizer: Callable | None) -> jax.Array:
        """``regularizer(table)``."""
        if regularizer is None:
            return jnp.zeros((), jnp.float32)
        return jnp.asarray(regularizer(variables["embeddings"][...]), jnp.float32)

    def constrain(self, variables: Variables, constraint: Callable | None) -> None:
        """``table = constraint(table)``."""
        if constraint is not None:
            variables["embeddings"][...] = constraint(variables["embeddings"][...])


# ================================================================ quantized
@dataclasses.dataclass(frozen=True)
class QuantizedTablePart:
    """An int8 or int4 table with Keras 3's layout: ``embeddings`` (int8, int4 packed two per
    byte), ``embeddings_scale`` and, for grouped int4, ``embeddings_zero``; all
    :class:`QuantizedVariable` (never trained). Keras's weights add ``g_idx`` for grouped int4.

    Attributes:
        mode: ``"int8"`` or ``"int4"``.
        output_dim: the unpacked width.
        block_size: int4 columns per group, or ``None`` (one scale per row; always for int8).
        value_range: int8 only: a custom Keras ``AbsMaxQuantizer`` range such as ``(-50, 50)``
            (``None``: Keras's default ``(-127, 127)``).
        quantize_inputs: whether :meth:`project` quantizes its inputs per row to int8 (Keras's
            activation quantizer) or keeps them float (``activation_quantizer=None``,
            weight-only); ``None`` gives the default of Keras's config for the mode (int8 yes,
            int4 no).
        compute_dtype: the dtype looked-up rows are dequantized in: the layer's compute dtype,
            as Keras does (a bfloat16 layer divides bfloat16 values by bfloat16 scales).

    Examples:
        >>> part = QuantizedTablePart("int4", output_dim=3, block_size=2)
        >>> variables = part.create(jnp.array([[0.0, 1.0, -2.0]]))
        >>> [(name, a.shape) for name, a in part.keras_weights(variables)]
        [('embeddings', (1, 2)), ('embeddings_scale', (1, 2)), ('embeddings_zero', (1, 2)), ('g_idx', (3,))]
    """

    mode: quant.QuantizationMode
    output_dim: int
    block_size: int | None = None
    value_range: tuple[int, int] | None = None
    quantize_inputs: bool | None = None
    compute_dtype: str = "float32"

    row_sparse: ClassVar[bool] = False
    keras_trainable: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.quantize_inputs is None:
            object.__setattr__(self, "quantize_inputs", self.mode == "int8")

    @property
    def names(self) -> tuple[str, ...]:  # type: ignore[override]
        """The stored variables: values, scale and (grouped int4) zero points."""
        return ("embeddings", "embeddings_scale") + (("embeddings_zero",) if self._grouped else ())

    @property
    def _grouped(self) -> bool:
        return self.mode == "int4" and self.block_size is not None

    def create(self, table: jax.typing.ArrayLike, **_metadata: Any) -> dict[str, nnx.Variable]:
        """Quantizes a float table (on the host, bit-exact with Keras)."""
        stored = quant.quantize(table, self.mode, block_size=self.block_size, value_range=self.value_range)
        return dict(zip(self.names, (QuantizedVariable(a) for a in stored if a is not None)))

    def stored(self, variables: Variables) -> quant.QuantizedTable:
        """The arrays as a :class:`jaxembed.tables.QuantizedTable`."""
        arrays = [variables[name][...] for name in self.names]
        return quant.QuantizedTable(*arrays)

    def lookup(
        self, variables: Variables, ids: ops.CheckedIds, *, method: ops.LookupMethod = "take"
    ) -> jax.Array:
        """Dequantized rows of the ids only (``O(ids.size * output_dim)``), in ``compute_dtype``."""
        return quant._lookup_checked(
            self.stored(variables),
            ids,
            mode=self.mode,
            output_dim=self.output_dim,
            block_size=self.block_size,
            dtype=jnp.dtype(self.compute_dtype),
        )

    def dense(self, variables: Variables) -> jax.Array:
        """The dequantized float32 table."""
        return quant.dequantize(
            self.stored(variables), mode=self.mode, output_dim=self.output_dim, block_size=self.block_size
        )

    def project(self, variables: Variables, x: jax.Array, *, dtype: jnp.dtype) -> jax.Array:
        """Logits ``x @ W.T`` the way Keras 3's quantized reverse call computes them (``x``
        quantized per row to int8 when ``quantize_inputs``, see
        :func:`jaxembed.tables.quantized_project`)."""
        return quant.project(
            self.stored(variables),
            x,
            mode=self.mode,
            output_dim=self.output_dim,
            block_size=self.block_size,
            dtype=dtype,
            quantize_x=self.quantize_inputs,
        )

    def _g_idx(self) -> jax.Array:
        return quant.group_index(self.output_dim, self.block_size)

    def keras_weights(self, variables: Variables) -> list[tuple[str, jax.Array]]:
        """Values, scale, and for grouped int4 zero points and ``g_idx`` (Keras's 4 arrays)."""
        weights = [(name, variables[name][...]) for name in self.names]
        if self._grouped:
            weights.append(("g_idx", self._g_idx()))
        return weights

    def keras_weight_names(self) -> tuple[str, ...]:
        """The names :meth:`keras_weights` gives."""
        return self.names + (("g_idx",) if self._grouped else ())

    def set_keras_weights(self, variables: Variables, arrays: Sequence[Any]) -> None:
        """Assigns values, scale (and zero, ``g_idx``); ``g_idx`` must be the block layout's."""
        arrays = list(arrays)
        _check_shapes(self.names, variables, arrays)
        if self._grouped:
            g_idx = np.asarray(arrays[-1])
            expected = np.asarray(self._g_idx())
            if g_idx.shape != expected.shape or not np.array_equal(g_idx, expected):
                raise ValueError(
                    f"`set_weights`: g_idx must be floor(arange({self.output_dim}) / {self.block_size}) "
                    f"(block_size={self.block_size}). Received an array of shape {g_idx.shape}."
                )
        for name, value in zip(self.names, arrays):
            variables[name][...] = jnp.asarray(value, variables[name].dtype)

    def trainable_variables(self, variables: Variables) -> dict[str, nnx.Variable]:
        """``{}``: quantized tables are not trained."""
        return {}

    def with_trainable(self, variables: Variables, trainable: bool) -> dict[str, nnx.Variable]:
        """Unchanged: quantized tables are not trained."""
        return dict(variables)

    def penalty(self, variables: Variables, regularizer: Callable | None) -> jax.Array:
        """0.0: nothing trained to regularize."""
        return jnp.zeros((), jnp.float32)

    def constrain(self, variables: Variables, constraint: Callable | None) -> None:
        """Nothing: constraints act on trained arrays."""


# ==================================================================== LoRA
@dataclasses.dataclass(frozen=True)
class LoRAPart(_NamedArrays):
    """The low-rank delta ``(alpha / rank) * A @ B`` on top of a table part: trainable float32
    ``lora_embeddings_a`` ``(input_dim, rank)`` and ``lora_embeddings_b`` ``(rank, output_dim)``.

    Examples:
        >>> part = LoRAPart(rank=1, alpha=2)
        >>> variables = part.create(jax.random.key(0), 3, 2, b_initializer="ones")
        >>> part.delta_rows(variables, ops.check_ids([0], 3)).shape
        (1, 2)
    """

    rank: int
    alpha: float

    names: ClassVar[tuple[str, ...]] = ("lora_embeddings_a", "lora_embeddings_b")
    row_sparse: ClassVar[bool] = False
    keras_trainable: ClassVar[bool] = True

    def create(
        self,
        key: jax.Array,
        input_dim: int,
        output_dim: int,
        *,
        trainable: bool = True,
        a_initializer: Any = "he_uniform",
        b_initializer: Any = "zeros",
    ) -> dict[str, nnx.Variable]:
        """Fresh factors (Keras's initializers: ``A`` he_uniform, ``B`` zeros)."""
        a, b = lora_math.init_factors(
            key, input_dim, output_dim, self.rank, a_initializer=a_initializer, b_initializer=b_initializer
        )
        kind = _kind(trainable)
        return {"lora_embeddings_a": kind(a), "lora_embeddings_b": kind(b)}

    def _factors(self, variables: Variables) -> tuple[jax.Array, jax.Array]:
        return _read(variables["lora_embeddings_a"]), _read(variables["lora_embeddings_b"])

    def delta_rows(
        self, variables: Variables, ids: ops.CheckedIds, *, method: ops.LookupMethod = "take"
    ) -> jax.Array:
        """``(alpha / rank) * A[ids] @ B``, ``(*ids.index.shape, output_dim)``."""
        a, b = self._factors(variables)
        return lora_math._delta_rows_checked(a, b, ids, rank=self.rank, alpha=self.alpha)

    lookup = delta_rows

    def merged(self, variables: Variables, table: jax.Array) -> jax.Array:
        """``table + (alpha / rank) * A @ B`` in ``table``'s dtype (what Keras saves)."""
        a, b = (variables[name][...] for name in self.names)
        return lora_math.merged_table(table, a, b, rank=self.rank, alpha=self.alpha)

    def project(self, variables: Variables, x: jax.Array, *, dtype: jnp.dtype) -> jax.Array:
        """``x @ ((alpha / rank) A B).T`` without forming ``A B``: ``((x @ B.T) @ A.T) * alpha / rank``."""
        a, b = self._factors(variables)
        scale = lora_math.scaling(self.rank, self.alpha)
        return (scale * jnp.matmul(jnp.matmul(jnp.asarray(x, jnp.float32), b.T), a.T)).astype(dtype)

    def dense(self, variables: Variables) -> jax.Array:
        """The full delta ``(alpha / rank) * A @ B`` (``O(input_dim)``)."""
        a, b = (variables[name][...] for name in self.names)
        return lora_math.delta(a, b, rank=self.rank, alpha=self.alpha)

    def zero(self, variables: Variables) -> None:
        """Sets ``A`` and ``B`` to zero (a loaded merged table, as Keras's load does)."""
        for name in self.names:
            variables[name][...] = jnp.zeros_like(variables[name][...])

    def with_trainable(self, variables: Variables, trainable: bool) -> dict[str, nnx.Variable]:
        """``A`` and ``B`` as ``nnx.Param`` or :class:`FrozenParam`."""
        return {name: _retyped(variables[name], _kind(trainable)) for name in self.names}

    def penalty(self, variables: Variables, regularizer: Callable | None) -> jax.Array:
        """``regularizer(A) + regularizer(B)`` (Keras regularizes the factors)."""
        if regularizer is None:
            return jnp.zeros((), jnp.float32)
        return sum(
            (jnp.asarray(regularizer(variables[name][...]), jnp.float32) for name in self.names),
            jnp.zeros((), jnp.float32),
        )

    def constrain(self, variables: Variables, constraint: Callable | None) -> None:
        """Nothing: Keras refuses LoRA with a constraint."""
