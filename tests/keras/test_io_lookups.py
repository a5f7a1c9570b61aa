"""jaxembed.keras.io.load_lookups: Keras-saved lookup vocabularies (assets and IDF weights) load exactly."""

import warnings
import zipfile

import numpy as np
import pytest

import jaxembed

keras = pytest.importorskip("keras")


def _quiet(function, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args)


@pytest.fixture(scope="module")
def keras_archive(tmp_path_factory):
    """A Keras model with an adapted StringLookup, a tf_idf IntegerLookup and a fixed-vocabulary one."""
    colour = keras.layers.StringLookup(name="colour", mask_token="", num_oov_indices=2)
    colour.adapt(["red", "green", "red", "blue", "", "teal", "red"])
    size = keras.layers.IntegerLookup(output_mode="tf_idf", name="size")
    size.adapt(np.array([[36, 38], [38, 40], [40, 40]]))
    fixed = keras.layers.IntegerLookup(vocabulary=[7, 9], name="fixed")
    sizes = keras.Input((2,), dtype="int64")
    model = keras.Model(sizes, [size(sizes), fixed(sizes)])
    path = tmp_path_factory.mktemp("keras") / "lookups.keras"
    _quiet(model.save, path)
    # The StringLookup cannot sit behind a string Input on Keras's JAX backend; a Sequential of it
    # (unbuilt) is saved the same way: config plus assets/layers/string_lookup/vocabulary.txt.
    strings = tmp_path_factory.mktemp("keras") / "strings.keras"
    _quiet(keras.Sequential([colour]).save, strings)
    return {"model": path, "strings": strings, "colour": colour, "size": size, "fixed": fixed}


def test_load_lookups_matches_the_keras_layers(keras_archive):
    lookups = jaxembed.keras.io.load_lookups(keras_archive["model"])
    assert list(lookups) == ["size", "fixed"]
    data = np.array([[36, 40], [41, 38], [9, 7]])
    for name in ("size", "fixed"):
        theirs = keras_archive[name]
        assert lookups[name].get_vocabulary() == [int(v) for v in theirs.get_vocabulary()]
        np.testing.assert_allclose(np.asarray(lookups[name](data)), np.asarray(theirs(data)), rtol=1e-6)
    np.testing.assert_allclose(
        lookups["size"].idf_weights, np.asarray(keras_archive["size"].idf_weights_const)
    )
    colour = jaxembed.keras.io.load_lookups(keras_archive["strings"])["colour"]
    theirs = keras_archive["colour"]
    assert colour.get_vocabulary() == [str(t) for t in theirs.get_vocabulary()]
    words = np.array([["red", "pink", ""], ["teal", "blue", "black"]])
    np.testing.assert_array_equal(np.asarray(colour(words)), np.asarray(theirs(words)))


def _rewrite(source, target, member, data):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.namelist():
            if item != member:
                new.writestr(item, old.read(item))
        if data is not None:
            new.writestr(member, data)


def test_load_lookups_refuses_bad_assets(keras_archive, tmp_path):
    member = "assets/layers/string_lookup/vocabulary.txt"
    bad = tmp_path / "bad.keras"
    _rewrite(keras_archive["strings"], bad, member, "\n[UNK]\n[UNK]\nred\nred")
    with pytest.raises(ValueError, match="repeated term"):
        jaxembed.keras.io.load_lookups(bad)
    _rewrite(keras_archive["strings"], bad, member, b"\xff\xfe")
    with pytest.raises(jaxembed.keras.io.KerasFileError, match="not UTF-8"):
        jaxembed.keras.io.load_lookups(bad)
    _rewrite(keras_archive["strings"], bad, member, None)
    with pytest.raises(jaxembed.keras.io.KerasFileError, match="no asset assets/layers/string_lookup"):
        jaxembed.keras.io.load_lookups(bad)


