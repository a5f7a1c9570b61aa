"""jaxembed.pretrained against gensim's KeyedVectors.load_word2vec_format on gensim's own test files."""

import gc
import importlib.util
import math
import struct
import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import jaxembed
from jaxembed.pretrained import VectorFileError, detect_format, embedding_matrix, load_vectors


def _gensim_data() -> Path | None:
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data"
    return folder if folder.is_dir() else None


GENSIM_DATA = _gensim_data()
requires_gensim = pytest.mark.skipif(GENSIM_DATA is None, reason="needs gensim (the test extra)")

# Every file in gensim/test/test_data in one of the three formats, with its format.
GENSIM_FILES = {
    "test_glove.txt": "glove",
    "lee_fasttext.vec": "word2vec",
    "EN.1-10.cbow1_wind5_hs0_neg10_size300_smpl1e-05.txt": "word2vec",
    "IT.1-10.cbow1_wind5_hs0_neg10_size300_smpl1e-05.txt": "word2vec",
    "crime-and-punishment.vec": "word2vec",
    "toy-model.vec": "word2vec",
    "high_precision.kv.txt": "word2vec",
    "word2vec_pre_kv_c": "word2vec",
    "euclidean_vectors.bin": "word2vec-binary",
    "poincare_vectors.bin": "word2vec-binary",
    "high_precision.kv.bin": "word2vec-binary",
}


def _gensim_load(path: Path, kind: str, limit: int | None = None):
    from gensim.models import KeyedVectors

    # gensim's no_header=True path leaves a file handle open: collect it here, its ResourceWarning
    # silenced (the warning is gensim's, not this library's).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        vectors = KeyedVectors.load_word2vec_format(
            str(path), binary=kind == "word2vec-binary", no_header=kind == "glove", limit=limit
        )
        gc.collect()
    return vectors


@requires_gensim
@pytest.mark.parametrize("name, kind", sorted(GENSIM_FILES.items()))
def test_gensim_files_load_to_the_same_words_and_vectors(name, kind):
    path = GENSIM_DATA / name
    reference = _gensim_load(path, kind)
    assert detect_format(path) == kind
    words, vectors = load_vectors(path)
    assert words == list(reference.index_to_key)
    assert vectors.dtype == np.float32 and vectors.shape == reference.vectors.shape
    np.testing.assert_array_equal(vectors, reference.vectors)
    # The explicit format gives the same, and limit= is gensim's limit=.
    assert load_vectors(path, kind).words == words
    limited = _gensim_load(path, kind, limit=2)
    small = load_vectors(path, limit=2)
    assert small.words == list(limited.index_to_key)
    np.testing.assert_array_equal(small.vectors, limited.vectors)


@requires_gensim
def test_vocabulary_keeps_only_the_wanted_words_in_file_order():
    path = GENSIM_DATA / "lee_fasttext.vec"
    reference = _gensim_load(path, "word2vec")
    wanted = ["government", "the", "not-a-word-in-the-file", "zyzzyva"]
    words, vectors = load_vectors(path, vocabulary=wanted)
    in_file = [w for w in reference.index_to_key if w in wanted]
    assert words == in_file and len(words) == 2
    np.testing.assert_array_equal(vectors, np.stack([reference[w] for w in in_file]))
    binary = load_vectors(GENSIM_DATA / "euclidean_vectors.bin", vocabulary=["the", "of"])
    assert binary.words == ["the", "of"]


@requires_gensim
def test_real_malformed_files_in_gensims_test_data_name_the_problem():
    # gensim ships two broken files; it fails on both without saying where.
    with pytest.raises(
        VectorFileError, match=r"pretrained.vec' ends after 1 vectors .* header \(line 1\) says 3"
    ):
        load_vectors(GENSIM_DATA / "pretrained.vec")
    with pytest.raises(VectorFileError, match=r"pang_lee_polarity_fasttext.vec' line 150 is not utf-8 text"):
        load_vectors(GENSIM_DATA / "pang_lee_polarity_fasttext.vec")
    # ...but a limit that stops before the damage reads fine.
    assert len(load_vectors(GENSIM_DATA / "pang_lee_polarity_fasttext.vec", limit=100).words) == 100


