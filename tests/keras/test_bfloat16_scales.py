"""Quantized layers over a 16-bit float source policy keep Keras's scale dtype and numbers.

Keras creates a quantized layer's scales (and a ReversibleEmbedding's float zero points) in the
layer's variable dtype, and its NumPy quantizer computes them in the table's dtype: bfloat16 for
``dtype="bfloat16"`` / ``"int8_from_bfloat16"``, float32 for ``"mixed_bfloat16"``. jaxembed does
the same, so the arrays are identical and go through ``.keras`` / ``.weights.h5`` files unchanged.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxembed
from jaxembed.keras import io as keras_io

keras = pytest.importorskip("keras", reason="the differential tests need keras (KERAS_BACKEND=jax)")

# (Keras policy, jaxembed arguments, expected scale dtype)
POLICIES = {
    "bfloat16": ({"dtype": "bfloat16", "param_dtype": "bfloat16"}, jnp.bfloat16),
    "mixed_bfloat16": ({"dtype": "mixed_bfloat16"}, jnp.float32),
}
MODES = {"int8": ("int8", None), "int4_per_channel": ("int4", None), "int4_grouped": ("int4", 4)}


def _table(dtype):
    return np.random.default_rng(0).normal(size=(30, 8)).astype(dtype)


def _quantize_both(ours, theirs, mode, block_size):
    if mode == "int8":
        ours.quantize("int8")
        theirs.quantize("int8")
    else:
        ours.quantize("int4", block_size=block_size)
        theirs.quantize("int4", config=keras.quantizers.Int4QuantizationConfig(block_size=block_size))


def _assert_same_arrays(ours, theirs):
    ours, theirs = [np.asarray(a) for a in ours], [np.asarray(a) for a in theirs]
    assert [a.dtype for a in ours] == [a.dtype for a in theirs]
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(
            a.view(np.uint16) if a.dtype == jnp.bfloat16 else a,
            b.view(np.uint16) if b.dtype == jnp.bfloat16 else b,
        )


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("policy", list(POLICIES))
def test_quantize_over_a_16_bit_policy_gives_keras_arrays(policy, mode):
    arguments, scale_dtype = POLICIES[policy]
    variable_dtype = np.float32 if policy.startswith("mixed") else jnp.bfloat16
    table = _table(variable_dtype)
    ours = jaxembed.Embedding(30, 8, weights=table, **arguments)
    theirs = keras.layers.Embedding(30, 8, dtype=policy, weights=table)
    _quantize_both(ours, theirs, *MODES[mode])
    assert ours.embeddings_scale.dtype == scale_dtype
    assert theirs.embeddings_scale.dtype == jnp.dtype(scale_dtype).name
    _assert_same_arrays(ours.get_weights(), theirs.get_weights())
    ids = np.random.default_rng(1).integers(0, 30, size=(4, 6))
    out, expected = np.asarray(ours(ids)), np.asarray(theirs(ids))
    assert out.dtype == jnp.bfloat16
    # One rounding of an exact quotient/product either way: the same bfloat16 numbers.
    np.testing.assert_array_equal(out.astype(np.float32), expected.astype(np.float32))
    # the config names the policy; Keras builds the same variables from it
    config = ours.get_config()
    assert config["dtype"]["config"]["source_name"] == policy
    twin = keras.layers.Embedding.from_config(config)
    twin.build()
    twin.set_weights(ours.get_weights())
    assert twin.embeddings_scale.dtype == jnp.dtype(scale_dtype).name
    again = jaxembed.Embedding.from_config(config, rngs=3)
    assert again.embeddings_scale.dtype == scale_dtype


@pytest.mark.parametrize("mode", list(MODES))
def test_bfloat16_scales_through_files_both_ways(mode, tmp_path):
    """jaxembed's .weights.h5 loads into Keras with identical arrays, and Keras's .keras into jaxembed."""
    table = _table(jnp.bfloat16)
    ours = jaxembed.Embedding(30, 8, weights=table, dtype="bfloat16", param_dtype="bfloat16")
    theirs = keras.layers.Embedding(30, 8, dtype="bfloat16", weights=table)
    _quantize_both(ours, theirs, *MODES[mode])
    model = keras.Sequential([keras.Input((6,), dtype="int32"), theirs])
    path = tmp_path / "ours.weights.h5"
    keras_io.save_weights(ours, path)
    fresh = keras.Sequential(
        [keras.Input((6,), dtype="int32"), keras.layers.Embedding.from_config(ours.get_config())]
    )
    fresh.load_weights(path)
    _assert_same_arrays(fresh.layers[-1].get_weights(), ours.get_weights())
    archive = tmp_path / "keras.keras"
    model.save(archive)
    loaded = keras_io.load_embedding(archive)
    assert loaded.embeddings_scale.dtype == jnp.bfloat16
    _assert_same_arrays(loaded.get_weights(), theirs.get_weights())


@pytest.mark.parametrize("mode", list(MODES))
def test_reversible_untied_bfloat16_scales_and_zero_points(mode):
    """The untied reverse kernel: scales and (grouped int4) float zero points in bfloat16, as Keras's."""
    ours = jaxembed.ReversibleEmbedding(
        30, 8, tie_weights=False, dtype="bfloat16", param_dtype="bfloat16", rngs=0
    )
    theirs = keras.layers.ReversibleEmbedding.from_config(ours.get_config())
    theirs.build()
    theirs.set_weights(ours.get_weights())
    _quantize_both(ours, theirs, *MODES[mode])
    assert ours.reverse_embeddings_scale.dtype == jnp.bfloat16
    if MODES[mode][1] is not None:
        assert ours.reverse_embeddings_zero.dtype == jnp.bfloat16
    _assert_same_arrays(ours.get_weights(), theirs.get_weights())
    x = np.random.default_rng(2).normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(ours(x, reverse=True), np.float32),
        np.asarray(theirs(x, reverse=True), np.float32),
        rtol=2**-7,
        atol=2**-7,
    )


