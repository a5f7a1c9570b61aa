"""Exact top-k neighbours: jaxembed.viz.nearest_neighbors against a NumPy brute force.

Both compute every query-row similarity and keep the k best (NumPy with
``argpartition`` then a sort of the k). Correctness is checked first (same ids),
then each is warmed up and timed with ``block_until_ready``, interleaved over
several repeats; the median is printed.

    python benchmarks/nearest_neighbors.py --vocab 50000 --dim 64 --queries 1000 --k 10
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import interleaved, median  # noqa: E402

from jaxembed import viz  # noqa: E402


def numpy_top_k(table: np.ndarray, queries: np.ndarray, k: int, metric: str, batch: int):
    if metric == "cosine":
        table = table / np.linalg.norm(table, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    ids, scores = [], []
    for start in range(0, len(queries), batch):
        s = queries[start : start + batch] @ table.T
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        ids.append(np.take_along_axis(part, order, axis=1))
        scores.append(np.take_along_axis(part_scores, order, axis=1))
    return np.concatenate(ids), np.concatenate(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print("# python benchmarks/nearest_neighbors.py " + " ".join(sys.argv[1:]))
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores visible, jax {jax.__version__}, "
        f"backend {jax.default_backend()}, devices {jax.devices()}"
    )
    rng = np.random.default_rng(0)
    table = rng.normal(size=(args.vocab, args.dim)).astype(np.float32)
    queries = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    table_device = jax.device_put(table)
    queries_device = jax.device_put(queries)

    print(
        f"# table ({args.vocab}, {args.dim}) float32; {args.queries} query vectors; k={args.k}; "
        f"query batch {args.batch}; median of {args.repeats}"
    )
    print(f"{'metric':8} {'implementation':34} {'ms':>9} {'queries/s':>12}")
    for metric in ("cosine", "dot"):

        def run_jax():
            result = viz.nearest_neighbors(
                table_device, query_vectors=queries_device, k=args.k, metric=metric, batch_size=args.batch
            )
            return jax.block_until_ready(result)

        def run_numpy():
            return numpy_top_k(table, queries, args.k, metric, args.batch)

        jax_result, numpy_result = run_jax(), run_numpy()  # also the warm-up
        agree = float(np.mean(np.asarray(jax_result.ids) == numpy_result[0]))
        assert agree > 0.999, f"ids differ from the NumPy brute force ({agree:.4f} agree)"
        np.testing.assert_allclose(np.asarray(jax_result.scores), numpy_result[1], rtol=1e-4, atol=1e-4)

        times = interleaved(
            {"jaxembed.viz.nearest_neighbors (jit)": run_jax, "NumPy brute force": run_numpy}, args.repeats
        )
        for name, values in times.items():
            ms = median(values)
            print(f"{metric:8} {name:34} {ms:9.1f} {args.queries / (ms / 1000):12.0f}")
        print(f"{metric:8} ids identical to NumPy for {100 * agree:.2f}% of entries; scores within 1e-4")


if __name__ == "__main__":
    main()
