"""``jaxembed.linen.Embedding``: the same layer for Flax Linen code.

The same arguments, checks, configs and numbers as :class:`jaxembed.Embedding`
(both hold an :class:`~jaxembed.EmbeddingSpec` and call
:func:`jaxembed.ops.lookup`); the table is the parameter ``"embeddings"``.

Regularization penalties are sown into the ``"losses"`` collection (the
latest call's value under ``"embeddings_regularization"`` and
``"activity_regularization"``): apply with ``mutable=["losses"]`` and add
``sum(jax.tree.leaves(state["losses"]))`` to the loss. ``trainable=False``
stops gradients through the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxembed import _mesh, ops
from jaxembed._spec import EmbeddingSpec

__all__ = ["Embedding", "EmbeddingBag"]


def _latest(_previous: Any, new: Any) -> Any:
    return new


class Embedding(nn.Module):
    """Keras's Embedding layer as a ``flax.linen.Module``.

    Attributes mirror :class:`jaxembed.Embedding`'s constructor arguments;
    ``name`` is Linen's own module name (and the config's ``"name"``).

    Examples:
        >>> layer = Embedding(1000, 64, input_length=50)
        >>> ids = jnp.zeros((32, 50), jnp.int32)
        >>> variables = layer.init(jax.random.key(0), ids)
        >>> variables["params"]["embeddings"].shape
        (1000, 64)
        >>> layer.apply(variables, ids).shape
        (32, 50, 64)
    """

    input_dim: int
    output_dim: int
    embeddings_initializer: Any = "uniform"
    embeddings_regularizer: Any = None
    embeddings_constraint: Any = None
    activity_regularizer: Any = None
    mask_zero: bool = False
    weights: Any = None
    input_length: int | Sequence[int | None] | None = None
    trainable: bool = True
    dtype: Any = None
    param_dtype: Any = None
    lookup: ops.LookupMethod = "take"
    invalid_ids: ops.InvalidIds = "nan"
    embeddings_sharding: Any = None  # a NamedSharding or mesh-axis names; see jaxembed.sharding

    def __post_init__(self):
        self.spec  # validate the arguments when the module is made, not when it is first used
        super().__post_init__()

    @property
    def spec(self) -> EmbeddingSpec:
        """The validated arguments, shared with the NNX module."""
        return EmbeddingSpec.create(
            self.input_dim,
            self.output_dim,
            embeddings_initializer=self.embeddings_initializer,
            embeddings_regularizer=self.embeddings_regularizer,
            embeddings_constraint=self.embeddings_constraint,
            activity_regularizer=self.activity_regularizer,
            mask_zero=self.mask_zero,
            input_length=self.input_length,
            name=self.name if isinstance(self.name, str) else None,
            trainable=self.trainable,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            lookup=self.lookup,
            invalid_ids=self.invalid_ids,
        )

    @nn.compact
    def __call__(self, ids: jax.typing.ArrayLike) -> jax.Array:
        """Looks up ``ids`` (any shape); returns ``(*ids.shape, output_dim)`` in ``dtype``."""
        spec = self.spec
        init = lambda key: spec.initial_table(key, self.weights)  # noqa: E731
        placement = _mesh.variable_metadata(self.embeddings_sharding)
        if placement:  # Flax's boxed Partitioned parameter: nn.get_partition_spec reads it
            init = nn.with_partitioning(init, placement["out_sharding"], placement["mesh"])
        table = self.param("embeddings", init)
        spec.check_ids_shape(jnp.shape(ids))
        if not spec.trainable:
            table = jax.lax.stop_gradient(table)
        outputs = ops.lookup(table, ids, method=spec.lookup, invalid_ids=spec.invalid_ids)
        outputs = outputs.astype(spec.dtype)
        if spec.embeddings_regularizer is not None:
            self.sow(
                "losses",
                "embeddings_regularization",
                spec.table_penalty(table),
                init_fn=lambda: None,
                reduce_fn=_latest,
            )
        if spec.activity_regularizer is not None:
            self.sow(
                "losses",
                "activity_regularization",
                spec.activity_penalty(outputs),
                init_fn=lambda: None,
                reduce_fn=_latest,
            )
        return outputs

    def compute_mask(self, ids: jax.typing.ArrayLike, mask: Any = None) -> jax.Array | None:
        """``ids != 0`` when ``mask_zero``, else ``None``."""
        return ops.compute_mask(ids, self.mask_zero)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        """``(*input_shape, output_dim)``, with ``input_length`` filling ``None`` axes."""
        return self.spec.output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        """Keras's config dict, identical to the NNX module's."""
        return self.spec.get_config()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Embedding:
        """Builds the module from a config written by Keras or by :meth:`get_config`."""
        return cls(**EmbeddingSpec.arguments_from_config(config))


class EmbeddingBag(Embedding):
    """Multi-hot bags for Linen: :class:`Embedding` then :func:`jaxembed.ops.combine_bags`.

    The NNX :class:`jaxembed.EmbeddingBag` for Linen code: same attributes as
    :class:`Embedding` plus ``combiner``; ``mask_zero`` leaves id 0 out of its bag.

    Examples:
        >>> bag = EmbeddingBag(4, 2, combiner="sum", weights=jnp.array([[1, 1], [1, 2], [2, 2], [3, 3]]))
        >>> ids = jnp.array([[0, 3], [1, 1]])
        >>> bag.apply(bag.init(jax.random.key(0), ids), ids).tolist()
        [[4.0, 4.0], [2.0, 4.0]]
    """

    combiner: ops.Combiner = "mean"

    def __post_init__(self):
        ops._check_combiner(self.combiner)
        super().__post_init__()

    def __call__(
        self,
        ids: jax.typing.ArrayLike,
        mask: jax.typing.ArrayLike | None = None,
        weights: jax.typing.ArrayLike | None = None,
        offsets: jax.typing.ArrayLike | None = None,
    ) -> jax.Array:
        """Combines each bag (see :func:`jaxembed.ops.embedding_bag`)."""
        vectors = super().__call__(ids)
        mask = ops.bag_mask(ids, mask, self.mask_zero)
        return ops.combine_bags(vectors, combiner=self.combiner, mask=mask, weights=weights, offsets=offsets)

    def get_config(self) -> dict[str, Any]:
        """:meth:`Embedding.get_config` plus ``"combiner"``."""
        return {**super().get_config(), "combiner": self.combiner}
