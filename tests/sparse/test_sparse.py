"""Tests for jaxembed.sparse: coalescing, row-sparse gradients and lazy optax updates."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxembed import ops
from jaxembed.sparse import (
    PAD_ID,
    RowSparseGrad,
    check_elementwise,
    coalesce,
    lazy,
    value_and_row_sparse_grad,
)

V, D = 503, 6  # a vocabulary size no other axis shares, so a (V, D) shape in HLO means the table


def batches(num: int, size: int, vocab: int = V, seed: int = 0) -> list[np.ndarray]:
    """Batches with many duplicate ids (a small hot set) and some rare ones."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        hot = rng.integers(0, 12, size // 2)
        rare = rng.integers(0, vocab, size - size // 2)
        out.append(rng.permutation(np.concatenate([hot, rare])).astype(np.int32))
    return out


def dense_grad(table: jax.Array, ids: jax.Array, targets: jax.Array) -> jax.Array:
    return jax.grad(lambda t: jnp.sum((ops.lookup(t, ids) - targets) ** 2))(table)


def sparse_grad(table: jax.Array, ids: jax.Array, targets: jax.Array) -> RowSparseGrad:
    _, grad = value_and_row_sparse_grad(lambda rows: jnp.sum((rows - targets) ** 2), table, ids)
    return grad


# ----------------------------------------------------------------------------- coalesce


def test_coalesce_matches_numpy_unique_and_sums():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 40, (8, 16))
    rows = rng.normal(size=(8, 16, 3)).astype(np.float32)
    grad = coalesce(ids, rows, num_rows=40)
    unique = np.unique(ids)
    assert grad.ids.shape == (ids.size,) and grad.rows.shape == (ids.size, 3)
    np.testing.assert_array_equal(grad.ids[: len(unique)], unique)
    assert np.all(np.asarray(grad.ids[len(unique) :]) == PAD_ID)
    expected = np.zeros((40, 3), np.float32)
    np.add.at(expected, ids.ravel(), rows.reshape(-1, 3))
    np.testing.assert_allclose(grad.rows[: len(unique)], expected[unique], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(grad.rows[len(unique) :], 0.0)
    np.testing.assert_allclose(grad.to_dense(40), expected, rtol=1e-6, atol=1e-6)


def test_coalesce_drops_padding_negative_and_out_of_range_ids():
    ids = jnp.array([3, PAD_ID, -1, 3, 7, 100, 0])
    rows = jnp.arange(7.0)[:, None] * jnp.ones((7, 2))
    grad = jax.jit(coalesce, static_argnums=2)(ids, rows, 8)
    assert grad.ids.tolist() == [0, 3, 7, PAD_ID, PAD_ID, PAD_ID, PAD_ID]
    assert grad.rows[:, 0].tolist() == [6.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]


def test_coalesce_size_caps_the_number_of_unique_ids():
    grad = coalesce(jnp.array([5, 1, 5, 2]), jnp.ones((4, 1)), num_rows=6, size=2)
    assert grad.ids.tolist() == [1, 2] and grad.rows[:, 0].tolist() == [1.0, 1.0]


def test_row_sparse_grad_equals_the_dense_gradient():
    rng = np.random.default_rng(2)
    table = jnp.asarray(rng.normal(size=(V, D)), jnp.float32)
    ids = jnp.asarray(batches(1, 64)[0].reshape(8, 8))
    targets = jnp.asarray(rng.normal(size=(8, 8, D)), jnp.float32)
    grad = jax.jit(sparse_grad)(table, ids, targets)
    np.testing.assert_allclose(grad.to_dense(V), dense_grad(table, ids, targets), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------- lazy updates


def run_lazy(tx, table, steps, targets_seed=3):
    opt = lazy(tx)
    state = opt.init(table)
    rng = np.random.default_rng(targets_seed)
    step = jax.jit(lambda t, s, ids, y: opt.update(sparse_grad(t, ids, y), s, t))
    for ids in steps:
        table, state = step(
            table, state, jnp.asarray(ids), jnp.asarray(rng.normal(size=(len(ids), D)), jnp.float32)
        )
    return table, state


def test_lazy_sgd_equals_dense_sgd_exactly():
    """Bit for bit: on the same gradients, and through jax.grad when no id repeats in a batch
    (repeats are summed in another order by the dense scatter-add, so only rounding may differ)."""
    rng = np.random.default_rng(4)
    table0 = jnp.asarray(rng.normal(size=(V, D)), jnp.float32)
    tx = optax.sgd(0.1)
    opt = lazy(tx)
    lazy_step = jax.jit(lambda t, s, g: opt.update(g, s, t))

    def dense_step(table, state, grad):
        updates, state = tx.update(grad, state, table)
        return optax.apply_updates(table, updates), state

    dense_step = jax.jit(dense_step)
    for ids_list in (batches(5, 48), [rng.permutation(V)[:48].astype(np.int32) for _ in range(5)]):
        lazy_table, lazy_state = table0, opt.init(table0)
        table, state = table0, tx.init(table0)
        unique_ids = all(len(np.unique(ids)) == len(ids) for ids in ids_list)
        for ids in ids_list:
            ids = jnp.asarray(ids)
            targets = jnp.asarray(rng.normal(size=(len(ids), D)), jnp.float32)
            grad = sparse_grad(lazy_table, ids, targets)
            lazy_table, lazy_state = lazy_step(lazy_table, lazy_state, grad)
            dense = dense_grad(table, ids, targets) if unique_ids else grad.to_dense(V)
            table, state = dense_step(table, state, dense)
            np.testing.assert_array_equal(lazy_table, table)


def reference_lazy_adam(table, steps, lr, b1=0.9, b2=0.999, eps=1e-8, seed=3):
    """LazyAdam written out in NumPy: only touched rows update; the step count is global."""
    table = np.array(table, np.float64)
    mu, nu = np.zeros_like(table), np.zeros_like(table)
    rng = np.random.default_rng(seed)
    for t, ids in enumerate(steps, start=1):
        targets = rng.normal(size=(len(ids), D)).astype(np.float32)
        grad = np.zeros_like(table)
        np.add.at(grad, ids, 2 * (table[ids] - targets))
        rows = np.unique(ids)
        mu[rows] = b1 * mu[rows] + (1 - b1) * grad[rows]
        nu[rows] = b2 * nu[rows] + (1 - b2) * grad[rows] ** 2
        m_hat, v_hat = mu[rows] / (1 - b1**t), nu[rows] / (1 - b2**t)
        table[rows] -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return table, mu, nu


def test_lazy_adam_equals_reference_implementation():
    rng = np.random.default_rng(5)
    table0 = jnp.asarray(rng.normal(size=(V, D)), jnp.float32)
    steps = batches(6, 40)
    table, state = run_lazy(optax.adam(0.05), table0, steps)
    ref_table, ref_mu, ref_nu = reference_lazy_adam(table0, steps, 0.05)
    np.testing.assert_allclose(table, ref_table, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state[0].mu, ref_mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state[0].nu, ref_nu, rtol=1e-4, atol=1e-5)
    assert int(state[0].count) == len(steps)  # global step count


def test_lazy_adam_equals_torch_sparse_adam():
    torch = pytest.importorskip(
        "torch", reason="comparing with torch.optim.SparseAdam needs the compare extra"
    )
    rng = np.random.default_rng(6)
    table0 = rng.normal(size=(V, D)).astype(np.float32)
    steps = batches(6, 40, seed=1)
    # torch's SparseAdam adds eps outside the bias correction of the second moment; a tiny
    # eps makes that difference negligible, so both compute the same LazyAdam.
    table, _ = run_lazy(optax.adam(0.05, eps=1e-12), jnp.asarray(table0), steps)

    embedding = torch.nn.Embedding(V, D, sparse=True)
    with torch.no_grad():
        embedding.weight.copy_(torch.from_numpy(table0))
    optimizer = torch.optim.SparseAdam(embedding.parameters(), lr=0.05, eps=1e-12)
    targets_rng = np.random.default_rng(3)
    for ids in steps:
        targets = torch.from_numpy(targets_rng.normal(size=(len(ids), D)).astype(np.float32))
        optimizer.zero_grad()
        loss = ((embedding(torch.from_numpy(ids.astype(np.int64))) - targets) ** 2).sum()
        loss.backward()
        optimizer.step()
    np.testing.assert_allclose(table, embedding.weight.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "tx",
    [optax.adam(0.1), optax.sgd(0.1, momentum=0.9, nesterov=True), optax.rmsprop(0.1), optax.lion(0.1)],
    ids=["adam", "nesterov", "rmsprop", "lion"],
)
def test_rows_not_looked_up_are_bit_identical(tx):
    rng = np.random.default_rng(7)
    table0 = jnp.asarray(rng.normal(size=(V, D)), jnp.float32)
    steps = batches(3, 30)
    table, state = run_lazy(tx, table0, steps)
    touched = np.unique(np.concatenate(steps))
    untouched = np.setdiff1d(np.arange(V), touched)
    np.testing.assert_array_equal(np.asarray(table)[untouched], np.asarray(table0)[untouched])
    assert not np.any(np.asarray(table)[touched] == np.asarray(table0)[touched])
    for leaf in jax.tree.leaves(state):
        if leaf.shape == (V, D):
            np.testing.assert_array_equal(np.asarray(leaf)[untouched], 0.0)


@pytest.mark.parametrize("tx", [optax.adam(0.1), optax.rmsprop(0.1), optax.sgd(0.1, momentum=0.9)])
def test_small_table_path_equals_the_gather_path(tx):
    """lazy() updates small tables densely (masked to the touched rows): same numbers, same semantics."""
    rng = np.random.default_rng(9)
    table = jnp.asarray(rng.normal(size=(40, 3)), jnp.float32)
    always_dense, never_dense = lazy(tx, dense_fraction=0.0), lazy(tx, dense_fraction=None)
    state_a, state_b, table_a, table_b = always_dense.init(table), never_dense.init(table), table, table
    for ids in ([1, 5, 5, 39, -2], [0, 1, 2, 3, PAD_ID], [7, 7, 7, 7, 7]):
        grad = coalesce(jnp.array(ids), jnp.asarray(rng.normal(size=(5, 3)), jnp.float32), 40)
        table_a, state_a = jax.jit(always_dense.update)(grad, state_a, table_a)
        table_b, state_b = jax.jit(never_dense.update)(grad, state_b, table_b)
    np.testing.assert_allclose(table_a, table_b, rtol=1e-6, atol=1e-7)
    for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    untouched = np.setdiff1d(np.arange(40), [0, 1, 2, 3, 5, 7, 39])
    np.testing.assert_array_equal(np.asarray(table_a)[untouched], np.asarray(table)[untouched])


@pytest.mark.parametrize("dense_fraction", [0.25, None])
def test_padding_and_duplicates_in_the_update(dense_fraction):
    opt = lazy(optax.sgd(1.0), dense_fraction=dense_fraction)
    table = jnp.zeros((4, 1))
    grad = RowSparseGrad(jnp.array([2, PAD_ID, -3, 4, 1]), jnp.array([[1.0], [5.0], [6.0], [7.0], [2.0]]))
    new, _ = opt.update(grad, opt.init(table), table)
    assert new[:, 0].tolist() == [0.0, -2.0, -1.0, 0.0]
    ids = jnp.array([1, 1, 1, 0])  # duplicates are summed by coalesce
    new, _ = opt.update(coalesce(ids, jnp.ones((4, 1)), 4), opt.init(table), table)
    assert new[:, 0].tolist() == [-1.0, -3.0, 0.0, 0.0]


@pytest.mark.parametrize("dense_fraction", [0.0, None])
def test_shard_local_update_matches_the_global_one(dense_fraction):
    """The sharding contract: shift ids to a shard's coordinates, out-of-shard ids are ignored."""
    rng = np.random.default_rng(8)
    table = jnp.asarray(rng.normal(size=(12, 3)), jnp.float32)
    opt = lazy(optax.adam(0.1), dense_fraction=dense_fraction)
    grad = coalesce(jnp.array([0, 5, 6, 11, 5]), jnp.asarray(rng.normal(size=(5, 3)), jnp.float32), 12)
    whole, whole_state = opt.update(grad, opt.init(table), table)
    for start in (0, 6):
        local = table[start : start + 6]
        shifted = grad._replace(ids=jnp.where(grad.ids == PAD_ID, PAD_ID, grad.ids - start))
        part, part_state = opt.update(shifted, opt.init(local), local)
        np.testing.assert_array_equal(part, whole[start : start + 6])
        np.testing.assert_array_equal(part_state[0].mu, whole_state[0].mu[start : start + 6])


# ------------------------------------------------------------------- element-wise check


@pytest.mark.parametrize(
    "tx",
    [
        optax.sgd(0.1),
        optax.sgd(0.1, momentum=0.9),
        optax.adam(0.1),
        optax.adamw(0.1),
        optax.adagrad(0.1),
        optax.rmsprop(0.1),
        optax.lion(0.1),
        optax.chain(optax.clip(1.0), optax.scale_by_adam(), optax.scale(-0.1)),
    ],
)
def test_elementwise_transformations_are_accepted(tx):
    check_elementwise(tx)


@pytest.mark.parametrize(
    "tx",
    [
        optax.lamb(0.1),
        optax.lars(0.1),
        optax.novograd(0.1),
        optax.adafactor(0.1),
        optax.sm3(0.1),
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1)),
    ],
    ids=["lamb", "lars", "novograd", "adafactor", "sm3", "clip_by_global_norm"],
)
def test_non_elementwise_transformations_are_rejected_with_the_allowed_list(tx):
    with pytest.raises(
        ValueError, match=r"element-wise or row-wise optax transformation.*Accepted: sgd.*adam.*lion"
    ):
        lazy(tx)


