"""Keras quantization configs and policies on every path: constructor, quantize, from_config, files."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxembed
from jaxembed.keras import io as keras_io

keras = pytest.importorskip("keras", reason="the differential tests need keras (KERAS_BACKEND=jax)")
from keras.quantizers import AbsMaxQuantizer, Int4QuantizationConfig, Int8QuantizationConfig  # noqa: E402

TABLE = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)


def _paths(config):
    """The three ways a quantization config reaches a layer; each returns the layer (or raises)."""

    def constructor():
        return jaxembed.Embedding(20, 8, weights=TABLE, quantization_config=config)

    def quantize():
        layer = jaxembed.Embedding(20, 8, weights=TABLE)
        layer.quantize(config=config)
        return layer

    def from_config():
        serialized = {"class_name": type(config).__name__, "config": config.get_config()}
        plain = jaxembed.Embedding(20, 8, weights=TABLE).get_config()
        return jaxembed.Embedding.from_config(plain | {"quantization_config": serialized, "weights": TABLE})

    return {"constructor": constructor, "quantize": quantize, "from_config": from_config}


REFUSED = [
    (Int8QuantizationConfig(weight_quantizer=AbsMaxQuantizer(axis=0)), "along axis -1"),
    (Int8QuantizationConfig(weight_quantizer=AbsMaxQuantizer(axis=-1, epsilon=1e-3)), "epsilon"),
]


@pytest.mark.parametrize(("config", "message"), REFUSED, ids=["axis-0", "epsilon"])
def test_a_quantizer_jaxembed_cannot_apply_is_refused_the_same_on_every_path(config, message):
    for name, make in _paths(config).items():
        with pytest.raises(ValueError, match=message):
            make()


@pytest.mark.parametrize(
    "config",
    [
        Int8QuantizationConfig(weight_quantizer=AbsMaxQuantizer(axis=-1)),  # Keras's default, named
        Int8QuantizationConfig(weight_quantizer=AbsMaxQuantizer(axis=-1, value_range=(-50, 50))),
        Int8QuantizationConfig(weight_quantizer=AbsMaxQuantizer(axis=-1, value_range=(-100, 20))),
        Int4QuantizationConfig(
            weight_quantizer=AbsMaxQuantizer(axis=-1, value_range=(-8, 7), output_dtype="int8"),
            block_size=None,
        ),
        Int4QuantizationConfig(block_size=4),
    ],
    ids=["int8-default", "int8-50", "int8-asymmetric", "int4-default-per-channel", "int4-block-4"],
)
def test_every_path_gives_keras_arrays(config):
    keras_layer = keras.layers.Embedding(20, 8, weights=TABLE)
    keras_layer.quantize(config.mode, config=config)
    expected = [np.asarray(w) for w in keras_layer.get_weights()]  # grouped int4: with g_idx
    for name, make in _paths(config).items():
        layer = make()
        assert len(layer.get_weights()) == len(expected), name
        for ours, theirs in zip(layer.get_weights(), expected):
            np.testing.assert_array_equal(ours.reshape(theirs.shape), theirs, err_msg=name)


def test_custom_range_survives_keras_files_both_ways(tmp_path):
    config = Int8QuantizationConfig(weight_quantizer=AbsMaxQuantizer(axis=-1, value_range=(-50, 50)))
    layer = jaxembed.Embedding(20, 8, weights=TABLE, quantization_config=config, name="words")
    path = tmp_path / "model.keras"
    keras_io.save_model(jaxembed.nn.KerasSequential([layer]), path)
    loaded = keras_io.load_model(path).layers[0]
    assert loaded.spec.quantization_value_range == (-50, 50)
    keras_model = keras.saving.load_model(path)
    assert tuple(keras_model.layers[0].quantization_config.weight_quantizer.value_range) == (-50, 50)
    # Keras's own file: the quantizer is read from its config, the layout from its arrays.
    keras_layer = keras.layers.Embedding(20, 8, weights=TABLE, name="words")
    keras_layer.quantize("int8", config=config)
    keras.Sequential([keras.Input((3,), dtype="int32"), keras_layer]).save(tmp_path / "keras.keras")
    from_keras = keras_io.load_embedding(tmp_path / "keras.keras")
    assert from_keras.spec.quantization_value_range == (-50, 50)
    np.testing.assert_array_equal(from_keras.get_weights()[0], np.asarray(keras_layer._embeddings))


def test_int4_custom_quantizer_rules_are_keras_s():
    with pytest.raises(ValueError, match="sub-channel"):
        jaxembed.Embedding(
            4,
            2,
            quantization_config={
                "class_name": "Int4QuantizationConfig",
                "config": {
                    "block_size": 64,
                    "weight_quantizer": {"class_name": "AbsMaxQuantizer", "config": {}},
                },
            },
        )
    with pytest.raises(ValueError, match=r"value_range=\(-8, 7\)"):
        jaxembed.Embedding(
            4,
            2,
            quantization_config={
                "class_name": "Int4QuantizationConfig",
                "config": {
                    "block_size": None,
                    "weight_quantizer": {"class_name": "AbsMaxQuantizer", "config": {"value_range": [-7, 7]}},
                },
            },
        )


def test_quantize_mode_and_config_must_agree():
    layer = jaxembed.Embedding(4, 2, rngs=0)
    with pytest.raises(ValueError, match="Contradictory arguments"):
        layer.quantize("int4", config=Int8QuantizationConfig())
    with pytest.raises(ValueError, match="You must provide either `mode` or `config`"):
        layer.quantize()
    with pytest.raises(ValueError, match="contradicts the config's block_size"):
        layer.quantize("int4", block_size=32, config=Int4QuantizationConfig(block_size=64))
    assert layer.quantization_mode is None


def test_from_config_errors_are_type_errors_that_are_also_value_errors():
    config = {"input_dim": 3.7, "output_dim": 8}
    with pytest.raises(TypeError, match="input_dim=3.7 \\(of type float\\)") as caught:
        jaxembed.Embedding.from_config(config)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(TypeError, match="Unknown Embedding config keys"):
        jaxembed.Embedding.from_config({"input_dim": 3, "output_dim": 8, "units": 4})
    with pytest.raises(TypeError, match="`output_dim`"):
        jaxembed.EmbeddingBag.from_config({"input_dim": 3, "output_dim": 0})


def test_quantized_policy_names_in_the_constructor_match_keras():
    for dtype in (
        "int8_from_float32",
        "int4_from_float32",
        "int8_from_mixed_bfloat16",
        "int4/16_from_float32",
    ):
        layer = jaxembed.Embedding(6, 32, dtype=dtype, rngs=0)
        keras_layer = keras.layers.Embedding(6, 32, dtype=dtype)
        keras_layer.build()
        assert [w.shape for w in layer.get_weights()] == [tuple(w.shape) for w in keras_layer.weights][
            : len(layer.get_weights())
        ], dtype
        assert layer.dtype == jnp.dtype(keras_layer.compute_dtype), dtype
        assert layer.embeddings_scale.dtype == jnp.dtype(keras_layer.embeddings_scale.dtype), dtype
        assert jaxembed.Embedding.from_config(layer.get_config()).get_config() == layer.get_config()
