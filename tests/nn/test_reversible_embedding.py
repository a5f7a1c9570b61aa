"""ReversibleEmbedding beyond Keras's suite: attend, row-sparse training of a tied table, Linen."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxembed
from jaxembed.train import Trainer, row_sparse, row_sparse_tables

VOCAB, DIM = 40, 6


class TinyLM(nnx.Module):
    """Embed, a dense layer, project back to the vocabulary with the same (or an untied) table."""

    def __init__(self, tie_weights: bool):
        self.embed = jaxembed.ReversibleEmbedding(VOCAB, DIM, tie_weights=tie_weights, rngs=0)
        self.hidden = nnx.Linear(DIM, DIM, rngs=nnx.Rngs(1))

    def __call__(self, ids):
        return self.embed(jnp.tanh(self.hidden(self.embed(ids))), reverse=True)


def lm_loss(model, batch):
    logits = model(batch["ids"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["next"]).mean()


def _batches(num, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {"ids": rng.integers(0, VOCAB, (4, 5)), "next": rng.integers(0, VOCAB, (4, 5))} for _ in range(num)
    ]


@pytest.mark.parametrize("tie_weights", [True, False])
def test_row_sparse_training_of_a_reversible_embedding_equals_the_dense_reference(tie_weights):
    """A tied table gets the lookup's row gradient and the projection's dense gradient: it is left
    to the dense update; an untied one trains row-sparsely (its reverse kernel densely)."""
    assert sorted(row_sparse_tables(TinyLM(tie_weights))) == ([] if tie_weights else ["embed/embeddings"])
    with jax.default_matmul_precision("highest"):
        sparse = Trainer(TinyLM(tie_weights), row_sparse(optax.sgd(0.3)), lm_loss)
        dense = Trainer(TinyLM(tie_weights), optax.sgd(0.3), lm_loss)
        for batch in _batches(3):
            np.testing.assert_allclose(
                float(sparse.train_step(batch)["loss"]), float(dense.train_step(batch)["loss"]), rtol=1e-5
            )
    for a, b in zip(jax.tree.leaves(sparse.state.params), jax.tree.leaves(dense.state.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # the tied table moved in rows no lookup touched (the projection's gradient reached it)
    start = np.asarray(TinyLM(tie_weights).embed.embeddings[...])
    moved = np.any(np.asarray(dense.state.params["embed"]["embeddings"][...]) != start, axis=1)
    touched = np.zeros(VOCAB, bool)
    touched[np.unique(np.concatenate([b["ids"].ravel() for b in _batches(3)]))] = True
    assert np.any(moved & ~touched) == tie_weights


def test_attend_in_a_row_sparse_step_is_refused():
    class Tied(nnx.Module):
        def __init__(self):
            self.embed = jaxembed.Embedding(VOCAB, DIM, rngs=0)

        def __call__(self, ids):
            return self.embed.attend(self.embed(ids))

    trainer = Trainer(Tied(), row_sparse(optax.sgd(0.1)), lm_loss)
    with pytest.raises(ValueError, match=r"projects onto its whole table .* row-sparse train step"):
        trainer.train_step(_batches(1)[0])


def test_attend_matches_flax_embed_attend():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(VOCAB, DIM)).astype(np.float32)
    ours = jaxembed.Embedding(VOCAB, DIM, weights=table)
    flax_embed = nnx.Embed(VOCAB, DIM, rngs=nnx.Rngs(0))
    flax_embed.embedding[...] = jnp.asarray(table)
    query = rng.normal(size=(3, 2, DIM)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(ours.attend(query)), np.asarray(flax_embed.attend(query)), rtol=1e-6
    )
    lora = jaxembed.Embedding(VOCAB, DIM, weights=table, rngs=0)
    lora.enable_lora(2)
    lora.lora_embeddings_b[...] = jnp.asarray(rng.normal(size=(2, DIM)), jnp.float32)
    with jax.default_matmul_precision("highest"):
        expected = query @ np.asarray(lora.effective_table()).T
        np.testing.assert_allclose(np.asarray(lora.attend(query)), expected, rtol=1e-5, atol=1e-5)


def test_sparse_bcoo_ids_are_looked_up_like_keras():
    from jax.experimental import sparse

    keras = pytest.importorskip("keras", reason="the differential tests need keras (KERAS_BACKEND=jax)")
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    x = sparse.BCOO((jnp.array([2, 1]), jnp.array([[0, 0], [1, 2]])), shape=(2, 3))
    ours = jaxembed.Embedding(4, 3, weights=table, mask_zero=True)
    theirs = keras.layers.Embedding(4, 3, weights=[table])
    np.testing.assert_array_equal(np.asarray(ours(x)), np.asarray(theirs(x)))
    np.testing.assert_array_equal(np.asarray(ours.compute_mask(x)), np.asarray(x.todense()) != 0)


def test_reversible_embedding_argument_errors():
    with pytest.raises(ValueError, match=r"`tie_weights` must be a bool. Received: tie_weights=1"):
        jaxembed.ReversibleEmbedding(4, 2, tie_weights=1)
    with pytest.raises(ValueError, match=r"`logit_soft_cap` must be None or a positive number.*=-1"):
        jaxembed.ReversibleEmbedding(4, 2, logit_soft_cap=-1)
    with pytest.raises(ValueError, match=r"`reverse_dtype` must be a floating-point dtype"):
        jaxembed.ReversibleEmbedding(4, 2, reverse_dtype="int32")
    with pytest.raises(ValueError, match=r"expects vectors of size output_dim=2 .* shape \(3, 5\)"):
        jaxembed.ReversibleEmbedding(4, 2, rngs=0)(jnp.ones((3, 5)), reverse=True)


@pytest.mark.parametrize("tie_weights", [True, False])
def test_linen_reversible_embedding_equals_nnx(tie_weights):
    nnx_layer = jaxembed.ReversibleEmbedding(VOCAB, DIM, tie_weights=tie_weights, logit_soft_cap=3.0, rngs=0)
    linen_layer = jaxembed.linen.ReversibleEmbedding(VOCAB, DIM, tie_weights=tie_weights, logit_soft_cap=3.0)
    x = np.random.default_rng(0).normal(size=(2, 3, DIM)).astype(np.float32)
    variables = linen_layer.init(jax.random.key(0), x, reverse=True)
    params = {"embeddings": nnx_layer.embeddings[...]}
    if not tie_weights:
        params["reverse_embeddings"] = nnx_layer.reverse_embeddings[...]
    assert jax.tree.map(jnp.shape, variables["params"]) == jax.tree.map(jnp.shape, params)
    ids = np.array([[0, 5, 39]])
    np.testing.assert_array_equal(
        np.asarray(linen_layer.apply({"params": params}, ids)), np.asarray(nnx_layer(ids))
    )
    np.testing.assert_allclose(
        np.asarray(linen_layer.apply({"params": params}, x, reverse=True)),
        np.asarray(nnx_layer(x, reverse=True)),
        rtol=1e-6,
    )
    assert linen_layer.get_config() == nnx_layer.get_config()
    rebuilt = jaxembed.linen.ReversibleEmbedding.from_config(nnx_layer.get_config())
    assert rebuilt.tie_weights == tie_weights and rebuilt.logit_soft_cap == 3.0
