"""jaxembed.datasets: every loader on small datasets built here; IMDB checked against Keras's load_data."""

import hashlib
import io
import json
import operator
import tarfile
import zipfile

import numpy as np
import pytest

from jaxembed import datasets
from jaxembed.datasets import DatasetError, _imdb


def _ragged(rows):
    out = np.empty(len(rows), dtype=object)
    out[:] = [list(map(int, row)) for row in rows]
    return out


@pytest.fixture(scope="module")
def imdb_npz(tmp_path_factory):
    """A small file in Keras's imdb.npz layout: object arrays of lists of ints, int64 labels."""
    rng = np.random.default_rng(0)

    def split(n):
        rows = [rng.integers(1, 60, size=rng.integers(1, 25)) for _ in range(n)]
        return _ragged(rows), rng.integers(0, 2, size=n).astype(np.int64)

    (x_train, y_train), (x_test, y_test) = split(40), split(30)
    path = tmp_path_factory.mktemp("imdb") / "imdb.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


IMDB_SETTINGS = [
    {},
    {"num_words": 30},
    {"num_words": 30, "skip_top": 5, "seed": 7},
    {"maxlen": 12, "num_words": 40},
    {"start_char": None, "oov_char": None, "num_words": 25, "skip_top": 4},
    {"start_char": None, "index_from": 0},
    {"oov_char": 9, "index_from": 5, "seed": 0},
]


@pytest.mark.parametrize("settings", IMDB_SETTINGS)
def test_load_imdb_equals_keras_load_data(imdb_npz, monkeypatch, settings):
    pytest.importorskip("keras", reason="the differential tests need keras (the test extra)")
    from keras.src.datasets import imdb as keras_imdb

    # Keras's load_data would download (its cached file must match the real digest); point it at ours.
    monkeypatch.setattr(keras_imdb, "get_file", lambda *args, **kwargs: str(imdb_npz))
    (kx_train, ky_train), (kx_test, ky_test) = keras_imdb.load_data(**settings)
    (x_train, y_train), (x_test, y_test) = datasets.load_imdb(imdb_npz, **settings)
    assert [list(x) for x in x_train] == [list(x) for x in kx_train]
    assert [list(x) for x in x_test] == [list(x) for x in kx_test]
    np.testing.assert_array_equal(y_train, ky_train)
    np.testing.assert_array_equal(y_test, ky_test)
    assert x_train.dtype == object and len(x_train) == len(y_train)


def test_load_imdb_maxlen_that_drops_everything(imdb_npz):
    with pytest.raises(DatasetError, match="No review is shorter than maxlen=1"):
        datasets.load_imdb(imdb_npz, maxlen=1)


def test_imdb_download_path_caches_and_verifies(imdb_npz, tmp_path, monkeypatch):
    # The download path, offline: the "server" is a file:// folder holding our small file.
    monkeypatch.setattr(_imdb, "KERAS_DATA_URL", imdb_npz.parent.as_uri() + "/")
    monkeypatch.setattr(_imdb, "IMDB_SHA256", datasets.file_digest(imdb_npz))
    cache = tmp_path / "cache"
    first = datasets.load_imdb(num_words=30, cache_dir=cache)
    assert sorted(p.name for p in cache.iterdir()) == ["imdb.npz"]
    second = datasets.load_imdb(num_words=30, cache_dir=cache)  # from the cache
    assert [list(x) for x in first[0][0]] == [list(x) for x in second[0][0]]
    # A cached file that changed is refused, not used.
    (cache / "imdb.npz").write_bytes((cache / "imdb.npz").read_bytes()[:-10])
    with pytest.raises(DatasetError, match="Checksum mismatch .* delete it and download it again"):
        datasets.load_imdb(cache_dir=cache)


def test_fetch_checksum_mismatch_caches_nothing(tmp_path):
    source = tmp_path / "data.bin"
    source.write_bytes(b"some bytes")
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(
        DatasetError, match=r"Checksum mismatch for file://.*SHA256 is [0-9a-f]{64}, expected 0{64}"
    ):
        datasets.fetch(source.as_uri(), wrong, cache_dir=cache, progress=False)
    assert list(cache.iterdir()) == []  # no partial or wrong file left behind
    md5 = hashlib.md5(b"some bytes").hexdigest()
    assert datasets.fetch(source.as_uri(), md5, cache_dir=cache, progress=False).read_bytes() == b"some bytes"


