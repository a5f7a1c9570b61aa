"""StringLookup and IntegerLookup against real Keras (the oracle) on random vocabularies and inputs."""

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxembed

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

MODES = ["int", "one_hot", "multi_hot", "count", "tf_idf"]


def _random_words(rng, count, alphabet="abcdefgh\u00e9\u4e2d"):
    words = set()
    while len(words) < count:
        words.add("".join(rng.choice(list(alphabet), size=rng.integers(1, 5))))
    return sorted(words)


def _keras_values(output):
    if isinstance(output, tf.Tensor):
        output = output.numpy()
    output = np.asarray(output)
    if output.dtype.kind in "SO":
        return np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else b, otypes=[object])(output)
    return output


def _ours(output):
    return np.asarray(output)


# The salt only matters with several OOV ids (strings are then hashed into them).
CASES = [
    (mode, num_oov, mask, salt)
    for mode in MODES
    for num_oov in (0, 1, 3)
    for mask in (None, "mask")
    for salt in ((None, 7) if num_oov == 3 else (None,))
]


@pytest.mark.parametrize("output_mode,num_oov,mask,salt", CASES)
def test_string_lookup_matches_keras(output_mode, num_oov, mask, salt):
    rng = np.random.default_rng(hash((output_mode, num_oov, mask, salt)) % 2**32)
    vocabulary = _random_words(rng, 12)
    vocab = list(rng.permutation(vocabulary))
    idf = rng.uniform(0.1, 2.0, len(vocab)).astype(np.float32) if output_mode == "tf_idf" else None
    kwargs = dict(vocabulary=vocab, idf_weights=idf, num_oov_indices=num_oov, mask_token=mask, salt=salt)
    kwargs["output_mode"] = output_mode
    ours = jaxembed.StringLookup(**kwargs)
    theirs = keras.layers.StringLookup(**kwargs)
    assert ours.get_vocabulary() == [str(t) for t in theirs.get_vocabulary()]
    assert ours.vocabulary_size() == theirs.vocabulary_size()
    pool = vocab + ([] if num_oov == 0 else _random_words(rng, 6, "xyz")) + ([mask] if mask else [])
    shape = (4, 3) if output_mode != "one_hot" else (5, 1)
    data = rng.choice(np.array(pool, dtype=object), size=shape).astype(str)
    np.testing.assert_allclose(_ours(ours(data)), _keras_values(theirs(data)), rtol=1e-6)
    np.testing.assert_allclose(_ours(ours(data[0])), _keras_values(theirs(data[0])), rtol=1e-6)
    np.testing.assert_allclose(_ours(ours(data.tolist())), _keras_values(theirs(data)), rtol=1e-6)
    if output_mode == "int":
        cube = rng.choice(np.array(pool, dtype=object), size=(2, 3, 2)).astype(str)
        np.testing.assert_array_equal(_ours(ours(cube)), _keras_values(theirs(cube)))


INTEGER_CASES = [(*case, "floormod") for case in itertools.product(MODES, [0, 1, 4], [None, 0])] + [
    (mode, 4, mask, "farmhash") for mode in MODES for mask in (None, 0)
]


@pytest.mark.parametrize("output_mode,num_oov,mask,oov_method", INTEGER_CASES)
def test_integer_lookup_matches_keras(output_mode, num_oov, mask, oov_method):
    rng = np.random.default_rng(hash((output_mode, num_oov, mask, oov_method)) % 2**32)
    vocab = [int(v) for v in rng.choice(np.arange(1, 10_000), 15, replace=False)]
    idf = rng.uniform(0.1, 2.0, len(vocab)).astype(np.float32) if output_mode == "tf_idf" else None
    # farmhash OOV buckets: FarmHash64 without a salt, SipHash-2-4 with one.
    salt = [3, 11] if oov_method == "farmhash" and mask == 0 else None
    kwargs = dict(vocabulary=vocab, idf_weights=idf, num_oov_indices=num_oov, mask_token=mask)
    kwargs.update(output_mode=output_mode, oov_method=oov_method, salt=salt)
    ours = jaxembed.IntegerLookup(**kwargs)
    theirs = keras.layers.IntegerLookup(**kwargs)
    assert ours.get_vocabulary() == [int(t) for t in theirs.get_vocabulary()]
    pool = (
        vocab + ([] if num_oov == 0 else [-7, 20_001, 123_456, 10**9]) + ([mask] if mask is not None else [])
    )
    shape = (6, 2) if output_mode != "one_hot" else (6, 1)
    data = rng.choice(np.array(pool), size=shape)
    expected = _keras_values(theirs(data))
    np.testing.assert_allclose(_ours(ours(data)), expected, rtol=1e-6)
    np.testing.assert_allclose(_ours(ours(data.tolist())), expected, rtol=1e-6)
    np.testing.assert_allclose(_ours(ours(jnp.asarray(data))), expected, rtol=1e-6)
    if oov_method == "floormod" or output_mode == "int":  # (each jit of the hash compiles for seconds)
        np.testing.assert_allclose(_ours(jax.jit(ours)(jnp.asarray(data))), expected, rtol=1e-6)


