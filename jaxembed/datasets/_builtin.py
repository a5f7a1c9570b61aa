"""The offline default corpus: docstrings of the Python standard library, labelled by where they live."""

from __future__ import annotations

import ast
import functools
import json
import os
import sys
import sysconfig
from pathlib import Path

import numpy as np

from jaxembed._files import write_text
from jaxembed.datasets._common import DatasetError, TextDataset

BUILTIN_CLASSES: dict[str, tuple[str, ...]] = {
    "concurrency": (
        "asyncio",
        "concurrent",
        "multiprocessing",
        "queue",
        "sched",
        "selectors",
        "subprocess",
        "threading",
    ),
    "email": ("email", "imaplib", "mailbox", "mimetypes", "nntplib", "poplib", "smtplib"),
    "importing": ("importlib", "modulefinder", "pkgutil", "runpy", "zipimport"),
    "internet": (
        "ftplib",
        "http",
        "ipaddress",
        "socket",
        "socketserver",
        "ssl",
        "urllib",
        "wsgiref",
        "xmlrpc",
    ),
    "logging": ("logging",),
    "numbers": ("_pydecimal", "fractions", "numbers", "random", "statistics"),
    "testing": ("bdb", "doctest", "pdb", "trace", "traceback", "unittest"),
    "xml": ("html", "xml"),
}
"""Class name → the standard-library modules and packages whose docstrings make up that class."""

MIN_WORDS = 5
_CACHE_VERSION = 1


def _stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _docstrings(source: Path) -> list[str]:
    files = [source] if source.suffix == ".py" else sorted(source.rglob("*.py"))
    found = []
    for file in files:
        try:
            tree = ast.parse(file.read_bytes(), filename=str(file))
        except (SyntaxError, ValueError):  # a file this Python cannot parse: skip it
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                docstring = ast.get_docstring(node, clean=True)
                if docstring and len(docstring.split()) >= MIN_WORDS:
                    found.append(docstring)
    return found


@functools.cache  # parsing ~150 source files takes seconds; they do not change while Python runs
def _collect() -> tuple[tuple[str, ...], tuple[int, ...]]:
    root = _stdlib()
    by_text: dict[str, set[int]] = {}
    for label, modules in enumerate(BUILTIN_CLASSES.values()):
        for module in modules:
            for candidate in (root / f"{module}.py", root / module):
                if candidate.exists():
                    for text in _docstrings(candidate):
                        by_text.setdefault(text, set()).add(label)
    # A docstring found under two classes (copied code, "Return a copy.") says nothing: drop it.
    kept = sorted((text, labels.pop()) for text, labels in by_text.items() if len(labels) == 1)
    return tuple(text for text, _ in kept), tuple(label for _, label in kept)


def load_builtin(*, cache_dir: str | os.PathLike | None = None) -> TextDataset:
    """About 3,300 docstrings of the Python standard library in 8 classes: which part of it they document.

    Real technical English that nobody on this project wrote and that every
    Python installation has, so examples and tests train on text without a
    download. The docstrings of the modules in each :data:`BUILTIN_CLASSES`
    entry (modules, classes, functions; at least 5 words each) are read by
    parsing the source files with :mod:`ast` -- nothing is imported. Texts that
    occur in two classes are dropped, the rest sorted; split with
    :meth:`TextDataset.split` (a hash of each text, so the split is fixed). The
    counts depend a little on the Python version (measured on 3.11.7: 3,312
    texts). It needs the standard library's ``.py`` sources, which standard
    CPython installs include.

    Args:
        cache_dir: if given, the corpus is cached there as JSON (per Python
            version) and read back on later calls.

    Examples:
        >>> data = load_builtin()
        >>> len(data) > 2000, data.class_names[:3]
        (True, ['concurrency', 'email', 'importing'])
    """
    cache = None
    if cache_dir is not None:
        version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
        cache = Path(cache_dir) / f"builtin-corpus-v{_CACHE_VERSION}-python{version}.json"
        if cache.is_file():
            try:
                document = json.loads(cache.read_text(encoding="utf-8"))
                return TextDataset(
                    document["texts"], np.asarray(document["labels"], np.int32), document["classes"]
                )
            except (ValueError, KeyError, TypeError) as error:
                raise DatasetError(
                    f"The corpus cache {str(cache)!r} is damaged ({error}); delete it."
                ) from None
    texts, labels = map(list, _collect())
    if not texts:
        raise DatasetError(f"No standard-library sources found under {str(_stdlib())!r}.")
    classes = list(BUILTIN_CLASSES)
    if cache is not None:
        document = {"texts": texts, "labels": labels, "classes": classes}
        write_text(cache, json.dumps(document, ensure_ascii=False))
    return TextDataset(texts, np.asarray(labels, np.int32), classes)
