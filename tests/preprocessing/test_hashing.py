"""Hashing, HashedCrossing and CategoryEncoding against TensorFlow and real Keras (the oracles)."""

import string
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxembed
from jaxembed.preprocessing import _hash_functions

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow", reason="TensorFlow (the `compare` extra) is the oracle here")

INT64 = np.iinfo(np.int64)
SALTS = [None, [133, 137], [-5, 2**62 + 11], [0, 0]]  # TensorFlow takes int64 keys


def _random_strings(rng, count):
    alphabet = list(string.printable) + ["\u00e9", "\u4e2d", "\U0001f600", "\x00"]
    return ["".join(rng.choice(alphabet, size=rng.integers(0, 90))) for _ in range(count)]


def _tf_buckets(values, num_bins, salt):
    values = tf.constant(values)
    if values.dtype != tf.string:
        values = tf.strings.as_string(values)
    if salt is None:
        return tf.strings.to_hash_bucket_fast(values, num_bins).numpy()
    return tf.strings.to_hash_bucket_strong(values, num_bins, salt).numpy()


@pytest.mark.parametrize("salt", SALTS)
def test_string_hashes_equal_tensorflow(salt):
    rng = np.random.default_rng(0)
    words = ["", "a", "hello", "[UNK]"] + _random_strings(rng, 2000)
    for num_bins in (1, 2, 1000, 2**31 - 1, 2**62 + 3):
        expected = _tf_buckets(words, num_bins, salt)
        np.testing.assert_array_equal(_hash_functions.buckets(words, num_bins, salt), expected)


@pytest.mark.slow
@pytest.mark.parametrize("salt", SALTS)
def test_integer_hashes_equal_tensorflow_on_host_and_in_jnp(salt):
    rng = np.random.default_rng(1)
    ints = np.concatenate(
        [
            rng.integers(INT64.min, INT64.max, 1500, dtype=np.int64),
            rng.integers(-(10**6), 10**6, 500),
            [0, -1, 1, INT64.min, INT64.max, 2**31 - 1, -(2**31), 10**15, 10**16 - 1],
        ]
    ).astype(np.int64)
    int32 = ints[(ints >= -(2**31)) & (ints < 2**31)].astype(np.int32)
    for num_bins in (1, 7, 1000, 2**31 - 1):
        np.testing.assert_array_equal(
            _hash_functions.buckets(ints.tolist(), num_bins, salt), _tf_buckets(ints, num_bins, salt)
        )
        got = _hash_functions.buckets_jnp(jnp.asarray(int32), num_bins, salt)
        np.testing.assert_array_equal(np.asarray(got), _tf_buckets(int32.astype(np.int64), num_bins, salt))


@pytest.mark.slow
def test_integer_hashes_in_jnp_with_x64_cover_every_decimal_length():
    """With jax_enable_x64 the jnp hash takes int64 inputs: all decimal lengths 1..20."""
    rng = np.random.default_rng(2)
    ints = np.array([int(rng.integers(0, 10)) * 10**k + int(rng.integers(0, 10**k)) for k in range(19)])
    ints = np.concatenate([ints, -ints, [INT64.min, INT64.max]]).astype(np.int64)
    with jax.enable_x64(True):
        for salt in (None, [7, 9]):
            got = _hash_functions.buckets_jnp(jnp.asarray(ints), 2**40 + 1, salt)
            assert got.dtype == jnp.int64
            np.testing.assert_array_equal(np.asarray(got), _tf_buckets(ints, 2**40 + 1, salt))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=20), st.integers(1, 2**40))
def test_hypothesis_string_buckets(words, num_bins):
    assert _hash_functions.buckets(words, num_bins).tolist() == _tf_buckets(words, num_bins, None).tolist()
    key = [num_bins, 3]
    assert (
        _hash_functions.buckets(words, num_bins, key).tolist() == _tf_buckets(words, num_bins, key).tolist()
    )


# ------------------------------------------------------------------ Hashing vs keras.layers.Hashing
HASHING_CASES = [
    (mode, mask, salt, kind)
    for mode in ("int", "one_hot", "multi_hot", "count")
    for mask, salt in ((None, None), ("mask", [3, 17]), (None, [3, 17]))
    for kind in ("str", "int")
    if mode in ("int", "multi_hot") or salt is None
]


