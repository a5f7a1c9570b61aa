"""Forward lookup of a large table: jaxembed's recommended path vs bare jnp.take and other libraries.

    python benchmarks/forward_lookup.py [--vocab 1000000 --dim 64 --batch 256 --length 128]

All rows look up the same ids (256 x 128, uniform over the vocabulary) in the same float32 table:

* bare ``jnp.take`` under ``jax.jit`` -- the reference;
* jaxembed, recommended: split the module once (``nnx.split``) and call
  ``jax.jit(lambda state, ids: nnx.merge(graphdef, state)(ids))`` -- what Trainer's steps do;
* jaxembed ``ops.lookup`` under ``jax.jit`` (the pure function), and the layer called eagerly;
* ``nnx.Embed`` through ``nnx.jit`` (which walks, copies and hashes the module state every call)
  and eagerly;
* ``keras.layers.Embedding`` with the JAX backend, eager and through ``jax.jit(stateless_call)``;
* ``torch.nn.Embedding`` (no grad), ``np.take``;
* the machine's memory-copy ceiling: ``np.copyto`` of an array the size of the output.

Then the one-hot path vs take as the vocabulary grows (4,096 ids). Correctness first: every
path returns the same rows.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _harness import header, interleaved, median  # noqa: E402
from flax import nnx  # noqa: E402

import jaxembed  # noqa: E402
from jaxembed import ops  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import keras
    import torch

    rng = np.random.default_rng(0)
    table_np = rng.normal(size=(args.vocab, args.dim)).astype(np.float32)
    ids_np = rng.integers(0, args.vocab, (args.batch, args.length)).astype(np.int32)
    table, ids = jnp.asarray(table_np), jnp.asarray(ids_np)

    layer = jaxembed.Embedding(args.vocab, args.dim, weights=table_np)
    graphdef, state = nnx.split(layer)
    recommended = jax.jit(lambda state, ids: nnx.merge(graphdef, state)(ids))
    bare = jax.jit(lambda table, ids: jnp.take(table, ids, axis=0))
    pure = jax.jit(ops.lookup)

    nnx_embed = nnx.Embed(args.vocab, args.dim, rngs=nnx.Rngs(0))
    nnx_embed.embedding[...] = table
    nnx_jit = nnx.jit(lambda module, ids: module(ids))

    keras_layer = keras.layers.Embedding(args.vocab, args.dim)
    keras_layer.build((None, args.length))
    keras_layer.embeddings.assign(table_np)
    keras_weights = [v.value for v in keras_layer.trainable_variables]
    keras_jit = jax.jit(lambda weights, ids: keras_layer.stateless_call(weights, [], ids)[0])

    torch_embedding = torch.nn.Embedding(args.vocab, args.dim)
    with torch.no_grad():
        torch_embedding.weight.copy_(torch.from_numpy(table_np))
    torch_ids = torch.from_numpy(ids_np.astype(np.int64))

    def torch_lookup():
        with torch.no_grad():
            return torch_embedding(torch_ids)

    out_np = np.empty((args.batch, args.length, args.dim), np.float32)
    src_np = np.ones_like(out_np)

    runners = {
        "bare jnp.take (jax.jit)": lambda: bare(table, ids),
        "jaxembed recommended (split + jax.jit)": lambda: recommended(state, ids),
        "jaxembed ops.lookup (jax.jit)": lambda: pure(table, ids),
        "jaxembed layer, eager": lambda: layer(ids_np),
        "nnx.Embed via nnx.jit": lambda: nnx_jit(nnx_embed, ids),
        "nnx.Embed, eager": lambda: nnx_embed(ids),
        "keras Embedding (jax), eager": lambda: keras_layer(ids_np),
        "keras stateless_call (jax.jit)": lambda: keras_jit(keras_weights, ids),
        "torch.nn.Embedding": torch_lookup,
        "np.take": lambda: np.take(table_np, ids_np, axis=0),
        "memcpy of the output (ceiling)": lambda: np.copyto(out_np, src_np),
    }
    expected = table_np[ids_np]
    for name, run in runners.items():
        if "memcpy" in name:
            continue
        out = run()
        out = out.numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        np.testing.assert_array_equal(out, expected, err_msg=name)

    times = interleaved(runners, repeats=args.repeats, calls=5)
    header(
        f"forward lookup, table ({args.vocab}, {args.dim}) float32, ids ({args.batch}, {args.length}); "
        f"median of {args.repeats} interleaved rounds of 5 calls; keras {keras.__version__}, "
        f"torch {torch.__version__}. Checked first: every path returns table[ids]."
    )
    reference = median(times["bare jnp.take (jax.jit)"])
    out_bytes = out_np.nbytes
    print(f"{'path':40} {'ms/call':>9} {'min':>8} {'vs bare take':>13} {'GB/s out':>9}")
    for name, values in times.items():
        ms = median(values)
        print(f"{name:40} {ms:9.3f} {min(values):8.3f} {ms / reference:12.2f}x {out_bytes / ms / 1e6:9.2f}")
    ratio = median(times["jaxembed recommended (split + jax.jit)"]) / reference
    print(f"# jaxembed recommended path / bare jitted take = {ratio:.2f} (target <= 1.2)")

    print()
    print(
        "# one-hot vs take as the vocabulary grows: jax.jit(ops.lookup), 4096 ids, dim "
        f"{args.dim}, median ms/call"
    )
    print(f"{'V':>7} {'take':>9} {'one_hot':>10} {'one_hot / take':>15}")
    small_ids = jnp.asarray(rng.integers(0, 16, 4096), jnp.int32)
    for vocab in (16, 256, 4096, 16384):
        small_table = jnp.asarray(rng.normal(size=(vocab, args.dim)), jnp.float32)
        ids_v = small_ids % vocab
        take = jax.jit(lambda t, i: ops.lookup(t, i, method="take"))
        one_hot = jax.jit(lambda t, i: ops.lookup(t, i, method="one_hot"))
        np.testing.assert_allclose(take(small_table, ids_v), one_hot(small_table, ids_v), rtol=1e-6)
        sweep = interleaved(
            {"take": lambda: take(small_table, ids_v), "one_hot": lambda: one_hot(small_table, ids_v)},
            repeats=3,
            calls=3,
        )
        t, o = median(sweep["take"]), median(sweep["one_hot"])
        print(f"{vocab:7d} {t:9.3f} {o:10.3f} {o / t:14.1f}x")


if __name__ == "__main__":
    main()
