"""Keras files read and written without Keras (jaxembed.keras.io), checked against real Keras 3."""

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxembed
from jaxembed.keras import io as keras_io

keras = pytest.importorskip("keras", reason="the differential tests need keras (KERAS_BACKEND=jax)")
from keras.quantizers import Int4QuantizationConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
IDS = np.array([[3, 7, 1, 0, 0, 0], [5, 2, 9, 9, 4, 1], [0, 0, 0, 0, 0, 0]], np.int32)


def _random_weights(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def _text_model(kind="sequential", final="sigmoid"):
    """Embedding(mask_zero) -> GlobalAveragePooling1D -> Dense(relu) -> Dropout -> Dense."""
    layers = [
        keras.layers.Embedding(12, 5, mask_zero=True, name="words"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(4, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(3, activation=final),
    ]
    if kind == "sequential":
        model = keras.Sequential([keras.Input((6,), dtype="int32"), *layers])
    else:
        inputs = x = keras.Input((6,), dtype="int32")
        for layer in layers:
            x = layer(x)
        model = keras.Model(inputs, x)
    return _random_weights(model)


def _flatten_model():
    return _random_weights(
        keras.Sequential(
            [
                keras.Input((6,), dtype="int32"),
                keras.layers.Embedding(12, 4),
                keras.layers.Flatten(),
                keras.layers.Dense(2, activation="softmax"),
            ]
        )
    )


# ------------------------------------------------------------ whole models
@pytest.mark.slow  # a fresh interpreter or a Keras model end to end
@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_keras_text_model_loads_whole_and_predicts_the_same(tmp_path, kind):
    model = _text_model(kind)
    model.save(tmp_path / "model.keras")
    ours = keras_io.load_model(tmp_path / "model.keras")
    assert [type(layer).__name__ for layer in ours.layers] == [
        "Embedding",
        "GlobalAveragePooling1D",
        "Linear",
        "Activation",
        "Dropout",
        "Linear",
        "Activation",
    ]
    ids = IDS[:2]  # Keras gives NaN for the all-padding row (0 / 0); see the next test
    np.testing.assert_allclose(
        np.asarray(ours(ids)), np.asarray(model(ids, training=False)), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_array_equal(
        np.asarray(ours.layers[0].embeddings[...]), model.get_layer("words").get_weights()[0]
    )


def test_all_padding_row_gives_zeros_where_keras_gives_nan(tmp_path):
    model = _text_model()
    model.save(tmp_path / "model.keras")
    ours = keras_io.load_model(tmp_path / "model.keras")
    keras_row = np.asarray(model(IDS[2:], training=False))
    assert np.isnan(keras_row).all()
    pooled = ours.layers[1](ours.layers[0](IDS[2:]), mask=ours.layers[0].compute_mask(IDS[2:]))
    np.testing.assert_array_equal(np.asarray(pooled), 0.0)


def test_flatten_model_loads_and_predicts_the_same(tmp_path):
    model = _flatten_model()
    model.save(tmp_path / "flat.keras")
    ours = keras_io.load_model(tmp_path / "flat.keras")
    np.testing.assert_allclose(np.asarray(ours(IDS)), np.asarray(model(IDS)), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_model_written_here_loads_in_keras_and_predicts_the_same(tmp_path, kind):
    source = _text_model("sequential")
    source.save(tmp_path / "model.keras")
    ours = keras_io.load_model(tmp_path / "model.keras")
    # Change the weights on our side, write them, and load them into a fresh Keras model.
    ours.layers[0].embeddings[...] = ours.layers[0].embeddings[...] * 2.0 + 0.25
    ours.layers[2].bias[...] = ours.layers[2].bias[...] - 0.5
    keras_io.save_weights(ours, tmp_path / "ours.weights.h5")
    fresh = _text_model(kind)
    fresh.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_allclose(
        np.asarray(fresh(IDS[:2], training=False)), np.asarray(ours(IDS[:2])), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_array_equal(
        fresh.get_layer("words").get_weights()[0], np.asarray(ours.layers[0].embeddings[...])
    )


def test_dropout_follows_train_and_eval_mode(tmp_path):
    _text_model().save(tmp_path / "model.keras")
    ours = keras_io.load_model(tmp_path / "model.keras")
    assert ours.layers[4].deterministic is True
    ours.train()
    assert ours.layers[4].deterministic is False
    ids = IDS[:2]
    assert ours(ids).shape == (2, 3)


def test_model_trains_under_nnx_jit(tmp_path):
    import optax

    _text_model().save(tmp_path / "model.keras")
    ours = keras_io.load_model(tmp_path / "model.keras")
    ours.train()
    optimizer = nnx.Optimizer(ours, optax.adam(1e-2), wrt=nnx.Param)
    labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

    @nnx.jit
    def step(model, opt, ids):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(ids) - labels) ** 2))(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(ours, optimizer, jnp.asarray(IDS[:2]))) for _ in range(30)]
    assert losses[-1] < losses[0]


# -------------------------------------------------------------- embeddings
def test_functional_model_with_several_embeddings(tmp_path):
    inputs = keras.Input((6,), dtype="int32")
    first = keras.layers.Embedding(12, 4, name="tokens")(inputs)
    second = keras.layers.Embedding(12, 4, name="positions", mask_zero=True)(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.Flatten()(keras.layers.Add()([first, second])))
    model = _random_weights(keras.Model(inputs, outputs))
    model.save(tmp_path / "two.keras")
    model.save_weights(tmp_path / "two.weights.h5")

    entries = keras_io.list_embeddings(tmp_path / "two.keras")
    assert [(e.name, e.path, e.shape) for e in entries] == [
        ("tokens", "layers/embedding", (12, 4)),
        ("positions", "layers/embedding_1", (12, 4)),
    ]
    for path in ("two.keras", "two.weights.h5"):
        layer = keras_io.load_embedding(tmp_path / path, "positions")
        np.testing.assert_array_equal(
            np.asarray(layer.embeddings[...]), model.get_layer("positions").get_weights()[0]
        )
        np.testing.assert_array_equal(np.asarray(layer(IDS)), np.asarray(model.get_layer("positions")(IDS)))
        assert layer.name == "positions"
    assert keras_io.load_embedding(tmp_path / "two.keras", "positions").mask_zero is True  # from config.json
    by_path = keras_io.load_embedding(tmp_path / "two.weights.h5", h5_path="layers/embedding/vars")
    np.testing.assert_array_equal(
        np.asarray(by_path.embeddings[...]), model.get_layer("tokens").get_weights()[0]
    )

    with pytest.raises(
        KeyError, match=r"no Embedding layer named 'nope'. Embedding layers: tokens .*positions"
    ):
        keras_io.load_embedding(tmp_path / "two.keras", "nope")
    with pytest.raises(ValueError, match="has 2 Embedding layers; pass name= or h5_path="):
        keras_io.load_embedding(tmp_path / "two.keras")
    with pytest.raises(
        KeyError, match=r"no layer variables at 'layers/lstm'. Paths with variables: \['layers/dense'"
    ):
        keras_io.load_embedding(tmp_path / "two.weights.h5", h5_path="layers/lstm")


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.alpha_table = keras.layers.Embedding(9, 3, name="alpha")  # sorts before "layers"
        self.zeta_table = keras.layers.Embedding(7, 2)  # reached through model.layers
        self.head = keras.layers.Dense(1)

    def call(self, ids):
        pooled = self.alpha_table(ids).mean(axis=1)
        return self.head(pooled) + self.zeta_table(ids).sum()


def test_subclassed_model_layouts(tmp_path):
    model = _Subclassed()
    model(IDS)
    _random_weights(model)
    model.save_weights(tmp_path / "sub.weights.h5")
    with h5py.File(tmp_path / "sub.weights.h5") as h5:
        assert "alpha_table/vars/0" in h5  # attribute name
    by_attribute = keras_io.load_embedding(tmp_path / "sub.weights.h5", h5_path="alpha_table")
    by_name = keras_io.load_embedding(tmp_path / "sub.weights.h5", "alpha")
    np.testing.assert_array_equal(
        np.asarray(by_attribute.embeddings[...]), model.alpha_table.get_weights()[0]
    )
    np.testing.assert_array_equal(np.asarray(by_name.embeddings[...]), model.alpha_table.get_weights()[0])
    auto = [e for e in keras_io.list_embeddings(tmp_path / "sub.weights.h5") if e.name != "alpha"]
    assert len(auto) == 1 and auto[0].shape == (7, 2)
    zeta = keras_io.load_embedding(tmp_path / "sub.weights.h5", h5_path=auto[0].path)
    np.testing.assert_array_equal(np.asarray(zeta(IDS % 7)), np.asarray(model.zeta_table(IDS % 7)))


def test_nested_model_paths(tmp_path):
    inner = keras.Sequential(
        [keras.Input((6,), dtype="int32"), keras.layers.Embedding(12, 3, name="inner_words")]
    )
    inputs = keras.Input((6,), dtype="int32")
    outer = _random_weights(keras.Model(inputs, keras.layers.Flatten()(inner(inputs))))
    outer.save(tmp_path / "nested.keras")
    (entry,) = keras_io.list_embeddings(tmp_path / "nested.keras")
    assert entry.path == "layers/sequential/layers/embedding" and entry.name == "inner_words"
    layer = keras_io.load_embedding(tmp_path / "nested.keras")
    np.testing.assert_array_equal(np.asarray(layer.embeddings[...]), inner.get_weights()[0])


def test_bfloat16_tables_round_trip(tmp_path):
    model = keras.Sequential(
        [keras.Input((6,), dtype="int32"), keras.layers.Embedding(12, 4, dtype="bfloat16")]
    )
    _random_weights(model)
    model.save(tmp_path / "bf16.keras")
    model.save_weights(tmp_path / "bf16.weights.h5")
    for name in ("bf16.keras", "bf16.weights.h5"):
        layer = keras_io.load_embedding(tmp_path / name)
        assert layer.embeddings.dtype == jnp.bfloat16 and layer.dtype == jnp.bfloat16
        np.testing.assert_array_equal(
            np.asarray(layer.embeddings[...]), np.asarray(model.layers[0].embeddings)
        )
        np.testing.assert_array_equal(np.asarray(layer(IDS)), np.asarray(model(IDS)))
    layer.embeddings[...] = layer.embeddings[...] + 1
    keras_io.save_weights(layer, tmp_path / "ours.weights.h5")
    model.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_array_equal(np.asarray(model(IDS)), np.asarray(layer(IDS)))


QUANTIZED = [
    ("int8", None, {}),
    ("int4", None, {}),
    ("int4", Int4QuantizationConfig(block_size=2), {"block_size": 2}),
    ("int4", Int4QuantizationConfig(block_size=-1), {"block_size": None}),
]


@pytest.mark.parametrize(
    ("mode", "config", "ours_kwargs"), QUANTIZED, ids=["int8", "int4", "int4-2", "int4-pc"]
)
def test_quantized_files_load_and_write_back(tmp_path, mode, config, ours_kwargs):
    model = _random_weights(
        keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(12, 5)])
    )
    model.layers[0].quantize(mode, config=config)
    model.save(tmp_path / "q.keras")
    model.save_weights(tmp_path / "q.weights.h5")
    expected = np.asarray(model(IDS))
    layer = keras_io.load_embedding(tmp_path / "q.keras")
    assert layer.quantization_mode == mode
    np.testing.assert_array_equal(np.asarray(layer(IDS)), expected)
    # A bare weights file is unambiguous for grouped int4; per-row tables need output_dim.
    if layer.spec.quantization_block_size is None:
        with pytest.raises(ValueError, match="Pass config=\\{'output_dim': ...\\}"):
            keras_io.load_embedding(tmp_path / "q.weights.h5")
    from_weights = keras_io.load_embedding(
        tmp_path / "q.weights.h5", config={"input_dim": 12, "output_dim": 5}
    )
    np.testing.assert_array_equal(np.asarray(from_weights(IDS)), expected)

    ours = jaxembed.Embedding(12, 5, weights=np.random.default_rng(3).normal(size=(12, 5)))
    ours.quantize(mode, **ours_kwargs)
    keras_io.save_weights(ours, tmp_path / "ours.weights.h5")
    model.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_array_equal(np.asarray(model(IDS)), np.asarray(ours(IDS)))


