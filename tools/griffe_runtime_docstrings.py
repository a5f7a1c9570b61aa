"""A Griffe extension: docstrings of classes and functions that a module makes at runtime.

Static analysis sees ``GlorotUniform = _preset("GlorotUniform", ...)`` in
``jaxembed.initializers`` as an attribute without a docstring, although the class
it builds has one. For every public attribute (listed in its module's ``__all__``)
that Griffe found no docstring for, this extension imports the module and, if the
runtime value is a class or function with its own ``__doc__``, uses that.
Registered in ``mkdocs.yml`` under the mkdocstrings Python handler's ``extensions``.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parent.parent


class RuntimeDocstrings(griffe.Extension):
    """Fills in missing docstrings of public attributes bound to runtime-made classes/functions."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "jaxembed":
            return
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        for module in [pkg, *(m for m in pkg.modules.values() if not m.name.startswith("_"))]:
            runtime = importlib.import_module(module.path)
            for name in getattr(runtime, "__all__", []):
                member = module.members.get(name)
                if member is None or member.is_alias or member.docstring is not None:
                    continue
                value = getattr(runtime, name)
                if (inspect.isclass(value) or inspect.isfunction(value)) and value.__doc__:
                    member.docstring = griffe.Docstring(inspect.cleandoc(value.__doc__), parent=member)
