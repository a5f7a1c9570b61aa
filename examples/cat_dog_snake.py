"""Cat, dog, snake: what an Embedding layer is, and what training does to it, end to end.

    python examples/cat_dog_snake.py [--epochs 200] [--steps N] [--out out/cat_dog_snake]

1. objects → unique ids → one-hot rows → the table M; one-hot @ M equals the lookup M[ids];
2. a small supervised task (predict each animal's attributes from its 2-D vector), trained with optax:
   * plain SGD, one step on a batch without "mouse": only the looked-up rows change;
   * Adam: a row seen once keeps moving on later batches without it (momentum), and why;
3. the learned 2-D embedding saved as a labelled PNG, and a JSON summary, under --out.

Runs in a few seconds on a laptop CPU, and unchanged on GPU/TPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxembed
import jaxembed.viz
from jaxembed.train import Batches, Callback, Trainer, fit

OBJECTS = ["cat", "dog", "snake", "dog", "mouse", "cat", "dog", "snake", "dog"]
SEED_TABLE = np.array([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [3.0, 3.0]], np.float32)
ATTRIBUTE_NAMES = ["has fur", "barks", "purrs", "slithers", "squeaks"]
ATTRIBUTES = {  # what the model learns to predict from each animal's vector
    "cat": [1, 0, 1, 0, 0],
    "dog": [1, 1, 0, 0, 0],
    "snake": [0, 0, 0, 1, 0],
    "mouse": [1, 0, 0, 0, 1],
}


class AnimalAttributes(nnx.Module):
    """Embedding(4, 2) → Linear(2, 5): one logit per attribute."""

    def __init__(self, table: np.ndarray, *, seed: int):
        self.embed = jaxembed.Embedding(*table.shape, weights=table)
        self.head = nnx.Linear(table.shape[1], len(ATTRIBUTE_NAMES), rngs=nnx.Rngs(seed))

    def __call__(self, ids: jax.Array) -> jax.Array:
        return self.head(self.embed(ids))


def attribute_loss(model: AnimalAttributes, batch: dict) -> tuple[jax.Array, dict]:
    logits = model(batch["ids"])
    loss = optax.sigmoid_binary_cross_entropy(logits, batch["y"]).mean()
    return loss, {"accuracy": jnp.mean((logits > 0) == (batch["y"] > 0.5))}


def table_of(trainer: Trainer) -> np.ndarray:
    return np.asarray(trainer.state.params["embed"]["embeddings"][...])


def rows(names, values, header: str = "") -> str:
    lines = [f"    {'':6}  {header}"] if header else []
    lines += [f"    {name:6}  {value}" for name, value in zip(names, values)]
    return "\n".join(lines)


def section(title: str) -> None:
    print(f"\n== {title}")


class PrintEvery(Callback):
    """Prints the epoch logs every ``every`` epochs (the per-step bar is off for this tiny task)."""

    def __init__(self, every: int, epochs: int):
        self.every, self.epochs = every, epochs

    def on_epoch_end(self, epoch, logs, trainer):
        if epoch % self.every == 0 or epoch == self.epochs - 1:
            loss, accuracy = logs["loss"], logs["accuracy"]
            print(f"    epoch {epoch + 1:4d}/{self.epochs}: loss {loss:.4f}, accuracy {accuracy:.2f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200, help="training epochs for the attribute task")
    parser.add_argument("--steps", type=int, default=None, help="cap on steps per epoch (default: all 3)")
    parser.add_argument(
        "--out", type=Path, default=Path("out/cat_dog_snake"), help="folder for the PNG and JSON"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    np.set_printoptions(precision=4, suppress=True)

    print(f"JAX backend: {jax.default_backend()}; devices: {jax.devices()}")

    section("1. Objects → unique ids")
    unique = list(dict.fromkeys(OBJECTS))  # in order of first appearance
    ids = np.array([unique.index(name) for name in OBJECTS])
    print(f"    objects: {OBJECTS}\n    unique:  {unique}\n    indices: {ids.tolist()}")

    section("2. One-hot rows: row i has a single 1 in column indices[i]")
    one_hot = np.asarray(jax.nn.one_hot(ids, len(unique), dtype=jnp.float32))
    print(rows(OBJECTS, one_hot.astype(int), header=" ".join(f"{n[:3]:>3}" for n in unique)))

    section("3. The table M: one trainable row per unique object")
    print(rows(unique, SEED_TABLE))

    section("4. one-hot @ M  ==  M[indices]  (the lookup an Embedding layer does)")
    layer = jaxembed.Embedding(4, 2, weights=SEED_TABLE)
    by_matmul = np.asarray(jnp.matmul(one_hot, SEED_TABLE, precision=jax.lax.Precision.HIGHEST))
    by_lookup = np.asarray(layer(ids))
    assert np.array_equal(by_matmul, by_lookup)
    print(
        rows(OBJECTS, [f"{m}   {t}" for m, t in zip(by_matmul, by_lookup)], header="one-hot @ M   M[index]")
    )
    print(f"    vectors: {by_lookup.astype(int).tolist()}")

    targets = np.array([ATTRIBUTES[name] for name in unique], np.float32)
    everything = {"ids": ids, "y": targets[ids]}
    no_mouse = {"ids": ids[:4], "y": targets[ids[:4]]}  # cat, dog, snake, dog

    section("5. Plain SGD, one step on the batch [cat, dog, snake, dog] (no mouse)")
    sgd = Trainer(AnimalAttributes(SEED_TABLE, seed=args.seed), optax.sgd(0.5), attribute_loss)
    before = table_of(sgd)
    sgd.train_step(no_mouse)
    after = table_of(sgd)
    changed = np.any(after != before, axis=1)
    print(
        rows(
            unique,
            [
                f"{b}  →  {a}   diff {a - b}   {'changed' if c else 'UNCHANGED'}"
                for b, a, c in zip(before, after, changed)
            ],
            header="before        after",
        )
    )
    print("    The gradient w.r.t. M is one-hot^T @ (gradient w.r.t. the looked-up vectors): it is zero")
    print("    in every row whose id was not looked up, so SGD leaves 'mouse' exactly where it was.")

    section("6. Adam: step 1 on all objects (mouse seen), step 2 on the batch without mouse")
    adam = Trainer(AnimalAttributes(SEED_TABLE, seed=args.seed), optax.adam(0.1), attribute_loss)
    sgd_twice = Trainer(AnimalAttributes(SEED_TABLE, seed=args.seed), optax.sgd(0.5), attribute_loss)
    for trainer in (adam, sgd_twice):
        trainer.train_step(everything)
    adam_before, sgd_before = table_of(adam), table_of(sgd_twice)
    adam.train_step(no_mouse)
    sgd_twice.train_step(no_mouse)
    adam_mouse_step = table_of(adam)[3] - adam_before[3]
    sgd_mouse_step = table_of(sgd_twice)[3] - sgd_before[3]
    first_moment = np.asarray(adam.state.opt_state[0].mu["embed"]["embeddings"][...])[3]
    print(f"    mouse's move in step 2:  Adam {adam_mouse_step}   SGD {sgd_mouse_step}")
    print(f"    Adam's first moment for mouse after step 2: m = {first_moment}")
    print(
        "    Why: Adam keeps running averages m = 0.9 m + 0.1 g and v = 0.999 v + 0.001 g^2 for every entry"
    )
    print("    and moves by -lr * m_hat / (sqrt(v_hat) + eps). Mouse's gradient in step 2 is 0, but m still")
    print("    remembers step 1, so the row moves anyway. A row never looked up has m = v = 0 and stays put;")
    print(
        "    a lazy Adam (TF Addons' LazyAdam, torch's SparseAdam) would update only the rows in the batch."
    )

    section(f"7. Training the attribute task with Adam for {args.epochs} epochs (batches of 3, shuffled)")
    model = AnimalAttributes(SEED_TABLE, seed=args.seed)
    trainer = Trainer(model, optax.adam(0.05), attribute_loss)
    data = Batches(everything, batch_size=3, seed=args.seed)
    history = fit(
        trainer,
        data,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        progress=False,
        callbacks=[PrintEvery(max(1, args.epochs // 5), args.epochs)],
    )
    learned = np.asarray(model.embed.embeddings[...])
    probabilities = np.asarray(jax.nn.sigmoid(model(jnp.arange(4))))
    print("    learned table and predicted attribute probabilities:")
    print(
        rows(
            unique,
            [f"{v}   {p.round(2)}" for v, p in zip(learned, probabilities)],
            header=f"vector          {' / '.join(ATTRIBUTE_NAMES)}",
        )
    )

    plot = args.out / "cat_dog_snake_embedding.png"
    save_plot(plot, unique, SEED_TABLE, learned)
    print(f"\n    saved the learned 2-D embedding to {plot}")

    summary = {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "unique": unique,
        "indices": ids.tolist(),
        "vectors": by_lookup.tolist(),
        "sgd_changed_rows": [name for name, c in zip(unique, changed) if c],
        "adam_mouse_step": adam_mouse_step.tolist(),
        "sgd_mouse_step": sgd_mouse_step.tolist(),
        "loss_first_epoch": history.history["loss"][0],
        "loss_last_epoch": history.history["loss"][-1],
        "train_steps": len(history.step_losses),
        "accuracy_last_epoch": history.history["accuracy"][-1],
        "learned_table": learned.tolist(),
        "plot": str(plot),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def save_plot(path: Path, names: list[str], start: np.ndarray, learned: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    for name, a, b in zip(names, start, learned):
        axes.annotate("", xy=b, xytext=a, arrowprops={"arrowstyle": "->", "color": "0.6"})
        axes.scatter(*a, color="0.7", s=25)
        axes.scatter(*b, s=60)
        axes.annotate(name, b, textcoords="offset points", xytext=(6, 6), fontsize=12)
    axes.set_title("seed table (grey) → learned embedding (colour)", fontsize=11)
    axes.set_xlabel("embedding dim 0")
    axes.set_ylabel("embedding dim 1")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    jaxembed.viz.save_figure(figure, path, dpi=120)  # atomic: never a half-written PNG
    plt.close(figure)


if __name__ == "__main__":
    main()
