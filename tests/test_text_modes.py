"""TextVectorizer's split modes, n-grams and vector output modes, against Keras's TextVectorization.

Random texts (seeded per case) over a small alphabet of words -- ASCII and non-ASCII case,
punctuation, repeats so that counts tie -- are adapted and vectorized by both; vocabularies must
be equal and every output value equal (``tf_idf`` to float32 rounding). Keras's ``split=None``
takes a ``(batch, 1)`` column, which TextVectorizer takes as the list of texts. Keras's
``one_hot`` after a split fails on the JAX backend (a TensorFlow ragged result); TextVectorizer
gives TensorFlow's ragged values padded with zero rows, checked here against Keras's
``multi_hot`` per token.
"""

import zlib

import numpy as np
import pytest
from jax.experimental import sparse

from jaxembed.text import TextVectorizer

WORDS = ["a", "b", "c", "Dd", "e,", "f!", "gé", "H", "a-b", "ü"]


def keras_layer(**kwargs):
    pytest.importorskip("tensorflow", reason="Keras's TextVectorization needs TensorFlow (the compare extra)")
    keras = pytest.importorskip("keras", reason="the differential tests need keras (the test extra)")
    return keras.layers.TextVectorization(**kwargs)


def random_texts(seed, count):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(0, 8))) for _ in range(count)]


def dense(output):
    return np.asarray(output.todense() if isinstance(output, sparse.BCOO) else output)


def keras_inputs(texts, split):
    return [[text] for text in texts] if split is None else texts


MODES = ["int", "multi_hot", "count", "tf_idf"]
SPLITS_AND_NGRAMS = [
    ("whitespace", None),
    ("whitespace", 1),
    ("whitespace", 2),
    ("whitespace", 3),
    ("whitespace", (1, 3)),
    ("whitespace", (2,)),
    ("character", None),
    ("character", 2),
    ("character", (1, 3)),
    (None, None),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("split", "ngrams"), SPLITS_AND_NGRAMS)
@pytest.mark.parametrize("max_tokens", [None, 7])
def test_adapt_and_call_equal_keras(mode, split, ngrams, max_tokens):
    seed = zlib.crc32(repr((mode, split, ngrams, max_tokens)).encode())  # stable across runs
    corpus, queries = random_texts(seed, 40), random_texts(seed + 1, 12)
    kwargs = {"max_tokens": max_tokens, "split": split, "ngrams": ngrams, "output_mode": mode}
    theirs = keras_layer(**kwargs)
    theirs.adapt(corpus)
    ours = TextVectorizer(**kwargs)
    ours.adapt(corpus)
    assert ours.get_vocabulary() == theirs.get_vocabulary()
    assert ours.vocabulary_size() == theirs.vocabulary_size()
    expected = np.asarray(theirs(keras_inputs(queries, split)))
    got = dense(ours(queries))
    assert got.shape == expected.shape
    if mode == "tf_idf":
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ours.idf_weights, np.asarray(theirs._lookup_layer.idf_weights), rtol=1e-6)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("mode", ["multi_hot", "count", "tf_idf"])
@pytest.mark.parametrize("sparse_output", [False, True])
def test_pad_to_max_tokens_and_sparse_equal_keras(mode, sparse_output):
    corpus, queries = random_texts(1, 30), random_texts(2, 9)
    theirs = keras_layer(max_tokens=12, output_mode=mode, pad_to_max_tokens=True, ngrams=2)
    theirs.adapt(corpus)
    ours = TextVectorizer(
        max_tokens=12, output_mode=mode, pad_to_max_tokens=True, ngrams=2, sparse=sparse_output
    )
    ours.adapt(corpus)
    output = ours(queries)
    assert isinstance(output, sparse.BCOO) == sparse_output
    np.testing.assert_allclose(dense(output), np.asarray(theirs(queries)), rtol=1e-6, atol=1e-6)
    assert dense(output).shape == (9, 12)


def test_one_hot_is_keras_multi_hot_per_token():
    corpus, queries = random_texts(3, 30), random_texts(4, 6)
    ours = TextVectorizer(output_mode="one_hot", ngrams=(1, 2))
    ours.adapt(corpus)
    per_token = keras_layer(output_mode="multi_hot", split=None, vocabulary=ours.get_vocabulary()[1:])
    output = np.asarray(ours(queries))
    rows = [ours.tokenize(text) for text in queries]
    assert output.shape == (6, max(map(len, rows)), ours.vocabulary_size())
    for row, tokens in enumerate(rows):
        if tokens:
            np.testing.assert_array_equal(
                output[row, : len(tokens)], np.asarray(per_token([[t] for t in tokens]))
            )
        np.testing.assert_array_equal(output[row, len(tokens) :], 0)  # padding: zero rows


def test_one_hot_without_split_equals_keras():
    corpus, queries = random_texts(5, 30), random_texts(6, 8)
    theirs = keras_layer(output_mode="one_hot", split=None)
    theirs.adapt(corpus)
    ours = TextVectorizer(output_mode="one_hot", split=None)
    ours.adapt(corpus)
    np.testing.assert_array_equal(np.asarray(ours(queries)), np.asarray(theirs([[t] for t in queries])))


