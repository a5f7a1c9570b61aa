"""The untied output projection of a ReversibleEmbedding (private; see :mod:`jaxembed.tables`).

Keras 3's ``ReversibleEmbedding(tie_weights=False)`` keeps a second matrix
``reverse_embeddings`` of shape ``(output_dim, input_dim)`` (logits ``x @ reverse_embeddings``).
Quantized, it is stored transposed with respect to the table: int8 values ``(output_dim,
input_dim)`` with one scale per column ``(input_dim,)``; int4 packed two per byte along axis 0
``(ceil(output_dim / 2), input_dim)``; grouped int4 with scales and zero points of shape
``(n_groups, input_dim)`` (Keras keeps these zero points as floats, float32 or the layer's
16-bit variable dtype, like the scales). Each layout is the
transpose of the table layout of :mod:`jaxembed.tables._quant` applied to
``reverse_embeddings.T``, which is how this part computes it (bit-exact with Keras).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxembed.tables import _quant as quant
from jaxembed.tables._parts import (
    QuantizedTablePart,
    QuantizedVariable,
    Variables,
    _kind,
    _NamedArrays,
    _read,
    _retyped,
)

__all__ = ["ReverseKernel"]


@dataclasses.dataclass(frozen=True)
class ReverseKernel(_NamedArrays):
    """The untied ``reverse_embeddings`` ``(output_dim, input_dim)``: float (trainable) or quantized.

    Attributes:
        input_dim: the vocabulary size (the logits' width).
        output_dim: the vector size.
        mode: ``None`` (float), ``"int8"`` or ``"int4"``.
        block_size: int4 rows per group along ``output_dim``, or ``None`` (per column).
        value_range: int8 only: a custom abs-max range (as the table's, from a Keras config).
        quantize_inputs: the projection quantizes ``x`` per row to int8 (Keras's activation
            quantizer, the table's setting) or keeps it float (weight-only).

    Examples:
        >>> part = ReverseKernel(3, 2)
        >>> variables = part.create(jnp.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]))
        >>> part.project(variables, jnp.array([[1.0, 1.0]]), dtype=jnp.float32).tolist()
        [[1.0, 1.0, 2.0]]
    """

    input_dim: int
    output_dim: int
    mode: quant.QuantizationMode | None = None
    block_size: int | None = None
    value_range: tuple[int, int] | None = None
    quantize_inputs: bool = False

    row_sparse: ClassVar[bool] = False

    @property
    def keras_trainable(self) -> bool:
        """Keras creates the float kernel trainable, the quantized arrays not."""
        return self.mode is None

    @property
    def names(self) -> tuple[str, ...]:
        """``reverse_embeddings`` (+ ``_scale``, + ``_zero`` for grouped int4)."""
        if self.mode is None:
            return ("reverse_embeddings",)
        grouped = self.mode == "int4" and self.block_size is not None
        return ("reverse_embeddings", "reverse_embeddings_scale") + (
            ("reverse_embeddings_zero",) if grouped else ()
        )

    def create(self, kernel: jax.typing.ArrayLike, *, trainable: bool = True) -> dict[str, nnx.Variable]:
        """Variables for a float kernel ``(output_dim, input_dim)`` (quantized when ``mode`` is set)."""
        if self.mode is None:
            return {"reverse_embeddings": _kind(trainable)(jnp.asarray(kernel))}
        stored = quant.quantize(
            np.asarray(kernel).T,
            self.mode,
            block_size=self.block_size,
            value_range=self.value_range,
        )
        arrays = [stored.values.T, stored.scale if stored.scale.ndim == 1 else stored.scale.T]
        if stored.zero is not None:
            # Keras keeps these zero points as floats of the layer's variable dtype, as the scales.
            arrays.append(stored.zero.T.astype(stored.scale.dtype))
        return {name: QuantizedVariable(a) for name, a in zip(self.names, arrays)}

    def quantized(self, table: QuantizedTablePart) -> ReverseKernel:
        """This kernel quantized as ``table`` is (for :meth:`jaxembed.ReversibleEmbedding.quantize`)."""
        return dataclasses.replace(
            self,
            mode=table.mode,
            block_size=table.block_size if table.mode == "int4" else None,
            value_range=table.value_range,
            quantize_inputs=bool(table.quantize_inputs),
        )

    def _as_table(self, variables: Variables) -> quant.QuantizedTable:
        values = variables["reverse_embeddings"][...].T
        scale = variables["reverse_embeddings_scale"][...]
        scale = scale if scale.ndim == 1 else scale.T
        zero = None
        if "reverse_embeddings_zero" in self.names:
            zero = variables["reverse_embeddings_zero"][...].T.astype(jnp.int8)
        return quant.QuantizedTable(values, scale, zero)

    def dense(self, variables: Variables) -> jax.Array:
        """The float kernel ``(output_dim, input_dim)`` (dequantized when quantized)."""
        if self.mode is None:
            return variables["reverse_embeddings"][...]
        table = quant.dequantize(
            self._as_table(variables), mode=self.mode, output_dim=self.output_dim, block_size=self.block_size
        )
        return table.T

    def project(self, variables: Variables, x: jax.Array, *, dtype: jnp.dtype) -> jax.Array:
        """Logits ``x @ reverse_embeddings`` ``(..., input_dim)`` (quantized: as Keras's reverse call)."""
        if self.mode is None:
            return jnp.matmul(jnp.asarray(x, dtype), _read(variables["reverse_embeddings"]).astype(dtype))
        return quant.project(
            self._as_table(variables),
            x,
            mode=self.mode,
            output_dim=self.output_dim,
            block_size=self.block_size,
            dtype=dtype,
            quantize_x=self.quantize_inputs,
        )

    def with_trainable(self, variables: Variables, trainable: bool) -> dict[str, nnx.Variable]:
        """The float kernel retyped; quantized arrays unchanged."""
        if self.mode is not None:
            return dict(variables)
        return {"reverse_embeddings": _retyped(variables["reverse_embeddings"], _kind(trainable))}

    def penalty(self, variables: Variables, regularizer: Callable | None) -> jax.Array:
        """0.0: Keras gives ``reverse_embeddings`` no regularizer."""
        return jnp.zeros((), jnp.float32)

    def constrain(self, variables: Variables, constraint: Callable | None) -> None:
        """Nothing: Keras gives ``reverse_embeddings`` no constraint."""