def test_lazy_rejects_a_non_transformation():
    with pytest.raises(TypeError, match="optax.GradientTransformation.*Received: str"):
        lazy("adam")


# -------------------------------------------------- compiled step: in place, O(batch)

_SHAPE_LINE = re.compile(r"^\s*(?:ROOT )?%[\w.\-]+ = (\w+)\[([\d,]*)\]\{[^}]*\} ([\w\-]+)\((.*)$")


def full_table_ops(hlo: str, shape: tuple[int, int]) -> list[str]:
    """HLO instructions producing a table-shaped array other than parameters and in-place scatters."""
    wanted = ",".join(map(str, shape))
    bad = []
    for line in hlo.splitlines():
        match = _SHAPE_LINE.match(line)
        if not match or match.group(2) != wanted:
            continue
        opcode, rest = match.group(3), match.group(4)
        if opcode in ("parameter", "scatter", "bitcast", "get-tuple-element", "tuple"):
            continue
        if opcode == "fusion" and "calls=%wrapped_scatter" in rest:
            continue
        bad.append(line.strip()[:160])
    return bad


def lazy_adam_step(opt):
    def step(table, state, ids, targets):
        return opt.update(sparse_grad(table, ids, targets), state, table)

    return step


def dense_adam_step(tx):
    def step(table, state, ids, targets):
        updates, state = tx.update(dense_grad(table, ids, targets), state, table)
        return optax.apply_updates(table, updates), state

    return step


