"""Keras's own Embedding tests (``keras/src/layers/core/embedding_test.py``), ported to jaxembed.

One test here per Keras test and parameter case, named after it (``test_<keras test>_<case>``):
the whole of Keras 3.15's file, plus the cases Keras 3.16 added (marked "Keras 3.16").
Keras's test harness becomes checks on jaxembed: ``run_layer_test`` is :func:`_layer_test`
(output shape, weight counts, mask, config round trip here and in Keras, ``.keras`` round trip
read here and by Keras, a jitted call, a training step); Keras's private methods
(``quantized_build``, ``load_own_variables``) become the public file functions that do the same
job. Wherever a number can be compared, real Keras (``KERAS_BACKEND=jax``) is the oracle.
"""

import math

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxembed
from jaxembed import tables
from jaxembed.keras import io as keras_io
from jaxembed.nn import FrozenParam, KerasSequential, QuantizedVariable

keras = pytest.importorskip("keras", reason="the differential tests need keras (KERAS_BACKEND=jax)")
from keras.quantizers import AbsMaxQuantizer, Int4QuantizationConfig, Int8QuantizationConfig  # noqa: E402


# ----------------------------------------------------------------- helpers
def _table(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _ids(input_dim, shape, seed=0, dtype="int32"):
    return np.random.default_rng(seed).integers(0, input_dim, size=shape).astype(dtype)


def _weight_counts(layer):
    """Keras's ``(len(trainable_weights), len(non_trainable_weights))`` for a jaxembed layer.

    Trainable: the ``nnx.Param`` s (what training moves). Non-trainable: the rest of Keras's
    weight list (``get_weights()``): frozen and quantized variables, and grouped int4's ``g_idx``,
    which jaxembed derives from the block size instead of holding it as a variable.
    """
    trainable = len(jax.tree.leaves(nnx.state(layer, nnx.Param)))
    frozen = len(jax.tree.leaves(nnx.state(layer, nnx.Any(FrozenParam, QuantizedVariable))))
    assert len(layer.get_weights()) - trainable >= frozen
    return trainable, len(layer.get_weights()) - trainable


def _keras_counts(keras_layer):
    return len(keras_layer.trainable_weights), len(keras_layer.non_trainable_weights)


def _as_batch(ids):
    return ids if ids.ndim >= 2 else ids[None]


def _sgd_steps(layer, ids, targets, steps=2, learning_rate=0.1):
    """Keras's ``model.fit`` with SGD and MSE, as an NNX training loop (trains the ``nnx.Param`` s)."""
    optimizer = nnx.Optimizer(layer, optax.sgd(learning_rate), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, ids, targets):
        grads = nnx.grad(lambda m: jnp.mean((m(ids) - targets) ** 2))(model)
        optimizer.update(model, grads)

    for start in range(0, len(ids), len(ids) // steps):
        stop = start + len(ids) // steps
        step(layer, optimizer, jnp.asarray(ids[start:stop]), jnp.asarray(targets[start:stop]))


def _save_and_load(layer, tmp_path, name="layer.keras"):
    """The layer in a ``.keras`` archive written here, read back here and by Keras."""
    path = tmp_path / name
    keras_io.save_model(KerasSequential([layer]), path)
    return keras_io.load_model(path).layers[0], keras.saving.load_model(path)


def _layer_test(
    tmp_path,
    init_kwargs,
    input_shape,
    input_dtype,
    expected_output_shape,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights,
    supports_masking,
    atol=1e-6,
):
    """Keras's ``run_layer_test`` for jaxembed.Embedding, with Keras's own layer as the oracle."""
    layer = jaxembed.Embedding(**init_kwargs, rngs=0)
    ids = _ids(init_kwargs["input_dim"], input_shape, dtype=input_dtype)
    outputs = layer(ids)
    assert outputs.shape == expected_output_shape
    expected_counts = (expected_num_trainable_weights, expected_num_non_trainable_weights)
    assert _weight_counts(layer) == expected_counts
    # Keras's layer with the same arguments has the same weights; given ours, it gives our outputs.
    keras_layer = keras.layers.Embedding(**init_kwargs)
    keras_layer.build()
    assert _keras_counts(keras_layer) == expected_counts
    assert [w.shape for w in keras_layer.get_weights()] == [w.shape for w in layer.get_weights()]
    keras_layer.set_weights(layer.get_weights())
    assert str(keras_layer(ids).dtype) == str(outputs.dtype)
    np.testing.assert_allclose(
        np.asarray(keras_layer(ids), np.float32), np.asarray(outputs, np.float32), rtol=atol, atol=atol
    )
    # Masking.
    mask = layer.compute_mask(ids)
    assert (mask is not None) == supports_masking
    if supports_masking:
        np.testing.assert_array_equal(np.asarray(mask), ids != 0)
        np.testing.assert_array_equal(np.asarray(mask), np.asarray(keras_layer.compute_mask(ids)))
    # Config round trip: here, and in Keras (same config back, same weights).
    config = layer.get_config()
    assert jaxembed.Embedding.from_config(config, rngs=1).get_config() == config
    from_ours = keras.layers.Embedding.from_config(config)
    from_ours.build()
    assert _keras_counts(from_ours) == expected_counts
    assert jaxembed.Embedding.from_config(from_ours.get_config(), rngs=1).get_config() == config
    # Serialization: a .keras archive written here loads here and in Keras with the same outputs.
    loaded, keras_model = _save_and_load(layer, tmp_path)
    batch = _as_batch(ids)
    np.testing.assert_allclose(np.asarray(loaded(batch), np.float32), np.asarray(layer(batch), np.float32))
    np.testing.assert_allclose(
        np.asarray(keras_model(batch), np.float32), np.asarray(layer(batch), np.float32), rtol=atol, atol=atol
    )
    # A jitted call gives the eager outputs.
    np.testing.assert_array_equal(np.asarray(nnx.jit(lambda m, x: m(x))(layer, ids)), np.asarray(outputs))
    # A training step moves exactly the trainable weights.
    before = jax.tree.map(np.asarray, nnx.state(layer))
    targets = np.random.default_rng(1).normal(size=expected_output_shape).astype(np.float32)
    _sgd_steps(layer, ids[None], targets[None], steps=1)
    after = jax.tree.map(np.asarray, nnx.state(layer, nnx.Param))
    moved = jax.tree.leaves(
        jax.tree.map(lambda a, b: bool(np.any(a != b)), after, nnx.state(before, nnx.Param)),
    )
    assert len(moved) == expected_num_trainable_weights
    if expected_num_trainable_weights:
        assert any(moved)
    return layer


# ===================================================================== tests
@pytest.mark.parametrize(
    ("mode", "weight_quantizer_args"),
    [
        ("int8", {"axis": -1}),
        ("int4", {"axis": -1, "value_range": (-8, 7), "output_dtype": "int8"}),
        ("int8", {"axis": -1}),
    ],
    ids=["int8", "int4", "int8_custom"],
)
def test_embedding_quantize_config(mode, weight_quantizer_args):
    table = _table((10, 6))
    weight_quantizer = AbsMaxQuantizer(**weight_quantizer_args)
    if mode == "int8":
        config = Int8QuantizationConfig(weight_quantizer=weight_quantizer, activation_quantizer=None)
    else:  # custom quantizers need per-channel int4
        config = Int4QuantizationConfig(
            weight_quantizer=weight_quantizer, activation_quantizer=None, block_size=None
        )
    layer = jaxembed.Embedding(10, 6, weights=table)
    layer.quantize(mode, config=config)
    keras_layer = keras.layers.Embedding(10, 6, weights=table)
    keras_layer.quantize(mode, config=config)

    assert layer.get_weights()[0].dtype == np.int8
    assert hasattr(layer, "embeddings_scale")
    for ours, theirs in zip(layer.get_weights(), keras_layer.get_weights()):
        np.testing.assert_array_equal(ours, np.asarray(theirs))
    x = np.random.default_rng(0).integers(0, 10, size=(2, 3))
    y = layer(x)
    assert y.shape == (2, 3, 6)
    np.testing.assert_allclose(np.asarray(y), np.asarray(keras_layer(x)), rtol=1e-6)
    # The same config given to the constructor and through from_config: the same layer.
    built = jaxembed.Embedding(10, 6, weights=table, quantization_config=config)
    again = jaxembed.Embedding.from_config(layer.get_config() | {"weights": table})
    for other in (built, again):
        for ours, theirs in zip(other.get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(ours, theirs)


def test_embedding_basics(tmp_path):
    _layer_test(
        tmp_path,
        {"input_dim": 4, "output_dim": 3},
        input_shape=(2,),
        input_dtype="int32",
        expected_output_shape=(2, 3),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
        supports_masking=False,
    )
    _layer_test(
        tmp_path,
        {"input_dim": 5, "output_dim": 4, "mask_zero": True},
        input_shape=(2, 3),
        input_dtype="int64",
        expected_output_shape=(2, 3, 4),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
    )


def _bcoo(data, indices, shape):
    from jax.experimental import sparse as jax_sparse

    return jax_sparse.BCOO((jnp.asarray(data, jnp.int32), jnp.asarray(indices)), shape=shape)


def test_sparse():
    layer = jaxembed.Embedding(5, 4, rngs=0)
    ids = _bcoo([2, 1, 4], [[0, 0], [1, 2], [1, 1]], (2, 3))
    outputs = layer(ids)
    assert outputs.shape == (2, 3, 4)
    assert _weight_counts(layer) == (1, 0)
    keras_layer = keras.layers.Embedding(5, 4, weights=layer.get_weights())
    np.testing.assert_allclose(np.asarray(outputs), np.asarray(keras_layer(ids)), rtol=1e-6)


def test_ragged():
    pytest.skip(
        "cannot apply: TensorFlow ragged tensors have no JAX counterpart (Keras skips this test on its "
        "JAX backend too); ragged bags of ids are EmbeddingBag's offsets="
    )


def test_correctness():
    layer = jaxembed.Embedding(input_dim=3, output_dim=2, rngs=0)
    layer.embeddings[...] = jnp.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]])
    out = layer(np.array([2, 1, 0]))
    np.testing.assert_allclose(np.asarray(out), [[3.0, 3.0], [2.0, 2.0], [0.0, 0.0]])


