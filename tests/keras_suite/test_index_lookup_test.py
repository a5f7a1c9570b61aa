"""Keras's ``keras/src/layers/preprocessing/index_lookup_test.py``, ported to jaxembed.

Keras tests its private ``IndexLookup`` with ``vocabulary_dtype="string"`` or ``"int64"``; jaxembed's
public faces of the same code are :class:`jaxembed.StringLookup` and :class:`jaxembed.IntegerLookup`,
so :func:`index_lookup` picks the one the dtype names. ``run_class_serialization_test`` becomes a
config round trip; ``save_assets``/``load_assets`` are jaxembed's too; Keras's ``.keras`` model
round trip becomes jaxembed's atomic ``save``/``load``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxembed

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow", reason="TensorFlow (the `compare` extra) is the oracle here")


def index_lookup(vocabulary_dtype, **kwargs):
    layer = jaxembed.StringLookup if vocabulary_dtype == "string" else jaxembed.IntegerLookup
    return layer(**kwargs)


def _round_trip(layer):
    """Keras's run_class_serialization_test: config -> layer -> the same config and vocabulary."""
    config = layer.get_config()
    rebuilt = type(layer).from_config(config)
    assert rebuilt.get_config() == config
    if config["vocabulary"] is not None:
        assert rebuilt.get_vocabulary() == layer.get_vocabulary()


def _basics(kwargs, adapt_data, input_data, vocabulary, with_special, expected_vocab, expected_ids):
    layer = index_lookup(**kwargs)
    layer.adapt(adapt_data)
    assert layer.get_vocabulary() == expected_vocab
    assert layer.get_vocabulary(include_special_tokens=False) == vocabulary
    assert list(np.asarray(layer(input_data))) == expected_ids
    _round_trip(layer)
    assert list(np.asarray(layer(np.array(input_data)))) == expected_ids
    for given in (vocabulary, with_special):
        layer = index_lookup(vocabulary=given, **kwargs)
        assert layer.get_vocabulary() == expected_vocab
        assert layer.get_vocabulary(include_special_tokens=False) == vocabulary
        assert list(np.asarray(layer(input_data))) == expected_ids
        _round_trip(layer)
        layer = index_lookup(**kwargs)
        layer.set_vocabulary(given)
        assert layer.get_vocabulary() == expected_vocab
        assert list(np.asarray(layer(input_data))) == expected_ids
        _round_trip(layer)


def test_basics_string_vocab():
    kwargs = dict(
        max_tokens=7, num_oov_indices=1, mask_token="", oov_token="[OOV]", vocabulary_dtype="string"
    )
    _basics(
        kwargs,
        ["one", "one", "one", "two", "two", "three"],
        ["one", "two", "four"],
        ["one", "two", "three"],
        ["", "[OOV]", "one", "two", "three"],
        ["", "[OOV]", "one", "two", "three"],
        [2, 3, 1],
    )


def test_basics_integer_vocab():
    kwargs = dict(max_tokens=7, num_oov_indices=1, mask_token=0, oov_token=-1, vocabulary_dtype="int64")
    _basics(kwargs, [1, 1, 1, 2, 2, 3], [1, 2, 4], [1, 2, 3], [0, -1, 1, 2, 3], [0, -1, 1, 2, 3], [2, 3, 1])
    layer = index_lookup(vocabulary=[1, 2, 3], **kwargs)
    assert jax.jit(layer)(jnp.array([1, 2, 4])).tolist() == [2, 3, 1]


def test_max_tokens_adapt():
    kwargs = dict(max_tokens=4, num_oov_indices=1, mask_token=0, oov_token=-1, vocabulary_dtype="int64")
    layer = index_lookup(**kwargs)
    layer.adapt([1, 1, 1, 2, 2, 3])
    assert layer.get_vocabulary() == [0, -1, 1, 2]
    assert layer.get_vocabulary(include_special_tokens=False) == [1, 2]
    assert list(np.asarray(layer([1, 2, 3, 4]))) == [2, 3, 1, 1]
    _round_trip(layer)


def test_pad_to_max_tokens():
    layer = index_lookup(
        max_tokens=5,
        num_oov_indices=1,
        mask_token=0,
        oov_token=-1,
        vocabulary_dtype="int64",
        vocabulary=[1, 2],
        pad_to_max_tokens=True,
        output_mode="multi_hot",
    )
    np.testing.assert_array_equal(np.asarray(layer([1, 2])), [0, 1, 1, 0, 0])
    _round_trip(layer)


