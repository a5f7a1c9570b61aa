"""Two processes train one embedding table together, each owning half of its rows.

Run it as is: it starts ``--num-processes`` copies of itself on this machine
(``jax.distributed.initialize`` over loopback, CPU collectives through gloo), each
with one CPU device that holds ``vocab / num_processes`` rows of the table. They
train with lazy Adam (:func:`jaxembed.sharding.sharded_lazy_update`), looking rows
up with :func:`jaxembed.sharding.sharded_lookup`; then this process trains the same
table on one device with the same batches and checks both tables agree.

    python examples/multiprocess_embedding.py --out /tmp/mp

Writes ``summary.json`` (losses, the largest difference from one process) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

# One CPU device per process, whatever the caller's XLA_FLAGS say (set before JAX is imported).
os.environ["XLA_FLAGS"] = (
    re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", ""))
    + " --xla_force_host_platform_device_count=1"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from jaxembed import ops, sharding, sparse  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("multiprocess_out"))
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--process-id", type=int, default=None, help="(internal) run as this worker")
    parser.add_argument("--port", type=int, default=None, help="(internal) the coordinator's port")
    return parser.parse_args()


def data(args: argparse.Namespace) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The initial table and the batches: the same in every process (one seed)."""
    rng = np.random.default_rng(0)
    table = rng.uniform(-0.05, 0.05, size=(args.vocab, args.dim)).astype(np.float32)
    targets = rng.normal(size=(args.vocab, args.dim)).astype(np.float32)  # each id's vector to learn
    batches = []
    for _ in range(args.steps):
        ids = rng.integers(0, args.vocab, size=(args.batch, 2)).astype(np.int32)
        batches.append((ids, targets[ids]))
    return table, batches


def loss_of_rows(rows: jax.Array, target: jax.Array) -> jax.Array:
    return jnp.mean((rows - target) ** 2)


def lazy_adam() -> sparse.LazyTransformation:
    """Made after ``jax.distributed.initialize`` (wrapping checks the optimizer, which runs JAX)."""
    return sparse.lazy(optax.adam(0.05))


def train_one_device(args: argparse.Namespace) -> tuple[np.ndarray, list[float]]:
    """The reference: the whole table on one device, the same lazy Adam."""
    table, batches = data(args)
    table = jnp.asarray(table)
    opt = lazy_adam()
    state = opt.init(table)

    @jax.jit
    def step(table, state, ids, target):
        rows = ops.lookup(table, ids)
        loss, grad_rows = jax.value_and_grad(loss_of_rows)(rows, target)
        grad = sparse.coalesce(ids, grad_rows, table.shape[0])
        return (*opt.update(grad, state, table), loss)

    losses = []
    for ids, target in batches:
        table, state, loss = step(table, state, ids, target)
        losses.append(float(loss))
    return np.asarray(table), losses


def worker(args: argparse.Namespace) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{args.port}",
        num_processes=args.num_processes,
        process_id=args.process_id,
        initialization_timeout=60,
    )
    opt = lazy_adam()
    mesh = sharding.make_mesh(1, jax.device_count())  # one device per process on the "model" axis
    row_split = sharding.table_sharding(mesh, "row")
    replicated = NamedSharding(mesh, PartitionSpec())
    initial, batches = data(args)
    # Each process builds only the rows it owns.
    table = jax.make_array_from_callback(initial.shape, row_split, lambda index: initial[index])
    owned = [shard.data.shape for shard in table.addressable_shards]
    state_shardings = jax.tree.map(
        lambda leaf: row_split if leaf.shape == table.shape else replicated, jax.eval_shape(opt.init, table)
    )
    state = jax.jit(opt.init, out_shardings=state_shardings)(table)

    def global_copy(array: np.ndarray) -> jax.Array:
        return jax.make_array_from_callback(array.shape, replicated, lambda index: array[index])

    @jax.jit
    def step(table, state, ids, target):
        rows = sharding.sharded_lookup(table, ids, mesh)
        loss, grad_rows = jax.value_and_grad(loss_of_rows)(rows, target)
        grad = sparse.RowSparseGrad(ids.ravel(), grad_rows.reshape(-1, grad_rows.shape[-1]))
        table, state = sharding.sharded_lazy_update(opt, grad, state, table, mesh, placement="row")
        return table, state, loss

    losses = []
    for ids, target in batches:
        table, state, loss = step(table, state, global_copy(ids), global_copy(target))
        losses.append(float(np.asarray(loss.addressable_data(0))))
    from jax.experimental import multihost_utils

    whole = np.asarray(multihost_utils.process_allgather(table, tiled=True))
    if jax.process_index() == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        np.save(args.out / "table.npy", whole)
        (args.out / "losses.json").write_text(json.dumps(losses))
    print(
        f"process {jax.process_index()}/{jax.process_count()}: owns rows of shape {owned}, "
        f"final loss {losses[-1]:.4f}"
    )
    jax.distributed.shutdown()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(args: argparse.Namespace) -> None:
    port = free_port()
    start = time.perf_counter()
    command = [sys.executable, __file__, "--out", str(args.out), "--port", str(port)]
    command += ["--num-processes", str(args.num_processes), "--steps", str(args.steps)]
    command += ["--vocab", str(args.vocab), "--dim", str(args.dim), "--batch", str(args.batch)]
    workers = [
        subprocess.Popen(
            command + ["--process-id", str(i)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for i in range(args.num_processes)
    ]
    outputs = []
    for process in workers:
        try:
            outputs.append(process.communicate(timeout=120)[0])
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            raise SystemExit("a worker process did not finish within 120 s")
    for number, (process, output) in enumerate(zip(workers, outputs)):
        lines = [line for line in output.splitlines() if line.startswith("process ")]
        print("\n".join(lines) if process.returncode == 0 else output)
        if process.returncode != 0:
            raise SystemExit(f"worker {number} failed with exit code {process.returncode}")
    elapsed = time.perf_counter() - start
    together = np.load(args.out / "table.npy")
    losses = json.loads((args.out / "losses.json").read_text())
    alone, reference_losses = train_one_device(args)
    difference = float(np.max(np.abs(together - alone)))
    print(
        f"{args.num_processes} processes trained {args.steps} steps in {elapsed:.1f} s; "
        f"loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    )
    print(f"largest difference from one process: {difference:.2e}")
    summary = {
        "num_processes": args.num_processes,
        "steps": args.steps,
        "losses": losses,
        "one_process_losses": reference_losses,
        "max_abs_difference": difference,
        "seconds": elapsed,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


def main() -> None:
    args = parse_args()
    if args.vocab % args.num_processes:
        raise SystemExit(
            f"--vocab ({args.vocab}) must be a multiple of --num-processes ({args.num_processes})."
        )
    if args.process_id is None:
        launch(args)
    else:
        worker(args)


if __name__ == "__main__":
    main()