@pytest.mark.parametrize("output_mode,mask,salt,kind", HASHING_CASES)
def test_hashing_layer_matches_keras(output_mode, mask, salt, kind):
    rng = np.random.default_rng(len(str((output_mode, mask, salt, kind))))
    if kind == "str":
        pool = np.array(_random_strings(rng, 20) + ["mask"], dtype=object)
        mask_value = mask
    else:
        pool = np.concatenate([rng.integers(-(10**6), 10**6, 20), [42]])
        mask_value = None if mask is None else 42
    shape = (6, 1) if output_mode == "one_hot" else (4, 5)
    data = rng.choice(pool, size=shape)
    data = data.astype(str) if kind == "str" else data.astype(np.int64)
    kwargs = dict(num_bins=11, mask_value=mask_value, salt=salt, output_mode=output_mode)
    ours, theirs = jaxembed.Hashing(**kwargs), keras.layers.Hashing(**kwargs)
    expected = np.asarray(theirs(data))
    np.testing.assert_array_equal(np.asarray(ours(data)), expected)
    np.testing.assert_array_equal(np.asarray(ours(data.tolist())), expected)
    np.testing.assert_array_equal(np.asarray(ours(data[0])), np.asarray(theirs(data[0])))
    if kind == "int" and output_mode == "int":
        np.testing.assert_array_equal(np.asarray(jax.jit(ours)(jnp.asarray(data, jnp.int32))), expected)
    assert ours.get_config()["salt"] == theirs.get_config()["salt"]


def test_hashing_any_rank_and_sparse():
    data = np.array([[["a", "b"], ["c", "d"]], [["e", "f"], ["g", "h"]]])
    np.testing.assert_array_equal(
        np.asarray(jaxembed.Hashing(13)(data)), np.asarray(keras.layers.Hashing(13)(data))
    )
    dense = jaxembed.Hashing(5, output_mode="count")(data[0])
    sparse = jaxembed.Hashing(5, output_mode="count", sparse=True)(data[0])
    np.testing.assert_array_equal(np.asarray(sparse.todense()), np.asarray(dense))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(num_bins=0), r"cannot be `None` or non-positive values. Received: num_bins=0"),
        (dict(num_bins=None), "cannot be `None`"),
        (dict(num_bins=-3), "num_bins=-3"),
        (dict(num_bins=3, salt="x"), "can only be a tuple of size 2"),
        (dict(num_bins=3, salt=[1, 2, 3]), "can only be a tuple of size 2"),
        (dict(num_bins=3, output_mode="tf_idf"), r"Expected one of .*Received: output_mode=tf_idf"),
        (dict(num_bins=3, dtype="float32"), "`dtype` should be an integer type"),
        (dict(num_bins=3, sparse=True), "`sparse` may only be true"),
    ],
)
def test_hashing_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        jaxembed.Hashing(**kwargs)


def test_hashing_bad_inputs():
    layer = jaxembed.Hashing(4)
    with pytest.raises(ValueError, match="mix"):
        layer(["a", 1])
    with pytest.raises(TypeError, match="float32.*cast them explicitly"):
        layer(jnp.array([1.5]))
    with pytest.raises(TypeError, match=r"non-integer values \[1\.5\]"):
        layer(np.array([1.5, 2.0]))


