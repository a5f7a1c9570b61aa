"""Optional dependencies (private): import one, or fail with the extra that installs it.

Examples:
    >>> require("json", "jaxembed.example", "keras").__name__
    'json'
    >>> require("no_such_mod", "jaxembed.keras.io", "keras")
    Traceback (most recent call last):
    ...
    ImportError: jaxembed.keras.io needs no_such_mod: pip install "jaxembed[keras]" (or no_such_mod).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, feature: str, extra: str) -> ModuleType:
    """Imports ``module``, or raises ``ImportError`` naming ``feature`` and the extra to install.

    Args:
        module: the optional dependency (``"h5py"``, ``"matplotlib"``).
        feature: what needs it, as the user imports it (``"jaxembed.keras.io"``).
        extra: the jaxembed extra that installs it (``pip install "jaxembed[extra]"``).

    Returns:
        The imported module.

    Raises:
        ImportError: the dependency is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f'{feature} needs {module}: pip install "jaxembed[{extra}]" (or {module}).'
        ) from error
