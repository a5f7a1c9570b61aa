"""Flax NNX modules: Embedding, EmbeddingBag, pooling, and Keras's Sequential for small text models.

Thin modules over :mod:`jaxembed.ops` and the table parts of :mod:`jaxembed.tables`; their
arguments are checked once by :class:`jaxembed.EmbeddingSpec`.

Examples:
    >>> layer = Embedding(4, 2, weights=jnp.array([[1, 1], [1, 2], [2, 2], [3, 3]]))
    >>> Flatten()(layer(jnp.array([[0, 3]]))).tolist()
    [[1.0, 1.0, 3.0, 3.0]]
"""

from jaxembed._spec import EmbeddingSpec
from jaxembed.nn._compositional import HashedEmbedding, QREmbedding, hash_ids
from jaxembed.nn._embedding import (
    ActivityLoss,
    Embedding,
    EmbeddingBag,
    FrozenParam,
    QuantizedVariable,
    apply_constraints,
    regularization_loss,
)
from jaxembed.nn._pooling import Flatten, GlobalAveragePooling1D
from jaxembed.nn._reversible import ReversibleEmbedding
from jaxembed.nn._sequential import Activation, KerasSequential

__all__ = [
    "Embedding",
    "EmbeddingBag",
    "ReversibleEmbedding",
    "EmbeddingSpec",
    "FrozenParam",
    "QuantizedVariable",
    "ActivityLoss",
    "regularization_loss",
    "apply_constraints",
    "GlobalAveragePooling1D",
    "Flatten",
    "Activation",
    "KerasSequential",
    "QREmbedding",
    "HashedEmbedding",
    "hash_ids",
]