def test_correctness_sparse():
    layer = jaxembed.Embedding(input_dim=3, output_dim=2, rngs=0)
    layer.embeddings[...] = jnp.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]])
    x = _bcoo([2, 1], [[0, 0], [1, 2]], (2, 3))
    np.testing.assert_allclose(
        np.asarray(layer(x)),
        [[[3.0, 3.0], [0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0], [2.0, 2.0]]],
    )


def test_masking():
    layer = jaxembed.Embedding(input_dim=3, output_dim=2, mask_zero=True, rngs=0)
    out = layer.compute_mask(np.array([2, 1, 0]))
    np.testing.assert_array_equal(np.asarray(out), [True, True, False])


def test_compute_mask_no_masking():
    layer = jaxembed.Embedding(input_dim=3, output_dim=2, mask_zero=False, rngs=0)
    assert layer.compute_mask(np.array([2, 1, 0])) is None


def test_embedding_constraints():
    layer = jaxembed.Embedding(3, 2, embeddings_constraint="non_neg", rngs=0)
    assert isinstance(layer.embeddings_constraint, jaxembed.keras.constraints.NonNeg)
    assert (
        layer.get_config()["embeddings_constraint"]
        == keras.layers.Embedding(3, 2, embeddings_constraint="non_neg").get_config()["embeddings_constraint"]
    )


BAD_SIZES = (3.7, 4.0, "3", None, True, False, -1, 0)


