"""One prepared check for any backend (CPU, GPU, TPU), in well under 5 minutes: prints one table.

Correctness smokes first (each a max |difference| against a tolerance):

* ``take`` lookup = one-hot lookup;
* lazy (row-sparse) SGD = dense SGD after 3 steps with repeated ids;
* row-wise Adagrad = a NumPy reference after 3 steps;
* a float16 table with stochastic rounding: the mean of the rounded update = the float32 update.

Then the key benchmarks, at sizes chosen for the backend (``--size small`` on CPU by default,
``large`` on an accelerator):

* forward lookup GB/s against the device's memory bandwidth (a jitted copy of a large array);
* the text-classifier train step (``Trainer(model, row_sparse(adam), loss_fn)``) against the Flax NNX baseline
  (``nnx.Embed`` + ``nnx.Optimizer`` + ``nnx.jit``), as in ``benchmarks/sparse_train_step.py``;
* the lazy Adam step against dense ``optax.adam``.

Usage::

    python benchmarks/device_check.py [--size small|large] > benchmarks/results/device_check_<backend>.txt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _harness import header, interleaved, median  # noqa: E402
from flax import nnx  # noqa: E402

from jaxembed import ops, sparse  # noqa: E402
from jaxembed.sparse import rowwise_adagrad, stochastic_rounding  # noqa: E402

SIZES = {
    "small": {"vocab": 100_000, "lookup_vocab": 1_000_000, "copy_mib": 256, "batch": 64, "length": 64},
    "large": {"vocab": 1_000_000, "lookup_vocab": 10_000_000, "copy_mib": 2048, "batch": 256, "length": 128},
}
ROWS: list[tuple[str, str, str, str]] = []  # (check, value, expected, status)


def row(check: str, value: str, expected: str, ok: bool | None) -> None:
    ROWS.append((check, value, expected, "-" if ok is None else ("ok" if ok else "FAIL")))


def smoke() -> None:
    rng = np.random.default_rng(0)
    table = jnp.asarray(rng.normal(size=(512, 32)), jnp.float32)
    ids = jnp.asarray(rng.integers(0, 512, size=(64, 16)), jnp.int32)
    with jax.default_matmul_precision("highest"):
        take = jax.jit(lambda t, i: ops.lookup(t, i, method="take"))(table, ids)
        one_hot = jax.jit(lambda t, i: ops.lookup(t, i, method="one_hot"))(table, ids)
    diff = float(jnp.max(jnp.abs(take - one_hot)))
    row("take = one-hot lookup", f"{diff:.1e}", "<= 1e-6", diff <= 1e-6)

    steps = [rng.integers(0, 512, size=200) for _ in range(3)]
    grads = [rng.normal(size=(200, 32)).astype(np.float32) for _ in range(3)]
    lazy_sgd, dense, tx = sparse.lazy(optax.sgd(0.1), dense_fraction=None), table, optax.sgd(0.1)
    t_lazy, s_lazy, s_dense = table, lazy_sgd.init(table), tx.init(table)
    for i, g in zip(steps, grads):
        t_lazy, s_lazy = jax.jit(lambda t, s, gr: lazy_sgd.update(gr, s, t))(
            t_lazy, s_lazy, sparse.RowSparseGrad(jnp.asarray(i, jnp.int32), jnp.asarray(g))
        )
        dense_grad = jnp.zeros_like(table).at[i].add(g)
        updates, s_dense = tx.update(dense_grad, s_dense, dense)
        dense = optax.apply_updates(dense, updates)
    diff = float(jnp.max(jnp.abs(t_lazy - dense)))
    row("lazy SGD = dense SGD (3 steps)", f"{diff:.1e}", "<= 1e-5", diff <= 1e-5)

    adagrad = sparse.lazy(rowwise_adagrad(0.1), dense_fraction=None)
    t, s = table, adagrad.init(table)
    ref, acc = np.asarray(table, np.float64), np.zeros(512)
    for i, g in zip(steps, grads):
        t, s = jax.jit(lambda t, s, gr: adagrad.update(gr, s, t))(
            t, s, sparse.RowSparseGrad(jnp.asarray(i, jnp.int32), jnp.asarray(g))
        )
        dense_g = np.zeros((512, 32))
        np.add.at(dense_g, i, g)
        k = np.unique(i)
        acc[k] += np.mean(dense_g[k] ** 2, axis=1)
        ref[k] -= 0.1 * dense_g[k] / (np.sqrt(acc[k])[:, None] + 1e-8)
    diff = float(np.max(np.abs(np.asarray(t) - ref)))
    row("row-wise Adagrad = NumPy reference", f"{diff:.1e}", "<= 1e-5", diff <= 1e-5)

    half = jnp.ones((8192, 8), jnp.float16)
    rounding = optax.chain(optax.sgd(1.0), stochastic_rounding(0))
    step = 2.0**-11 / 10  # a tenth of float16's unit below 1
    updates, _ = rounding.update(jnp.full((8192, 8), step), rounding.init(half), half)
    moved = 1.0 - float(jnp.mean(optax.apply_updates(half, updates).astype(jnp.float32)))
    error = abs(moved - step) / step
    row("float16 stochastic rounding unbiased", f"{error:.1%} off", "<= 5%", error <= 0.05)


def timed(fn, *args, repeats: int = 7) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def benchmarks(size: dict) -> None:
    n = size["copy_mib"] * 2**20 // 4
    big = jnp.arange(n, dtype=jnp.float32)
    seconds = timed(jax.jit(lambda x: x * 1.0 + 1.0), big)
    bandwidth = 2 * n * 4 / seconds / 1e9  # read + write
    del big
    row(f"memory bandwidth (x + 1 over {size['copy_mib']} MiB)", f"{bandwidth:.1f} GB/s", "-", None)

    rng = np.random.default_rng(0)
    table = jnp.asarray(rng.normal(size=(size["lookup_vocab"], 64)), jnp.float32)
    ids = jnp.asarray(rng.integers(0, size["lookup_vocab"], size=(256, 128)), jnp.int32)
    seconds = timed(jax.jit(lambda t, i: ops.lookup(t, i)), table, ids)
    gbps = 256 * 128 * 64 * 4 / seconds / 1e9
    row(
        f"forward lookup ({size['lookup_vocab']:,} x 64, 32,768 ids)",
        f"{gbps:.1f} GB/s",
        f"{gbps / bandwidth:.0%} of bandwidth",
        None,
    )
    del table

    from sparse_train_step import NNXClassifier, TextClassifier, loss_fn, make_batches, make_nnx_step

    from jaxembed.train import Trainer, row_sparse

    vocab = size["vocab"]
    nnx_model = NNXClassifier(vocab, 64)
    table = np.asarray(nnx_model.embed.embedding[...])
    trainer = Trainer(TextClassifier(vocab, 64, table, nnx_model.head), row_sparse(optax.adam(1e-3)), loss_fn)
    optimizer = nnx.Optimizer(nnx_model, optax.adam(1e-3), wrt=nnx.Param)
    nnx_step = make_nnx_step()
    data = make_batches(vocab, size["batch"], size["length"], 4)
    counter = [0]

    def next_batch():
        counter[0] = (counter[0] + 1) % len(data)
        return data[counter[0]]

    times = interleaved(
        {
            "ours": lambda: trainer.train_step(next_batch())["loss"],
            "nnx": lambda: nnx_step(nnx_model, optimizer, next_batch()),
        },
        repeats=3,
        calls=5,
    )
    ours, theirs = median(times["ours"]), median(times["nnx"])
    row(
        f"text-classifier step, V={vocab:,} (row-sparse vs NNX)",
        f"{ours:.2f} vs {theirs:.2f} ms",
        f"{theirs / ours:.1f}x faster",
        ours < theirs,
    )

    tx = optax.adam(1e-3)
    lazy_adam = sparse.lazy(tx)
    table = jnp.asarray(rng.normal(size=(vocab, 64)), jnp.float32)
    grad = sparse.RowSparseGrad(
        jnp.asarray(rng.integers(0, vocab, 4096), jnp.int32),
        jnp.asarray(rng.normal(size=(4096, 64)), jnp.float32),
    )
    lazy_state = [table, lazy_adam.init(table)]
    lazy_step = jax.jit(lambda t, s, g: lazy_adam.update(g, s, t), donate_argnums=(0, 1))

    def run_lazy():
        lazy_state[0], lazy_state[1] = lazy_step(lazy_state[0], lazy_state[1], grad)
        return lazy_state[0]

    dense_table = jnp.array(table)
    dense_state = [dense_table, tx.init(dense_table)]
    dense_grad = grad.to_dense(vocab)

    def dense_update(t, s, g):
        updates, s = tx.update(g, s, t)
        return optax.apply_updates(t, updates), s

    dense_step = jax.jit(dense_update, donate_argnums=(0, 1))

    def run_dense():
        dense_state[0], dense_state[1] = dense_step(dense_state[0], dense_state[1], dense_grad)
        return dense_state[0]

    times = interleaved({"lazy": run_lazy, "dense": run_dense}, repeats=5, calls=5)
    lazy_ms, dense_ms = median(times["lazy"]), median(times["dense"])
    row(
        f"Adam step, V={vocab:,}, 4,096 ids (lazy vs dense optax)",
        f"{lazy_ms:.2f} vs {dense_ms:.2f} ms",
        f"{dense_ms / lazy_ms:.1f}x faster",
        lazy_ms < dense_ms,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default=None)
    args = parser.parse_args()
    size = args.size or ("small" if jax.default_backend() == "cpu" else "large")
    start = time.perf_counter()
    header(
        f"device check, {size} sizes, devices: {', '.join(sorted({d.device_kind for d in jax.devices()}))}"
    )
    smoke()
    benchmarks(SIZES[size])
    width = max(len(r[0]) for r in ROWS)
    print(f"{'check':<{width}}  {'measured':>22}  {'expected / ratio':>18}  status")
    for check, value, expected, status in ROWS:
        print(f"{check:<{width}}  {value:>22}  {expected:>18}  {status}")
    failed = [r for r in ROWS if r[3] == "FAIL"]
    print(
        f"# {len(ROWS) - len(failed)} of {len(ROWS)} rows ok or informational; "
        f"{time.perf_counter() - start:.0f} s"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