def test_local_imdb_checked_against_a_given_sha256(imdb_npz):
    with pytest.raises(DatasetError, match="Checksum mismatch"):
        datasets.load_imdb(imdb_npz, sha256="f" * 64)
    datasets.load_imdb(imdb_npz, sha256=datasets.file_digest(imdb_npz))


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_read_npz_refuses_pickled_code(tmp_path):
    class Gadget:  # what an attacker would pickle: a callable to run on load
        def __reduce__(self):
            return operator.add, (1, 2)

    evil = np.empty(1, dtype=object)
    evil[0] = Gadget()
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", _npy_bytes(evil))
    with pytest.raises(DatasetError, match=r"Refusing to unpickle _?operator.add"):
        datasets.read_npz(path)
    # np.load refuses the same file outright without allow_pickle; ours reads real object arrays.
    good = tmp_path / "good.npz"
    np.savez(good, x=_ragged([[1, 2], [3]]))
    assert [list(r) for r in datasets.read_npz(good)["x"]] == [[1, 2], [3]]
    with pytest.raises(ValueError, match="allow_pickle=False"):
        np.load(good, allow_pickle=False)["x"]


def test_bad_imdb_files(imdb_npz, tmp_path):
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(imdb_npz.read_bytes()[: len(imdb_npz.read_bytes()) // 2])
    with pytest.raises(DatasetError, match="not a readable .npz archive"):
        datasets.load_imdb(truncated)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(DatasetError, match="not a readable .npz archive"):
        datasets.load_imdb(text)
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=_ragged([[1]]), y_train=np.array([1]))
    with pytest.raises(DatasetError, match=r"lacks \['x_test', 'y_test'\]"):
        datasets.load_imdb(partial)
    mismatched = tmp_path / "mismatched.npz"
    np.savez(
        mismatched,
        x_train=_ragged([[1]]),
        y_train=np.array([1, 0]),
        x_test=_ragged([[1]]),
        y_test=np.array([0]),
    )
    with pytest.raises(DatasetError, match="x_train and y_train must be 1-D and equally long"):
        datasets.load_imdb(mismatched)
    floats = tmp_path / "floats.npz"
    x = np.empty(1, dtype=object)
    x[0] = [1.5]
    np.savez(floats, x_train=x, y_train=np.array([1]), x_test=x, y_test=np.array([0]))
    with pytest.raises(DatasetError, match=r"x_train\[0\] must be a list of non-negative ints"):
        datasets.load_imdb(floats)
    with pytest.raises(FileNotFoundError, match="No file at"):
        datasets.load_imdb(tmp_path / "missing.npz")


def test_word_index_and_decoding(tmp_path, imdb_npz):
    path = tmp_path / "imdb_word_index.json"
    path.write_text(json.dumps({"the": 1, "movie": 2, "great": 3}))
    index = datasets.imdb_word_index(path)
    assert datasets.decode_imdb([1, 4, 6, 5, 2], index) == "[START] the great movie [OOV]"
    path.write_text("[1, 2]")
    with pytest.raises(DatasetError, match="JSON object mapping words to positive ints"):
        datasets.imdb_word_index(path)
    path.write_text("{")
    with pytest.raises(DatasetError, match="not a JSON word index"):
        datasets.imdb_word_index(path)


# ------------------------------------------------------------------ folders and aclImdb
def _write_tree(root, files):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


ACL_FILES = {
    "aclImdb/train/pos/0_9.txt": "A wonderful film.<br />Loved it",
    "aclImdb/train/pos/1_8.txt": "Great acting — très bien",
    "aclImdb/train/neg/2_1.txt": "Dull and slow",
    "aclImdb/train/unsup/3_0.txt": "unlabelled",
    "aclImdb/train/urls_pos.txt": "http://example",
    "aclImdb/test/pos/4_10.txt": "Best of the year",
    "aclImdb/test/neg/5_2.txt": "Terrible",
    "aclImdb/imdb.vocab": "the\nfilm\n",
}


def test_aclimdb_folder_and_tarball_agree(tmp_path):
    _write_tree(tmp_path, ACL_FILES)
    tarball = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(tmp_path / "aclImdb", arcname="aclImdb")
    for source in (tmp_path, tmp_path / "aclImdb", tarball):
        train = datasets.load_aclimdb(source, "train")
        assert train.texts == ["Dull and slow", "A wonderful film.<br />Loved it", "Great acting — très bien"]
        assert train.labels.tolist() == [0, 1, 1] and train.class_names == ["neg", "pos"]
        assert datasets.load_aclimdb(source, "test").texts == ["Terrible", "Best of the year"]


def test_aclimdb_errors(tmp_path):
    _write_tree(tmp_path, {k: v for k, v in ACL_FILES.items() if "/test/neg/" not in k})
    (tmp_path / "aclImdb/test/neg").mkdir()
    with pytest.raises(DatasetError, match="Class 'neg' is empty"):
        datasets.load_aclimdb(tmp_path, "test")
    tarball = tmp_path / "acl.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(tmp_path / "aclImdb", arcname="aclImdb")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(tarball.read_bytes()[:-200])
    with pytest.raises(DatasetError, match="not a readable tar archive"):
        datasets.load_aclimdb(truncated, "train")
    with pytest.raises(DatasetError, match="Class 'neg' is empty: .* test/neg"):
        datasets.load_aclimdb(tarball, "test")
    with pytest.raises(ValueError, match="`subset` must be 'train' or 'test'. Received: subset='unsup'"):
        datasets.load_aclimdb(tmp_path, "unsup")
    with pytest.raises(DatasetError, match="has no 'train' folder"):
        datasets.load_aclimdb(tmp_path / "aclImdb" / "test", "train")


def test_text_folder_like_keras(tmp_path):
    _write_tree(
        tmp_path,
        {
            "sports/a.txt": "goal",
            "sports/deep/b.txt": "match",
            "arts/c.txt": "paint",
            "arts/skip.md": "x",
            "z/d.txt": "?",
        },
    )
    data = datasets.load_text_folder(tmp_path)
    assert data.class_names == ["arts", "sports", "z"]
    assert data.texts == ["paint", "goal", "match", "?"] and data.labels.tolist() == [0, 1, 1, 2]
    picked = datasets.load_text_folder(tmp_path, class_names=["sports", "arts"])
    assert picked.labels.tolist() == [0, 0, 1] and picked.class_names == ["sports", "arts"]
    assert datasets.load_text_folder(tmp_path, class_names=["arts"], extensions=(".md",)).texts == ["x"]


def test_text_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="has no subfolders"):
        datasets.load_text_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    _write_tree(tmp_path, {"full/a.txt": "text"})
    with pytest.raises(DatasetError, match=r"Class 'empty' is empty: no \['.txt'\] files"):
        datasets.load_text_folder(tmp_path)
    with pytest.raises(DatasetError, match=r"Class folders \['other'\] are not in"):
        datasets.load_text_folder(tmp_path, class_names=["full", "other"])
    (tmp_path / "full" / "bad.txt").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(DatasetError, match="bad.txt' is not UTF-8 text"):
        datasets.load_text_folder(tmp_path, class_names=["full"])
    with pytest.raises(FileNotFoundError, match="No folder at"):
        datasets.load_text_folder(tmp_path / "missing")


