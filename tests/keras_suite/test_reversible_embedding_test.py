"""Keras 3's ``keras/src/layers/core/reversible_embedding_test.py``, ported to jaxembed.ReversibleEmbedding.

One test per Keras test and parameter case, named after it (``test_<keras name>[<case>]``).
Keras's ``run_layer_test`` becomes the checks it makes that apply here: the output shape,
the number of trainable / non-trainable weights, a config round trip (ours and Keras's
``from_config``) and a jitted call. Keras's ``model.save`` / ``load_model`` round trips become:
our config and weights rebuilt into a fresh layer, and the same config and weights loaded into
real Keras (the oracle), which must give our numbers.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxembed import ReversibleEmbedding

keras = pytest.importorskip(
    "keras", reason="the ported Keras suite compares against keras (KERAS_BACKEND=jax)"
)


def _keras_twin(layer: ReversibleEmbedding):
    """The same layer in real Keras: built from our config, with our weights."""
    twin = keras.layers.ReversibleEmbedding.from_config(layer.get_config())
    twin.build()
    twin.set_weights(layer.get_weights())
    return twin


def _rebuilt(layer: ReversibleEmbedding) -> ReversibleEmbedding:
    """What a save / load round trip gives: a fresh layer from our config, then our weights."""
    fresh = ReversibleEmbedding.from_config(layer.get_config(), rngs=123)
    fresh.set_weights(layer.get_weights())
    return fresh


def _float_layer_and_twin(input_dim, output_dim, tie_weights, seed=0):
    layer = ReversibleEmbedding(input_dim, output_dim, tie_weights=tie_weights, rngs=seed)
    return layer, _keras_twin(layer)


def _mse(a, b):
    return float(np.mean(np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ------------------------------------------------------------ test_reversible_embedding_quantize
@pytest.mark.parametrize("case", ["int8", "int4"])
def test_reversible_embedding_quantize(case):
    """Keras's default quantizers: int8 quantizes the inputs (abs-max per row), int4 (per channel)
    is weight-only (``Int4QuantizationConfig``'s default activation quantizer is None). Keras's case
    also names these quantizers explicitly; jaxembed's quantize() takes only the mode and block size."""
    layer = ReversibleEmbedding(input_dim=10, output_dim=6, tie_weights=True, rngs=0)
    twin = _keras_twin(layer)
    if case == "int8":
        layer.quantize("int8")
        twin.quantize("int8")
    else:
        layer.quantize("int4", block_size=None)
        twin.quantize("int4", config=keras.quantizers.Int4QuantizationConfig(block_size=None))
    x = np.random.default_rng(0).random((2, 6)).astype("float32")
    y = layer(x, reverse=True)
    assert y.shape == (2, 10)
    for ours, theirs in zip(layer.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, np.asarray(theirs))
    np.testing.assert_allclose(np.asarray(y), np.asarray(twin(x, reverse=True)), rtol=1e-5, atol=1e-6)


def test_reversible_embedding_quantize_int8_weight_only():
    """Keras's ``Int8QuantizationConfig(activation_quantizer=None)`` (weight-only int8)."""
    pytest.skip(
        "not supported here: weight-only int8 needs a Keras QuantizationConfig object with "
        "activation_quantizer=None; jaxembed's quantize() takes a mode and a block size"
    )


# ------------------------------------------------------------ test_reversible_embedding_basics
@pytest.mark.parametrize("tie_weights", [True, False], ids=["tie_weights", "untie_weights"])
def test_reversible_embedding_basics(tie_weights):
    init_kwargs = {
        "input_dim": 100,
        "output_dim": 32,
        "tie_weights": tie_weights,
        "embeddings_initializer": "HeNormal",
        "logit_soft_cap": 50,
    }
    layer = ReversibleEmbedding(**init_kwargs, rngs=0)
    ids = np.random.default_rng(0).integers(0, 100, size=(4, 10))
    out = layer(ids)
    assert out.shape == (4, 10, 32)
    assert len(layer.trainable_variables()) == (1 if tie_weights else 2)
    assert len(layer.get_weights()) == (1 if tie_weights else 2)
    # config round trip, ours and Keras's
    config = layer.get_config()
    assert ReversibleEmbedding.from_config(config).get_config() == config
    twin = _keras_twin(layer)
    assert len(twin.trainable_weights) == (1 if tie_weights else 2)
    np.testing.assert_allclose(np.asarray(out), np.asarray(twin(ids)), rtol=0, atol=0)
    x = np.asarray(out)
    np.testing.assert_allclose(
        np.asarray(layer(x, reverse=True)), np.asarray(twin(x, reverse=True)), rtol=1e-5, atol=1e-5
    )
    # jitted, both directions
    graphdef, state = nnx.split(layer)
    forward = jax.jit(lambda s, i: nnx.merge(graphdef, s)(i))
    reverse = jax.jit(lambda s, v: nnx.merge(graphdef, s)(v, reverse=True))
    np.testing.assert_array_equal(np.asarray(forward(state, ids)), np.asarray(out))
    assert reverse(state, x).shape == (4, 10, 100)


# --------------------------------------------------------------------------- test_saving
@pytest.mark.parametrize("tie_weights", [True, False], ids=["tie_weights", "untie_weights"])
def test_saving(tie_weights):
    input_data = np.random.default_rng(0).integers(0, 100, size=(4, 10))
    layer = ReversibleEmbedding(input_dim=100, output_dim=32, tie_weights=tie_weights, rngs=0)
    restored = _rebuilt(layer)
    np.testing.assert_array_equal(np.asarray(restored(input_data)), np.asarray(layer(input_data)))
    np.testing.assert_array_equal(np.asarray(_keras_twin(layer)(input_data)), np.asarray(layer(input_data)))


# ----------------------------------------------------------------------- test_correctness
def test_correctness():
    table = np.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]])
    layer = ReversibleEmbedding(input_dim=3, output_dim=2, weights=table)
    np.testing.assert_allclose(np.asarray(layer(np.array([2, 1, 0]))), [[3.0, 3.0], [2.0, 2.0], [0.0, 0.0]])

    layer = ReversibleEmbedding(input_dim=3, output_dim=2, weights=table)
    np.testing.assert_allclose(np.asarray(layer(np.array([[1.0, 1.0]]), reverse=True)), [[0.0, 4.0, 6.0]])

    layer = ReversibleEmbedding(input_dim=3, output_dim=2, logit_soft_cap=5, weights=table)
    out = layer(np.array([[1.0, 1.0]]), reverse=True)
    np.testing.assert_allclose(np.asarray(out), [[0.0, 3.320184, 4.168273]], rtol=1e-6)