def test_lora_layers_save_merged_like_keras(tmp_path):
    rng = np.random.default_rng(0)
    table, a, b = rng.normal(size=(12, 5)), rng.normal(size=(12, 2)), rng.normal(size=(2, 5))
    ours = jaxembed.Embedding(12, 5, weights=table)
    ours.enable_lora(2, lora_alpha=4, rngs=0)
    ours.lora_embeddings_a[...] = a
    ours.lora_embeddings_b[...] = b
    keras_io.save_weights(ours, tmp_path / "lora.weights.h5")
    plain = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(12, 5)])
    plain.load_weights(tmp_path / "lora.weights.h5")
    np.testing.assert_allclose(np.asarray(plain(IDS)), np.asarray(ours(IDS)), rtol=1e-6, atol=1e-6)

    # Keras writes the same merged table for the same LoRA state.
    keras_model = keras.Sequential(
        [keras.Input((6,), dtype="int32"), keras.layers.Embedding(12, 5, weights=table)]
    )
    keras_model.layers[0].enable_lora(2, lora_alpha=4)
    keras_model.layers[0].lora_embeddings_a.assign(a)
    keras_model.layers[0].lora_embeddings_b.assign(b)
    keras_model.save(tmp_path / "keras_lora.keras")
    loaded = keras_io.load_embedding(tmp_path / "keras_lora.keras")
    assert loaded.lora_enabled and loaded.lora_rank == 2
    np.testing.assert_array_equal(
        np.asarray(loaded.lora_embeddings_b[...]), 0
    )  # zeroed on load, as Keras does
    with h5py.File(tmp_path / "lora.weights.h5") as ours_file:
        ours_table = ours_file["layers/embedding/vars/0"][()]
    np.testing.assert_allclose(ours_table, np.asarray(loaded.embeddings[...]), rtol=1e-6, atol=1e-6)


