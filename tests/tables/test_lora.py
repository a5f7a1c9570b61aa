"""LoRA on the Embedding (jaxembed.tables + Embedding.enable_lora), against Keras 3."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxembed
from jaxembed import tables

keras = pytest.importorskip("keras", reason="the differential tests need keras (KERAS_BACKEND=jax)")

BASE = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], np.float32)
A = np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]], np.float32)
B = np.array([[0.5, 0.5], [0.6, 0.6]], np.float32)


def _ours(alpha=3):
    layer = jaxembed.Embedding(3, 2, weights=BASE)
    layer.enable_lora(2, lora_alpha=alpha, rngs=0)
    layer.lora_embeddings_a[...] = A
    layer.lora_embeddings_b[...] = B
    return layer


def test_keras_example_effective_table():
    # Keras's own example: alpha 3, rank 2 -> base + 1.5 * A @ B.
    layer = _ours()
    expected = BASE + 1.5 * (A @ B)
    np.testing.assert_allclose(np.asarray(layer.effective_table()), expected, rtol=0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(layer(np.array([0, 1, 2]))), expected, rtol=0, atol=1e-7)

    keras_layer = keras.layers.Embedding(3, 2, weights=BASE)
    keras_layer.enable_lora(2, lora_alpha=3)
    keras_layer.lora_embeddings_a.assign(A)
    keras_layer.lora_embeddings_b.assign(B)
    ids = np.array([[2, 0], [1, 1]])
    np.testing.assert_allclose(np.asarray(layer(ids)), np.asarray(keras_layer(ids)), rtol=0, atol=1e-7)


def test_state_after_enable_lora():
    layer = jaxembed.Embedding(10, 4, rngs=0)
    table = layer.embeddings[...]
    layer.enable_lora(3)
    assert isinstance(layer.embeddings, jaxembed.FrozenParam)
    assert isinstance(layer.lora_embeddings_a, nnx.Param) and layer.lora_embeddings_a.shape == (10, 3)
    assert isinstance(layer.lora_embeddings_b, nnx.Param) and layer.lora_embeddings_b.shape == (3, 4)
    assert layer.lora_embeddings_a.dtype == jnp.float32 and layer.lora_alpha == 3 and layer.lora_enabled
    np.testing.assert_array_equal(np.asarray(layer.lora_embeddings_b[...]), 0)  # starts at the base table
    np.testing.assert_array_equal(np.asarray(layer(np.arange(10))), np.asarray(table))
    # he_uniform: |A| <= sqrt(6 / fan_in) with fan_in = input_dim.
    assert float(jnp.abs(layer.lora_embeddings_a[...]).max()) <= np.sqrt(6 / 10)
    assert set(nnx.state(layer, nnx.Param).keys()) == {"lora_embeddings_a", "lora_embeddings_b"}


def test_constructor_arguments_and_config_match_keras():
    ours = jaxembed.Embedding(10, 4, lora_rank=2, lora_alpha=4, rngs=0)
    assert ours.lora_rank == 2 and ours.lora_alpha == 4
    keras_layer = keras.layers.Embedding(10, 4, name="embedding")
    keras_layer.build()
    keras_layer.enable_lora(2, lora_alpha=4)
    assert ours.get_config() == keras_layer.get_config() | {"name": "embedding"}
    rebuilt = jaxembed.Embedding.from_config(keras_layer.get_config(), rngs=0)
    assert rebuilt.lora_rank == 2 and rebuilt.lora_alpha == 4
    assert jaxembed.Embedding(10, 4, lora_rank=2, rngs=0).lora_alpha == 2  # default alpha = rank


def test_errors_match_keras():
    with pytest.raises(ValueError, match="Lora is incompatible with embedding constraints"):
        jaxembed.Embedding(3, 2, embeddings_constraint="non_neg", rngs=0).enable_lora(2)
    layer = jaxembed.Embedding(3, 2, rngs=0)
    layer.enable_lora(2)
    with pytest.raises(ValueError, match="lora is already enabled. This can only be done once per layer."):
        layer.enable_lora(2)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"`rank` must be a positive integer. Received: rank="):
            jaxembed.Embedding(3, 2, rngs=0).enable_lora(bad)
    with pytest.raises(
        ValueError, match=r"`lora_alpha` must be a positive finite number. Received: lora_alpha=0\."
    ):
        jaxembed.Embedding(3, 2, rngs=0).enable_lora(2, lora_alpha=0)
    with pytest.raises(ValueError, match="Unknown initializer"):
        jaxembed.Embedding(3, 2, rngs=0).enable_lora(2, a_initializer="nope")


def test_training_updates_only_a_and_b():
    layer = jaxembed.Embedding(20, 4, rngs=0)
    layer.enable_lora(2, rngs=1)
    base = layer.embeddings[...]
    a0, b0 = layer.lora_embeddings_a[...], layer.lora_embeddings_b[...]
    optimizer = nnx.Optimizer(layer, optax.sgd(0.5), wrt=nnx.Param)
    ids = jnp.array([[1, 2, 3], [4, 5, 6]])
    target = jnp.ones((2, 3, 4))

    @nnx.jit
    def step(model, opt):
        def loss_fn(m):
            return jnp.mean((m(ids) - target) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(layer, optimizer)) for _ in range(5)]
    assert losses[-1] < losses[0]
    np.testing.assert_array_equal(np.asarray(layer.embeddings[...]), np.asarray(base))
    assert not np.array_equal(np.asarray(layer.lora_embeddings_b[...]), np.asarray(b0))
    assert not np.array_equal(np.asarray(layer.lora_embeddings_a[...]), np.asarray(a0))
    # Rows that were never looked up keep their A rows (row-sparse gradient of A).
    np.testing.assert_array_equal(np.asarray(layer.lora_embeddings_a[10:]), np.asarray(a0[10:]))


def test_regularizer_applies_to_the_factors_like_keras():
    layer = jaxembed.Embedding(3, 2, embeddings_regularizer="l2", weights=BASE)
    layer.enable_lora(2, rngs=0)
    layer.lora_embeddings_a[...] = A
    layer.lora_embeddings_b[...] = B
    keras_layer = keras.layers.Embedding(3, 2, embeddings_regularizer="l2", weights=BASE)
    keras_layer.enable_lora(2)
    keras_layer.lora_embeddings_a.assign(A)
    keras_layer.lora_embeddings_b.assign(B)
    expected = sum(float(loss) for loss in keras_layer.losses)
    np.testing.assert_allclose(float(jaxembed.regularization_loss(layer)), expected, rtol=1e-6)


def test_lookup_delta_is_o_batch_and_equals_the_merged_table():
    rng = np.random.default_rng(0)
    table, a, b = (rng.normal(size=s).astype(np.float32) for s in [(1000, 8), (1000, 4), (4, 8)])
    ids = rng.integers(0, 1000, size=(5, 3))
    merged = tables.merged_table(jnp.asarray(table), a, b, rank=4, alpha=8)
    via_rows = table[ids] + tables.lookup_delta(a, b, ids, rank=4, alpha=8)
    np.testing.assert_allclose(np.asarray(via_rows), np.asarray(merged)[ids], rtol=1e-6, atol=1e-6)
    jaxpr = jax.make_jaxpr(lambda i: tables.lookup_delta(a, b, i, rank=4, alpha=8))(jnp.asarray(ids))
    assert all(1000 not in v.aval.shape for e in jaxpr.eqns for v in e.outvars)


def test_trainable_false_freezes_the_factors_too():
    layer = jaxembed.Embedding(5, 2, lora_rank=1, rngs=0)
    layer.trainable = False
    assert nnx.state(layer, nnx.Param) == nnx.State({})
    layer.trainable = True
    assert set(nnx.state(layer, nnx.Param).keys()) == {"lora_embeddings_a", "lora_embeddings_b"}
    assert isinstance(layer.embeddings, jaxembed.FrozenParam)


def test_get_and_set_weights_with_lora():
    layer = _ours()
    weights = layer.get_weights()
    assert [w.shape for w in weights] == [(3, 2), (3, 2), (2, 2)]
    other = jaxembed.Embedding(3, 2, lora_rank=2, lora_alpha=3, rngs=5)
    other.set_weights(weights)
    np.testing.assert_array_equal(np.asarray(other(np.arange(3))), np.asarray(layer(np.arange(3))))
    with pytest.raises(
        ValueError, match=r"expects 3 arrays \(embeddings, lora_embeddings_a, lora_embeddings_b\)"
    ):
        other.set_weights(weights[:1])
