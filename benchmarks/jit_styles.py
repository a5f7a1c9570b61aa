"""What each way of jitting a jaxembed.Embedding forward pass costs per call, as the table grows.

    python benchmarks/jit_styles.py [--sizes 1000 16000 250000 1000000 --dim 64 --batch 32 --length 16]

A small batch of ids (32 x 16) is looked up in tables of growing size, so the per-call overhead
of each calling style is what the numbers show (the lookup itself is the same ~512 rows in every
row of the table):

* ``layer(ids)`` eagerly;
* ``nnx.jit(lambda m, ids: m(ids))(layer, ids)`` -- the module through ``nnx.jit``;
* ``nnx.cached_partial(nnx.jit(...), layer)(ids)`` -- Flax's cached variant of the same;
* ``jax.jit(lambda m, ids: m(ids))(layer, ids)`` -- the module passed to ``jax.jit`` as a pytree;
* split once + ``jax.jit(lambda state, ids: nnx.merge(graphdef, state)(ids))`` -- what Trainer does;
* the same split + ``jax.jit``, but also returning the state (as ``nnx.jit`` must, to write
  any change back into the module): this row shows where ``nnx.jit``'s cost comes from --
  without donation, an output that is the table is a fresh copy of the table every call;
* a bare jitted ``jnp.take`` on the table array (the reference).

Correctness first: every style returns ``table[ids]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _harness import header, interleaved, median  # noqa: E402
from flax import nnx  # noqa: E402

import jaxembed  # noqa: E402

STYLES = [
    "eager layer(ids)",
    "nnx.jit(module)",
    "nnx.cached_partial(nnx.jit)",
    "jax.jit(module)",
    "split + jax.jit",
    "split + jax.jit, returns state",
    "bare jnp.take (jax.jit)",
]


def runners(vocab: int, dim: int, ids: jax.Array) -> tuple[dict, np.ndarray]:
    layer = jaxembed.Embedding(vocab, dim, rngs=0)
    table = layer.embeddings[...]
    graphdef, state = nnx.split(layer)
    nnx_jitted = nnx.jit(lambda module, ids: module(ids))
    cached = nnx.cached_partial(nnx.jit(lambda module, ids: module(ids)), layer)
    jax_jitted = jax.jit(lambda module, ids: module(ids))
    split_jitted = jax.jit(lambda state, ids: nnx.merge(graphdef, state)(ids))

    def with_state(state, ids):
        return nnx.merge(graphdef, state)(ids), state

    returns_state = jax.jit(with_state)
    bare = jax.jit(lambda table, ids: jnp.take(table, ids, axis=0))
    cases = {
        "eager layer(ids)": lambda: layer(ids),
        "nnx.jit(module)": lambda: nnx_jitted(layer, ids),
        "nnx.cached_partial(nnx.jit)": lambda: cached(ids),
        "jax.jit(module)": lambda: jax_jitted(layer, ids),
        "split + jax.jit": lambda: split_jitted(state, ids),
        "split + jax.jit, returns state": lambda: returns_state(state, ids)[0],
        "bare jnp.take (jax.jit)": lambda: bare(table, ids),
    }
    return cases, np.asarray(table)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 16_000, 250_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    header(
        f"per-call cost of each jit style, ids ({args.batch}, {args.length}), dim {args.dim}, float32; "
        f"median ms/call of {args.repeats} interleaved rounds of {args.calls} calls. "
        "Checked first: every style returns table[ids]."
    )
    results: dict[int, dict[str, float]] = {}
    for vocab in args.sizes:
        ids = jnp.asarray(np.random.default_rng(0).integers(0, vocab, (args.batch, args.length)))
        cases, table = runners(vocab, args.dim, ids)
        for name, run in cases.items():
            np.testing.assert_array_equal(np.asarray(run()), table[np.asarray(ids)], err_msg=name)
        times = interleaved(cases, args.repeats, args.calls)
        results[vocab] = {name: median(values) for name, values in times.items()}
        del cases
    width = max(len(s) for s in STYLES)
    print(f"{'style':{width}}" + "".join(f"  {f'{v:,} x {args.dim}':>16}" for v in args.sizes))
    for name in STYLES:
        print(f"{name:{width}}" + "".join(f"  {results[v][name]:13.3f} ms" for v in args.sizes))
    print("# ratio to split + jax.jit at each size")
    for name in STYLES:
        ratios = [results[v][name] / results[v]["split + jax.jit"] for v in args.sizes]
        print(f"{name:{width}}" + "".join(f"  {r:15.2f}x" for r in ratios))


if __name__ == "__main__":
    main()
