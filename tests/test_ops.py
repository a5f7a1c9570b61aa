"""The functional core: both lookup paths, id checks, masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from jaxembed import ops

METHODS = ["take", "one_hot"]
ID_SHAPES = [(), (7,), (4, 6), (3, 4, 5)]


def seed_indices(objects):
    vocabulary = list(dict.fromkeys(objects))  # unique, in order of first appearance
    return vocabulary, [vocabulary.index(o) for o in objects]


def random_table(v=50, d=8, seed=0):
    return jax.random.normal(jax.random.key(seed), (v, d), jnp.float32)


def random_ids(shape, v=50, seed=1):
    return jax.random.randint(jax.random.key(seed), shape, 0, v)


@pytest.mark.parametrize("method", METHODS)
def test_seed_walkthrough(seed_objects, seed_table, seed_vectors, method):
    vocabulary, indices = seed_indices(seed_objects)
    assert vocabulary == ["cat", "dog", "snake", "mouse"]
    assert indices == [0, 1, 2, 1, 3, 0, 1, 2, 1]
    vectors = ops.lookup(jnp.asarray(seed_table), jnp.array(indices), method=method)
    np.testing.assert_array_equal(np.asarray(vectors), np.array(seed_vectors, np.float32))


def test_one_hot_row_times_matrix_selects_the_row(seed_table):
    one_hot = jax.nn.one_hot(jnp.array([3]), 4)
    row = jnp.matmul(one_hot, seed_table, precision=jax.lax.Precision.HIGHEST)
    np.testing.assert_array_equal(np.asarray(row), seed_table[[3]])


@pytest.mark.parametrize("shape", ID_SHAPES)
def test_paths_agree_exactly_in_float32(shape):
    table, ids = random_table(), random_ids(shape)
    take = ops.lookup(table, ids, method="take")
    one_hot = ops.lookup(table, ids, method="one_hot")
    assert take.shape == (*shape, 8)
    np.testing.assert_array_equal(np.asarray(take), np.asarray(one_hot))
    np.testing.assert_array_equal(np.asarray(take), np.asarray(table)[np.asarray(ids)])


@pytest.mark.parametrize("shape", ID_SHAPES)
def test_gradients_agree_exactly_and_are_dense_only_where_looked_up(shape):
    table, ids = random_table(), random_ids(shape)
    weights = jax.random.normal(jax.random.key(2), (*shape, 8))

    def loss(method):
        return lambda t, i: jnp.sum(jnp.sin(ops.lookup(t, i, method=method)) * weights)

    grads = {m: jax.jit(jax.grad(loss(m)))(table, ids) for m in METHODS}
    np.testing.assert_array_equal(np.asarray(grads["take"]), np.asarray(grads["one_hot"]))
    touched = np.zeros(50, bool)
    touched[np.asarray(ids).ravel()] = True
    nonzero_rows = np.any(np.asarray(grads["take"]) != 0, axis=1)
    np.testing.assert_array_equal(nonzero_rows, touched)


@pytest.mark.parametrize("method", METHODS)
def test_vmap_matches_batched_call(method):
    table, ids = random_table(), random_ids((4, 6))
    batched = ops.lookup(table, ids, method=method)
    mapped = jax.vmap(lambda i: ops.lookup(table, i, method=method))(ids)
    np.testing.assert_array_equal(np.asarray(batched), np.asarray(mapped))
    grads = jax.vmap(jax.grad(lambda t, i: ops.lookup(t, i, method=method).sum()), in_axes=(None, 0))(
        table, ids
    )
    assert grads.shape == (4, 50, 8)
    np.testing.assert_array_equal(
        np.asarray(grads.sum(0)).sum(1), np.bincount(np.asarray(ids).ravel(), minlength=50) * 8.0
    )


def test_one_hot_uses_highest_precision_in_its_jaxpr():
    jaxpr = jax.make_jaxpr(lambda t, i: ops.one_hot_lookup(t, i))(random_table(), random_ids((3,)))
    assert "HIGHEST" in str(jaxpr)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "ids, reported",
    [
        ([-1], "-1 at index (0,)"),
        ([50], "50 at index (0,)"),
        ([3, -7, 51], "-7 at index (1,), 51 at index (2,)"),
    ],
)
def test_concrete_out_of_range_ids_raise_naming_value_and_range(method, ids, reported):
    with pytest.raises(ValueError, match=r"range \[0, 49\] \(input_dim=50\)") as info:
        ops.lookup(random_table(), jnp.array(ids), method=method)
    assert reported in str(info.value)


def test_error_lists_at_most_five_bad_ids_and_counts_the_rest():
    with pytest.raises(ValueError, match=r"and 3 more"):
        ops.lookup(random_table(), np.arange(-8, 0))


@pytest.mark.parametrize("method", METHODS)
def test_traced_invalid_ids_give_nan_rows_never_wrap(method):
    table = random_table()
    out = jax.jit(lambda t, i: ops.lookup(t, i, method=method))(table, jnp.array([-1, 50, 3, -50]))
    out = np.asarray(out)
    assert np.isnan(out[[0, 1, 3]]).all()
    np.testing.assert_array_equal(out[2], np.asarray(table)[3])


def test_traced_invalid_ids_contribute_no_gradient():
    grad = jax.jit(jax.grad(lambda t, i: jnp.nansum(ops.lookup(t, i))))(random_table(), jnp.array([-1, 2]))
    assert np.count_nonzero(np.any(np.asarray(grad) != 0, axis=1)) == 1


@pytest.mark.parametrize("method", METHODS)
def test_checkify_mode_raises_under_jit(method):
    def f(t, i):
        return ops.lookup(t, i, method=method, invalid_ids="checkify")

    checked = jax.jit(checkify.checkify(f))
    err, _ = checked(random_table(), jnp.array([1, 2]))
    err.throw()  # valid ids: no error
    err, _ = checked(random_table(), jnp.array([1, -3]))
    with pytest.raises(checkify.JaxRuntimeError, match=r"range \[0, 49\].*invalid id -3 at flat index 1"):
        err.throw()


def test_integral_float_ids_are_cast_like_keras(seed_table):
    out = ops.lookup(jnp.asarray(seed_table), jnp.array([3.0, 0.0]))
    np.testing.assert_array_equal(np.asarray(out), seed_table[[3, 0]])


@pytest.mark.parametrize("bad", [[1.5], [0.0, float("nan")], [float("inf")]])
def test_non_integral_float_ids_raise(seed_table, bad):
    with pytest.raises(ValueError, match="whole numbers"):
        ops.lookup(jnp.asarray(seed_table), np.array(bad, np.float32))


def test_traced_non_integral_float_ids_give_nan(seed_table):
    out = jax.jit(ops.lookup)(jnp.asarray(seed_table), jnp.array([1.5, 2.0]))
    assert np.isnan(np.asarray(out[0])).all()
    np.testing.assert_array_equal(np.asarray(out[1]), seed_table[2])


@pytest.mark.parametrize("ids", [np.array([True, False]), np.array([1 + 2j]), np.array(["a"])])
def test_non_numeric_ids_raise_type_error(seed_table, ids):
    with pytest.raises(TypeError, match="must be integers"):
        ops.lookup(jnp.asarray(seed_table), ids)


def test_unknown_lookup_and_invalid_ids_mode(seed_table):
    with pytest.raises(
        ValueError, match=r"`lookup` must be one of \('take', 'one_hot'\). Received: lookup='gather'"
    ):
        ops.lookup(jnp.asarray(seed_table), [0], method="gather")
    with pytest.raises(ValueError, match=r"`invalid_ids` must be one of"):
        ops.lookup(jnp.asarray(seed_table), [0], invalid_ids="clip")


def test_compute_mask_and_masked_mean():
    ids = jnp.array([[3, 1, 0, 0], [0, 0, 0, 0]])
    mask = ops.compute_mask(ids, mask_zero=True)
    np.testing.assert_array_equal(np.asarray(mask), [[True, True, False, False], [False] * 4])
    assert ops.compute_mask(ids, mask_zero=False) is None
    x = jnp.arange(8.0).reshape(2, 4, 1)
    np.testing.assert_allclose(np.asarray(ops.masked_mean(x, mask)), [[0.5], [0.0]], rtol=0, atol=0)
