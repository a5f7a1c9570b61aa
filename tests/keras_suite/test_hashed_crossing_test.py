"""Keras's ``keras/src/layers/preprocessing/hashed_crossing_test.py``, ported to ``jaxembed.HashedCrossing``.

One test per Keras test and parameter case, same name. ``run_layer_test`` becomes the output-shape
and config checks it makes for a weightless layer; ``tf.data`` maps become calls on the batches
(and ``jax.jit`` for static shapes); TensorFlow string tensors are accepted as inputs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse as jsparse

import jaxembed

tf = pytest.importorskip("tensorflow", reason="TensorFlow (the `compare` extra) is the oracle here")

FEAT1 = np.array(["A", "B", "A", "B", "A"])
FEAT2 = np.array([101, 101, 101, 102, 102])
ONE_HOT = np.array(
    [
        [0.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 1.0],
        [0.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 0.0],
    ]
)


def _dense(output):
    return np.asarray(output.todense() if isinstance(output, jsparse.BCOO) else output)


def test_basics():
    for kwargs, expected_shape in [
        ({"num_bins": 3, "output_mode": "int"}, (2,)),
        ({"num_bins": 4, "output_mode": "one_hot"}, (2, 4)),
    ]:
        layer = jaxembed.HashedCrossing(**kwargs)
        data = (np.array([1, 2]), np.array([4, 5]))
        assert layer(data).shape == expected_shape
        assert jax.jit(layer)(tuple(jnp.asarray(x) for x in data)).shape == expected_shape
        np.testing.assert_array_equal(np.asarray(jax.jit(layer)(tuple(map(jnp.asarray, data)))), layer(data))
        rebuilt = jaxembed.HashedCrossing.from_config(layer.get_config())
        assert rebuilt.get_config() == layer.get_config()


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse_True", "sparse_False"])
def test_correctness(sparse):
    layer = jaxembed.HashedCrossing(num_bins=5)
    np.testing.assert_array_equal(np.asarray(layer((FEAT1, FEAT2))), [1, 4, 1, 1, 3])
    layer = jaxembed.HashedCrossing(num_bins=5, output_mode="one_hot", sparse=sparse)
    output = layer((FEAT1, FEAT2))
    assert isinstance(output, jsparse.BCOO) == sparse
    np.testing.assert_array_equal(_dense(output), ONE_HOT)


def test_tf_data_compatibility():
    layer = jaxembed.HashedCrossing(num_bins=5)
    ds = tf.data.Dataset.from_tensor_slices((FEAT1, FEAT2)).batch(5)
    x1, x2 = next(ds.as_numpy_iterator())
    np.testing.assert_array_equal(np.asarray(layer((x1, x2))), [1, 4, 1, 1, 3])


def test_static_shape_preserved():
    layer = jaxembed.HashedCrossing(num_bins=5)
    assert layer((FEAT1, FEAT2)).shape == (5,)
    spec = jax.eval_shape(
        layer, (jax.ShapeDtypeStruct((5,), jnp.int32), jax.ShapeDtypeStruct((5,), jnp.int32))
    )
    assert spec.shape == (5,)


def test_unsupported_shape_input_fails():
    with pytest.raises(ValueError, match="inputs should have shape"):
        jaxembed.HashedCrossing(num_bins=10)((np.array([[[1.0]]]), np.array([[[1.0]]])))


def test_cross_output_dtype():
    # xfail in Keras (its JAX backend returns int32 for int64); jaxembed gives the dtype JAX stores.
    input_1, input_2 = np.array([1]), np.array([1])
    for kwargs, dtype in [
        ({}, "int64"),
        ({"dtype": "int32"}, "int32"),
        ({"output_mode": "one_hot"}, "float32"),
        ({"output_mode": "one_hot", "dtype": "float64"}, "float64"),
    ]:
        layer = jaxembed.HashedCrossing(num_bins=2, **kwargs)
        assert layer((input_1, input_2)).dtype == jax.dtypes.canonicalize_dtype(dtype)
        assert layer.get_config()["dtype"] == dtype


def test_non_list_input_fails():
    with pytest.raises(ValueError, match="should be called on a list"):
        jaxembed.HashedCrossing(num_bins=10)(np.array(1))


def test_single_input_fails():
    with pytest.raises(ValueError, match="at least two inputs"):
        jaxembed.HashedCrossing(num_bins=10)([np.array(1)])


def test_sparse_input_fails():
    sparse_in = jsparse.BCOO.fromdense(jnp.array([1]))
    with pytest.raises(ValueError, match="inputs should be dense tensors"):
        jaxembed.HashedCrossing(num_bins=10)((sparse_in, sparse_in))
    tf_sparse = tf.sparse.from_dense(np.array([1]))
    with pytest.raises(ValueError, match="inputs should be dense tensors"):
        jaxembed.HashedCrossing(num_bins=10)((tf_sparse, tf_sparse))


def test_float_input_fails():
    with pytest.raises(ValueError, match="should have an integer or string"):
        jaxembed.HashedCrossing(num_bins=10)((np.array([1.0]), np.array([1.0])))
    with pytest.raises(ValueError, match="should have an integer or string"):
        jaxembed.HashedCrossing(num_bins=10)((jnp.array([1.0]), jnp.array([1.0])))


def test_tf_string():
    layer = jaxembed.HashedCrossing(num_bins=10)
    assert int(layer((tf.constant("A"), tf.constant(101)))) == 1
    layer = jaxembed.HashedCrossing(num_bins=5, output_mode="one_hot")
    feat1 = tf.constant(["A", "B", "A", "B", "A"])
    feat2 = tf.constant([101, 101, 101, 102, 102])
    np.testing.assert_array_equal(np.asarray(layer((feat1, feat2))), ONE_HOT)
    layer = jaxembed.HashedCrossing(num_bins=5)
    np.testing.assert_array_equal(np.asarray(layer((feat1, feat2))), [1, 4, 1, 1, 3])
    layer = jaxembed.HashedCrossing(num_bins=5, output_mode="one_hot", sparse=True)
    cloned_layer = jaxembed.HashedCrossing.from_config(layer.get_config())
    feat1 = tf.constant([["A"], ["B"], ["A"], ["B"], ["A"]])
    feat2 = tf.constant([[101], [101], [101], [102], [102]])
    np.testing.assert_array_equal(_dense(cloned_layer((feat1, feat2))), _dense(layer((feat1, feat2))))
    np.testing.assert_array_equal(_dense(layer((feat1, feat2))), ONE_HOT)
