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
# Keras's three cases: (mode, weight quantizer arguments, activation quantizer arguments or None).
_QUANTIZE_CASES = {
    "int8": ("int8", {"axis": -1}, {"axis": -1}),
    "int4": ("int4", {"axis": -1, "value_range": (-8, 7), "output_dtype": "int8"}, {"axis": -1}),
    "int8_weight_only": ("int8", {"axis": -1}, None),
}


def _keras_quantization_config(case):
    mode, weight_args, activation_args = _QUANTIZE_CASES[case]
    weight_quantizer = keras.quantizers.AbsMaxQuantizer(**weight_args)
    activation_quantizer = (
        None if activation_args is None else keras.quantizers.AbsMaxQuantizer(**activation_args)
    )
    if mode == "int8":
        return keras.quantizers.Int8QuantizationConfig(
            weight_quantizer=weight_quantizer, activation_quantizer=activation_quantizer
        )
    # Custom quantizers require per-channel int4 (block_size=None), in Keras and here.
    return keras.quantizers.Int4QuantizationConfig(
        weight_quantizer=weight_quantizer, activation_quantizer=activation_quantizer, block_size=None
    )


@pytest.mark.parametrize("case", list(_QUANTIZE_CASES))
def test_reversible_embedding_quantize(case):
    """Keras's config objects, passed to both layers: the weight quantizer (Keras's defaults named
    explicitly) and the activation quantizer (``None``: weight-only, the inputs stay float) are
    honoured; the reverse logits equal Keras's."""
    mode, _, activation_args = _QUANTIZE_CASES[case]
    layer = ReversibleEmbedding(input_dim=10, output_dim=6, tie_weights=True, rngs=0)
    twin = _keras_twin(layer)
    layer.quantize(mode, config=_keras_quantization_config(case))
    twin.quantize(mode, config=_keras_quantization_config(case))
    # Keras: inputs_quantizer is an AbsMaxQuantizer, or None for weight-only
    assert layer.spec.quantization_inputs is (activation_args is not None)
    assert (twin.inputs_quantizer is None) is (activation_args is None)
    x = np.random.default_rng(0).random((2, 6)).astype("float32")
    y = layer(x, reverse=True)
    assert y.shape == (2, 10)
    for ours, theirs in zip(layer.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, np.asarray(theirs))
    # float32 logits of 6-term products; the quantized-input path is an exact integer product
    np.testing.assert_allclose(np.asarray(y), np.asarray(twin(x, reverse=True)), rtol=1e-6, atol=1e-6)
    # the config says it both ways: our from_config and Keras's
    config = layer.get_config()
    written = config["quantization_config"]["config"]["activation_quantizer"]
    assert (written is None) is (activation_args is None)
    again = ReversibleEmbedding.from_config(config, rngs=1)
    again.set_weights(layer.get_weights())
    assert again.spec.quantization_inputs is layer.spec.quantization_inputs
    np.testing.assert_array_equal(np.asarray(again(x, reverse=True)), np.asarray(y))
    keras_again = keras.layers.ReversibleEmbedding.from_config(config)
    keras_again.build()
    keras_again.set_weights(layer.get_weights())
    assert (keras_again.inputs_quantizer is None) is (activation_args is None)
    np.testing.assert_allclose(np.asarray(keras_again(x, reverse=True)), np.asarray(y), rtol=1e-6, atol=1e-6)


def test_reversible_embedding_quantize_int8_weight_only_differs_from_quantized_inputs():
    """Positive control: weight-only and input-quantized int8 logits are not the same numbers,
    so the comparisons above would catch a layer that ignored ``activation_quantizer=None``."""
    x = np.random.default_rng(0).random((2, 6)).astype("float32")
    logits = []
    for case in ("int8", "int8_weight_only"):
        layer = ReversibleEmbedding(input_dim=10, output_dim=6, tie_weights=True, rngs=0)
        layer.quantize("int8", config=_keras_quantization_config(case))
        logits.append(np.asarray(layer(x, reverse=True)))
    assert np.max(np.abs(logits[0] - logits[1])) > 1e-5