MALFORMED_TEXT = [
    ("2 3\ncat 1 2 3\ndog 4 5\n", r"line 3 has 2 values after the word, expected 3 \(ragged row"),
    ("cat 1 2 3\ndog 4 5 6 7\n", r"line 2 has 4 values after the word, expected 3 \(ragged row"),
    ("3 2\ncat 1 2\ndog 3 4\n", r"ends after 2 vectors .* header \(line 1\) says 3"),
    ("1 2\ncat 1 2\ndog 3 4\n", r"line 3 is vector 2, but the header \(line 1\) says the file has 1"),
    ("2 2\ncat 1 2\ndog 3 nan\n", r"line 3: the vector of 'dog' has a non-finite value \(nan\)"),
    ("cat 1 2\ndog inf 4\n", r"line 2: the vector of 'dog' has a non-finite value \(inf\)"),
    ("cat 1 2\ndog 3 four\n", r"line 2: 'four' in the vector of 'dog' is not a number"),
    ("cat\n", r"line 1 has a word but no numbers"),
    ("", r"is empty \(line 1 has nothing\)"),
]


@pytest.mark.parametrize("text, message", MALFORMED_TEXT)
def test_malformed_text_files_raise_naming_the_line(tmp_path, text, message):
    path = tmp_path / "bad.vec"
    path.write_text(text)
    with pytest.raises(VectorFileError, match=message):
        load_vectors(path)


def test_non_utf8_words_name_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("cat 1 2\ncaf\xe9 3 4\n".encode("latin-1"))
    with pytest.raises(VectorFileError, match=r"latin1.txt' line 2 is not utf-8 text"):
        load_vectors(path)
    assert load_vectors(path, encoding="latin-1").words == ["cat", "café"]


def _binary(entries, count=None, dim=2, newline=True) -> bytes:
    out = f"{len(entries) if count is None else count} {dim}\n".encode()
    for word, values in entries:
        out += (
            word.encode("utf-8")
            + b" "
            + struct.pack(f"<{len(values)}f", *values)
            + (b"\n" if newline else b"")
        )
    return out


@pytest.mark.parametrize("newline", [True, False])
def test_word2vec_binary_round_trip(tmp_path, newline):
    path = tmp_path / "v.bin"
    entries = [("cat", [1.0, 2.0]), ("dög", [3.5, -4.0]), ("cat", [9.0, 9.0])]  # a repeat keeps the first
    path.write_bytes(_binary(entries, newline=newline))
    words, vectors = load_vectors(path)
    assert detect_format(path) == "word2vec-binary"
    assert words == ["cat", "dög"] and vectors.tolist() == [[1.0, 2.0], [3.5, -4.0]]