def test_float32_tables_keep_float32_scales():
    """Positive control of the dtype rule: a float32 table (Flax's plain dtype="bfloat16" is compute only)."""
    layer = jaxembed.Embedding(30, 8, weights=_table(np.float32), dtype="bfloat16")
    layer.quantize("int8")
    assert layer.embeddings_scale.dtype == jnp.float32


def test_lora_merged_save_keeps_the_16_bit_scale(tmp_path):
    """Saving merges LoRA into a quantized table and requantizes it over the variable dtype: the
    file's scale is bfloat16 like the layer's (Keras's variable), and Keras loads it."""
    layer = jaxembed.Embedding(30, 8, weights=_table(jnp.bfloat16), dtype="bfloat16", param_dtype="bfloat16")
    layer.quantize("int8")
    layer.enable_lora(2, rngs=0)
    path = tmp_path / "lora.weights.h5"
    keras_io.save_weights(layer, path)
    import h5py

    with h5py.File(path) as h5:  # the stored scale itself: a 2-byte bfloat16 dataset
        scale = h5["layers/embedding/vars/1"]
        assert scale.attrs.get("dtype") == "bfloat16" and scale.dtype.itemsize == 2
    loaded = keras_io.load_embedding(
        path, config=layer.get_config() | {"lora_rank": None, "lora_alpha": None}
    )
    assert loaded.embeddings_scale.dtype == jnp.bfloat16
    model = keras.Sequential(
        [keras.Input((6,), dtype="int32"), keras.layers.Embedding.from_config(loaded.get_config())]
    )
    model.load_weights(path)
    assert model.layers[-1].embeddings_scale.dtype == "bfloat16"
    _assert_same_arrays(model.layers[-1].get_weights(), loaded.get_weights())