def test_keras_text_dataset_from_directory_gives_the_same_classes(tmp_path):
    pytest.importorskip(
        "tensorflow", reason="text_dataset_from_directory needs TensorFlow (the compare extra)"
    )
    keras = pytest.importorskip("keras", reason="the differential tests need keras (the test extra)")
    _write_tree(tmp_path, {"b/1.txt": "one", "a/2.txt": "two", "c/x/3.txt": "three", "a/4.txt": "four"})
    keras_data = keras.utils.text_dataset_from_directory(tmp_path, batch_size=None, shuffle=False)
    pairs = sorted((text.numpy().decode(), int(label)) for text, label in keras_data)
    ours = datasets.load_text_folder(tmp_path)
    assert ours.class_names == keras_data.class_names
    assert sorted(zip(ours.texts, ours.labels.tolist())) == pairs


# ------------------------------------------------------------------ CSV and JSONL
def test_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "data.csv"
    csv_path.write_text(
        'id,review,stars\n1,"Fine, really\nfine",10\n2,Bad,2\n3,"Okay ""ish""",2\n', encoding="utf-8"
    )
    data = datasets.load_text_table(csv_path, text_column="review", label_column="stars")
    assert data.texts == ["Fine, really\nfine", "Bad", 'Okay "ish"']
    assert data.class_names == ["2", "10"] and data.labels.tolist() == [1, 0, 0]  # numeric label order
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text(
        '{"text": "héllo", "label": "b"}\n\n{"text": "bye", "label": "a", "extra": 1}\n', encoding="utf-8"
    )
    data = datasets.load_text_table(jsonl)
    assert (
        data.texts == ["héllo", "bye"] and data.labels.tolist() == [1, 0] and data.class_names == ["a", "b"]
    )


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        (
            "a.csv",
            "text,label\nhi,1\n",
            {"label_column": "y"},
            r"line 2 has no column \['y'\]; it has \['label', 'text'\]",
        ),
        ("a.csv", "", {}, "is empty; a CSV file needs a header row"),
        ("a.csv", "text,label\n", {}, "has no examples"),
        ("a.csv", "text,label\nhi\n", {}, "different number of fields than the header"),
        ("a.csv", "text,label\nhi,\n", {}, "the label 'label' is empty"),
        ("a.jsonl", '{"text": "x", "label": 1}\n{"text": "y", \n', {}, "line 2 is not valid JSON"),
        ("a.jsonl", '["x", 1]\n', {}, "line 1 must be a JSON object"),
        ("a.jsonl", '{"text": 3, "label": 1}\n', {}, "'text' must be a string; got 3"),
        ("a.jsonl", '{"label": 1}\n', {}, r"line 1 has no column \['text'\]"),
        ("a.txt", "text,label\n", {}, "`format` must be 'csv' or 'jsonl'"),
    ],
)
def test_table_errors(tmp_path, name, content, kwargs, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises((DatasetError, ValueError), match=message):
        datasets.load_text_table(path, **kwargs)


# ------------------------------------------------------------------ built-in corpus and splits
def test_builtin_corpus(tmp_path):
    data = datasets.load_builtin(cache_dir=tmp_path)
    counts = data.class_counts()
    assert len(data) >= 2000 and len(counts) == 8 and min(counts.values()) >= 100, counts
    assert len(set(data.texts)) == len(data)  # no text in two places
    assert "Return" in " ".join(data.texts[:200]) or "return" in " ".join(data.texts[:200])
    cached = datasets.load_builtin(cache_dir=tmp_path)  # read back from the JSON cache
    assert cached.texts == data.texts and cached.labels.tolist() == data.labels.tolist()
    train, test = data.split(0.2)
    assert 0.15 < len(test) / len(data) < 0.25 and not set(train.texts) & set(test.texts)


def test_hash_split_depends_only_on_the_text():
    texts = [f"example number {i}" for i in range(500)]
    split = datasets.hash_split(texts, 0.3)
    reversed_split = datasets.hash_split(texts[::-1], 0.3)[::-1]
    np.testing.assert_array_equal(split, reversed_split)
    assert 100 < split.sum() < 200
    expected = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "big") < 0.3 * 2**32 for t in texts]
    assert split.tolist() == expected
    with pytest.raises(ValueError, match=r"`test_fraction` must be in \(0, 1\). Received: test_fraction=1.5"):
        datasets.hash_split(texts, 1.5)


def test_pickle_free_numeric_members(tmp_path):
    path = tmp_path / "numbers.npz"
    np.savez(path, a=np.arange(3), b=np.ones((2, 2), np.float32))
    arrays = datasets.read_npz(path)
    assert arrays["a"].tolist() == [0, 1, 2] and arrays["b"].dtype == np.float32