def test_output_modes():
    kwargs = dict(
        max_tokens=7,
        num_oov_indices=1,
        mask_token="",
        oov_token="[OOV]",
        vocabulary_dtype="string",
        vocabulary=["one", "two", "three"],
    )
    single = ["one", "two", "four"]
    batch = [["one", "two", "four", "two"]]
    expected = {
        "int": ([2, 3, 1], [[2, 3, 1, 3]]),
        "multi_hot": ([1, 1, 1, 0], [[1, 1, 1, 0]]),
        "one_hot": ([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], None),
        "count": ([1, 1, 1, 0], [[1, 1, 2, 0]]),
        "tf_idf": ([0.2, 0.1, 0.2, 0.0], [[0.2, 0.1, 0.4, 0.0]]),
    }
    for mode, (single_out, batch_out) in expected.items():
        extra = {"idf_weights": np.array([0.1, 0.2, 0.3])} if mode == "tf_idf" else {}
        layer = index_lookup(output_mode=mode, **kwargs, **extra)
        np.testing.assert_allclose(np.asarray(layer(single)), single_out, rtol=1e-6)
        if batch_out is not None:
            np.testing.assert_allclose(np.asarray(layer(batch)), batch_out, rtol=1e-6)


def test_one_hot_symbolic_output_shape_with_higher_rank_input():
    layer = jaxembed.IntegerLookup(vocabulary=[1, 2, 3], output_mode="one_hot")
    assert layer.compute_output_shape((None, 2, 2)) == (None, 2, 2, 4)
    eager_input = np.array([[[1, 2], [3, 0]], [[1, 2], [3, 0]]])
    assert layer(eager_input).shape == (2, 2, 2, 4)
    assert jax.jit(layer)(jnp.asarray(eager_input)).shape == (2, 2, 2, 4)


def test_one_hot_compute_output_shape_multi_hot_consistency():
    kwargs = dict(
        max_tokens=10,
        num_oov_indices=1,
        mask_token=None,
        oov_token="[OOV]",
        vocabulary_dtype="string",
        vocabulary=["a", "b", "c"],
    )
    assert index_lookup(**kwargs, output_mode="multi_hot").compute_output_shape((None, 5)) == (None, 4)
    assert index_lookup(**kwargs, output_mode="one_hot").compute_output_shape((None, 2, 2)) == (None, 2, 2, 4)


def test_one_hot_compute_output_spec_preserves_input_dims():
    # Keras's symbolic spec (shape (None, 3, 4, 4), dtype floatx); jaxembed has no symbolic tensors,
    # so the shape comes from compute_output_shape and jax.eval_shape of the jitted call.
    layer = jaxembed.IntegerLookup(vocabulary=[1, 2, 3], output_mode="one_hot")
    assert layer.compute_output_shape((None, 3, 4)) == (None, 3, 4, 4)
    spec = jax.eval_shape(layer, jax.ShapeDtypeStruct((2, 3, 4), jnp.int32))
    assert spec.shape == (2, 3, 4, 4)
    # Keras's spec says floatx, but its eager one_hot output is int (the lookup's int64 ids):
    theirs = keras.layers.IntegerLookup(vocabulary=[1, 2, 3], output_mode="one_hot")
    assert layer(np.ones((2, 3, 4), int)).dtype == np.asarray(theirs(np.ones((2, 3, 4), int))).dtype


def test_sparse_outputs():
    # Keras leaves this test empty (TODO); jaxembed checks that every vector mode's BCOO equals
    # the dense output.
    from jax.experimental import sparse as jsparse

    data = [["a", "b", "b"], ["c", "x", "a"]]
    for mode in ("one_hot", "multi_hot", "count", "tf_idf"):
        extra = {"idf_weights": [0.5, 1.0, 2.0]} if mode == "tf_idf" else {}
        dense = jaxembed.StringLookup(vocabulary=["a", "b", "c"], output_mode=mode, **extra)
        sparse = jaxembed.StringLookup(vocabulary=["a", "b", "c"], output_mode=mode, sparse=True, **extra)
        out = sparse(data)
        assert isinstance(out, jsparse.BCOO)
        np.testing.assert_allclose(np.asarray(out.todense()), np.asarray(dense(data)), rtol=1e-6)


