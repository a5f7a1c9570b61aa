"""jaxembed: a Keras-compatible Embedding layer on JAX and Flax.

The public API, layered bottom-up (``import jaxembed`` gives every subpackage as an attribute):

* :mod:`jaxembed.ops` -- pure functions: id checks, ``take`` and one-hot lookups, masks, bags;
* :mod:`jaxembed.tables` -- the parts a table is made of: Keras 3's int8/int4 tables, the LoRA delta;
* :mod:`jaxembed.nn` (Flax NNX: :class:`jaxembed.Embedding`, :class:`jaxembed.EmbeddingBag`,
  pooling, ``KerasSequential``) and :mod:`jaxembed.linen` (Flax Linen) -- thin modules over the
  ops, with arguments checked by :class:`jaxembed.EmbeddingSpec`;
* :mod:`jaxembed.sparse` -- row-sparse gradients of tables and lazy (row-sparse) optax
  updates, so a step costs ``O(batch)``, not ``O(vocabulary)``;
* :mod:`jaxembed.train` -- jitted train/eval steps on optax, ``Trainer``, ``fit``, callbacks;
  :mod:`jaxembed.checkpoint` -- atomic, checked orbax checkpoints of any pytree, a step manager;
* :mod:`jaxembed.sharding` -- tables on a device mesh (row, column, replicated), a
  ``shard_map`` lookup; :mod:`jaxembed.inspect` -- the collectives of a compiled step;
* :mod:`jaxembed.keras` -- Keras initializers, regularizers, constraints by name and config;
  :mod:`jaxembed.keras.io` (loaded on first use; needs h5py) -- Keras files without Keras;
* :mod:`jaxembed.preprocessing` -- Keras's categorical layers: :class:`jaxembed.StringLookup`,
  :class:`jaxembed.IntegerLookup`, :class:`jaxembed.Hashing`, :class:`jaxembed.HashedCrossing`,
  :class:`jaxembed.CategoryEncoding` -- categories to ids and vectors;
* :mod:`jaxembed.text` (:class:`jaxembed.TextVectorizer`, Keras's ``TextVectorization``) and
  :mod:`jaxembed.datasets` (IMDB, aclImdb, folders, CSV/JSONL, a built-in corpus; the Adult,
  MovieLens 100K and clothing-reviews tables) -- raw data to ids; :mod:`jaxembed.pretrained` --
  GloVe, word2vec and fastText vectors as tables for a vocabulary;
* :mod:`jaxembed.viz` -- PCA, neighbours, plots (matplotlib, imported when plotting).

Examples:
    >>> import jax.numpy as jnp
    >>> import jaxembed
    >>> layer = jaxembed.Embedding(4, 2, weights=jnp.array([[1, 1], [1, 2], [2, 2], [3, 3]]))
    >>> layer(jnp.array([0, 1, 3])).tolist()
    [[1.0, 1.0], [1.0, 2.0], [3.0, 3.0]]
"""

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from jaxembed import _moved

_moved.install()

from jaxembed import (  # noqa: E402
    checkpoint,
    datasets,
    inspect,
    keras,
    linen,
    nn,
    ops,
    preprocessing,
    pretrained,
    sharding,
    sparse,
    tables,
    text,
    train,
    viz,
)
from jaxembed._spec import EmbeddingSpec  # noqa: E402
from jaxembed.nn import (  # noqa: E402
    ActivityLoss,
    Embedding,
    EmbeddingBag,
    Flatten,
    FrozenParam,
    GlobalAveragePooling1D,
    QuantizedVariable,
    ReversibleEmbedding,
    apply_constraints,
    regularization_loss,
)
from jaxembed.preprocessing import (  # noqa: E402
    CategoryEncoding,
    HashedCrossing,
    Hashing,
    IntegerLookup,
    StringLookup,
)
from jaxembed.text import TextVectorizer  # noqa: E402

try:
    __version__ = version("jaxembed")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "Embedding",
    "EmbeddingBag",
    "ReversibleEmbedding",
    "FrozenParam",
    "QuantizedVariable",
    "ActivityLoss",
    "EmbeddingSpec",
    "apply_constraints",
    "regularization_loss",
    "GlobalAveragePooling1D",
    "Flatten",
    "TextVectorizer",
    "StringLookup",
    "IntegerLookup",
    "ops",
    "tables",
    "nn",
    "linen",
    "sparse",
    "train",
    "checkpoint",
    "sharding",
    "inspect",
    "keras",
    "text",
    "datasets",
    "viz",
    "preprocessing",
    "StringLookup",
    "IntegerLookup",
    "Hashing",
    "HashedCrossing",
    "CategoryEncoding",
    "pretrained",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Old module paths (``jaxembed.layers``, ``jaxembed.keras_io``, ...) as attributes, with a warning."""
    if f"{__name__}.{name}" in _moved.MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
