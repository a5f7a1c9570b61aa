"""ReversibleEmbedding in Keras files: the layer table's entry, both ways, with real Keras as the oracle."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxembed
from jaxembed.keras import io as keras_io

keras = pytest.importorskip("keras", reason="the differential tests need keras (KERAS_BACKEND=jax)")

CASES = [(True, None), (False, None), (True, "int8"), (False, "int8"), (False, "int4/8"), (True, "int4/-1")]


def _layer(tie_weights, quantization):
    layer = jaxembed.ReversibleEmbedding(20, 16, tie_weights=tie_weights, logit_soft_cap=30.0, rngs=0)
    if quantization is not None:
        mode, _, block = quantization.partition("/")
        if mode == "int8":
            layer.quantize("int8")
        else:
            layer.quantize("int4", block_size=int(block))
    return layer


@pytest.mark.parametrize(("tie_weights", "quantization"), CASES)
def test_reversible_embedding_keras_archive_round_trip(tmp_path, tie_weights, quantization):
    layer = _layer(tie_weights, quantization)
    path = tmp_path / "lm.keras"
    keras_io.save_model(jaxembed.nn.KerasSequential([layer]), path)
    ids = np.array([[0, 7, 19]])
    x = np.random.default_rng(0).normal(size=(2, 16)).astype(np.float32)

    ours = keras_io.load_model(path).layers[0]
    assert type(ours) is jaxembed.ReversibleEmbedding and ours.get_config() == layer.get_config()
    for got, want in zip(ours.get_weights(), layer.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)

    keras_layer = keras.saving.load_model(path).layers[0]
    assert type(keras_layer).__name__ == "ReversibleEmbedding"
    np.testing.assert_allclose(np.asarray(keras_layer(ids)), np.asarray(layer(ids)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        np.asarray(keras_layer(x, reverse=True)), np.asarray(layer(x, reverse=True)), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("tie_weights", [True, False])
def test_a_keras_saved_reversible_embedding_loads(tmp_path, tie_weights):
    keras_layer = keras.layers.ReversibleEmbedding(20, 8, tie_weights=tie_weights, name="tokens")
    model = keras.Sequential([keras.Input((3,), dtype="int32"), keras_layer])
    path = tmp_path / "keras_lm.keras"
    model.save(path)
    ours = keras_io.load_model(path).layers[0]
    assert ours.spec.name == "tokens" and ours.tie_weights == tie_weights
    ids = np.array([[1, 2, 19]])
    np.testing.assert_array_equal(np.asarray(ours(ids)), np.asarray(keras_layer(ids)))
    x = np.ones((1, 8), np.float32)
    np.testing.assert_allclose(
        np.asarray(ours(jnp.asarray(x), reverse=True)), np.asarray(keras_layer(x, reverse=True)), rtol=1e-5
    )