def test_adapt_tf_idf():
    kwargs = dict(
        max_tokens=7,
        num_oov_indices=1,
        mask_token="",
        oov_token="[OOV]",
        vocabulary_dtype="string",
        output_mode="tf_idf",
    )
    adapt_data = ["one", "one", "one", "two", "two", "three"]
    layer = index_lookup(**kwargs)
    layer.adapt(adapt_data)
    idf_weights = np.log(1 + len(adapt_data) / (1 + np.array([3, 2, 1])))
    np.testing.assert_allclose(layer.idf_weights[1:], idf_weights, rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(layer(["one", "two", "four"])), [1.1337324, 0.91629076, 1.0986123, 0.0], rtol=1e-6
    )
    adapt_data = [["one", "one"], ["one", "two"], ["two", "three"]]
    layer = index_lookup(**kwargs)
    layer.adapt(adapt_data)
    idf_weights = np.log(1 + len(adapt_data) / (1 + np.array([2, 2, 1])))
    np.testing.assert_allclose(layer.idf_weights[1:], idf_weights, rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(layer([["one", "two"], ["two", "four"]])),
        [[0.0, 0.6931472, 0.6931472, 0.0], [0.76752836, 0.0, 0.6931472, 0.0]],
        rtol=1e-6,
    )


def test_invert():
    layer = index_lookup(
        max_tokens=7,
        num_oov_indices=1,
        mask_token="",
        oov_token="[OOV]",
        vocabulary_dtype="string",
        vocabulary=["one", "two", "three"],
        invert=True,
        output_mode="int",
    )
    assert layer([2, 3, 1]).tolist() == ["one", "two", "[OOV]"]
    assert layer([[2, 3, 1, 3]]).tolist()[0] == ["one", "two", "[OOV]", "two"]


def test_saving(tmp_path):
    kwargs = dict(
        max_tokens=7,
        num_oov_indices=1,
        mask_token="",
        oov_token="[OOV]",
        vocabulary_dtype="string",
        output_mode="int",
    )
    batch_input_data = np.array([["one", "two", "four"]])
    layer = index_lookup(**kwargs)
    layer.adapt(["one", "one", "one", "two", "two", "three"])
    output_1 = np.asarray(layer(batch_input_data))
    loaded = jaxembed.StringLookup.load(layer.save(tmp_path / "lookup.json"))
    np.testing.assert_array_equal(np.asarray(loaded(batch_input_data)), output_1)
    layer = index_lookup(vocabulary=["one", "two", "three"], **kwargs)
    output_1 = np.asarray(layer(batch_input_data))
    loaded = jaxembed.StringLookup.load(layer.save(tmp_path / "lookup.json"))
    np.testing.assert_array_equal(np.asarray(loaded(batch_input_data)), output_1)


def test_adapt_with_tf_data():
    adapt_data = tf.data.Dataset.from_tensor_slices(["one", "one", "one", "two", "two", "three"]).batch(2)
    kwargs = dict(
        max_tokens=7, num_oov_indices=1, mask_token="", oov_token="[OOV]", vocabulary_dtype="string"
    )
    layer = index_lookup(**kwargs)
    layer.adapt(adapt_data)  # a tf.data.Dataset is an iterable of batches
    assert layer.get_vocabulary() == ["", "[OOV]", "one", "two", "three"]
    assert layer.get_vocabulary(include_special_tokens=False) == ["one", "two", "three"]
    assert list(np.asarray(layer(["one", "two", "four"]))) == [2, 3, 1]
    _round_trip(layer)


def test_max_tokens_less_than_two():
    with pytest.raises(ValueError, match="If set, `max_tokens` must be greater than 1."):
        index_lookup(
            max_tokens=1, num_oov_indices=1, mask_token=None, oov_token=None, vocabulary_dtype="int64"
        )


def test_max_tokens_none_with_pad_to_max_tokens():
    with pytest.raises(ValueError, match="If pad_to_max_tokens is True, must set `max_tokens`."):
        index_lookup(
            num_oov_indices=1,
            max_tokens=None,
            mask_token=None,
            oov_token=None,
            vocabulary_dtype="int64",
            pad_to_max_tokens=True,
        )


def test_negative_num_oov_indices():
    with pytest.raises(ValueError, match="`num_oov_indices` must be greater than or equal to 0."):
        index_lookup(
            max_tokens=10, num_oov_indices=-1, mask_token=None, oov_token=None, vocabulary_dtype="int64"
        )


