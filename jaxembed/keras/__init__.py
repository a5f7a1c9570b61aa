"""Keras at the edge: initializers, regularizers and constraints by Keras name and config; Keras files.

* :mod:`jaxembed.keras.initializers`, :mod:`jaxembed.keras.regularizers`,
  :mod:`jaxembed.keras.constraints` -- Keras names and configs as JAX functions;
* :mod:`jaxembed.keras.io` -- Keras 3 ``.keras`` and ``.weights.h5`` files without Keras
  (loaded on first use; needs h5py: ``pip install "jaxembed[keras]"``).

Examples:
    >>> from jaxembed.keras import initializers
    >>> initializers.get("uniform")
    RandomUniform(minval=-0.05, maxval=0.05, seed=None)
"""

import importlib
from typing import Any

from jaxembed.keras import constraints, initializers, regularizers

__all__ = ["initializers", "regularizers", "constraints", "io"]


def __getattr__(name: str) -> Any:
    if name == "io":  # needs h5py; imported on first use
        return importlib.import_module("jaxembed.keras.io")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