def _check_invalid_size(argument):
    good = {"input_dim": 10, "output_dim": 8}
    for bad_value in BAD_SIZES:
        with pytest.raises(ValueError, match=f"`{argument}` must be a positive integer"):
            jaxembed.Embedding(**(good | {argument: bad_value}), rngs=0)
        with pytest.raises(ValueError, match=f"`{argument}` must be a positive integer"):
            keras.layers.Embedding(**(good | {argument: bad_value}))  # the oracle agrees
    for embedding in (jaxembed.Embedding, jaxembed.linen.Embedding):
        with pytest.raises(TypeError, match=f"`{argument}` must be a positive integer"):
            embedding.from_config(good | {argument: 3.7})
    with pytest.raises(TypeError, match=f"`{argument}` must be a positive integer"):
        keras.layers.Embedding.from_config(good | {argument: 3.7})


def test_invalid_input_dim():
    _check_invalid_size("input_dim")


def test_invalid_output_dim():
    _check_invalid_size("output_dim")


def test_weights_constructor_arg():
    layer = jaxembed.Embedding(3, 4, weights=np.ones((3, 4)))
    np.testing.assert_array_equal(np.asarray(layer.embeddings[...]), np.ones((3, 4)))
    layer = jaxembed.Embedding(3, 4, weights=[np.ones((3, 4))])
    np.testing.assert_array_equal(np.asarray(layer.embeddings[...]), np.ones((3, 4)))


def test_enable_lora(tmp_path):
    layer = jaxembed.Embedding(10, 16, rngs=0)
    layer.enable_lora(4, rngs=1)
    assert _weight_counts(layer) == (2, 1)
    assert layer.lora_embeddings_a.dtype == jnp.float32
    assert layer.lora_embeddings_b.dtype == jnp.float32

    rng = np.random.default_rng(0)
    x = rng.integers(0, 9, size=(64, 3)).astype(np.int32)
    y = rng.random((64, 3, 16)).astype(np.float32)
    layer(x[:2])
    init_a, init_b = np.asarray(layer.lora_embeddings_a[...]), np.asarray(layer.lora_embeddings_b[...])
    _sgd_steps(layer, x, y, steps=2)  # Keras's fit: two batches of 32
    assert np.max(np.abs(init_a - np.asarray(layer.lora_embeddings_a[...]))) > 0.0
    assert np.max(np.abs(init_b - np.asarray(layer.lora_embeddings_b[...]))) > 0.0
    predicted = np.asarray(layer(x))

    # Saving and reloading the model: LoRA stays on (factors zero, table merged), outputs equal.
    loaded, keras_model = _save_and_load(layer, tmp_path, "lora_model.keras")
    assert loaded.lora_enabled and keras_model.layers[0].lora_enabled
    np.testing.assert_allclose(np.asarray(loaded(x)), predicted, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(keras_model(x)), predicted, rtol=1e-6, atol=1e-6)

    # The weights only, into a fresh non-LoRA model (here and in Keras).
    weights = tmp_path / "lora_model.weights.h5"
    keras_io.save_weights(KerasSequential([layer]), weights)
    plain = keras_io.load_embedding(weights)
    assert not plain.lora_enabled
    np.testing.assert_allclose(np.asarray(plain(x)), predicted, rtol=1e-6, atol=1e-6)
    keras_plain = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(10, 16)])
    keras_plain.load_weights(weights)
    np.testing.assert_allclose(np.asarray(keras_plain(x)), predicted, rtol=1e-6, atol=1e-6)

    # A normal checkpoint into a LoRA model: the table is loaded, the factors zeroed (as Keras).
    keras_io.save_weights(KerasSequential([plain]), weights)
    lora_again = keras_io.load_embedding(weights, lora_rank=4)
    assert lora_again.lora_enabled
    np.testing.assert_array_equal(np.asarray(lora_again.lora_embeddings_b[...]), 0.0)
    np.testing.assert_allclose(np.asarray(lora_again(x)), np.asarray(plain(x)), rtol=1e-6, atol=1e-6)


def test_enable_lora_with_alpha():
    base = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], np.float32)
    layer = jaxembed.Embedding(input_dim=3, output_dim=2, weights=base)
    layer.enable_lora(2, lora_alpha=3.0)
    assert layer.lora_rank == 2
    assert layer.lora_alpha == 3.0
    a = np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]], np.float32)
    b = np.array([[0.5, 0.5], [0.6, 0.6]], np.float32)
    layer.lora_embeddings_a[...] = jnp.asarray(a)
    layer.lora_embeddings_b[...] = jnp.asarray(b)
    expected = base + 1.5 * (a @ b)  # scale lora_alpha / rank = 3.0 / 2
    with jax.default_matmul_precision("highest"):
        np.testing.assert_allclose(np.asarray(layer.effective_table()), expected, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(layer(np.arange(3))), expected, rtol=1e-6)
    keras_layer = keras.layers.Embedding(3, 2, weights=base)
    keras_layer.enable_lora(2, lora_alpha=3.0)
    keras_layer.lora_embeddings_a.assign(a)
    keras_layer.lora_embeddings_b.assign(b)
    np.testing.assert_allclose(np.asarray(keras_layer.embeddings), expected, rtol=1e-6)


def test_lora_rank_argument(tmp_path):
    _layer_test(
        tmp_path,
        {"input_dim": 5, "output_dim": 4, "lora_rank": 2},
        input_shape=(2, 3),
        input_dtype="int32",
        expected_output_shape=(2, 3, 4),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=1,
        supports_masking=False,
    )


def test_enable_lora_with_embeddings_constraint():
    layer = jaxembed.Embedding(input_dim=10, output_dim=16, embeddings_constraint="max_norm", rngs=0)
    with pytest.raises(ValueError, match="incompatible with embedding constraints"):
        layer.enable_lora(rank=2)


