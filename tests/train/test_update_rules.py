"""The update rule as one value: dense(tx) / a plain optax tx / row_sparse(tx)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxembed
from jaxembed.sparse import rowwise_adagrad
from jaxembed.train import (
    Dense,
    RowSparse,
    RowSparseOptState,
    Trainer,
    dense,
    init_train_state,
    make_train_step,
    row_sparse,
)

V, D = 5000, 8


class Model(nnx.Module):
    def __init__(self):
        self.embed = jaxembed.Embedding(V, D, embeddings_initializer="normal", rngs=0)
        self.head = nnx.Linear(D, 1, rngs=nnx.Rngs(0))

    def __call__(self, ids):
        return self.head(self.embed(ids).mean(axis=1))[:, 0]


def loss_fn(model, batch):
    return jnp.mean((model(batch["ids"]) - batch["y"]) ** 2)


def batch(seed=0, rows=64):
    rng = np.random.default_rng(seed)
    return {"ids": rng.integers(0, rows, (16, 6)), "y": 10 * rng.normal(size=16).astype(np.float32)}


def assert_same_params(a: Trainer, b: Trainer, **tolerances):
    for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerances)


@pytest.mark.parametrize("dense_fraction", [0.0, None], ids=["masked", "gathered"])
def test_clipped_adam_row_sparse_equals_the_dense_reference_after_one_step(dense_fraction):
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
    reference = Trainer(Model(), tx, loss_fn)
    sparse = Trainer(Model(), row_sparse(tx, dense_fraction=dense_fraction), loss_fn)
    with jax.default_matmul_precision("highest"):
        reference.train_step(batch()), sparse.train_step(batch())
    # The clip is active (the gradient norm is above 1); Adam's first step hides the scale, the
    # SGD test below shows it.
    grads = jax.grad(lambda m: loss_fn(m, batch()))(Model())
    assert float(optax.tree.norm(grads)) > 1.5
    assert_same_params(sparse, reference, rtol=1e-5, atol=1e-6)


def test_the_clip_uses_the_global_norm_so_the_large_gradient_is_not_chunked(monkeypatch):
    import jaxembed.sparse._lazy as lazy_module

    monkeypatch.setattr(lazy_module, "_CHUNK_ROWS", 16)  # 64 touched rows: chunks if allowed
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.5))
    rule = row_sparse(tx, dense_fraction=None)
    assert rule.chunked is False
    reference, sparse = Trainer(Model(), tx, loss_fn), Trainer(Model(), rule, loss_fn)
    unclipped = Trainer(Model(), optax.sgd(0.5), loss_fn)
    with jax.default_matmul_precision("highest"):
        reference.train_step(batch()), sparse.train_step(batch()), unclipped.train_step(batch())
    assert_same_params(sparse, reference, rtol=1e-5, atol=1e-6)
    with pytest.raises(AssertionError):  # the clip changed the step
        assert_same_params(sparse, unclipped, rtol=1e-3, atol=1e-4)


def test_chunked_adam_equals_whole_adam(monkeypatch):
    import jaxembed.sparse._lazy as lazy_module

    whole = Trainer(Model(), row_sparse(optax.adam(0.1), dense_fraction=None), loss_fn)
    whole.train_step(batch())
    monkeypatch.setattr(lazy_module, "_CHUNK_ROWS", 16)
    chunked = Trainer(Model(), row_sparse(optax.adam(0.1), dense_fraction=None), loss_fn)
    chunked.train_step(batch())
    assert_same_params(chunked, whole, rtol=1e-6, atol=1e-7)  # fusion may differ by an ulp


def test_rowwise_adagrad_keeps_one_accumulator_per_row_and_updates_the_touched_ones():
    trainer = Trainer(Model(), row_sparse(rowwise_adagrad(0.1), dense_fraction=None), loss_fn)
    reference = Trainer(Model(), rowwise_adagrad(0.1), loss_fn)
    b = batch(rows=40)
    with jax.default_matmul_precision("highest"):
        trainer.train_step(b), reference.train_step(b)
    accumulators = [x for x in jax.tree.leaves(trainer.state.opt_state.inner) if jnp.shape(x) == (V,)]
    assert len(accumulators) == 1
    touched = np.zeros(V, bool)
    touched[np.unique(b["ids"])] = True
    assert (np.asarray(accumulators[0])[~touched] == np.asarray(accumulators[0])[-1]).all()
    assert (np.asarray(accumulators[0])[touched] != np.asarray(accumulators[0])[-1]).all()
    assert_same_params(trainer, reference, rtol=1e-5, atol=1e-6)  # one step: lazy == dense


def test_a_plain_transformation_means_dense_and_nothing_is_passed_twice():
    model = Model()
    tx = optax.sgd(0.1)
    assert isinstance(dense(tx), Dense) and isinstance(row_sparse(tx), RowSparse)
    for rule in (tx, dense(tx)):
        graphdef, state = init_train_state(model, rule)
        assert not isinstance(state.opt_state, RowSparseOptState)
        make_train_step(graphdef, rule, loss_fn)(state, batch())
    rule = row_sparse(tx)
    graphdef, state = init_train_state(model, rule)
    assert isinstance(state.opt_state, RowSparseOptState)
    new_state, metrics = jax.jit(make_train_step(graphdef, rule, loss_fn))(state, batch())
    assert int(new_state.step) == 1


def test_the_row_sparse_flag_still_works_with_a_deprecation_warning():
    with pytest.warns(
        DeprecationWarning, match=r"row_sparse=True\) is deprecated.*jaxembed.train.row_sparse"
    ):
        old = Trainer(Model(), optax.sgd(0.1), loss_fn, row_sparse=True)
    new = Trainer(Model(), row_sparse(optax.sgd(0.1)), loss_fn)
    assert isinstance(old.rule, RowSparse)
    old.train_step(batch()), new.train_step(batch())
    assert_same_params(old, new, rtol=0, atol=0)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        graphdef, state = init_train_state(Model(), optax.sgd(0.1), row_sparse=True)
    assert isinstance(state.opt_state, RowSparseOptState)


def test_mismatched_states_and_arguments_give_clear_errors():
    graphdef, dense_state = init_train_state(Model(), optax.sgd(0.1))
    step = make_train_step(graphdef, row_sparse(optax.sgd(0.1)), loss_fn)
    with pytest.raises(TypeError, match=r"needs the state of init_train_state\(model, row_sparse\(tx\)\)"):
        step(dense_state, batch())
    with pytest.raises(TypeError, match="applies to the dense rule only"):
        make_train_step(graphdef, row_sparse(optax.sgd(0.1)), loss_fn, update=lambda *a: a)
    with pytest.raises(
        TypeError, match=r"`optimizer` must be an optax.GradientTransformation.*Received: str"
    ):
        Trainer(Model(), "adam", loss_fn)
    with pytest.raises(TypeError, match=r"row_sparse\(\) takes an optax.GradientTransformation"):
        row_sparse("adam")
    with pytest.raises(ValueError, match="update the touched rows alone"):
        row_sparse(optax.lamb(0.1))
