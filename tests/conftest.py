"""Fixtures shared by the tests: the seed example's objects, table and vectors; the comparison switch.

The repository's root ``conftest.py`` sets the XLA flags (8 simulated CPU devices) before JAX is
imported; this one only adds fixtures and hooks.

``JAXEMBED_REQUIRE_COMPARISONS=1`` turns the skips of the comparison tests (when torch,
TensorFlow, FBGEMM, Keras or the real datasets are missing; at run time or, for a module-level
``importorskip``, at collection) into failures, as ``JAXEMBED_REQUIRE_SITE_CHECKS=1`` does
for the site checks; ``.ci/run`` sets both.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import numpy as np
import pytest

# The seed example (cat / dog / snake): objects -> unique vocabulary -> indices -> table rows.
SEED_OBJECTS = ["cat", "dog", "snake", "dog", "mouse", "cat", "dog", "snake", "dog"]
SEED_VOCABULARY = ["cat", "dog", "snake", "mouse"]
SEED_INDICES = [0, 1, 2, 1, 3, 0, 1, 2, 1]
SEED_TABLE = np.array([[1, 1], [1, 2], [2, 2], [3, 3]], np.float32)
SEED_VECTORS = [[1, 1], [1, 2], [2, 2], [1, 2], [3, 3], [1, 1], [1, 2], [2, 2], [1, 2]]

REQUIRE_COMPARISONS = os.environ.get("JAXEMBED_REQUIRE_COMPARISONS") == "1"
# The skip reasons of the comparison tests name what is missing: the extra that installs torch /
# TensorFlow / FBGEMM, Keras (the oracle of the differential tests), or the real datasets.
_COMPARISON_SKIP = re.compile(
    r"the `?compare`? extra|needs? keras|comparison needs keras|imports keras|reads the real datasets"
)


@pytest.fixture
def seed_objects() -> list[str]:
    """The seed's objects, ``['cat', 'dog', 'snake', 'dog', 'mouse', 'cat', 'dog', 'snake', 'dog']``."""
    return list(SEED_OBJECTS)


@pytest.fixture
def seed_vocabulary() -> list[str]:
    """The seed's unique objects in order of first appearance."""
    return list(SEED_VOCABULARY)


@pytest.fixture
def seed_indices() -> list[int]:
    """Each seed object's row: ``[0, 1, 2, 1, 3, 0, 1, 2, 1]``."""
    return list(SEED_INDICES)


@pytest.fixture
def seed_table() -> np.ndarray:
    """The seed's ``(4, 2)`` float32 table ``[[1, 1], [1, 2], [2, 2], [3, 3]]`` (a fresh copy)."""
    return SEED_TABLE.copy()


@pytest.fixture
def seed_vectors() -> list[list[int]]:
    """The seed objects' vectors: the table rows at :func:`seed_indices`."""
    return [list(row) for row in SEED_VECTORS]


def _fail_a_comparison_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if REQUIRE_COMPARISONS and report.skipped and _COMPARISON_SKIP.search(str(report.longrepr)):
        report.outcome = "failed"
        report.longrepr = (
            f"JAXEMBED_REQUIRE_COMPARISONS=1 but a comparison test was skipped: {report.longrepr}"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_a_comparison_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # A module-level ``pytest.importorskip("keras", ...)`` skips the whole module at collection.
    outcome = yield
    _fail_a_comparison_skip(outcome.get_result())


# ----------------------------------------------------------------------------- the fast loop
# `pytest -m "not slow and not site and not lint"` runs the unit tests and doctests in under a
# minute on a 2-core machine. tests/slow_tests.txt lists what it leaves out: every test it names
# is marked `slow` here, so it still runs in the full suite and in CI (`.ci/run` runs plain
# `pytest`). An entry is a module path or a folder ending in `/` (every test in it: the oracle
# suites that import Keras, TensorFlow or PyTorch at the top, end-to-end suites), or `path::name`
# (a test function with all its parametrizations, or a doctest's dotted name) measured at more
# than about 0.25 s (setup + call + teardown, `--durations=0`) on a quiet machine.
# tools/slow_tests.py adds those from a durations report; tests/test_markers.py checks that every
# entry names a test that exists.
SLOW_LIST = Path(__file__).with_name("slow_tests.txt")


def read_slow_list(path: Path = SLOW_LIST) -> tuple[frozenset[str], frozenset[str]]:
    """``(modules, tests)`` of ``slow_tests.txt``: module and folder paths, and ``path::name`` entries
    (a line starting with ``!`` names a test kept in the fast loop on purpose: not slow)."""
    entries = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry and not entry.startswith("!"):
            entries.add(entry)
    return frozenset(e for e in entries if "::" not in e), frozenset(e for e in entries if "::" in e)


SLOW_MODULES, SLOW_TESTS = read_slow_list()


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else ""


def _in_slow_modules(path: str) -> bool:
    """``path`` (a module or a folder) is, or is inside, an all-slow entry of slow_tests.txt."""
    return bool(path) and any(
        path == entry or (entry.endswith("/") and (path + "/").startswith(entry)) for entry in SLOW_MODULES
    )


def _selects(markexpr: str, marks: set[str]) -> bool | None:
    """Whether ``-m markexpr`` selects a test carrying exactly ``marks`` (None: not a plain
    and/or/not expression over marker names, so nothing is assumed)."""
    try:
        tree = ast.parse(markexpr, mode="eval").body
    except SyntaxError:
        return None

    def value(node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id in marks
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not value(node.operand)
        if isinstance(node, ast.BoolOp):
            results = [value(operand) for operand in node.values]
            return all(results) if isinstance(node.op, ast.And) else any(results)
        raise ValueError(node)

    try:
        return value(tree)
    except ValueError:
        return None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under a mark expression that leaves `slow` tests out, the all-slow modules of
    slow_tests.txt are not even imported (their Keras / TensorFlow / PyTorch imports cost seconds);
    every other run collects them as usual."""
    if _in_slow_modules(_relative(collection_path, config.rootpath)):
        if _selects(config.getoption("markexpr") or "", {"slow"}) is False:
            return True
    return None


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        # The node id without its parametrization: `path::function` or `path::dotted.doctest.name`.
        if _in_slow_modules(_relative(item.path, root)) or item.nodeid.split("[", 1)[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