ADAPT_CASES = [
    (layer, mode, max_tokens, pad)
    for layer in ("string", "integer")
    for mode in MODES
    for max_tokens, pad in [(None, False), (6, False), (9, True)]
    if not (pad and mode == "int")  # pad_to_max_tokens is for the vector modes
]


@pytest.mark.parametrize("layer,output_mode,max_tokens,pad", ADAPT_CASES)
def test_adapt_matches_keras(layer, output_mode, max_tokens, pad):
    rng = np.random.default_rng(5)
    if layer == "string":
        pool = np.array(_random_words(rng, 10), dtype=object)
        ours_cls, theirs_cls = jaxembed.StringLookup, keras.layers.StringLookup
        data = rng.choice(pool, size=(20, 4)).astype(str)
    else:
        ours_cls, theirs_cls = jaxembed.IntegerLookup, keras.layers.IntegerLookup
        data = rng.integers(1, 12, size=(20, 4))
    kwargs = dict(output_mode=output_mode, max_tokens=max_tokens, pad_to_max_tokens=pad)
    ours, theirs = ours_cls(**kwargs), theirs_cls(**kwargs)
    ours.adapt(data)
    theirs.adapt(data)
    normal = str if layer == "string" else int
    assert ours.get_vocabulary() == [normal(t) for t in theirs.get_vocabulary()]
    if output_mode == "tf_idf":
        np.testing.assert_allclose(ours.idf_weights, np.asarray(theirs.idf_weights_const), rtol=1e-6)
    np.testing.assert_allclose(_ours(ours(data[:5])), _keras_values(theirs(data[:5])), rtol=1e-6)
    # A 1-D array is a column (one document per token), as in Keras.
    ours, theirs = ours_cls(**kwargs), theirs_cls(**kwargs)
    ours.adapt(data[:, 0])
    theirs.adapt(data[:, 0])
    assert ours.get_vocabulary() == [normal(t) for t in theirs.get_vocabulary()]
    if output_mode == "tf_idf":
        np.testing.assert_allclose(ours.idf_weights, np.asarray(theirs.idf_weights_const), rtol=1e-6)


@pytest.mark.parametrize("mask", [None, "[MASK]"])
@pytest.mark.parametrize("num_oov", [1, 2])
def test_string_invert_matches_keras(mask, num_oov):
    vocab = ["a", "b", "c", "d"]
    ours = jaxembed.StringLookup(vocabulary=vocab, mask_token=mask, num_oov_indices=num_oov, invert=True)
    theirs = keras.layers.StringLookup(
        vocabulary=vocab, mask_token=mask, num_oov_indices=num_oov, invert=True
    )
    ids = np.array([[0, 1, 2], [3, 4, 5], [6, 9, -1]])
    expected = _keras_values(theirs(tf.constant(ids)))
    np.testing.assert_array_equal(ours(ids).astype(object), expected)


@pytest.mark.parametrize("mask", [None, 0])
def test_integer_invert_matches_keras_and_jits(mask):
    vocab = [5, 6, 7, 100]
    ours = jaxembed.IntegerLookup(vocabulary=vocab, mask_token=mask, invert=True)
    theirs = keras.layers.IntegerLookup(vocabulary=vocab, mask_token=mask, invert=True)
    ids = np.array([[0, 1, 2], [3, 4, 5], [6, 9, -1]])
    expected = _keras_values(theirs(ids))
    np.testing.assert_array_equal(_ours(ours(ids)), expected)
    np.testing.assert_array_equal(_ours(jax.jit(ours)(jnp.asarray(ids))), expected)