# ---------------------------------------------------------------------- test_reverse_dtype
def test_reverse_dtype():
    embedding = ReversibleEmbedding(100, 16, reverse_dtype="float32", rngs=0)
    output_data = embedding(jnp.ones((4, 10, 16)), reverse=True)
    assert output_data.shape == (4, 10, 100)
    assert output_data.dtype == jnp.float32

    embedding = ReversibleEmbedding(100, 16, reverse_dtype="float16", rngs=0)
    output_data = embedding(jnp.ones((4, 10, 16)), reverse=True)
    assert output_data.shape == (4, 10, 100)
    assert output_data.dtype == jnp.float16
    assert embedding.get_config()["reverse_dtype"] == "float16"


# ------------------------------------------------------------------------ test_quantize_int
@pytest.mark.parametrize("tie_weights", [False, True], ids=["tie_weights_False", "tie_weights_True"])
@pytest.mark.parametrize("mode", ["int4", "int8"])
def test_quantize_int(mode, tie_weights):
    layer, twin = _float_layer_and_twin(10, 16, tie_weights)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 9, size=(64, 3))
    x_reverse = rng.uniform(size=(64, 16)).astype("float32")
    y_float = layer(x)
    y_reverse_float = layer(x_reverse, reverse=True)
    layer.quantize(mode)
    if mode == "int4":  # jaxembed's default int4 layout: blocks of 128 columns, as its config says
        twin.quantize("int4", config=keras.quantizers.Int4QuantizationConfig(block_size=128))
    else:
        twin.quantize(mode)

    if not tie_weights:
        # int8 storage, also for int4 (two values per byte)
        assert layer.reverse_embeddings.dtype == jnp.int8
        assert layer.reverse_embeddings_scale.dtype == jnp.float32

    y_quantized = layer(x)
    y_reverse_quantized = layer(x_reverse, reverse=True)
    assert _mse(y_float, y_quantized) < 1e-3
    assert _mse(y_reverse_float, y_reverse_quantized) < 1e-2
    # Keras quantizes the same table to the same arrays, and computes the same outputs
    for ours, theirs in zip(layer.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, np.asarray(theirs))
    np.testing.assert_allclose(np.asarray(y_quantized), np.asarray(twin(x)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        np.asarray(y_reverse_quantized), np.asarray(twin(x_reverse, reverse=True)), rtol=1e-5, atol=1e-6
    )

    # save / load round trip (config + weights), and a fresh quantized layer loading the weights
    np.testing.assert_array_equal(np.asarray(_rebuilt(layer)(x)), np.asarray(y_quantized))
    fresh = ReversibleEmbedding(10, 16, tie_weights=tie_weights, rngs=5)
    fresh.quantize(mode)
    fresh.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(fresh(x)), np.asarray(y_quantized))
    np.testing.assert_array_equal(np.asarray(fresh(x_reverse, reverse=True)), np.asarray(y_reverse_quantized))


