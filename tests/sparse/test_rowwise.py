"""Row-wise optimizers and stochastic rounding: NumPy references, FBGEMM's CPU kernels, unbiasedness."""

import importlib.util
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxembed import sparse
from jaxembed.sparse import (
    partial_rowwise_adam,
    rowwise_adagrad,
    state_bytes_per_row,
    stochastic_rounding,
    stochastically_round,
)

V, D = 12, 4
STEPS = [  # ids with repeats, per step
    np.array([3, 1, 3, 7, 3]),
    np.array([1, 1, 11, 0]),
    np.array([7, 3, 5, 5, 5, 2]),
    np.array([0, 11, 3]),
]


def step_grads(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(len(ids), D)).astype(np.float32) for ids in STEPS]


def dense_grad(ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.zeros((V, D), np.float64)
    np.add.at(out, ids, rows)
    return out


def reference_rowwise_adagrad(table, lr, eps, grads):
    table, acc = table.astype(np.float64), np.zeros(V)
    for ids, rows in zip(STEPS, grads):
        g = dense_grad(ids, rows)
        touched = np.unique(ids)
        acc[touched] += np.mean(g[touched] ** 2, axis=1)
        table[touched] -= lr * g[touched] / (np.sqrt(acc[touched])[:, None] + eps)
    return table, acc


def reference_partial_rowwise_adam(table, lr, b1, b2, eps, grads):
    """Lazy semantics: rows not in a step keep their moments; the step count is global."""
    table, m, v = table.astype(np.float64), np.zeros((V, D)), np.zeros(V)
    for t, (ids, rows) in enumerate(zip(STEPS, grads), start=1):
        g = dense_grad(ids, rows)
        k = np.unique(ids)
        m[k] = b1 * m[k] + (1 - b1) * g[k]
        v[k] = b2 * v[k] + (1 - b2) * np.mean(g[k] ** 2, axis=1)
        m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
        table[k] -= lr * m_hat / (np.sqrt(v_hat)[:, None] + eps)
    return table, m, v


def run_lazy(tx, table, grads):
    opt = sparse.lazy(tx, dense_fraction=None)
    state = opt.init(table)
    step = jax.jit(lambda t, s, g: opt.update(g, s, t))
    for ids, rows in zip(STEPS, grads):
        table, state = step(table, state, sparse.RowSparseGrad(jnp.asarray(ids), jnp.asarray(rows)))
    return table, state


def run_dense(tx, table, grads):
    state = tx.init(table)
    for ids, rows in zip(STEPS, grads):
        updates, state = tx.update(jnp.asarray(dense_grad(ids, rows), jnp.float32), state, table)
        table = optax.apply_updates(table, updates)
    return table, state


TABLE = np.random.default_rng(1).normal(size=(V, D)).astype(np.float32)


def test_rowwise_adagrad_matches_the_numpy_reference_lazily_and_densely():
    grads = step_grads()
    want, want_acc = reference_rowwise_adagrad(TABLE, 0.1, 1e-8, grads)
    for run in (run_lazy, run_dense):
        table, state = run(rowwise_adagrad(0.1), jnp.asarray(TABLE), grads)
        np.testing.assert_allclose(table, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state[0].sum_of_mean_squares, want_acc, rtol=1e-5)
        assert state[0].sum_of_mean_squares.shape == (V,)


def test_partial_rowwise_adam_matches_the_numpy_reference_with_lazy_semantics():
    grads = step_grads(2)
    want, want_m, want_v = reference_partial_rowwise_adam(TABLE, 0.05, 0.9, 0.999, 1e-8, grads)
    table, state = run_lazy(partial_rowwise_adam(0.05), jnp.asarray(TABLE), grads)
    np.testing.assert_allclose(table, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state[0].mu, want_m, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(state[0].nu, want_v, rtol=1e-5, atol=1e-9)
    assert int(state[0].count) == len(STEPS)
    untouched = np.setdiff1d(np.arange(V), np.concatenate(STEPS))
    np.testing.assert_array_equal(np.asarray(table)[untouched], TABLE[untouched])


def test_lazy_sgd_is_dense_sgd_over_steps_with_repeated_ids():
    grads = step_grads(3)
    lazy_table, _ = run_lazy(optax.sgd(0.3), jnp.asarray(TABLE), grads)
    dense_table, _ = run_dense(optax.sgd(0.3), jnp.asarray(TABLE), grads)
    np.testing.assert_allclose(lazy_table, dense_table, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("tx", "expected"),
    [
        (optax.sgd(0.1), 0),
        (rowwise_adagrad(0.1), 4),
        (partial_rowwise_adam(0.1), 4 * 64 + 4),
        (optax.adam(0.1), 512),
    ],
    ids=["sgd", "rowwise_adagrad", "partial_rowwise_adam", "adam"],
)
def test_state_bytes_per_row(tx, expected):
    assert state_bytes_per_row(tx, 64) == expected


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: rowwise_adagrad(0.1, eps=-1.0), r"`eps` must be a non-negative number. Received: eps=-1.0"),
        (
            lambda: rowwise_adagrad(0.1, initial_accumulator_value="x"),
            r"`initial_accumulator_value` must be a non-negative number. "
            r"Received: initial_accumulator_value='x' \(of type str\)",
        ),
        (lambda: partial_rowwise_adam(0.1, b1=1.0), r"`b1` must be a number in \[0, 1\). Received: b1=1.0"),
        (lambda: partial_rowwise_adam(0.1, b2=True), r"`b2` must be a number in \[0, 1\). Received: b2=True"),
        (
            lambda: stochastic_rounding(0, dtype="float32"),
            r"`dtype` must be bfloat16 or float16. Received: dtype",
        ),
        (
            lambda: stochastic_rounding("seed"),
            r"`key` must be an int seed or a JAX PRNG key. Received: key='seed'",
        ),
    ],
)
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ------------------------------------------------------------------------- FBGEMM's CPU kernels
def fbgemm_table(optimizer: str, table: np.ndarray, lr: float, eps: float):
    if importlib.util.find_spec("fbgemm_gpu") is None:
        pytest.skip(
            "FBGEMM's CPU build is not installed (fbgemm-gpu-cpu==1.8.0 --no-deps, beside the compare extra)"
        )
    with warnings.catch_warnings():  # it warns about its GPU-only (SSD) modules on import
        warnings.simplefilter("ignore")
        import torch  # noqa: F401
        from fbgemm_gpu.split_embedding_configs import EmbOptimType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation, PoolingMode
        from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
            ComputeDevice,
            SplitTableBatchedEmbeddingBagsCodegen,
        )

    emb = SplitTableBatchedEmbeddingBagsCodegen(
        [(V, D, EmbeddingLocation.HOST, ComputeDevice.CPU)],
        optimizer=getattr(EmbOptimType, optimizer),
        learning_rate=lr,
        eps=eps,
        pooling_mode=PoolingMode.NONE,
    )
    with torch.no_grad():
        emb.split_embedding_weights()[0].copy_(torch.from_numpy(table))
    return emb


