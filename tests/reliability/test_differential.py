"""Property-based differential tests: lookups and bags against NumPy and torch, non-finite tables included.

Hypothesis draws tables (with NaN, +inf and -inf sprinkled in), id arrays of any rank and
extreme integer ids; every path of jaxembed must give NumPy's ``table[ids]`` bit for bit
(and torch's ``F.embedding`` / ``F.embedding_bag``), and ids outside the table -- however
large, whatever their dtype -- must be refused on the host, never wrapped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxembed import ops


@st.composite
def tables(draw):
    # A few shapes only, so that compiled programs are reused across examples.
    rows = draw(st.sampled_from([1, 5, 12]))
    cols = draw(st.sampled_from([1, 3]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(rows, cols)).astype(np.float32)
    if draw(st.booleans()):  # a non-finite table
        for value in (np.nan, np.inf, -np.inf):
            count = draw(st.integers(0, 2))
            table[rng.integers(0, rows, count), rng.integers(0, cols, count)] = value
    return table


@st.composite
def table_and_ids(draw):
    table = draw(tables())
    shape = draw(st.sampled_from([(), (0,), (4,), (2, 3), (2, 0, 2)]))
    ids = draw(
        st.integers(0, 2**31 - 1).map(lambda s: np.random.default_rng(s).integers(0, len(table), shape))
    )
    dtype = draw(st.sampled_from([np.int32, np.int64, np.uint8, np.uint32]))
    return table, ids.astype(dtype) if len(table) <= np.iinfo(dtype).max else ids


@settings(max_examples=20, deadline=None)
@given(table_and_ids(), st.sampled_from(["take", "one_hot"]))
def test_lookup_equals_numpy_indexing_for_any_table(case, method):
    table, ids = case
    expected = table[ids]
    got = np.asarray(ops.lookup(jnp.asarray(table), ids, method=method))
    np.testing.assert_array_equal(got, expected)  # NaN matches NaN, inf matches inf
    jitted = np.asarray(jax.jit(lambda t, i: ops.lookup(t, i, method=method))(jnp.asarray(table), ids))
    np.testing.assert_array_equal(jitted, expected)


@settings(max_examples=8, deadline=None)
@given(table_and_ids())
def test_lookup_equals_torch_embedding(case):
    torch = pytest.importorskip("torch", reason="the torch comparison needs the compare extra")
    table, ids = case
    expected = torch.nn.functional.embedding(torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(table))
    for method in ("take", "one_hot"):
        got = np.asarray(ops.lookup(jnp.asarray(table), ids, method=method))
        np.testing.assert_array_equal(got, expected.numpy())


@settings(max_examples=25, deadline=None)
@given(
    tables(), st.integers(1, 5), st.integers(1, 4), st.sampled_from(["sum", "mean"]), st.integers(0, 10**6)
)
def test_embedding_bag_equals_torch(table, bags, bag_size, combiner, seed):
    torch = pytest.importorskip("torch", reason="the torch comparison needs the compare extra")
    table = np.nan_to_num(table, nan=0.5, posinf=2.0, neginf=-2.0)  # bags sum rows: finite here
    ids = np.random.default_rng(seed).integers(0, len(table), (bags, bag_size))
    expected = torch.nn.functional.embedding_bag(
        torch.from_numpy(ids), torch.from_numpy(table), mode=combiner
    ).numpy()
    for method in ("take", "one_hot"):
        got = np.asarray(ops.embedding_bag(jnp.asarray(table), ids, combiner=combiner, method=method))
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 50),
    st.one_of(st.integers(-(2**63), -1), st.integers(2**31 - 1, 2**63 - 1)),
    st.sampled_from([np.int64, "list"]),
)
def test_ids_outside_the_table_are_refused_never_wrapped(rows, bad, kind):
    if bad < rows and bad >= 0:
        return
    table = jnp.zeros((rows, 2))
    ids = [0, bad] if kind == "list" else np.array([0, bad], np.int64)
    for method in ("take", "one_hot"):
        with pytest.raises(ValueError, match=rf"range \[0, {rows - 1}\].*{bad} at index \(1,\)"):
            ops.lookup(table, ids, method=method)


@settings(max_examples=12, deadline=None)
@given(tables())
def test_one_hot_gradient_equals_take_gradient_for_any_table(table):
    ids = np.arange(len(table))[::-1]
    weights = np.random.default_rng(len(table)).normal(size=(len(ids), table.shape[1])).astype(np.float32)
    grads = [
        jax.grad(lambda t, m=m: jnp.sum(ops.lookup(t, ids, method=m) * weights))(jnp.asarray(table))
        for m in ("take", "one_hot")
    ]
    np.testing.assert_array_equal(np.asarray(grads[0]), np.asarray(grads[1]))