def test_lora_on_quantized_saves_requantized_like_keras(tmp_path):
    rng = np.random.default_rng(1)
    table, a, b = rng.normal(size=(12, 5)), rng.normal(size=(12, 2)), rng.normal(size=(2, 5))
    keras_model = keras.Sequential(
        [keras.Input((6,), dtype="int32"), keras.layers.Embedding(12, 5, weights=table)]
    )
    keras_model.layers[0].quantize("int8")
    keras_model.layers[0].enable_lora(2)
    keras_model.layers[0].lora_embeddings_a.assign(a)
    keras_model.layers[0].lora_embeddings_b.assign(b)
    keras_model.save_weights(tmp_path / "keras.weights.h5")
    ours = jaxembed.Embedding(12, 5, weights=table)
    ours.quantize("int8")
    ours.enable_lora(2, rngs=0)
    ours.lora_embeddings_a[...] = a
    ours.lora_embeddings_b[...] = b
    keras_io.save_weights(ours, tmp_path / "ours.weights.h5")
    keras_model.save(tmp_path / "keras.keras")
    reloaded_by_keras = keras.saving.load_model(tmp_path / "keras.keras")
    loaded = keras_io.load_embedding(tmp_path / "keras.keras")
    assert loaded.quantization_mode == "int8" and loaded.lora_enabled
    np.testing.assert_array_equal(np.asarray(loaded(IDS)), np.asarray(reloaded_by_keras(IDS)))
    with h5py.File(tmp_path / "keras.weights.h5") as theirs, h5py.File(tmp_path / "ours.weights.h5") as mine:
        np.testing.assert_array_equal(
            mine["layers/embedding/vars/0"][()], theirs["layers/embedding/vars/0"][()]
        )
        np.testing.assert_allclose(
            mine["layers/embedding/vars/1"][()], theirs["layers/embedding/vars/1"][()], rtol=1e-6
        )


