"""A Griffe extension that prepares jaxembed's docstrings for the MkDocs site.

Registered in ``mkdocs.yml`` under the mkdocstrings Python handler's ``extensions``.
Two jobs, done once when the ``jaxembed`` package has been loaded:

* **Runtime-made classes.** Static analysis sees
  ``GlorotUniform = _preset("GlorotUniform", ...)`` in ``jaxembed.keras.initializers`` as
  an attribute without a docstring, although the class it builds has one. For
  every public attribute (in its module's ``__all__``) without a docstring whose
  runtime value is a class or function with its own ``__doc__``, that is used.
* **Sphinx markup in Markdown.** The docstrings are written for both ``help()``
  and the site, with a little reStructuredText: roles such as
  ``:func:`lookup``` become code spans, and ``.. math::`` blocks become fenced
  LaTeX blocks (the site loads no math renderer from a CDN, so it works offline).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parent.parent

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc|const):`~?([^`]+)`")
_MATH = re.compile(r"^\.\. math::[ \t]*\n((?:[ \t]*\n)*)((?:(?:[ \t]+\S.*)?\n?)+)", re.MULTILINE)


def markdown_from_rst(text: str) -> str:
    """Rewrites the reStructuredText bits of a docstring as Markdown.

    Examples:
        >>> markdown_from_rst("See :func:`lookup` and :class:`~jaxembed.nn.Embedding`.")
        'See `lookup` and `Embedding`.'
        >>> print(markdown_from_rst(".. math::\\n\\n    a = b\\n\\nafter"))
        ```latex
        a = b
        ```
        <BLANKLINE>
        after
    """

    def role(match: re.Match) -> str:
        target = match.group(1).strip()
        if match.group(0).split("`", 1)[1].startswith("~"):
            target = target.rsplit(".", 1)[-1]
        return f"`{target}`"

    def math(match: re.Match) -> str:
        body = textwrap.dedent(match.group(2)).strip("\n")
        return f"```latex\n{body}\n```\n\n"

    return _ROLE.sub(role, _MATH.sub(math, text))


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias and member.parent is obj:
            yield from _walk(member)


class JaxembedDocstrings(griffe.Extension):
    """Fills in docstrings of runtime-made public classes and turns RST markup into Markdown."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "jaxembed":
            return
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))

        def public(module: griffe.Module):
            yield module
            for child in module.modules.values():
                if not child.is_alias and not child.name.startswith("_"):
                    yield from public(child)

        for module in public(pkg):
            runtime = importlib.import_module(module.path)
            for name in getattr(runtime, "__all__", []):
                member = module.members.get(name)
                if member is None or member.is_alias or member.docstring is not None:
                    continue
                value = getattr(runtime, name)
                if (inspect.isclass(value) or inspect.isfunction(value)) and value.__doc__:
                    member.docstring = griffe.Docstring(inspect.cleandoc(value.__doc__), parent=member)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = markdown_from_rst(obj.docstring.value)
