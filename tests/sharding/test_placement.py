"""place_tables on 8 simulated CPU devices for every kind of layer: dense, int8, int4 (per row and
grouped), LoRA on a dense and on a quantized table, and a ReversibleEmbedding's untied reverse
kernel (float and quantized). Each variable of each part lands split along the right axis, keeps
its values, carries Flax's sharding metadata, and the placed layer computes what it computed before."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxembed
from jaxembed import sharding

V, D, DEVICES = 64, 16, 8

# Which axis of each variable a placement splits (None: kept whole), written out by hand from the
# layouts in jaxembed.tables: (row placement, column placement).
SPLIT = {
    "embeddings": (0, 1),  # (input_dim, output_dim or packed int4 width)
    "embeddings_scale": (0, None),  # (input_dim,) or (input_dim, n_groups)
    "embeddings_zero": (0, None),  # (input_dim, n_groups)
    "lora_embeddings_a": (0, None),  # (input_dim, rank)
    "lora_embeddings_b": (None, 1),  # (rank, output_dim)
    "reverse_embeddings": (1, 0),  # (output_dim or packed, input_dim): Keras's transposed layout
    "reverse_embeddings_scale": (-1, None),  # (input_dim,) or (n_groups, input_dim)
    "reverse_embeddings_zero": (1, None),  # (n_groups, input_dim)
}


def make(kind):
    if kind.startswith("reversible"):
        layer = jaxembed.ReversibleEmbedding(V, D, tie_weights=False, rngs=0)
    else:
        layer = jaxembed.Embedding(V, D, rngs=0)
    if "int8" in kind:
        layer.quantize("int8")
    elif "int4-rows" in kind:
        layer.quantize("int4", block_size=None)
    elif "int4" in kind:
        layer.quantize("int4", block_size=8)
    if "lora" in kind:
        layer.enable_lora(2, rngs=1)
        # Non-zero B, so LoRA's share of the lookup is part of the comparison.
        layer.lora_embeddings_b[...] = jnp.asarray(np.random.default_rng(2).normal(size=(2, D)), jnp.float32)
    return layer


KINDS = [
    "dense",
    "int8",
    "int4-rows",
    "int4-grouped",
    "lora",
    "int8+lora",
    "reversible",
    "reversible-int8",
    "reversible-int4-grouped",
]


def variables_of(layer):
    return {name: variable for name, variable in vars(layer).items() if isinstance(variable, nnx.Variable)}


def expected_spec(name, ndim, placement):
    if placement == "replicated":
        return (None,) * ndim
    axis = SPLIT[name][0 if placement == "row" else 1]
    spec = [None] * ndim
    if axis is not None:
        spec[axis % ndim] = "model"
    return tuple(spec)


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == DEVICES, "the root conftest.py asks for 8 CPU devices"
    return sharding.make_mesh(model=DEVICES)


@pytest.mark.parametrize("placement", sharding.PLACEMENTS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_table_variable_is_placed(kind, placement, mesh):
    layer = make(kind)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, V, (8, 3)), jnp.int32)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(4, D)), jnp.float32)
    before = {name: np.asarray(variable[...]) for name, variable in variables_of(layer).items()}
    expected_out = np.asarray(layer(ids))
    expected_logits = np.asarray(layer(x, reverse=True)) if kind.startswith("reversible") else None

    assert sharding.place_tables(layer, mesh, placement) is layer

    placed = variables_of(layer)
    table_names = {name for name in placed if name in SPLIT}
    assert table_names == set(before) - {"activity_loss"}  # every variable the layer holds is a table's
    if kind.startswith("reversible"):
        assert any(name.startswith("reverse_embeddings") for name in table_names)
    shardings = sharding.state_shardings(nnx.state(layer), mesh)
    for name in table_names:
        variable = placed[name]
        value = variable[...]
        spec = expected_spec(name, value.ndim, placement)
        assert variable.out_sharding == spec, name
        assert tuple(shardings[name].spec) == spec, name
        np.testing.assert_array_equal(np.asarray(value), before[name], err_msg=name)
        assert value.dtype == before[name].dtype, name
        assert len(value.addressable_shards) == DEVICES
        local = list(value.shape)
        for position, axis_name in enumerate(spec):
            if axis_name is not None:
                local[position] //= DEVICES
        assert {shard.data.shape for shard in value.addressable_shards} == {tuple(local)}, name

    np.testing.assert_allclose(np.asarray(nnx.jit(lambda m, i: m(i))(layer, ids)), expected_out, rtol=1e-6)
    if expected_logits is not None:
        logits = nnx.jit(lambda m, v: m(v, reverse=True))(layer, x)
        np.testing.assert_allclose(np.asarray(logits), expected_logits, rtol=1e-5, atol=1e-6)


def test_row_placement_splits_rows_of_every_part(mesh):
    """A positive control for the table above: under "row" each device holds 8 whole rows of the
    int8 values, their 8 scales and 8 rows of LoRA's A, while B (rank x output_dim) is whole."""
    layer = sharding.place_tables(make("int8+lora"), mesh, "row")
    assert layer.embeddings[...].addressable_shards[0].data.shape == (V // DEVICES, D)
    assert layer.embeddings_scale[...].addressable_shards[0].data.shape == (V // DEVICES,)
    assert layer.lora_embeddings_a[...].addressable_shards[0].data.shape == (V // DEVICES, 2)
    assert layer.lora_embeddings_b[...].addressable_shards[0].data.shape == (2, D)
    rows = [shard.index[0] for shard in layer.embeddings_scale[...].addressable_shards]
    assert sorted((r.start, r.stop) for r in rows) == [(8 * i, 8 * i + 8) for i in range(DEVICES)]


def test_freezing_keeps_the_placement_of_lora_and_reverse_kernel(mesh):
    layer = sharding.place_tables(make("reversible"), mesh, "row")
    layer.trainable = False
    layer.trainable = True
    assert layer.reverse_embeddings.out_sharding == (None, "model")
    layer = sharding.place_tables(make("lora"), mesh, "column")
    layer.trainable = False
    assert layer.lora_embeddings_b.out_sharding == (None, "model")


def test_a_model_of_several_layers_and_errors_name_the_variable(mesh):
    model = nnx.List([jaxembed.Embedding(V, D, rngs=0), make("reversible-int8")])
    sharding.place_tables(model, mesh, "row")
    assert model[0].embeddings.out_sharding == ("model", None)
    assert model[1].reverse_embeddings_scale.out_sharding == ("model",)
    # int4 packs two columns a byte: 8 columns are 4 bytes wide, which 8 devices cannot split by
    # columns (the float table of the same size could be).
    packed = jaxembed.Embedding(V, 8, rngs=0)
    sharding.place_tables(packed, mesh, "column")
    packed.quantize("int4", block_size=None)
    with pytest.raises(ValueError, match=r"needs output_dim divisible .* embeddings of shape \(64, 4\)"):
        sharding.place_tables(packed, mesh, "column")
    odd = nnx.List([jaxembed.Embedding(V, 16, rngs=0), jaxembed.Embedding(V, 6, rngs=0)])
    with pytest.raises(ValueError, match=r"needs output_dim divisible .* embeddings of the layer at 1 "):
        sharding.place_tables(odd, mesh, "column")
    # Nothing moved: the sizes are checked before any variable is placed.
    assert odd[0].embeddings.get_metadata().get("out_sharding") is None
    with pytest.raises(ValueError, match="`placement` must be one of"):
        sharding.place_tables(odd, mesh, "diagonal")
    with pytest.raises(ValueError, match="`axis` must name an axis of the mesh"):
        sharding.place_tables(odd, mesh, "row", axis="rows")


def test_a_part_without_known_axes_is_refused_by_name(mesh, monkeypatch):
    from jaxembed.sharding import _placement
    from jaxembed.tables import DenseTable, LoRAPart

    monkeypatch.delitem(_placement._AXES, LoRAPart)
    layer = make("lora")
    with pytest.raises(TypeError, match="place_tables does not know how to place a LoRAPart part"):
        sharding.place_tables(layer, mesh, "row")
    assert layer.embeddings.get_metadata().get("out_sharding") is None  # nothing placed
    monkeypatch.setitem(_placement._AXES, DenseTable, lambda part: {})
    with pytest.raises(TypeError, match="does not know the axes of DenseTable's variable 'embeddings'"):
        sharding.place_tables(jaxembed.Embedding(V, D, rngs=0), mesh, "row")