@pytest.mark.parametrize("tie_weights", [True, False], ids=["tie_weights", "untie_weights"])
def test_reversible_embedding_int8_weight_only_keras_archive(tie_weights, tmp_path):
    """Weight-only int8 through ``.keras`` archives both ways: Keras's file read by jaxembed, and
    jaxembed's file read by Keras; the reverse logits agree with the Keras layer's."""
    from jaxembed.keras import io as keras_io
    from jaxembed.nn import KerasSequential

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,), dtype="int32"), keras.layers.ReversibleEmbedding(12, 8, tie_weights=tie_weights)]
    )
    # No explicit weight quantizer: Keras applies a config's weight quantizer to an untied
    # reverse kernel too, and AbsMaxQuantizer(axis=-1) does not fit its (output_dim, input_dim)
    # layout (Keras's own quantize fails on it); its default quantizes that kernel per column.
    weight_only = keras.quantizers.Int8QuantizationConfig(activation_quantizer=None)
    model.layers[-1].quantize("int8", config=weight_only)
    path = tmp_path / "keras_written.keras"
    model.save(path)
    x = np.random.default_rng(1).normal(size=(5, 8)).astype("float32")
    expected = np.asarray(model.layers[-1](x, reverse=True))

    (ours,) = keras_io.load_model(path).layers
    assert isinstance(ours, ReversibleEmbedding) and ours.spec.quantization_inputs is False
    np.testing.assert_allclose(np.asarray(ours(x, reverse=True)), expected, rtol=1e-6, atol=1e-6)

    written = tmp_path / "jaxembed_written.keras"
    keras_io.save_model(KerasSequential([ours]), written, input_length=3)
    loaded = keras.saving.load_model(written)
    assert loaded.layers[-1].inputs_quantizer is None
    np.testing.assert_allclose(np.asarray(loaded.layers[-1](x, reverse=True)), expected, rtol=1e-6, atol=1e-6)


def test_reversible_embedding_int4_policy_without_config_quantizes_inputs():
    """Keras's fallback: a quantized dtype policy with no quantization config builds the default
    activation quantizer (AbsMax) for int4 too; jaxembed reads the config the same way."""
    config = {"input_dim": 10, "output_dim": 8, "dtype": "int4_from_float32", "quantization_config": None}
    layer = ReversibleEmbedding.from_config(config, rngs=0)
    twin = keras.layers.ReversibleEmbedding.from_config(config)
    twin.build()
    twin.set_weights(layer.get_weights())
    assert layer.spec.quantization_inputs is True and twin.inputs_quantizer is not None
    x = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(layer(x, reverse=True)), np.asarray(twin(x, reverse=True)), rtol=1e-6, atol=1e-6
    )
    # written back, Keras still builds an input quantizer
    keras_again = keras.layers.ReversibleEmbedding.from_config(layer.get_config())
    keras_again.build()
    assert keras_again.inputs_quantizer is not None


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
    # Both dequantize in the compute dtype, bfloat16: the same numbers.
    np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(twin(ids), np.float32))


# ------------------------------------------------- test_reversible_embedding_int8_custom_quantizer
def test_reversible_embedding_int8_custom_quantizer():
    weight_range = (-20, 20)
    config = keras.quantizers.Int8QuantizationConfig(
        weight_quantizer=keras.quantizers.AbsMaxQuantizer(axis=-1, value_range=weight_range)
    )
    layer = ReversibleEmbedding(input_dim=100, output_dim=16, rngs=0)
    layer.quantize("int8", config=config)
    serialized = layer.get_config()
    new_layer = ReversibleEmbedding.from_config(serialized)
    quantizer = new_layer.get_config()["quantization_config"]["config"]["weight_quantizer"]
    assert serialized["quantization_config"]["class_name"] == "Int8QuantizationConfig"
    assert quantizer["class_name"] == "AbsMaxQuantizer"
    assert tuple(quantizer["config"]["value_range"]) == weight_range
    assert new_layer.spec.table.value_range == weight_range
    # Keras reads the config back with the same quantizer
    twin = keras.layers.ReversibleEmbedding.from_config(serialized)
    assert tuple(twin.quantization_config.weight_quantizer.value_range) == weight_range


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
