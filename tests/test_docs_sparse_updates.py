"""The behaviour docs/sparse-updates.md states, checked (one test per claim)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxembed
from jaxembed import sparse

ROWS = 1000


def lowered_text(optimizer, n_ids: int) -> str:
    table = jnp.zeros((ROWS, 8))
    state = optimizer.init(table)

    def step(t, s, ids, rows):
        return optimizer.update(sparse.coalesce(ids, rows, ROWS), s, t)

    ids = jnp.zeros(n_ids, jnp.int32)  # every id the same: one distinct row touched
    return jax.jit(step).lower(table, state, ids, jnp.ones((n_ids, 8))).as_text(debug_info=True)


@pytest.mark.parametrize(("n_ids", "dense"), [(256, True), (250, True), (249, False), (100, False)])
def test_dense_path_is_chosen_from_the_id_count_not_the_distinct_rows(n_ids, dense):
    # "A batch of 256 copies of one id on a 1,000-row table takes the dense path" (dense_fraction=0.25).
    text = lowered_text(sparse.lazy(optax.adam(0.1)), n_ids)
    assert ("jaxembed_lazy_update_small_table" in text) == dense
    assert ("jaxembed_lazy_update/" in text) == (not dense)


def test_dense_fraction_none_turns_the_dense_path_off():
    text = lowered_text(sparse.lazy(optax.adam(0.1), dense_fraction=None), 256)
    assert "jaxembed_lazy_update_small_table" not in text and "jaxembed_lazy_update/" in text


def test_both_paths_give_the_same_lazy_update():
    rng = np.random.default_rng(0)
    table = jnp.asarray(rng.normal(size=(ROWS, 8)).astype(np.float32))
    ids = jnp.asarray(np.concatenate([np.full(200, 7), rng.integers(0, ROWS, 56)]))
    rows = jnp.asarray(rng.normal(size=(256, 8)).astype(np.float32))
    results = []
    for fraction in (0.25, None):
        optimizer = sparse.lazy(optax.adam(0.1), dense_fraction=fraction)
        state = optimizer.init(table)
        results.append(jax.jit(optimizer.update)(sparse.coalesce(ids, rows, ROWS), state, table)[0])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6, atol=1e-7)
    untouched = np.setdiff1d(np.arange(ROWS), np.asarray(ids))
    np.testing.assert_array_equal(np.asarray(results[0])[untouched], np.asarray(table)[untouched])


def test_jax_jit_on_the_module_and_split_jit_give_the_same_lookup():
    # "Which ways are fine": jax.jit with the module as a pytree, and split + jax.jit.
    layer = jaxembed.Embedding(1000, 16, rngs=0)
    ids = jnp.array([[1, 2, 3], [999, 0, 5]])
    graphdef, state = nnx.split(layer)
    split_jit = jax.jit(lambda state, ids: nnx.merge(graphdef, state)(ids))(state, ids)
    module_jit = jax.jit(lambda m, ids: m(ids))(layer, ids)
    np.testing.assert_array_equal(split_jit, module_jit)
    np.testing.assert_array_equal(module_jit, np.asarray(layer.embeddings[...])[np.asarray(ids)])