# ------------------------------------------------------------------------------- save_lookups
def _jaxembed_layers():
    """An adapted StringLookup, a tf_idf IntegerLookup, one with its vocabulary in the config, an
    inverting one, a salted Hashing and a one-hot CategoryEncoding (random vocabularies)."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in rng.integers(0, 40, size=300)]
    colour = jaxembed.StringLookup(name="colour", mask_token="", num_oov_indices=2)
    colour.adapt(words + [""])
    size = jaxembed.IntegerLookup(output_mode="tf_idf", name="size")
    size.adapt(rng.integers(30, 50, size=(40, 3)))
    fixed = jaxembed.IntegerLookup(vocabulary=[7, 9, 11], name="fixed")
    back = jaxembed.StringLookup(name="back", invert=True)
    back.set_vocabulary(["x", "y", "z"])
    hashing = jaxembed.Hashing(num_bins=16, salt=[1, 2], name="hashing")
    encoding = jaxembed.CategoryEncoding(num_tokens=8, output_mode="one_hot", name="one_hot")
    return [colour, size, fixed, back, hashing, encoding]


def test_save_lookups_loads_in_keras_with_the_same_outputs(tmp_path):
    layers = _jaxembed_layers()
    path = tmp_path / "ours.keras"
    jaxembed.keras.io.save_lookups(layers, path)
    with zipfile.ZipFile(path) as archive:
        members = set(archive.namelist())
    # Keras's layout: the adapted vocabularies as assets, the one given to the constructor in the config
    assert "assets/layers/string_lookup/vocabulary.txt" in members
    assert "assets/layers/integer_lookup/vocabulary.txt" in members
    assert "assets/layers/integer_lookup_1/vocabulary.txt" not in members
    model = _quiet(keras.saving.load_model, path)
    rng = np.random.default_rng(1)
    words = np.array([[f"w{i}" for i in row] for row in rng.integers(0, 60, size=(6, 5))])
    words[0, 0] = ""
    ints = rng.integers(0, 60, size=(6, 3))
    inputs = {"colour": words, "size": ints, "fixed": np.array([[7, 8, 11]]), "back": np.array([[0, 1, 3]])}
    inputs |= {"hashing": words, "one_hot": np.array([0, 3, 7])}
    for layer in layers:
        theirs = model.get_layer(layer.name)
        assert type(theirs).__name__ == type(layer).__name__
        if hasattr(theirs, "get_vocabulary"):
            assert [str(t) for t in theirs.get_vocabulary()] == [str(t) for t in layer.get_vocabulary()]
        if getattr(layer, "invert", False):
            assert theirs.invert  # Keras's JAX backend cannot return the strings (docs/keras.md)
            continue
        ours_out, theirs_out = np.asarray(layer(inputs[layer.name])), np.asarray(theirs(inputs[layer.name]))
        if ours_out.dtype.kind in "SUO":
            np.testing.assert_array_equal(ours_out.astype(str), theirs_out.astype(str))
        else:
            np.testing.assert_allclose(ours_out, theirs_out, rtol=1e-6, atol=0)
    np.testing.assert_allclose(np.asarray(model.get_layer("size").idf_weights_const), layers[1].idf_weights)


def test_save_lookups_round_trip_through_keras(tmp_path):
    """jaxembed -> .keras -> Keras -> .keras -> jaxembed: the same vocabularies and outputs."""
    layers = _jaxembed_layers()
    ours = tmp_path / "ours.keras"
    jaxembed.keras.io.save_lookups(layers, ours)
    again = tmp_path / "keras_again.keras"
    _quiet(_quiet(keras.saving.load_model, ours).save, again)
    loaded = jaxembed.keras.io.load_lookups(again)
    assert list(loaded) == [layer.name for layer in layers]
    words = np.array([["w1", "w7", "nope", ""]])
    for layer in layers:
        back = loaded[layer.name]
        assert back.get_config() == layer.get_config()
        if hasattr(layer, "get_vocabulary"):
            assert back.get_vocabulary() == layer.get_vocabulary()
    np.testing.assert_array_equal(np.asarray(loaded["colour"](words)), np.asarray(layers[0](words)))
    np.testing.assert_allclose(loaded["size"].idf_weights, layers[1].idf_weights)
    np.testing.assert_array_equal(np.asarray(loaded["hashing"](words)), np.asarray(layers[4](words)))


def test_save_lookups_checks_its_arguments(tmp_path):
    colour = jaxembed.StringLookup(name="colour")
    colour.adapt(["a", "b"])
    with pytest.raises(ValueError, match="must end in `.keras`"):
        jaxembed.keras.io.save_lookups([colour], tmp_path / "a.zip")
    with pytest.raises(ValueError, match="'colour' appears twice"):
        jaxembed.keras.io.save_lookups([colour, colour], tmp_path / "a.keras")
    with pytest.raises(TypeError, match="Received a Embedding"):
        jaxembed.keras.io.save_lookups([jaxembed.Embedding(2, 2, rngs=0)], tmp_path / "a.keras")
    broken = jaxembed.StringLookup(name="broken")
    broken.set_vocabulary(["a\nb"])
    with pytest.raises(ValueError, match="line breaks"):
        jaxembed.keras.io.save_lookups([broken], tmp_path / "a.keras")
    assert not (tmp_path / "a.keras").exists()  # nothing half-written
    # a mapping renames
    jaxembed.keras.io.save_lookups({"renamed": colour}, tmp_path / "b.keras")
    assert list(jaxembed.keras.io.load_lookups(tmp_path / "b.keras")) == ["renamed"]


def test_save_lookups_is_atomic(tmp_path, monkeypatch):
    """A failed write leaves the previous archive as it was (the one .keras writer's temporary + rename)."""
    from jaxembed.keras.io import _model

    colour = jaxembed.StringLookup(name="colour")
    colour.adapt(["a", "b"])
    path = tmp_path / "lookups.keras"
    jaxembed.keras.io.save_lookups([colour], path)
    before = path.read_bytes()

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(_model.json, "dumps", failing)  # fails inside the archive, mid-write
    colour.adapt(["c", "d", "e"])
    with pytest.raises(OSError, match="disk full"):
        jaxembed.keras.io.save_lookups([colour], path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lookups.keras"]
