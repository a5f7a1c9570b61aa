"""Categorical preprocessing with Keras's names and semantics: lookups, hashing, crossing, encoding.

* :class:`StringLookup`, :class:`IntegerLookup` -- a vocabulary of strings or integers -> ids
  (or one-hot / multi-hot / count / TF-IDF vectors), Keras's ``IndexLookup`` layout;
* :class:`Hashing`, :class:`HashedCrossing` -- values (or pairs of them) -> hash buckets, with
  TensorFlow's FarmHash64 / SipHash-2-4 values bit for bit;
* :class:`CategoryEncoding` -- integer ids -> one-hot, multi-hot or count vectors.

The numeric paths (``IntegerLookup`` and ``Hashing`` on integer JAX arrays, ``CategoryEncoding``)
are ``jax.numpy`` and run under ``jax.jit``; strings are handled on the host with NumPy.

Examples:
    >>> lookup = jaxembed.StringLookup(vocabulary=["red", "green", "blue"])
    >>> lookup(["green", "pink"]).tolist()
    [2, 0]
"""

from jaxembed.preprocessing._lookups import IntegerLookup, StringLookup

__all__ = ["StringLookup", "IntegerLookup"]
