"""The NNX Embedding: Keras arguments, shapes, dtypes, training behaviour, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxembed
from jaxembed import Embedding, Flatten, FrozenParam


def test_seed_snippet_runs_as_written():
    layer = Embedding(1000, 64, input_length=50)
    ids = np.random.default_rng(0).integers(0, 1000, size=(32, 50))
    out = layer(ids)
    assert out.shape == (32, 50, 64) and out.dtype == jnp.float32
    assert Flatten()(out).shape == (32, 3200)
    assert layer.compute_output_shape((None, 50)) == (None, 50, 64)
    assert layer.compute_output_shape((None, None)) == (None, 50, 64)
    assert layer.embeddings[...].shape == (1000, 64)
    assert layer.input_length == 50


@pytest.mark.parametrize("lookup", ["take", "one_hot"])
@pytest.mark.parametrize("as_list", [False, True], ids=["array", "list"])
def test_seed_vectors_from_given_weights(seed_table, seed_vectors, seed_indices, lookup, as_list):
    layer = Embedding(4, 2, weights=[seed_table] if as_list else seed_table, lookup=lookup)
    np.testing.assert_array_equal(np.asarray(layer(jnp.array(seed_indices))), seed_vectors)


def test_rngs_optional_and_reproducible():
    a, b = Embedding(100, 8), Embedding(100, 8)
    assert not np.array_equal(np.asarray(a.embeddings[...]), np.asarray(b.embeddings[...]))
    tables = [
        Embedding(100, 8, rngs=nnx.Rngs(3)).embeddings[...],
        Embedding(100, 8, rngs=nnx.Rngs(params=3)).embeddings[...],
        Embedding(100, 8, rngs=3).embeddings[...],
    ]
    np.testing.assert_array_equal(np.asarray(tables[0]), np.asarray(tables[1]))
    np.testing.assert_array_equal(np.asarray(tables[0]), np.asarray(tables[2]))
    key = jax.random.key(7)
    np.testing.assert_array_equal(
        np.asarray(Embedding(10, 3, rngs=key).embeddings[...]),
        np.asarray(Embedding(10, 3, rngs=key).embeddings[...]),
    )


def test_default_initializer_is_keras_uniform():
    table = np.asarray(Embedding(2000, 50, rngs=0).embeddings[...])
    assert table.min() >= -0.05 and table.max() < 0.05
    assert abs(table.mean()) < 1e-3
    np.testing.assert_allclose(table.var(), 0.1**2 / 12, rtol=0.02)


def test_seeded_initializer_ignores_rngs_like_keras():
    init = jaxembed.keras.initializers.RandomNormal(seed=5)
    a = Embedding(10, 3, embeddings_initializer=init, rngs=0).embeddings[...]
    b = Embedding(10, 3, embeddings_initializer=init, rngs=1).embeddings[...]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_callable_initializer():
    layer = Embedding(10, 3, embeddings_initializer=jax.nn.initializers.constant(0.5), rngs=0)
    np.testing.assert_array_equal(np.asarray(layer.embeddings[...]), np.full((10, 3), 0.5, np.float32))


@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 3, 4)])
def test_output_shape_is_ids_shape_plus_output_dim(shape):
    layer = Embedding(10, 6, rngs=0)
    ids = np.zeros(shape, np.int32)
    assert layer(ids).shape == (*shape, 6)
    assert layer.compute_output_shape(shape) == (*shape, 6)


def test_input_length_is_checked_against_trailing_axes():
    layer = Embedding(10, 4, input_length=5, rngs=0)
    with pytest.raises(
        ValueError,
        match=r"`input_length` is 5, but the input has shape \(2, 4\).*axis 1 has length 4, expected 5",
    ):
        layer(np.zeros((2, 4), np.int32))
    with pytest.raises(ValueError, match=r"`input_length` is 5, but the input has shape \(3, 4\)"):
        layer.compute_output_shape((3, 4))
    multi = Embedding(10, 4, input_length=(3, 2), rngs=0)
    assert multi(np.zeros((7, 3, 2), np.int32)).shape == (7, 3, 2, 4)
    assert multi.compute_output_shape((None, None, None)) == (None, 3, 2, 4)


def test_compute_dtype_and_param_dtype():
    layer = Embedding(10, 4, dtype="bfloat16", rngs=0)  # compute dtype only: bfloat16 over a float32 table
    assert layer.embeddings[...].dtype == jnp.float32 and layer(np.array([1])).dtype == jnp.bfloat16
    assert layer.get_config()["dtype"]["config"]["name"] == "mixed_bfloat16"
    keras_policy = {"class_name": "DTypePolicy", "config": {"name": "bfloat16"}}  # Keras: both bfloat16
    assert Embedding(10, 4, dtype=keras_policy, rngs=0).embeddings[...].dtype == jnp.bfloat16
    mixed = Embedding(10, 4, dtype="mixed_bfloat16", rngs=0)
    assert mixed.embeddings[...].dtype == jnp.float32
    out = mixed(np.array([1, 2]))
    assert out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(
        np.asarray(out), np.asarray(mixed.embeddings[...][jnp.array([1, 2])].astype(jnp.bfloat16))
    )
    explicit = Embedding(10, 4, dtype=jnp.bfloat16, param_dtype=jnp.float32, rngs=0)
    assert explicit.embeddings[...].dtype == jnp.float32 and explicit(np.array([0])).dtype == jnp.bfloat16
    assert explicit.get_config()["dtype"]["config"]["name"] == "mixed_bfloat16"
    stored_half = Embedding(10, 4, param_dtype="bfloat16", rngs=0)
    assert stored_half.embeddings[...].dtype == jnp.bfloat16
    assert stored_half.get_config()["dtype"]["config"]["name"] == "bfloat16"


def test_mask_zero():
    layer = Embedding(10, 4, mask_zero=True, rngs=0)
    ids = np.array([[4, 2, 0, 0]])
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(ids)), [[True, True, False, False]])
    assert Embedding(10, 4, rngs=0).compute_mask(ids) is None


def test_gradient_only_in_looked_up_rows():
    layer = Embedding(20, 3, rngs=0)
    ids = jnp.array([[1, 5, 5], [7, 1, 0]])

    grads = nnx.grad(lambda m: jnp.sum(m(ids) ** 2))(layer)
    g = np.asarray(grads["embeddings"][...])
    touched = np.zeros(20, bool)
    touched[[0, 1, 5, 7]] = True
    np.testing.assert_array_equal(np.any(g != 0, axis=1), touched)
    np.testing.assert_allclose(g[5], 2 * 2 * np.asarray(layer.embeddings[...])[5], rtol=1e-6)


def test_works_under_jit_grad_vmap():
    layer = Embedding(20, 3, rngs=0)
    ids = jnp.array([[1, 2], [3, 4]])
    eager = layer(ids)
    np.testing.assert_array_equal(np.asarray(nnx.jit(lambda m, i: m(i))(layer, ids)), np.asarray(eager))
    graphdef, state = nnx.split(layer)
    jitted = jax.jit(lambda s, i: nnx.merge(graphdef, s)(i))
    np.testing.assert_array_equal(np.asarray(jitted(state, ids)), np.asarray(eager))
    np.testing.assert_array_equal(np.asarray(jax.vmap(layer)(ids)), np.asarray(eager))
    g = jax.grad(lambda s: jnp.sum(nnx.merge(graphdef, s)(ids)))(state)
    assert g["embeddings"][...].shape == (20, 3)


def test_trainable_false_freezes_the_table():
    layer = Embedding(6, 2, trainable=False, rngs=0)
    assert isinstance(layer.embeddings, FrozenParam) and not isinstance(layer.embeddings, nnx.Param)
    before = np.asarray(layer.embeddings[...]).copy()
    assert nnx.state(layer, nnx.Param) == nnx.State({})
    grads = jax.grad(lambda s: jnp.sum(nnx.merge(nnx.graphdef(layer), s)(jnp.array([1, 2]))))(
        nnx.state(layer)
    )
    assert not np.any(np.asarray(grads["embeddings"][...]))
    optimizer = nnx.Optimizer(layer, optax.adam(0.1), wrt=nnx.Param)
    optimizer.update(layer, nnx.grad(lambda m: jnp.sum(m(jnp.array([1]))))(layer))
    np.testing.assert_array_equal(np.asarray(layer.embeddings[...]), before)
    layer.trainable = True
    assert isinstance(layer.embeddings, nnx.Param) and layer.get_config()["trainable"] is True


def test_regularization_loss_and_constraints_helpers():
    table = np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)
    layer = Embedding(
        2,
        2,
        weights=table,
        embeddings_regularizer="l1_l2",
        activity_regularizer=jaxembed.keras.regularizers.L2(0.5),
    )
    assert float(jaxembed.regularization_loss(layer)) == 0.0  # l1_l2 defaults are 0, no call yet
    layer = Embedding(
        2,
        2,
        weights=table,
        embeddings_regularizer="l2",
        activity_regularizer=jaxembed.keras.regularizers.L2(0.5),
    )
    out = layer(jnp.array([[0, 1, 1]]))
    expected = 0.01 * np.sum(table**2) + 0.5 * float(jnp.sum(out**2)) / 1
    np.testing.assert_allclose(float(jaxembed.regularization_loss(layer)), expected, rtol=1e-6)
    constrained = Embedding(
        2,
        2,
        weights=table,
        embeddings_constraint={"class_name": "MaxNorm", "config": {"max_value": 1.0, "axis": 1}},
    )
    jaxembed.apply_constraints(constrained)
    np.testing.assert_allclose(
        np.linalg.norm(np.asarray(constrained.embeddings[...]), axis=1), [1.0, 1.0], rtol=1e-5
    )


def test_get_set_weights(seed_table):
    layer = Embedding(4, 2, rngs=0)
    layer.set_weights([seed_table])
    np.testing.assert_array_equal(layer.get_weights()[0], seed_table)
    with pytest.raises(
        ValueError, match=r"shape \(input_dim, output_dim\) = \(4, 2\). Received an array of shape \(2, 4\)"
    ):
        layer.set_weights([seed_table.T])


def test_config_round_trip():
    layer = Embedding(
        30,
        5,
        embeddings_initializer="he_normal",
        embeddings_regularizer="l2",
        activity_regularizer="l1",
        embeddings_constraint="unit_norm",
        mask_zero=True,
        input_length=7,
        name="words",
        lookup="one_hot",
        dtype="mixed_bfloat16",
        rngs=0,
    )
    config = layer.get_config()
    assert config["input_length"] == 7 and config["lookup"] == "one_hot" and config["name"] == "words"
    clone = Embedding.from_config(config)
    assert clone.get_config() == config
    assert clone.spec == layer.spec


def test_default_config_has_only_keras_keys():
    keys = set(Embedding(3, 2, rngs=0).get_config())
    assert keys == {
        "name",
        "trainable",
        "dtype",
        "input_dim",
        "output_dim",
        "embeddings_initializer",
        "embeddings_regularizer",
        "activity_regularizer",
        "embeddings_constraint",
        "mask_zero",
        "quantization_config",
    }


BAD_SIZES = [0, -3, 3.7, 2.0, True, "10", None, np.float32(4)]


@pytest.mark.parametrize("arg", ["input_dim", "output_dim"])
@pytest.mark.parametrize("value", BAD_SIZES)
def test_bad_sizes_raise_keras_style_messages(arg, value):
    kwargs = {"input_dim": 10, "output_dim": 4, arg: value}
    with pytest.raises(
        ValueError,
        match=rf"`{arg}` must be a positive integer. Received: {arg}=.*\(of type {type(value).__name__}\)",
    ):
        Embedding(**kwargs)


def test_numpy_integer_sizes_are_accepted():
    assert Embedding(np.int64(10), np.int32(4), rngs=0).embeddings[...].shape == (10, 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"embeddings_initializer": "unifrom"}, r"Unknown initializer 'unifrom'. Valid names: .*uniform"),
        ({"embeddings_regularizer": "l3"}, r"Unknown regularizer 'l3'. Valid names: .*l1_l2"),
        ({"embeddings_constraint": "maxnorm"}, r"Unknown constraint 'maxnorm'. Valid names: .*max_norm"),
        ({"activity_regularizer": 3}, r"Could not interpret regularizer identifier 3"),
        ({"lookup": "gather"}, r"`lookup` must be one of \('take', 'one_hot'\)"),
        ({"weights": np.zeros((4, 3))}, r"`weights` must have shape \(input_dim, output_dim\) = \(10, 4\)"),
        ({"dtype": "int32"}, r"`dtype` must be a floating-point dtype"),
        ({"param_dtype": "int8"}, r"`param_dtype` must be a floating-point dtype"),
        ({"mask_zero": "yes"}, r"`mask_zero` must be a bool"),
        ({"input_length": 0}, r"`input_length` must be a positive integer"),
        ({"rngs": "seed"}, r"`rngs` must be an nnx.Rngs, an integer seed"),
    ],
)
def test_bad_arguments_raise_at_construction(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Embedding(10, 4, **kwargs)


def test_bad_ids_raise_through_the_layer(seed_table):
    layer = Embedding(4, 2, weights=seed_table)
    with pytest.raises(
        ValueError, match=r"range \[0, 3\] \(input_dim=4\). Received out-of-range ids: -1 at index \(1,\)"
    ):
        layer(jnp.array([0, -1]))
    with pytest.raises(ValueError, match="whole numbers"):
        layer(jnp.array([0.5]))
    out = nnx.jit(lambda m, i: m(i))(layer, jnp.array([-1, 4, 2]))
    assert np.isnan(np.asarray(out[:2])).all()
    np.testing.assert_array_equal(np.asarray(out[2]), seed_table[2])


def test_jitted_lookup_traces_once_for_new_ids_and_tables():
    layer = Embedding(50, 4, rngs=0)
    graphdef, state = nnx.split(layer)
    traces = []

    @jax.jit
    def forward(state, ids):
        traces.append(1)
        return nnx.merge(graphdef, state)(ids)

    for seed in range(4):
        ids = jax.random.randint(jax.random.key(seed), (8, 3), 0, 50)
        forward(state, ids).block_until_ready()
        state = jax.tree.map(lambda x: x + 1.0, state)
    assert len(traces) == 1


def test_checkify_mode_through_the_layer(seed_table):
    from jax.experimental import checkify

    layer = Embedding(4, 2, weights=seed_table, invalid_ids="checkify")
    graphdef, state = nnx.split(layer)
    checked = jax.jit(checkify.checkify(lambda s, i: nnx.merge(graphdef, s)(i)))
    err, out = checked(state, jnp.array([3, 1]))
    err.throw()
    np.testing.assert_array_equal(np.asarray(out), seed_table[[3, 1]])
    err, _ = checked(state, jnp.array([3, 9]))
    with pytest.raises(checkify.JaxRuntimeError, match=r"range \[0, 3\].*invalid id 9"):
        err.throw()
