"""A table bigger than one device's share, split by rows over 8 devices, trained with lazy Adam.

On a machine without 8 accelerators the devices are simulated on the CPU
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, set here unless already
given). The table is created *already split*: ``jaxembed.Embedding(...,
embeddings_sharding=("model", None))`` inside ``nnx.jit`` lets each device draw
its own rows, so the whole table never sits on one device. Each step looks up
multi-hot bags with :func:`jaxembed.sharding.sharded_lookup` (local gathers and one
all-reduce of the looked-up vectors), averages each bag, and updates only the
touched rows of the table and of Adam's moments on the device that owns them
(:func:`jaxembed.sharding.sharded_lazy_update`). The compiled step's collectives
are read from its HLO and printed next to the table's size.

    python examples/sharded_embedding.py --out /tmp/sharded

Writes ``summary.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

import jaxembed  # noqa: E402
from jaxembed import ops, sharding, sparse  # noqa: E402

MIB = 2**20


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("sharded_out"))
    parser.add_argument("--vocab", type=int, default=1_000_000, help="rows (a multiple of the device count)")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument(
        "--device-budget-mib",
        type=float,
        default=None,
        help="memory one device may spend on the table + Adam state (default: 3/8 of it all)",
    )
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--bag", type=int, default=4, help="ids per example (a multi-hot feature)")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args()


def true_vectors(ids: jax.Array, dim: int) -> jax.Array:
    """The hidden vector of each id, computed on the fly (no second table)."""
    freq = jnp.arange(1, dim + 1, dtype=jnp.float32) * 0.37
    return jnp.sin(ids[..., None].astype(jnp.float32) * 0.001 * freq + freq)


def main() -> None:
    args = parse_args()
    devices = jax.device_count()
    mesh = sharding.make_mesh(1, devices)
    if args.vocab % devices:
        raise SystemExit(f"--vocab ({args.vocab}) must be a multiple of the device count ({devices}).")
    print(f"JAX backend: {jax.default_backend()}; devices: {devices}; mesh: {dict(mesh.shape)}")

    table_mib = args.vocab * args.dim * 4 / MIB
    with_adam = 3 * table_mib  # the table, Adam's mu and nu
    budget = args.device_budget_mib or with_adam * 3 / 8
    per_device = with_adam / devices
    print(
        f"table {args.vocab:,} x {args.dim} float32 = {table_mib:.1f} MiB; "
        f"with Adam's moments {with_adam:.1f} MiB"
    )
    print(
        f"per-device budget {budget:.1f} MiB: the whole does not fit on one device ({with_adam:.1f} MiB), "
        f"one eighth does ({per_device:.1f} MiB)"
    )
    assert with_adam > budget >= per_device, "choose --device-budget-mib between a share and the whole"

    @nnx.jit
    def create() -> jaxembed.Embedding:
        # Each device initializes its own rows: the whole table never exists on one device.
        return jaxembed.Embedding(args.vocab, args.dim, embeddings_sharding=("model", None), rngs=0)

    with jax.set_mesh(mesh):
        model = create()
    table = model.embeddings[...]
    shard_shapes = sorted({shard.data.shape for shard in table.addressable_shards})
    print(f"each of the {len(table.addressable_shards)} devices holds rows of shape {shard_shapes[0]}")

    opt = sparse.lazy(optax.adam(0.05))
    row_split = sharding.table_sharding(mesh, "row")
    state_shardings = jax.tree.map(
        lambda leaf: row_split if leaf.shape == table.shape else NamedSharding(mesh, PartitionSpec()),
        jax.eval_shape(opt.init, table),
    )
    state = jax.jit(opt.init, out_shardings=state_shardings)(table)

    def loss_of_rows(rows: jax.Array, ids: jax.Array) -> jax.Array:
        bags = ops.combine_bags(rows, combiner="mean")
        return jnp.mean((bags - ops.combine_bags(true_vectors(ids, args.dim), combiner="mean")) ** 2)

    def train_step(table, state, ids):
        rows = sharding.sharded_lookup(table, ids, mesh)
        loss, grad_rows = jax.value_and_grad(loss_of_rows)(rows, ids)
        grad = sparse.RowSparseGrad(ids.ravel(), grad_rows.reshape(-1, args.dim))
        table, state = sharding.sharded_lazy_update(opt, grad, state, table, mesh)
        return table, state, loss

    step = jax.jit(train_step, donate_argnums=(0, 1))
    rng = np.random.default_rng(0)
    hot = rng.integers(0, args.vocab, size=4096)  # a popular subset, as in real traffic

    def batch() -> np.ndarray:
        return rng.choice(hot, size=(args.batch, args.bag)).astype(np.int32)

    compiled = step.lower(table, state, batch()).compile()
    moved = jaxembed.inspect.collectives(compiled)
    moved_bytes = sum(c.bytes for c in moved)
    print("collectives per step: " + ", ".join(f"{c.op} {c.shapes[0]} ({c.bytes:,} B)" for c in moved))
    print(
        f"bytes communicated per step: {moved_bytes:,} (the table is {int(table_mib * MIB):,}); "
        f"all-gathers: {sum(c.op == 'all-gather' for c in moved)}"
    )

    losses = []
    start = time.perf_counter()
    for number in range(args.steps):
        table, state, loss = step(table, state, batch())
        losses.append(loss)
        if not args.quiet and (number + 1) % max(1, args.steps // 5) == 0:
            print(f"step {number + 1:4d}: loss {float(loss):.4f}")
    losses = [float(x) for x in jax.device_get(losses)]
    elapsed = time.perf_counter() - start
    print(f"{args.steps} steps in {elapsed:.2f} s; loss {losses[0]:.4f} -> {losses[-1]:.4f}")

    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "devices": devices,
        "table_mib": table_mib,
        "table_and_adam_mib": with_adam,
        "device_budget_mib": budget,
        "shard_shape": list(shard_shapes[0]),
        "shards": len(table.addressable_shards),
        "collectives": [{"op": c.op, "shapes": list(c.shapes), "bytes": c.bytes} for c in moved],
        "bytes_per_step": moved_bytes,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "train_steps": args.steps,
        "table_sharding": str(table.sharding.spec),
        "adam_mu_sharding": str(state[0].mu.sharding.spec),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
