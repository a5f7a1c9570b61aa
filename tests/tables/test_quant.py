"""int8/int4 tables: the pure math (jaxembed.tables) and Embedding.quantize, against Keras 3."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxembed
from jaxembed import tables

keras = pytest.importorskip("keras", reason="the differential tests need keras (KERAS_BACKEND=jax)")
from keras.quantizers import Int4QuantizationConfig  # noqa: E402
from keras.quantizers import pack_int4 as keras_pack_int4  # noqa: E402

# (mode, jaxembed block_size, Keras quantize config)
MODES = [
    ("int8", 128, None),
    ("int4", 128, None),  # Keras's default for "int4": groups of 128
    ("int4", 32, Int4QuantizationConfig(block_size=32)),
    ("int4", 7, Int4QuantizationConfig(block_size=7)),
    ("int4", None, Int4QuantizationConfig(block_size=-1)),  # per channel
]
MODE_IDS = ["int8", "int4-128", "int4-32", "int4-7", "int4-per-channel"]


def _keras_quantized(table, mode, config):
    layer = keras.layers.Embedding(*table.shape, weights=table)
    layer.quantize(mode, config=config)
    return layer


def _table(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.data())
def test_pack_int4_matches_keras_and_round_trips(rows, cols, data):
    values = np.array(
        data.draw(st.lists(st.integers(-8, 7), min_size=rows * cols, max_size=rows * cols)), np.int8
    )
    values = values.reshape(rows, cols)
    packed = tables.pack_int4(values)
    np.testing.assert_array_equal(np.asarray(packed), np.asarray(keras_pack_int4(values, axis=-1)[0]))
    np.testing.assert_array_equal(np.asarray(tables.unpack_int4(packed, cols)), values)


@pytest.mark.parametrize("shape", [(300, 6), (50, 130), (17, 257)])
@pytest.mark.parametrize(("mode", "block_size", "config"), MODES, ids=MODE_IDS)
def test_quantized_arrays_and_lookups_equal_keras(shape, mode, block_size, config):
    table = _table(shape)
    keras_layer = _keras_quantized(table, mode, config)
    q = tables.quantize(table, mode, block_size=block_size)
    np.testing.assert_array_equal(np.asarray(q.values), np.asarray(keras_layer._embeddings))
    np.testing.assert_array_equal(
        np.asarray(q.scale).ravel(), np.asarray(keras_layer.embeddings_scale).ravel()
    )
    if q.zero is None:
        assert not hasattr(keras_layer, "embeddings_zero")
    else:
        np.testing.assert_array_equal(np.asarray(q.zero), np.asarray(keras_layer.embeddings_zero))

    ids = np.random.default_rng(1).integers(0, shape[0], size=(4, 7))
    ours = tables.quantized_lookup(q, ids, mode=mode, output_dim=shape[1], block_size=block_size)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(keras_layer(ids)))
    dense = tables.dequantize(q, mode=mode, output_dim=shape[1], block_size=block_size)
    np.testing.assert_array_equal(np.asarray(dense)[ids], np.asarray(ours))


@pytest.mark.parametrize(("mode", "block_size", "config"), MODES, ids=MODE_IDS)
def test_layer_quantize_within_keras_error_and_equal_to_keras(mode, block_size, config):
    # Keras's own test: Embedding(10, 16), ids of shape (64, 3), MSE < 1e-3.
    table = np.asarray(jaxembed.Embedding(10, 16, rngs=0).embeddings[...])
    ids = np.random.default_rng(0).integers(0, 9, size=(64, 3))
    layer = jaxembed.Embedding(10, 16, weights=table)
    before = layer(ids)
    layer.quantize(mode, **({} if mode == "int8" else {"block_size": block_size}))
    after = layer(ids)
    assert float(jnp.mean((before - after) ** 2)) < 1e-3
    assert isinstance(layer.embeddings, jaxembed.QuantizedVariable) and layer.embeddings.dtype == jnp.int8
    assert nnx.state(layer, nnx.Param) == nnx.State({})  # nothing left to train
    np.testing.assert_array_equal(np.asarray(after), np.asarray(_keras_quantized(table, mode, config)(ids)))


@pytest.mark.parametrize(
    ("mode", "block_size", "values_ratio", "ratio"),
    [("int8", 128, 4, 3.85), ("int4", 128, 8, 7.4), ("int4", None, 8, 7.5)],
)
def test_stored_table_is_4x_or_8x_smaller(mode, block_size, values_ratio, ratio):
    layer = jaxembed.Embedding(1000, 128, rngs=0)
    float_bytes = layer.embeddings[...].nbytes
    layer.quantize(mode, **({} if mode == "int8" else {"block_size": block_size}))
    stored = sum(v.nbytes for v in jax.tree.leaves(nnx.state(layer, jaxembed.QuantizedVariable)))
    assert stored == tables.quantized_nbytes(layer.quantized_table())
    assert float_bytes / layer.embeddings[...].nbytes == values_ratio
    assert float_bytes / stored >= ratio, (float_bytes, stored)  # scales and zero points included


def test_lookup_dequantizes_only_the_gathered_rows():
    layer = jaxembed.Embedding(5000, 64, rngs=0)
    layer.quantize("int4")
    graphdef, state = nnx.split(layer)
    jaxpr = jax.make_jaxpr(lambda s, ids: nnx.merge(graphdef, s)(ids))(state, jnp.zeros((8,), jnp.int32))
    shapes = [v.aval.shape for eqn in jaxpr.eqns for v in eqn.outvars]
    assert all(5000 not in shape for shape in shapes), "an intermediate spans the whole vocabulary"


def test_quantized_layer_under_jit_and_invalid_ids():
    layer = jaxembed.Embedding(20, 6, weights=_table((20, 6)))
    layer.quantize("int8")
    traces = []

    @nnx.jit
    def forward(model, ids):
        traces.append(1)
        return model(ids)

    first = forward(layer, jnp.array([[1, 2], [3, 19]]))
    forward(layer, jnp.array([[4, 5], [6, 7]]))
    assert len(traces) == 1
    np.testing.assert_array_equal(np.asarray(first), np.asarray(layer(np.array([[1, 2], [3, 19]]))))
    bad = forward(layer, jnp.array([[0, 20], [-1, 3]]))
    assert np.isnan(np.asarray(bad[0, 1])).all() and np.isnan(np.asarray(bad[1, 0])).all()
    assert not np.isnan(np.asarray(bad[0, 0])).any()
    with pytest.raises(ValueError, match=r"range \[0, 19\]"):
        layer(np.array([20]))


def test_lora_on_a_quantized_table_matches_keras():
    table = _table((12, 5))
    a, b = _table((12, 3), 1), _table((3, 5), 2)
    keras_layer = _keras_quantized(table, "int8", None)
    keras_layer.enable_lora(3, lora_alpha=6)
    keras_layer.lora_embeddings_a.assign(a)
    keras_layer.lora_embeddings_b.assign(b)
    ours = jaxembed.Embedding(12, 5, weights=table)
    ours.quantize("int8")
    ours.enable_lora(3, lora_alpha=6, rngs=0)
    ours.lora_embeddings_a[...] = a
    ours.lora_embeddings_b[...] = b
    ids = np.arange(12).reshape(3, 4)
    np.testing.assert_allclose(np.asarray(ours(ids)), np.asarray(keras_layer(ids)), rtol=0, atol=1e-6)
    assert set(nnx.state(ours, nnx.Param).keys()) == {"lora_embeddings_a", "lora_embeddings_b"}


def test_quantize_errors_match_keras():
    layer = jaxembed.Embedding(10, 4, rngs=0)
    with pytest.raises(
        ValueError,
        match=r"Invalid quantization mode. Expected one of \('int8', 'int4'\). Received: mode='int3'",
    ):
        layer.quantize("int3")
    layer.quantize("int8")
    with pytest.raises(
        ValueError, match="Layer 'embedding' is already quantized with dtype_policy='int8_from_float32'"
    ):
        layer.quantize("int8")
    with pytest.raises(ValueError, match="`block_size` applies to int4 only"):
        jaxembed.Embedding(10, 4, rngs=0).quantize("int8", block_size=64)
    with pytest.raises(ValueError, match=r"`block_size` must be None, -1 .* Received: block_size=0"):
        jaxembed.Embedding(10, 4, rngs=0).quantize("int4", block_size=0)
    with pytest.raises(ValueError, match="compute_dtype='float16'"):
        jaxembed.Embedding(10, 4, dtype="float16", rngs=0).quantize("int8")
    with pytest.raises(ValueError, match="is not quantized"):
        jaxembed.Embedding(10, 4, rngs=0).quantized_table()


@pytest.mark.parametrize(
    ("mode", "block_size", "config"), MODES[:2] + MODES[-1:], ids=["int8", "int4-128", "int4-pc"]
)
def test_quantized_config_matches_keras_and_round_trips(mode, block_size, config):
    keras_layer = keras.layers.Embedding(10, 4, name="words")
    keras_layer.build()
    keras_layer.quantize(mode, config=config)
    ours = jaxembed.Embedding(10, 4, name="words", rngs=0)
    ours.quantize(mode, **({} if mode == "int8" else {"block_size": block_size}))
    keras_config = keras_layer.get_config()
    our_config = ours.get_config()
    assert our_config["dtype"] == keras_config["dtype"]
    assert (
        our_config["quantization_config"]["class_name"] == keras_config["quantization_config"]["class_name"]
    )
    rebuilt = jaxembed.Embedding.from_config(keras_config, rngs=0)
    assert rebuilt.quantization_mode == mode
    assert rebuilt.spec.quantization_block_size == (None if mode == "int8" else block_size)
    assert rebuilt.get_config() == our_config
    # Keras builds a quantized layer from our config.
    assert keras.layers.Embedding.from_config(our_config).quantization_mode == mode


def test_set_and_get_weights_of_a_quantized_layer():
    layer = jaxembed.Embedding(6, 4, rngs=0)
    layer.quantize("int4", block_size=2)
    weights = layer.get_weights()
    assert [w.shape for w in weights] == [(6, 2), (6, 2), (6, 2)]
    other = jaxembed.Embedding(6, 4, rngs=1)
    other.quantize("int4", block_size=2)
    other.set_weights(weights)
    np.testing.assert_array_equal(np.asarray(other(np.arange(6))), np.asarray(layer(np.arange(6))))
    with pytest.raises(ValueError, match=r"embeddings_scale must have shape \(6, 2\)"):
        other.set_weights([weights[0], weights[1][:, :1], weights[2]])
