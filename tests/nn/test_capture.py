"""Row taps (jaxembed.nn._capture): the explicit mechanism of row-sparse training.

Weight tying (one layer called twice in one loss) gets both lookups' gradients, equal to the
dense reference; lookups under transformations the step does not see fail with a clear error.
"""

import ast
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxembed
from jaxembed.nn import _capture
from jaxembed.train import Trainer
from jaxembed.train import row_sparse as row_sparse_rule

V, D = 50, 4


class Tied(nnx.Module):
    """One table looked up twice per example (e.g. a query and a context word), plus a head."""

    def __init__(self):
        self.embed = jaxembed.Embedding(V, D, embeddings_initializer="normal", rngs=0)
        self.head = nnx.Linear(D, 1, rngs=nnx.Rngs(0))

    def __call__(self, batch):
        first = self.embed(batch["a"]).mean(axis=1)
        second = self.embed(batch["b"])  # another shape, another call
        return self.head(first * second)[:, 0]


def tied_loss(model, batch):
    return jnp.mean((model(batch) - batch["y"]) ** 2)


def tied_batches(num):
    rng = np.random.default_rng(1)
    return [
        {
            "a": rng.integers(0, 20, (8, 3)),
            "b": rng.integers(10, 30, (8,)),  # overlaps with a's ids
            "y": rng.normal(size=8).astype(np.float32),
        }
        for _ in range(num)
    ]


@pytest.mark.parametrize("dense_fraction", [0.25, None], ids=["masked", "gathered"])
@pytest.mark.parametrize("tx", [optax.sgd(0.3), optax.adam(0.05)], ids=["sgd", "adam"])
def test_weight_tying_equals_the_dense_reference(tx, dense_fraction):
    rule = row_sparse_rule(tx, dense_fraction=dense_fraction)
    dense, sparse = Trainer(Tied(), tx, tied_loss), Trainer(Tied(), rule, tied_loss)
    batch = tied_batches(1)[0]
    with jax.default_matmul_precision("highest"):
        dense_loss, sparse_loss = dense.train_step(batch)["loss"], sparse.train_step(batch)["loss"]
    np.testing.assert_allclose(float(sparse_loss), float(dense_loss), rtol=1e-6)
    for name in ("embed", "head"):
        got = jax.tree.leaves(sparse.state.params[name])
        want = jax.tree.leaves(dense.state.params[name])
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-6)
    touched = np.unique(np.concatenate([batch["a"].ravel(), batch["b"]]))
    moved = np.flatnonzero((np.asarray(sparse.state.params["embed"]["embeddings"][...]) != 0).any(axis=1))
    assert set(touched) <= set(moved)


def test_weight_tying_with_sgd_over_several_steps_follows_dense_sgd():
    dense = Trainer(Tied(), optax.sgd(0.3), tied_loss)
    sparse = Trainer(Tied(), row_sparse_rule(optax.sgd(0.3)), tied_loss)
    with jax.default_matmul_precision("highest"):
        for batch in tied_batches(4):
            dense.train_step(batch), sparse.train_step(batch)
    np.testing.assert_allclose(
        np.asarray(sparse.state.params["embed"]["embeddings"][...]),
        np.asarray(dense.state.params["embed"]["embeddings"][...]),
        rtol=1e-5,
        atol=1e-6,
    )


class Scanned(nnx.Module):
    """Looks the ids up one time step at a time inside a scan (the case taps cannot support)."""

    def __init__(self, how):
        self.embed = jaxembed.Embedding(V, D, rngs=0)
        self.how = how

    def __call__(self, ids):
        if self.how == "lax.scan":

            def body(carry, step_ids):
                return carry + self.embed(step_ids).sum(), None

            return jax.lax.scan(body, jnp.zeros(()), ids.T)[0]
        if self.how == "jax.vmap":
            return jax.vmap(lambda row: self.embed(row).sum())(ids).sum()

        @nnx.vmap(in_axes=(None, 0))
        def per_example(embed, row):
            return embed(row).sum()

        return per_example(self.embed, ids).sum()


@pytest.mark.parametrize("how", ["lax.scan", "jax.vmap", "nnx.vmap"])
def test_lookups_inside_scan_or_vmap_fail_with_a_clear_error(how):
    trainer = Trainer(Scanned(how), row_sparse_rule(optax.sgd(0.1)), lambda m, ids: m(ids))
    with pytest.raises(ValueError, match="inside a transformation that the row-sparse train step does not"):
        trainer.train_step(jnp.array([[1, 2, 3], [4, 5, 6]]))


@pytest.mark.parametrize("how", ["lax.scan", "jax.vmap", "nnx.vmap"])
def test_the_same_models_train_densely(how):
    trainer = Trainer(Scanned(how), optax.sgd(0.1), lambda m, ids: m(ids))
    assert np.isfinite(float(trainer.train_step(jnp.array([[1, 2, 3], [4, 5, 6]]))["loss"]))


def test_a_layer_outside_a_step_has_no_tap_and_the_tap_is_removed_after_the_pass():
    layer = jaxembed.Embedding(V, D, rngs=0)
    with _capture.tapping({"t": layer}, {"t": [jnp.ones((2, D))]}) as taps:
        rows = layer(jnp.array([1, 2]))
        assert _capture.is_tapped(layer)
    np.testing.assert_allclose(np.asarray(rows), np.asarray(layer.embeddings[...][1:3] + 1))
    assert not _capture.is_tapped(layer) and len(taps["t"].ids) == 1
    with _capture.tapping({"t": layer}, {"t": [jnp.ones((3, D))]}):  # a mismatched pass
        with pytest.raises(ValueError, match="looked up differently"):
            layer(jnp.array([1, 2]))


def test_the_layers_do_not_import_training_code():
    root = Path(jaxembed.__file__).parent
    for path in [*root.joinpath("nn").glob("*.py"), *root.joinpath("tables").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                assert not name.startswith(("jaxembed.train", "jaxembed.sparse")), (path.name, name)