# ------------------------------------------------------------------ test_quantize_dtype_argument
@pytest.mark.parametrize(
    ("dtype", "tie_weights", "num_trainable_weights", "num_non_trainable_weights"),
    [
        ("int8_from_mixed_bfloat16", True, 0, 2),
        ("int8_from_mixed_bfloat16", False, 0, 4),
        ("int4_from_mixed_bfloat16", True, 0, 2),
        ("int4_from_mixed_bfloat16", False, 0, 4),
    ],
    ids=["int8_tie_weights", "int8_untie_weights", "int4_tie_weights", "int4_untie_weights"],
)
def test_quantize_dtype_argument(dtype, tie_weights, num_trainable_weights, num_non_trainable_weights):
    config = {
        "input_dim": 100,
        "output_dim": 32,
        "tie_weights": tie_weights,
        "embeddings_initializer": "HeNormal",
        "dtype": dtype,
    }
    layer = ReversibleEmbedding.from_config(config, rngs=0)
    ids = np.random.default_rng(0).integers(0, 100, size=(4, 10))
    out = layer(ids)
    assert out.shape == (4, 10, 32)
    assert out.dtype == jnp.bfloat16
    assert len(layer.trainable_variables()) == num_trainable_weights
    assert len(layer.get_weights()) == num_non_trainable_weights
    twin = keras.layers.ReversibleEmbedding.from_config(layer.get_config())
    twin.build()
    assert len(twin.non_trainable_weights) == num_non_trainable_weights
    twin.set_weights(layer.get_weights())
    # Keras dequantizes in bfloat16; jaxembed in float32 and rounds once: within one bfloat16 step.
    np.testing.assert_allclose(
        np.asarray(out, np.float32), np.asarray(twin(ids), np.float32), rtol=2**-7, atol=2**-10
    )


# ------------------------------------------------- test_reversible_embedding_int8_custom_quantizer
def test_reversible_embedding_int8_custom_quantizer():
    pytest.skip(
        "not supported here: a custom weight quantizer (AbsMaxQuantizer(value_range=(-20, 20))) comes "
        "in a Keras QuantizationConfig object; jaxembed's quantize() takes a mode and a block size"
    )


# ----------------------------------------------------------------------------- test_masking
def test_masking():
    layer = ReversibleEmbedding(3, 2, mask_zero=True, rngs=0)
    ids = np.array([2, 1, 0])
    layer(ids)
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(ids)), [True, True, False])
    x = np.array([[1.0, 2.0], [0.0, 0.0]])
    layer(x, reverse=True)
    assert layer.compute_mask(x, reverse=True) is None


# ---------------------------------------------------------- test_int4_quantization_block_size
@pytest.mark.parametrize("tie_weights", [True, False], ids=["tie_weights_True", "tie_weights_False"])
@pytest.mark.parametrize("block_size", [64, 128, None, -1], ids=lambda b: f"block_size_{b}")
def test_int4_quantization_block_size(block_size, tie_weights):
    input_dim, output_dim = 100, 256
    layer, twin = _float_layer_and_twin(input_dim, output_dim, tie_weights)
    rng = np.random.default_rng(0)
    x = rng.integers(0, input_dim, size=(4, 8))
    x_reverse = rng.random((4, output_dim)).astype("float32")
    y_float = layer(x)
    y_reverse_float = layer(x_reverse, reverse=True)
    layer.quantize("int4", block_size=block_size)
    twin.quantize("int4", config=keras.quantizers.Int4QuantizationConfig(block_size=block_size))

    assert layer.spec.quantization_block_size == (None if block_size in (None, -1) else block_size)
    if block_size is None or block_size == -1:
        expected_scale_shape = (input_dim,)
        expected_reverse_scale_shape = (input_dim,)
    else:
        n_groups = math.ceil(output_dim / block_size)
        expected_scale_shape = (input_dim, n_groups)
        expected_reverse_scale_shape = (n_groups, input_dim)
    assert layer.embeddings_scale.shape == expected_scale_shape
    if not tie_weights:
        assert layer.reverse_embeddings_scale.shape == expected_reverse_scale_shape

    y_quantized = layer(x)
    y_reverse_quantized = layer(x_reverse, reverse=True)
    assert _mse(y_float, y_quantized) < 1e-3
    assert _mse(y_reverse_float, y_reverse_quantized) < 1e-2
    for ours, theirs in zip(layer.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, np.asarray(theirs))
    np.testing.assert_allclose(np.asarray(y_quantized), np.asarray(twin(x)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        np.asarray(y_reverse_quantized), np.asarray(twin(x_reverse, reverse=True)), rtol=1e-4, atol=1e-4
    )


# --------------------------------------------------------- test_int4_block_size_serialization
@pytest.mark.parametrize("tie_weights", [True, False], ids=["tie_weights_True", "tie_weights_False"])
@pytest.mark.parametrize("block_size", [64, 128, None], ids=lambda b: f"block_size_{b}")
def test_int4_block_size_serialization(block_size, tie_weights):
    input_dim, output_dim = 50, 128
    layer = ReversibleEmbedding(input_dim=input_dim, output_dim=output_dim, tie_weights=tie_weights, rngs=0)
    layer.quantize("int4", block_size=block_size)
    x = np.random.default_rng(0).integers(0, input_dim, size=(2, 8))
    y_before = layer(x)

    loaded = _rebuilt(layer)
    assert loaded.get_config()["quantization_config"]["class_name"] == "Int4QuantizationConfig"
    assert loaded.spec.quantization_block_size == block_size
    if not tie_weights and block_size is not None:
        np.testing.assert_array_equal(
            np.asarray(loaded.reverse_embeddings_zero[...]), np.asarray(layer.reverse_embeddings_zero[...])
        )
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(y_before))
    # Keras reads the same config (block size kept) and weights
    twin = _keras_twin(layer)
    expected_block = -1 if block_size is None else block_size
    assert twin.quantization_config.block_size in ((None, -1) if block_size is None else (expected_block,))
    np.testing.assert_allclose(np.asarray(twin(x)), np.asarray(y_before), rtol=1e-6, atol=1e-7)


