"""The parts an Embedding is made of: a table part (dense, int8/int4 quantized) and a LoRA part.

A :class:`jaxembed.Embedding` holds one **table part** in ``layer.spec.table`` -- a
:class:`DenseTable` or a :class:`QuantizedTablePart` -- and an optional **LoRA part** in
``layer.spec.lora`` (a :class:`LoRAPart`); ``layer.parts`` gives them in that order.
:meth:`~jaxembed.Embedding.quantize` swaps the table part, :meth:`~jaxembed.Embedding.enable_lora`
adds the LoRA part (and freezes the table part). A part is a small frozen (hashable) dataclass;
it owns the names of its variables, the layer holds them as attributes under those names (Keras's
``embeddings``, ``embeddings_scale``, ``embeddings_zero``, ``lora_embeddings_a``,
``lora_embeddings_b``; state paths unchanged) and passes them back as ``variables``, a
``{name: nnx.Variable}`` mapping (``layer.part_variables(part)``).

The part API (every part; :class:`TablePart` is the protocol):

* ``names`` -- the names of its variables.
* ``create(...)`` -- its fresh variables: ``DenseTable.create(table, trainable=...)``,
  ``QuantizedTablePart.create(table)`` (quantizes, bit-exact with Keras),
  ``LoRAPart.create(key, input_dim, output_dim, ...)``.
* ``lookup(variables, ids, method=...)`` -- rows ``(*ids.index.shape, output_dim)`` for ids that
  the layer checked once (:func:`jaxembed.ops.check_ids` gives a :class:`jaxembed.ops.CheckedIds`;
  parts never check again; a traced invalid id gives NaN rows). The layer's output is the sum
  of its parts' lookups, ``O(ids.size * output_dim)``.
* ``project(variables, x, dtype=...)`` -- its share of the logits ``x @ W.T``
  ``(..., input_dim)`` (:meth:`jaxembed.Embedding.attend`, ``ReversibleEmbedding(reverse=True)``);
  a quantized part computes them as Keras's quantized reverse call (``x`` quantized to int8 when
  the part's ``quantize_inputs``: Keras's activation quantizer).
* ``dense(variables)`` -- the dense ``(input_dim, output_dim)`` equivalent (the float table, the
  dequantized table, LoRA's full delta ``(alpha / rank) A B``); ``O(input_dim)``, for export.
* ``keras_weight_names()`` / ``keras_weights(variables)`` / ``set_keras_weights(variables, arrays)``
  -- Keras's weights of the part, ``(name, array)`` in Keras's order (grouped int4 adds Keras's
  ``g_idx``), for ``get_weights``/``set_weights`` and the Keras file code; ``keras_trainable``:
  whether Keras creates them trainable (Keras lists those first).
* ``trainable_variables(variables)`` and ``with_trainable(variables, trainable)`` -- what training
  updates, and the variables retyped for the ``trainable`` setter (a quantized table never trains).
* ``penalty(variables, regularizer)`` and ``constrain(variables, constraint)`` -- the
  regularizer / constraint on the part's own trained arrays.
* ``row_sparse`` -- whether row-sparse training (:mod:`jaxembed.sparse`) may update it.

:class:`jaxembed.ReversibleEmbedding` adds one more part of the same shape of API (private,
``ReverseKernel``): an untied ``reverse_embeddings`` ``(output_dim, input_dim)``, float or
quantized in Keras's transposed layout, that only projects (it is never looked up).

Beside the parts, the pure functions they are built on:

* Quantized tables (Keras 3's int8 and int4 semantics, bit-exact): :func:`quantize`,
  :func:`dequantize`, :func:`quantized_lookup` (``O(batch)``, dequantizes only the looked-up
  rows), :func:`pack_int4` / :func:`unpack_int4`, :func:`quantized_nbytes`.
* The LoRA delta (Keras 3's ``enable_lora``): :func:`init_lora_factors`, :func:`lora_scaling`,
  :func:`lora_delta`, :func:`merged_table` and :func:`lookup_delta` (``O(batch)``).

Examples:
    >>> q = quantize(jnp.array([[0.5, -1.0], [2.0, 0.25]]), "int8")
    >>> q.values.dtype, quantized_lookup(q, jnp.array([1]), mode="int8", output_dim=2).shape
    (dtype('int8'), (1, 2))
    >>> layer = jaxembed.Embedding(3, 2, rngs=0)
    >>> layer.quantize("int8")
    >>> layer.enable_lora(1)
    >>> [type(part).__name__ for part in layer.parts]
    ['QuantizedTablePart', 'LoRAPart']
    >>> [name for part in layer.parts for name in part.keras_weight_names()]
    ['embeddings', 'embeddings_scale', 'lora_embeddings_a', 'lora_embeddings_b']
"""

from jaxembed.tables._lora import delta as lora_delta
from jaxembed.tables._lora import init_factors as init_lora_factors
from jaxembed.tables._lora import lookup_delta, merged_table
from jaxembed.tables._lora import scaling as lora_scaling
from jaxembed.tables._parts import (
    DenseTable,
    LoRAPart,
    QuantizedTablePart,
    TablePart,
)
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
from jaxembed.tables._quant import project as quantized_project

__all__ = [
    "TablePart",
    "DenseTable",
    "QuantizedTablePart",
    "LoRAPart",
    "QuantizationMode",
    "QUANTIZATION_MODES",
    "DEFAULT_INT4_BLOCK_SIZE",
    "QuantizedTable",
    "quantize",
    "dequantize",
    "quantized_lookup",
    "quantized_project",
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
