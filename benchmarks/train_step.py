"""Train-step overhead: jaxembed.train.Trainer (split once, jax.jit + donation) vs nnx.jit + nnx.Optimizer.

    python benchmarks/train_step.py [--vocab 200000 --dim 64 --batch 256 --repeats 5 --steps 20]

Both run the same model (Embedding(vocab, dim) -> Linear(dim, 1)), loss and optax.adam on the same
batches; the script checks they reach the same parameters first, then times steps/s with warm-up,
block_until_ready, several repeats and interleaved runs, and prints ms per step (median).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from _harness import interleaved, median  # noqa: E402
from flax import nnx  # noqa: E402

import jaxembed  # noqa: E402
from jaxembed.train import Trainer  # noqa: E402


class Model(nnx.Module):
    def __init__(self, vocab: int, dim: int):
        self.embed = jaxembed.Embedding(vocab, dim, rngs=0)
        self.head = nnx.Linear(dim, 1, rngs=nnx.Rngs(0))

    def __call__(self, ids):
        return self.head(self.embed(ids).mean(axis=1))[:, 0]


def loss_fn(model, batch):
    return jnp.mean((model(batch["ids"]) - batch["y"]) ** 2)


def make_nnx_jit_step():
    @nnx.jit
    def step(model, optimizer, batch):
        loss, grads = nnx.value_and_grad(loss_fn)(model, batch)
        optimizer.update(model, grads)
        return loss

    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--length", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batches = [
        {
            "ids": rng.integers(0, args.vocab, (args.batch, args.length)),
            "y": rng.normal(size=args.batch).astype(np.float32),
        }
        for _ in range(args.steps)
    ]
    batches = [jax.device_put(b) for b in batches]

    trainer = Trainer(Model(args.vocab, args.dim), optax.adam(1e-2), loss_fn)
    model = Model(args.vocab, args.dim)
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    nnx_step = make_nnx_jit_step()

    # Correctness first: the same three steps give the same table.
    for batch in batches[:3]:
        trainer.train_step(batch)
        nnx_step(model, optimizer, batch)
    with jax.default_matmul_precision("highest"):
        np.testing.assert_allclose(
            trainer.state.params["embed"]["embeddings"][...],
            model.embed.embeddings[...],
            rtol=1e-5,
            atol=1e-6,
        )

    def run_trainer():
        for batch in batches:
            metrics = trainer.train_step(batch)
        jax.block_until_ready((metrics, trainer.state))

    def run_nnx():
        for batch in batches:
            loss = nnx_step(model, optimizer, batch)
        jax.block_until_ready((loss, nnx.state(model)))

    runners = {"jaxembed Trainer (jax.jit, donated)": run_trainer, "nnx.jit + nnx.Optimizer": run_nnx}
    timings = {  # ms per step: each run is args.steps steps
        name: [ms / args.steps for ms in values]
        for name, values in interleaved(runners, args.repeats).items()
    }

    print(
        f"# python benchmarks/train_step.py --vocab {args.vocab} --dim {args.dim} --batch {args.batch} "
        f"--length {args.length} --steps {args.steps} --repeats {args.repeats}"
    )
    print(
        f"# machine: {platform.machine()} {platform.processor() or ''}, jax {jax.__version__}, "
        f"backend {jax.default_backend()}, devices {jax.devices()}"
    )
    print(
        f"# Embedding({args.vocab}, {args.dim}) -> mean -> Linear({args.dim}, 1), optax.adam, dense updates"
    )
    print(f"{'step':40} {'ms/step (median)':>18} {'min':>8} {'max':>8}")
    for name, values in timings.items():
        print(f"{name:40} {median(values):18.2f} {min(values):8.2f} {max(values):8.2f}")


if __name__ == "__main__":
    main()
