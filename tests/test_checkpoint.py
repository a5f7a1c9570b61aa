"""jaxembed.checkpoint and Trainer.save/restore: orbax folders, bit-identical, atomic, clear errors."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxembed
from jaxembed.checkpoint import (
    CheckpointError,
    read_checkpoint_metadata,
    restore_checkpoint,
    save_checkpoint,
)
from jaxembed.train import ModelCheckpoint, Trainer, fit


class Tagger(nnx.Module):
    def __init__(self, vocab=10, dim=4, seed=0):
        self.embed = jaxembed.Embedding(vocab, dim, rngs=seed)
        self.frozen = jaxembed.Embedding(vocab, 2, trainable=False, rngs=seed + 1)
        self.head = nnx.Linear(dim + 2, 3, rngs=nnx.Rngs(seed))
        self.drop = nnx.Dropout(0.1, rngs=nnx.Rngs(seed))

    def __call__(self, ids):
        return self.head(self.drop(jnp.concatenate([self.embed(ids), self.frozen(ids)], axis=-1)))


def loss_fn(model, batch):
    return optax.softmax_cross_entropy_with_integer_labels(model(batch["ids"]), batch["y"]).mean()


BATCHES = [{"ids": np.array([i, (i + 3) % 10, (i + 5) % 10]), "y": np.array([i % 3, 1, 2])} for i in range(6)]


def trained(seed=0, steps=4):
    trainer = Trainer(Tagger(seed=seed), optax.adam(0.05), loss_fn)
    for batch in BATCHES[:steps]:
        trainer.train_step(batch)
    return trainer


def raw(x):
    is_key = isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
    array = np.asarray(jax.random.key_data(x) if is_key else x)
    return array.dtype.name, array.shape, array.tobytes()


def leaves_bytes(tree):
    return [(jax.tree_util.keystr(path), raw(x)) for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]]


def folder_bytes(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_round_trip_is_bit_identical_and_training_continues_identically(tmp_path):
    source = trained()
    path = source.save(tmp_path / "model")
    assert path.is_dir() and (path / "jaxembed_manifest.json").is_file()  # an orbax folder
    target = Trainer(Tagger(seed=7), optax.adam(0.05), loss_fn)  # different initial values
    assert target.restore(path) == 4
    assert leaves_bytes(target.state) == leaves_bytes(source.state)
    np.testing.assert_array_equal(
        target.model.embed.embeddings[...], source.state.params["embed"]["embeddings"][...]
    )
    continued = [
        (float(source.train_step(b)["loss"]), float(target.train_step(b)["loss"])) for b in BATCHES[4:]
    ]
    assert all(a == b for a, b in continued)
    assert leaves_bytes(target.state) == leaves_bytes(source.state)


def test_generic_pytrees_round_trip_with_keys_bfloat16_and_scalars(tmp_path):
    tree = {
        "bf16": jnp.arange(5, dtype=jnp.bfloat16) / 3,
        "key": jax.random.key(3),
        "ints": np.arange(4, dtype=np.int8),
        "scalar": 2.5,
        "nested": (jnp.zeros((0, 3)), [jnp.float32(np.pi)]),
    }
    path = save_checkpoint(tmp_path / "tree", tree)
    restored = restore_checkpoint(path, like=tree)
    assert leaves_bytes(restored) == leaves_bytes(tree)
    assert restored["bf16"].dtype == jnp.bfloat16 and isinstance(restored["ints"], np.ndarray)
    assert float(restored["scalar"]) == 2.5
    assert jax.random.key_impl(restored["key"]) == jax.random.key_impl(tree["key"])


def test_a_crash_mid_save_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    trainer = trained(steps=2)
    path = trainer.save(tmp_path / "model")
    good = folder_bytes(path)
    trainer.train_step(BATCHES[2])

    def crash(descriptor):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", crash)  # fails once the new folder is written, before the swap
    with pytest.raises(OSError, match="simulated"):
        trainer.save(path)
    monkeypatch.undo()
    assert folder_bytes(path) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left behind
    fresh = Trainer(Tagger(), optax.adam(0.05), loss_fn)
    assert fresh.restore(path) == 2


def test_save_refuses_to_overwrite_when_asked_and_checks_metadata(tmp_path):
    path = save_checkpoint(tmp_path / "c", {"w": jnp.ones(2)}, metadata={"step": 1})
    with pytest.raises(FileExistsError, match=r"already exists at .*c'; pass overwrite=True"):
        save_checkpoint(path, {"w": jnp.zeros(2)}, overwrite=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        trained(steps=1).save(path, overwrite=False)
    assert restore_checkpoint(path, like={"w": jnp.zeros(2)})["w"].tolist() == [1.0, 1.0]
    for bad in ({"a": object()}, {1: "int key"}, {"a": (1, 2)}, ["step"]):
        with pytest.raises(ValueError, match=r"`metadata` must be a dict"):
            save_checkpoint(tmp_path / "d", {"w": jnp.ones(2)}, metadata=bad)
    assert not (tmp_path / "d").exists()
    assert read_checkpoint_metadata(path) == {"step": 1}
    save_checkpoint(path, {"w": jnp.ones(2)}, metadata={"loss": float("nan")})
    assert np.isnan(read_checkpoint_metadata(path)["loss"])


def test_wrong_shape_names_the_leaf_and_both_shapes(tmp_path):
    path = trained().save(tmp_path / "model")
    bigger = Trainer(Tagger(vocab=12), optax.adam(0.05), loss_fn)
    with pytest.raises(CheckpointError, match=r"does not match the model") as info:
        bigger.restore(path)
    message = str(info.value)
    assert "params/embed/embeddings/value: checkpoint has shape (10, 4) float32, " in message
    assert "model expects shape (12, 4) float32" in message
    assert "opt_state/0/mu/embed/embeddings/value" in message  # the optimizer state too
    assert "rest/frozen/embeddings/value: checkpoint has shape (10, 2) float32" in message


def test_different_structure_lists_missing_and_extra_leaves(tmp_path):
    path = trained().save(tmp_path / "model")
    sgd = Trainer(Tagger(), optax.sgd(0.1), loss_fn)  # no Adam moments
    with pytest.raises(CheckpointError, match=r"in the checkpoint but not in the model: .*opt_state/0/mu"):
        sgd.restore(path)
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint: w;"):
        restore_checkpoint(path, like={"w": jnp.zeros(1)})


def test_wrong_dtype_is_named(tmp_path):
    path = save_checkpoint(tmp_path / "t", {"w": jnp.zeros((2, 2), jnp.float32), "k": jax.random.key(0)})
    with pytest.raises(
        CheckpointError,
        match=r"w: checkpoint has shape \(2, 2\) float32, model expects shape \(2, 2\) bfloat16",
    ):
        restore_checkpoint(path, like={"w": jnp.zeros((2, 2), jnp.bfloat16), "k": jax.random.key(0)})
    with pytest.raises(
        CheckpointError, match=r"k: checkpoint has shape \(2,\) uint32 \(the data of key<threefry2x32>\)"
    ):
        restore_checkpoint(path, like={"w": jnp.zeros((2, 2)), "k": jnp.zeros(2, jnp.uint32)})


def test_corrupted_truncated_foreign_and_missing_checkpoints_give_clear_errors(tmp_path):
    trainer = trained()
    path = trainer.save(tmp_path / "model")
    data = max(
        (p for p in path.rglob("*") if p.is_file() and p.name != "jaxembed_manifest.json"),
        key=lambda p: p.stat().st_size,
    )  # the largest array file
    name = data.relative_to(path).as_posix()

    flipped = trainer.save(tmp_path / "flipped")
    raw = bytearray((flipped / name).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (flipped / name).write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=rf"flipped' is corrupted: {name} has another SHA-256"):
        trainer.restore(flipped)

    truncated = trainer.save(tmp_path / "truncated")
    (truncated / name).write_bytes(raw[: len(raw) - 100])
    with pytest.raises(CheckpointError, match=rf"is corrupted: {name} has \d+ bytes, the manifest records"):
        trainer.restore(truncated)

    foreign = tmp_path / "foreign.jxe"
    foreign.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(
        CheckpointError, match=r"foreign.jxe' is not a jaxembed checkpoint: checkpoints are folders"
    ):
        trainer.restore(foreign)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty' has no integrity manifest"):
        trainer.restore(tmp_path / "empty")

    with pytest.raises(FileNotFoundError, match="No checkpoint at .*absent"):
        trainer.restore(tmp_path / "absent")


def test_metadata_and_model_checkpoint_callback(tmp_path):
    trainer = Trainer(Tagger(), optax.adam(0.05), loss_fn)
    saver = ModelCheckpoint(tmp_path / "ckpt-{epoch}", monitor="loss", save_best_only=False)
    fit(trainer, BATCHES[:3], epochs=2, callbacks=[saver], progress=False)
    assert [os.path.basename(p) for p in saver.saved] == ["ckpt-1", "ckpt-2"]  # 1-based, as Keras
    assert read_checkpoint_metadata(saver.saved[0]) == {"step": 3}
    assert read_checkpoint_metadata(saver.saved[1]) == {"step": 6}


def test_model_checkpoint_save_best_only(tmp_path):
    class FakeValidation(jaxembed.train.Callback):
        def on_epoch_end(self, epoch, logs, trainer):
            logs["val_loss"] = [2.0, 1.0, 1.5, 0.5][epoch]

    trainer = Trainer(Tagger(), optax.adam(0.05), loss_fn)
    saver = ModelCheckpoint(tmp_path / "best-{epoch}", save_best_only=True)
    fit(trainer, BATCHES[:1], epochs=4, callbacks=[FakeValidation(), saver], progress=False)
    assert [os.path.basename(p) for p in saver.saved] == ["best-1", "best-2", "best-4"]


def test_streamed_checkpoint_round_trips_blocks_keys_and_dtypes(tmp_path):
    from jaxembed.checkpoint import restore_streamed_checkpoint, save_streamed_checkpoint

    rng = np.random.default_rng(0)
    tree = {
        "table": jnp.asarray(
            rng.normal(size=(1001, 16)), jnp.bfloat16
        ),  # 32 B rows: 10 blocks of 100 rows + 1
        "acc": jnp.asarray(rng.uniform(size=1001), jnp.float32),
        "key": jax.random.key(7),
        "step": jnp.int32(12),
    }
    path = save_streamed_checkpoint(tmp_path / "ckpt", tree, block_bytes=3200)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # written beside, then renamed
    back = restore_streamed_checkpoint(path, tree)
    np.testing.assert_array_equal(np.asarray(back["table"]), np.asarray(tree["table"]))
    assert back["table"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(back["acc"], tree["acc"])
    np.testing.assert_array_equal(jax.random.key_data(back["key"]), jax.random.key_data(tree["key"]))
    assert int(back["step"]) == 12
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_streamed_checkpoint(path, tree)
    save_streamed_checkpoint(path, {**tree, "step": jnp.int32(13)}, overwrite=True)
    assert int(restore_streamed_checkpoint(path, tree)["step"]) == 13
    with pytest.raises(CheckpointError, match=r"acc: checkpoint has shape \(1001,\) float32, model expects"):
        restore_streamed_checkpoint(path, {**tree, "acc": jnp.zeros((1000,), jnp.float32)})
    with pytest.raises(FileNotFoundError, match="No streamed checkpoint"):
        restore_streamed_checkpoint(tmp_path / "missing", tree)
