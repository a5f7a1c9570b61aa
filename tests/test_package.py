"""The package's shape: subpackages as attributes, old paths, extras, no import circle, shared checks."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import jaxembed
from jaxembed import _checks, _moved

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jaxembed"
SUBPACKAGES = [
    "ops",
    "tables",
    "nn",
    "linen",
    "sparse",
    "train",
    "checkpoint",
    "sharding",
    "inspect",
    "keras",
    "preprocessing",
    "text",
    "datasets",
    "viz",
]


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.slow  # a fresh interpreter or a Keras model end to end
def test_fresh_interpreter_gets_every_subpackage_from_import_jaxembed():
    result = _run(
        f"""
        import jaxembed
        layer = jaxembed.linen.Embedding(4, 2)
        print(type(layer).__module__)
        for name in {SUBPACKAGES!r}:
            assert getattr(jaxembed, name).__name__ == "jaxembed." + name, name
        print(jaxembed.keras.io.__name__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["jaxembed.linen", "jaxembed.keras.io"]


def test_every_subpackage_is_in_all():
    assert set(SUBPACKAGES) <= set(jaxembed.__all__)


@pytest.mark.slow  # a fresh interpreter or a Keras model end to end
def test_keras_io_without_h5py_names_the_extra():
    result = _run(
        """
        import sys
        sys.modules["h5py"] = None  # as if h5py were not installed
        import jaxembed  # still imports: jaxembed.keras.io loads on first use
        try:
            jaxembed.keras.io
        except ImportError as error:
            print(error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert 'jaxembed.keras.io needs h5py: pip install "jaxembed[keras]"' in result.stdout


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_old_paths_still_import_and_warn_naming_the_new_one(old):
    new_path = _moved.MOVED[old][0]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved: import it from {new_path.split()[0]}"):
        module = importlib.import_module(old)
    for name in dir(module):
        assert getattr(module, name) is not None


def test_old_paths_keep_their_names():
    for old in ("jaxembed.layers", "jaxembed.keras_io", "jaxembed.quant", "jaxembed.initializers"):
        sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning):
        from jaxembed.initializers import RandomNormal
        from jaxembed.keras_io import KerasSequential, save_model
        from jaxembed.layers import Embedding
        from jaxembed.quant import check_mode, quantize
    assert Embedding is jaxembed.nn.Embedding and KerasSequential is jaxembed.nn.KerasSequential
    assert save_model is jaxembed.keras.io.save_model and quantize is jaxembed.tables.quantize
    assert check_mode("int8") == "int8"  # now private, still reachable under the old name
    assert RandomNormal is jaxembed.keras.initializers.RandomNormal
    with pytest.raises(AttributeError, match="moved to jaxembed.tables"):
        jaxembed.quant.no_such_name


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The jaxembed modules ``path`` imports when it is imported (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body):
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
                    base = base.rstrip(".")
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])

    visit(tree.body)
    edges = set()
    for target in found:
        # importing a.b.c imports a, a.b and a.b.c
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate in known and candidate != name:
                edges.add(candidate)
    return edges


def test_no_import_circle_inside_the_package():
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    known = set(modules)
    graph = {name: _module_level_imports(path, name, known) for name, path in modules.items()}
    # Importing a.b.c imports the packages a and a.b first; a module's own ancestor packages are
    # already being imported when it runs, so those edges are not circles.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_the_circle_check_catches_a_circle(tmp_path):
    # Positive control: the walker sees an edge a -> b -> a.
    (tmp_path / "jaxembed").mkdir()
    (tmp_path / "jaxembed" / "a.py").write_text("from jaxembed import b\n")
    (tmp_path / "jaxembed" / "b.py").write_text("import jaxembed.a\n")
    known = {"jaxembed.a", "jaxembed.b"}
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        a = _module_level_imports(tmp_path / "jaxembed" / "a.py", "jaxembed.a", known)
        b = _module_level_imports(tmp_path / "jaxembed" / "b.py", "jaxembed.b", known)
    finally:
        ROOT = saved
    assert a == {"jaxembed.b"} and b == {"jaxembed.a"}


@pytest.mark.parametrize("value", [0, -3, 2.0, 3.7, True, False, "4", None, np.float32(2)])
def test_positive_int_rejects(value):
    with pytest.raises(ValueError, match=r"`size` must be a positive integer. Received: size=.* \(of type"):
        _checks.positive_int("size", value)


@pytest.mark.parametrize("value", [1, 7, np.int32(3), np.int64(5), np.uint8(2)])
def test_positive_int_accepts_what_operator_index_accepts(value):
    out = _checks.positive_int("size", value)
    assert out == int(value) and type(out) is int


def test_one_of():
    assert _checks.one_of("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"`mode` must be one of \('a', 'b'\). Received: mode=\['a'\]."):
        _checks.one_of("mode", ["a"], ("a", "b"))
