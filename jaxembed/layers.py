"""``jaxembed.Embedding``: Keras's Embedding layer as a Flax NNX module.

A thin shell over :mod:`jaxembed.ops`: it holds the table as an ``nnx.Param``
(or a :class:`FrozenParam` when ``trainable=False``) and an
:class:`~jaxembed.config.EmbeddingSpec` with the validated Keras arguments.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxembed import ops
from jaxembed.config import EmbeddingSpec

__all__ = ["Embedding", "FrozenParam", "ActivityLoss", "regularization_loss", "apply_constraints"]


class FrozenParam(nnx.Variable):
    """A table that training leaves alone (``trainable=False``).

    It is not an ``nnx.Param``, so ``nnx.grad``, ``nnx.Optimizer(..., wrt=nnx.Param)``
    and jaxembed's training utilities skip it; the layer also stops gradients
    through it.
    """


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
            default: the table's dtype.
        param_dtype: storage dtype of the table (default float32).
        lookup: ``"take"`` (gather) or ``"one_hot"`` (one-hot matmul).
        invalid_ids: traced out-of-range ids give NaN rows (``"nan"``) or also
            fail a ``checkify`` check (``"checkify"``); see :mod:`jaxembed.ops`.
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

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        *,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        activity_regularizer: Any = None,
        mask_zero: bool = False,
        weights: Any = None,
        input_length: int | Sequence[int | None] | None = None,
        name: str | None = None,
        trainable: bool = True,
        dtype: Any = None,
        param_dtype: Any = None,
        lookup: ops.LookupMethod = "take",
        invalid_ids: ops.InvalidIds = "nan",
        rngs: nnx.Rngs | int | jax.Array | None = None,
    ):
        self.spec = EmbeddingSpec.create(
            input_dim,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            activity_regularizer=activity_regularizer,
            mask_zero=mask_zero,
            input_length=input_length,
            name=name,
            trainable=trainable,
            dtype=dtype,
            param_dtype=param_dtype,
            lookup=lookup,
            invalid_ids=invalid_ids,
        )
        table = self.spec.initial_table(_key_from(rngs), weights)
        self.embeddings = (nnx.Param if trainable else FrozenParam)(table)
        if self.spec.activity_regularizer is not None:
            self.activity_loss = ActivityLoss(jnp.zeros((), jnp.float32))

    # -------------------------------------------------------------- the layer
    def __call__(self, ids: jax.typing.ArrayLike) -> jax.Array:
        """Looks up ``ids`` (any shape); returns ``(*ids.shape, output_dim)`` in ``dtype``."""
        spec = self.spec
        spec.check_ids_shape(jnp.shape(ids))
        table = self.embeddings[...]
        if not spec.trainable:
            table = jax.lax.stop_gradient(table)
        outputs = ops.lookup(table, ids, method=spec.lookup, invalid_ids=spec.invalid_ids)
        outputs = outputs.astype(spec.dtype)
        if spec.activity_regularizer is not None:
            self.activity_loss[...] = spec.activity_penalty(outputs)
        return outputs

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
        self.embeddings = (nnx.Param if value else FrozenParam)(self.embeddings[...])

    @property
    def input_length(self) -> int | list[int | None] | None:
        """Keras 2's ``input_length`` as given (an int, a list, or ``None``)."""
        length = self.spec.input_length
        if length is None:
            return None
        return length[0] if len(length) == 1 else list(length)

    def regularization_loss(self) -> jax.Array:
        """The table's regularization penalty plus the latest call's activity penalty."""
        penalty = self.spec.table_penalty(self.embeddings[...])
        if self.spec.activity_regularizer is not None:
            penalty = penalty + self.activity_loss[...]
        return penalty

    def apply_constraint(self) -> None:
        """Projects the table with ``embeddings_constraint`` in place (no-op without one)."""
        if self.spec.embeddings_constraint is not None:
            self.embeddings[...] = self.spec.embeddings_constraint(self.embeddings[...])

    def get_weights(self) -> list[np.ndarray]:
        """``[table]`` as a NumPy array, as Keras's ``get_weights``."""
        return [np.asarray(self.embeddings[...])]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Replaces the table from ``[table]`` (shape checked), as Keras's ``set_weights``."""
        self.embeddings[...] = self.spec.initial_table(None, list(weights))

    def get_config(self) -> dict[str, Any]:
        """Keras's config dict (see :meth:`EmbeddingSpec.get_config`)."""
        return self.spec.get_config()

    @classmethod
    def from_config(cls, config: dict[str, Any], *, rngs: nnx.Rngs | int | jax.Array | None = None) -> Embedding:
        """Builds a layer from a config written by Keras or by :meth:`get_config`."""
        return cls(**EmbeddingSpec.arguments_from_config(config), rngs=rngs)


def _embeddings_in(model: nnx.Module):
    for _, node in nnx.iter_graph(model):
        if isinstance(node, Embedding):
            yield node


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
    for layer in _embeddings_in(model):
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
    for layer in _embeddings_in(model):
        layer.apply_constraint()
