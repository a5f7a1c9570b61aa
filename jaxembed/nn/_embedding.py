"""``jaxembed.Embedding``: Keras's Embedding layer as a Flax NNX module.

A thin shell over :mod:`jaxembed.ops`: it holds the table as an ``nnx.Param``
(or a :class:`FrozenParam` when ``trainable=False``) and an
:class:`~jaxembed.EmbeddingSpec` with the validated Keras arguments.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxembed import _mesh, _spec, ops
from jaxembed._spec import (
    ConstraintLike,
    DTypeLike,
    EmbeddingSpec,
    InitializerLike,
    QuantizationConfigLike,
    RegularizerLike,
    TableSharding,
)
from jaxembed.nn import _capture
from jaxembed.tables import _lora as lora_math
from jaxembed.tables import _quant as quant
from jaxembed.tables._parts import (
    DenseTable,
    FrozenParam,
    LoRAPart,
    QuantizedTablePart,
    QuantizedVariable,
    TablePart,
    Variables,
)

__all__ = [
    "Embedding",
    "FrozenParam",
    "QuantizedVariable",
    "ActivityLoss",
    "EmbeddingBag",
    "regularization_loss",
    "apply_constraints",
]


class ActivityLoss(nnx.Variable):
    """The activity-regularization penalty of the layer's latest call."""


def _key_from(rngs: nnx.Rngs | int | jax.Array | None) -> jax.Array:
    if rngs is None:
        return jax.random.key(secrets.randbits(31))
    if isinstance(rngs, nnx.Rngs):
        return rngs.params()
    if isinstance(rngs, (int, np.integer)) and not isinstance(rngs, bool):
        return nnx.Rngs(int(rngs)).params()  # the same table as rngs=nnx.Rngs(seed)
    if isinstance(rngs, jax.Array) and jnp.issubdtype(rngs.dtype, jax.dtypes.prng_key):
        return rngs
    raise TypeError(
        "`rngs` must be an nnx.Rngs, an integer seed, a key from jax.random.key, or None. "
        f"Received: rngs={rngs!r} (of type {type(rngs).__name__})."
    )


class _Staged:
    """A stand-in variable for a dry run of ``set_keras_weights`` (checks shapes, assigns nothing)."""

    def __init__(self, variable: nnx.Variable):
        self.shape, self.dtype = variable.shape, variable.dtype
        self._value = variable[...]

    def __getitem__(self, index: Any) -> jax.Array:
        return self._value

    def __setitem__(self, index: Any, value: Any) -> None:
        pass


class _FromSpec:
    """Read-only attribute forwarded to the layer's ``spec`` (Keras's attribute names)."""

    def __set_name__(self, owner: type, name: str):
        self.name = name

    def __get__(self, layer: Any, owner: type | None = None) -> Any:
        return self if layer is None else getattr(layer.spec, self.name)


