"""The Keras layer table of jaxembed.keras.io: one read-only entry per layer class, used both ways."""

import types

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxembed
from jaxembed.keras import io as keras_io
from jaxembed.keras.io import _layers


def test_one_entry_per_keras_class_and_module_type():
    names = [kind.class_name for kind in _layers._KINDS]
    assert names == [
        "Embedding",
        "ReversibleEmbedding",
        "Dense",
        "GlobalAveragePooling1D",
        "Flatten",
        "Dropout",
        "Activation",
    ]
    assert len(set(names)) == len(names)
    assert len({kind.module_type for kind in _layers._KINDS}) == len(names)
    assert isinstance(_layers._BY_CLASS_NAME, types.MappingProxyType)
    assert isinstance(_layers._BY_MODULE_TYPE, types.MappingProxyType)
    with pytest.raises(TypeError):
        _layers._BY_CLASS_NAME["Conv1D"] = _layers._KINDS[0]  # read-only: nothing registers at run time


def test_every_kind_round_trips_through_a_keras_archive(tmp_path):
    model = jaxembed.nn.KerasSequential(
        [
            jaxembed.Embedding(10, 4, mask_zero=True, name="words", rngs=0),
            jaxembed.GlobalAveragePooling1D(),
            nnx.Dropout(0.25, rngs=nnx.Rngs(0)),
            nnx.Linear(4, 3, rngs=nnx.Rngs(1)),
            jaxembed.nn.Activation("relu", fused=True),
            nnx.Linear(3, 2, rngs=nnx.Rngs(2)),
            jaxembed.nn.Activation("softmax"),
        ]
    )
    path = tmp_path / "model.keras"
    keras_io.save_model(model, path)
    loaded = keras_io.load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Embedding",
        "GlobalAveragePooling1D",
        "Dropout",
        "Linear",
        "Activation",
        "Linear",
        "Activation",
    ]
    assert loaded.layers[0].spec.name == "words" and loaded.layers[2].rate == 0.25
    model.eval()
    ids = jnp.array([[3, 1, 0], [9, 9, 2]])
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(model(ids)), rtol=1e-6)
    names = [
        _layers._kind_of(layer).class_name for layer in loaded.layers if type(layer).__name__ != "Activation"
    ]
    assert names == ["Embedding", "GlobalAveragePooling1D", "Dropout", "Dense", "Dense"]


def test_a_subclass_without_a_keras_class_is_refused_by_name(tmp_path):
    """An EmbeddingBag is not a Keras Embedding (its combiner has no Keras key): no silent write."""
    model = jaxembed.nn.KerasSequential([jaxembed.EmbeddingBag(10, 4, rngs=0)])
    with pytest.raises(TypeError, match="EmbeddingBag has no Keras layer class"):
        keras_io.save_model(model, tmp_path / "bag.keras")
    with pytest.raises(TypeError, match="EmbeddingBag has no Keras layer class"):
        keras_io.save_weights(model, tmp_path / "bag.weights.h5")
    assert not list(tmp_path.iterdir())
    # A lone table has no class in a weights file: its table is written.
    keras_io.save_weights(jaxembed.EmbeddingBag(10, 4, rngs=0), tmp_path / "table.weights.h5")
    assert keras_io.list_embeddings(tmp_path / "table.weights.h5")[0].shape == (10, 4)


def test_stored_variables_must_fit_the_kind(tmp_path):
    from jaxembed.keras.io._graph import _LayerConfig

    pooling = _LayerConfig("Flatten", "flatten", {}, "layers/flatten", ())
    with pytest.raises(ValueError, match="should store no variables"):
        _layers._layer_from_config(pooling, [np.zeros((2, 2))], 0)
    unknown = _LayerConfig("Conv1D", "conv", {}, "layers/conv1d", ())
    with pytest.raises(
        ValueError, match="is a Conv1D; KerasSequential loads Embedding, ReversibleEmbedding, Dense"
    ):
        _layers._layer_from_config(unknown, [], 0)
