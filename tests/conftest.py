"""Fixtures shared by the tests: the seed example's objects, table and vectors; the comparison switch.

The repository's root ``conftest.py`` sets the XLA flags (8 simulated CPU devices) before JAX is
imported; this one only adds fixtures and hooks.

``JAXEMBED_REQUIRE_COMPARISONS=1`` turns the skips of the torch / TensorFlow comparison tests
(when those libraries are missing) into failures, as ``JAXEMBED_REQUIRE_SITE_CHECKS=1`` does
for the site checks; ``.ci/run`` sets both.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

# The seed example (cat / dog / snake): objects -> unique vocabulary -> indices -> table rows.
SEED_OBJECTS = ["cat", "dog", "snake", "dog", "mouse", "cat", "dog", "snake", "dog"]
SEED_VOCABULARY = ["cat", "dog", "snake", "mouse"]
SEED_INDICES = [0, 1, 2, 1, 3, 0, 1, 2, 1]
SEED_TABLE = np.array([[1, 1], [1, 2], [2, 2], [3, 3]], np.float32)
SEED_VECTORS = [[1, 1], [1, 2], [2, 2], [1, 2], [3, 3], [1, 1], [1, 2], [2, 2], [1, 2]]

REQUIRE_COMPARISONS = os.environ.get("JAXEMBED_REQUIRE_COMPARISONS") == "1"
# The skip reasons of the comparison tests name the extra that installs torch / TensorFlow.
_COMPARISON_SKIP = re.compile(r"the `?compare`? extra")


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_COMPARISONS and report.skipped and _COMPARISON_SKIP.search(str(report.longrepr)):
        report.outcome = "failed"
        report.longrepr = (
            f"JAXEMBED_REQUIRE_COMPARISONS=1 but a comparison test was skipped: {report.longrepr}"
        )


# The fast loop (`pytest -m "not slow and not site and not lint"`) keeps the unit tests and
# doctests. These modules run real Keras, TensorFlow, PyTorch, gensim or FBGEMM as the oracle over
# many cases (or save and reload real files): they are all `slow`, so they run in the full suite
# and in CI, not in the edit-test loop.
ORACLE_SUITES = (
    "tests/keras_suite/",
    "tests/keras/",
    "tests/preprocessing/",
    "tests/reliability/",
    "tests/tables/test_quant.py",
    "tests/test_pretrained.py",
    "tests/test_text_modes.py",
    "tests/test_text_model.py",
    "tests/test_keras_equivalence.py",
    "tests/test_datasets_real.py",
    "tests/test_big_tables.py",
    "tests/sparse/test_rowwise.py",
    "tests/nn/test_reversible_embedding.py",
    "tests/test_docs_how_embeddings_work.py",
    "tests/test_docs_sparse_updates.py",
    "tests/test_docs_keras.py",
    "tests/test_docs_training.py",
    "tests/test_docs_readme.py",
)


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        path = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if path.startswith(ORACLE_SUITES):
            item.add_marker(pytest.mark.slow)
