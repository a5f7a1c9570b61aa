"""Peak memory of a 16-bit table's life: chunked init, a train step, orbax save, orbax restore.

Each phase resets the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs``) and reports
``VmHWM`` minus the RSS at the start of the phase: the memory the phase needed beyond what was
already resident. A full-size float32 temporary of the table would show up as at least twice the
table's bytes. The process makes the kernel kill it first if memory runs out (``oom_score_adj``).

Usage::

    nice -n 10 python benchmarks/table_memory.py --rows 100000000 --dtype bfloat16 \\
        > benchmarks/results/table_memory.txt
    python benchmarks/table_memory.py --rows 4000000 --json   # (the test's scale)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time

D = 64


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


class Phase:
    """``with Phase(name, out):`` records the peak RSS above the RSS at entry, and the seconds."""

    def __init__(self, name: str, out: dict):
        self.name, self.out = name, out

    def __enter__(self):
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        self.rss, self.start = _status("VmRSS"), time.perf_counter()

    def __exit__(self, *exc):
        self.out[self.name] = {
            "extra_mib": round((_status("VmHWM") - self.rss) / 2**20, 1),
            "rss_after_mib": round(_status("VmRSS") / 2**20, 1),
            "seconds": round(time.perf_counter() - self.start, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=float, default=4e6)
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    parser.add_argument("--dir", default=None, help="where to write the checkpoint (default: a temp folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (for the test)")
    parser.add_argument("--streamed-only", action="store_true", help="skip the whole-array save and restore")
    args = parser.parse_args()
    with open("/proc/self/oom_score_adj", "w") as adj:
        adj.write("1000")
    rows = int(args.rows)

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from jaxembed import checkpoint, sparse
    from jaxembed.keras import initializers
    from jaxembed.sparse import rowwise_adagrad, stochastic_rounding

    dtype = jnp.dtype(args.dtype)
    phases: dict = {}
    opt = sparse.lazy(optax.chain(rowwise_adagrad(0.01), stochastic_rounding(0)))
    with Phase("init (chunked, uniform)", phases):
        table = initializers.initialize_table("uniform", jax.random.key(0), (rows, D), dtype)
        state = opt.init(table)
        jax.block_until_ready((table, state))
    ids = jnp.asarray(np.random.default_rng(0).integers(0, rows, size=(256, 128)), jnp.int32)

    def step(table, state, ids):
        _, grad = sparse.value_and_row_sparse_grad(lambda r: jnp.sum(r.astype(jnp.float32)), table, ids)
        return opt.update(grad, state, table)

    jitted = jax.jit(step, donate_argnums=(0, 1))
    with Phase("train step (x3)", phases):
        for _ in range(3):
            table, state = jitted(table, state, ids)
        jax.block_until_ready(table)
    probe = np.asarray(table[:4].astype(jnp.float32))
    folder = tempfile.mkdtemp(dir=args.dir)
    path = os.path.join(folder, "ckpt")

    def as_data(x):  # the PRNG key of stochastic rounding is saved as its raw data
        return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x

    tree = {"table": table, "state": jax.tree.map(as_data, state)}
    if not args.streamed_only:
        with Phase("save (orbax, whole arrays)", phases):
            checkpoint.save_checkpoint(path, tree)
    with Phase("save (orbax, streamed)", phases):
        checkpoint.save_streamed_checkpoint(path + "-streamed", tree)
    like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), tree)
    del table, state, tree
    with Phase("restore (orbax, streamed)", phases):
        restored = checkpoint.restore_streamed_checkpoint(path + "-streamed", like)
        jax.block_until_ready(restored)
    if not args.streamed_only:
        del restored
        with Phase("restore (orbax, whole arrays)", phases):
            restored = checkpoint.restore_checkpoint(path, like)
            jax.block_until_ready(restored)
    same = bool(np.array_equal(np.asarray(restored["table"][:4].astype(jnp.float32)), probe))
    table_mib = rows * D * dtype.itemsize / 2**20
    result = {
        "rows": rows,
        "dtype": dtype.name,
        "table_mib": round(table_mib, 1),
        "float32_table_mib": round(rows * D * 4 / 2**20, 1),
        "restored_equal": same,
        "peak_rss_mib": round(_status("VmHWM") / 2**20, 1),
        "phases": phases,
    }
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
        return
    print(f"# command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), jax {jax.__version__}")
    print(
        f"# a ({rows:,}, {D}) {dtype.name} table ({table_mib:,.0f} MiB; float32 would be "
        f"{result['float32_table_mib']:,.0f} MiB) with row-wise Adagrad + stochastic rounding"
    )
    print("# extra MiB: peak RSS during the phase minus RSS at its start")
    print(f"{'phase':<26} {'extra MiB':>10} {'RSS after MiB':>14} {'seconds':>8}")
    for name, p in phases.items():
        print(f"{name:<26} {p['extra_mib']:>10,.1f} {p['rss_after_mib']:>14,.1f} {p['seconds']:>8.1f}")
    print(
        f"# restored table equals the saved one: {same}; process peak RSS {result['peak_rss_mib']:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
