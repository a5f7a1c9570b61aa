"""The largest table (rows at D=64) that trains on this machine, by optimizer and storage dtype.

Each (implementation, optimizer, dtype, V) case runs in a fresh child process that makes the
kernel kill *it* first when memory runs out (``oom_score_adj`` 1000) and lowers its priority.
The child builds the table (jaxembed: chunk by chunk, never a full-size float32 array), times a
train step on 256 bags of 128 ids -- sum-pooled bags and plain lookups -- and reports its peak
RSS (``VmHWM``). Sizes climb a ladder per configuration and stop at the first failure (or when
the machine's available memory would not hold the case); each finished case appends one JSON
line to ``benchmarks/results/max_table.jsonl``, so an interrupted run resumes where it stopped.
FBGEMM (``fbgemm-gpu-cpu``, CPU table-batched embeddings) runs the same table, optimizer, dtype
and batch at 10^6 and 10^7 rows in the same run.

Usage::

    nice -n 10 python benchmarks/max_table.py --max-gb 3      # sizes that fit in 3 GB
    nice -n 10 python benchmarks/max_table.py --max-gb 21     # then the large ones (resumes)
    python benchmarks/max_table.py --report                   # the table from the JSON lines

The report ends with ``max rows trained at D=64: <N>``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

D = 64
BAGS, BAG_SIZE = 256, 128
LADDER = (10**6, 10**7, 3 * 10**7, 5 * 10**7, 10**8, 1.25 * 10**8, 1.5 * 10**8, 1.75 * 10**8, 2 * 10**8)
RESULTS = Path(__file__).parent / "results"
JSONL = RESULTS / "max_table.jsonl"
TXT = RESULTS / "max_table.txt"

# (implementation, optimizer, dtype): the configurations, in the order they run.
CONFIGS = [
    ("jaxembed", "rowwise_adagrad", "float16"),
    ("jaxembed", "rowwise_adagrad", "float32"),
    ("jaxembed", "sgd", "float16"),
    ("jaxembed", "partial_rowwise_adam", "float16"),
    ("jaxembed", "adam", "float32"),
    ("jaxembed", "rowwise_adagrad", "bfloat16"),
]
FBGEMM_SIZES = (10**6, 10**7)  # where FBGEMM runs beside jaxembed, interleaved in one process
FBGEMM_HAS = {
    ("sgd", "float32"),
    ("sgd", "float16"),
    ("rowwise_adagrad", "float32"),
    ("rowwise_adagrad", "float16"),
}
STATE_BYTES = {"sgd": 0, "rowwise_adagrad": 4, "partial_rowwise_adam": 4 * D + 4, "adam": 8 * D}
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}


def estimate_bytes(optimizer: str, dtype: str, rows: int) -> int:
    """What a case needs: table + optimizer state + ~1.2 GB of runtime, buffers and batch."""
    return rows * (D * ITEMSIZE[dtype] + STATE_BYTES[optimizer]) + int(1.2e9)


def available_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


# ----------------------------------------------------------------------------------- the child
def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _batches(rows: int, count: int = 8):
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.integers(0, rows, size=(BAGS, BAG_SIZE), dtype=np.int64) for _ in range(count)]


def run_jaxembed(optimizer: str, dtype: str, rows: int) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from jaxembed import sparse
    from jaxembed.keras import initializers
    from jaxembed.sparse import partial_rowwise_adam, rowwise_adagrad, stochastic_rounding

    tx = {
        "sgd": lambda: optax.sgd(0.01),
        "rowwise_adagrad": lambda: rowwise_adagrad(0.01),
        "partial_rowwise_adam": lambda: partial_rowwise_adam(0.001),
        "adam": lambda: optax.adam(0.001),
    }[optimizer]()
    if dtype != "float32":
        tx = optax.chain(tx, stochastic_rounding(0))
    opt = sparse.lazy(tx)
    start = time.perf_counter()
    table = initializers.initialize_table("uniform", jax.random.key(0), (rows, D), jnp.dtype(dtype))
    state = opt.init(table)
    jax.block_until_ready((table, state))
    init_s = time.perf_counter() - start
    cotangent = jnp.asarray(jax.random.normal(jax.random.key(1), (BAGS, D)))

    def make_step(pooled: bool):
        def step(table, state, ids):
            def loss(rows_):
                rows_ = rows_.astype(jnp.float32)
                if pooled:
                    return jnp.sum(rows_.sum(axis=1) * cotangent)
                return jnp.sum(rows_ * cotangent[:, None, :])

            _, grad = sparse.value_and_row_sparse_grad(loss, table, ids)
            return opt.update(grad, state, table)

        return jax.jit(step, donate_argnums=(0, 1))

    batches = [jnp.asarray(b, jnp.int32) for b in _batches(rows)]
    info = {"init_s": round(init_s, 1)}
    carry = [table, state]
    del table, state
    runners = {}
    for name, pooled in (("sum", True), ("none", False)):
        jitted = make_step(pooled)
        compiled = jitted.lower(*carry, batches[0]).compile()
        info[f"temp_mib_{name}"] = round(compiled.memory_analysis().temp_size_in_bytes / 2**20, 1)

        def step(i, jitted=jitted):
            carry[0], carry[1] = jitted(carry[0], carry[1], batches[i % len(batches)])
            jax.block_until_ready(carry[0])

        runners[name] = step

    def check() -> None:
        if not bool(jnp.all(jnp.isfinite(carry[0][: min(rows, 1000)].astype(jnp.float32)))):
            raise RuntimeError("the table is not finite after training")

    return info, runners, check


def run_fbgemm(optimizer: str, dtype: str, rows: int) -> dict:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fbgemm_gpu.split_embedding_configs import EmbOptimType, SparseType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation, PoolingMode
        from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
            ComputeDevice,
            SplitTableBatchedEmbeddingBagsCodegen,
        )

    torch.set_num_threads(1)
    torch.manual_seed(0)
    info, runners = {}, {}
    cotangent = torch.randn(BAGS, D)
    batches = [torch.from_numpy(b.reshape(-1)) for b in _batches(rows)]
    for name, pooling in (("sum", PoolingMode.SUM), ("none", PoolingMode.NONE)):
        start = time.perf_counter()
        emb = SplitTableBatchedEmbeddingBagsCodegen(
            [(rows, D, EmbeddingLocation.HOST, ComputeDevice.CPU)],
            optimizer={"sgd": EmbOptimType.EXACT_SGD, "rowwise_adagrad": EmbOptimType.EXACT_ROWWISE_ADAGRAD}[
                optimizer
            ],
            learning_rate=0.01,
            weights_precision={"float32": SparseType.FP32, "float16": SparseType.FP16}[dtype],
            stochastic_rounding=dtype != "float32",
            pooling_mode=pooling,
        )
        info[f"fbgemm_init_s_{name}"] = round(time.perf_counter() - start, 1)
        if pooling == PoolingMode.SUM:
            offsets = torch.arange(0, BAGS * BAG_SIZE + 1, BAG_SIZE, dtype=torch.int64)
            grad_out = cotangent
        else:
            offsets = torch.arange(0, BAGS * BAG_SIZE + 1, dtype=torch.int64)
            grad_out = cotangent.repeat_interleave(BAG_SIZE, dim=0)

        def step(i, emb=emb, offsets=offsets, grad_out=grad_out):
            emb(batches[i % len(batches)], offsets).backward(grad_out)  # the optimizer runs in backward

        runners[name] = step
    return info, runners


def _interleaved(runners: dict, rounds: int = 5, calls: int = 4, warmup: int = 3) -> dict[str, float]:
    """Median ms per step of each runner: warm-ups, then ``rounds`` interleaved rounds of ``calls`` steps."""
    for run in runners.values():
        for i in range(warmup):
            run(i)
    times = {name: [] for name in runners}
    for r in range(rounds):
        for name, run in runners.items():
            for c in range(calls):
                start = time.perf_counter()
                run(r * calls + c)
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: round(statistics.median(t), 2) for name, t in times.items()}


def child(impl: str, optimizer: str, dtype: str, rows: int) -> None:
    """One case: ``impl`` is ``jaxembed``, ``fbgemm`` or ``pair`` (both, steps interleaved)."""
    with open("/proc/self/oom_score_adj", "w") as adj:  # if memory runs out, kill this process first
        adj.write("1000")
    os.nice(10)
    # One compute thread each (XLA and torch): on this shared 2-core machine both run faster so
    # than with a thread per core (FBGEMM's sum-pooled step: 7 ms vs 81 ms with 2 threads).
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    result, runners, check = {}, {}, None
    if impl in ("jaxembed", "pair"):
        info, ours, check = run_jaxembed(optimizer, dtype, rows)
        result.update(info)
        runners.update({f"ms_{k}": v for k, v in ours.items()})
    if impl in ("fbgemm", "pair"):
        info, theirs = run_fbgemm(optimizer, dtype, rows)
        result.update(info)
        runners.update({f"fbgemm_ms_{k}": v for k, v in theirs.items()})
    result.update(_interleaved(runners))
    if check is not None:
        check()
    result["peak_rss_gib"] = round(_peak_rss() / 2**30, 2)
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------- the parent
def load() -> list[dict]:
    if not JSONL.exists():
        return []
    return [json.loads(line) for line in JSONL.read_text().splitlines() if line.strip()]


def append(entry: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    with open(JSONL, "a") as out:
        out.write(json.dumps(entry) + "\n")


def run_case(impl: str, optimizer: str, dtype: str, rows: int, timeout: float) -> dict:
    command = [sys.executable, __file__, "--child", impl, optimizer, dtype, str(rows)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s"}
    wall = round(time.perf_counter() - start, 1)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {"status": "ok", "wall_s": wall, **json.loads(line[len("RESULT ") :])}
    if proc.returncode in (-9, 137):
        return {"status": "killed (out of memory)", "wall_s": wall}
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
    return {"status": f"failed (exit {proc.returncode}): {tail[0][:200]}", "wall_s": wall}


def ladder(
    max_gb: float, timeout: float, only: str | None, sizes_override: list[int] | None, again: bool = False
) -> None:
    done = load()
    for impl, optimizer, dtype in CONFIGS:
        name = f"{impl} {optimizer} {dtype}"
        if only and only not in name:
            continue
        sizes = [int(v) for v in LADDER]
        if dtype == "bfloat16":
            sizes = [10**6]  # XLA:CPU scatters bfloat16 through a whole-table copy: one size shows it
        if sizes_override:
            sizes = sizes_override
        for rows in sizes:
            key = (impl, optimizer, dtype, rows)
            previous = [e for e in done if (e["impl"], e["optimizer"], e["dtype"], e["rows"]) == key]
            if previous and previous[-1]["status"] == "ok" and not again:
                continue
            if previous and not again:
                break  # the ladder stopped here before
            pair = rows in FBGEMM_SIZES and (optimizer, dtype) in FBGEMM_HAS
            need_fbgemm = estimate_bytes(optimizer, dtype, rows) - int(1.2e9)  # a table per pooling mode
            need = estimate_bytes(optimizer, dtype, rows) + (2 * need_fbgemm if pair else 0)
            avail = available_bytes()
            if need > max_gb * 1e9 or need > avail - 1.5e9:
                print(
                    f"{name} V={rows:,}: stop, needs ~{need / 1e9:.1f} GB "
                    f"(cap {max_gb} GB, {avail / 1e9:.1f} GB available now)",
                    flush=True,
                )
                break
            result = run_case("pair" if pair else impl, optimizer, dtype, rows, timeout)
            entry = {"impl": impl, "optimizer": optimizer, "dtype": dtype, "rows": rows, **result}
            append(entry)
            done.append(entry)
            print(json.dumps(entry), flush=True)
            if result["status"] != "ok":
                break


def _ms(entry: dict, field: str) -> str:
    return f"{entry[field]:.2f}" if field in entry else "-"


def report() -> str:
    entries = {}
    for e in load():  # the last entry of each case wins
        entries[(e["impl"], e["optimizer"], e["dtype"], e["rows"])] = e
    lines = [
        "# command: nice -n 10 python benchmarks/max_table.py --max-gb N (runs with N = 3, then larger; each"
        " case appends a line to max_table.jsonl) and python benchmarks/max_table.py --report",
        f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, both shared with"
        " other jobs (timings are noisy; jaxembed and FBGEMM are interleaved in one process where both run;"
        " one compute thread each, their faster setting here)",
        f"# D={D}; a step = {BAGS} bags of {BAG_SIZE} uniform random ids: lookup, loss, row-sparse gradient,"
        " optimizer update. jaxembed: sparse.value_and_row_sparse_grad + sparse.lazy, jitted with donation;"
        " FBGEMM 1.8.0 CPU: SplitTableBatchedEmbeddingBagsCodegen forward + backward (fused optimizer).",
        "# sum: sum-pooled bags; none: plain lookups (32,768 rows out). ms = median of 20 steps"
        " (5 interleaved rounds of 4) after 3 warm-ups. 16-bit tables use stochastic rounding (both)."
        " peak GiB: the child's"
        " VmHWM (with FBGEMM's table too where it ran). B/row: table + optimizer state.",
        f"{'optimizer':<21} {'dtype':<9} {'rows':>12} {'ms sum':>8} {'ms none':>8} {'FBGEMM sum':>11} "
        f"{'FBGEMM none':>12} {'peak GiB':>9} {'B/row':>6}  status",
    ]
    best: dict[tuple[str, str, str], int] = {}
    order = {c: i for i, c in enumerate(CONFIGS)}
    for (impl, optimizer, dtype, rows), e in sorted(
        entries.items(), key=lambda kv: (order.get(kv[0][:3], 99), kv[0][3])
    ):
        bytes_row = D * ITEMSIZE[dtype] + STATE_BYTES[optimizer]
        peak = f"{e['peak_rss_gib']:.2f}" if "peak_rss_gib" in e else "-"
        lines.append(
            f"{optimizer:<21} {dtype:<9} {rows:>12,} {_ms(e, 'ms_sum'):>8} {_ms(e, 'ms_none'):>8} "
            f"{_ms(e, 'fbgemm_ms_sum'):>11} {_ms(e, 'fbgemm_ms_none'):>12} {peak:>9} {bytes_row:>6}"
            f"  {e['status']}"
        )
        if e["status"] == "ok":
            best[(impl, optimizer, dtype)] = max(best.get((impl, optimizer, dtype), 0), rows)
    lines.append(
        "# the largest V trained per configuration (a lower bound where the ladder was not run further:"
        " only row-wise Adagrad float16 climbed until the next size would not fit in the memory"
        " available); step time (sum-pooled) from V=10^6 to it:"
    )
    for key, rows in best.items():
        small, big = entries.get((*key, 10**6)), entries[(*key, rows)]
        growth = f"{big['ms_sum'] / small['ms_sum']:.2f}x" if small and rows > 10**6 else "-"
        lines.append(f"#   {key[1]:<21} {key[2]:<9} max V = {rows:>12,}   10^6 -> max: {growth}")
    lines.append("# jaxembed / FBGEMM, same table, optimizer, dtype and batch (interleaved in one process):")
    for (impl, optimizer, dtype, rows), e in entries.items():
        if e["status"] == "ok" and "fbgemm_ms_sum" in e:
            lines.append(
                f"#   {optimizer} {dtype} V={rows:,}: sum {e['ms_sum'] / e['fbgemm_ms_sum']:.2f}x, "
                f"none {e['ms_none'] / e['fbgemm_ms_none']:.2f}x"
            )
    lines.append(f"max rows trained at D=64: {max(best.values(), default=0)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--child", nargs=4, metavar=("IMPL", "OPTIMIZER", "DTYPE", "ROWS"), help=argparse.SUPPRESS
    )
    parser.add_argument("--max-gb", type=float, default=3.0, help="largest case to try, in GB (default 3)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per case")
    parser.add_argument("--only", help="run only configurations whose name contains this")
    parser.add_argument("--report", action="store_true", help="print the table from the results so far")
    parser.add_argument("--sizes", help="comma-separated row counts instead of the ladder (for trials)")
    parser.add_argument("--again", action="store_true", help="measure cases again (the last entry counts)")
    args = parser.parse_args()
    if args.child:
        impl, optimizer, dtype, rows = args.child
        child(impl, optimizer, dtype, int(rows))
        return
    if not args.report:
        sizes = [int(float(v)) for v in args.sizes.split(",")] if args.sizes else None
        ladder(args.max_gb, args.timeout, args.only, sizes, args.again)
    text = report()
    print(text)
    TXT.write_text(text + "\n")


if __name__ == "__main__":
    main()
