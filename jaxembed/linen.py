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

from jaxembed import _mesh, _spec, ops
from jaxembed._spec import (  # noqa: F401 - the names the schema's annotation strings use (fields' types)
    _REVERSE_ARGUMENTS,
    ARGUMENTS,
    ConstraintLike,
    DTypeLike,
    EmbeddingSpec,
    InitializerLike,
    RegularizerLike,
    _check_reverse_arguments,
)

__all__ = ["Embedding", "EmbeddingBag", "ReversibleEmbedding"]


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
    # The other Keras arguments, from the one schema (``name`` is Linen's own module name).
    for _argument in ARGUMENTS[2:]:
        if _argument.name != "name":
            __annotations__[_argument.name] = _argument.annotation
            vars()[_argument.name] = _argument.default
    del _argument
    weights: Any = None
    embeddings_sharding: Any = None  # a NamedSharding or mesh-axis names; see jaxembed.sharding

    def __post_init__(self):
        self.spec  # validate the arguments when the module is made, not when it is first used
        super().__post_init__()

    @property
    def spec(self) -> EmbeddingSpec:
        """The validated arguments, shared with the NNX module.

        Built once per module object (and again only if Linen gives the module its name later).
        """
        name = self.name if isinstance(self.name, str) else None
        cached = self.__dict__.get("_jaxembed_spec")
        if cached is None or cached[0] != name:
            arguments = {a.name: getattr(self, a.name) for a in ARGUMENTS[2:] if a.name != "name"}
            cached = (name, EmbeddingSpec.create(self.input_dim, self.output_dim, name=name, **arguments))
            self.__dict__["_jaxembed_spec"] = cached  # past Linen's frozen __setattr__
        return cached[1]

    @nn.compact
    def __call__(self, ids: jax.typing.ArrayLike) -> jax.Array:
        """Looks up ``ids`` (any shape); returns ``(*ids.shape, output_dim)`` in ``dtype``."""
        return self._lookup(ids)

    def _table(self) -> jax.Array:
        """The ``"embeddings"`` parameter (made on first use; gradients stopped when not trainable)."""
        spec = self.spec
        init = lambda key: spec.initial_table(key, self.weights)  # noqa: E731
        placement = _mesh.variable_metadata(self.embeddings_sharding)
        if placement:  # Flax's boxed Partitioned parameter: nn.get_partition_spec reads it
            init = nn.with_partitioning(init, placement["out_sharding"], placement["mesh"])
        table = self.param("embeddings", init)
        if spec.embeddings_regularizer is not None:
            self.sow(
                "losses",
                "embeddings_regularization",
                spec.table_penalty(table),
                init_fn=lambda: None,
                reduce_fn=_latest,
            )
        return table if spec.trainable else jax.lax.stop_gradient(table)

    def _lookup(self, ids: jax.typing.ArrayLike) -> jax.Array:
        spec = self.spec
        table = self._table()
        ids = ops.dense_ids(ids)
        spec.check_ids_shape(jnp.shape(ids))
        outputs = ops.lookup(table, ids, method=spec.lookup, invalid_ids=spec.invalid_ids)
        outputs = outputs.astype(spec.dtype)
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
        """Builds the module from a config written by Keras or by :meth:`get_config`.

        Raises:
            TypeError: for a config that does not build a module (as Keras; also a ``ValueError``).
        """
        with _spec.config_errors(cls.__name__, config):
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


class ReversibleEmbedding(Embedding):
    """Keras 3's ``ReversibleEmbedding`` for Linen: the NNX :class:`jaxembed.ReversibleEmbedding`'s
    attributes (``tie_weights``, ``reverse_dtype``, ``logit_soft_cap`` and every :class:`Embedding`
    field); ``apply(variables, x, reverse=True)`` gives logits ``x @ W.T`` (or ``x @
    reverse_embeddings``, the ``"reverse_embeddings"`` parameter, when untied).

    Examples:
        >>> layer = ReversibleEmbedding(3, 2, weights=jnp.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]]))
        >>> variables = layer.init(jax.random.key(0), jnp.array([0]))
        >>> layer.apply(variables, jnp.array([[1.0, 1.0]]), reverse=True).tolist()
        [[0.0, 4.0, 6.0]]
    """

    tie_weights: bool = True
    reverse_dtype: Any = None
    logit_soft_cap: float | None = None

    def __post_init__(self):
        _check_reverse_arguments(self.tie_weights, self.reverse_dtype, self.logit_soft_cap)
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs: jax.typing.ArrayLike, reverse: bool = False) -> jax.Array:
        """The lookup, or with ``reverse=True`` logits ``(..., input_dim)``."""
        if not reverse:
            return self._lookup(inputs)
        spec = self.spec
        _, reverse_dtype, soft_cap = _check_reverse_arguments(
            self.tie_weights, self.reverse_dtype, self.logit_soft_cap
        )
        dtype = reverse_dtype or spec.dtype
        table = self._table()
        if self.tie_weights:
            kernel = table.T
        else:

            def init(key: jax.Array) -> jax.Array:
                shape = (spec.output_dim, spec.input_dim)
                return jnp.asarray(
                    spec.embeddings_initializer(key, shape, spec.param_dtype), spec.param_dtype
                )

            kernel = self.param("reverse_embeddings", init)
            if not spec.trainable:
                kernel = jax.lax.stop_gradient(kernel)
        logits = jnp.matmul(jnp.asarray(inputs, dtype), kernel.astype(dtype))
        if soft_cap is not None:
            logits = jnp.tanh(logits / soft_cap) * soft_cap
        return logits.astype(dtype)

    def get_config(self) -> dict[str, Any]:
        """The NNX module's config: :meth:`Embedding.get_config` plus the three reverse arguments."""
        _, reverse_dtype, soft_cap = _check_reverse_arguments(
            self.tie_weights, self.reverse_dtype, self.logit_soft_cap
        )
        config = dict(super().get_config())
        if config["name"] == "embedding":
            config["name"] = "reversible_embedding"
        return {
            **config,
            "tie_weights": self.tie_weights,
            "reverse_dtype": None if reverse_dtype is None else reverse_dtype.name,
            "logit_soft_cap": soft_cap,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ReversibleEmbedding:
        """Builds the module from a config written by Keras or by :meth:`get_config`."""
        config = dict(config)
        reverse = {name: config.pop(name) for name in _REVERSE_ARGUMENTS if name in config}
        return cls(**EmbeddingSpec.arguments_from_config(config), **reverse)