def test_config_round_trip_and_keras_config():
    layer = jaxembed.IntegerLookup(vocabulary=[3, 1, 2], mask_token=0, num_oov_indices=2, name="ids")
    theirs = keras.layers.IntegerLookup(vocabulary=[3, 1, 2], mask_token=0, num_oov_indices=2, name="ids")
    ours_config, keras_config = layer.get_config(), theirs.get_config()
    for key, value in ours_config.items():
        assert keras_config[key] == value, key
    assert set(keras_config) - set(ours_config) == {"trainable", "dtype"}
    rebuilt = jaxembed.IntegerLookup.from_config(keras_config)
    assert rebuilt.get_vocabulary() == layer.get_vocabulary()
    strings = keras.layers.StringLookup(vocabulary=["x", "y"], output_mode="count").get_config()
    assert jaxembed.StringLookup.from_config(strings).get_vocabulary() == ["[UNK]", "x", "y"]
    with pytest.raises(ValueError, match=r"Unrecognized keyword argument\(s\).*\['bogus'\]"):
        jaxembed.StringLookup.from_config({**strings, "bogus": 1})


@pytest.mark.parametrize("output_mode", ["int", "tf_idf"])
def test_save_load_round_trip(tmp_path, output_mode):
    layer = jaxembed.StringLookup(
        output_mode=output_mode, mask_token="", max_tokens=10, pad_to_max_tokens=True
    )
    layer.adapt([["a", "b", "b"], ["c", "", "a"], ["a", "d", "d"]])
    path = layer.save(tmp_path / "lookup.json")
    loaded = jaxembed.StringLookup.load(path)
    assert loaded.get_vocabulary() == layer.get_vocabulary()
    data = [["a", "zz", "d"], ["", "b", "c"]]
    np.testing.assert_array_equal(np.asarray(loaded(data)), np.asarray(layer(data)))
    ints = jaxembed.IntegerLookup(num_oov_indices=2)
    ints.adapt(np.array([4, 4, 9, 1]))
    loaded = jaxembed.IntegerLookup.load(ints.save(tmp_path / "ints.json"))
    assert loaded.get_vocabulary() == [-1, -1, 4, 9, 1]


def test_load_refuses_hostile_files(tmp_path):
    layer = jaxembed.StringLookup(vocabulary=["a", "b"])
    path = layer.save(tmp_path / "lookup.json")
    document = json.loads(path.read_text())
    for change, message in [
        ({"extra": 1}, "unknown key 'extra'"),
        ({"format": "other"}, "is not a saved StringLookup"),
        ({"version": 99}, "format version 99"),
        ({"vocabulary": ["a", "a"]}, "repeated term"),
        ({"vocabulary": ["a", 3]}, "mix strings"),
        ({"config": {**document["config"], "evil": True}}, r"Unrecognized keyword.*'evil'"),
    ]:
        (tmp_path / "bad.json").write_text(json.dumps({**document, **change}))
        with pytest.raises(ValueError, match=message):
            jaxembed.StringLookup.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        jaxembed.StringLookup.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="not a saved IntegerLookup"):
        jaxembed.IntegerLookup.load(path)
    with pytest.raises(FileNotFoundError):
        jaxembed.StringLookup.load(tmp_path / "missing.json")


def test_vocabulary_file(tmp_path):
    (tmp_path / "vocab.txt").write_text("earth\nwind\nfire\n", encoding="utf-8")
    ours = jaxembed.StringLookup(vocabulary=str(tmp_path / "vocab.txt"))
    theirs = keras.layers.StringLookup(vocabulary=str(tmp_path / "vocab.txt"))
    data = np.array([["earth", "water"], ["fire", "wind"]])
    np.testing.assert_array_equal(np.asarray(ours(data)), np.asarray(theirs(data)))
    assert ours.get_vocabulary() == theirs.get_vocabulary()


def test_sparse_output_is_bcoo_with_the_dense_values():
    from jax.experimental import sparse as jsparse

    dense = jaxembed.StringLookup(vocabulary=["a", "b", "c"], output_mode="count")
    sparse = jaxembed.StringLookup(vocabulary=["a", "b", "c"], output_mode="count", sparse=True)
    data = [["a", "b", "b"], ["c", "q", "a"]]
    out = sparse(data)
    assert isinstance(out, jsparse.BCOO)
    np.testing.assert_array_equal(np.asarray(out.todense()), np.asarray(dense(data)))


