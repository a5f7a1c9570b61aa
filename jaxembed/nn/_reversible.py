"""``jaxembed.ReversibleEmbedding``: Keras 3's tied input/output embedding as a Flax NNX module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxembed import _spec, ops
from jaxembed._spec import (
    _REVERSE_ARGUMENTS,
    ConstraintLike,
    DTypeLike,
    EmbeddingSpec,
    InitializerLike,
    QuantizationConfigLike,
    RegularizerLike,
    TableSharding,
    _check_reverse_arguments,
)
from jaxembed.nn._embedding import Embedding
from jaxembed.tables import _quant as quant
from jaxembed.tables._parts import TablePart
from jaxembed.tables._reverse import ReverseKernel

__all__ = ["ReversibleEmbedding"]


class ReversibleEmbedding(Embedding):
    """An :class:`Embedding` that also projects back to the vocabulary: Keras 3's ``ReversibleEmbedding``.

    ``layer(ids)`` looks up vectors like :class:`Embedding`; ``layer(x, reverse=True)`` returns
    logits ``(..., input_dim)``: ``x @ W.T`` with the same table ``W`` (``tie_weights=True``, as
    in Press & Wolf 2016), or ``x @ reverse_embeddings`` with a separate trainable
    ``(output_dim, input_dim)`` matrix (``tie_weights=False``, drawn with the same initializer).
    No bias.

    Args:
        input_dim: vocabulary size.
        output_dim: vector size.
        tie_weights: share the table between the lookup and the projection (default ``True``).
        reverse_dtype: dtype of the projection (``x`` and the kernel are cast to it; default: the
            layer's compute ``dtype``).
        logit_soft_cap: if set, logits become ``tanh(logits / cap) * cap``.

    Every other argument is :class:`Embedding`'s, with the same name, default and meaning
    (initializers, regularizers, ``mask_zero``, ``dtype``, LoRA, ``quantization_config``,
    sharding, ``rngs``, ...); ``name`` defaults to ``"reversible_embedding"``, as in Keras.

    Quantization (:meth:`quantize`) quantizes the table and an untied kernel; the projection
    then runs as Keras's quantized reverse call: ``x`` quantized to int8 per row when the
    config has an activation quantizer (``"int8"``'s default), float ``x`` against the int
    kernel when it has none (``"int4"``'s default, or
    ``Int8QuantizationConfig(activation_quantizer=None)``: weight-only int8). LoRA
    (:meth:`~Embedding.enable_lora`) adapts the table, so a tied projection sees it too.

    Row-sparse training: a tied table is used densely by the projection, so
    ``Trainer(model, row_sparse(tx), loss_fn)`` gives it the dense update (it is not among
    :func:`jaxembed.train.row_sparse_tables`); an untied table is trained row-sparsely.

    Examples:
        >>> layer = ReversibleEmbedding(3, 2, weights=jnp.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]]))
        >>> layer(jnp.array([2, 1])).tolist()
        [[3.0, 3.0], [2.0, 2.0]]
        >>> layer(jnp.array([[1.0, 1.0]]), reverse=True).tolist()
        [[0.0, 4.0, 6.0]]
        >>> untied = ReversibleEmbedding(100, 16, tie_weights=False, rngs=0)
        >>> untied.reverse_embeddings.shape, untied(jnp.ones((4, 16)), reverse=True).shape
        ((16, 100), (4, 100))
    """

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
        tie_weights: bool = True,
        reverse_dtype: DTypeLike = None,
        logit_soft_cap: float | None = None,
        weights: jax.typing.ArrayLike | Sequence[jax.typing.ArrayLike] | None = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        quantization_config: QuantizationConfigLike = None,
        embeddings_sharding: TableSharding = None,
        rngs: nnx.Rngs | int | jax.Array | None = None,
    ):
        self.tie_weights, self.reverse_dtype, self.logit_soft_cap = _check_reverse_arguments(
            tie_weights, reverse_dtype, logit_soft_cap
        )
        arguments = _spec.keras_arguments(locals())
        if arguments["name"] is None:
            arguments["name"] = "reversible_embedding"  # Keras's automatic name for the class
        self._build(
            input_dim,
            output_dim,
            arguments,
            weights=weights,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            quantization_config=quantization_config,
            embeddings_sharding=embeddings_sharding,
            rngs=rngs,
        )

    def _build_extra_parts(self, key: jax.Array) -> None:
        """The untied ``reverse_embeddings`` ``(output_dim, input_dim)`` (the table's initializer)."""
        self.reverse_part: ReverseKernel | None = None
        if not self.tie_weights:
            part = ReverseKernel(self.spec.input_dim, self.spec.output_dim)
            shape = (self.spec.output_dim, self.spec.input_dim)
            kernel = self.spec.embeddings_initializer(
                jax.random.fold_in(key, 2), shape, self.spec.param_dtype
            )
            self._install(
                part.create(jnp.asarray(kernel, self.spec.param_dtype), trainable=self.spec.trainable)
            )
            self.reverse_part = part

    # ----------------------------------------------------------------- calls
    def __call__(self, inputs: jax.typing.ArrayLike, reverse: bool = False) -> jax.Array:
        """``reverse=False``: the lookup of :class:`Embedding`; ``reverse=True``: logits ``(..., input_dim)``.

        Args:
            inputs: ids (any shape), or vectors ``(..., output_dim)`` with ``reverse=True``.
            reverse: project back to the vocabulary.
        """
        if not reverse:
            return super().__call__(inputs)
        x = jnp.asarray(inputs)
        if x.shape[-1:] != (self.spec.output_dim,):
            raise ValueError(
                f"`reverse=True` expects vectors of size output_dim={self.spec.output_dim} on the last "
                f"axis. Received inputs of shape {x.shape}."
            )
        dtype = self.reverse_dtype or self.spec.dtype
        if self.reverse_part is None:
            logits = self._project(x, dtype)
        else:
            logits = self.reverse_part.project(self.part_variables(self.reverse_part), x, dtype=dtype)
        if self.logit_soft_cap is not None:
            logits = jnp.tanh(logits / self.logit_soft_cap) * self.logit_soft_cap
        return logits.astype(dtype)

    def compute_mask(
        self, inputs: jax.typing.ArrayLike, mask: Any = None, reverse: bool = False
    ) -> jax.Array | None:
        """``inputs != 0`` for ids when ``mask_zero``; ``None`` for a ``reverse=True`` call (as Keras)."""
        return None if reverse else super().compute_mask(inputs, mask)

    def compute_output_shape(
        self, input_shape: Sequence[int | None], reverse: bool = False
    ) -> tuple[int | None, ...]:
        """``(*input_shape, output_dim)``, or with ``reverse=True`` ``(*input_shape[:-1], input_dim)``."""
        if reverse:
            return (*tuple(input_shape)[:-1], self.spec.input_dim)
        return super().compute_output_shape(input_shape)

    # ------------------------------------------------------------- the parts
    def _keras_ordered_parts(self) -> list[TablePart]:
        created = [self.spec.table]
        if self.reverse_part is not None:
            created.append(self.reverse_part)
        if self.spec.lora is not None:
            created.append(self.spec.lora)
        return sorted(created, key=lambda part: not part.keras_trainable)

    def trainable_variables(self) -> dict[str, nnx.Variable]:
        """:meth:`Embedding.trainable_variables` plus a float untied ``reverse_embeddings``."""
        found = super().trainable_variables()
        if self.reverse_part is not None:
            found.update(self.reverse_part.trainable_variables(self.part_variables(self.reverse_part)))
        return found

    @property
    def trainable(self) -> bool:
        """Whether training updates the layer's trained variables; settable, as in Keras."""
        return self.spec.trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        Embedding.trainable.fset(self, value)
        if self.reverse_part is not None:
            variables = self.part_variables(self.reverse_part)
            self._install(self.reverse_part.with_trainable(variables, bool(value)))

    @property
    def _row_sparse_table(self) -> bool:
        return not self.tie_weights  # a tied table is also used densely, by the projection

    def quantize(
        self,
        mode: str | None = None,
        *,
        block_size: int | None = quant.DEFAULT_INT4_BLOCK_SIZE,
        config: Any = None,
    ) -> None:
        """Quantizes the table (:meth:`Embedding.quantize`, same arguments) and an untied reverse kernel.

        Examples:
            >>> layer = ReversibleEmbedding(10, 16, tie_weights=False, rngs=0)
            >>> layer.quantize("int4", block_size=8)
            >>> layer.reverse_embeddings.shape, layer.reverse_embeddings_scale.shape
            ((8, 10), (2, 10))
        """
        super().quantize(mode, block_size=block_size, config=config)
        if self.reverse_part is not None:
            old = self.reverse_part
            part = old.quantized(self.spec.table)
            variables = part.create(old.dense(self.part_variables(old)))
            self._install(variables)
            self.reverse_part = part

    def get_config(self) -> dict[str, Any]:
        """:meth:`Embedding.get_config` plus ``tie_weights``, ``reverse_dtype``, ``logit_soft_cap``."""
        reverse_dtype = None if self.reverse_dtype is None else jnp.dtype(self.reverse_dtype).name
        return {
            **super().get_config(),
            "tie_weights": self.tie_weights,
            "reverse_dtype": reverse_dtype,
            "logit_soft_cap": self.logit_soft_cap,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], *, rngs: nnx.Rngs | int | jax.Array | None = None
    ) -> ReversibleEmbedding:
        """Builds the layer from a config written by Keras or by :meth:`get_config`."""
        with _spec.config_errors(cls.__name__, config):
            config = dict(config)
            reverse = {name: config.pop(name) for name in _REVERSE_ARGUMENTS if name in config}
            arguments = EmbeddingSpec.arguments_from_config(config, lora_and_quantization=True)
            return cls(**arguments, **reverse, rngs=rngs)