def test_invert_with_non_int_output_mode():
    with pytest.raises(ValueError, match=r"`output_mode` must be `'int'` when `invert` is true."):
        index_lookup(
            num_oov_indices=1,
            max_tokens=None,
            mask_token=None,
            oov_token=None,
            vocabulary_dtype="string",
            invert=True,
            output_mode="one_hot",
        )


def test_sparse_true_with_int_output_mode():
    with pytest.raises(ValueError, match=r"`sparse` may only be true if `output_mode` is `'one_hot'`"):
        index_lookup(
            num_oov_indices=1,
            max_tokens=None,
            mask_token=None,
            oov_token=None,
            vocabulary_dtype="string",
            sparse=True,
            output_mode="int",
        )


def test_idf_weights_set_with_non_tfidf_output_mode():
    with pytest.raises(ValueError, match=r"`idf_weights` should only be set if `output_mode` is `'tf_idf'`"):
        index_lookup(
            num_oov_indices=1,
            max_tokens=None,
            mask_token=None,
            oov_token=None,
            vocabulary_dtype="string",
            idf_weights=[0.5, 0.1, 0.3],
            output_mode="int",
        )


def test_unrecognized_kwargs():
    with pytest.raises(ValueError, match="Unrecognized keyword argument"):
        index_lookup(
            num_oov_indices=1,
            max_tokens=None,
            mask_token=None,
            oov_token=None,
            vocabulary_dtype="string",
            output_mode="int",
            extra_arg=True,
        )


def test_non_tf_idf_with_idf_weights():
    with pytest.raises(ValueError, match="`idf_weights` should only be set if `output_mode` is"):
        index_lookup(
            num_oov_indices=1,
            max_tokens=None,
            mask_token=None,
            oov_token=None,
            vocabulary_dtype="string",
            output_mode="multi_hot",
            idf_weights=[0.5, 0.1, 0.3],
        )


def test_vocabulary_file_does_not_exist():
    with pytest.raises(ValueError, match="Vocabulary file path/to/missing_vocab.txt does not exist"):
        index_lookup(
            num_oov_indices=1,
            max_tokens=None,
            mask_token=None,
            oov_token=None,
            vocabulary_dtype="string",
            output_mode="int",
            vocabulary="path/to/missing_vocab.txt",
        )


def test_repeated_tokens_in_vocabulary():
    with pytest.raises(ValueError, match="The passed vocabulary has at least one repeated term."):
        index_lookup(
            num_oov_indices=1,
            max_tokens=None,
            mask_token=None,
            oov_token=None,
            vocabulary_dtype="string",
            vocabulary=["token", "token", "unique"],
        )


def test_mask_token_in_wrong_position():
    with pytest.raises(ValueError, match="Found reserved mask token at unexpected location in `vocabulary`."):
        index_lookup(
            num_oov_indices=1,
            max_tokens=None,
            mask_token="mask",
            oov_token=None,
            vocabulary_dtype="string",
            vocabulary=["token", "mask", "unique"],
        )


def test_ensure_known_vocab_size_without_vocabulary():
    layer = index_lookup(
        num_oov_indices=1,
        mask_token="",
        oov_token="[OOV]",
        output_mode="multi_hot",
        pad_to_max_tokens=False,
        vocabulary_dtype="string",
        max_tokens=None,
    )
    with pytest.raises(RuntimeError, match="When using `output_mode=multi_hot` and"):
        layer(["sample", "data"])


def _assets_kwargs(num_oov_indices=1):
    return dict(
        max_tokens=10,
        num_oov_indices=num_oov_indices,
        mask_token="<mask>",
        oov_token="[OOV]",
        vocabulary_dtype="string",
    )


def test_save_and_load_assets_string_vocab(tmp_path):
    layer = index_lookup(**_assets_kwargs())
    layer.set_vocabulary(["apple", "banana", "cherry"])
    sample_input = ["apple", "banana", "unknown"]
    layer.save_assets(tmp_path)
    layer2 = index_lookup(**_assets_kwargs())
    layer2.load_assets(tmp_path)
    assert layer2.get_vocabulary() == layer.get_vocabulary()
    assert layer2.get_vocabulary(include_special_tokens=False) == layer.get_vocabulary(
        include_special_tokens=False
    )
    np.testing.assert_array_equal(np.asarray(layer2(sample_input)), np.asarray(layer(sample_input)))
    # Keras reads jaxembed's asset file (and the other way round): same layout.
    theirs = keras.layers.StringLookup(
        max_tokens=10, num_oov_indices=1, mask_token="<mask>", oov_token="[OOV]"
    )
    theirs.load_assets(str(tmp_path))
    assert [str(t) for t in theirs.get_vocabulary()] == layer.get_vocabulary()


