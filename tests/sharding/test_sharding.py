"""Tables on 8 simulated CPU devices (the root conftest.py sets XLA_FLAGS): placements, lookups,
gradients, train steps and lazy Adam equal the one-device results; nothing gathers the table."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

import jaxembed
from jaxembed import linen, ops, sharding, sparse, train

V, D = 64, 16
MESHES = {"1x8": (1, 8), "2x4": (2, 4)}


@pytest.fixture(scope="module", autouse=True)
def _eight_devices():
    assert jax.device_count() == 8, "tests/test_sharding.py needs the 8 CPU devices that conftest.py asks for"


def mesh_of(name):
    return sharding.make_mesh(*MESHES[name])


def batch_for(mesh, seed=0, size=8, length=3):
    ids = np.random.default_rng(seed).integers(0, V, (size, length)).astype(np.int32)
    return jax.device_put(ids, NamedSharding(mesh, PartitionSpec("data")))


def table_bytes():
    return V * D * 4


def assert_no_table_all_gather(compiled):
    """The compiled program has no all-gather at all (so certainly none of the table)."""
    found = jaxembed.inspect.collectives(compiled)
    gathers = [c for c in found if c.op == "all-gather"]
    assert not gathers, f"the step all-gathers: {gathers}"


@pytest.mark.parametrize("placement", sharding.PLACEMENTS)
def test_each_device_holds_its_share_of_the_table(placement):
    mesh = mesh_of("1x8")
    layer = jaxembed.Embedding(V, D, rngs=0, embeddings_sharding=sharding.table_sharding(mesh, placement))
    table = layer.embeddings[...]
    shards = table.addressable_shards
    assert len(shards) == 8
    expected = {"row": (V // 8, D), "column": (V, D // 8), "replicated": (V, D)}[placement]
    assert {shard.data.shape for shard in shards} == {expected}
    if placement != "replicated":
        assert all(shard.data.size == V * D // 8 for shard in shards)
        assert len({str(shard.index) for shard in shards}) == 8  # eight different pieces
    # The same numbers as the unsharded layer with the same seed.
    np.testing.assert_array_equal(
        np.asarray(table), np.asarray(jaxembed.Embedding(V, D, rngs=0).embeddings[...])
    )
    assert layer.embeddings.out_sharding == tuple(sharding.table_spec(placement)) or placement == "replicated"


def test_freezing_unfreezing_and_lora_keep_the_table_sharding():
    mesh = mesh_of("1x8")
    layer = jaxembed.Embedding(V, D, rngs=0, embeddings_sharding=sharding.table_sharding(mesh, "row"))
    expected = tuple(sharding.table_spec("row"))
    for trainable in (False, True):
        layer.trainable = trainable
        assert type(layer.embeddings).__name__ == ("Param" if trainable else "FrozenParam")
        assert layer.embeddings.out_sharding == expected
        spec = sharding.state_shardings(nnx.state(layer), mesh)["embeddings"].spec
        assert tuple(spec) == expected
    layer.enable_lora(2, rngs=1)  # the table is frozen under LoRA, still split by rows
    assert type(layer.embeddings).__name__ == "FrozenParam"
    assert layer.embeddings.out_sharding == expected


def test_embeddings_sharding_names_use_the_mesh_in_context():
    mesh = mesh_of("1x8")
    with jax.set_mesh(mesh):
        layer = jaxembed.Embedding(V, D, rngs=0, embeddings_sharding=("model", None))
    assert layer.embeddings[...].addressable_shards[0].data.shape == (V // 8, D)


def test_linen_with_partitioning_places_the_table():
    mesh = mesh_of("2x4")
    module = linen.Embedding(V, D, embeddings_sharding=sharding.table_sharding(mesh, "row"))
    ids = batch_for(mesh)
    abstract = jax.eval_shape(module.init, jax.random.key(0), ids)
    specs = nn.get_partition_spec(abstract)
    assert tuple(specs["params"]["embeddings"]) == ("model", None)
    shardings = jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs)
    variables = jax.jit(module.init, out_shardings=shardings)(jax.random.key(0), ids)
    table = variables["params"]["embeddings"].value
    assert table.addressable_shards[0].data.shape == (V // 4, D)
    plain = linen.Embedding(V, D)
    plain_vars = plain.init(jax.random.key(0), ids)
    np.testing.assert_array_equal(np.asarray(table), np.asarray(plain_vars["params"]["embeddings"]))
    out = jax.jit(module.apply)(variables, ids)
    np.testing.assert_allclose(out, plain.apply(plain_vars, np.asarray(ids)), rtol=1e-6)


@pytest.mark.parametrize("mesh_name", MESHES)
@pytest.mark.parametrize("placement", sharding.PLACEMENTS)
@pytest.mark.parametrize("method", ops.LOOKUP_METHODS)
def test_forward_and_gradients_equal_the_unsharded_ones(mesh_name, placement, method):
    mesh = mesh_of(mesh_name)
    table = jnp.asarray(np.random.default_rng(1).normal(size=(V, D)), jnp.float32)
    placed = jax.device_put(table, sharding.table_sharding(mesh, placement))
    ids = batch_for(mesh)

    def loss(t, i):
        return jnp.sum(jnp.sin(ops.lookup(t, i, method=method)) ** 2)

    out = jax.jit(lambda t, i: ops.lookup(t, i, method=method))(placed, ids)
    np.testing.assert_allclose(out, ops.lookup(table, np.asarray(ids)), rtol=1e-6)
    grad = jax.jit(jax.grad(loss), out_shardings=placed.sharding)(placed, ids)
    np.testing.assert_allclose(grad, jax.grad(loss)(table, np.asarray(ids)), rtol=1e-5, atol=1e-7)
    assert grad.sharding.is_equivalent_to(placed.sharding, 2)
    compiled = jax.jit(jax.grad(loss), out_shardings=placed.sharding).lower(placed, ids).compile()
    assert_no_table_all_gather(compiled)


@pytest.mark.parametrize("mesh_name", MESHES)
@pytest.mark.parametrize("placement", sharding.PLACEMENTS)
def test_trainer_steps_equal_the_unsharded_ones_and_keep_the_placement(mesh_name, placement):
    mesh = mesh_of(mesh_name)

    def loss_fn(model, batch):
        return jnp.mean((model(batch) - 0.5) ** 2)

    placed = jaxembed.Embedding(V, D, rngs=3, embeddings_sharding=sharding.table_sharding(mesh, placement))
    plain = jaxembed.Embedding(V, D, rngs=3)
    sharded_trainer = train.Trainer(placed, optax.adam(0.05), loss_fn)
    plain_trainer = train.Trainer(plain, optax.adam(0.05), loss_fn)
    for seed in range(3):
        batch = batch_for(mesh, seed)
        sharded_trainer.train_step(batch)
        plain_trainer.train_step(np.asarray(batch))
    got = sharded_trainer.state.params["embeddings"][...]
    np.testing.assert_allclose(got, plain_trainer.state.params["embeddings"][...], rtol=1e-5, atol=1e-6)
    expected = sharding.table_sharding(mesh, placement)
    assert got.sharding.is_equivalent_to(expected, 2)
    mu = sharded_trainer.state.opt_state[0].mu["embeddings"][...]
    assert mu.sharding.is_equivalent_to(expected, 2)  # the optimizer state is placed like the table
    compiled = sharded_trainer._train_step.lower(sharded_trainer.state, batch_for(mesh)).compile()
    assert_no_table_all_gather(compiled)


def test_the_hlo_check_catches_a_naive_all_gather():
    mesh = mesh_of("1x8")
    table = jax.device_put(jnp.ones((V, D)), sharding.table_sharding(mesh, "row"))
    ids = jnp.arange(6) * 10
    naive = jax.jit(lambda t, i: sharding.gathered_lookup(t, i, mesh)).lower(table, ids).compile()
    found = jaxembed.inspect.collectives(naive)
    assert [(c.op, c.bytes) for c in found] == [("all-gather", table_bytes())]
    with pytest.raises(AssertionError, match="the step all-gathers"):
        assert_no_table_all_gather(naive)
    explicit = jax.jit(lambda t, i: sharding.sharded_lookup(t, i, mesh)).lower(table, ids).compile()
    assert [(c.op, c.bytes) for c in jaxembed.inspect.collectives(explicit)] == [("all-reduce", 6 * D * 4)]


@pytest.mark.parametrize("mesh_name", MESHES)
def test_shard_map_lookup_equals_the_plain_lookup_with_gradients(mesh_name):
    mesh = mesh_of(mesh_name)
    table = jnp.asarray(np.random.default_rng(2).normal(size=(V, D)), jnp.float32)
    placed = jax.device_put(table, sharding.table_sharding(mesh, "row"))
    ids = batch_for(mesh)

    def loss(t, i):
        return jnp.sum(sharding.sharded_lookup(t, i, mesh, data_axis="data") ** 3)

    out = jax.jit(lambda t, i: sharding.sharded_lookup(t, i, mesh, data_axis="data"))(placed, ids)
    np.testing.assert_allclose(out, table[np.asarray(ids)], rtol=1e-6)
    step = jax.jit(jax.grad(loss), out_shardings=placed.sharding)
    grad = step(placed, ids)
    expected = jax.grad(lambda t: jnp.sum(t[np.asarray(ids)] ** 3))(table)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)
    compiled = step.lower(placed, ids).compile()
    assert_no_table_all_gather(compiled)
    assert all(c.op == "all-reduce" for c in jaxembed.inspect.collectives(compiled))


def test_shard_map_lookup_ids_checks():
    mesh = mesh_of("1x8")
    table = jnp.zeros((V, D))
    bad = jax.jit(lambda i: sharding.sharded_lookup(table, i, mesh))(jnp.array([1, V, -1]))
    assert not np.isnan(bad[0]).any() and np.isnan(bad[1:]).all()
    with pytest.raises(ValueError, match=r"Embedding ids must be in the range \[0, 63\]"):
        sharding.sharded_lookup(table, np.array([V]), mesh)
    with pytest.raises(ValueError, match="input_dim divisible by the 'model' axis size"):
        sharding.sharded_lookup(jnp.zeros((60, D)), np.array([0]), mesh)


BIG = 1024


@pytest.mark.parametrize("placement", sharding.PLACEMENTS)
@pytest.mark.parametrize("data_axis", [None, "data"])
def test_lazy_adam_on_a_sharded_table_equals_one_device(placement, data_axis):
    """Each shard updates its own touched rows; row-sharded or not, the result is the one-device one."""
    mesh = mesh_of("2x4")
    opt = sparse.lazy(optax.adam(0.05))
    table = jnp.asarray(np.random.default_rng(4).normal(size=(BIG, D)), jnp.float32)
    target_sharding = sharding.table_sharding(mesh, placement)
    placed = jax.device_put(table, target_sharding)
    placed_state = opt.init(placed)
    state = opt.init(table)

    def loss_of_rows(rows):
        return jnp.mean((rows - 1.0) ** 2)

    @jax.jit
    def sharded_step(t, s, i):
        loss, grad = sparse.value_and_row_sparse_grad(loss_of_rows, t, i)
        return sharding.sharded_lazy_update(opt, grad, s, t, mesh, placement=placement, data_axis=data_axis)

    @jax.jit
    def plain_step(t, s, i):
        loss, grad = sparse.value_and_row_sparse_grad(loss_of_rows, t, i)
        return opt.update(grad, s, t)

    touched = set()
    for seed in range(3):
        ids = batch_for(mesh, seed, size=4) * (BIG // V)  # spread over the bigger table
        touched |= set(np.asarray(ids).ravel().tolist())
        placed, placed_state = sharded_step(placed, placed_state, ids)
        table, state = plain_step(table, state, np.asarray(ids))
    np.testing.assert_allclose(placed, table, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(placed_state[0].mu, state[0].mu, rtol=1e-6, atol=1e-8)
    assert int(placed_state[0].count) == 3
    untouched = sorted(set(range(BIG)) - touched)
    start = jnp.asarray(np.random.default_rng(4).normal(size=(BIG, D)), jnp.float32)
    np.testing.assert_array_equal(np.asarray(placed)[untouched], np.asarray(start)[untouched])
    assert placed.sharding.is_equivalent_to(target_sharding, 2)
    assert placed_state[0].nu.sharding.is_equivalent_to(target_sharding, 2)
    compiled = sharded_step.lower(placed, placed_state, ids).compile()
    found = jaxembed.inspect.collectives(compiled)
    # Only ids, gradient rows and activations move (12 ids here): never a table shard (BIG * D * 4 / 4 bytes).
    assert found and all(c.bytes <= 2 * 12 * D * 4 for c in found), found


def test_bad_arguments():
    mesh = mesh_of("1x8")
    with pytest.raises(ValueError, match="`placement` must be one of"):
        sharding.table_spec("diagonal")
    with pytest.raises(ValueError, match="needs output_dim divisible"):
        sharding.place_tables(jaxembed.Embedding(8, 4, rngs=0), mesh, "column")
    with pytest.raises(TypeError, match="`embeddings_sharding` must be a NamedSharding"):
        jaxembed.Embedding(8, 4, rngs=0, embeddings_sharding="row")
    with pytest.raises(ValueError, match=r"needs data \* model == the number of devices"):
        sharding.make_mesh(3, 3)
    with pytest.raises(ValueError, match="`axis` must name an axis of the mesh"):
        sharding.table_sharding(mesh, "row", axis="rows")


def test_collectives_reads_async_pairs_once():
    text = (
        "%ags = (f32[2,4]{1,0}, f32[16,4]{1,0}) all-gather-start(f32[2,4]{1,0} %p), dimensions={0}\n"
        "%agd = f32[16,4]{1,0} all-gather-done((f32[2,4]{1,0}, f32[16,4]{1,0}) %ags)\n"
        "%ar = bf16[8]{0} all-reduce(bf16[8]{0} %x), to_apply=%add\n"
        "%ars = (f32[4]{0}, f32[2]{0}) all-reduce-start(f32[4]{0} %a, f32[2]{0} %b), to_apply=%add\n"
        "%ard = (f32[4]{0}, f32[2]{0}) all-reduce-done((f32[4]{0}, f32[2]{0}) %ars)\n"
        "%cps = (f32[3]{0}, f32[3]{0}, u32[], u32[]) collective-permute-start(f32[3]{0} %c), "
        "source_target_pairs={{0,1}}\n"
    )
    assert jaxembed.inspect.collectives(text) == [
        jaxembed.inspect.Collective("all-gather", ("f32[16,4]",), 256),
        jaxembed.inspect.Collective("all-reduce", ("bf16[8]",), 16),
        jaxembed.inspect.Collective("all-reduce", ("f32[4]", "f32[2]"), 24),
        jaxembed.inspect.Collective("collective-permute", ("f32[3]",), 12),
    ]
    assert jaxembed.inspect.communicated_bytes(text, op="all-reduce") == 40


# ----------------------------------------------------------------- checkpoints
def trainer_on(mesh, placement, seed=5):
    model = jaxembed.Embedding(V, D, rngs=seed, embeddings_sharding=sharding.table_sharding(mesh, placement))
    return train.Trainer(model, optax.adam(0.05), lambda m, b: jnp.mean((m(b) - 0.5) ** 2))


def test_sharded_checkpoint_restores_onto_another_mesh(tmp_path):
    from jaxembed import checkpoint

    saver = trainer_on(mesh_of("1x8"), "row")
    saver.train_step(batch_for(mesh_of("1x8")))
    path = saver.save(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folder left behind
    assert checkpoint.read_checkpoint_metadata(path) == {"step": 1}
    other = mesh_of("2x4")
    loader = trainer_on(other, "column", seed=6)
    assert loader.restore(path) == 1
    for saved, got in zip(jax.tree.leaves(saver.state), jax.tree.leaves(loader.state)):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(got))
    table = loader.state.params["embeddings"][...]
    assert table.sharding.is_equivalent_to(sharding.table_sharding(other, "column"), 2)
    assert table.addressable_shards[0].data.shape == (V, D // 4)
    assert loader.model.embeddings[...].sharding.is_equivalent_to(table.sharding, 2)
    loader.train_step(batch_for(other))  # and training continues on the new mesh
    # onto one device: a trainer whose table is not placed at all
    single = train.Trainer(jaxembed.Embedding(V, D, rngs=7), optax.adam(0.05), lambda m, b: jnp.mean(m(b)))
    assert single.restore(path) == 1
    np.testing.assert_array_equal(
        single.state.params["embeddings"][...], saver.state.params["embeddings"][...]
    )
    assert len(single.state.params["embeddings"][...].sharding.device_set) == 1
    with pytest.raises(FileExistsError, match="overwrite=True"):
        checkpoint.save_checkpoint(path, saver.state, overwrite=False)
    saver.save(path)  # overwrite (the default) swaps the new folder in


def test_row_sparse_trainer_state_restores_onto_another_mesh_and_placement(tmp_path):
    def row_sparse_on(mesh, placement, seed):
        model = jaxembed.Embedding(
            V, D, rngs=seed, embeddings_sharding=sharding.table_sharding(mesh, placement)
        )
        return train.Trainer(
            model, train.row_sparse(optax.adam(0.05)), lambda m, b: jnp.mean((m(b) - 0.5) ** 2)
        )

    saver = row_sparse_on(mesh_of("2x4"), "row", seed=1)
    for seed in range(2):
        saver.train_step(batch_for(mesh_of("2x4"), seed=seed))
    path = saver.save(tmp_path / "ckpt")
    loader = row_sparse_on(mesh_of("1x8"), "column", seed=2)
    assert loader.restore(path) == 2
    for saved, got in zip(jax.tree.leaves(saver.state), jax.tree.leaves(loader.state)):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(got))
    moments = [leaf for leaf in jax.tree.leaves(loader.state.opt_state) if np.shape(leaf) == (V, D)]
    assert moments and all(
        m.sharding.is_equivalent_to(sharding.table_sharding(mesh_of("1x8"), "column"), 2) for m in moments
    )
    a = saver.train_step(batch_for(mesh_of("2x4"), seed=5))["loss"]
    b = loader.train_step(batch_for(mesh_of("1x8"), seed=5))["loss"]
    np.testing.assert_allclose(float(a), float(b), rtol=1e-6)


def test_sharded_checkpoint_shape_mismatch_is_a_clear_error(tmp_path):
    from jaxembed import checkpoint

    mesh = mesh_of("1x8")
    path = checkpoint.save_checkpoint(tmp_path / "ckpt", {"table": jnp.zeros((V, D)), "step": jnp.int32(1)})
    wrong = {
        "table": jax.ShapeDtypeStruct((2 * V, D), jnp.float32, sharding=sharding.table_sharding(mesh, "row"))
    }
    with pytest.raises(checkpoint.CheckpointError, match="does not match the model") as error:
        checkpoint.restore_checkpoint(path, like=wrong)
    message = str(error.value)
    assert "in the checkpoint but not in the model: step" in message
    assert "table: checkpoint has shape (64, 16) float32, model expects shape (128, 16) float32" in message
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        checkpoint.restore_checkpoint(tmp_path / "nothing", like=wrong)


@pytest.mark.parametrize("placement", sharding.PLACEMENTS)
def test_row_sparse_trainer_on_placed_tables_equals_one_device(placement):
    """Trainer(model, row_sparse(adam), loss) on a placed table, batch split over "data"."""
    mesh = mesh_of("2x4")

    def loss_fn(model, batch):
        return jnp.mean((model(batch) - 0.5) ** 2)

    placed = jaxembed.Embedding(BIG, D, rngs=0, embeddings_sharding=sharding.table_sharding(mesh, placement))
    sharded_trainer = train.Trainer(placed, train.row_sparse(optax.adam(0.05)), loss_fn)
    plain_trainer = train.Trainer(
        jaxembed.Embedding(BIG, D, rngs=0), train.row_sparse(optax.adam(0.05)), loss_fn
    )
    for seed in range(3):
        batch = batch_for(mesh, seed) * (BIG // V)
        sharded_trainer.train_step(batch)
        plain_trainer.train_step(np.asarray(batch))
    got = sharded_trainer.state.params["embeddings"][...]
    np.testing.assert_allclose(got, plain_trainer.state.params["embeddings"][...], rtol=1e-6, atol=1e-7)
    assert got.sharding.is_equivalent_to(sharding.table_sharding(mesh, placement), 2)
    found = jaxembed.inspect.collectives(
        sharded_trainer._train_step.lower(sharded_trainer.state, batch).compile()
    )
    assert found and all(c.bytes <= 4 * 24 * D * 4 for c in found), found  # 24 ids: never a table shard


@pytest.mark.parametrize("placement", sharding.PLACEMENTS)
def test_embedding_bags_on_placed_tables_equal_one_device(placement):
    mesh = mesh_of("2x4")
    placed = jaxembed.EmbeddingBag(
        V,
        D,
        combiner="sqrtn",
        mask_zero=True,
        rngs=1,
        embeddings_sharding=sharding.table_sharding(mesh, placement),
    )
    plain = jaxembed.EmbeddingBag(V, D, combiner="sqrtn", mask_zero=True, rngs=1)
    ids = batch_for(mesh, seed=7)
    weights = jnp.linspace(0.5, 2.0, ids.size).reshape(ids.shape)
    out = jax.jit(lambda m, i, w: m(i, weights=w))(placed, ids, weights)
    np.testing.assert_allclose(out, plain(np.asarray(ids), weights=weights), rtol=1e-6, atol=1e-7)

    def loss(table, i):
        return jnp.sum(ops.embedding_bag(table, i, combiner="sum", weights=weights) ** 2)

    table = placed.embeddings[...]
    step = jax.jit(jax.grad(loss), out_shardings=table.sharding)
    np.testing.assert_allclose(
        step(table, ids), jax.grad(loss)(plain.embeddings[...], np.asarray(ids)), rtol=1e-5, atol=1e-6
    )
    assert_no_table_all_gather(step.lower(table, ids).compile())