class Embedding(nnx.Module):
    """Turns non-negative integer ids into dense vectors: ``table[ids]``.

    The arguments, defaults and semantics are Keras 3's ``keras.layers.Embedding``
    (plus Keras 2's ``input_length``); everything after ``output_dim`` is keyword-only.

    Args:
        input_dim: vocabulary size; ids must lie in ``[0, input_dim)``.
        output_dim: size of each embedding vector.
        embeddings_initializer: Keras name, config dict or callable
            ``(key, shape, dtype)``; default ``"uniform"`` = U(-0.05, 0.05).
        embeddings_regularizer: penalty on the table (name, dict or callable).
        embeddings_constraint: projection applied by :func:`apply_constraints`.
        activity_regularizer: penalty on the outputs, divided by the batch size.
        mask_zero: id 0 is padding; :meth:`compute_mask` returns ``ids != 0``.
        weights: initial table of shape ``(input_dim, output_dim)``, an array or a
            one-element list of one (as in Keras).
        input_length: Keras 2's fixed sequence length (an int, or a tuple for
            several trailing axes); used by :meth:`compute_output_shape` and
            checked against the ids' trailing axes.
        name: layer name written to the config (default ``"embedding"``).
        trainable: ``False`` stores the table as a :class:`FrozenParam`.
        dtype: compute dtype of the output (a bfloat16 output over a float32
            table, as Flax's ``dtype``), or a Keras policy (``"mixed_bfloat16"``,
            a ``DTypePolicy`` or its config dict) that names both dtypes;
            default: the table's dtype. A Keras quantized policy
            (``"int8_from_float32"``, ``"int4_from_mixed_bfloat16"``,
            ``"int4/64_from_float32"``) quantizes the table at once over the policy
            after ``_from_``, as Keras builds it.
        param_dtype: storage dtype of the table (default float32).
        lookup: ``"take"`` (gather) or ``"one_hot"`` (one-hot matmul).
        invalid_ids: traced out-of-range ids give NaN rows (``"nan"``) or also
            fail a ``checkify`` check (``"checkify"``); see :mod:`jaxembed.ops`.
        lora_rank: if set, LoRA of this rank is enabled at once (see :meth:`enable_lora`).
        lora_alpha: LoRA scale numerator (default ``lora_rank``). Keras 3.15
            ignores this argument when building (it uses ``lora_rank``); here it is honoured.
        quantization_config: quantize the initial table at once: ``"int8"``,
            ``"int4"``, or Keras's ``Int8QuantizationConfig`` /
            ``Int4QuantizationConfig`` (objects or serialized dicts; see :meth:`quantize`).
        embeddings_sharding: place the table on a device mesh: a ``NamedSharding``
            (e.g. ``jaxembed.sharding.table_sharding(mesh, "row")``) or mesh-axis
            names per table axis (``("model", None)``, with the mesh from
            ``jax.set_mesh``); stored as Flax's ``out_sharding`` metadata. See
            :mod:`jaxembed.sharding`.
        rngs: ``nnx.Rngs``, an integer seed or a key; ``None`` draws a fresh
            random seed, so two layers made without one differ.

    Shapes:
        ``ids``: any integer shape ``(...)`` → output ``(..., output_dim)`` in ``dtype``.

    Examples:
        >>> layer = Embedding(1000, 64, input_length=50, rngs=nnx.Rngs(0))
        >>> ids = jnp.zeros((32, 50), jnp.int32)
        >>> layer(ids).shape
        (32, 50, 64)
        >>> layer.compute_output_shape((None, 50))
        (None, 50, 64)
    """

    input_dim = _FromSpec()
    output_dim = _FromSpec()
    mask_zero = _FromSpec()
    name = _FromSpec()
    dtype = _FromSpec()
    param_dtype = _FromSpec()
    lookup = _FromSpec()
    embeddings_initializer = _FromSpec()
    embeddings_regularizer = _FromSpec()
    embeddings_constraint = _FromSpec()
    activity_regularizer = _FromSpec()
    lora_rank = _FromSpec()
    lora_alpha = _FromSpec()
    quantization_mode = _FromSpec()

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        *,
        embeddings_initializer: InitializerLike = "uniform",
        embeddings_regularizer: RegularizerLike = None,
        embeddings_constraint: ConstraintLike = None,
        activity_regularizer: RegularizerLike = None,
        mask_zero: bool = False,
        input_length: int | Sequence[int | None] | None = None,
        name: str | None = None,
        trainable: bool = True,
        dtype: DTypeLike = None,
        param_dtype: DTypeLike = None,
        lookup: ops.LookupMethod = "take",
        invalid_ids: ops.InvalidIds = "nan",
        weights: jax.typing.ArrayLike | Sequence[jax.typing.ArrayLike] | None = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        quantization_config: QuantizationConfigLike = None,
        embeddings_sharding: TableSharding = None,
        rngs: nnx.Rngs | int | jax.Array | None = None,
    ):
        # The Keras arguments are the schema's (jaxembed._spec.ARGUMENTS; a test keeps them equal).
        self._build(
            input_dim,
            output_dim,
            _spec.keras_arguments(locals()),
            weights=weights,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            quantization_config=quantization_config,
            embeddings_sharding=embeddings_sharding,
            rngs=rngs,
        )

    def _build(
        self,
        input_dim: int,
        output_dim: int,
        arguments: dict[str, Any],
        *,
        weights: Any,
        lora_rank: int | None,
        lora_alpha: float | None,
        quantization_config: QuantizationConfigLike,
        embeddings_sharding: TableSharding,
        rngs: nnx.Rngs | int | jax.Array | None,
    ) -> None:
        """The one construction path (every subclass's constructor ends here), in Keras's build
        order: the table, :meth:`_build_extra_parts`, the quantized variables, then LoRA on top."""
        arguments["dtype"], quantization = _spec.quantization_arguments(
            arguments["dtype"], quantization_config
        )
        placement = _mesh.variable_metadata(embeddings_sharding)
        self.spec = EmbeddingSpec.create(input_dim, output_dim, **arguments)
        key = _key_from(rngs)
        table = self.spec.initial_table(key, weights)
        self._install(self.spec.table.create(table, trainable=self.spec.trainable, **placement))
        if self.spec.activity_regularizer is not None:
            self.activity_loss = ActivityLoss(jnp.zeros((), jnp.float32))
        self._build_extra_parts(key)
        if quantization is not None:
            self.quantize(config=quantization)
        if lora_rank is not None:
            self.enable_lora(lora_rank, lora_alpha, rngs=jax.random.fold_in(key, 1))

    def _build_extra_parts(self, key: jax.Array) -> None:
        """Hook for a subclass's own parts, made after the table and before quantization."""

    # ------------------------------------------------------------------ parts
    @property
    def parts(self) -> tuple[TablePart, ...]:
        """The table part, then the LoRA part if any (see :mod:`jaxembed.tables`)."""
        return (self.spec.table,) if self.spec.lora is None else (self.spec.table, self.spec.lora)

    def part_variables(self, part: TablePart) -> Variables:
        """``part``'s variables, by the names the part gives them (the layer holds them as attributes)."""
        return {name: getattr(self, name) for name in part.names}

    def _install(self, variables: Variables) -> None:
        for name, variable in variables.items():
            setattr(self, name, variable)

    @property
    def _row_sparse_table(self) -> bool:
        """Whether the layer only looks its table up (so row-sparse training may update it row by row)."""
        return True

    def _trained_part(self) -> TablePart:
        """The part training updates: the LoRA part when there is one (it freezes the table)."""
        return self.spec.table if self.spec.lora is None else self.spec.lora

    # -------------------------------------------------------------- the layer
    def __call__(self, ids: jax.typing.ArrayLike) -> jax.Array:
        """Looks up ``ids`` (any shape; a ``jax.experimental.sparse.BCOO`` is densified, as in
        Keras's JAX backend); returns ``(*ids.shape, output_dim)`` in ``dtype``."""
        spec = self.spec
        ids = ops.dense_ids(ids)
        spec.check_ids_shape(jnp.shape(ids))
        checked = ops.check_ids(ids, spec.input_dim, spec.invalid_ids)  # the one check of the ids
        outputs = self.lookup_checked(checked)
        if spec.activity_regularizer is not None:
            self.activity_loss[...] = spec.activity_penalty(outputs)
        return outputs

    def lookup_checked(self, ids: ops.CheckedIds) -> jax.Array:
        """The lookup for ids already checked by :func:`jaxembed.ops.check_ids`: each part's rows,
        summed, in ``dtype`` (no activity penalty recorded)."""
        spec = self.spec
        outputs = spec.table.lookup(self.part_variables(spec.table), ids, method=spec.lookup)
        if isinstance(spec.table, DenseTable):
            # A row-sparse train step's tap sees these rows (jaxembed.nn._capture); else a no-op.
            outputs = _capture.tap_rows(self, outputs, ids, num_rows=spec.input_dim)
        if spec.lora is not None:
            outputs = outputs + spec.lora.lookup(self.part_variables(spec.lora), ids, method=spec.lookup)
        return outputs.astype(spec.dtype)

    def attend(self, query: jax.typing.ArrayLike) -> jax.Array:
        """Logits ``query @ W.T`` ``(..., input_dim)`` against the table, as Flax's ``nnx.Embed.attend``.

        In ``dtype``; each part adds its share (a LoRA delta without forming ``A @ B``; a
        quantized table as Keras's quantized reverse projection, ``query`` quantized to int8 unless the
        quantization config is weight-only).
        Use it to tie the output layer of a language model to its input embedding.

        Examples:
            >>> layer = Embedding(3, 2, weights=jnp.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]]))
            >>> layer.attend(jnp.array([[1.0, 1.0]])).tolist()
            [[0.0, 4.0, 6.0]]
        """
        return self._project(query, self.spec.dtype)

    def _project(self, x: jax.typing.ArrayLike, dtype: Any) -> jax.Array:
        if _capture.is_tapped(self):
            raise ValueError(
                f"Layer '{self.spec.name}' projects onto its whole table (attend / reverse=True) inside a "
                "row-sparse train step, which updates only the rows a lookup gathered: the projection's "
                "gradient would be lost. Use jaxembed.ReversibleEmbedding (its tied table gets the dense "
                "update) or train with the dense update rule."
            )
        dtype = jnp.dtype(dtype)
        logits = sum(
            part.project(self.part_variables(part), jnp.asarray(x), dtype=dtype) for part in self.parts
        )
        return logits.astype(dtype)

    def compute_mask(self, ids: jax.typing.ArrayLike, mask: Any = None) -> jax.Array | None:
        """``ids != 0`` when ``mask_zero``, else ``None`` (Keras's signature)."""
        return ops.compute_mask(ids, self.spec.mask_zero)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        """``(*input_shape, output_dim)``, with ``input_length`` filling ``None`` axes."""
        return self.spec.output_shape(input_shape)

    # ------------------------------------------------------------ keras-isms
    @property
    def trainable(self) -> bool:
        """Whether training updates the table; settable, as in Keras."""
        return self.spec.trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.spec = dataclasses.replace(self.spec, trainable=bool(value))
        part = self._trained_part()
        self._install(part.with_trainable(self.part_variables(part), bool(value)))

    @property
    def input_length(self) -> int | list[int | None] | None:
        """Keras 2's ``input_length`` as given (an int, a list, or ``None``)."""
        length = self.spec.input_length
        if length is None:
            return None
        return length[0] if len(length) == 1 else list(length)

    def trainable_variables(self) -> dict[str, nnx.Variable]:
        """The variables training updates, by name (the table, or LoRA's ``A`` and ``B``).

        Examples:
            >>> layer = Embedding(3, 2, rngs=0)
            >>> list(layer.trainable_variables())
            ['embeddings']
            >>> layer.enable_lora(1)
            >>> list(layer.trainable_variables())
            ['lora_embeddings_a', 'lora_embeddings_b']
        """
        found: dict[str, nnx.Variable] = {}
        for part in self.parts:
            found.update(part.trainable_variables(self.part_variables(part)))
        return found

    def regularization_loss(self) -> jax.Array:
        """The penalty of the trained tables plus the latest call's activity penalty.

        With LoRA the regularizer applies to ``A`` and ``B`` (as Keras); a
        quantized table without LoRA has none.
        """
        part = self._trained_part()
        if part is self.spec.table and _capture.is_tapped(self):
            penalty = jnp.zeros((), jnp.float32)  # a row-sparse step penalizes the touched rows itself
        else:
            penalty = part.penalty(self.part_variables(part), self.spec.embeddings_regularizer)
        if self.spec.activity_regularizer is not None:
            penalty = penalty + self.activity_loss[...]
        return penalty

    def apply_constraint(self) -> None:
        """Projects the trained table with ``embeddings_constraint`` in place (no-op without one)."""
        part = self._trained_part()
        part.constrain(self.part_variables(part), self.spec.embeddings_constraint)

    def _keras_ordered_parts(self) -> list[TablePart]:
        """The parts in Keras's weight order: weights created trainable first, then the others."""
        return sorted(self.parts, key=lambda part: not part.keras_trainable)

    def _weight_names(self) -> list[str]:
        return [name for part in self._keras_ordered_parts() for name in part.keras_weight_names()]

    def get_weights(self) -> list[np.ndarray]:
        """The variables as NumPy arrays, as Keras's ``get_weights``.

        In Keras's order: ``[table]``; a quantized layer gives ``[values, scale]`` (grouped
        int4 ``[values, scale, zero, g_idx]``); LoRA adds ``[A, B]`` after a float table and
        before a quantized one (Keras lists the weights it created trainable first).

        Examples:
            >>> layer = Embedding(2, 3, rngs=0)
            >>> layer.quantize("int4", block_size=2)
            >>> [w.shape for w in layer.get_weights()]
            [(2, 2), (2, 2), (2, 2), (3,)]
        """
        return [
            np.asarray(array)
            for part in self._keras_ordered_parts()
            for _, array in part.keras_weights(self.part_variables(part))
        ]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Replaces the variables from a list laid out as :meth:`get_weights` (shapes checked)."""
        names = self._weight_names()
        weights = list(weights)
        if len(weights) != len(names):
            raise ValueError(
                f"`set_weights` expects {len(names)} arrays ({', '.join(names)}). Received {len(weights)}."
            )
        for name, value in zip(names, weights):
            if np.iscomplexobj(value):
                raise ValueError(
                    f"`weights` must be real numbers: `set_weights` received {name} of dtype "
                    f"{np.asarray(value).dtype}."
                )
        start = 0
        chunks = []
        for part in self._keras_ordered_parts():
            count = len(part.keras_weight_names())
            chunks.append((part, weights[start : start + count]))
            start += count
        for part, chunk in chunks:  # every shape checked before anything is assigned
            part.set_keras_weights({n: _Staged(v) for n, v in self.part_variables(part).items()}, chunk)
        for part, chunk in chunks:
            part.set_keras_weights(self.part_variables(part), chunk)

    # ------------------------------------------------------------- LoRA (Keras 3)
    @property
    def lora_enabled(self) -> bool:
        """Whether :meth:`enable_lora` has been called (or ``lora_rank`` given)."""
        return self.spec.lora is not None

    def enable_lora(
        self,
        rank: int,
        lora_alpha: float | None = None,
        a_initializer: Any = "he_uniform",
        b_initializer: Any = "zeros",
        *,
        rngs: nnx.Rngs | int | jax.Array | None = None,
    ) -> None:
        """Freezes the table and adds a LoRA part: ``A`` ``(input_dim, rank)``, ``B`` ``(rank, output_dim)``.

        The layer then looks up ``W + (lora_alpha / rank) * A @ B``
        (:class:`jaxembed.tables.LoRAPart`); ``lora_alpha`` defaults to ``rank``. Keras's
        rules apply: not with an ``embeddings_constraint``, and only once.
        (Keras also refuses an unbuilt layer; a jaxembed layer is built when made.)

        Examples:
            >>> layer = Embedding(3, 2, weights=jnp.array([[.1, .2], [.3, .4], [.5, .6]]))
            >>> layer.enable_lora(2, lora_alpha=3)
            >>> type(layer.embeddings).__name__, layer.lora_embeddings_a.shape, layer.lora_embeddings_b.shape
            ('FrozenParam', (3, 2), (2, 2))
        """
        if self.spec.embeddings_constraint is not None:
            raise ValueError(
                "Lora is incompatible with embedding constraints. In order to enable lora on this layer, "
                "remove the `embeddings_constraint` argument."
            )
        if self.spec.lora is not None:
            raise ValueError("lora is already enabled. This can only be done once per layer.")
        rank = lora_math._check_rank(rank)
        part = LoRAPart(rank, lora_math._check_alpha(lora_alpha, rank))
        variables = part.create(
            _key_from(rngs),
            self.spec.input_dim,
            self.spec.output_dim,
            trainable=self.spec.trainable,
            a_initializer=a_initializer,
            b_initializer=b_initializer,
        )
        self._install(self.spec.table.with_trainable(self.part_variables(self.spec.table), False))
        self._install(variables)
        self.spec = dataclasses.replace(self.spec, lora=part)

    # ----------------------------------------------------- quantization (Keras 3)
    def quantize(
        self,
        mode: str | None = None,
        *,
        block_size: int | None = quant.DEFAULT_INT4_BLOCK_SIZE,
        config: Any = None,
    ) -> None:
        """Replaces the table part by an int8 or int4 one, as Keras 3's ``Embedding.quantize``.

        Args:
            mode: ``"int8"`` (per-row abs-max) or ``"int4"``; may be left out when
                ``config`` gives it.
            block_size: int4 only: columns per group (Keras's default 128), or
                ``None``/``-1`` for one scale per row (Keras's
                ``Int4QuantizationConfig(block_size=...)``).
            config: Keras's ``Int8QuantizationConfig`` / ``Int4QuantizationConfig``
                (object or serialized dict): its block size, weight quantizer
                (an int8 ``AbsMaxQuantizer`` with a custom ``value_range``) and
                activation quantizer (Keras's default ``AbsMaxQuantizer``, or ``None``
                for weight-only: :meth:`attend` then keeps its inputs float) are
                honoured, anything jaxembed cannot apply is refused. Without a config,
                int8 quantizes the inputs of :meth:`attend` and int4 does not, as
                Keras's default configs.

        Raises:
            ValueError: for an unknown mode, a layer already quantized, or a config
                that contradicts ``mode`` or that jaxembed cannot apply.
            NotImplementedError: for Keras's ``"gptq"``, ``"awq"`` and ``"float8"``,
                which Keras's Embedding does not implement either.

        The stored arrays (``embeddings``, ``embeddings_scale`` and, for grouped
        int4, ``embeddings_zero``) are :class:`QuantizedVariable` objects of a
        :class:`jaxembed.tables.QuantizedTablePart`. LoRA factors, if any, stay float32
        and trainable on top.

        Examples:
            >>> layer = Embedding(1000, 128, rngs=0)
            >>> layer.quantize("int8")
            >>> layer.embeddings.dtype, layer.embeddings_scale.shape
            (dtype('int8'), (1000,))
        """
        if self.spec.quantization_mode is not None:
            raise ValueError(
                f"Layer '{self.spec.name}' is already quantized with "
                f"dtype_policy='{self.get_config()['dtype']['config']['mode']}_from_"
                f"{self.get_config()['dtype']['config']['source_name']}'. Received: mode={mode}"
            )
        mode, block_size, value_range, quantize_inputs = _spec.resolve_quantize_arguments(
            mode, block_size, config
        )
        if mode == "int8" and self.spec.dtype == jnp.float16:
            raise ValueError(
                "Quantization mode='int8' doesn't work well with compute_dtype='float16'. Use a bfloat16 "
                "or float32 compute dtype."
            )
        old = self.spec.table
        part = QuantizedTablePart(
            mode,
            self.spec.output_dim,
            block_size,
            value_range,
            quantize_inputs,
            compute_dtype=jnp.dtype(self.spec.dtype).name,  # Keras dequantizes in the compute dtype
        )
        variables = part.create(old.dense(self.part_variables(old)))
        for name in set(old.names) - set(part.names):
            delattr(self, name)
        self._install(variables)
        self.spec = dataclasses.replace(self.spec, table=part)

    def quantized_table(self) -> quant.QuantizedTable:
        """The stored int arrays as a :class:`jaxembed.tables.QuantizedTable` (quantized layers only)."""
        part = self.spec.table
        if not isinstance(part, QuantizedTablePart):
            raise ValueError(
                f"Layer '{self.spec.name}' is not quantized; call quantize('int8' or 'int4') first."
            )
        return part.stored(self.part_variables(part))

    def effective_table(self) -> jax.Array:
        """The float ``(input_dim, output_dim)`` table the layer looks up: dequantized, LoRA merged.

        ``O(input_dim)``; for export and inspection (lookups never build it).

        Examples:
            >>> layer = Embedding(2, 2, weights=jnp.array([[1.0, -1.0], [0.5, 0.25]]))
            >>> layer.quantize("int8")
            >>> [[round(v, 3) for v in row] for row in layer.effective_table().tolist()]
            [[1.0, -1.0], [0.5, 0.248]]
        """
        table = self.spec.table.dense(self.part_variables(self.spec.table))
        if self.spec.lora is not None:
            table = self.spec.lora.merged(self.part_variables(self.spec.lora), table)
        return table

    def get_config(self) -> dict[str, Any]:
        """Keras's config dict (see :meth:`EmbeddingSpec.get_config`)."""
        return self.spec.get_config()

    @classmethod
    def from_config(
        cls, config: dict[str, Any], *, rngs: nnx.Rngs | int | jax.Array | None = None
    ) -> Embedding:
        """Builds a layer from a config written by Keras or by :meth:`get_config`.

        Raises:
            TypeError: for a config that does not build a layer (as Keras; the error is
                also a ``ValueError``), e.g. ``input_dim=3.7``.
        """
        with _spec.config_errors(cls.__name__, config):
            return cls(**EmbeddingSpec.arguments_from_config(config, lora_and_quantization=True), rngs=rngs)


class EmbeddingBag(Embedding):
    """Multi-hot features: looks up each bag of ids and combines it into one vector.

    torch's ``nn.EmbeddingBag`` (and ``tf.nn.embedding_lookup_sparse``) as an
    :class:`Embedding` whose call ends with :func:`jaxembed.ops.combine_bags`:
    every constructor argument of :class:`Embedding` works the same (initializer,
    regularizers, ``mask_zero``, sharding, LoRA, quantization), plus ``combiner``.
    With ``mask_zero=True`` id 0 is left out of its bag (torch's ``padding_idx=0``).

    Args:
        input_dim: vocabulary size.
        output_dim: size of each vector.
        combiner: ``"mean"`` (default, as torch), ``"sum"`` or ``"sqrtn"``.
        **kwargs: the keyword arguments of :class:`Embedding`.

    Shapes:
        padded ``ids`` ``(..., bag_size)`` → ``(..., output_dim)``; ragged ``ids``
        ``(num_ids,)`` with ``offsets`` ``(num_bags,)`` → ``(num_bags, output_dim)``.

    Examples:
        >>> bag = EmbeddingBag(4, 2, combiner="sum", weights=jnp.array([[1, 1], [1, 2], [2, 2], [3, 3]]))
        >>> bag(jnp.array([[0, 3], [1, 1]])).tolist()
        [[4.0, 4.0], [2.0, 4.0]]
        >>> bag(jnp.array([0, 3, 1]), offsets=jnp.array([0, 2]), weights=jnp.array([1.0, 0.5, 2.0])).tolist()
        [[2.5, 2.5], [2.0, 4.0]]
    """

    def __init__(self, input_dim: int, output_dim: int, *, combiner: ops.Combiner = "mean", **kwargs: Any):
        ops._check_combiner(combiner)
        super().__init__(input_dim, output_dim, **kwargs)
        self.combiner = combiner

    def __call__(
        self,
        ids: jax.typing.ArrayLike,
        *,
        mask: jax.typing.ArrayLike | None = None,
        weights: jax.typing.ArrayLike | None = None,
        offsets: jax.typing.ArrayLike | None = None,
    ) -> jax.Array:
        """Combines each bag (see :func:`jaxembed.ops.embedding_bag` for ``mask``/``weights``/``offsets``)."""
        vectors = super().__call__(ids)
        mask = ops.bag_mask(ids, mask, self.spec.mask_zero)
        return ops.combine_bags(vectors, combiner=self.combiner, mask=mask, weights=weights, offsets=offsets)

    def compute_mask(self, ids: jax.typing.ArrayLike, mask: Any = None) -> None:
        """Bags are combined, so there is no mask to pass on: ``None``."""
        return None

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        """Padded bags: ``(*input_shape[:-1], output_dim)``."""
        return tuple(input_shape[:-1]) + (self.spec.output_dim,)

    def get_config(self) -> dict[str, Any]:
        """:meth:`Embedding.get_config` plus ``"combiner"``."""
        return {**super().get_config(), "combiner": self.combiner}

    @classmethod
    def from_config(
        cls, config: dict[str, Any], *, rngs: nnx.Rngs | int | jax.Array | None = None
    ) -> EmbeddingBag:
        """Builds a bag layer from :meth:`get_config`'s dict."""
        with _spec.config_errors(cls.__name__, config):
            config = dict(config)
            combiner = config.pop("combiner", "mean")
            arguments = EmbeddingSpec.arguments_from_config(config, lora_and_quantization=True)
            return cls(**arguments, combiner=combiner, rngs=rngs)


def embedding_layers(model: nnx.Module) -> Iterator[tuple[tuple[Any, ...], Embedding]]:
    """Every :class:`Embedding` in ``model`` with its path: the one walker the package uses.

    Examples:
        >>> [path for path, _ in embedding_layers(nnx.List([Embedding(2, 1, rngs=0)]))]
        [(0,)]
    """
    for path, node in nnx.iter_graph(model):
        if isinstance(node, Embedding):
            yield tuple(path), node


def regularization_loss(model: nnx.Module) -> jax.Array:
    """Sum of the regularization penalties of every :class:`Embedding` in ``model``.

    Keras adds these to ``model.losses``; in JAX, add this to the training loss.
    Activity penalties are those of the latest forward pass, so call it after
    the model inside the loss function.

    Examples:
        >>> layer = Embedding(4, 2, embeddings_regularizer="l2", weights=jnp.ones((4, 2)))
        >>> round(float(regularization_loss(layer)), 6)  # 0.01 * 8
        0.08
    """
    total = jnp.zeros((), jnp.float32)
    for _, layer in embedding_layers(model):
        total = total + layer.regularization_loss()
    return total


def apply_constraints(model: nnx.Module) -> None:
    """Projects every :class:`Embedding` table in ``model`` with its constraint, in place.

    Keras applies constraints inside its optimizers after each update; call
    this after each optimizer step (jaxembed's training utilities do).

    Examples:
        >>> layer = Embedding(2, 2, embeddings_constraint="non_neg",
        ...                   weights=jnp.array([[-1.0, 2.0], [3.0, -4.0]]))
        >>> apply_constraints(layer)
        >>> layer.embeddings[...].tolist()
        [[0.0, 2.0], [3.0, 0.0]]
    """
    for _, layer in embedding_layers(model):
        layer.apply_constraint()