def test_enable_lora_when_already_enabled():
    layer = jaxembed.Embedding(input_dim=10, output_dim=16, rngs=0)
    layer.enable_lora(rank=2)
    with pytest.raises(ValueError, match="lora is already enabled"):
        layer.enable_lora(rank=2)


# ------------------------------------------------------------- quantization
@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize_int(tmp_path, mode):
    layer = jaxembed.Embedding(10, 16, rngs=0)  # Keras's default uniform table
    table = layer.get_weights()[0]
    x = np.random.default_rng(0).integers(0, 9, size=(64, 3)).astype(np.int32)
    y_float = np.asarray(layer(x))
    layer.quantize(mode)
    keras_layer = keras.layers.Embedding(10, 16, weights=table)
    keras_layer.quantize(mode)

    # The values are int8 (int4 packed two per byte); the scale has the variable dtype.
    assert layer.get_weights()[0].dtype == np.int8
    assert layer.embeddings_scale.dtype == jnp.float32 == jnp.dtype(keras_layer.variable_dtype)
    np.testing.assert_array_equal(np.asarray(layer.embeddings[...]), np.asarray(keras_layer._embeddings))
    if mode == "int4":
        np.testing.assert_array_equal(
            np.asarray(tables.unpack_int4(layer.embeddings[...], 16)),
            np.asarray(keras.quantizers.unpack_int4(keras_layer._embeddings, 16, axis=-1)),
        )
    y_quantized = np.asarray(layer(x))
    assert np.mean((y_float - y_quantized) ** 2) < 1e-3
    np.testing.assert_allclose(y_quantized, np.asarray(keras_layer(x)), rtol=1e-6, atol=1e-7)

    # Model save / load round trip (read here and by Keras).
    loaded, keras_model = _save_and_load(layer, tmp_path, "quantized_model.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x)), y_quantized)
    np.testing.assert_allclose(np.asarray(keras_model(x)), y_quantized, rtol=1e-6, atol=1e-7)

    # Weights-only round trip, into a fresh quantized Keras model.
    weights = tmp_path / "quantized_model.weights.h5"
    keras_io.save_weights(KerasSequential([layer]), weights)
    new_model = keras.Sequential([keras.layers.Embedding(10, 16)])
    new_model.build((None, 3))
    new_model.layers[0].quantize(mode)  # Model.quantize warns about the InputLayer
    new_model.load_weights(weights)
    np.testing.assert_allclose(np.asarray(new_model(x)), y_quantized, rtol=1e-6, atol=1e-7)
    from_file = keras_io.load_embedding(weights, config=layer.get_config())
    np.testing.assert_array_equal(np.asarray(from_file(x)), y_quantized)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize_on_unbuilt_layer(mode):
    """Keras refuses to quantize an unbuilt layer; a jaxembed layer is built when made.

    The port checks the other side of the same rule: right after construction there is a table,
    so ``quantize`` works at once and gives what Keras gives once its layer is built.
    """
    table = _table((10, 16))
    layer = jaxembed.Embedding(10, 16, weights=table)
    layer.quantize(mode)
    keras_layer = keras.layers.Embedding(10, 16)
    with pytest.raises(ValueError, match="Cannot quantize a layer that isn't yet built."):
        keras_layer.quantize(mode)
    keras_layer.build()
    keras_layer.set_weights([table])
    keras_layer.quantize(mode)
    np.testing.assert_array_equal(layer.get_weights()[0], np.asarray(keras_layer._embeddings))


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize_on_subclass(mode):
    """Keras guards ``quantize`` on subclasses (``type_check=True``) because their ``call`` may not
    know the quantized variables; jaxembed's subclasses (EmbeddingBag) call the base lookup, so the
    guard has no counterpart: the port checks Keras's ``type_check=False`` path, which must work."""

    class MyEmbedding(jaxembed.Embedding):
        pass

    class KerasEmbedding(keras.layers.Embedding):
        pass

    table = _table((10, 16))
    layer = MyEmbedding(10, 16, weights=table)
    keras_layer = KerasEmbedding(10, 16, weights=table)
    with pytest.raises(NotImplementedError):
        keras_layer.quantize(mode)
    keras_layer.quantize(mode, type_check=False)  # No error
    layer.quantize(mode)
    ids = np.arange(10)
    np.testing.assert_allclose(np.asarray(layer(ids)), np.asarray(keras_layer(ids)), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize_when_already_quantized(mode):
    layer = jaxembed.Embedding(10, 16, rngs=0)
    layer.quantize(mode)
    for m in ("int8", "int4"):
        with pytest.raises(ValueError, match="is already quantized with dtype_policy="):
            layer.quantize(m)
    layer = jaxembed.Embedding(10, 16, dtype=f"{mode}_from_float32", rngs=0)
    assert layer.quantization_mode == mode
    for m in ("int8", "int4"):
        with pytest.raises(ValueError, match="is already quantized with dtype_policy="):
            layer.quantize(m)


@pytest.mark.parametrize(
    ("policy", "expected_num_variables"),
    [
        ("int8_from_float32", 2),
        ("int4_from_float32", 4),  # embeddings + scale + zero + g_idx
    ],
    ids=["int8", "int4"],
)
def test_quantize_by_setting_dtype_policy(policy, expected_num_variables):
    """Keras's ``layer.dtype_policy = "int8_from_float32"`` quantizes a built layer with the default
    config; jaxembed has no policy setter, so the port calls what the setter calls, ``quantize(mode)``,
    and counts the variables as Keras's layer has them."""
    mode = policy.split("_from_")[0]
    keras_layer = keras.layers.Embedding(10, 16)
    keras_layer.build()
    keras_layer.dtype_policy = policy
    assert len(keras_layer.variables) == expected_num_variables
    layer = jaxembed.Embedding(10, 16, rngs=0)
    layer.quantize(mode)
    assert [w.shape for w in layer.get_weights()] == [tuple(v.shape) for v in keras_layer.variables]
    assert len(layer.get_weights()) == expected_num_variables


@pytest.mark.parametrize("mode", ["int7", "float7"])
def test_quantize_invalid_mode(mode):
    """Keras's ``quantized_build``/``quantized_call`` checks are on private methods with no jaxembed
    counterpart; the public paths (``quantize``, ``quantization_config=``, a ``dtype`` policy) are ported."""
    layer = jaxembed.Embedding(10, 16, rngs=0)
    original_config = layer.get_config()
    with pytest.raises(ValueError, match="Invalid quantization mode."):
        layer.quantize(mode)
    assert layer.get_config() == original_config
    assert layer.quantization_mode is None
    with pytest.raises(ValueError, match="Invalid quantization mode."):
        jaxembed.Embedding(10, 16, quantization_config=mode, rngs=0)
    with pytest.raises(ValueError, match="Invalid quantization mode."):
        jaxembed.Embedding(10, 16, dtype=f"{mode}_from_float32", rngs=0)
    with pytest.raises(ValueError):
        keras.layers.Embedding(10, 16, dtype=f"{mode}_from_float32")  # the oracle refuses it too


@pytest.mark.parametrize(
    ("dtype", "num_trainable_weights", "num_non_trainable_weights"),
    [("int8_from_mixed_bfloat16", 0, 2), ("int4_from_mixed_bfloat16", 0, 2)],  # int4: per-channel
    ids=["int8", "int4"],
)
def test_quantize_dtype_argument(tmp_path, dtype, num_trainable_weights, num_non_trainable_weights):
    layer = _layer_test(
        tmp_path,
        {"input_dim": 4, "output_dim": 3, "dtype": dtype},
        input_shape=(2,),
        input_dtype="int32",
        expected_output_shape=(2, 3),
        expected_num_trainable_weights=num_trainable_weights,
        expected_num_non_trainable_weights=num_non_trainable_weights,
        supports_masking=False,
        atol=1e-2,  # bfloat16 compute
    )
    assert layer.dtype == jnp.bfloat16 and layer.embeddings_scale.dtype == jnp.float32
    _layer_test(
        tmp_path,
        {"input_dim": 5, "output_dim": 4, "mask_zero": True, "dtype": dtype},
        input_shape=(2, 3),
        input_dtype="int64",
        expected_output_shape=(2, 3, 4),
        expected_num_trainable_weights=num_trainable_weights,
        expected_num_non_trainable_weights=num_non_trainable_weights,
        supports_masking=True,
        atol=1e-2,
    )


def _check_quantize_lora_integration(tmp_path, mode, num_trainable_weights, num_non_trainable_weights):
    layer = jaxembed.Embedding(10, 16, rngs=0)
    layer.enable_lora(4, rngs=1)
    layer.quantize(mode)
    assert _weight_counts(layer)[0] == num_trainable_weights

    rng = np.random.default_rng(0)
    x = rng.integers(0, 9, size=(64, 3)).astype(np.int32)
    y = rng.random((64, 3, 16)).astype(np.float32)
    init_a, init_b = np.asarray(layer.lora_embeddings_a[...]), np.asarray(layer.lora_embeddings_b[...])
    _sgd_steps(layer, x, y, steps=2)
    assert np.max(np.abs(init_a - np.asarray(layer.lora_embeddings_a[...]))) > 0.0
    assert np.max(np.abs(init_b - np.asarray(layer.lora_embeddings_b[...]))) > 0.0
    predicted = np.asarray(layer(x))

    # Model round trip: LoRA stays on; the merged table is re-quantized (as Keras), hence atol.
    loaded, keras_model = _save_and_load(layer, tmp_path, "quantized_lora_model.keras")
    assert loaded.lora_enabled and keras_model.layers[0].lora_enabled
    np.testing.assert_allclose(np.asarray(loaded(x)), predicted, atol=0.5)
    np.testing.assert_allclose(np.asarray(keras_model(x)), np.asarray(loaded(x)), rtol=1e-6, atol=1e-6)

    # Weights only, into a fresh quantized non-LoRA model (here and in Keras).
    weights = tmp_path / "quantized_lora_model.weights.h5"
    keras_io.save_weights(KerasSequential([layer]), weights)
    new_model = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(10, 16)])
    new_model.layers[0].quantize(mode)  # Model.quantize warns about the InputLayer
    new_model.load_weights(weights)
    assert not new_model.layers[0].lora_enabled
    plain = keras_io.load_embedding(
        weights, config=jaxembed.Embedding(10, 16, quantization_config=mode).get_config()
    )
    assert not plain.lora_enabled and plain.quantization_mode == mode
    np.testing.assert_allclose(np.asarray(plain(x)), predicted, atol=0.5)
    np.testing.assert_allclose(np.asarray(new_model(x)), np.asarray(plain(x)), rtol=1e-6, atol=1e-6)

    # A normal checkpoint into a LoRA model: the factors are zeroed (as Keras's load does).
    lora_again = keras_io.load_embedding(weights, config=plain.get_config(), lora_rank=4)
    np.testing.assert_allclose(np.asarray(lora_again(x)), np.asarray(plain(x)), rtol=1e-6, atol=1e-6)

    keras_layer = keras.layers.Embedding(10, 16)
    keras_layer.build()
    keras_layer.enable_lora(4)
    keras_layer.quantize(mode)
    assert _keras_counts(keras_layer) == (num_trainable_weights, num_non_trainable_weights)
    assert _weight_counts(layer) == (num_trainable_weights, num_non_trainable_weights)


