"""jaxembed: a Keras-compatible Embedding layer on JAX and Flax.

The public API, layered bottom-up:

* :mod:`jaxembed.ops` -- pure functions: id checks, ``take`` and one-hot lookups, masks;
* :mod:`jaxembed.initializers`, :mod:`jaxembed.regularizers`,
  :mod:`jaxembed.constraints` -- Keras names and configs as JAX functions;
* :class:`jaxembed.Embedding` (Flax NNX) and :class:`jaxembed.linen.Embedding`
  (Flax Linen) -- thin modules over the ops;
* :mod:`jaxembed.train` -- jitted train/eval steps on optax, ``fit``, callbacks;
  :mod:`jaxembed.checkpoint` -- atomic, checked checkpoints of any pytree.
* :mod:`jaxembed.sparse` -- row-sparse gradients of tables and lazy (row-sparse) optax
  updates, so a step costs ``O(batch)``, not ``O(vocabulary)``.
* :mod:`jaxembed.lora`, :mod:`jaxembed.quant` -- Keras 3's LoRA and int8/int4 tables;
  :mod:`jaxembed.keras_io` (imported on demand; needs h5py) -- Keras files without Keras.
* :mod:`jaxembed.text` (:class:`jaxembed.TextVectorizer`, Keras's ``TextVectorization``) and
  :mod:`jaxembed.datasets` (IMDB, aclImdb, folders, CSV/JSONL, a built-in corpus; Adult,
  MovieLens 100K, clothing reviews) -- raw data to ids; :mod:`jaxembed.pretrained` -- GloVe,
  word2vec and fastText vectors as tables for a vocabulary.
* :mod:`jaxembed.preprocessing` -- Keras's categorical layers: :class:`jaxembed.StringLookup`,
  :class:`jaxembed.IntegerLookup` (and more) -- categories to ids.
* :mod:`jaxembed.sharding` -- tables on a device mesh (row, column, replicated), a
  ``shard_map`` lookup, the collectives of a compiled step; :class:`jaxembed.EmbeddingBag`
  -- multi-hot bags (sum, mean, sqrtn).

Examples:
    >>> import jax.numpy as jnp
    >>> import jaxembed
    >>> layer = jaxembed.Embedding(4, 2, weights=jnp.array([[1, 1], [1, 2], [2, 2], [3, 3]]))
    >>> layer(jnp.array([0, 1, 3])).tolist()
    [[1.0, 1.0], [1.0, 2.0], [3.0, 3.0]]
"""

from importlib.metadata import PackageNotFoundError, version

from jaxembed import (
    checkpoint,
    constraints,
    datasets,
    initializers,
    lora,
    ops,
    preprocessing,
    pretrained,
    quant,
    regularizers,
    sharding,
    sparse,
    text,
    train,
)
from jaxembed.config import EmbeddingSpec
from jaxembed.layers import (
    ActivityLoss,
    Embedding,
    EmbeddingBag,
    FrozenParam,
    QuantizedVariable,
    apply_constraints,
    regularization_loss,
)
from jaxembed.pooling import Flatten, GlobalAveragePooling1D
from jaxembed.preprocessing import IntegerLookup, StringLookup
from jaxembed.text import TextVectorizer

try:
    __version__ = version("jaxembed")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "Embedding",
    "EmbeddingBag",
    "FrozenParam",
    "QuantizedVariable",
    "ActivityLoss",
    "EmbeddingSpec",
    "apply_constraints",
    "regularization_loss",
    "GlobalAveragePooling1D",
    "Flatten",
    "ops",
    "initializers",
    "regularizers",
    "constraints",
    "train",
    "sparse",
    "checkpoint",
    "lora",
    "quant",
    "text",
    "datasets",
    "pretrained",
    "TextVectorizer",
    "preprocessing",
    "StringLookup",
    "IntegerLookup",
    "sharding",
    "__version__",
]