def test_compiled_lazy_step_has_no_table_sized_intermediate():
    big = 20011  # large enough that a table dwarfs the batch-sized temporaries
    table = jnp.ones((big, D))
    ids, targets = jnp.arange(32) % 9, jnp.ones((32, D))
    opt = lazy(optax.adam(0.1))
    compiled = (
        jax.jit(lazy_adam_step(opt), donate_argnums=(0, 1))
        .lower(table, opt.init(table), ids, targets)
        .compile()
    )
    assert full_table_ops(compiled.as_text(), (big, D)) == []
    assert compiled.memory_analysis().temp_size_in_bytes < big * D * 4 // 10

    # The same checks do flag a dense step (so they can fail).
    tx = optax.adam(0.1)
    dense = (
        jax.jit(dense_adam_step(tx), donate_argnums=(0, 1))
        .lower(table, tx.init(table), ids, targets)
        .compile()
    )
    assert full_table_ops(dense.as_text(), (big, D))
    assert dense.memory_analysis().temp_size_in_bytes >= big * D * 4


def test_jit_with_donation_updates_in_place_without_recompiling():
    traces = []
    opt = lazy(optax.adam(0.1))

    def step(table, state, ids, targets):
        traces.append(1)
        return lazy_adam_step(opt)(table, state, ids, targets)

    jitted = jax.jit(step, donate_argnums=(0, 1))
    table = jnp.ones((V, D))
    state = opt.init(table)
    for ids in batches(4, 32):
        pointer = table.unsafe_buffer_pointer()
        old = table
        table, state = jitted(table, state, jnp.asarray(ids), jnp.ones((32, D)))
        assert old.is_deleted() and table.unsafe_buffer_pointer() == pointer
    assert len(traces) == 1


