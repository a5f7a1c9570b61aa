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
