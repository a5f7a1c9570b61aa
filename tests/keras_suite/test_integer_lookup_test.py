"""Keras's ``keras/src/layers/preprocessing/integer_lookup_test.py``, ported to ``jaxembed.IntegerLookup``.

One test per Keras test, same name; real Keras is the oracle where numbers compare, and the
numeric checks also run on JAX arrays under ``jax.jit`` (jaxembed's pure-jnp path).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxembed

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow", reason="TensorFlow (the `compare` extra) is the oracle here")


def _check(layer, data, expected, *, rtol=0.0):
    """The host call, the JAX-array call and the jitted call all give ``expected``."""
    np.testing.assert_allclose(np.asarray(layer(data)), expected, rtol=rtol, atol=1e-6 if rtol else 0)
    array = jnp.asarray(np.asarray(data))
    np.testing.assert_allclose(np.asarray(layer(array)), expected, rtol=rtol, atol=1e-6 if rtol else 0)
    np.testing.assert_allclose(
        np.asarray(jax.jit(layer)(array)), expected, rtol=rtol, atol=1e-6 if rtol else 0
    )


def test_config():
    kwargs = dict(output_mode="int", vocabulary=[1, 2, 3], oov_token=1, mask_token=0)
    layer = jaxembed.IntegerLookup(**kwargs)
    config = layer.get_config()
    rebuilt = jaxembed.IntegerLookup.from_config(config)
    assert rebuilt.get_config() == config
    keras_config = keras.layers.IntegerLookup(**kwargs).get_config()
    assert {k: v for k, v in config.items() if k != "name"} == {
        k: keras_config[k] for k in config if k != "name"
    }


def test_adapt_flow():
    adapt_data = [1, 1, 1, 2, 2, 3]
    single_sample_input_data = [1, 2, 4]
    batch_input_data = [[1, 2, 4], [2, 3, 5]]
    layer = jaxembed.IntegerLookup(output_mode="int")
    layer.adapt(adapt_data)
    _check(layer, single_sample_input_data, [1, 2, 0])
    _check(layer, batch_input_data, [[1, 2, 0], [2, 3, 0]])
    layer = jaxembed.IntegerLookup(output_mode="one_hot")
    layer.adapt(adapt_data)
    _check(layer, single_sample_input_data, [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]])
    layer = jaxembed.IntegerLookup(output_mode="multi_hot")
    layer.adapt(adapt_data)
    _check(layer, single_sample_input_data, [1, 1, 1, 0])
    layer = jaxembed.IntegerLookup(output_mode="tf_idf")
    layer.adapt(adapt_data)
    _check(layer, single_sample_input_data, [1.133732, 0.916291, 1.098612, 0.0], rtol=1e-5)
    layer = jaxembed.IntegerLookup(output_mode="count")
    layer.adapt(adapt_data)
    _check(layer, [1, 2, 3, 4, 1, 2, 1], [1, 3, 2, 1])


def test_fixed_vocabulary():
    layer = jaxembed.IntegerLookup(output_mode="int", vocabulary=[1, 2, 3, 4])
    _check(layer, [2, 3, 4, 5], [2, 3, 4, 0])


def test_set_vocabulary():
    layer = jaxembed.IntegerLookup(output_mode="int")
    layer.set_vocabulary([1, 2, 3, 4])
    _check(layer, [2, 3, 4, 5], [2, 3, 4, 0])


def test_tf_data_compatibility():
    # Keras maps the layer inside a tf.data graph; jaxembed's layer runs on the batches.
    layer = jaxembed.IntegerLookup(output_mode="int", vocabulary=[1, 2, 3, 4])
    ds = tf.data.Dataset.from_tensor_slices([2, 3, 4, 5]).batch(4)
    output = [np.asarray(layer(batch)) for batch in ds.as_numpy_iterator()][0]
    np.testing.assert_array_equal(output, [2, 3, 4, 0])


def test_one_hot_output_with_higher_rank_input():
    input_data = np.array([[1, 2], [3, 0]])
    layer = jaxembed.IntegerLookup(vocabulary=[1, 2, 3], output_mode="one_hot")
    expected_output = np.array([[[0, 1, 0, 0], [0, 0, 1, 0]], [[0, 0, 0, 1], [1, 0, 0, 0]]])
    assert layer(input_data).shape == (2, 2, 4)
    _check(layer, input_data, expected_output)
    output_data_3d = layer(np.expand_dims(input_data, axis=0))
    assert output_data_3d.shape == (1, 2, 2, 4)
    _check(layer, np.expand_dims(input_data, axis=0), np.expand_dims(expected_output, axis=0))


def test_multi_hot_output_shape():
    layer = jaxembed.IntegerLookup(vocabulary=[1, 2, 3], output_mode="multi_hot")
    assert layer(np.array([[1, 2], [3, 0]])).shape == (2, 4)


def test_count_output_shape():
    layer = jaxembed.IntegerLookup(vocabulary=[1, 2, 3], output_mode="count")
    assert layer(np.array([[1, 2], [3, 0]])).shape == (2, 4)


def test_tf_idf_output_shape():
    layer = jaxembed.IntegerLookup(vocabulary=[1, 2, 3], idf_weights=[1.0, 1.0, 1.0], output_mode="tf_idf")
    assert layer(np.array([[1, 2], [3, 0]])).shape == (2, 4)


def test_max_tokens():
    layer = jaxembed.IntegerLookup(output_mode="int", max_tokens=4)
    layer.adapt([1, 2, 3, 4, 5, 6, 1, 1, 2, 2])
    assert len(layer.get_vocabulary()) == 4
    theirs = keras.layers.IntegerLookup(output_mode="int", max_tokens=4)
    theirs.adapt([1, 2, 3, 4, 5, 6, 1, 1, 2, 2])
    assert layer.get_vocabulary() == [int(v) for v in theirs.get_vocabulary()]


def test_mask_token():
    layer = jaxembed.IntegerLookup(output_mode="int", vocabulary=[1, 2, 3], mask_token=0)
    _check(layer, [0, 1, 2, 3], [0, 2, 3, 4])


def test_invert():
    layer = jaxembed.IntegerLookup(vocabulary=[10, 20, 30], invert=True)
    _check(layer, [1, 2, 3, 0], [10, 20, 30, -1])


def test_pad_to_max_tokens():
    layer = jaxembed.IntegerLookup(
        vocabulary=[1, 2], output_mode="multi_hot", max_tokens=5, pad_to_max_tokens=True
    )
    assert layer([1, 2]).shape[-1] == 5
    _check(layer, [1, 2], [0, 1, 1, 0, 0])


def test_num_oov_indices():
    layer = jaxembed.IntegerLookup(vocabulary=[1, 2, 3], num_oov_indices=2, output_mode="int")
    output = np.asarray(layer([1, 2, 3, 999, 1000]))
    np.testing.assert_array_equal(output[:3], [2, 3, 4])
    assert all(o in [0, 1] for o in output[3:])
    theirs = keras.layers.IntegerLookup(vocabulary=[1, 2, 3], num_oov_indices=2, output_mode="int")
    _check(layer, [1, 2, 3, 999, 1000], np.asarray(theirs([1, 2, 3, 999, 1000])))


def test_get_vocabulary():
    layer = jaxembed.IntegerLookup(output_mode="int")
    layer.adapt([5, 5, 5, 10, 10, 15])
    vocab = layer.get_vocabulary()
    assert vocab[0] == -1
    assert vocab[1] == 5


def test_invalid_max_tokens():
    with pytest.raises(ValueError, match="max_tokens"):
        jaxembed.IntegerLookup(max_tokens=1)


def test_invalid_num_oov_indices():
    with pytest.raises(ValueError, match="num_oov_indices"):
        jaxembed.IntegerLookup(num_oov_indices=-1)


def test_sparse_output():
    # Keras allows sparse=True only on TensorFlow; jaxembed returns a jax BCOO with the dense values.
    layer = jaxembed.IntegerLookup(vocabulary=[1, 2, 3], output_mode="multi_hot", sparse=True)
    output = layer([1, 2])
    assert hasattr(output, "indices")
    np.testing.assert_array_equal(np.asarray(output.todense()), [0, 1, 1, 0])


def test_invalid_vocabulary_dtype():
    with pytest.raises(ValueError, match="vocabulary_dtype"):
        jaxembed.IntegerLookup(vocabulary_dtype="int32")


def test_num_oov_indices_zero():
    layer = jaxembed.IntegerLookup(vocabulary=[1, 2, 3], num_oov_indices=0, output_mode="int")
    _check(layer, [1, 2, 3], [0, 1, 2])


def test_adapt_with_steps():
    layer = jaxembed.IntegerLookup(output_mode="int")
    ds = tf.data.Dataset.from_tensor_slices([1, 2, 3, 1, 1]).batch(2)
    layer.adapt(ds, steps=2)  # an iterable of batches: the first two only
    assert 1 in layer.get_vocabulary()
    assert layer.get_vocabulary(include_special_tokens=False) == [1, 3, 2]


def test_vocabulary_from_file(tmp_path):
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("10\n20\n30\n")
    layer = jaxembed.IntegerLookup(vocabulary=str(vocab_file), output_mode="int")
    _check(layer, [10, 20, 30, 999], [1, 2, 3, 0])


def test_oov_method_farmhash():
    layer = jaxembed.IntegerLookup(vocabulary=[12, 36, 1138, 42], num_oov_indices=2, oov_method="farmhash")
    data = np.array([12, 36, 1138, 42, 100, 200])
    output = np.asarray(layer(data))
    np.testing.assert_array_equal(output[:4], [2, 3, 4, 5])
    assert all(o in [0, 1] for o in output[4:])
    theirs = keras.layers.IntegerLookup(
        vocabulary=[12, 36, 1138, 42], num_oov_indices=2, oov_method="farmhash"
    )
    _check(layer, data, np.asarray(theirs(data)))


def test_oov_method_invalid_value():
    with pytest.raises(ValueError, match="oov_method"):
        jaxembed.IntegerLookup(vocabulary=[1, 2, 3], num_oov_indices=2, oov_method="invalid_method")


def test_oov_method_ignored_when_single_oov_index():
    layer_floormod = jaxembed.IntegerLookup(vocabulary=[1, 2, 3], num_oov_indices=1, oov_method="floormod")
    layer_farmhash = jaxembed.IntegerLookup(vocabulary=[1, 2, 3], num_oov_indices=1, oov_method="farmhash")
    oov_values = [99, 100, 101]
    np.testing.assert_array_equal(
        np.asarray(layer_floormod(oov_values)), np.asarray(layer_farmhash(oov_values))
    )


def test_oov_method_farmhash_output_is_correct():
    layer = jaxembed.IntegerLookup(vocabulary=[10, 20, 30], num_oov_indices=4, oov_method="farmhash")
    _check(layer, [100, 200, 300, 400], [3, 1, 3, 1])


def test_salt_siphash():
    vocab = [10, 20, 30]
    layer_farmhash = jaxembed.IntegerLookup(vocabulary=vocab, num_oov_indices=4, oov_method="farmhash")
    layer_siphash = jaxembed.IntegerLookup(
        vocabulary=vocab, num_oov_indices=4, oov_method="farmhash", salt=[137, 42]
    )
    oov_values = np.array([100, 300, 700, 1100, 1700, 2000])
    assert not np.array_equal(np.asarray(layer_farmhash(oov_values)), np.asarray(layer_siphash(oov_values)))
    theirs = keras.layers.IntegerLookup(
        vocabulary=vocab, num_oov_indices=4, oov_method="farmhash", salt=[137, 42]
    )
    _check(layer_siphash, oov_values, np.asarray(theirs(oov_values)))