# ------------------------------------------------------- integration with jaxembed.train

from flax import nnx  # noqa: E402

import jaxembed  # noqa: E402
from jaxembed.train import RowSparseOptState, Trainer, fit, row_sparse_tables  # noqa: E402

WORDS, TAGS, DIM = 997, 31, 8


class TextClassifier(nnx.Module):
    """The text classifier's shape: Embedding(mask_zero) -> masked mean -> Dense, plus a second
    table (tags), a frozen table and a LoRA-enabled one, which stay on the dense path."""

    def __init__(self, *, regularizer=None, constraint=None):
        self.words = jaxembed.Embedding(
            WORDS,
            DIM,
            mask_zero=True,
            embeddings_regularizer=regularizer,
            embeddings_constraint=constraint,
            embeddings_initializer="normal",
            rngs=0,
        )
        self.tags = jaxembed.Embedding(TAGS, DIM, embeddings_initializer="normal", rngs=1)
        self.frozen = jaxembed.Embedding(TAGS, DIM, trainable=False, rngs=2)
        self.adapted = jaxembed.Embedding(TAGS, DIM, lora_rank=2, rngs=3)
        self.pool = jaxembed.GlobalAveragePooling1D()
        self.head = nnx.Linear(DIM, 1, rngs=nnx.Rngs(0))

    def __call__(self, batch):
        words = self.pool(self.words(batch["ids"]), mask=self.words.compute_mask(batch["ids"]))
        tags = self.tags(batch["tag"]) + self.frozen(batch["tag"]) + self.adapted(batch["tag"])
        return self.head(words + tags)[:, 0]


