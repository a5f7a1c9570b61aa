"""One Adam step on an embedding table: jaxembed's lazy update vs dense optax.adam vs torch.

    python benchmarks/sparse_optimizer_step.py [--vocabs 10000 100000 1000000 4000000 --dim 64 --ids 4096]

Each step takes the ids of a batch and the gradient of each looked-up row, and updates the
table and its Adam moments:

* jaxembed lazy: ``lazy(optax.adam).update`` of the per-lookup ``RowSparseGrad`` (it sums repeated ids),
  jitted with the table and state donated (the default picks a masked dense update for small
  tables; "gather path only" forces the gather/scatter path at every size);
* optax dense: the dense gradient (zeros + scatter-add, what ``jax.grad`` of a lookup gives) +
  ``optax.adam``, jitted and donated;
* torch SparseAdam: ``nn.Embedding(sparse=True)`` forward/backward with the same row gradients +
  ``torch.optim.SparseAdam``;
* torch Adam: ``nn.Embedding`` (dense gradient) + ``torch.optim.Adam``.

Correctness first (lazy = dense after one step; lazy = SparseAdam after three), then
interleaved timing (median ms per step), then peak memory per case in a fresh subprocess
(see benchmarks/_harness.py: peak RSS above the kept state; for JAX also XLA's temp bytes).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _harness import header, interleaved, measure_peak, median, peak_in_subprocess  # noqa: E402

from jaxembed import sparse  # noqa: E402

LR = 1e-3
METHODS = (
    "jaxembed lazy adam",
    "lazy, gather path only",
    "optax dense adam",
    "torch SparseAdam",
    "torch Adam",
)


def make_case(method: str, vocab: int, dim: int, seed: int = 0, eps: float = 1e-8):
    """Returns (step(ids, row_grads) -> table, table_getter, xla_temp_bytes or None)."""
    table0 = np.random.default_rng(seed).normal(size=(vocab, dim)).astype(np.float32) * 0.05
    if method.startswith("torch"):
        import torch

        dense = method == "torch Adam"
        embedding = torch.nn.Embedding(vocab, dim, sparse=not dense)
        with torch.no_grad():
            embedding.weight.copy_(torch.from_numpy(table0))
        optimizer = (torch.optim.Adam if dense else torch.optim.SparseAdam)(
            embedding.parameters(), lr=LR, eps=eps
        )

        def torch_step(ids, row_grads):
            optimizer.zero_grad(set_to_none=True)
            embedding(torch.from_numpy(np.asarray(ids, np.int64))).backward(
                torch.from_numpy(np.asarray(row_grads))
            )
            optimizer.step()
            return None

        return torch_step, lambda: embedding.weight.detach().numpy(), None

    table = jnp.asarray(table0)
    if method in ("jaxembed lazy adam", "lazy, gather path only"):
        # The default picks the masked dense path for small tables (ids >= 1/4 of the rows).
        dense_fraction = 0.25 if method == "jaxembed lazy adam" else None
        opt = sparse.lazy(optax.adam(LR, eps=eps), dense_fraction=dense_fraction)

        def jax_step(table, state, ids, row_grads):
            return opt.update(sparse.RowSparseGrad(ids, row_grads), state, table)  # sums repeated ids

        state = opt.init(table)
    else:
        tx = optax.adam(LR, eps=eps)

        def jax_step(table, state, ids, row_grads):
            grad = jnp.zeros_like(table).at[ids].add(row_grads)
            updates, state = tx.update(grad, state, table)
            return optax.apply_updates(table, updates), state

        state = tx.init(table)
    jitted = jax.jit(jax_step, donate_argnums=(0, 1))
    holder = {"table": table, "state": state}

    def step(ids, row_grads):
        holder["table"], holder["state"] = jitted(holder["table"], holder["state"], ids, row_grads)
        return holder["table"]

    example = (jax.ShapeDtypeStruct((4096,), jnp.int32), jax.ShapeDtypeStruct((4096, dim), jnp.float32))
    temp = jitted.lower(table, state, *example).compile().memory_analysis().temp_size_in_bytes
    return step, lambda: np.asarray(holder["table"]), temp


def batches(vocab: int, n: int, dim: int, count: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(0, vocab, n).astype(np.int32), (rng.normal(size=(n, dim)) * 0.1).astype(np.float32))
        for _ in range(count)
    ]


def memory_main(method: str, vocab: int, dim: int, n: int) -> None:
    if method.startswith("torch"):
        import torch

        torch.set_num_threads(1)
    step, _, temp = make_case(method, vocab, dim)
    data = batches(vocab, n, dim, 1)
    if not method.startswith("torch"):
        data = [jax.device_put(b) for b in data]
    peak = measure_peak(lambda: step(*data[0]))
    print(json.dumps({"peak": peak, "xla_temp": temp}))


def check(vocab: int, dim: int, n: int) -> None:
    data = batches(vocab, n, dim, 3)
    # torch adds eps outside Adam's bias correction, optax inside: a tiny eps makes them agree.
    cases = {m: make_case(m, vocab, dim, eps=1e-12) for m in METHODS}
    cases["jaxembed lazy adam"][0](*data[0])
    cases["lazy, gather path only"][0](*data[0])
    cases["optax dense adam"][0](*data[0])
    cases["torch Adam"][0](*data[0])
    lazy_after_one = cases["jaxembed lazy adam"][1]()
    np.testing.assert_allclose(lazy_after_one, cases["optax dense adam"][1](), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(lazy_after_one, cases["torch Adam"][1](), rtol=1e-4, atol=1e-6)
    for batch in data[1:]:
        cases["jaxembed lazy adam"][0](*batch)
        cases["lazy, gather path only"][0](*batch)
    np.testing.assert_allclose(
        cases["jaxembed lazy adam"][1](), cases["lazy, gather path only"][1](), rtol=1e-5, atol=1e-7
    )
    for batch in data:
        cases["torch SparseAdam"][0](*batch)
    np.testing.assert_allclose(
        cases["jaxembed lazy adam"][1](), cases["torch SparseAdam"][1](), rtol=1e-4, atol=1e-6
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocabs", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 4_000_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--ids", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory", nargs=4, metavar=("METHOD", "VOCAB", "DIM", "IDS"))
    args = parser.parse_args()
    if args.memory:
        method, vocab, dim, n = args.memory
        memory_main(method, int(vocab), int(dim), int(n))
        return
    import torch

    # One thread: on a small machine shared with other jobs, torch's two-thread kernels spend most
    # of their time waiting for each other (medians 10-50x their minimum); one thread is its best case.
    torch.set_num_threads(1)
    check(1000, args.dim, args.ids)
    header(
        f"one Adam step on a (V, {args.dim}) float32 table, {args.ids} random ids per step "
        f"(uniform, with repeats); torch {torch.__version__} ({torch.get_num_threads()} thread). "
        "Checked first: lazy = dense after 1 step, lazy = torch SparseAdam after 3."
    )
    print(
        "# transient MiB: memory a step needs beyond the table and optimizer state it keeps. JAX: the "
        "compiled step's temp_size_in_bytes (memory_analysis()); torch: peak RSS during steps minus RSS "
        "before them, in a fresh process per case (benchmarks/_harness.py). A dense (V, 64) float32 "
        "gradient is V/4096 MiB."
    )
    rows = []
    for vocab in args.vocabs:
        data = batches(vocab, args.ids, args.dim, 4)
        jax_data = [jax.device_put(b) for b in data]
        slow = vocab >= 1_000_000
        repeats, calls = (5, 3) if slow else (args.repeats, 10)

        def runner(method, step):
            source = data if method.startswith("torch") else jax_data
            counter = [0]

            def run():
                counter[0] = (counter[0] + 1) % len(source)
                return step(*source[counter[0]])

            return run

        temps = {}
        if vocab * args.dim * 4 * 3 * len(METHODS) < 8 * 2**30:  # all cases fit in memory: interleave
            cases = {m: make_case(m, vocab, args.dim) for m in METHODS}
            times = interleaved({m: runner(m, c[0]) for m, c in cases.items()}, repeats=repeats, calls=calls)
            temps = {m: c[2] for m, c in cases.items()}
            del cases
        else:  # e.g. V=4*10^6: five tables with their state do not fit together; one case at a time
            times = {}
            for method in METHODS:
                step, _, temps[method] = make_case(method, vocab, args.dim)
                times.update(interleaved({method: runner(method, step)}, repeats=repeats, calls=calls))
                del step
                gc.collect()
        gc.collect()
        for method in METHODS:
            if temps[method] is None:  # torch: peak RSS above the kept state, in a fresh process
                transient = peak_in_subprocess(__file__, method, str(vocab), str(args.dim), str(args.ids))[
                    "peak"
                ]
            else:  # JAX: the compiled step's temporary buffers (XLA's memory_analysis)
                transient = temps[method]
            rows.append((vocab, method, median(times[method]), min(times[method]), transient))
    print(f"{'V':>9} {'method':24} {'ms/step':>9} {'min':>8} {'dense/this':>11} {'transient MiB':>14}")
    for vocab, method, ms, low, transient in rows:
        dense_ms = next(r[2] for r in rows if r[0] == vocab and r[1] == "optax dense adam")
        print(f"{vocab:9d} {method:24} {ms:9.3f} {low:8.3f} {dense_ms / ms:10.1f}x {transient / 2**20:14.2f}")
    for column, label in ((2, "median"), (3, "min")):
        lazy = {r[0]: r[column] for r in rows if r[1] == "jaxembed lazy adam"}
        gather = {r[0]: r[column] for r in rows if r[1] == "lazy, gather path only"}
        sparse_adam = {r[0]: r[column] for r in rows if r[1] == "torch SparseAdam"}
        dense = {r[0]: r[column] for r in rows if r[1] == "optax dense adam"}
        first, last = min(lazy), max(lazy)
        print(f"# targets on the {label} times:")
        print(
            f"#   lazy step growth V={first} -> V={last}: {lazy[last] / lazy[first]:.2f}x (target < 1.5x); "
            f"gather path only: {gather[last] / gather[first]:.2f}x"
        )
        if 1_000_000 in lazy:
            speedup = dense[1_000_000] / lazy[1_000_000]
            print(f"#   V=10^6: lazy is {speedup:.1f}x faster than dense optax.adam (>= 40x)")
        for vocab in lazy:
            print(
                f"#   V={vocab}: lazy / torch SparseAdam = {lazy[vocab] / sparse_adam[vocab]:.2f}, "
                f"lazy / dense optax = {lazy[vocab] / dense[vocab]:.2f} (targets <= 1)"
            )


if __name__ == "__main__":
    main()
