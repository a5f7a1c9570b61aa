"""The plots of docs/benchmarks.md, drawn from the committed results files (and nothing else).

* ``step_time_vs_vocab.png`` -- one Adam step against V, log-log: jaxembed lazy, dense optax,
  torch ``SparseAdam`` and dense torch Adam (``results/sparse_optimizer_step.txt``);
* ``lookup_throughput.png`` -- forward lookup GB/s of each path against the memcpy ceiling
  (``results/forward_lookup.txt``);
* ``bytes_per_row.png`` -- a table row's bytes (table + optimizer state) by optimizer and
  dtype, and the measured peak RSS per row at the largest V trained (``results/max_table.jsonl``);
* ``memory_vs_vocab.png`` -- measured peak RSS against V, by configuration (``results/max_table.jsonl``).

Usage::

    python benchmarks/plots.py                 # writes docs/images/*.png
    python benchmarks/plots.py --out /tmp/x    # elsewhere (the test does this)
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PLOTS = ("step_time_vs_vocab.png", "lookup_throughput.png", "bytes_per_row.png", "memory_vs_vocab.png")
D = 64
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}
STATE_BYTES = {"sgd": 0, "rowwise_adagrad": 4, "partial_rowwise_adam": 4 * D + 4, "adam": 8 * D}

_STEP_ROW = re.compile(r"^\s*(\d+) (.+?)\s{2,}([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+([\d.]+)\s*$")
_LOOKUP_ROW = re.compile(r"^(\S.*?)\s{2,}([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+([\d.]+)\s*$")


def read_step_times(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``method -> [(V, median ms)]`` from ``sparse_optimizer_step.txt``."""
    series: dict[str, list[tuple[int, float]]] = {}
    for line in path.read_text().splitlines():
        match = _STEP_ROW.match(line)
        if match and not line.startswith("#"):
            series.setdefault(match.group(2).strip(), []).append((int(match.group(1)), float(match.group(3))))
    if not series:
        raise ValueError(f"no step-time rows in {path}")
    return series


def read_lookup(path: Path) -> list[tuple[str, float]]:
    """``[(path, GB/s)]`` of the first table of ``forward_lookup.txt``."""
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or line.startswith("path"):
            continue
        if not line.strip():
            break
        match = _LOOKUP_ROW.match(line)
        if match:
            rows.append((match.group(1).strip(), float(match.group(5))))
    if not rows:
        raise ValueError(f"no lookup rows in {path}")
    return rows


def read_max_table(path: Path) -> list[dict]:
    """The successful cases of ``max_table.jsonl`` (the last entry of each case)."""
    cases = {}
    for line in path.read_text().splitlines():
        if line.strip():
            e = json.loads(line)
            cases[(e["impl"], e["optimizer"], e["dtype"], e["rows"])] = e
    return [e for e in cases.values() if e["status"] == "ok"]


def main() -> list[Path]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        target = args.out / name
        fig.savefig(target, dpi=110, metadata={"Software": None})
        plt.close(fig)
        written.append(target)

    # 1. step time against V
    series = read_step_times(RESULTS / "sparse_optimizer_step.txt")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method in ("jaxembed lazy adam", "optax dense adam", "torch SparseAdam", "torch Adam"):
        points = sorted(series.get(method, []))
        if points:
            ax.plot(*zip(*points), marker="o", label=method)
    ax.set(xscale="log", yscale="log", xlabel="rows V (D = 64)", ylabel="ms per Adam step (median)")
    ax.set_title("One Adam step, 4,096 ids: row-sparse stays flat")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save(fig, PLOTS[0])

    # 2. lookup throughput against the memcpy ceiling
    lookups = read_lookup(RESULTS / "forward_lookup.txt")
    ceiling = [gbps for name, gbps in lookups if name.startswith("memcpy")]
    bars = [(name, gbps) for name, gbps in lookups if not name.startswith("memcpy")]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.barh([n for n, _ in bars][::-1], [g for _, g in bars][::-1], color="tab:blue")
    if ceiling:
        ax.axvline(
            ceiling[0], color="tab:red", linestyle="--", label=f"memcpy of the output: {ceiling[0]} GB/s"
        )
        ax.legend(loc="lower right")
    ax.set(xscale="log", xlabel="GB/s of output written (log)")
    ax.set_title("Forward lookup, (10^6, 64) float32 table, 32,768 ids")
    save(fig, PLOTS[1])

    # 3. bytes per row
    cases = read_max_table(RESULTS / "max_table.jsonl")
    configs = sorted({(e["optimizer"], e["dtype"]) for e in cases}, key=lambda c: (STATE_BYTES[c[0]], c[1]))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    labels = [f"{o}\n{d}" for o, d in configs]
    table_bytes = [D * ITEMSIZE[d] for _, d in configs]
    state_bytes = [STATE_BYTES[o] for o, _ in configs]
    ax.bar(labels, table_bytes, label="table")
    ax.bar(labels, state_bytes, bottom=table_bytes, label="optimizer state")
    for i, (optimizer, dtype) in enumerate(configs):
        largest = max(
            (e for e in cases if (e["optimizer"], e["dtype"]) == (optimizer, dtype)), key=lambda e: e["rows"]
        )
        measured = largest["peak_rss_gib"] * 2**30 / largest["rows"]
        ax.plot(
            i,
            measured,
            "k_",
            markersize=18,
            markeredgewidth=2,
            label="measured peak RSS / rows" if i == 0 else None,
        )
    ax.set(ylabel="bytes per row (D = 64)")
    ax.set_title("What a row costs")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend()
    save(fig, PLOTS[2])

    # 4. memory against V
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for optimizer, dtype in configs:
        points = sorted(
            (e["rows"], e["peak_rss_gib"])
            for e in cases
            if (e["optimizer"], e["dtype"]) == (optimizer, dtype)
        )
        ax.plot(*zip(*points), marker="o", label=f"{optimizer} {dtype}")
    ax.set(xscale="log", yscale="log", xlabel="rows V (D = 64)", ylabel="peak RSS, GiB")
    ax.set_title("Memory of a training process against V")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, PLOTS[3])
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
