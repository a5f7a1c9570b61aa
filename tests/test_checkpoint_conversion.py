"""Old single-file checkpoints (written by the old code: tests/data/old_checkpoints) and the old names."""

import importlib.util
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxembed import checkpoint
from jaxembed.checkpoint import (
    CheckpointError,
    convert_checkpoint,
    read_checkpoint_metadata,
    restore_checkpoint,
)

DATA = Path(__file__).parent / "data" / "old_checkpoints"
TAGS = ["0.1.0", "ff85781"]  # release 0.1.0 and the last commit that wrote single files
_spec = importlib.util.spec_from_file_location("make_old_checkpoints", DATA / "make_old_checkpoints.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)
OLD = r"single-file checkpoint of jaxembed 0\.1 .*convert_checkpoint\(old_file, new_folder, like=\.\.\.\)"


def expected(tag, name):
    with np.load(DATA / f"{tag}-expected.npz") as stored:
        return {key.split(":", 1)[1]: stored[key] for key in stored.files if key.startswith(f"{name}:")}


def as_numpy(tree):
    def raw(x):
        is_key = isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
        return np.asarray(jax.random.key_data(x) if is_key else x)

    return {jax.tree_util.keystr(path): raw(x) for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def assert_same(tree, reference, skip=None):
    got = as_numpy(tree)
    keys = [k for k in reference if skip is None or not k.startswith(skip)]
    assert sorted(k for k in got if skip is None or not k.startswith(skip)) == sorted(keys)
    for key in keys:  # bit for bit (NumPy's npz keeps bfloat16 as raw 2-byte values)
        assert got[key].shape == reference[key].shape, key
        assert got[key].tobytes() == reference[key].tobytes(), key
        if reference[key].dtype.kind != "V":
            assert got[key].dtype == reference[key].dtype, key


@pytest.mark.parametrize("tag", TAGS)
def test_an_old_dense_trainer_file_loads_with_a_warning_and_converts(tag, tmp_path):
    old = DATA / f"{tag}-dense.jxe"
    trainer = fixtures.trainer(row_sparse=False, seed=3)
    with pytest.warns(DeprecationWarning, match=OLD):
        assert trainer.restore(old) == 4
    assert_same(trainer.state, expected(tag, "dense"))
    with pytest.warns(DeprecationWarning, match=OLD):
        assert read_checkpoint_metadata(old) == {"step": 4}
    before = old.read_bytes()
    new = convert_checkpoint(old, tmp_path / "new", like=fixtures.trainer(row_sparse=False).state)
    assert old.read_bytes() == before  # the old file is left as it was
    fresh = fixtures.trainer(row_sparse=False, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new folder reads without any warning
        assert fresh.restore(new) == 4 and read_checkpoint_metadata(new) == {"step": 4}
    assert_same(fresh.state, expected(tag, "dense"))
    _, _, batches, _ = fixtures.build()
    assert float(fresh.train_step(batches[0])["loss"]) == float(trainer.train_step(batches[0])["loss"])
    with pytest.raises(FileExistsError, match="overwrite=True"):
        convert_checkpoint(old, new, like=fresh.state)
    copy = tmp_path / "model.jxe"
    copy.write_bytes(before)
    with pytest.raises(FileExistsError, match=r"model.jxe' is a file; a checkpoint is a folder"):
        fresh.save(copy)  # an old script saving over its old file: refused, the file kept
    assert copy.read_bytes() == before


@pytest.mark.parametrize("tag", TAGS)
def test_an_old_generic_tree_converts_keys_dtypes_and_metadata(tag, tmp_path):
    old = DATA / f"{tag}-tree.jxe"
    like = fixtures.tree()
    with pytest.warns(DeprecationWarning, match=OLD):
        assert_same(restore_checkpoint(old, like=like), expected(tag, "tree"))
    new = convert_checkpoint(old, tmp_path / "tree", like=like)
    restored = restore_checkpoint(new, like=like)
    assert_same(restored, expected(tag, "tree"))
    assert jax.random.key_impl(restored["key"]) == jax.random.key_impl(like["key"])
    assert isinstance(restored["ints"], np.ndarray) and restored["bf16"].dtype == jnp.bfloat16
    assert read_checkpoint_metadata(new) == {"note": f"written by {tag}"}


def test_a_row_sparse_trainer_file_of_0_1_0_fails_clearly_and_converts_with_a_fresh_optimizer(tmp_path):
    old = DATA / "0.1.0-row-sparse.jxe"
    trainer = fixtures.trainer(row_sparse=True)
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(
            CheckpointError,
            match=r"saved by jaxembed 0\.1\.0's row-sparse trainer: its optimizer state is "
            r"RowSparseOptState\(dense=\.\.\., tables=\.\.\.\).*optimizer_state='reset'",
        ),
    ):
        trainer.restore(old)
    with pytest.raises(CheckpointError, match="0.1.0's row-sparse trainer"):
        convert_checkpoint(old, tmp_path / "kept", like=trainer.state)
    new = convert_checkpoint(old, tmp_path / "new", like=trainer.state, optimizer_state="reset")
    fresh = fixtures.trainer(row_sparse=True, seed=9)
    assert fresh.restore(new) == 4
    assert_same(fresh.state, expected("0.1.0", "row-sparse"), skip=".opt_state")
    assert_same(fresh.state.opt_state, as_numpy(fixtures.trainer(row_sparse=True).state.opt_state))
    _, _, batches, _ = fixtures.build()
    assert np.isfinite(float(fresh.train_step(batches[0])["loss"]))
    with pytest.raises(ValueError, match=r"`optimizer_state='reset'` needs `like` to be a train state"):
        convert_checkpoint(old, tmp_path / "x", like={"w": jnp.zeros(1)}, optimizer_state="reset")
    with pytest.raises(ValueError, match=r"`optimizer_state` must be one of \('keep', 'reset'\)"):
        convert_checkpoint(old, tmp_path / "x", like=trainer.state, optimizer_state="drop")


def test_a_row_sparse_trainer_file_of_ff85781_loads_as_it_is(tmp_path):
    trainer = fixtures.trainer(row_sparse=True)
    with pytest.warns(DeprecationWarning, match=OLD):
        assert trainer.restore(DATA / "ff85781-row-sparse.jxe") == 4
    assert_same(trainer.state, expected("ff85781", "row-sparse"))


def test_a_damaged_old_file_is_refused_before_any_warning(tmp_path):
    raw = bytearray((DATA / "ff85781-dense.jxe").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (tmp_path / "flipped.jxe").write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            CheckpointError, match=r"flipped.jxe' is corrupted: the SHA-256 .* header records"
        ):
            restore_checkpoint(tmp_path / "flipped.jxe", like=fixtures.trainer(row_sparse=False).state)
        with pytest.raises(FileNotFoundError, match="No checkpoint at"):
            convert_checkpoint(tmp_path / "absent.jxe", tmp_path / "new", like={})


def test_the_old_orbax_names_warn_and_name_the_new_ones(tmp_path):
    with pytest.warns(
        DeprecationWarning,
        match=r"save_sharded_checkpoint is deprecated: use jaxembed\.checkpoint\.save_checkpoint",
    ):
        save = checkpoint.save_sharded_checkpoint
    with pytest.warns(
        DeprecationWarning, match=r"restore_sharded_checkpoint is deprecated: use .*restore_checkpoint"
    ):
        from jaxembed.checkpoint import restore_sharded_checkpoint
    path = save(tmp_path / "c", {"t": jnp.ones(2)})
    with pytest.raises(FileExistsError, match="overwrite=True"):  # the old default: refuse
        save(path, {"t": jnp.ones(2)})
    assert restore_sharded_checkpoint(path, like={"t": jnp.zeros(2)})["t"].tolist() == [1.0, 1.0]
    with pytest.raises(AttributeError, match="has no attribute 'save_msgpack'"):
        checkpoint.save_msgpack  # noqa: B018
