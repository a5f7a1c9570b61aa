"""Lookup cost and table memory: float32 vs LoRA vs int8 vs int4 (grouped / per row) Embedding tables.

Checks correctness first (each quantized lookup within Keras's MSE bound of the
float lookup; LoRA equal to the merged table), then times jitted lookups with
warm-up, ``block_until_ready`` and interleaved repeats, and prints one table.

Run: ``python benchmarks/quantized_lookup.py [--vocab 100000] [--dim 128] [--batch 256] [--length 64]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import jax
import jax.numpy as jnp
import numpy as np
from _harness import interleaved, median  # noqa: E402
from flax import nnx

import jaxembed
from jaxembed import tables


def build(vocab: int, dim: int) -> dict[str, jaxembed.Embedding]:
    table = np.asarray(
        jaxembed.Embedding(vocab, dim, embeddings_initializer="normal", rngs=0).embeddings[...]
    )
    layers = {"float32": jaxembed.Embedding(vocab, dim, weights=table)}
    lora = jaxembed.Embedding(vocab, dim, weights=table)
    lora.enable_lora(8, rngs=1)
    lora.lora_embeddings_b[...] = jax.random.normal(jax.random.key(2), (8, dim)) * 0.01
    layers["float32 + LoRA r=8"] = lora
    for name, mode, block in [
        ("int8", "int8", None),
        ("int4 block 128", "int4", 128),
        ("int4 per row", "int4", -1),
    ]:
        layer = jaxembed.Embedding(vocab, dim, weights=table)
        layer.quantize(mode, **({} if mode == "int8" else {"block_size": block}))
        layers[name] = layer
    return layers


def stored_bytes(layer: jaxembed.Embedding) -> int:
    if layer.quantization_mode is not None:
        return tables.quantized_nbytes(layer.quantized_table())
    return sum(int(np.prod(w.shape)) * w.dtype.itemsize for w in layer.get_weights())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print("command:", " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv]))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), jax {jax.__version__}, "
        f"devices {jax.devices()}"
    )

    layers = build(args.vocab, args.dim)
    ids = jax.random.randint(jax.random.key(3), (args.batch, args.length), 0, args.vocab)
    reference = layers["float32"](ids)

    # Correctness first.
    for name, layer in layers.items():
        out = layer(ids)
        if "LoRA" in name:
            merged = layer.effective_table()[ids]
            np.testing.assert_allclose(np.asarray(out), np.asarray(merged), rtol=1e-5, atol=1e-5)
        else:
            mse = float(jnp.mean((out - reference) ** 2))
            assert mse < 1e-3, (name, mse)  # Keras's own bound for quantized lookups

    forwards = {}
    for name, layer in layers.items():
        graphdef, state = nnx.split(layer)
        forwards[name] = (jax.jit(lambda s, i, g=graphdef: nnx.merge(g, s)(i)), state)
        jax.block_until_ready(forwards[name][0](state, ids))  # compile + warm up

    times = interleaved(
        {name: (lambda f=forward, s=state: f(s, ids)) for name, (forward, state) in forwards.items()},
        args.repeats,
    )

    float_bytes = stored_bytes(layers["float32"])
    print(f"\ntable ({args.vocab}, {args.dim}); ids ({args.batch}, {args.length}); median of {args.repeats}")
    print(f"{'table':<22}{'stored MiB':>12}{'vs float32':>12}{'lookup ms':>12}{'MSE vs float':>15}")
    for name, layer in layers.items():
        size = stored_bytes(layer)
        mse = float(jnp.mean((layer(ids) - reference) ** 2))
        print(
            f"{name:<22}{size / 2**20:>12.2f}{float_bytes / size:>11.2f}x"
            f"{median(times[name]):>12.3f}{mse:>15.2e}"
        )


if __name__ == "__main__":
    main()