def test_malformed_binary_files_name_the_entry(tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(_binary([("cat", [1.0, 2.0]), ("dog", [3.0, 4.0])], count=3))
    with pytest.raises(VectorFileError, match=r"entry 3 of 3: the file ends inside this entry"):
        load_vectors(path, "word2vec-binary")
    path.write_bytes(_binary([("cat", [1.0, 2.0]), ("dog", [3.0, 4.0])], count=1))
    with pytest.raises(VectorFileError, match=r"more data after the 1 vectors its header"):
        load_vectors(path, "word2vec-binary")
    path.write_bytes(_binary([("cat", [1.0, math.nan])]))
    with pytest.raises(VectorFileError, match=r"entry 1 of 1: the vector of 'cat' has a non-finite value"):
        load_vectors(path, "word2vec-binary")
    path.write_bytes(b"2 2\n\xff\xfe " + struct.pack("<2f", 1, 2))
    with pytest.raises(VectorFileError, match=r"entry 1 of 2: the word .* is not utf-8"):
        load_vectors(path, "word2vec-binary")
    path.write_bytes(b"cat 1 2\n")
    with pytest.raises(
        VectorFileError, match=r"line 1 must be the word2vec header 'count dim'.*format='glove'"
    ):
        load_vectors(path, "word2vec-binary")


def test_bad_arguments(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("cat 1 2\n")
    with pytest.raises(ValueError, match=r"`format` must be one of \('auto', 'glove'"):
        load_vectors(path, "fasttext")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"`limit` must be a positive integer or None. Received: limit="):
            load_vectors(path, limit=bad)
    with pytest.raises(FileNotFoundError, match="No vector file at"):
        load_vectors(tmp_path / "missing.txt")


def test_glove_words_with_spaces_keep_the_spaces(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("cat 1 2\nat name@domain.com 3 4\n")
    assert load_vectors(path).words == ["cat", "at name@domain.com"]


def test_streaming_stops_once_every_wanted_word_is_found(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("cat 1 2\ndog 3 4\nthis line is broken\n")  # never read
    assert load_vectors(path, vocabulary=["dog", "cat"]).words == ["cat", "dog"]
    assert load_vectors(path, limit=2).words == ["cat", "dog"]


def test_embedding_matrix_rows_hits_misses_and_case():
    words = ["the", "Cat", "cat", "dog"]
    table = np.array([[1, 1], [5, 5], [1, 2], [2, 2]], np.float32)
    vocabulary = ["", "[UNK]", "the", "cat", "Dog", "mouse"]
    exact = embedding_matrix((words, table), vocabulary)
    assert exact.matrix.tolist() == [[0, 0], [0, 0], [1, 1], [1, 2], [0, 0], [0, 0]]
    assert exact.hits == ["the", "cat"] and exact.misses == ["Dog", "mouse"] and exact.hit_rate == 0.5
    lower = embedding_matrix((words, table), vocabulary, case="lower")
    assert lower.matrix[4].tolist() == [2, 2] and lower.misses == ["mouse"]
    both = embedding_matrix((words, table), ["", "[UNK]", "Cat", "CAT"], case="exact_then_lower")
    assert both.matrix[2:].tolist() == [[5, 5], [1, 2]]
    random = embedding_matrix((words, table), vocabulary, missing="random", seed=1)
    assert random.matrix[:2].tolist() == [[0, 0], [0, 0]] and np.all(random.matrix[5] != 0)
    np.testing.assert_array_equal(
        random.matrix, embedding_matrix((words, table), vocabulary, missing="random", seed=1).matrix
    )
    no_special = embedding_matrix((words, table), ["", "the"], mask_token=None, oov_token=None)
    assert no_special.misses == [""]
    with pytest.raises(ValueError, match=r"`case` must be one of \('exact', 'lower', 'exact_then_lower'\)"):
        embedding_matrix((words, table), vocabulary, case="upper")
    with pytest.raises(ValueError, match=r"`missing` must be one of \('zeros', 'random'\)"):
        embedding_matrix((words, table), vocabulary, missing="mean")
    with pytest.raises(ValueError, match=r"Received 4 words and an array of shape \(3, 2\)"):
        embedding_matrix((words, table[:3]), vocabulary)


@requires_gensim
def test_keras_recipe_on_real_glove_vectors():
    """TextVectorizer vocabulary -> GloVe rows -> a frozen Embedding that returns the GloVe vectors."""
    vectorizer = jaxembed.TextVectorizer(max_tokens=40)
    vectorizer.adapt(["The cat sat on the mat.", "A dog and a cat, of the house!", "zyzzyva zyzzyva"])
    vocabulary = vectorizer.get_vocabulary()
    path = GENSIM_DATA / "test_glove.txt"
    vectors = load_vectors(path, vocabulary=vocabulary)
    result = embedding_matrix(vectors, vocabulary)
    reference = _gensim_load(path, "glove")
    assert result.hits == [w for w in vocabulary[2:] if w in reference.key_to_index]
    assert result.misses == [w for w in vocabulary[2:] if w not in reference.key_to_index]
    assert "the" in result.hits and "zyzzyva" in result.misses
    layer = jaxembed.Embedding(
        len(vocabulary), vectors.dim, weights=result.matrix, trainable=False, mask_zero=True
    )
    ids = vectorizer(["the zyzzyva"])[0][:2]
    out = np.asarray(layer(jnp.asarray(ids)))
    np.testing.assert_array_equal(out[0], reference["the"])
    np.testing.assert_array_equal(out[1], np.zeros(vectors.dim))
