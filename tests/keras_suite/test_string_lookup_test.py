"""Keras's ``keras/src/layers/preprocessing/string_lookup_test.py``, ported to ``jaxembed.StringLookup``.

One test per Keras test, same name. Keras's ``run_class_serialization_test`` becomes a config
round trip checked against Keras's own config; symbolic ``Input`` checks become
``compute_output_shape`` plus the eager shape; real Keras is the oracle where numbers compare.
"""

import numpy as np
import pytest

import jaxembed

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow", reason="TensorFlow (the `compare` extra) is the oracle here")


def _same_as_keras(ours, theirs, data):
    np.testing.assert_array_equal(np.asarray(ours(data)), np.asarray(theirs(data)))


def test_config():
    kwargs = dict(output_mode="int", vocabulary=["a", "b", "c"], oov_token="[OOV]", mask_token="[MASK]")
    layer = jaxembed.StringLookup(**kwargs)
    config = layer.get_config()
    rebuilt = jaxembed.StringLookup.from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.get_vocabulary() == layer.get_vocabulary()
    keras_config = keras.layers.StringLookup(**kwargs).get_config()
    assert {key: keras_config[key] for key in config if key != "name"} == {
        key: value for key, value in config.items() if key != "name"
    }
    assert layer.get_config()["vocabulary"] == ["a", "b", "c"]


def test_vocabulary_file(tmp_path):
    vocab_path = tmp_path / "vocab.txt"
    vocab_path.write_text("a\nb\nc\n")
    layer = jaxembed.StringLookup(
        output_mode="int", vocabulary=str(vocab_path), oov_token="[OOV]", mask_token="[MASK]", name="index"
    )
    assert layer.get_vocabulary() == ["[MASK]", "[OOV]", "a", "b", "c"]
    assert layer.get_config().get("vocabulary", None) is None
    # The vocabulary travels in the saved file, not the original one (Keras: the .keras archive).
    vocab_path.unlink()
    saved = layer.save(tmp_path / "index.json")
    reloaded = jaxembed.StringLookup.load(saved)
    assert reloaded.get_vocabulary() == ["[MASK]", "[OOV]", "a", "b", "c"]


def test_adapt_flow():
    layer = jaxembed.StringLookup(output_mode="int")
    layer.adapt(["a", "a", "a", "b", "b", "c"])
    output = layer(["b", "c", "d"])
    np.testing.assert_array_equal(np.asarray(output), [2, 3, 0])
    assert "a" in layer.get_vocabulary()


def test_adapt_with_generator():
    def vocab_gen():
        yield ["cat", "dog"]
        yield ["bird", "cat"]

    layer = jaxembed.StringLookup()
    layer.adapt(vocab_gen())
    vocab = layer.get_vocabulary()
    assert {"cat", "dog", "bird"} <= set(vocab)
    theirs = keras.layers.StringLookup()
    theirs.adapt(vocab_gen())
    assert vocab == theirs.get_vocabulary()


def test_adapt_with_infinite_generator_and_steps():
    def vocab_gen():
        while True:
            yield ["cat", "dog", "bird"]

    layer = jaxembed.StringLookup()
    layer.adapt(vocab_gen(), steps=3)
    assert "cat" in layer.get_vocabulary()


def test_adapt_with_grain_dataset():
    grain = pytest.importorskip("grain", reason="grain (Keras's optional data loader) is not installed")
    words = ["cat", "dog", "bird", "cat", "dog", "bird"]

    class Source(grain.sources.RandomAccessDataSource):
        def __getitem__(self, idx):
            return words[idx]

        def __len__(self):
            return len(words)

    layer = jaxembed.StringLookup()
    layer.adapt(grain.MapDataset.source(Source()).batch(batch_size=2))
    assert "cat" in layer.get_vocabulary()


def test_fixed_vocabulary():
    layer = jaxembed.StringLookup(output_mode="int", vocabulary=["a", "b", "c"])
    np.testing.assert_array_equal(np.asarray(layer(["b", "c", "d"])), [2, 3, 0])


@pytest.mark.skip(
    reason="tf.SparseTensor inputs: jaxembed takes dense NumPy/JAX inputs, not TF sparse tensors"
)
def test_sparse_inputs():
    pass


def test_set_vocabulary():
    layer = jaxembed.StringLookup(output_mode="int")
    layer.set_vocabulary(["a", "b", "c"])
    np.testing.assert_array_equal(np.asarray(layer(["b", "c", "d"])), [2, 3, 0])


def test_tf_data_compatibility():
    # Keras maps the layer inside a tf.data graph; jaxembed's layer runs eagerly on the batches.
    layer = jaxembed.StringLookup(output_mode="int", vocabulary=["a", "b", "c"])
    ds = tf.data.Dataset.from_tensor_slices(["b", "c", "d"]).batch(3)
    output = [np.asarray(layer(batch)) for batch in ds.as_numpy_iterator()][0]
    np.testing.assert_array_equal(output, [2, 3, 0])


