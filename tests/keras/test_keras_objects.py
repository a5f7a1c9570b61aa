"""Keras identifiers for initializers, regularizers and constraints: names, configs, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxembed.keras import constraints, initializers, regularizers

INITIALIZER_NAMES = [
    "uniform",
    "random_uniform",
    "normal",
    "random_normal",
    "truncated_normal",
    "zeros",
    "ones",
    "constant",
    "identity",
    "orthogonal",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "RandomUniform",
    "GlorotUniform",
]


@pytest.mark.parametrize("name", INITIALIZER_NAMES)
def test_every_initializer_name_draws_a_table_and_round_trips(name):
    init = initializers.get(name)
    table = init(jax.random.key(0), (6, 4), jnp.float32)
    assert table.shape == (6, 4) and table.dtype == jnp.float32
    serialized = initializers.serialize(init)
    assert serialized["module"] == "keras.initializers"
    assert initializers.get(serialized) == init


def test_initializer_formulas():
    key = jax.random.key(1)
    np.testing.assert_array_equal(np.asarray(initializers.get("identity")(key, (2, 3))), np.eye(2, 3))
    np.testing.assert_array_equal(np.asarray(initializers.Constant(0.25)(key, (2, 2))), np.full((2, 2), 0.25))
    q = np.asarray(initializers.get("orthogonal")(key, (8, 8)))
    np.testing.assert_allclose(q @ q.T, np.eye(8), atol=1e-5)
    limit = np.sqrt(6 / (300 + 200))
    g = np.asarray(initializers.get("glorot_uniform")(key, (300, 200)))
    assert g.min() >= -limit and g.max() <= limit and g.max() > 0.99 * limit
    t = np.asarray(initializers.get("truncated_normal")(key, (300, 200)))
    assert np.abs(t).max() <= 2 * 0.05 + 1e-7


def test_seeded_initializers_ignore_the_key():
    init = initializers.get({"class_name": "GlorotNormal", "config": {"seed": 3}})
    np.testing.assert_array_equal(
        np.asarray(init(jax.random.key(0), (5, 5))), np.asarray(init(jax.random.key(9), (5, 5)))
    )


def test_plain_callables_pass_through_unserialized():
    fn = jax.nn.initializers.normal(0.1)
    assert initializers.get(fn) is fn and initializers.serialize(fn) is fn


@pytest.mark.parametrize(
    "module, identifier, error, message",
    [
        (initializers, "glorot", ValueError, r"Unknown initializer 'glorot'. Valid names: .*glorot_uniform"),
        (initializers, {"config": {}}, ValueError, r"needs a 'class_name' key"),
        (
            initializers,
            {"class_name": "RandomUniform", "config": {"min": 0}},
            ValueError,
            r"Unknown config keys \['min'\] for RandomUniform",
        ),
        (initializers, 3.5, TypeError, r"Could not interpret initializer identifier 3.5 \(of type float\)"),
        (initializers, None, ValueError, r"cannot be None"),
        (
            initializers,
            {"class_name": "VarianceScaling", "config": {"mode": "fan_sum"}},
            ValueError,
            r"`mode` must be one of \('fan_in', 'fan_out', 'fan_avg'\). Received: mode='fan_sum'",
        ),
        (regularizers, "l3", ValueError, r"Unknown regularizer 'l3'"),
        (
            regularizers,
            {"class_name": "L2", "config": {"l2": -1.0}},
            ValueError,
            r"`l2` must be a non-negative number",
        ),
        (constraints, "positive", ValueError, r"Unknown constraint 'positive'. Valid names: .*non_neg"),
    ],
)
def test_bad_identifiers(module, identifier, error, message):
    with pytest.raises(error, match=message):
        module.get(identifier)


@pytest.mark.parametrize(
    "identifier, expected",
    [
        ("l1", 0.01 * 10),
        ("l2", 0.01 * 30),
        ("l1_l2", 0.0),
        ("l1l2", 0.0),
        ({"class_name": "L1L2", "config": {"l1": 0.5, "l2": 0.25}}, 0.5 * 10 + 0.25 * 30),
        (regularizers.L1(l1=2.0), 20.0),
    ],
)
def test_regularizer_values(identifier, expected):
    x = jnp.array([[1.0, -2.0], [3.0, -4.0]])
    np.testing.assert_allclose(float(regularizers.get(identifier)(x)), expected, rtol=1e-6)


def test_regularizer_serialization_round_trip():
    reg = regularizers.L1L2(l1=0.1, l2=0.2)
    assert regularizers.serialize(reg) == {
        "module": "keras.regularizers",
        "class_name": "L1L2",
        "config": {"l1": 0.1, "l2": 0.2},
        "registered_name": None,
    }
    assert regularizers.get(regularizers.serialize(reg)) == reg
    assert regularizers.get(None) is None and regularizers.serialize(None) is None


def test_constraint_values():
    w = jnp.array([[3.0, -4.0], [0.0, 0.0]])
    np.testing.assert_allclose(np.asarray(constraints.get("non_neg")(w)), [[3, 0], [0, 0]])
    unit_rows = constraints.UnitNorm(axis=1)(w)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(unit_rows)[0]), 1.0, rtol=1e-6)
    clipped = constraints.MaxNorm(max_value=1.0, axis=1)(w)
    np.testing.assert_allclose(np.asarray(clipped)[0], [0.6, -0.8], rtol=1e-6)
    stretched = constraints.MinMaxNorm(min_value=10.0, max_value=20.0, rate=0.5, axis=1)(w)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(stretched)[0]), 7.5, rtol=1e-6)
    assert constraints.get(constraints.serialize(constraints.MaxNorm(3, axis=1))) == constraints.MaxNorm(
        3, axis=1
    )
