"""Read and write Keras 3 model files without Keras: embeddings and small text models.

Keras 3 saves a model as a ``.keras`` zip archive (``config.json``,
``metadata.json``, ``model.weights.h5``) or its weights alone as a
``.weights.h5`` HDF5 file. In the HDF5 file each layer's variables are the
datasets ``<path>/vars/0``, ``<path>/vars/1``, ... and ``<path>/vars`` carries the
layer's name as an attribute. ``<path>`` depends on how the model was written:

* Sequential and Functional models: ``layers/<class in snake_case>``, with
  ``_1``, ``_2``, ... for the second, third, ... layer of the same class
  (``layers/embedding``, ``layers/embedding_1``, ``layers/dense``);
* subclassed models: the attribute name (``token_embedding/vars/0``), or
  ``layers/embedding_<n>`` when Keras reached the layer through ``model.layers``
  first; nested models nest the paths (``layers/functional/layers/embedding``).

An Embedding stores ``[table]`` (a LoRA layer stores the merged table), an
int8 one ``[values, scale]``, an int4 one ``[packed values, scale]`` per channel
or ``[packed values, scale, zero, g_idx]`` grouped (:mod:`jaxembed.tables`).
bfloat16 tables are 2-byte opaque datasets with a ``dtype="bfloat16"`` attribute.

This package reads those files with ``h5py``, ``zipfile`` and ``json`` only
(Keras is never imported; ``pip install "jaxembed[keras]"`` brings h5py), and writes
``.weights.h5`` files that
``keras.Model.load_weights`` reads and ``.keras`` archives that
``keras.saving.load_model`` opens. :class:`jaxembed.nn.KerasSequential` is the small
Flax NNX container a Sequential/Functional text model loads into; :func:`load_lookups` reads
the ``StringLookup``/``IntegerLookup`` layers of an archive with their stored vocabularies (and its
``Hashing``/``HashedCrossing``/``CategoryEncoding`` configs); :func:`save_lookups` writes them so
that Keras loads them with the same vocabularies.

Examples:
    >>> import tempfile, os
    >>> layer = jaxembed.Embedding(4, 2, weights=jnp.array([[1, 1], [1, 2], [2, 2], [3, 3]]))
    >>> path = os.path.join(tempfile.mkdtemp(), "table.weights.h5")
    >>> save_weights(layer, path)
    >>> [(e.path, e.shape) for e in list_embeddings(path)]
    [('layers/embedding', (4, 2))]
    >>> load_embedding(path)(jnp.array([3])).tolist()
    [[3.0, 3.0]]
"""

from jaxembed.keras.io._embedding import EmbeddingEntry, from_keras_layer, list_embeddings, load_embedding
from jaxembed.keras.io._h5 import KerasFileError
from jaxembed.keras.io._lookups import load_lookups, save_lookups
from jaxembed.keras.io._model import load_model, save_model, save_weights

__all__ = [
    "EmbeddingEntry",
    "KerasFileError",
    "list_embeddings",
    "load_embedding",
    "load_model",
    "load_lookups",
    "from_keras_layer",
    "save_weights",
    "save_model",
    "save_lookups",
]