def fbgemm_steps(emb, grads):
    import torch

    for ids, rows in zip(STEPS, grads):
        out = emb(torch.from_numpy(ids.astype(np.int64)), torch.arange(len(ids) + 1, dtype=torch.int64))
        out.backward(torch.from_numpy(rows))
    return emb.split_embedding_weights()[0].detach().numpy().copy()


def test_rowwise_adagrad_matches_fbgemm_exact_rowwise_adagrad():
    grads = step_grads(4)
    emb = fbgemm_table("EXACT_ROWWISE_ADAGRAD", TABLE, lr=0.1, eps=1e-3)
    want = fbgemm_steps(emb, grads)
    want_acc = emb.split_optimizer_states()[0][0].detach().numpy()
    table, state = run_lazy(rowwise_adagrad(0.1, eps=1e-3), jnp.asarray(TABLE), grads)
    np.testing.assert_allclose(table, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(state[0].sum_of_mean_squares, want_acc, rtol=1e-6)


def test_sgd_matches_fbgemm_exact_sgd():
    grads = step_grads(5)
    want = fbgemm_steps(fbgemm_table("EXACT_SGD", TABLE, lr=0.2, eps=1e-8), grads)
    table, _ = run_lazy(optax.sgd(0.2), jnp.asarray(TABLE), grads)
    np.testing.assert_allclose(table, want, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- stochastic rounding
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_stochastic_rounding_is_unbiased(dtype):
    """The mean of 200,000 roundings of each value equals it within 4 standard errors of the mean."""
    rng = np.random.default_rng(0)
    values = (rng.uniform(0.5, 2.0, size=8) * rng.choice([-1, 1], size=8)).astype(np.float32)
    n = 200_000
    x = jnp.broadcast_to(jnp.asarray(values), (n, 8))
    rounded = np.asarray(stochastically_round(x, dtype, jax.random.key(1)).astype(jnp.float32), np.float64)
    lo_hi_gap = np.abs(np.diff(np.sort(rounded, axis=0)[[0, -1]], axis=0))[0]
    assert np.all(lo_hi_gap > 0)  # both neighbours occur
    assert len({tuple(np.unique(rounded[:, j])) for j in range(8)}) == 8
    assert all(len(np.unique(rounded[:, j])) == 2 for j in range(8))
    stderr = lo_hi_gap / 2 / np.sqrt(n)  # a two-point distribution's standard deviation is at most gap / 2
    np.testing.assert_array_less(np.abs(rounded.mean(axis=0) - values), 4 * stderr)
    # Round to nearest is biased for the same values.
    nearest = np.asarray(jnp.asarray(values).astype(dtype).astype(jnp.float32))
    assert np.max(np.abs(nearest - values)) > 8 * np.max(stderr)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_stochastic_rounding_keeps_representable_values_and_specials(dtype):
    x = (
        jnp.array([0.0, -0.0, 1.0, -2.5, jnp.inf, -jnp.inf, 6e-8], jnp.float32)
        .astype(dtype)
        .astype(jnp.float32)
    )
    out = stochastically_round(x, dtype, jax.random.key(0))
    assert out.dtype == dtype
    np.testing.assert_array_equal(np.asarray(out.astype(jnp.float32)), np.asarray(x))
    assert bool(jnp.isnan(stochastically_round(jnp.array([jnp.nan]), dtype, jax.random.key(0)))[0])


def test_mean_of_many_stochastically_rounded_updates_equals_the_float32_update():
    """Tiny updates (a tenth of a bfloat16 ulp) are lost by round-to-nearest but kept on average by SR."""
    table = jnp.ones((4096, 8), jnp.bfloat16)
    tx = optax.chain(optax.sgd(1.0), stochastic_rounding(3))
    state = tx.init(table)
    grad = jnp.full((4096, 8), 2.0**-8 / 10, jnp.float32)  # ulp(1) = 2**-7 upward, 2**-8 downward
    updates, state = tx.update(grad, state, table)
    new = optax.apply_updates(table, updates)
    assert new.dtype == jnp.bfloat16
    values = np.unique(np.asarray(new.astype(jnp.float32)))
    np.testing.assert_array_equal(values, [1.0 - 2.0**-8, 1.0])  # exactly the two neighbours
    mean_step = 1.0 - float(jnp.mean(new.astype(jnp.float32)))
    np.testing.assert_allclose(mean_step, 2.0**-8 / 10, rtol=0.05)  # 32,768 draws: ~1.7% standard error
    nearest = optax.apply_updates(table, optax.sgd(1.0).update(grad, optax.sgd(1.0).init(table))[0])
    np.testing.assert_array_equal(np.asarray(nearest.astype(jnp.float32)), 1.0)  # round to nearest: lost
    updates2, state2 = tx.update(grad, state, table)
    assert not np.array_equal(np.asarray(updates2), np.asarray(updates))  # the key advanced


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_stochastic_rounding_draws_bits_only_for_the_rows_updated_lazily(dtype):
    table = jnp.ones((100_000, 16), dtype)
    opt = sparse.lazy(optax.chain(rowwise_adagrad(1e-3), stochastic_rounding(0)), dense_fraction=None)
    state = opt.init(table)
    grad = sparse.RowSparseGrad(jnp.array([5, 9, 5]), jnp.ones((3, 16)))
    step = jax.jit(lambda t, s, g: opt.update(g, s, t), donate_argnums=(0, 1))
    temp = step.lower(table, state, grad).compile().memory_analysis().temp_size_in_bytes
    full_float32 = 100_000 * 16 * 4
    if dtype == jnp.float16 or jax.default_backend() != "cpu":
        assert temp < full_float32 / 10  # no full-size random bits, no float32 copy of the table
    else:
        # XLA:CPU scatters bfloat16 only through float32; the update scatters the bits instead, at
        # the price of one bfloat16-sized copy (an O(rows) pass -- use float16 tables on CPU).
        assert temp <= full_float32 / 2 + 2**16
    # Positive control: the same chain applied densely does hold full-size float32 temporaries.
    tx = optax.chain(rowwise_adagrad(1e-3), stochastic_rounding(0))

    def dense_step(t, s, g):
        updates, s = tx.update(g, s, t)
        return optax.apply_updates(t, updates), s

    dense = jax.jit(dense_step, donate_argnums=(0, 1)).lower(table, tx.init(table), jnp.ones((100_000, 16)))
    assert dense.compile().memory_analysis().temp_size_in_bytes >= full_float32
    table = jnp.ones((100_000, 16), dtype)
    new, state = step(table, opt.init(table), grad)
    moved = np.flatnonzero(np.any(np.asarray(new.astype(jnp.float32)) != 1.0, axis=1))
    assert set(moved) <= {5, 9}


# ------------------------------------------------------------------------- low-precision training
def train_curve(dtype, *, rounding: bool, steps: int = 300, lr: float = 0.05) -> np.ndarray:
    """Loss per step of a bag-of-ids regression whose table is stored in ``dtype`` (row-sparse updates)."""
    rows, dim, bags, bag = 2000, 16, 64, 8
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(rows, dim)).astype(np.float32)
    ids = rng.integers(0, rows, size=(steps, bags, bag)).astype(np.int32)
    targets = truth[ids].sum(axis=2)  # (steps, bags, dim)
    tx = rowwise_adagrad(lr)
    if rounding:
        tx = optax.chain(tx, stochastic_rounding(0))
    opt = sparse.lazy(tx, dense_fraction=None)
    table = jnp.asarray(rng.normal(size=(rows, dim)) * 0.1, dtype)

    def step(carry, batch):
        table, state = carry
        batch_ids, target = batch

        def loss(r):
            return jnp.mean((r.astype(jnp.float32).sum(axis=1) - target) ** 2)

        value, grad = sparse.value_and_row_sparse_grad(loss, table, batch_ids)
        table, state = opt.update(grad, state, table)
        return (table, state), value

    _, losses = jax.jit(lambda t, s: jax.lax.scan(step, (t, s), (jnp.asarray(ids), jnp.asarray(targets))))(
        table, opt.init(table)
    )
    return np.asarray(losses)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_table_with_stochastic_rounding_trains_like_float32(dtype):
    """The loss curve of a 16-bit table with stochastic rounding stays within 5% (+0.05 of the starting
    loss, for the noise of rounding) of the float32 curve at every one of 300 steps."""
    reference = train_curve(jnp.float32, rounding=False)
    curve = train_curve(dtype, rounding=True)
    assert reference[-1] < 0.5 * reference[0]  # the problem is learned
    np.testing.assert_allclose(curve, reference, rtol=0.05, atol=0.05 * reference[0])


def test_a_float16_embedding_trains_row_sparsely_with_rowwise_adagrad_and_stochastic_rounding():
    """The Trainer path: Embedding(param_dtype=float16), chain(rowwise_adagrad, stochastic_rounding)."""
    from flax import nnx

    import jaxembed
    from jaxembed.train import Trainer, row_sparse

    class Model(nnx.Module):
        def __init__(self, dtype):
            self.table = jaxembed.Embedding(
                500, 8, param_dtype=dtype, dtype=jnp.float32, embeddings_initializer="normal", rngs=0
            )
            self.head = nnx.Linear(8, 1, rngs=nnx.Rngs(0))

        def __call__(self, ids):
            return self.head(self.table(ids).mean(axis=1))[:, 0]

    def loss_fn(model, batch):
        return jnp.mean((model(batch["ids"]) - batch["y"]) ** 2)

    rng = np.random.default_rng(0)
    data = [
        {"ids": rng.integers(0, 500, (32, 6)).astype(np.int32), "y": rng.normal(size=32).astype(np.float32)}
        for _ in range(30)
    ]
    tx = optax.chain(rowwise_adagrad(0.05), stochastic_rounding(0))
    half = Trainer(Model(jnp.float16), row_sparse(tx), loss_fn)
    full = Trainer(Model(jnp.float32), row_sparse(rowwise_adagrad(0.05)), loss_fn)
    losses = [(float(half.train_step(b)["loss"]), float(full.train_step(b)["loss"])) for b in data * 3]
    table = half.state.params["table"]["embeddings"][...]
    assert table.dtype == jnp.float16
    per_row = [leaf for leaf in jax.tree.leaves(half.state.opt_state.inner) if jnp.shape(leaf) == (500,)]
    assert len(per_row) == 1 and per_row[0].dtype == jnp.float32  # one float32 accumulator per row
    # Within 5% at every one of 90 steps (the float16 table starts from the float32 one rounded).
    np.testing.assert_allclose([h for h, _ in losses], [f for _, f in losses], rtol=0.05, atol=1e-3)
