"""The Embedding made of parts: each part's API, swapping parts, one id check per call."""

import inspect
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxembed
from jaxembed import ops, tables
from jaxembed.keras import constraints, regularizers

PACKAGE = pathlib.Path(jaxembed.__file__).parent
TABLE = np.array([[0.5, -1.0, 0.25], [2.0, 0.0, -0.5], [1.0, 1.0, 1.0], [-3.0, 0.5, 0.0]], np.float32)

LAYOUTS = {
    "dense": lambda layer: None,
    "int8": lambda layer: layer.quantize("int8"),
    "int4": lambda layer: layer.quantize("int4"),
    "int4/2": lambda layer: layer.quantize("int4", block_size=2),
    "int4/-1": lambda layer: layer.quantize("int4", block_size=None),
}


def _layer(layout: str, lora: bool, **kwargs) -> jaxembed.Embedding:
    layer = jaxembed.Embedding(4, 3, weights=TABLE, rngs=0, **kwargs)
    LAYOUTS[layout](layer)
    if lora:
        layer.enable_lora(2, rngs=1)
        rng = np.random.default_rng(1)
        layer.lora_embeddings_b[...] = jnp.asarray(rng.normal(size=(2, 3)), jnp.float32)
    return layer


def _parts(layer):
    return [(part, layer.part_variables(part)) for part in layer.parts]


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("lora", [False, True])
def test_each_part_looks_up_its_dense_equivalent(layout, lora):
    layer = _layer(layout, lora)
    ids = ops.check_ids(np.array([[3, 0], [1, 1]]), 4)
    total = 0
    for part, variables in _parts(layer):
        rows = part.lookup(variables, ids, method="take")
        np.testing.assert_allclose(np.asarray(rows), np.asarray(part.dense(variables))[ids.index], atol=1e-6)
        total = total + np.asarray(rows)
    np.testing.assert_allclose(np.asarray(layer(ids.index)), total, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(layer.effective_table()), sum(np.asarray(p.dense(v)) for p, v in _parts(layer)), atol=1e-6
    )


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("lora", [False, True])
def test_parts_list_keras_weights_and_trainable_variables(layout, lora):
    layer = _layer(layout, lora)
    names = [name for part, v in _parts(layer) for name, _ in part.keras_weights(v)]
    expected = {
        "dense": ["embeddings"],
        "int8": ["embeddings", "embeddings_scale"],
        "int4": ["embeddings", "embeddings_scale", "embeddings_zero", "g_idx"],
        "int4/2": ["embeddings", "embeddings_scale", "embeddings_zero", "g_idx"],
        "int4/-1": ["embeddings", "embeddings_scale"],
    }[layout] + (["lora_embeddings_a", "lora_embeddings_b"] if lora else [])
    assert names == expected
    trained = list(layer.trainable_variables())
    if lora:
        assert trained == ["lora_embeddings_a", "lora_embeddings_b"]
    else:
        assert trained == (["embeddings"] if layout == "dense" else [])
    # the layer's Keras weights are the parts' (in Keras's order: created-trainable first)
    ordered = sorted(layer.parts, key=lambda p: not p.keras_trainable)
    flat = [np.asarray(a) for p in ordered for _, a in p.keras_weights(layer.part_variables(p))]
    for got, want in zip(layer.get_weights(), flat, strict=True):
        np.testing.assert_array_equal(got, want)


def test_quantize_and_enable_lora_swap_parts():
    layer = jaxembed.Embedding(4, 3, weights=TABLE, rngs=0)
    assert layer.spec.table == tables.DenseTable() and layer.spec.lora is None
    layer.quantize("int4", block_size=2)
    assert layer.spec.table == tables.QuantizedTablePart("int4", 3, 2)
    assert layer.quantization_mode == "int4"
    layer.enable_lora(2, lora_alpha=4)
    assert layer.spec.lora == tables.LoRAPart(2, 4)
    assert (layer.lora_rank, layer.lora_alpha) == (2, 4)
    # the parts are static: they survive split/merge
    graphdef, state = nnx.split(layer)
    merged = nnx.merge(graphdef, state)
    assert merged.parts == layer.parts
    np.testing.assert_array_equal(np.asarray(merged(np.arange(4))), np.asarray(layer(np.arange(4))))


def test_trainable_setter_goes_to_the_trained_part():
    layer = jaxembed.Embedding(4, 3, weights=TABLE, rngs=0)
    layer.trainable = False
    assert type(layer.embeddings) is jaxembed.FrozenParam and layer.trainable_variables() == {}
    layer.trainable = True
    layer.enable_lora(1)
    layer.trainable = False  # only LoRA's factors ever train; the table stays frozen
    assert type(layer.lora_embeddings_a) is jaxembed.FrozenParam
    assert type(layer.embeddings) is jaxembed.FrozenParam
    quantized = _layer("int8", False)
    quantized.trainable = False
    assert type(quantized.embeddings) is jaxembed.QuantizedVariable


