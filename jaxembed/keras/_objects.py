"""One resolver for Keras identifiers: names, config dicts, objects, callables.

Initializers, regularizers and constraints are all named the Keras way
(``"uniform"``, ``{"class_name": "L2", "config": {"l2": 0.01}}``, an instance,
or a plain callable). :class:`KerasObjects` turns any of these into an object
and back into Keras's serialized form, so the three modules share this code.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any


class KerasObject:
    """Base class of jaxembed's Keras-named objects: frozen dataclasses with a config.

    Subclasses are frozen dataclasses, so they are hashable (safe as static
    module metadata under ``jit``) and their fields are Keras's config keys.
    """

    def get_config(self) -> dict[str, Any]:
        """Returns the Keras config dict (the dataclass fields)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        """Builds the object from a Keras config dict, rejecting unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(
                f"Unknown config keys {unknown} for {cls.__name__}; expected a subset of {sorted(names)}."
            )
        return cls(**config)


class KerasObjects:
    """A registry of one kind of Keras object (e.g. initializers).

    Args:
        kind: what the objects are, for messages (``"initializer"``).
        module: Keras's module name for serialization (``"keras.initializers"``).
        classes: the classes, registered under their class name and aliases.
        aliases: extra names (``"uniform"``) for registered classes.
    """

    def __init__(
        self,
        kind: str,
        module: str,
        classes: list[type],
        aliases: Mapping[str, type],
    ):
        self.kind = kind
        self.module = module
        self._by_name: dict[str, type] = {c.__name__: c for c in classes}
        self._by_name.update(aliases)
        self._names_of: dict[type, str] = {c: c.__name__ for c in classes}

    @property
    def names(self) -> list[str]:
        """All names that :meth:`get` accepts."""
        return sorted(self._by_name)

    def _class_for(self, name: str) -> type:
        cls = self._by_name.get(name)
        if cls is None:
            raise ValueError(
                f"Unknown {self.kind} {name!r}. Valid names: {', '.join(self.names)}; "
                f"or pass a callable or a Keras config dict."
            )
        return cls

    def get(self, identifier: Any) -> Callable | None:
        """Resolves a name, config dict, class, instance or callable (``None`` stays ``None``)."""
        if identifier is None:
            return None
        if isinstance(identifier, str):
            return self._class_for(identifier)()
        if isinstance(identifier, Mapping):
            if "class_name" not in identifier:
                raise ValueError(
                    f"A {self.kind} config dict needs a 'class_name' key "
                    f"(Keras's serialized form). Received: {dict(identifier)!r}."
                )
            cls = self._class_for(identifier["class_name"])
            return cls.from_config(dict(identifier.get("config") or {}))
        if inspect.isclass(identifier):
            return identifier()
        if callable(identifier):
            return identifier
        raise TypeError(
            f"Could not interpret {self.kind} identifier {identifier!r} "
            f"(of type {type(identifier).__name__}): expected None, a name "
            f"({', '.join(self.names)}), a Keras config dict or a callable."
        )

    def serialize(self, obj: Callable | None) -> dict[str, Any] | Callable | None:
        """Keras's serialized form of ``obj``; a foreign callable is returned as is."""
        if obj is None:
            return None
        name = self._names_of.get(type(obj))
        if name is None:
            return obj
        return {
            "module": self.module,
            "class_name": name,
            "config": obj.get_config(),
            "registered_name": None,
        }