def test_live_keras_layers_convert_exactly():
    rng = np.random.default_rng(2)
    keras_layer = keras.layers.Embedding(12, 5, mask_zero=True, weights=rng.normal(size=(12, 5)))
    ours = keras_io.from_keras_layer(keras_layer)
    np.testing.assert_array_equal(np.asarray(ours(IDS)), np.asarray(keras_layer(IDS)))
    assert ours.mask_zero and ours.get_config() == keras_layer.get_config()

    keras_layer.enable_lora(3, lora_alpha=6)
    keras_layer.lora_embeddings_b.assign(rng.normal(size=(3, 5)))
    ours = keras_io.from_keras_layer(keras_layer)
    assert ours.lora_rank == 3 and ours.lora_alpha == 6
    np.testing.assert_allclose(np.asarray(ours(IDS)), np.asarray(keras_layer(IDS)), rtol=1e-6, atol=1e-6)

    quantized = keras.layers.Embedding(12, 5, weights=rng.normal(size=(12, 5)))
    quantized.quantize("int4")
    np.testing.assert_array_equal(
        np.asarray(keras_io.from_keras_layer(quantized)(IDS)), np.asarray(quantized(IDS))
    )

    with pytest.raises(
        TypeError, match="Expected a keras.layers.Embedding. Received an object of type Dense"
    ):
        keras_io.from_keras_layer(keras.layers.Dense(2))
    with pytest.raises(ValueError, match="not built yet"):
        keras_io.from_keras_layer(keras.layers.Embedding(3, 2))


