"""Old import paths of modules that moved (private): they still import, with a DeprecationWarning.

``import jaxembed.layers`` (and the other paths in :data:`MOVED`) gives a module whose
attributes are those of the new home; importing it warns once, naming the new path. A name that
became private (``jaxembed.quant.check_mode``) is still found under its private name.

Examples:
    >>> sorted(MOVED)[:3]
    ['jaxembed._keras_objects', 'jaxembed.config', 'jaxembed.constraints']
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

__all__ = ["MOVED", "install"]

# old module -> (the new public path to name in the warning, the modules that hold its names)
MOVED: dict[str, tuple[str, tuple[str, ...]]] = {
    "jaxembed.layers": ("jaxembed.nn", ("jaxembed.nn._embedding",)),
    "jaxembed.pooling": ("jaxembed.nn", ("jaxembed.nn._pooling",)),
    "jaxembed.keras_io": (
        "jaxembed.keras.io (KerasSequential and Activation: jaxembed.nn)",
        (
            "jaxembed.keras.io._embedding",
            "jaxembed.keras.io._model",
            "jaxembed.keras.io._h5",
            "jaxembed.nn._sequential",
        ),
    ),
    "jaxembed.quant": ("jaxembed.tables", ("jaxembed.tables._quant",)),
    "jaxembed.lora": ("jaxembed.tables", ("jaxembed.tables._lora",)),
    "jaxembed.config": ("jaxembed.EmbeddingSpec", ("jaxembed._spec",)),
    "jaxembed.initializers": ("jaxembed.keras.initializers", ("jaxembed.keras.initializers",)),
    "jaxembed.regularizers": ("jaxembed.keras.regularizers", ("jaxembed.keras.regularizers",)),
    "jaxembed.constraints": ("jaxembed.keras.constraints", ("jaxembed.keras.constraints",)),
    "jaxembed._keras_objects": ("jaxembed.keras._objects", ("jaxembed.keras._objects",)),
}


class _MovedModule(types.ModuleType):
    """A module object for an old path: looks its names up in the new homes."""

    def __init__(self, name: str, new_path: str, homes: tuple[str, ...]):
        super().__init__(name, f"Moved to {new_path}.")
        self._new_path = new_path
        self._homes = homes

    def _modules(self) -> list[types.ModuleType]:
        return [importlib.import_module(home) for home in self._homes]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for module in self._modules():
            for candidate in (name, f"_{name}"):
                if hasattr(module, candidate):
                    return getattr(module, candidate)
        raise AttributeError(f"{self.__name__} moved to {self._new_path}, which has no attribute {name!r}.")

    def __dir__(self) -> list[str]:
        names: set[str] = set()
        for module in self._modules():
            names.update(getattr(module, "__all__", ()))
        return sorted(names)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new_path, homes = MOVED[spec.name]
        return _MovedModule(spec.name, new_path, homes)

    def exec_module(self, module: types.ModuleType) -> None:
        warnings.warn(
            f"{module.__name__} moved: import it from {MOVED[module.__name__][0]} instead.",
            DeprecationWarning,
            stacklevel=2,
        )


def install() -> None:
    """Makes the old paths importable (idempotent; :mod:`jaxembed` calls it on import)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
