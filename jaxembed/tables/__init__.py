"""The table parts an Embedding is made of: int8/int4 quantized tables and the LoRA delta.

* Quantized tables (Keras 3's int8 and int4 semantics, bit-exact): :func:`quantize`,
  :func:`dequantize`, :func:`quantized_lookup` (``O(batch)``, dequantizes only the looked-up
  rows), :func:`pack_int4` / :func:`unpack_int4`, :func:`quantized_nbytes`.
* The LoRA delta (Keras 3's ``enable_lora``): :func:`init_lora_factors`, :func:`lora_scaling`,
  :func:`lora_delta`, :func:`merged_table` and :func:`lookup_delta` (``O(batch)``).

Examples:
    >>> q = quantize(jnp.array([[0.5, -1.0], [2.0, 0.25]]), "int8")
    >>> q.values.dtype, quantized_lookup(q, jnp.array([1]), mode="int8", output_dim=2).shape
    (dtype('int8'), (1, 2))
"""

from jaxembed.tables._lora import delta as lora_delta
from jaxembed.tables._lora import init_factors as init_lora_factors
from jaxembed.tables._lora import lookup_delta, merged_table
from jaxembed.tables._lora import scaling as lora_scaling
from jaxembed.tables._quant import (
    DEFAULT_INT4_BLOCK_SIZE,
    QUANTIZATION_MODES,
    QuantizationMode,
    QuantizedTable,
    dequantize,
    group_index,
    pack_int4,
    quantize,
    unpack_int4,
)
from jaxembed.tables._quant import lookup as quantized_lookup
from jaxembed.tables._quant import nbytes as quantized_nbytes

__all__ = [
    "QuantizationMode",
    "QUANTIZATION_MODES",
    "DEFAULT_INT4_BLOCK_SIZE",
    "QuantizedTable",
    "quantize",
    "dequantize",
    "quantized_lookup",
    "quantized_nbytes",
    "pack_int4",
    "unpack_int4",
    "group_index",
    "init_lora_factors",
    "lora_scaling",
    "lora_delta",
    "merged_table",
    "lookup_delta",
]
