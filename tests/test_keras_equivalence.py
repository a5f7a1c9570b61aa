"""Differential tests against real Keras 3 on the JAX backend (KERAS_BACKEND=jax, see conftest)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxembed
from jaxembed.keras import constraints, initializers, regularizers

keras = pytest.importorskip(
    "keras", reason="the differential tests compare against Keras 3 (the `test` extra)"
)


def keras_layer(*args, **kwargs):
    layer = keras.layers.Embedding(*args, **kwargs)
    layer.build()
    return layer


@pytest.mark.parametrize("shape", [(6,), (4, 7), (2, 3, 5)])
@pytest.mark.parametrize("lookup", ["take", "one_hot"])
def test_same_table_same_outputs_and_masks(shape, lookup):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(40, 6)).astype(np.float32)
    ids = rng.integers(0, 40, size=shape)
    ours = jaxembed.Embedding(40, 6, weights=table, mask_zero=True, lookup=lookup)
    theirs = keras_layer(40, 6, weights=table, mask_zero=True)
    np.testing.assert_array_equal(np.asarray(ours(ids)), np.asarray(theirs(ids)))
    np.testing.assert_array_equal(np.asarray(ours.compute_mask(ids)), np.asarray(theirs.compute_mask(ids)))
    assert ours.compute_output_shape((None, *shape[1:])) == theirs.compute_output_shape((None, *shape[1:]))


def test_float_ids_cast_like_keras():
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    ids = np.array([[1.0, 5.0], [0.0, 2.0]], np.float32)
    ours = jaxembed.Embedding(6, 2, weights=table)
    np.testing.assert_array_equal(np.asarray(ours(ids)), np.asarray(keras_layer(6, 2, weights=table)(ids)))


def test_mixed_precision_output_matches_keras():
    table = np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32)
    ids = np.array([[1, 2, 9]])
    ours = jaxembed.Embedding(10, 4, weights=table, dtype="mixed_bfloat16")
    theirs = keras_layer(10, 4, weights=table, dtype="mixed_bfloat16")
    out = ours(ids)
    assert out.dtype == theirs(ids).dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(theirs(ids), np.float32))


KERAS_CONFIG_CASES = [
    dict(),
    dict(mask_zero=True, name="tokens"),
    dict(embeddings_initializer="glorot_uniform", embeddings_regularizer="l2", activity_regularizer="l1"),
    dict(
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.2, seed=3),
        embeddings_regularizer=keras.regularizers.L1L2(l1=0.1, l2=0.2),
        embeddings_constraint=keras.constraints.MaxNorm(max_value=3.0, axis=1),
    ),
    dict(embeddings_initializer="he_normal", embeddings_constraint="unit_norm", trainable=False),
    dict(
        embeddings_initializer=keras.initializers.VarianceScaling(2.0, "fan_out", "uniform"),
        embeddings_constraint=keras.constraints.MinMaxNorm(0.5, 2.0, rate=0.5),
    ),
    dict(embeddings_initializer="orthogonal", embeddings_constraint="non_neg", dtype="mixed_bfloat16"),
    dict(embeddings_initializer="truncated_normal", dtype="bfloat16"),
    dict(embeddings_initializer=keras.initializers.Constant(0.3)),
]


@pytest.mark.parametrize("kwargs", KERAS_CONFIG_CASES)
def test_keras_config_loads_and_round_trips(kwargs):
    keras_config = keras.layers.Embedding(50, 4, **kwargs).get_config()
    ours = jaxembed.Embedding.from_config(keras_config, rngs=0)
    ours_config = ours.get_config()
    # Our config is Keras's config (same keys, same serialized objects) ...
    assert set(ours_config) == set(keras_config)
    for key in ("input_dim", "output_dim", "mask_zero", "trainable", "name"):
        assert ours_config[key] == keras_config[key]
    for key in (
        "embeddings_initializer",
        "embeddings_regularizer",
        "activity_regularizer",
        "embeddings_constraint",
    ):
        theirs = keras_config[key]
        if theirs is None:
            assert ours_config[key] is None
        else:
            assert ours_config[key]["class_name"] == theirs["class_name"]
            for name, value in ours_config[key]["config"].items():
                np.testing.assert_allclose(value, theirs["config"][name], rtol=1e-6) if isinstance(
                    value, float
                ) else None
                assert (value == theirs["config"][name]) or isinstance(value, float)
    assert ours_config["dtype"]["config"]["name"] == keras_config["dtype"]["config"]["name"]
    # ... and Keras builds the same layer back from it.
    rebuilt = keras.layers.Embedding.from_config(ours_config)
    assert rebuilt.get_config() == keras_config


def test_keras_2_config_with_input_length_and_batch_input_shape():
    keras2_config = {
        "name": "embedding",
        "trainable": True,
        "batch_input_shape": [None, 50],
        "dtype": "float32",
        "input_dim": 1000,
        "output_dim": 64,
        "embeddings_initializer": {
            "class_name": "RandomUniform",
            "config": {"minval": -0.05, "maxval": 0.05, "seed": None},
        },
        "embeddings_regularizer": None,
        "activity_regularizer": None,
        "embeddings_constraint": None,
        "mask_zero": False,
        "input_length": 50,
    }
    layer = jaxembed.Embedding.from_config(keras2_config, rngs=0)
    assert layer.input_length == 50 and layer(np.zeros((2, 50), np.int32)).shape == (2, 50, 64)
    del keras2_config["input_length"]
    assert jaxembed.Embedding.from_config(keras2_config, rngs=0).input_length == 50


def test_our_input_length_config_loads_in_keras_with_its_deprecation_warning():
    config = jaxembed.Embedding(1000, 64, input_length=50, rngs=0).get_config()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        rebuilt = keras.layers.Embedding.from_config(config)
    assert rebuilt.input_dim == 1000 and rebuilt.output_dim == 64


def test_unknown_config_keys_are_named():
    config = jaxembed.Embedding(3, 2, rngs=0).get_config() | {"embedings_initializer": "uniform"}
    with pytest.raises(ValueError, match=r"Unknown Embedding config keys \['embedings_initializer'\]"):
        jaxembed.Embedding.from_config(config)


@pytest.mark.parametrize(
    "name, bounded",
    [
        ("uniform", True),
        ("normal", False),
        ("truncated_normal", True),
        ("glorot_uniform", True),
        ("glorot_normal", True),
        ("he_uniform", True),
        ("he_normal", True),
        ("lecun_normal", True),
        ("orthogonal", False),
    ],
)
def test_initializer_draws_have_keras_range_mean_and_variance(name, bounded):
    shape = (400, 300)
    ours = np.asarray(initializers.get(name)(jax.random.key(0), shape, jnp.float32)).ravel()
    theirs = np.asarray(keras.initializers.get(name)(shape, dtype="float32")).ravel()
    n = ours.size
    # Means agree within 5 standard errors; variances within 3%; bounded supports within 2%.
    assert abs(ours.mean() - theirs.mean()) < 5 * theirs.std() * np.sqrt(2 / n)
    np.testing.assert_allclose(ours.var(), theirs.var(), rtol=0.03)
    if bounded:
        np.testing.assert_allclose([ours.min(), ours.max()], [theirs.min(), theirs.max()], rtol=0.02)


def test_default_uniform_table_matches_keras_distribution():
    ours = np.asarray(jaxembed.Embedding(1000, 64, rngs=0).embeddings[...]).ravel()
    theirs = np.asarray(keras_layer(1000, 64).embeddings).ravel()
    assert ours.min() >= -0.05 and ours.max() < 0.05 and theirs.min() >= -0.05 and theirs.max() < 0.05
    assert abs(ours.mean() - theirs.mean()) < 5 * 0.0289 * np.sqrt(2 / ours.size)
    np.testing.assert_allclose(ours.var(), theirs.var(), rtol=0.02)


@pytest.mark.parametrize(
    "identifier", ["l1", "l2", "l1l2", {"class_name": "L1L2", "config": {"l1": 0.3, "l2": 0.7}}]
)
def test_regularization_penalties_equal_keras(identifier):
    rng = np.random.default_rng(2)
    table = rng.normal(size=(8, 3)).astype(np.float32)
    ids = rng.integers(0, 8, size=(5, 4))
    theirs = keras_layer(
        8, 3, weights=table, embeddings_regularizer=identifier, activity_regularizer=identifier
    )
    ours = jaxembed.Embedding(
        8, 3, weights=table, embeddings_regularizer=identifier, activity_regularizer=identifier
    )
    keras_out = theirs(ids)  # records the activity penalty in theirs.losses
    ours(ids)
    np.testing.assert_allclose(
        float(jaxembed.regularization_loss(ours)), float(sum(theirs.losses)), rtol=1e-6
    )
    np.testing.assert_allclose(
        float(regularizers.get(identifier)(table)),
        float(keras.regularizers.get(identifier)(table)),
        rtol=1e-6,
    )
    assert keras_out.shape == (5, 4, 3)


@pytest.mark.parametrize(
    "identifier",
    [
        "max_norm",
        "unit_norm",
        "non_neg",
        "min_max_norm",
        {"class_name": "MaxNorm", "config": {"max_value": 0.5, "axis": 1}},
        {"class_name": "MinMaxNorm", "config": {"min_value": 0.2, "max_value": 0.9, "rate": 0.3, "axis": 1}},
    ],
)
def test_constraints_equal_keras(identifier):
    table = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(constraints.get(identifier)(jnp.asarray(table))),
        np.asarray(keras.constraints.get(identifier)(table)),
        rtol=1e-6,
        atol=1e-7,
    )
    layer = jaxembed.Embedding(6, 4, weights=table, embeddings_constraint=identifier)
    jaxembed.apply_constraints(layer)
    np.testing.assert_allclose(
        np.asarray(layer.embeddings[...]),
        np.asarray(keras.constraints.get(identifier)(table)),
        rtol=1e-6,
        atol=1e-7,
    )


def test_size_errors_match_keras_wording():
    for value in (0, 3.7):
        with pytest.raises(ValueError) as theirs:
            keras.layers.Embedding(value, 4)
        with pytest.raises(ValueError) as ours:
            jaxembed.Embedding(value, 4)
        assert str(ours.value) == str(theirs.value)