def test_quantize_lora_integration_int8(tmp_path):
    _check_quantize_lora_integration(tmp_path, "int8", 2, 2)


def test_quantize_lora_integration_int4(tmp_path):
    _check_quantize_lora_integration(tmp_path, "int4", 2, 4)  # +2 for embeddings_zero + g_idx


def _weights_file(path, arrays):
    """A ``.weights.h5`` file holding ``arrays`` as the variables of ``layers/embedding``."""
    with h5py.File(path, "w") as h5:
        h5.create_group("vars")
        group = h5.create_group("layers/embedding/vars")
        group.attrs["name"] = "embedding"
        for key, array in arrays.items():
            group.create_dataset(key, data=array)
    return path


def test_legacy_load_own_variables(tmp_path):
    """Keras's ``load_own_variables`` with a numbered store = jaxembed's load of a file holding it."""
    rng = np.random.default_rng(0)
    float32_store = {"0": rng.random((10, 16)).astype("float32")}
    int8_store = {
        "0": rng.integers(-128, 127, size=(10, 16), dtype="int8"),
        "1": rng.random((10,)).astype("float32"),
    }
    int4_store = {
        "0": rng.integers(-128, 127, size=(10, 8), dtype="int8"),
        "1": rng.random((10,)).astype("float32"),
    }
    base = {"input_dim": 10, "output_dim": 16}
    layer = keras_io.load_embedding(_weights_file(tmp_path / "f.weights.h5", float32_store))
    np.testing.assert_array_equal(np.asarray(layer.embeddings[...]), float32_store["0"])
    for name, store, dtype in (
        ("int8", int8_store, "int8_from_float32"),
        ("int4", int4_store, "int4_from_float32"),
    ):
        path = _weights_file(tmp_path / f"{name}.weights.h5", store)
        layer = keras_io.load_embedding(path, config=base | {"dtype": dtype})
        assert layer.quantization_mode == name
        np.testing.assert_array_equal(np.asarray(layer.embeddings[...]), store["0"])
        np.testing.assert_array_equal(np.asarray(layer.embeddings_scale[...]), store["1"])
        keras_layer = keras.layers.Embedding(10, 16, dtype=dtype)
        keras_layer.build()
        keras_layer.load_own_variables(store)
        ids = np.arange(10)
        np.testing.assert_allclose(np.asarray(layer(ids)), np.asarray(keras_layer(ids)), rtol=1e-6)


