"""What a step communicates, per table placement, read from the compiled HLO, next to a naive all-gather.

On 8 devices (simulated on the CPU unless there are 8 real ones) the script builds
lookups and train steps for a table placed row-wise, column-wise or replicated
(:mod:`jaxembed.sharding`), checks each against the one-device result, compiles
it, and sums the bytes of every collective in its HLO
(:func:`jaxembed.inspect.collectives`): the bytes one device receives or reduces
per step. The baseline gathers the whole table onto every device first
(:func:`jaxembed.sharding.gathered_lookup`). Times are medians of interleaved
repeats; on simulated CPU devices they measure XLA's CPU collectives, not a
network, so read the bytes first.

Run: ``python benchmarks/sharding_comm.py [--vocab 131072] [--dim 64] [--batch 512] [--bag 4]``
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _harness import median, timed  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

import jaxembed  # noqa: E402
from jaxembed import ops, sharding, sparse, train  # noqa: E402


def loss_of_rows(rows: jax.Array) -> jax.Array:
    return jnp.mean((rows - 0.5) ** 2)


def describe(found: list[jaxembed.inspect.Collective]) -> str:
    counts = Counter(c.op for c in found)
    return ", ".join(f"{n}x {op}" for op, n in sorted(counts.items())) or "none"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", type=int, default=131_072)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--bag", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print("command:", " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv]))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), jax {jax.__version__}, "
        f"{jax.device_count()} {jax.default_backend()} devices"
    )
    assert jax.device_count() == 8, "this benchmark needs 8 devices"
    V, D = args.vocab, args.dim
    table = jax.random.normal(jax.random.key(0), (V, D), jnp.float32)
    host_ids = np.random.default_rng(0).integers(0, V, (args.batch, args.bag)).astype(np.int32)
    table_bytes = V * D * 4
    print(f"table ({V}, {D}) float32 = {table_bytes / 2**20:.1f} MiB; ids ({args.batch}, {args.bag})\n")

    # name -> (jitted function, arguments, reference output or None, check)
    cases: dict[str, tuple] = {}

    # --- lookups on a (1, 8) mesh: every device holds 1/8 of the table (or all of it).
    mesh = sharding.make_mesh(1, 8)
    ids = jnp.asarray(host_ids)
    expected = np.asarray(table)[host_ids]
    placed = {p: jax.device_put(table, sharding.table_sharding(mesh, p)) for p in sharding.PLACEMENTS}
    lookup = jax.jit(ops.lookup)
    cases["lookup  naive all-gather (baseline)"] = (
        jax.jit(lambda t, i: sharding.gathered_lookup(t, i, mesh)),
        (placed["row"], ids),
        expected,
    )
    cases["lookup  row, jit (GSPMD)"] = (lookup, (placed["row"], ids), expected)
    cases["lookup  row, shard_map"] = (
        jax.jit(lambda t, i: sharding.sharded_lookup(t, i, mesh)),
        (placed["row"], ids),
        expected,
    )
    cases["lookup  column, jit"] = (lookup, (placed["column"], ids), expected)
    cases["lookup  replicated, jit"] = (lookup, (placed["replicated"], ids), expected)

    # --- train steps with Adam on a (2, 8/2) mesh: the batch split over "data", the table over "model".
    mesh2 = sharding.make_mesh(2, 4)
    batch = jax.device_put(host_ids, NamedSharding(mesh2, PartitionSpec("data")))
    dense_adam = optax.adam(1e-2)
    lazy_adam = sparse.lazy(optax.adam(1e-2))

    def dense_step(lookup_fn):
        def step(t, s, i):
            loss, grad = jax.value_and_grad(lambda t: loss_of_rows(lookup_fn(t, i)))(t)
            updates, s = dense_adam.update(grad, s, t)
            return optax.apply_updates(t, updates), s

        return step

    reference_dense = jax.jit(dense_step(ops.lookup))(table, dense_adam.init(table), host_ids)[0]
    reference_lazy = jax.jit(
        lambda t, s, i: lazy_adam.update(sparse.value_and_row_sparse_grad(loss_of_rows, t, i)[1], s, t)
    )(table, lazy_adam.init(table), host_ids)[0]

    naive_table = jax.device_put(jnp.copy(table), sharding.table_sharding(mesh2, "row"))
    cases["train   naive all-gather + dense Adam (baseline)"] = (
        jax.jit(
            dense_step(lambda t, i: sharding.gathered_lookup(t, i, mesh2, data_axis="data")),
            out_shardings=(naive_table.sharding, None),
            donate_argnums=(0, 1),
        ),
        (naive_table, dense_adam.init(naive_table), batch),
        reference_dense,
    )
    for placement in sharding.PLACEMENTS:
        t = jax.device_put(jnp.copy(table), sharding.table_sharding(mesh2, placement))  # donated: own buffers
        cases[f"train   {placement}, dense Adam (jit)"] = (
            jax.jit(dense_step(ops.lookup), out_shardings=(t.sharding, None), donate_argnums=(0, 1)),
            (t, dense_adam.init(t), batch),
            reference_dense,
        )
    for placement in sharding.PLACEMENTS:
        t = jax.device_put(jnp.copy(table), sharding.table_sharding(mesh2, placement))  # donated: own buffers

        def lazy_step(t, s, i, placement=placement):
            _, grad = sparse.value_and_row_sparse_grad(loss_of_rows, t, i)
            return sharding.sharded_lazy_update(
                lazy_adam, grad, s, t, mesh2, placement=placement, data_axis="data"
            )

        cases[f"train   {placement}, lazy Adam (sharded_lazy_update)"] = (
            jax.jit(lazy_step, donate_argnums=(0, 1)),
            (t, lazy_adam.init(t), batch),
            reference_lazy,
        )

    # The trainer's own row-sparse mode (jaxembed.train.Trainer(..., row_sparse=True)) on placed tables.
    for placement in sharding.PLACEMENTS:
        model = jaxembed.Embedding(
            V, D, weights=np.asarray(table), embeddings_sharding=sharding.table_sharding(mesh2, placement)
        )
        trainer = train.Trainer(model, optax.adam(1e-2), lambda m, i: loss_of_rows(m(i)), row_sparse=True)
        cases[f"train   {placement}, Trainer(row_sparse=True)"] = (
            trainer._train_step,
            (trainer.state, batch),
            reference_lazy,
        )

    def carry(out, fn_args):
        """(arguments of the next call, the table) of a step's output; train steps donate their state."""
        if isinstance(out, tuple) and isinstance(out[0], train.TrainState):  # (state, metrics)
            return (out[0], fn_args[-1]), out[0].params["embeddings"][...]
        if isinstance(out, tuple):  # (table, opt_state)
            return (*out, fn_args[-1]), out[0]
        return fn_args, out

    # The HLO, then correctness (the first call).
    rows = []
    current = {}
    for name, (fn, fn_args, want) in cases.items():
        rows.append((name, jaxembed.inspect.collectives(fn.lower(*fn_args).compile())))
        current[name], got = carry(fn(*fn_args), fn_args)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-5, atol=2e-6, err_msg=name)

    # Interleaved timing.
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (fn, _, _) in cases.items():
            ms, out = timed(lambda fn=fn, name=name: fn(*current[name]))
            times[name].append(ms)
            current[name] = carry(out, current[name])[0]

    baselines = {"lookup": rows[0][1], "train": rows[5][1]}
    print(
        f"{'step':52s} {'collectives':52s} {'bytes/device':>14s} {'vs baseline':>12s} "
        f"{'all-gather B':>13s} {'ms':>8s}"
    )
    for name, found in rows:
        total = sum(c.bytes for c in found)
        base = sum(c.bytes for c in baselines[name.split()[0]])
        gathered = sum(c.bytes for c in found if c.op == "all-gather")
        print(
            f"{name:52s} {describe(found):52s} {total:14,d} {total / base:11.4f}x {gathered:13,d} "
            f"{median(times[name]):8.2f}"
        )
    print(
        "\nbytes/device: the sum over the compiled step's collectives of each one's result on one device "
        "(all-gather: the gathered array; all-reduce: the reduced array). ms: median step time, train "
        "steps donating their table and optimizer state."
    )
    print(
        "Every placement is checked equal to the one-device result before it is measured. "
        "The dense Adam steps all-reduce the table's gradient over the data axis "
        "(the shard each device holds); the lazy steps all-gather only the touched ids and gradient rows."
    )


if __name__ == "__main__":
    main()
