"""int8 and int4 embedding tables with Keras 3's quantization math, as pure functions.

Keras 3's ``Embedding.quantize`` stores a table in one of three layouts; the
functions here produce and read exactly the same arrays (so a table quantized
here equals Keras's bit for bit, and the arrays round-trip through
``.weights.h5`` files):

* ``"int8"``: per-row abs-max. ``scale = 127 / (max|row| + eps)`` (float32 -- or
  the table's dtype for a bfloat16/float16 table -- shape ``(input_dim,)``),
  ``values = clip(round(row * scale), -127, 127)`` (int8, ``(input_dim, output_dim)``);
  a row is ``values / scale``.
* ``"int4"`` per channel (``block_size=None`` or ``-1``): the same with the
  range ``[-8, 7]`` and ``scale = 7 / (max|row| + eps)``.
* ``"int4"`` grouped (``block_size=128``, Keras's default): each row is cut
  into groups of ``block_size`` columns (the last one zero-padded); each group
  gets an asymmetric ``scale = (max - min + eps) / 15`` and an int8 zero point
  ``zero = clip(round(-min / scale) - 8, -8, 7)``;
  ``values = clip(round(x / scale) + zero, -8, 7)``; a value is
  ``(values - zero) * scale``. ``scale`` and ``zero`` have shape
  ``(input_dim, ceil(output_dim / block_size))``.

int4 values are packed two per byte along the columns: the even column in the
low nibble, the odd one in the high nibble (``(input_dim, ceil(output_dim / 2))``
int8), as Keras's ``pack_int4(..., axis=-1)``.

Lookups gather the requested rows first and dequantize only those, so a lookup
costs ``O(ids.size * output_dim)``, never ``O(input_dim)``.

Examples:
    >>> table = jnp.array([[0.1, -0.2, 0.3], [1.0, 0.5, -1.0]])
    >>> q = quantize(table, "int8")
    >>> q.values.tolist(), q.values.dtype
    ([[42, -85, 127], [127, 63, -127]], dtype('int8'))
    >>> lookup(q, jnp.array([1]), mode="int8").round(2).tolist()
    [[1.0, 0.5, -1.0]]
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np

from jaxembed import ops
from jaxembed._checks import positive_int

__all__ = [
    "QuantizationMode",
    "QUANTIZATION_MODES",
    "DEFAULT_INT4_BLOCK_SIZE",
    "QuantizedTable",
    "pack_int4",
    "unpack_int4",
    "group_index",
    "quantize",
    "dequantize",
    "lookup",
    "quantize_inputs",
    "project",
    "nbytes",
]

QuantizationMode = Literal["int8", "int4"]
"""The storage modes: ``"int8"`` (per-row abs-max) or ``"int4"`` (per row or per block of columns)."""
QUANTIZATION_MODES: tuple[str, ...] = get_args(QuantizationMode)
"""The valid values of ``mode``, ``("int8", "int4")``."""
DEFAULT_INT4_BLOCK_SIZE = 128
"""Columns per int4 group when no ``block_size`` is given (Keras's default)."""
# Keras's backend.epsilon(), added to every abs-max / range before dividing.
_EPSILON = 1e-7
_INT8_RANGE = (-127, 127)
_INT4_RANGE = (-8, 7)


class QuantizedTable(NamedTuple):
    """The arrays of a quantized table, as Keras stores them.

    Attributes:
        values: int8 ``(input_dim, output_dim)`` for int8; packed int8
            ``(input_dim, ceil(output_dim / 2))`` for int4.
        scale: float32 ``(input_dim,)`` (int8, per-channel int4) or
            ``(input_dim, n_groups)`` (grouped int4); bfloat16 / float16 for a table
            of that dtype (Keras's scale variables have the layer's variable dtype).
        zero: int8 ``(input_dim, n_groups)`` zero points (grouped int4 only),
            else ``None``.
    """

    values: jax.Array
    scale: jax.Array
    zero: jax.Array | None = None


# Keras's other quantization modes: its Embedding has no such path either (NotImplementedError).
_KERAS_ONLY_MODES = ("float8", "gptq", "awq")


def _check_mode(mode: str) -> str:
    """Returns ``mode`` if it is a supported quantization mode, else raises Keras's error.

    Raises:
        NotImplementedError: for Keras's ``"float8"``, ``"gptq"`` and ``"awq"``, which an
            Embedding does not have (in Keras either).
        ValueError: for any other mode.

    Examples:
        >>> _check_mode("int4")
        'int4'
        >>> _check_mode("gptq")
        Traceback (most recent call last):
        ...
        NotImplementedError: Invalid quantization mode. Expected one of ('int8', 'int4'). ...
    """
    if mode in _KERAS_ONLY_MODES:
        raise NotImplementedError(
            f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. Received: "
            f"quantization_mode={mode!r} (Keras's Embedding has no GPTQ, AWQ or float8 path either)."
        )
    if mode not in QUANTIZATION_MODES:
        raise ValueError(
            f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. Received: mode={mode!r}"
        )
    return mode


def _check_block_size(block_size: int | None) -> int | None:
    """Normalizes an int4 ``block_size``: a positive int, or ``None`` for per channel (``-1`` too).

    Examples:
        >>> _check_block_size(-1) is None, _check_block_size(64)
        (True, 64)
    """
    if block_size is None or (not isinstance(block_size, bool) and block_size == -1):
        return None
    try:
        return positive_int("block_size", block_size)
    except ValueError:
        raise ValueError(
            "`block_size` must be None, -1 (per-channel int4), or a positive integer. "
            f"Received: block_size={block_size!r}"
        ) from None


# ------------------------------------------------------------------ packing
def pack_int4(values: jax.Array) -> jax.Array:
    """Packs int8 values in ``[-8, 7]`` two per byte along the last axis.

    Column ``2k`` goes to the low nibble and column ``2k + 1`` to the high
    nibble of byte ``k``; an odd last column is paired with a zero.

    Examples:
        >>> pack_int4(jnp.array([[-3, 7, 2], [-8, 1, 0]], jnp.int8)).tolist()
        [[125, 2], [24, 0]]
    """
    values = jnp.asarray(values, jnp.int8)
    if values.shape[-1] % 2:
        values = jnp.pad(values, [(0, 0)] * (values.ndim - 1) + [(0, 1)])
    nibbles = jnp.bitwise_and(values.astype(jnp.uint8), jnp.uint8(0x0F))
    packed = jnp.bitwise_or(nibbles[..., 0::2], jnp.left_shift(nibbles[..., 1::2], jnp.uint8(4)))
    return packed.astype(jnp.int8)


def unpack_int4(packed: jax.Array, length: int) -> jax.Array:
    """Inverse of :func:`pack_int4`: int8 values in ``[-8, 7]``, ``length`` of them per row.

    Examples:
        >>> unpack_int4(jnp.array([[125, 2], [24, 0]], jnp.int8), 3).tolist()
        [[-3, 7, 2], [-8, 1, 0]]
    """
    nibbles = jnp.asarray(packed).astype(jnp.uint8)
    low = jnp.bitwise_and(nibbles, 0x0F).astype(jnp.int8)
    high = jnp.right_shift(nibbles, 4).astype(jnp.int8)
    pairs = jnp.stack([low, high], axis=-1).reshape(*nibbles.shape[:-1], 2 * nibbles.shape[-1])
    signed = jnp.bitwise_xor(pairs, 8) - 8  # 0..7 stay, 8..15 become -8..-1
    return signed[..., :length].astype(jnp.int8)


def group_index(output_dim: int, block_size: int) -> jax.Array:
    """Keras's ``g_idx``: the group of each column, ``floor(arange(output_dim) / block_size)`` (float32).

    Examples:
        >>> group_index(5, 2).tolist()
        [0.0, 0.0, 1.0, 1.0, 2.0]
    """
    return jnp.floor_divide(jnp.arange(output_dim, dtype=jnp.float32), block_size)


# --------------------------------------------------------------- quantizing
# The arithmetic below runs in the table's own float dtype with Python scalars, as Keras's NumPy
# quantizers do (``to_numpy=True``): float32 for a float32 table; for a bfloat16 (or float16) table
# every step rounds to 16 bits, and the scales come back in that dtype -- the dtype of Keras's scale
# variables, which a layer creates in its variable dtype.
def _abs_max(table: np.ndarray, value_range: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    low, high = value_range
    scale = np.divide(high, np.add(np.max(np.abs(table), axis=-1), _EPSILON))
    values = np.clip(np.round(np.multiply(table, scale[:, None])), low, high)
    return values.astype(np.int8), scale.astype(table.dtype)


def _grouped(table: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    input_dim, output_dim = table.shape
    n_groups = math.ceil(output_dim / block_size)
    padded = np.pad(table, [(0, 0), (0, n_groups * block_size - output_dim)])
    groups = padded.reshape(input_dim, n_groups, block_size)
    low, high = _INT4_RANGE
    minimum = np.min(groups, axis=-1, keepdims=True)  # padding zeros count, as in Keras
    maximum = np.max(groups, axis=-1, keepdims=True)
    scale = np.divide(np.subtract(maximum, minimum) + _EPSILON, high - low)
    zero = np.clip(np.round(np.divide(-minimum, scale)) + low, low, high)
    values = np.clip(np.round(np.divide(groups, scale)) + zero, low, high)
    values = values.reshape(input_dim, n_groups * block_size)[:, :output_dim]
    return values.astype(np.int8), scale[..., 0].astype(table.dtype), zero[..., 0].astype(np.int8)


_HALF_FLOATS = (np.dtype(jnp.bfloat16), np.dtype(np.float16))


def _host_table(table: jax.typing.ArrayLike) -> np.ndarray:
    """The table on the host in the dtype the quantization runs in (its own if 16-bit, else float32)."""
    array = np.asarray(table)
    return array if array.dtype in _HALF_FLOATS else array.astype(np.float32)


def quantize(
    table: jax.typing.ArrayLike,
    mode: QuantizationMode,
    *,
    block_size: int | None = DEFAULT_INT4_BLOCK_SIZE,
    value_range: tuple[int, int] | None = None,
) -> QuantizedTable:
    """Quantizes a float ``(input_dim, output_dim)`` table the way Keras 3 does.

    Args:
        table: the float table (quantized with NumPy on the host, so not under
            ``jit``; quantizing is a one-off conversion). A bfloat16 or float16
            table is quantized in its own dtype and gets scales of that dtype, as
            Keras's layers with such a variable dtype do; any other table is
            quantized in float32.
        mode: ``"int8"`` or ``"int4"``.
        block_size: int4 only: columns per group (default 128), or ``None``/``-1``
            for one scale per row.
        value_range: int8 only: the ``(low, high)`` of a custom Keras
            ``AbsMaxQuantizer`` (``scale = high / max|row|``, values clipped to the
            range); ``None`` for the default ``(-127, 127)``.

    Returns:
        A :class:`QuantizedTable` (see the module docstring for the layouts).

    Examples:
        >>> q = quantize(jnp.array([[0.0, 1.0, -2.0]]), "int4", block_size=None)
        >>> unpack_int4(q.values, 3).tolist(), q.zero is None
        ([[0, 4, -7]], True)
    """
    _check_mode(mode)
    # Like Keras (``to_numpy=True``), the one-off quantization runs on the host in NumPy: XLA
    # may turn a division into a multiplication by the reciprocal, which would move some scales
    # by one ulp away from Keras's.
    table = _host_table(table)
    if table.ndim != 2:
        raise ValueError(
            f"A table to quantize must be 2-D (input_dim, output_dim). Received shape {table.shape}."
        )
    if value_range is not None and mode != "int8":
        raise ValueError(
            f"`value_range` applies to int8 only. Received: mode={mode!r}, value_range={value_range}."
        )
    if mode == "int8":
        values, scale = _abs_max(table, _INT8_RANGE if value_range is None else tuple(value_range))
        return QuantizedTable(jnp.asarray(values), jnp.asarray(scale))
    block_size = _check_block_size(block_size)
    if block_size is None:
        values, scale = _abs_max(table, _INT4_RANGE)
        return QuantizedTable(pack_int4(values), jnp.asarray(scale))
    values, scale, zero = _grouped(table, block_size)
    return QuantizedTable(pack_int4(values), jnp.asarray(scale), jnp.asarray(zero))


def _dequantize_rows(
    values: jax.Array,
    scale: jax.Array,
    zero: jax.Array | None,
    *,
    mode: str,
    output_dim: int,
    block_size: int | None,
    dtype: jnp.dtype,
) -> jax.Array:
    """Rows ``(..., output_dim)`` from gathered rows of the stored arrays."""
    if mode == "int4":
        values = unpack_int4(values, output_dim)
    values = values.astype(dtype)
    if zero is None:  # per-row scale
        return values / scale[..., None].astype(dtype)
    groups = jnp.floor_divide(jnp.arange(output_dim), block_size)
    zero_cols = jnp.take(zero, groups, axis=-1).astype(dtype)
    scale_cols = jnp.take(scale, groups, axis=-1).astype(dtype)
    return (values - zero_cols) * scale_cols


def dequantize(
    table: QuantizedTable,
    *,
    mode: QuantizationMode,
    output_dim: int,
    block_size: int | None = DEFAULT_INT4_BLOCK_SIZE,
    dtype: jnp.dtype = jnp.float32,
) -> jax.Array:
    """The float ``(input_dim, output_dim)`` table that ``table`` stands for (``O(input_dim)``).

    Examples:
        >>> q = quantize(jnp.array([[1.0, -0.5]]), "int8")
        >>> [round(x, 3) for x in dequantize(q, mode="int8", output_dim=2)[0].tolist()]
        [1.0, -0.496]
    """
    block_size = _check_block_size(block_size) if mode == "int4" else None
    return _dequantize_rows(
        table.values,
        table.scale,
        table.zero,
        mode=_check_mode(mode),
        output_dim=output_dim,
        block_size=block_size,
        dtype=jnp.dtype(dtype),
    )


def lookup(
    table: QuantizedTable,
    ids: jax.typing.ArrayLike,
    *,
    mode: QuantizationMode,
    output_dim: int | None = None,
    block_size: int | None = DEFAULT_INT4_BLOCK_SIZE,
    dtype: jnp.dtype = jnp.float32,
    invalid_ids: ops.InvalidIds = "nan",
) -> jax.Array:
    """Dequantized rows ``(*ids.shape, output_dim)`` for ``ids``, touching only those rows.

    Ids are checked by :func:`jaxembed.ops.check_ids` (concrete bad ids raise;
    traced ones give NaN rows, or a ``checkify`` error), as in :func:`jaxembed.ops.lookup`.

    Examples:
        >>> q = quantize(jnp.array([[1.0, 1.0], [0.0, -1.0]]), "int4")
        >>> lookup(q, jnp.array([[1, 0]]), mode="int4", output_dim=2).round(2).tolist()
        [[[0.0, -1.0], [1.0, 1.0]]]
    """
    _check_mode(mode)
    if output_dim is None:
        if mode == "int4":
            raise ValueError("`output_dim` is required for int4 tables (the packed width rounds it up).")
        output_dim = table.values.shape[-1]
    block_size = _check_block_size(block_size) if mode == "int4" else None
    checked = ops.check_ids(ids, table.values.shape[0], invalid_ids)
    return _lookup_checked(
        table, checked, mode=mode, output_dim=output_dim, block_size=block_size, dtype=jnp.dtype(dtype)
    )


def _lookup_checked(
    table: QuantizedTable,
    ids: ops.CheckedIds,
    *,
    mode: str,
    output_dim: int,
    block_size: int | None,
    dtype: jnp.dtype = jnp.float32,
) -> jax.Array:
    """:func:`lookup` for ids already checked by :func:`jaxembed.ops.check_ids` (arguments normalized)."""
    input_dim = table.values.shape[0]
    # The scale rows carry the invalid-id policy: a bad id gets a NaN scale, hence a NaN row.
    scale_rows = ops.gather(table.scale.reshape(input_dim, -1).astype(jnp.float32), ids)
    scale_rows = scale_rows.reshape(*scale_rows.shape[:-1], *table.scale.shape[1:])
    values = jnp.take(table.values, ids.index, axis=0)
    zero = None if table.zero is None else jnp.take(table.zero, ids.index, axis=0)
    return _dequantize_rows(
        values,
        scale_rows,
        zero,
        mode=mode,
        output_dim=output_dim,
        block_size=block_size,
        dtype=jnp.dtype(dtype),
    )


def quantize_inputs(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Keras's default activation quantizer: per-row abs-max int8 of ``x`` (on the device).

    Returns ``(values, scale)`` with ``values = clip(round(x * scale), -127, 127)`` (int8) and
    ``scale = 127 / (max|x| + eps)`` of shape ``(..., 1)``.

    Examples:
        >>> values, scale = quantize_inputs(jnp.array([[0.5, -1.0]]))
        >>> values.tolist(), scale.shape
        ([[63, -127]], (1, 1))
    """
    x = jnp.asarray(x, jnp.float32)
    low, high = _INT8_RANGE
    scale = high / (jnp.max(jnp.abs(x), axis=-1, keepdims=True) + _EPSILON)
    return jnp.clip(jnp.round(x * scale), low, high).astype(jnp.int8), scale


def project(
    table: QuantizedTable,
    x: jax.typing.ArrayLike,
    *,
    mode: QuantizationMode,
    output_dim: int,
    block_size: int | None = DEFAULT_INT4_BLOCK_SIZE,
    dtype: jnp.dtype = jnp.float32,
    quantize_x: bool | None = None,
) -> jax.Array:
    """Logits ``x @ W.T`` ``(..., input_dim)`` against a quantized table, as Keras 3's quantized
    ``ReversibleEmbedding(reverse=True)``.

    With ``quantize_x`` (default: int8 yes, int4 no -- the activation quantizers of Keras's
    ``Int8QuantizationConfig`` and ``Int4QuantizationConfig``, which the layer configs name)
    ``x`` is quantized per row to int8 (:func:`quantize_inputs`) and per-row table scales divide
    an integer product; grouped int4 dequantizes the table first.

    Examples:
        >>> q = quantize(jnp.array([[1.0, 0.0], [0.0, 2.0]]), "int8")
        >>> project(q, jnp.array([[1.0, 1.0]]), mode="int8", output_dim=2).round(3).tolist()
        [[1.0, 2.0]]
    """
    block_size = _check_block_size(block_size) if _check_mode(mode) == "int4" else None
    values = table.values if mode == "int8" else unpack_int4(table.values, output_dim)
    if quantize_x is None:
        quantize_x = mode == "int8"
    if quantize_x:
        x_values, x_scale = quantize_inputs(x)
    else:
        x_values, x_scale = jnp.asarray(x, dtype), jnp.ones((1,), dtype)
    if table.zero is None:  # per-row scales: the product of the stored values, then the scales divided out
        if quantize_x:
            logits = jnp.matmul(x_values, values.T, preferred_element_type=jnp.int32).astype(dtype)
        else:
            logits = jnp.matmul(x_values, values.T.astype(dtype), precision=jax.lax.Precision.HIGHEST)
        return logits / (x_scale.astype(dtype) * table.scale.astype(dtype))
    dense = _dequantize_rows(
        values,
        table.scale,
        table.zero,
        mode="int8",
        output_dim=output_dim,
        block_size=block_size,
        dtype=dtype,
    )
    logits = jnp.matmul(x_values.astype(dtype), dense.T, precision=jax.lax.Precision.HIGHEST)
    return logits / x_scale.astype(dtype)


def nbytes(table: QuantizedTable) -> int:
    """Bytes held by the stored arrays (values, scales, zero points).

    Examples:
        >>> nbytes(quantize(jnp.zeros((1000, 128)), "int8"))  # vs 512000 for float32
        132000
    """
    return sum(int(a.size) * a.dtype.itemsize for a in table if a is not None)
