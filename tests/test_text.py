"""jaxembed.text.TextVectorizer: Keras TextVectorization semantics, checked against Keras itself."""

import json

import numpy as np
import pytest

from jaxembed.text import TextVectorizer, pad_sequences

# Punctuation of every kind, ASCII and Unicode case, Unicode punctuation and spaces (which Keras
# keeps inside words), tabs and newlines, repeated spaces, many count ties, an "[UNK]" typed by
# a user, an empty text.
CORPUS = [
    "The movie was GREAT!!! Great acting, great plot.",
    "the Movie wasn't great... (not at all) -- 2/10",
    "Émile's café: naïve ÉLAN, ÜBER straße; Straße",
    "“Smart quotes” — and an ellipsis… and a\u00a0no-break space and\u3000ideographic space",
    "tabs\tand\nnewlines\r\nand  multiple   spaces, a_b c-d e.f g'h [UNK] <br />",
    "",
    "zeta alpha beta gamma delta epsilon zeta alpha beta",
    "x\x0by\x0cz \x1cseparator\x1f",
    "Ωμέγα ΑΛΦΑ 東京 東京 emoji 🙂🙂 emoji",
    "#hashtag @mention $100 50% a&b c*d e+f {g} h|i ~j `k` ^l \\m =n ?o",
]
QUERIES = CORPUS + ["never seen words here", "great GREAT great, movie!", "東京 zeta Émile's"]


def keras_layer(**kwargs):
    pytest.importorskip("tensorflow", reason="Keras's TextVectorization needs TensorFlow (the compare extra)")
    keras = pytest.importorskip("keras", reason="the differential tests need keras (the test extra)")
    return keras.layers.TextVectorization(**kwargs)


@pytest.mark.parametrize("max_tokens", [None, 12, 30])
@pytest.mark.parametrize("standardize", ["lower_and_strip_punctuation", "lower", "strip_punctuation", None])
@pytest.mark.parametrize("length", [None, 7])
def test_vocabulary_and_ids_equal_keras(max_tokens, standardize, length):
    keras_vectorizer = keras_layer(
        max_tokens=max_tokens, standardize=standardize, output_sequence_length=length
    )
    keras_vectorizer.adapt(CORPUS)
    ours = TextVectorizer(max_tokens, standardize=standardize, output_sequence_length=length)
    ours.adapt(CORPUS)
    assert ours.get_vocabulary() == keras_vectorizer.get_vocabulary()
    expected = np.asarray(keras_vectorizer(QUERIES))
    np.testing.assert_array_equal(ours(QUERIES), expected)


def test_tie_order_is_keras_reverse_code_point_order():
    texts = ["b a c", "B A C ä z", "z"]  # counts: a b c 2 each, z 2, ä 1
    vectorizer = TextVectorizer()
    vectorizer.adapt(texts)
    assert vectorizer.get_vocabulary() == ["", "[UNK]", "z", "c", "b", "a", "ä"]
    keras_vectorizer = keras_layer()
    keras_vectorizer.adapt(texts)
    assert keras_vectorizer.get_vocabulary() == vectorizer.get_vocabulary()


def test_vocabulary_files_are_shared_with_keras(tmp_path):
    ours = TextVectorizer(output_sequence_length=6)
    ours.adapt(CORPUS)
    path = ours.save_vocabulary(tmp_path / "vocabulary.txt")
    keras_vectorizer = keras_layer(output_sequence_length=6, vocabulary=str(path))
    assert keras_vectorizer.get_vocabulary() == ours.get_vocabulary()
    np.testing.assert_array_equal(ours(QUERIES), np.asarray(keras_vectorizer(QUERIES)))
    # and the other way: Keras's vocabulary list sets ours
    copy = TextVectorizer(output_sequence_length=6, vocabulary=keras_vectorizer.get_vocabulary())
    np.testing.assert_array_equal(copy(QUERIES), ours(QUERIES))


def test_padding_truncation_and_batch_length():
    vectorizer = TextVectorizer(vocabulary=["a", "b"])
    assert vectorizer(["a b a", "b"]).tolist() == [[2, 3, 2], [3, 0, 0]]
    assert vectorizer([""]).tolist() == [[0]]
    assert vectorizer([]).shape == (0, 1)
    short = TextVectorizer(vocabulary=["a", "b"], output_sequence_length=2)
    assert short(["a b a", "c"]).tolist() == [[2, 3], [1, 0]]
    assert short(["x"]).dtype == np.int32