# --------------------------------------------------------------- bad files
def test_bad_files_give_clear_errors(tmp_path):
    _text_model().save(tmp_path / "good.keras")
    _text_model().save_weights(tmp_path / "good.weights.h5")
    with pytest.raises(FileNotFoundError, match="No such Keras file"):
        keras_io.load_embedding(tmp_path / "missing.keras")
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match="not a Keras weights file"):
        keras_io.load_embedding(tmp_path / "notes.txt")
    data = (tmp_path / "good.weights.h5").read_bytes()
    (tmp_path / "cut.weights.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated|damaged"):
        keras_io.load_embedding(tmp_path / "cut.weights.h5")
    archive = (tmp_path / "good.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(archive[: len(archive) // 2])
    with pytest.raises(ValueError, match="not a Keras weights file|damaged"):
        keras_io.load_embedding(tmp_path / "cut.keras")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as other:
        other.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a .keras file: it has no 'model.weights.h5'"):
        keras_io.load_embedding(tmp_path / "other.zip")
    with pytest.raises(
        ValueError, match=r"config says input_dim=12, output_dim=9 but .* hold a \(12, 5\) table"
    ):
        keras_io.load_embedding(
            tmp_path / "good.weights.h5", "words", config={"input_dim": 12, "output_dim": 9}
        )
    with pytest.raises(ValueError, match="load_model needs a .keras archive"):
        keras_io.load_model(tmp_path / "good.weights.h5")


def test_unsupported_models_are_refused_by_name(tmp_path):
    inputs = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(12, 4)(inputs)
    keras.Model(inputs, keras.layers.Conv1D(2, 3)(x)).save(tmp_path / "conv.keras")
    with pytest.raises(ValueError, match=r"is a Conv1D; KerasSequential loads Embedding"):
        keras_io.load_model(tmp_path / "conv.keras")
    a = keras.layers.Embedding(12, 4)(inputs)
    b = keras.layers.Embedding(12, 4)(inputs)
    keras.Model(inputs, keras.layers.Add()([a, b])).save(tmp_path / "branch.keras")
    with pytest.raises(ValueError, match="Only a chain of layers"):
        keras_io.load_model(tmp_path / "branch.keras")
    model = _Subclassed()
    model(IDS)
    model.save(tmp_path / "sub.keras")
    with pytest.raises(ValueError, match=r"holds a '_Subclassed'"):
        keras_io.load_model(tmp_path / "sub.keras")


def test_save_is_atomic_and_checks_the_name(tmp_path, monkeypatch):
    layer = jaxembed.Embedding(4, 2, rngs=0)
    with pytest.raises(ValueError, match=r"must end in `.weights.h5`"):
        keras_io.save_weights(layer, tmp_path / "table.h5")
    target = tmp_path / "table.weights.h5"
    keras_io.save_weights(layer, target)
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(keras_io._h5, "_write_dataset", fail)
    with pytest.raises(OSError, match="disk full"):
        keras_io.save_weights(jaxembed.Embedding(4, 2, rngs=1), target)
    assert target.read_bytes() == before  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["table.weights.h5"]  # no temporary left behind
    with pytest.raises(TypeError, match="writes an Embedding or a KerasSequential"):
        keras_io.save_weights(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), tmp_path / "x.weights.h5")


