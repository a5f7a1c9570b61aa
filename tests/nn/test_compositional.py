"""Compositional embeddings: quotient-remainder and hashed tables, trained row-sparsely."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxembed.nn import HashedEmbedding, QREmbedding, hash_ids
from jaxembed.train import RowSparseOptState, Trainer, row_sparse, row_sparse_tables


@pytest.mark.parametrize("combiner", ["mul", "add", "concat"])
def test_qr_embedding_combines_the_quotient_and_remainder_rows(combiner):
    layer = QREmbedding(1000, 6, num_buckets=32, combiner=combiner, embeddings_initializer="normal", rngs=0)
    ids = np.array([[0, 31, 32, 999], [500, 7, 33, 64]])
    q = np.asarray(layer.quotient.embeddings[...])[ids // 32]
    r = np.asarray(layer.remainder.embeddings[...])[ids % 32]
    want = {"mul": q * r, "add": q + r, "concat": np.concatenate([q, r], -1)}[combiner]
    out = layer(jnp.asarray(ids))
    assert out.shape == (2, 4, 6)
    np.testing.assert_allclose(out, want, rtol=1e-6)


def test_qr_embedding_gives_every_id_its_own_pair_of_rows():
    layer = QREmbedding(10_000, 4, rngs=0)
    assert (layer.quotient.input_dim, layer.remainder.input_dim) == (100, 100)
    ids = np.arange(10_000)
    pairs = set(zip((ids // 100).tolist(), (ids % 100).tolist()))
    assert len(pairs) == 10_000
    vectors = np.asarray(layer(jnp.asarray(ids)))
    assert len(np.unique(vectors.round(7), axis=0)) == 10_000  # distinct vectors for distinct ids


def test_qr_embedding_checks_ids_and_arguments():
    layer = QREmbedding(100, 4, rngs=0)
    with pytest.raises(
        ValueError, match=r"ids must lie in \[0, input_dim=100\). Received out-of-range ids \[100\]"
    ):
        layer(jnp.array([3, 100]))
    with pytest.raises(
        ValueError, match=r"`num_buckets` must be a positive integer. Received: num_buckets=0"
    ):
        QREmbedding(100, 4, num_buckets=0)
    with pytest.raises(ValueError, match=r"`input_dim` must be a positive integer. Received: input_dim=3.5"):
        QREmbedding(3.5, 4)
    with pytest.raises(
        ValueError, match=r"`combiner` must be one of \('mul', 'add', 'concat'\). Received: combiner='max'"
    ):
        QREmbedding(100, 4, combiner="max")
    traced = jax.jit(lambda ids: layer(ids))(jnp.array([5, 100, -1]))
    assert np.isnan(np.asarray(traced[1:])).all() and np.isfinite(np.asarray(traced[0])).all()


def test_hash_ids_fills_the_bins_evenly_and_the_salt_changes_them():
    ids = jnp.arange(100_000)
    bins = np.asarray(hash_ids(ids, 100))
    assert bins.min() == 0 and bins.max() == 99
    counts = np.bincount(bins, minlength=100)
    assert counts.min() > 850 and counts.max() < 1150  # 1000 +- ~5 standard deviations
    other = np.asarray(hash_ids(ids, 100, salt=1))
    assert np.mean(bins == other) < 0.02


def test_hashed_embedding_with_mask_zero_keeps_row_zero_for_padding():
    layer = HashedEmbedding(50, 3, mask_zero=True, embeddings_initializer="normal", rngs=0)
    ids = jnp.array([[0, 10**6, 2**31 - 1, 7]])
    bins = np.asarray(layer.bins(ids))
    assert bins[0, 0] == 0 and (bins[0, 1:] >= 1).all() and (bins[0, 1:] < 50).all()
    np.testing.assert_array_equal(layer(ids), np.asarray(layer.table.embeddings[...])[bins])
    np.testing.assert_array_equal(layer.compute_mask(ids), [[False, True, True, True]])
    with pytest.raises(ValueError, match=r"`num_bins` must be a positive integer. Received: num_bins=True"):
        HashedEmbedding(True, 3)
    with pytest.raises(ValueError, match=r"`salt` must be an integer. Received: salt='a'"):
        HashedEmbedding(10, 3, salt="a")


class Recommender(nnx.Module):
    """Users through a hashed table, items through a quotient-remainder table, a dot product."""

    def __init__(self):
        self.users = HashedEmbedding(64, 8, embeddings_initializer="normal", rngs=0)
        self.items = QREmbedding(
            5000, 8, num_buckets=50, combiner="add", embeddings_initializer="normal", rngs=1
        )

    def __call__(self, batch):
        return jnp.sum(self.users(batch["user"]) * self.items(batch["item"]), axis=-1)


def recommender_loss(model, batch):
    return jnp.mean((model(batch) - batch["y"]) ** 2)


def test_compositional_tables_train_row_sparsely_like_dense_sgd():
    rng = np.random.default_rng(0)
    data = [
        {
            "user": rng.integers(0, 10**6, size=32).astype(np.int32),
            "item": rng.integers(0, 5000, size=32).astype(np.int32),
            "y": rng.normal(size=32).astype(np.float32),
        }
        for _ in range(4)
    ]
    sparse_trainer = Trainer(Recommender(), row_sparse(optax.sgd(0.5)), recommender_loss)
    dense_trainer = Trainer(Recommender(), optax.sgd(0.5), recommender_loss)
    assert isinstance(sparse_trainer.state.opt_state, RowSparseOptState)
    assert sorted(row_sparse_tables(sparse_trainer.model)) == [
        "items/quotient/embeddings",
        "items/remainder/embeddings",
        "users/table/embeddings",
    ]
    for batch in data:
        np.testing.assert_allclose(
            sparse_trainer.train_step(batch)["loss"], dense_trainer.train_step(batch)["loss"], rtol=1e-5
        )
    for a, b in zip(
        jax.tree.leaves(sparse_trainer.state.params), jax.tree.leaves(dense_trainer.state.params)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