# --------------------------------------------------- test_int4_grouped_vs_perchannel_scale_shapes
@pytest.mark.parametrize(
    ("tie_weights", "block_size"),
    [(True, 64), (True, None), (False, 64), (False, None)],
    ids=["tie_grouped", "tie_perchannel", "untie_grouped", "untie_perchannel"],
)
def test_int4_grouped_vs_perchannel_scale_shapes(tie_weights, block_size):
    input_dim, output_dim = 100, 256
    layer = ReversibleEmbedding(input_dim=input_dim, output_dim=output_dim, tie_weights=tie_weights, rngs=0)
    layer.quantize("int4", block_size=block_size)
    if block_size is None:
        expected_scale_shape = (input_dim,)
        expected_reverse_scale_shape = (input_dim,)
    else:
        n_groups = math.ceil(output_dim / block_size)
        expected_scale_shape = (input_dim, n_groups)
        expected_reverse_scale_shape = (n_groups, input_dim)
    assert layer.embeddings_scale.shape == expected_scale_shape
    if not tie_weights:
        assert layer.reverse_embeddings_scale.shape == expected_reverse_scale_shape
        if block_size is not None:
            assert layer.reverse_embeddings_zero.shape == expected_reverse_scale_shape
        else:
            assert not hasattr(layer, "reverse_embeddings_zero")


# ---------------------------------------------------------- test_int4_subchannel_g_idx_created
def _keras_weights(layer):
    return {
        name: array
        for part in layer._keras_ordered_parts()
        for name, array in part.keras_weights(layer.part_variables(part))
    }


@pytest.mark.parametrize("block_size", [4, 8], ids=["grouped_block_4", "grouped_block_8"])
def test_int4_subchannel_g_idx_created(block_size):
    input_dim, output_dim = 10, 16
    layer = ReversibleEmbedding(input_dim=input_dim, output_dim=output_dim, rngs=0)
    layer.quantize("int4", block_size=block_size)
    weights = _keras_weights(layer)
    assert "g_idx" in weights
    assert weights["g_idx"].shape == (output_dim,)
    np.testing.assert_array_equal(np.asarray(weights["g_idx"]), np.arange(output_dim) // block_size)


def test_int4_perchannel_no_g_idx():
    layer = ReversibleEmbedding(input_dim=10, output_dim=16, rngs=0)
    layer.quantize("int4", block_size=None)
    assert "g_idx" not in _keras_weights(layer)


def test_int4_subchannel_g_idx_serialization():
    input_dim, output_dim, block_size = 10, 16, 8
    layer = ReversibleEmbedding(input_dim=input_dim, output_dim=output_dim, rngs=0)
    layer.quantize("int4", block_size=block_size)
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype="int32")
    y_before = layer(x)
    g_idx_before = np.asarray(_keras_weights(layer)["g_idx"])
    loaded = _rebuilt(layer)
    np.testing.assert_array_equal(np.asarray(_keras_weights(loaded)["g_idx"]), g_idx_before)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(y_before))
    twin = _keras_twin(layer)
    np.testing.assert_array_equal(np.asarray(twin.g_idx), g_idx_before)
    np.testing.assert_allclose(np.asarray(twin(x)), np.asarray(y_before), rtol=1e-6, atol=1e-7)