@pytest.mark.slow  # a fresh interpreter or a Keras model end to end
def test_readers_do_not_import_keras(tmp_path):
    _text_model().save(tmp_path / "model.keras")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["keras"] = None  # any "import keras" now fails
        import numpy as np
        from jaxembed.keras import io as keras_io
        model = keras_io.load_model({str(tmp_path / "model.keras")!r})
        layer = keras_io.load_embedding({str(tmp_path / "model.keras")!r})
        keras_io.save_weights(model, {str(tmp_path / "again.weights.h5")!r})
        print(model(np.array([[3, 7, 1, 0, 0, 0]])).shape, layer.name)
        loaded = [name for name, module in sys.modules.items() if module is not None]
        assert not any(name == "keras" or name.startswith("keras.") for name in loaded)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "(1, 3) words" in result.stdout


@pytest.mark.parametrize("make", [_text_model, _flatten_model], ids=["pooled", "flatten"])
def test_keras_archive_written_here_opens_in_keras(tmp_path, make):
    source = make()
    source.save(tmp_path / "source.keras")
    ours = keras_io.load_model(tmp_path / "source.keras")
    ours.layers[0].embeddings[...] = ours.layers[0].embeddings[...] + 0.5  # trained in JAX, say
    keras_io.save_model(ours, tmp_path / "ours.keras", input_length=6)
    reloaded = keras.saving.load_model(tmp_path / "ours.keras")
    assert [layer.__class__.__name__ for layer in reloaded.layers] == [
        layer.__class__.__name__ for layer in source.layers
    ]
    ids = IDS[:2]
    np.testing.assert_allclose(
        np.asarray(reloaded(ids, training=False)), np.asarray(ours(ids)), rtol=1e-6, atol=1e-6
    )
    again = keras_io.load_model(tmp_path / "ours.keras")
    np.testing.assert_array_equal(np.asarray(again(ids)), np.asarray(ours(ids)))
    with pytest.raises(ValueError, match="must end in `.keras`"):
        keras_io.save_model(ours, tmp_path / "ours.zip")


def test_keras_archive_keeps_lora_and_quantization(tmp_path):
    embedding = jaxembed.Embedding(12, 5, mask_zero=True, name="words", rngs=0)
    embedding.quantize("int4", block_size=2)
    model = jaxembed.nn.KerasSequential(
        [embedding, jaxembed.GlobalAveragePooling1D(), nnx.Linear(5, 2, rngs=nnx.Rngs(0))]
    )
    keras_io.save_model(model, tmp_path / "q.keras")
    reloaded = keras.saving.load_model(tmp_path / "q.keras")
    assert reloaded.get_layer("words").quantization_mode == "int4"
    np.testing.assert_allclose(
        np.asarray(reloaded(IDS[:2])), np.asarray(model(IDS[:2])), rtol=1e-6, atol=1e-6
    )
