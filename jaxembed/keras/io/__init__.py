"""Read and write Keras 3 model files without Keras: embeddings and small text models.

Keras 3 saves a model as a ``.keras`` zip archive (``config.json``, ``metadata.json``,
``model.weights.h5``) or its weights alone as a ``.weights.h5`` HDF5 file. This package reads
those files with ``h5py``, ``zipfile`` and ``json`` only (Keras is never imported), and writes
files that Keras loads. It needs h5py: ``pip install "jaxembed[keras]"``.

Examples:
    >>> import tempfile, os
    >>> layer = jaxembed.Embedding(4, 2, weights=jnp.array([[1, 1], [1, 2], [2, 2], [3, 3]]))
    >>> path = os.path.join(tempfile.mkdtemp(), "table.weights.h5")
    >>> save_weights(layer, path)
    >>> load_embedding(path)(jnp.array([3])).tolist()
    [[3.0, 3.0]]
"""

from jaxembed.keras.io._model import (
    EmbeddingEntry,
    KerasFileError,
    from_keras_layer,
    list_embeddings,
    load_embedding,
    load_model,
    save_model,
    save_weights,
)

__all__ = [
    "EmbeddingEntry",
    "KerasFileError",
    "list_embeddings",
    "load_embedding",
    "load_model",
    "from_keras_layer",
    "save_weights",
    "save_model",
]
