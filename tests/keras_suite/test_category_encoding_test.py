"""Keras's ``keras/src/layers/preprocessing/category_encoding_test.py``, ported to jaxembed.

One test per Keras test and parameter case (``dense``/``sparse``: a ``jax.experimental.sparse.BCOO``,
as on Keras's JAX backend), same name. Keras's symbolic call (``layers.Input``) becomes
``jax.eval_shape`` of the layer and a ``jax.jit`` call; ``tf.data`` maps become calls on the batches;
Keras's private ``_encode`` is the public call.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse as jsparse

import jaxembed

tf = pytest.importorskip("tensorflow", reason="TensorFlow (the `compare` extra) is the oracle here")

SPARSE = pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])


def _dense(output):
    return np.asarray(output.todense() if isinstance(output, jsparse.BCOO) else output)


def _check(layer, data, expected, expected_shape, sparse, count_weights=None):
    output = layer(data, count_weights=count_weights)
    assert output.shape == expected_shape
    assert isinstance(output, jsparse.BCOO) == sparse
    np.testing.assert_allclose(_dense(output), expected, rtol=1e-6)
    # The symbolic call: shape and dtype without data, and the same values under jit.
    weights = None if count_weights is None else jnp.asarray(count_weights, jnp.float32)
    spec = jax.eval_shape(
        lambda x, w: layer(x, count_weights=w), jax.ShapeDtypeStruct(np.shape(data), jnp.int32), weights
    )
    assert spec.shape == expected_shape
    assert (spec.dtype if not sparse else spec.data.dtype) == jnp.float32
    if not sparse:  # (the BCOO path is the same encoder plus BCOO.fromdense; its jit compiles slowly)
        jitted = jax.jit(lambda x, w: layer(x, count_weights=w))(jnp.asarray(data, jnp.int32), weights)
        np.testing.assert_allclose(_dense(jitted), expected, rtol=1e-6)


@SPARSE
def test_count_output(sparse):
    layer = jaxembed.CategoryEncoding(num_tokens=6, output_mode="count", sparse=sparse)
    _check(layer, np.array([1, 2, 3, 1]), [0, 2, 1, 1, 0, 0], (6,), sparse)


@SPARSE
def test_count_weighted_output(sparse):
    input_array = np.array([[0, 1], [0, 0], [1, 2], [3, 1]])
    count_weights = np.array([[0.1, 0.2], [0.1, 0.1], [0.2, 0.3], [0.4, 0.2]])
    expected_output = np.array(
        [
            [0.1, 0.2, 0.0, 0.0, 0.0, 0.0],
            [0.2, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.2, 0.3, 0.0, 0.0, 0.0],
            [0.0, 0.2, 0.0, 0.4, 0.0, 0.0],
        ]
    )
    layer = jaxembed.CategoryEncoding(num_tokens=6, output_mode="count", sparse=sparse)
    _check(layer, input_array, expected_output, (4, 6), sparse, count_weights=count_weights)


@SPARSE
def test_batched_count_output(sparse):
    layer = jaxembed.CategoryEncoding(num_tokens=6, output_mode="count", sparse=sparse)
    input_array = np.array([[1, 2, 3, 1], [0, 3, 1, 0]])
    _check(layer, input_array, [[0, 2, 1, 1, 0, 0], [2, 1, 0, 1, 0, 0]], (2, 6), sparse)


@SPARSE
def test_multi_hot(sparse):
    layer = jaxembed.CategoryEncoding(num_tokens=6, output_mode="multi_hot", sparse=sparse)
    _check(layer, np.array([3, 2, 0, 1]), [1, 1, 1, 1, 0, 0], (6,), sparse)


@SPARSE
def test_batched_multi_hot(sparse):
    layer = jaxembed.CategoryEncoding(num_tokens=6, output_mode="multi_hot", sparse=sparse)
    input_data = np.array([[3, 2, 0, 1], [3, 2, 0, 1]])
    _check(layer, input_data, [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0]], (2, 6), sparse)
    scalar = np.array(4)
    assert layer(scalar).shape == layer.compute_output_shape(scalar.shape)


@SPARSE
def test_one_hot(sparse):
    input_data = np.array([3, 2, 0, 1])
    expected_output = np.eye(6)[[3, 2, 0, 1]]
    layer = jaxembed.CategoryEncoding(num_tokens=6, output_mode="one_hot", sparse=sparse)
    _check(layer, input_data, expected_output, (4, 6), sparse)
    assert layer(input_data).shape == layer.compute_output_shape(input_data.shape)
    column = np.array([[3], [2], [0], [1]])
    assert layer(column).shape == layer.compute_output_shape(column.shape)
    single = np.array((4,))
    assert layer(single).shape == layer.compute_output_shape(single.shape)


@SPARSE
def test_batched_one_hot(sparse):
    input_data = np.array([[3, 2, 0, 1], [3, 2, 0, 1]])
    expected_output = np.stack([np.eye(6)[[3, 2, 0, 1]]] * 2)
    layer = jaxembed.CategoryEncoding(num_tokens=6, output_mode="one_hot", sparse=sparse)
    _check(layer, input_data, expected_output, (2, 4, 6), sparse)


def test_tf_data_compatibility():
    layer = jaxembed.CategoryEncoding(num_tokens=4, output_mode="one_hot", dtype="int32")
    ds = tf.data.Dataset.from_tensor_slices(np.array([3, 2, 0, 1])).batch(4)
    output = np.asarray(layer(next(ds.as_numpy_iterator())))
    np.testing.assert_array_equal(output, np.eye(4, dtype=int)[[3, 2, 0, 1]])


def test_category_encoding_without_num_tokens():
    with pytest.raises(ValueError, match=r"num_tokens must be set to use this layer"):
        jaxembed.CategoryEncoding(output_mode="multi_hot")


def test_category_encoding_with_invalid_num_tokens():
    with pytest.raises(ValueError, match=r"`num_tokens` must be >= 1"):
        jaxembed.CategoryEncoding(num_tokens=0, output_mode="multi_hot")
    with pytest.raises(ValueError, match=r"`num_tokens` must be >= 1"):
        jaxembed.CategoryEncoding(num_tokens=-1, output_mode="multi_hot")


def test_category_encoding_with_unnecessary_count_weights():
    layer = jaxembed.CategoryEncoding(num_tokens=4, output_mode="multi_hot")
    with pytest.raises(ValueError, match=r"`count_weights` is not used when `output_mode`"):
        layer(np.array([0, 1, 2, 3]), count_weights=np.array([0.1, 0.2, 0.3, 0.4]))


def test_invalid_output_mode_raises_error():
    with pytest.raises(ValueError, match=r"Unknown arg for output_mode: invalid_mode"):
        jaxembed.CategoryEncoding(num_tokens=4, output_mode="invalid_mode")


def test_encode_one_hot_single_sample():
    layer = jaxembed.CategoryEncoding(num_tokens=4, output_mode="one_hot")
    np.testing.assert_array_equal(np.asarray(layer(np.array([1, 2, 3, 1]))), np.eye(4)[[1, 2, 3, 1]])


def test_encode_one_hot_batched_samples():
    layer = jaxembed.CategoryEncoding(num_tokens=4, output_mode="one_hot")
    expected = np.stack([np.eye(4)[[3, 2, 0, 1]]] * 2)
    np.testing.assert_array_equal(np.asarray(layer(np.array([[3, 2, 0, 1], [3, 2, 0, 1]]))), expected)


def test_count_single_sample():
    layer = jaxembed.CategoryEncoding(num_tokens=4, output_mode="count")
    np.testing.assert_array_equal(np.asarray(layer(np.array([1, 2, 3, 1]))), [0, 2, 1, 1])


def test_count_batched_samples():
    layer = jaxembed.CategoryEncoding(num_tokens=4, output_mode="count")
    output = layer(np.array([[1, 2, 3, 1], [0, 3, 1, 0]]))
    np.testing.assert_array_equal(np.asarray(output), [[0, 2, 1, 1], [2, 1, 0, 1]])
