"""The Linen Embedding gives the NNX module's numbers, configs and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxembed
from jaxembed import linen


@pytest.mark.parametrize("lookup", ["take", "one_hot"])
@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 4)])
def test_same_numbers_as_nnx(lookup, shape):
    table = np.asarray(jax.random.normal(jax.random.key(0), (12, 5)))
    ids = jax.random.randint(jax.random.key(1), shape, 0, 12)
    module = linen.Embedding(12, 5, weights=table, lookup=lookup)
    variables = module.init(jax.random.key(2), ids)
    np.testing.assert_array_equal(np.asarray(variables["params"]["embeddings"]), table)
    nnx_layer = jaxembed.Embedding(12, 5, weights=table, lookup=lookup)
    np.testing.assert_array_equal(np.asarray(module.apply(variables, ids)), np.asarray(nnx_layer(ids)))


def test_seed_snippet_and_default_init():
    module = linen.Embedding(1000, 64, input_length=50)
    ids = jnp.zeros((8, 50), jnp.int32)
    variables = module.init(jax.random.key(0), ids)
    table = np.asarray(variables["params"]["embeddings"])
    assert table.shape == (1000, 64) and table.min() >= -0.05 and table.max() < 0.05
    assert module.apply(variables, ids).shape == (8, 50, 64)
    assert module.compute_output_shape((None, None)) == (None, 50, 64)
    with pytest.raises(ValueError, match="`input_length` is 50"):
        module.apply(variables, jnp.zeros((8, 49), jnp.int32))


def test_initial_table_is_reproducible_from_the_key():
    def table(seed):
        return np.asarray(
            linen.Embedding(20, 3).init(jax.random.key(seed), jnp.array([0]))["params"]["embeddings"]
        )

    np.testing.assert_array_equal(table(4), table(4))
    assert not np.array_equal(table(4), table(5))


def test_config_matches_nnx_and_round_trips():
    kwargs = dict(embeddings_regularizer="l2", mask_zero=True, input_length=7, dtype="mixed_bfloat16")
    module = linen.Embedding(30, 5, name="words", **kwargs)
    assert module.get_config() == jaxembed.Embedding(30, 5, name="words", rngs=0, **kwargs).get_config()
    assert linen.Embedding.from_config(module.get_config()).get_config() == module.get_config()


def test_mask_and_dtypes():
    module = linen.Embedding(10, 4, mask_zero=True, dtype="mixed_bfloat16")
    ids = jnp.array([[3, 0]])
    variables = module.init(jax.random.key(0), ids)
    assert variables["params"]["embeddings"].dtype == jnp.float32
    assert module.apply(variables, ids).dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(module.compute_mask(ids)), [[True, False]])


def test_regularization_penalties_are_sown_into_losses(seed_table):
    module = linen.Embedding(4, 2, weights=seed_table, embeddings_regularizer="l2", activity_regularizer="l1")
    ids = jnp.array([[0, 3]])
    variables = module.init(jax.random.key(0), ids)
    out, state = module.apply({"params": variables["params"]}, ids, mutable=["losses"])
    losses = state["losses"]
    np.testing.assert_allclose(
        float(losses["embeddings_regularization"]), 0.01 * np.sum(seed_table**2), rtol=1e-6
    )
    np.testing.assert_allclose(
        float(losses["activity_regularization"]), 0.01 * np.sum(np.abs(out)) / 1, rtol=1e-6
    )


def test_trainable_false_stops_gradients(seed_table):
    module = linen.Embedding(4, 2, weights=seed_table, trainable=False)
    variables = module.init(jax.random.key(0), jnp.array([1]))
    grads = jax.grad(lambda p: jnp.sum(module.apply({"params": p}, jnp.array([1, 2]))))(variables["params"])
    assert not np.any(np.asarray(grads["embeddings"]))


def test_gradient_only_in_looked_up_rows(seed_table):
    module = linen.Embedding(4, 2, weights=seed_table)
    variables = module.init(jax.random.key(0), jnp.array([1]))
    grads = jax.grad(lambda p: jnp.sum(module.apply({"params": p}, jnp.array([1, 1, 3]))))(
        variables["params"]
    )
    np.testing.assert_array_equal(np.asarray(grads["embeddings"]), [[0, 0], [2, 2], [0, 0], [1, 1]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_dim": 0}, r"`input_dim` must be a positive integer. Received: input_dim=0"),
        (
            {"output_dim": 2.5},
            r"`output_dim` must be a positive integer. Received: output_dim=2.5 \(of type float\)",
        ),
        ({"embeddings_initializer": "nope"}, r"Unknown initializer 'nope'"),
        ({"lookup": "dense"}, r"`lookup` must be one of"),
    ],
)
def test_bad_arguments_raise_when_the_module_is_made(kwargs, message):
    arguments = {"input_dim": 10, "output_dim": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        linen.Embedding(**arguments)


def test_bad_ids_raise(seed_table):
    module = linen.Embedding(4, 2, weights=seed_table)
    variables = module.init(jax.random.key(0), jnp.array([1]))
    with pytest.raises(ValueError, match=r"range \[0, 3\].*7 at index \(0,\)"):
        module.apply(variables, jnp.array([7]))
    out = jax.jit(module.apply)(variables, jnp.array([-1]))
    assert np.isnan(np.asarray(out)).all()