# ------------------------------------------------------------------ HashedCrossing
def _quiet(layer, inputs):
    """Keras's HashedCrossing warns that JAX truncates its int64 output to int32 (x64 is off)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(layer(inputs))


@pytest.mark.parametrize("output_mode", ["int", "one_hot"])
@pytest.mark.parametrize("kinds", [("str", "int"), ("int", "int"), ("str", "str"), ("int", "str", "int")])
@pytest.mark.parametrize("shape", [(8,), (8, 1), ()])
def test_hashed_crossing_matches_keras(output_mode, kinds, shape):
    rng = np.random.default_rng(len(kinds) * 10 + len(shape))
    features = []
    for kind in kinds:
        if kind == "str":
            features.append(np.array(rng.choice(_random_strings(rng, 10), size=shape)).astype(str))
        else:
            features.append(np.array(rng.integers(INT64.min, INT64.max, size=shape, dtype=np.int64)))
    ours = jaxembed.HashedCrossing(num_bins=97, output_mode=output_mode)
    theirs = keras.layers.HashedCrossing(num_bins=97, output_mode=output_mode)
    expected = _quiet(theirs, tuple(features))
    got = ours(tuple(features))
    np.testing.assert_array_equal(np.asarray(got), expected)
    assert got.shape == expected.shape
    if all(kind == "int" for kind in kinds) and shape:
        small = [jnp.asarray(rng.integers(-(2**31), 2**31, size=shape), jnp.int32) for _ in kinds]
        keras_small = _quiet(theirs, tuple(np.asarray(x, np.int64) for x in small))
        np.testing.assert_array_equal(np.asarray(jax.jit(ours)(tuple(small))), keras_small)


def test_hashed_crossing_bad_input():
    with pytest.raises(ValueError, match=r"positive integer. Received: num_bins=0"):
        jaxembed.HashedCrossing(0)
    with pytest.raises(ValueError, match="Allowed values are"):
        jaxembed.HashedCrossing(3, output_mode="multi_hot")
    layer = jaxembed.HashedCrossing(3)
    with pytest.raises(ValueError, match="list or tuple"):
        layer(np.array([1, 2]))
    with pytest.raises(ValueError, match="at least two"):
        layer((np.array([1, 2]),))
    with pytest.raises(ValueError, match="equal shape"):
        layer((np.array([1, 2]), np.array([1, 2, 3])))
    with pytest.raises(ValueError, match=r"`\(batch_size, 1\)`"):
        layer((np.ones((2, 2), int), np.ones((2, 2), int)))


# ------------------------------------------------------------------ CategoryEncoding
ENCODING_CASES = [
    ("one_hot", (7,)),
    ("one_hot", (7, 1)),
    ("one_hot", (3, 4)),
    ("one_hot", ()),
    ("multi_hot", (7,)),
    ("multi_hot", (3, 4)),
    ("multi_hot", ()),
    ("count", (7,)),
    ("count", (3, 4)),
    ("count", ()),
]


@pytest.mark.parametrize(
    "output_mode,shape,sparse",
    [(*case, False) for case in ENCODING_CASES]
    + [("one_hot", (7, 1), True), ("multi_hot", (3, 4), True), ("count", (7,), True)],
)
def test_category_encoding_matches_keras(output_mode, shape, sparse):
    rng = np.random.default_rng(len(shape))
    ids = rng.integers(0, 6, size=shape)
    ours = jaxembed.CategoryEncoding(6, output_mode=output_mode, sparse=sparse)
    theirs = keras.layers.CategoryEncoding(6, output_mode=output_mode, sparse=sparse)
    expected = theirs(ids)
    expected = np.asarray(expected.todense() if sparse else expected)
    got = ours(ids)
    np.testing.assert_array_equal(np.asarray(got.todense() if sparse else got), expected)
    assert got.dtype == expected.dtype == np.float32
    jitted = jax.jit(ours)(jnp.asarray(ids))
    np.testing.assert_array_equal(np.asarray(jitted.todense() if sparse else jitted), expected)
    if output_mode == "count" and not sparse:
        weights = rng.uniform(0, 2, size=shape).astype(np.float32)
        np.testing.assert_allclose(
            np.asarray(ours(ids, count_weights=weights)),
            np.asarray(keras.layers.CategoryEncoding(6, output_mode="count")(ids, count_weights=weights)),
            rtol=1e-6,
        )


def test_category_encoding_bad_input():
    with pytest.raises(ValueError, match="num_tokens must be set"):
        jaxembed.CategoryEncoding()
    with pytest.raises(ValueError, match=r"`num_tokens` must be >= 1. Received: num_tokens=0"):
        jaxembed.CategoryEncoding(0)
    with pytest.raises(ValueError, match="Unknown arg for output_mode: tf_idf"):
        jaxembed.CategoryEncoding(3, output_mode="tf_idf")
    layer = jaxembed.CategoryEncoding(3)
    with pytest.raises(ValueError, match=r"\[0, 3\)\. Received out-of-range ids \[5, -1\]"):
        layer(np.array([0, 5, -1]))
    with pytest.raises(ValueError, match="out-of-range ids"):
        layer(jnp.array([3]))
    assert jax.jit(layer)(jnp.array([0, 3])).tolist() == [1.0, 0.0, 0.0]  # dropped under jit, as Keras on JAX
    with pytest.raises(ValueError, match="`count_weights` is not used"):
        layer(np.array([0]), count_weights=np.array([1.0]))
    with pytest.raises(TypeError, match="must be integers"):
        layer(jnp.array([0.5]))
    cube = np.array([[[0, 1], [2, 2]]])  # each last-axis sample (Keras's eager call reduces axis 1)
    assert jaxembed.CategoryEncoding(3, output_mode="count")(cube).tolist() == [
        [[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]
    ]