def test_embedding_int8_custom_quantizer():
    weight_range = (-50, 50)
    config = Int8QuantizationConfig(weight_quantizer=AbsMaxQuantizer(axis=-1, value_range=weight_range))
    table = _table((100, 16))
    layer = jaxembed.Embedding(input_dim=100, output_dim=16, weights=table)
    layer.quantize("int8", config=config)
    serialized = layer.get_config()
    new_layer = jaxembed.Embedding.from_config(serialized | {"weights": table})
    assert new_layer.spec.quantization_value_range == weight_range
    quantizer = serialized["quantization_config"]["config"]["weight_quantizer"]
    assert quantizer["class_name"] == "AbsMaxQuantizer"
    assert tuple(quantizer["config"]["axis"]) == (-1,)
    assert tuple(quantizer["config"]["value_range"]) == weight_range
    # The range is honoured: the values span [-50, 50], equal to Keras's bit for bit.
    keras_layer = keras.layers.Embedding(100, 16, weights=table)
    keras_layer.quantize("int8", config=config)
    assert int(np.abs(layer.get_weights()[0]).max()) == 50
    for ours, theirs in zip(layer.get_weights(), keras_layer.get_weights()):
        np.testing.assert_array_equal(ours, np.asarray(theirs))
    for other in (new_layer, jaxembed.Embedding(100, 16, weights=table, quantization_config=config)):
        for ours, theirs in zip(other.get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    # Keras reads our config with the same quantizer.
    from_ours = keras.layers.Embedding.from_config(serialized)
    assert isinstance(from_ours.quantization_config, Int8QuantizationConfig)
    keras_quantizer = from_ours.quantization_config.weight_quantizer
    assert isinstance(keras_quantizer, AbsMaxQuantizer)
    assert keras_quantizer.axis == (-1,)
    np.testing.assert_array_equal(keras_quantizer.value_range, weight_range)


@pytest.mark.parametrize(
    "block_size",
    [64, 128, None, -1],
    ids=["grouped_block_64", "grouped_block_128", "per_channel_none", "per_channel_neg1"],
)
def test_int4_quantization_block_size(block_size):
    input_dim, output_dim = 100, 256
    layer = jaxembed.Embedding(input_dim=input_dim, output_dim=output_dim, rngs=0)
    x = np.random.default_rng(0).integers(0, input_dim, size=(4, 8))
    y_float = np.asarray(layer(x))
    layer.quantize("int4", config=Int4QuantizationConfig(block_size=block_size))
    # jaxembed keeps per-channel as None (-1 is Keras's other spelling of it).
    assert layer.spec.quantization_block_size == (None if block_size in (None, -1) else block_size)
    if block_size is None or block_size == -1:
        expected_scale_shape = (input_dim,)
    else:
        expected_scale_shape = (input_dim, math.ceil(output_dim / block_size))
    assert layer.embeddings_scale.shape == expected_scale_shape
    assert np.mean((y_float - np.asarray(layer(x))) ** 2) < 1e-3


@pytest.mark.parametrize(
    "block_size", [64, 128, None], ids=["grouped_block_64", "grouped_block_128", "per_channel_none"]
)
def test_int4_block_size_serialization(tmp_path, block_size):
    input_dim, output_dim = 50, 128
    layer = jaxembed.Embedding(input_dim=input_dim, output_dim=output_dim, rngs=0)
    layer.quantize("int4", config=Int4QuantizationConfig(block_size=block_size))
    x = np.random.default_rng(0).integers(0, input_dim, size=(2, 8))
    y_before = np.asarray(layer(x))
    loaded, keras_model = _save_and_load(layer, tmp_path, "int4_block_size_embedding_model.keras")
    config = loaded.get_config()["quantization_config"]
    assert config["class_name"] == "Int4QuantizationConfig"
    assert config["config"]["block_size"] == block_size
    keras_layer = keras_model.layers[0]
    assert isinstance(keras_layer.quantization_config, Int4QuantizationConfig)
    assert keras_layer.quantization_config.block_size == block_size
    np.testing.assert_array_equal(np.asarray(loaded(x)), y_before)
    np.testing.assert_allclose(np.asarray(keras_model(x)), y_before, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("block_size", [64, None], ids=["grouped_block_64", "per_channel"])
def test_int4_block_size_with_lora(block_size):
    input_dim, output_dim = 50, 128
    table = _table((input_dim, output_dim))
    layer = jaxembed.Embedding(input_dim=input_dim, output_dim=output_dim, weights=table)
    layer.quantize("int4", config=Int4QuantizationConfig(block_size=block_size))
    layer.enable_lora(rank=4)
    x = np.random.default_rng(0).integers(0, input_dim, size=(4, 8))
    y = layer(x)
    assert y.shape == (4, 8, output_dim)
    keras_layer = keras.layers.Embedding(input_dim, output_dim, weights=table)
    keras_layer.quantize("int4", config=Int4QuantizationConfig(block_size=block_size))
    keras_layer.enable_lora(rank=4)  # B starts at zero in both: the quantized lookup
    np.testing.assert_allclose(np.asarray(y), np.asarray(keras_layer(x)), rtol=1e-6, atol=1e-6)


def test_int4_grouped_vs_perchannel_scale_shapes():
    input_dim, output_dim, block_size = 100, 256, 64
    layer_pc = jaxembed.Embedding(input_dim=input_dim, output_dim=output_dim, rngs=0)
    layer_pc.quantize("int4", config=Int4QuantizationConfig(block_size=None))
    layer_grouped = jaxembed.Embedding(input_dim=input_dim, output_dim=output_dim, rngs=0)
    layer_grouped.quantize("int4", config=Int4QuantizationConfig(block_size=block_size))
    assert layer_pc.embeddings_scale.shape == (input_dim,)
    assert layer_grouped.embeddings_scale.shape == (input_dim, math.ceil(output_dim / block_size))


def _stored_g_idx(layer, tmp_path):
    """The ``g_idx`` a Keras weights file written here holds for ``layer`` (``None`` if none)."""
    path = tmp_path / "g_idx.weights.h5"
    keras_io.save_weights(layer, path)
    with h5py.File(path) as h5:
        group = h5["layers/embedding/vars"]
        return np.asarray(group["3"]) if "3" in group else None


@pytest.mark.parametrize("block_size", [4, 8], ids=["grouped_block_4", "grouped_block_8"])
def test_int4_subchannel_g_idx_created(tmp_path, block_size):
    """Keras keeps ``g_idx`` as a layer variable; jaxembed derives it from the block size and gives
    it where Keras's users meet it: the fourth of ``get_weights()`` and of the layer's file."""
    input_dim, output_dim = 10, 16
    layer = jaxembed.Embedding(input_dim=input_dim, output_dim=output_dim, rngs=0)
    layer.quantize("int4", config=Int4QuantizationConfig(block_size=block_size))
    weights = layer.get_weights()
    assert len(weights) == 4 and weights[3].shape == (output_dim,)
    np.testing.assert_array_equal(weights[3], np.arange(output_dim) // block_size)
    g_idx = _stored_g_idx(layer, tmp_path)
    assert g_idx is not None and g_idx.shape == (output_dim,)
    assert g_idx.dtype == np.float32  # Keras 3.16: integer group metadata stored as float32
    np.testing.assert_array_equal(g_idx, np.arange(output_dim) // block_size)


def test_int4_perchannel_no_g_idx(tmp_path):
    layer = jaxembed.Embedding(input_dim=10, output_dim=16, rngs=0)
    layer.quantize("int4", config=Int4QuantizationConfig(block_size=None))
    assert _stored_g_idx(layer, tmp_path) is None
    assert not hasattr(layer, "embeddings_zero") and len(layer.get_weights()) == 2


def test_int4_subchannel_g_idx_serialization(tmp_path):
    input_dim, output_dim, block_size = 10, 16, 8
    layer = jaxembed.Embedding(input_dim=input_dim, output_dim=output_dim, rngs=0)
    layer.quantize("int4", config=Int4QuantizationConfig(block_size=block_size))
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype="int32")
    y_before = np.asarray(layer(x))
    g_idx_before = _stored_g_idx(layer, tmp_path)
    loaded, keras_model = _save_and_load(layer, tmp_path, "embedding_int4_g_idx_model.keras")
    np.testing.assert_array_equal(_stored_g_idx(loaded, tmp_path), g_idx_before)
    np.testing.assert_array_equal(np.asarray(keras_model.layers[0].g_idx), g_idx_before)
    np.testing.assert_array_equal(np.asarray(loaded(x)), y_before)
    np.testing.assert_allclose(np.asarray(keras_model(x)), y_before, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------- added in Keras 3.16
def test_enable_lora_after_int4_quantization_freezes_variable():  # Keras 3.16
    layer = jaxembed.Embedding(input_dim=10, output_dim=16, rngs=0)
    layer.quantize("int4")
    layer.enable_lora(rank=2)
    assert not isinstance(layer.embeddings, nnx.Param)  # not trained
    assert _weight_counts(layer)[0] == 2


@pytest.mark.parametrize("mode", ["gptq", "awq"])
def test_quantize_unsupported_calibration_modes(mode):  # Keras 3.16
    from keras.src.quantizers.awq_config import AWQConfig
    from keras.src.quantizers.gptq_config import GPTQConfig

    config_class = GPTQConfig if mode == "gptq" else AWQConfig
    layer = jaxembed.Embedding(10, 16, rngs=0)
    with pytest.raises(NotImplementedError):
        layer.quantize(mode, config=config_class(dataset=None, tokenizer=None))
    with pytest.raises(NotImplementedError):
        layer.quantize(mode)
    assert layer.get_config()["quantization_config"] is None and layer.quantization_mode is None
    keras_layer = keras.layers.Embedding(10, 16)
    keras_layer.build()
    with pytest.raises(NotImplementedError):  # the oracle
        keras_layer.quantize(mode, config=config_class(dataset=None, tokenizer=None))


def _embedding_for_mode(mode, input_dim=64, output_dim=64):
    if mode == "none":
        return jaxembed.Embedding(input_dim, output_dim, rngs=0)
    if mode == "int8":
        return jaxembed.Embedding(input_dim, output_dim, dtype="int8_from_float32", rngs=0)
    if mode == "int4_per_channel":
        return jaxembed.Embedding(input_dim, output_dim, dtype="int4_from_float32", rngs=0)
    layer = jaxembed.Embedding(input_dim, output_dim, rngs=0)
    layer.quantize("int4", config=Int4QuantizationConfig(block_size=16))
    return layer


def _randomized(layer, seed=1234):
    """Keras's ``randomize_serialized_variables``, except grouped int4's ``g_idx``: jaxembed derives it
    from the block size and refuses any other value, so it keeps its one valid value."""
    rng = np.random.RandomState(seed)
    values = []
    weights = layer.get_weights()
    g_idx = layer.spec.quantization_block_size is not None
    for index, weight in enumerate(weights):
        if g_idx and index == 3:
            values.append(weight)
            continue
        if np.issubdtype(weight.dtype, np.integer):
            values.append(rng.randint(-8, 9, size=weight.shape).astype(weight.dtype))
        else:
            values.append(rng.random(weight.shape).astype(np.float32))
    layer.set_weights(values)
    return layer


def test_serialization_round_trip(tmp_path):  # Keras 3.16
    for mode, count in (("none", 1), ("int8", 2), ("int4_per_channel", 2), ("int4_grouped", 4)):
        source = _randomized(_embedding_for_mode(mode))
        path = tmp_path / f"{mode}.weights.h5"
        keras_io.save_weights(source, path)
        with h5py.File(path) as h5:  # consecutive integer positions: the on-disk contract
            assert set(h5["layers/embedding/vars"].keys()) == {str(i) for i in range(count)}
        target = keras_io.load_embedding(path, config=_embedding_for_mode(mode).get_config())
        for ours, theirs in zip(target.get_weights(), source.get_weights()):
            np.testing.assert_array_equal(ours, theirs)


def test_load_own_variables_reports_clear_errors(tmp_path):  # Keras 3.16
    source = _randomized(_embedding_for_mode("int8"))
    values, scale = source.get_weights()
    config = source.get_config()
    missing = _weights_file(tmp_path / "missing.weights.h5", {"0": values})
    with pytest.raises(ValueError, match="stores quantized int8 values of shape .* but no scale"):
        keras_io.load_embedding(missing, config=config)
    with pytest.raises(ValueError, match="but no scale"):
        keras_io.list_embeddings(missing)
    corrupted = _weights_file(tmp_path / "corrupted.weights.h5", {"0": values, "9": scale})
    with pytest.raises(keras_io.KerasFileError, match=r"numbered \['0', '9'\].*without gaps"):
        keras_io.load_embedding(corrupted, config=config)


def test_int4_string_matches_default_config():  # Keras 3.16
    input_dim, output_dim = 32, 256
    table = np.random.RandomState(0).randn(input_dim, output_dim).astype("float32")
    layer_str = jaxembed.Embedding(input_dim, output_dim, weights=table)
    layer_str.quantize("int4")
    layer_cfg = jaxembed.Embedding(input_dim, output_dim, weights=table)
    layer_cfg.quantize("int4", config=Int4QuantizationConfig())
    assert layer_str.get_config()["dtype"]["config"]["mode"] == "int4/128"
    assert layer_str.get_config() == layer_cfg.get_config()
    for a, b in zip(layer_str.get_weights(), layer_cfg.get_weights()):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype="int32")
    np.testing.assert_array_equal(np.asarray(layer_str(x)), np.asarray(layer_cfg(x)))


@pytest.mark.parametrize("block_size", [None, -1], ids=["none", "neg1"])
def test_int4_per_channel_escape_hatch(block_size):  # Keras 3.16
    layer = jaxembed.Embedding(input_dim=32, output_dim=256, rngs=0)
    layer.quantize("int4", config=Int4QuantizationConfig(block_size=block_size))
    assert layer.embeddings_scale.shape == (32,)
    assert not hasattr(layer, "embeddings_zero")
    assert len(layer.get_weights()) == 2
    policy = layer.get_config()["dtype"]["config"]
    assert f"{policy['mode']}_from_{policy['source_name']}" == "int4/-1_from_float32"


@pytest.mark.parametrize(
    ("block_token", "per_channel"),
    [("None", True), ("-1", True), ("128", False)],
    ids=["block_none", "block_neg1", "block_128"],
)
def test_int4_policy_string_reload_builds_right_variables(block_token, per_channel):  # Keras 3.16
    input_dim, output_dim = 32, 256
    policy = f"int4/{block_token}_from_float32"
    layer = jaxembed.Embedding(input_dim=input_dim, output_dim=output_dim, dtype=policy, rngs=0)
    assert layer.quantization_mode == "int4"
    if per_channel:
        assert layer.embeddings_scale.shape == (input_dim,)
        assert len(layer.get_weights()) == 2
    else:
        block_size = int(block_token)
        assert layer.embeddings_scale.shape == (input_dim, math.ceil(output_dim / block_size))
        assert layer.spec.quantization_block_size == block_size
    assert layer.get_weights()[0].dtype == np.int8
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype="int32")
    assert layer(x).shape == (2, 3, output_dim)
    again = jaxembed.Embedding.from_config(
        {"input_dim": input_dim, "output_dim": output_dim, "dtype": policy}
    )
    assert again.get_config() == layer.get_config()