def classifier_loss(model, batch):
    logits = model(batch)
    return optax.sigmoid_binary_cross_entropy(logits, batch["y"]).mean(), {
        "accuracy": jnp.mean((logits > 0) == batch["y"])
    }


def classifier_batches(num: int, seed: int = 0, length: int = 12) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        ids = rng.integers(1, 60, (6, length))
        ids[:, length // 2 :] *= rng.integers(0, 2, (6, length - length // 2))  # trailing padding (id 0)
        out.append(
            {"ids": ids, "tag": rng.integers(0, TAGS, 6), "y": rng.integers(0, 2, 6).astype(np.float32)}
        )
    return out


def table(trainer: Trainer, name: str) -> np.ndarray:
    return np.asarray(trainer.state.params[name]["embeddings"][...])


def test_row_sparse_tables_skip_frozen_quantized_and_lora_tables():
    model = TextClassifier()
    model.tags.quantize("int8")
    assert sorted(row_sparse_tables(model)) == ["words/embeddings"]
    assert sorted(row_sparse_tables(TextClassifier())) == ["tags/embeddings", "words/embeddings"]


def test_row_sparse_sgd_trains_like_dense_sgd():
    data = classifier_batches(4)
    sparse_trainer = Trainer(TextClassifier(), optax.sgd(0.5), classifier_loss, row_sparse=True)
    dense_trainer = Trainer(TextClassifier(), optax.sgd(0.5), classifier_loss)
    assert isinstance(sparse_trainer.state.opt_state, RowSparseOptState)
    assert sorted(sparse_trainer.state.opt_state.tables) == ["tags/embeddings", "words/embeddings"]
    for batch in data:
        sparse_metrics = sparse_trainer.train_step(batch)
        dense_metrics = dense_trainer.train_step(batch)
        np.testing.assert_allclose(sparse_metrics["loss"], dense_metrics["loss"], rtol=1e-6)
    for a, b in zip(
        jax.tree.leaves(sparse_trainer.state.params), jax.tree.leaves(dense_trainer.state.params)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    untouched = np.setdiff1d(np.arange(WORDS), np.concatenate([b["ids"].ravel() for b in data]))
    np.testing.assert_array_equal(
        table(sparse_trainer, "words")[untouched],
        np.asarray(TextClassifier().words.embeddings[...])[untouched],
    )


def test_row_sparse_adam_equals_dense_adam_when_every_step_touches_the_same_rows():
    """Rows never looked up have zero moments under dense Adam too, so both agree exactly there."""
    batch = classifier_batches(1, seed=3)[0]
    sparse_trainer = Trainer(TextClassifier(), optax.adam(0.05), classifier_loss, row_sparse=True)
    dense_trainer = Trainer(TextClassifier(), optax.adam(0.05), classifier_loss)
    for _ in range(4):
        sparse_trainer.train_step(batch)
        dense_trainer.train_step(batch)
    for a, b in zip(
        jax.tree.leaves(sparse_trainer.state.params), jax.tree.leaves(dense_trainer.state.params)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert int(sparse_trainer.state.opt_state.tables["words/embeddings"][0].count) == 4


def test_regularizer_penalizes_the_touched_rows():
    batch = classifier_batches(1, seed=4)[0]
    sparse_trainer = Trainer(
        TextClassifier(regularizer="l2"), optax.sgd(0.5), classifier_loss, row_sparse=True
    )
    dense_trainer = Trainer(TextClassifier(regularizer="l2"), optax.sgd(0.5), classifier_loss)
    start = table(sparse_trainer, "words")
    touched = np.unique(batch["ids"])
    metrics = sparse_trainer.train_step(batch)
    dense_trainer.train_step(batch)
    data_loss = float(classifier_loss(TextClassifier(), batch)[0])
    np.testing.assert_allclose(
        float(metrics["loss"]), data_loss + 0.01 * np.sum(start[touched] ** 2), rtol=1e-5
    )
    np.testing.assert_allclose(
        table(sparse_trainer, "words")[touched], table(dense_trainer, "words")[touched], rtol=1e-5, atol=1e-7
    )
    untouched = np.setdiff1d(np.arange(WORDS), touched)
    np.testing.assert_array_equal(table(sparse_trainer, "words")[untouched], start[untouched])
    assert not np.allclose(
        table(dense_trainer, "words")[untouched], start[untouched]
    )  # dense decays every row


def test_constraint_applies_to_the_touched_rows():
    batch = classifier_batches(1, seed=5)[0]
    trainer = Trainer(TextClassifier(constraint="non_neg"), optax.sgd(0.5), classifier_loss, row_sparse=True)
    start = table(trainer, "words")
    trainer.train_step(batch)
    touched = np.unique(batch["ids"])
    assert np.all(table(trainer, "words")[touched] >= 0)
    untouched = np.setdiff1d(np.arange(WORDS), touched)
    np.testing.assert_array_equal(table(trainer, "words")[untouched], start[untouched])
    assert np.any(start[untouched] < 0)


def test_column_wise_constraint_is_rejected():
    constraint = {"class_name": "MaxNorm", "config": {"max_value": 1.0, "axis": 0}}
    with pytest.raises(ValueError, match=r"row by row.*axis=0.*axis=1"):
        Trainer(TextClassifier(constraint=constraint), optax.sgd(0.5), classifier_loss, row_sparse=True)


def test_row_sparse_needs_an_elementwise_optimizer():
    with pytest.raises(ValueError, match="element-wise or row-wise optax transformation"):
        Trainer(TextClassifier(), optax.lamb(0.1), classifier_loss, row_sparse=True)


def test_compiled_row_sparse_train_step_is_in_place_and_compiles_once():
    traces = []

    def counting_loss(model, batch):
        traces.append(1)
        return classifier_loss(model, batch)

    trainer = Trainer(TextClassifier(), optax.adam(0.01), counting_loss, row_sparse=True)
    data = classifier_batches(3)
    hlo = trainer._train_step.lower(trainer.state, data[0]).compile()
    assert full_table_ops(hlo.as_text(), (WORDS, DIM)) == []
    assert hlo.memory_analysis().temp_size_in_bytes < WORDS * DIM * 4
    for batch in data:
        old = trainer.state.params["words"]["embeddings"][...]
        trainer.train_step(batch)
        assert old.is_deleted()  # donated and reused
    assert len(traces) == 2  # traced once for the id shapes, once for the gradient; never again

    dense = Trainer(TextClassifier(), optax.adam(0.01), classifier_loss)
    assert full_table_ops(dense._train_step.lower(dense.state, data[0]).compile().as_text(), (WORDS, DIM))


def test_fit_eval_and_checkpoint_with_row_sparse(tmp_path):
    data = classifier_batches(4)
    trainer = Trainer(TextClassifier(), optax.adam(0.05), classifier_loss, row_sparse=True)
    history = fit(trainer, data, epochs=5, validation_data=data[:1], progress=False)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert "val_accuracy" in history.history
    np.testing.assert_array_equal(trainer.model.words.embeddings[...], table(trainer, "words"))
    trainer.save(tmp_path / "ckpt")
    restored = Trainer(TextClassifier(), optax.adam(0.05), classifier_loss, row_sparse=True)
    assert restored.restore(tmp_path / "ckpt") == int(trainer.state.step)
    for a, b in zip(jax.tree.leaves(restored.state), jax.tree.leaves(trainer.state)):
        np.testing.assert_array_equal(a, b)


def test_the_text_classifier_example_trains_row_sparse():
    """examples/text_classifier.py's model (KerasSequential: Embedding(mask_zero) -> average -> Dense)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "text_classifier.py"
    spec = importlib.util.spec_from_file_location("text_classifier_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    rng = np.random.default_rng(11)
    data = []
    for _ in range(3):
        ids = rng.integers(1, 300, (8, 10)) * (rng.random((8, 10)) < 0.7)
        data.append({"ids": ids, "label": rng.integers(0, 3, 8)})
    kwargs = dict(embedding_dim=8, hidden=4)
    sparse_trainer = Trainer(
        example.build_model(1000, 3, **kwargs), optax.sgd(0.3), example.classification_loss, row_sparse=True
    )
    dense_trainer = Trainer(
        example.build_model(1000, 3, **kwargs), optax.sgd(0.3), example.classification_loss
    )
    assert len(sparse_trainer.state.opt_state.tables) == 1
    for batch in data:
        np.testing.assert_allclose(
            sparse_trainer.train_step(batch)["loss"], dense_trainer.train_step(batch)["loss"], rtol=1e-5
        )
    for a, b in zip(
        jax.tree.leaves(sparse_trainer.state.params), jax.tree.leaves(dense_trainer.state.params)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_embedding_bag_tables_train_row_sparse():
    class Bags(nnx.Module):
        def __init__(self):
            self.bag = jaxembed.EmbeddingBag(300, 4, combiner="mean", mask_zero=True, rngs=0)
            self.head = nnx.Linear(4, 1, rngs=nnx.Rngs(0))

        def __call__(self, ids):
            return self.head(self.bag(ids))[:, 0]

    def loss(model, batch):
        return jnp.mean((model(batch["ids"]) - batch["y"]) ** 2)

    rng = np.random.default_rng(12)
    data = [
        {"ids": rng.integers(0, 300, (5, 6)), "y": rng.normal(size=5).astype(np.float32)} for _ in range(3)
    ]
    sparse_trainer = Trainer(Bags(), optax.sgd(0.5), loss, row_sparse=True)
    dense_trainer = Trainer(Bags(), optax.sgd(0.5), loss)
    assert list(sparse_trainer.state.opt_state.tables) == ["bag/embeddings"]
    for batch in data:
        sparse_trainer.train_step(batch)
        dense_trainer.train_step(batch)
    for a, b in zip(
        jax.tree.leaves(sparse_trainer.state.params), jax.tree.leaves(dense_trainer.state.params)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [16, 24])  # 64 ids: four whole chunks; three, the last overlapping
def test_large_gradients_are_applied_in_chunks_in_place_with_the_same_numbers(monkeypatch, chunk):
    import jaxembed.sparse._lazy as sparse_module

    big = 20011
    rng = np.random.default_rng(3)
    table = jnp.asarray(rng.normal(size=(big, D)), jnp.float32)
    ids = jnp.asarray(rng.integers(0, 300, 64))  # with repeats: fewer unique ids than slots
    targets = jnp.asarray(rng.normal(size=(64, D)), jnp.float32)
    opt = lazy(optax.adam(0.1))
    state = opt.init(table)
    whole = jax.jit(lazy_adam_step(opt))(table, state, ids, targets)  # 64 <= 4096 rows: one piece

    monkeypatch.setattr(sparse_module, "_CHUNK_ROWS", chunk)
    step = jax.jit(lazy_adam_step(opt), donate_argnums=(0, 1))
    compiled = step.lower(table, state, ids, targets).compile()
    assert " while(" in compiled.as_text()  # the chunk loop is there
    assert full_table_ops(compiled.as_text(), (big, D)) == []  # and still updates in place
    assert compiled.memory_analysis().temp_size_in_bytes < big * D * 4 // 10
    chunked = step(jnp.array(table), opt.init(table), ids, targets)
    for expected, got in zip(jax.tree.leaves(whole), jax.tree.leaves(chunked)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