def test_tensor_as_vocab():
    vocab = tf.constant(["a", "b", "c", "d"])
    data = [["a", "c", "d"], ["d", "z", "b"]]
    layer = jaxembed.StringLookup(vocabulary=vocab)
    np.testing.assert_array_equal(np.asarray(layer(data)), [[1, 3, 4], [4, 0, 2]])


def test_torch_backend_compatibility():
    torch = pytest.importorskip("torch", reason="torch (the `compare` extra) is not installed")
    forward_lookup = jaxembed.StringLookup(vocabulary=["a", "b", "c"], oov_token="[OOV]")
    np.testing.assert_array_equal(np.asarray(forward_lookup(["a", "b", "[OOV]", "d"])), [1, 2, 0, 0])
    inverse_lookup = jaxembed.StringLookup(vocabulary=["a", "b", "c"], oov_token="[OOV]", invert=True)
    output_string = inverse_lookup(torch.tensor([1, 2, 0], dtype=torch.int64))
    assert output_string.tolist() == ["a", "b", "[OOV]"]


def test_invert_lookup_basic():
    layer = jaxembed.StringLookup(vocabulary=["a", "b", "c"], invert=True)
    assert layer([1, 2, 0]).tolist() == ["a", "b", "[UNK]"]


def test_output_mode_count_shape():
    layer = jaxembed.StringLookup(vocabulary=["a", "b"], output_mode="count")
    output = layer(["a", "a", "a", "b", "b"])
    assert output.shape[-1] == len(layer.get_vocabulary())
    _same_as_keras(
        layer, keras.layers.StringLookup(vocabulary=["a", "b"], output_mode="count"), ["a", "b", "b"]
    )


def test_output_mode_multi_hot_binary():
    layer = jaxembed.StringLookup(vocabulary=["a", "b"], output_mode="multi_hot")
    np.testing.assert_array_equal(np.asarray(layer(["a", "b"])), [0, 1, 1])


def test_mask_token_basic():
    layer = jaxembed.StringLookup(vocabulary=["a"], mask_token="[MASK]")
    assert int(layer(["[MASK]", "a"])[0]) == 0


def test_sparse_output_in_multi_hot():
    # Keras (TensorFlow backend) returns a tf.SparseTensor for a ragged input; jaxembed returns a
    # jax.experimental.sparse.BCOO for the same rows given as a rectangular array.
    from jax.experimental import sparse as jsparse

    layer = jaxembed.StringLookup(vocabulary=["a", "b", "c"], output_mode="multi_hot", sparse=True)
    output = layer([["a", "b"], ["c", "a"]])
    assert isinstance(output, jsparse.BCOO)
    np.testing.assert_array_equal(np.asarray(output.todense()), [[0, 1, 1, 0], [0, 1, 0, 1]])


def test_get_vocabulary_include_special_tokens_false():
    layer = jaxembed.StringLookup(vocabulary=["a", "b", "c"])
    assert layer.get_vocabulary(include_special_tokens=False) == ["a", "b", "c"]


def test_one_hot_symbolic_output_shape_nested_input():
    layer = jaxembed.StringLookup(
        max_tokens=20,
        num_oov_indices=4,
        oov_token="[UNK]",
        vocabulary=["a", "b", "c", "d", "e", "f", "g", "h", "i"],
        output_mode="one_hot",
        pad_to_max_tokens=True,
        sparse=False,
    )
    assert layer.compute_output_shape((None, 2, 2)) == (None, 2, 2, 20)
    input_data = np.array([[["a", "b"], ["c", "d"]], [["a", "b"], ["c", "d"]]])
    eager_output = layer(input_data)
    assert eager_output.shape == (2, 2, 2, 20)
    assert layer.compute_output_shape(input_data.shape) == eager_output.shape


def test_salt_siphash():
    vocab = ["a", "b", "c"]
    layer_farmhash = jaxembed.StringLookup(vocabulary=vocab, num_oov_indices=4)
    layer_siphash = jaxembed.StringLookup(vocabulary=vocab, num_oov_indices=4, salt=[137, 42])
    oov_values = ["x", "y", "z", "w", "v", "u"]
    out_farmhash = np.asarray(layer_farmhash(oov_values))
    out_siphash = np.asarray(layer_siphash(oov_values))
    assert not np.array_equal(out_farmhash, out_siphash)
    _same_as_keras(layer_farmhash, keras.layers.StringLookup(vocabulary=vocab, num_oov_indices=4), oov_values)
    _same_as_keras(
        layer_siphash,
        keras.layers.StringLookup(vocabulary=vocab, num_oov_indices=4, salt=[137, 42]),
        oov_values,
    )