# ------------------------------------------------------------------ bad input (Keras's error types)
@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (dict(output_mode="foo"), ValueError, r"`output_mode`.*Received: output_mode='foo'"),
        (dict(num_oov_indices=-1), ValueError, r"`num_oov_indices` must be greater than or equal to 0.*=-1"),
        (
            dict(num_oov_indices=1.5),
            TypeError,
            r"`num_oov_indices` must be an integer.*1\.5 \(of type float\)",
        ),
        (dict(max_tokens=1), ValueError, r"`max_tokens` must be greater than 1.*max_tokens=1"),
        (dict(pad_to_max_tokens=True), ValueError, "must set `max_tokens`"),
        (dict(vocabulary=["a", "b", "a"]), ValueError, r"repeated term.*\['a'\]"),
        (dict(vocabulary=["a", ""], mask_token=""), ValueError, "reserved mask token.*vocabulary index 1"),
        (dict(vocabulary=["a", "[UNK]"], invert=True), ValueError, "reserved OOV token.*vocabulary index 1"),
        (dict(vocabulary=[]), ValueError, "Cannot set an empty vocabulary"),
        (dict(vocabulary=["a", 1]), ValueError, "mix strings with other types"),
        (dict(vocabulary=["a", "b"], max_tokens=2), ValueError, "larger than the maximum vocab size"),
        (dict(invert=True, output_mode="count"), ValueError, "must be `'int'` when `invert` is true"),
        (dict(sparse=True), ValueError, "`sparse` may only be true"),
        (dict(idf_weights=[1.0]), ValueError, "`idf_weights` should only be set"),
        (dict(vocabulary=["a"], output_mode="tf_idf"), ValueError, "`idf_weights` argument must also be"),
        (dict(salt="x"), ValueError, "`salt` argument for `StringLookup`"),
    ],
)
def test_string_lookup_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        jaxembed.StringLookup(**kwargs)


def test_integer_lookup_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"repeated term.*\[3\]"):
        jaxembed.IntegerLookup(vocabulary=[3, 4, 3])
    with pytest.raises(ValueError, match="reserved mask token"):
        jaxembed.IntegerLookup(vocabulary=[3, 0], mask_token=0)
    with pytest.raises(ValueError, match="`salt` can only be used when `oov_method='farmhash'`"):
        jaxembed.IntegerLookup(salt=3)
    with pytest.raises(ValueError, match="vocabulary_dtype='int64'"):
        jaxembed.IntegerLookup(vocabulary_dtype="int32")
    layer = jaxembed.IntegerLookup(vocabulary=[1, 2])
    with pytest.raises(TypeError, match="must be integers.*str"):
        layer(["a"])
    with pytest.raises(ValueError, match="mix integers"):
        layer([1, "a"])
    with pytest.raises(TypeError, match=r"non-integer values \[2\.5\]"):
        layer(np.array([1.0, 2.5]))
    with pytest.raises(TypeError, match="dtype float32"):
        layer(jnp.array([1.0]))
    strict = jaxembed.IntegerLookup(vocabulary=[1, 2], num_oov_indices=0)
    with pytest.raises(ValueError, match=r"found OOV values \[5\]"):
        strict(np.array([1, 5]))
    with pytest.raises(ValueError, match=r"found OOV values \[5\]"):
        strict(jnp.array([1, 5]))
    assert jax.jit(strict)(jnp.array([1, 5])).tolist() == [0, -1]  # cannot raise under jit


def test_adapt_and_call_errors():
    with pytest.raises(ValueError, match="no tokens"):
        jaxembed.StringLookup().adapt([])
    with pytest.raises(ValueError, match="no tokens"):
        jaxembed.StringLookup(mask_token="").adapt(["", ""])
    with pytest.raises(ValueError, match="mix strings"):
        jaxembed.StringLookup().adapt(["a", 1])
    with pytest.raises(TypeError, match="must be strings"):
        jaxembed.StringLookup().adapt([1, 2])
    with pytest.raises(ValueError, match="Cannot adapt layer"):
        jaxembed.StringLookup(vocabulary=["a"]).adapt(["b"])
    with pytest.raises(RuntimeError, match="must set the layer's vocabulary"):
        jaxembed.StringLookup(output_mode="multi_hot")(["a"])
    with pytest.raises(ValueError, match="rectangular"):
        jaxembed.StringLookup(vocabulary=["a"])([["a"], ["a", "b"]])
    with pytest.raises(ValueError, match="rank-1 or rank-2"):
        jaxembed.StringLookup(vocabulary=["a"], output_mode="multi_hot")([[["a"]]])