def test_save_and_load_round_trip_atomically(tmp_path):
    vectorizer = TextVectorizer(50, standardize="lower", output_sequence_length=9)
    vectorizer.adapt(CORPUS)
    path = vectorizer.save(tmp_path / "sub" / "vectorizer.json")
    assert [p.name for p in path.parent.iterdir()] == ["vectorizer.json"]  # no temporary file left
    loaded = TextVectorizer.load(path)
    assert loaded.get_config() == vectorizer.get_config()
    assert loaded.get_vocabulary() == vectorizer.get_vocabulary()
    np.testing.assert_array_equal(loaded(QUERIES), vectorizer(QUERIES))


def test_callable_standardize():
    # As Keras off TensorFlow: the callable gets the batch as a NumPy str array.
    seen = []
    vectorizer = TextVectorizer(
        standardize=lambda texts: seen.append(texts) or np.char.upper(texts), vocabulary=["HI"]
    )
    assert vectorizer(["hi Hi ho", "ho"]).tolist() == [[2, 2, 1], [1, 0, 0]]
    assert [(type(texts), texts.dtype.kind, texts.shape) for texts in seen] == [(np.ndarray, "U", (2,))]
    with pytest.raises(ValueError, match="callable `standardize` or `split` cannot be saved"):
        vectorizer.save("unused.json")
    with pytest.raises(TypeError, match="must return one entry per text"):
        TextVectorizer(standardize=lambda texts: 3).tokenize("x")
    with pytest.raises(TypeError, match="must return str entries"):
        TextVectorizer(standardize=lambda texts: [3]).tokenize("x")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_tokens": 2}, ValueError, r"max_tokens.*>= 3.*max_tokens=2"),
        ({"max_tokens": True}, ValueError, r"max_tokens=True"),
        (
            {"output_sequence_length": 0},
            ValueError,
            r"output_sequence_length.*Received: output_sequence_length=0",
        ),
        ({"standardize": "upper"}, ValueError, r"standardize.*Received: standardize='upper'"),
        ({"vocabulary": ["a", "a"]}, ValueError, r"repeated tokens: \['a'\]"),
        ({"vocabulary": ["a", ""]}, ValueError, r"reserved token '' may only come first"),
        ({"vocabulary": ["a", 3]}, TypeError, r"must be str. Received 3"),
        ({"vocabulary": ["a", "b"], "max_tokens": 3}, ValueError, r"4 tokens .* max_tokens=3"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        TextVectorizer(**kwargs)


def test_bad_inputs_and_files(tmp_path):
    vectorizer = TextVectorizer()
    with pytest.raises(TypeError, match="not one string"):
        vectorizer("one text")
    with pytest.raises(TypeError, match="not one string"):
        vectorizer.adapt("one text")
    with pytest.raises(TypeError, match="Texts must be str. Received int"):
        vectorizer([1])
    with pytest.raises(FileNotFoundError, match="No saved TextVectorizer"):
        TextVectorizer.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        TextVectorizer.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(ValueError, match="not a saved TextVectorizer"):
        TextVectorizer.load(tmp_path / "other.json")
    with pytest.raises(FileNotFoundError, match="No vocabulary file"):
        TextVectorizer(vocabulary=tmp_path / "missing.txt")


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 1, 3, 10])
def test_pad_sequences_equals_keras(padding, truncating, maxlen):
    keras = pytest.importorskip("keras", reason="the differential tests need keras (the test extra)")
    sequences = [[1, 2, 3, 4, 5], [], [7], [8, 9, 10]]
    expected = keras.utils.pad_sequences(sequences, maxlen=maxlen, padding=padding, truncating=truncating)
    got = pad_sequences(sequences, maxlen, padding=padding, truncating=truncating)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.int32


def test_pad_sequences_errors():
    with pytest.raises(ValueError, match="`padding` must be 'pre' or 'post'. Received: padding='left'"):
        pad_sequences([[1]], padding="left")
    with pytest.raises(ValueError, match="maxlen=-1"):
        pad_sequences([[1]], -1)