def test_tf_idf_vocabulary_and_weights_equal_keras():
    vocabulary, weights = ["a", "b", "a b", "c"], [0.5, 1.25, 2.0, 0.75]
    queries = random_texts(7, 10)
    theirs = keras_layer(output_mode="tf_idf", ngrams=2, vocabulary=vocabulary, idf_weights=weights)
    ours = TextVectorizer(output_mode="tf_idf", ngrams=2, vocabulary=vocabulary, idf_weights=weights)
    assert ours.get_vocabulary() == theirs.get_vocabulary()
    np.testing.assert_allclose(np.asarray(ours(queries)), np.asarray(theirs(queries)), rtol=1e-6)


def test_callables_equal_keras():
    import tensorflow as tf

    texts = ["Foo|bar BAZ", "baz|Qux|foo", "plain"]

    def np_standardize(batch):  # Keras off TensorFlow hands a NumPy str array, as TextVectorizer does
        return np.char.replace(np.char.lower(batch), "|", " | ")

    theirs = keras_layer(standardize=np_standardize, split=lambda x: tf.strings.split(x, sep="|"))
    theirs.adapt(texts)
    ours = TextVectorizer(
        standardize=np_standardize, split=lambda batch: [text.split("|") for text in batch.tolist()]
    )
    ours.adapt(texts)
    assert ours.get_vocabulary() == theirs.get_vocabulary()
    np.testing.assert_array_equal(ours(texts), np.asarray(theirs(texts)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ngrams": (1, 3), "max_tokens": 9, "output_sequence_length": 4},
        {"split": "character", "output_mode": "count", "pad_to_max_tokens": True, "max_tokens": 20},
        {"split": None, "output_mode": "multi_hot", "standardize": "lower"},
        {"output_mode": "tf_idf", "ngrams": 2},
    ],
)
def test_config_round_trips_with_keras(kwargs, tmp_path):
    corpus, queries = random_texts(8, 30), random_texts(9, 6)
    theirs = keras_layer(**kwargs)
    theirs.adapt(corpus)
    from_keras = TextVectorizer.from_config(theirs.get_config())
    ours = TextVectorizer(**kwargs)
    ours.adapt(corpus)
    assert from_keras.get_config() == ours.get_config()
    keras_config = theirs.get_config()
    for key, value in ours.get_config().items():
        assert keras_config[key] == value, key
    loaded = TextVectorizer.load(ours.save(tmp_path / "vectorizer.json"))
    assert loaded.get_config() == ours.get_config()
    assert loaded.get_vocabulary() == ours.get_vocabulary()
    np.testing.assert_allclose(dense(loaded(queries)), dense(ours(queries)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "comma"}, r"`split` must be one of .*Received: split='comma'"),
        ({"ngrams": 0}, r"`ngrams` must be None.*Received: ngrams=0 \(of type int\)"),
        ({"ngrams": (1, "2")}, r"Received: ngrams=\(1, '2'\)"),
        ({"ngrams": 2, "split": None}, r"`ngrams` needs a `split`"),
        ({"output_mode": "bag"}, r"output_mode.*Received: output_mode='bag'"),
        ({"output_mode": "count", "output_sequence_length": 3}, r"must not be set if `output_mode`"),
        ({"ragged": True}, r"ragged=True.*no ragged arrays"),
        ({"output_mode": "int", "sparse": True}, r"`sparse` may only be true"),
        ({"output_mode": "count", "idf_weights": [1.0]}, r"`idf_weights` should only be set"),
        ({"output_mode": "tf_idf", "vocabulary": ["a"]}, r"`idf_weights` argument must also be provided"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TextVectorizer(**kwargs)


def test_bad_callable_results_are_named():
    with pytest.raises(TypeError, match="`split` callable must return one entry per text"):
        TextVectorizer(split=lambda batch: ["a"])(["x", "y"])
    with pytest.raises(TypeError, match="`split` callable must return a list of str per text"):
        TextVectorizer(split=lambda batch: [[1]])(["x"])
    with pytest.raises(ValueError, match="callable `standardize` or `split` cannot be saved"):
        TextVectorizer(split=lambda batch: [[t] for t in batch]).save("unused.json")


def test_saved_tf_idf_weights_are_checksummed(tmp_path):
    import json

    vectorizer = TextVectorizer(output_mode="tf_idf", ngrams=2)
    vectorizer.adapt(random_texts(10, 20))
    path = vectorizer.save(tmp_path / "v.json")
    document = json.loads(path.read_text())
    assert document["version"] == 3 and len(document["idf_weights"]) == vectorizer.vocabulary_size()
    np.testing.assert_array_equal(TextVectorizer.load(path).idf_weights, vectorizer.idf_weights)
    document["idf_weights"][1] += 1.0
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="is corrupted: the SHA-256"):
        TextVectorizer.load(path)


def test_version_2_files_still_load(tmp_path):
    import json

    from jaxembed import text

    config = {
        "max_tokens": None,
        "standardize": "lower",
        "split": "whitespace",
        "output_mode": "int",
        "output_sequence_length": 3,
    }
    vocabulary = ["", "[UNK]", "hi"]
    document = {
        "format": "jaxembed-text-vectorizer",
        "version": 2,
        "config": config,
        "vocabulary": vocabulary,
    }
    document["sha256"] = text._content_digest(config, vocabulary)
    (tmp_path / "v2.json").write_text(json.dumps(document))
    assert TextVectorizer.load(tmp_path / "v2.json")(["Hi there"]).tolist() == [[2, 1, 0]]