def test_save_and_load_assets_with_multiple_oov_indices(tmp_path):
    layer = index_lookup(**_assets_kwargs(2))
    layer.set_vocabulary(["apple", "banana"])
    vocab_before = layer.get_vocabulary(include_special_tokens=True)
    assert len(vocab_before) == 5
    assert vocab_before[:3] == ["<mask>", "[OOV]", "[OOV]"]
    layer.save_assets(tmp_path)
    layer2 = index_lookup(**_assets_kwargs(2))
    layer2.load_assets(tmp_path)
    assert layer2.get_vocabulary() == vocab_before


def test_load_assets_handles_trailing_newlines(tmp_path):
    layer = index_lookup(**_assets_kwargs())
    layer.set_vocabulary(["apple", "banana", "cherry"])
    (tmp_path / "vocabulary.txt").write_text("<mask>\n[OOV]\napple\nbanana\ncherry\n")
    layer2 = index_lookup(**_assets_kwargs())
    layer2.load_assets(tmp_path)
    assert layer2.get_vocabulary() == layer.get_vocabulary()


def test_oov_method_ignored_for_string_dtype():
    kwargs = dict(
        max_tokens=10,
        num_oov_indices=4,
        mask_token="",
        oov_token="[OOV]",
        vocabulary_dtype="string",
        vocabulary=["cat", "dog", "fish"],
    )
    oov_data = ["aaa", "bbb", "ccc", "ddd", "eee", "fff"]
    out_floormod = np.asarray(index_lookup(oov_method="floormod", **kwargs)(oov_data))
    out_farmhash = np.asarray(index_lookup(oov_method="farmhash", **kwargs)(oov_data))
    np.testing.assert_array_equal(out_floormod, out_farmhash)
    theirs = keras.layers.StringLookup(**{k: v for k, v in kwargs.items() if k != "vocabulary_dtype"})
    np.testing.assert_array_equal(out_farmhash, np.asarray(theirs(oov_data)))


def test_salt_config_serialization():
    layer = index_lookup(
        max_tokens=10,
        num_oov_indices=2,
        mask_token=None,
        oov_token=-1,
        vocabulary_dtype="int64",
        vocabulary=[1, 2, 3],
        oov_method="farmhash",
        salt=[137, 42],
    )
    _round_trip(layer)
    assert layer.get_config()["salt"] == [137, 42]


def test_salt_valid_and_invalid_formats():
    base_kwargs = dict(
        max_tokens=10,
        num_oov_indices=2,
        mask_token=None,
        oov_token=-1,
        vocabulary_dtype="int64",
        oov_method="farmhash",
    )
    assert index_lookup(salt=[137, 42], **base_kwargs).salt == [137, 42]
    assert index_lookup(salt=99, **base_kwargs).salt == [99, 99]
    with pytest.raises(ValueError, match="salt"):
        index_lookup(salt="bad", **base_kwargs)
    with pytest.raises(ValueError, match="salt"):
        index_lookup(salt=[1, 2, 3], **base_kwargs)


def test_salt_requires_farmhash():
    with pytest.raises(ValueError, match="oov_method='farmhash'"):
        index_lookup(
            max_tokens=10,
            num_oov_indices=2,
            mask_token=None,
            oov_token=-1,
            vocabulary_dtype="int64",
            oov_method="floormod",
            salt=[137, 42],
        )


def test_salt_produces_different_output_than_farmhash():
    for dtype, vocab, oov_data in [
        ("int64", [1, 2, 3], [100, 200, 300, 400, 500, 600]),
        ("string", ["a", "b", "c"], ["x", "y", "z", "w", "v", "u"]),
    ]:
        base_kwargs = dict(
            max_tokens=10,
            num_oov_indices=4,
            mask_token=None,
            oov_token=-1 if dtype == "int64" else "[OOV]",
            vocabulary_dtype=dtype,
            vocabulary=vocab,
            oov_method="farmhash",
        )
        out_farmhash = np.asarray(index_lookup(**base_kwargs)(oov_data))
        out_siphash = np.asarray(index_lookup(salt=[137, 42], **base_kwargs)(oov_data))
        assert not np.array_equal(out_farmhash, out_siphash), dtype