def test_penalty_and_constraint_act_on_the_trained_part():
    l2 = regularizers.get({"class_name": "L2", "config": {"l2": 0.5}})
    dense = _layer("dense", False, embeddings_regularizer=l2)
    np.testing.assert_allclose(float(dense.regularization_loss()), 0.5 * float(np.sum(TABLE**2)), rtol=1e-6)
    lora = _layer("dense", True, embeddings_regularizer=l2)
    a, b = (np.asarray(lora.lora_embeddings_a[...]), np.asarray(lora.lora_embeddings_b[...]))
    np.testing.assert_allclose(
        float(lora.regularization_loss()), 0.5 * (np.sum(a**2) + np.sum(b**2)), rtol=1e-5
    )
    assert float(_layer("int8", False, embeddings_regularizer=l2).regularization_loss()) == 0.0
    part = tables.DenseTable()
    variables = part.create(jnp.asarray(TABLE))
    part.constrain(variables, constraints.get("non_neg"))
    np.testing.assert_array_equal(np.asarray(variables["embeddings"][...]), np.maximum(TABLE, 0))
    quantized = _layer("int8", False, embeddings_constraint="non_neg")
    before = quantized.get_weights()
    quantized.apply_constraint()  # nothing trained, nothing projected
    for got, want in zip(quantized.get_weights(), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("lora", [False, True])
def test_ids_are_checked_once_per_call(layout, lora, monkeypatch):
    """Concrete ids: one check (one host round trip) per call, whatever the parts; was 2 with LoRA
    and 3 for int4 + LoRA."""
    layer = _layer(layout, lora)
    calls = []
    prepare = ops.prepare_ids

    def counting(ids, input_dim):
        calls.append(input_dim)
        return prepare(ids, input_dim)

    monkeypatch.setattr(ops, "prepare_ids", counting)
    layer(np.array([[3, 0], [1, 2]]))
    assert calls == [4]
    bag = jaxembed.EmbeddingBag(4, 3, weights=TABLE, rngs=0)
    LAYOUTS[layout](bag)
    if lora:
        bag.enable_lora(2)
    calls.clear()
    bag(np.array([[3, 0], [1, 2]]))
    assert calls == [4]


@pytest.mark.parametrize("layout", ["dense", "int4/2"])
def test_a_jitted_call_makes_no_host_round_trip(layout):
    layer = _layer(layout, True)
    graphdef, state = nnx.split(layer)
    forward = jax.jit(lambda s, i: nnx.merge(graphdef, s)(i))
    ids = jnp.array([[3, 0], [1, 2]])
    expected = forward(state, ids)  # compile outside the guard
    with jax.transfer_guard_device_to_host("disallow"):
        out = forward(state, ids)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))
    bad = forward(state, jnp.array([[-1, 4]]))
    assert np.isnan(np.asarray(bad)).all()  # traced invalid ids: NaN rows from every part


def test_no_mode_branches_in_the_layer_and_no_part_arrays_named_outside_the_parts():
    layer_methods = [
        jaxembed.Embedding.__call__,
        jaxembed.Embedding.lookup_checked,
        jaxembed.Embedding.trainable.fset,
        jaxembed.Embedding.regularization_loss,
        jaxembed.Embedding.apply_constraint,
        jaxembed.Embedding._weight_names,
        jaxembed.Embedding.effective_table,
        jaxembed.Embedding.get_weights,
        jaxembed.Embedding.set_weights,
    ]
    for method in layer_methods:
        source = inspect.getsource(method)
        assert "quantization_mode" not in source and "lora_rank" not in source, method.__qualname__
    part_arrays = re.compile(r"embeddings_zero|embeddings_scale|lora_embeddings_[ab]")
    for path in [*PACKAGE.joinpath("train").glob("*.py"), *PACKAGE.joinpath("keras", "io").glob("*.py")]:
        code = "\n".join(line for line in path.read_text().splitlines() if ">>>" not in line)
        assert not part_arrays.search(code), path.name


def test_one_argument_schema():
    from jaxembed import _spec

    names = [a.name for a in _spec.ARGUMENTS]
    assert len(names) == 14
    init = inspect.signature(jaxembed.Embedding.__init__).parameters
    assert [n for n in names[2:] if n not in init] == []
    linen_fields = set(jaxembed.linen.Embedding.__dataclass_fields__)
    assert set(names) <= linen_fields  # "name" is Linen's own field
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'mask_zeros'"):
        jaxembed.Embedding(4, 3, mask_zeros=True)


def test_linen_spec_is_built_once(monkeypatch):
    from jaxembed import _spec

    module = jaxembed.linen.Embedding(4, 3, mask_zero=True)
    built = []
    create = _spec.EmbeddingSpec.create.__func__

    def counting(cls, *args, **kwargs):
        built.append(1)
        return create(cls, *args, **kwargs)

    monkeypatch.setattr(_spec.EmbeddingSpec, "create", classmethod(counting))
    for _ in range(5):
        assert module.spec.mask_zero
    assert built == []
    assert module.get_config()["mask_zero"] is True
