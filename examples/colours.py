"""Colour names → places in 2-D and 3-D: learn word embeddings by regressing RGB from a name.

    python examples/colours.py [--epochs 150] [--steps N] [--out out/colours]

The dataset is built here from the 148 CSS colour names and their RGB values (as shipped by
matplotlib), with each name split into words: "lightseagreen" → "light sea green". A model embeds
the words of a name (``jaxembed.Embedding`` with ``mask_zero=True``), averages them with the
padding mask (``GlobalAveragePooling1D``) and regresses the RGB value with a small MLP, trained
with optax through ``jaxembed.train.fit``. It is trained twice, with 2-D and with 3-D word vectors;
both embeddings are plotted (PNG, every word drawn in the colour the model gives it alone), and
names held out of training are predicted and compared with the mean-colour baseline.
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
from jaxembed.train import Batches, Trainer, fit

PAD, UNKNOWN = 0, 1  # token ids reserved before the vocabulary
L2 = 1e-3  # Keras-style L2 penalty on the word table (added to the loss by the train step)

# The words the CSS colour names are made of; a name is split into the fewest of them.
WORDS = """
alice almond antique aqua aquamarine azure beige bisque black blanched blue blush brick brown burly
cadet chartreuse chiffon chocolate coral corn cornflower cream crimson cyan dark deep dew dim dodger
drab fire floral forest fuchsia gainsboro ghost gold golden gray green grey honey hot indian indigo
ivory khaki lace lavender lawn lemon light lime linen magenta maroon medium midnight mint misty
moccasin navajo navy old olive orange orchid pale papaya peach peru pink plum powder puff purple
rebecca red rod rose rosy royal saddle salmon sandy sea shell sienna silk silver sky slate smoke snow
spring steel tan teal thistle tomato turquoise violet wheat whip white wood yellow
""".split()


def split_name(name: str, words: set[str] = frozenset(WORDS)) -> list[str]:
    """Splits a run-together CSS name into the fewest known words (dynamic programming)."""
    best: list[list[str] | None] = [[]] + [None] * len(name)
    for end in range(1, len(name) + 1):
        for start in range(end):
            head, word = best[start], name[start:end]
            if head is not None and word in words and (best[end] is None or len(head) + 1 < len(best[end])):
                best[end] = head + [word]
    if best[-1] is None:
        raise ValueError(f"Cannot split the colour name {name!r} into known words; add its words to WORDS.")
    return best[-1]


def css_colours() -> tuple[list[str], np.ndarray]:
    """The CSS colour names split into words, and their RGB values in [0, 1]."""
    from matplotlib.colors import CSS4_COLORS, to_rgb

    names = [" ".join(split_name(name)) for name in CSS4_COLORS]
    rgb = np.array([to_rgb(hex_value) for hex_value in CSS4_COLORS.values()], np.float32)
    return names, rgb


def encode(names: list[str], vocabulary: dict[str, int], length: int) -> np.ndarray:
    """Names → padded word ids ``(len(names), length)``: 0 pads, 1 is a word not seen in training."""
    ids = np.zeros((len(names), length), np.int32)
    for row, name in enumerate(names):
        tokens = [vocabulary.get(word, UNKNOWN) for word in name.split()]
        ids[row, : len(tokens)] = tokens
    return ids


class ColourModel(nnx.Module):
    """Word ids ``(batch, words)`` → RGB ``(batch, 3)``: embed, masked mean, MLP, sigmoid."""

    def __init__(self, vocabulary_size: int, dim: int, *, seed: int, hidden: int = 32):
        self.embed = jaxembed.Embedding(
            vocabulary_size,
            dim,
            mask_zero=True,
            embeddings_initializer="normal",
            embeddings_regularizer={"class_name": "L2", "config": {"l2": L2}},
            rngs=seed,
        )
        self.pool = jaxembed.GlobalAveragePooling1D()
        self.hidden = nnx.Linear(dim, hidden, rngs=nnx.Rngs(seed))
        self.out = nnx.Linear(hidden, 3, rngs=nnx.Rngs(seed + 1))

    def __call__(self, ids: jax.Array) -> jax.Array:
        pooled = self.pool(self.embed(ids), mask=self.embed.compute_mask(ids))
        return jax.nn.sigmoid(self.out(jax.nn.relu(self.hidden(pooled))))


def mse_loss(model: ColourModel, batch: dict) -> jax.Array:
    return jnp.mean((model(batch["ids"]) - batch["rgb"]) ** 2)


def hex_colour(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{round(float(c) * 255):02x}" for c in np.clip(rgb, 0, 1))


def train_one(dim: int, train: dict, vocabulary_size: int, args: argparse.Namespace):
    model = ColourModel(vocabulary_size, dim, seed=args.seed)
    trainer = Trainer(model, optax.adam(args.learning_rate), mse_loss)
    batches = Batches(train, batch_size=16, seed=args.seed, drop_remainder=True)
    print(f"\n== Training with {dim}-D word vectors: {len(batches)} batches of 16 per epoch")
    history = fit(trainer, batches, epochs=args.epochs, steps_per_epoch=args.steps, progress=not args.quiet)
    losses = history.history["loss"]
    print(f"    train loss (MSE + L2 penalty): first epoch {losses[0]:.4f}, last epoch {losses[-1]:.4f}")
    return model, history


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--steps", type=int, default=None, help="cap on steps per epoch (default: all)")
    parser.add_argument("--out", type=Path, default=Path("out/colours"), help="folder for the PNGs and JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, default=0.02)
    parser.add_argument("--held-out", type=float, default=0.2, help="fraction of names held out of training")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"JAX backend: {jax.default_backend()}; devices: {jax.devices()}")

    names, rgb = css_colours()
    order = np.random.default_rng(args.seed).permutation(len(names))
    n_test = max(1, round(args.held_out * len(names)))
    test_rows, train_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
    train_names = [names[i] for i in train_rows]
    words = sorted({word for name in train_names for word in name.split()})
    vocabulary = {word: index for index, word in enumerate(words, start=2)}
    length = max(len(name.split()) for name in names)
    ids = encode(names, vocabulary, length)
    print(
        f"{len(names)} CSS colour names, e.g. {names[:4]}; {len(train_rows)} for training, "
        f"{len(test_rows)} held out; {len(vocabulary)} training words (+ pad and unknown)"
    )

    train = {"ids": ids[train_rows], "rgb": rgb[train_rows]}
    baseline = rgb[train_rows].mean(axis=0)
    baseline_mse = float(np.mean((rgb[test_rows] - baseline) ** 2))
    known = np.all(ids[test_rows] != UNKNOWN, axis=1)  # held-out names whose words were all seen
    known_baseline_mse = float(np.mean((rgb[test_rows][known] - baseline) ** 2))
    summary: dict = {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "names": len(names),
        "held_out": len(test_rows),
        "heldout_mse_mean_colour_baseline": baseline_mse,
        "heldout_known_words": int(known.sum()),
        "heldout_known_words_mse_mean_colour_baseline": known_baseline_mse,
    }
    vocabulary_size = len(vocabulary) + 2
    token_ids = np.arange(2, vocabulary_size)
    for dim in (2, 3):
        model, history = train_one(dim, train, vocabulary_size, args)
        predicted = np.asarray(model(jnp.asarray(ids[test_rows])))
        heldout_mse = float(np.mean((predicted - rgb[test_rows]) ** 2))
        known_mse = float(np.mean((predicted[known] - rgb[test_rows][known]) ** 2))
        print(f"    held-out MSE (RGB in [0, 1]): model {heldout_mse:.4f}  vs  ", end="")
        print(f"mean-colour baseline {baseline_mse:.4f}")
        print(f"    held-out names made only of training words ({int(known.sum())}): ", end="")
        print(f"model {known_mse:.4f}  vs  baseline {known_baseline_mse:.4f}")
        word_vectors = np.asarray(model.embed.embeddings[...])[token_ids]
        word_colours = np.asarray(model(jnp.asarray(token_ids)[:, None]))  # each word on its own
        plot = args.out / f"colours_{dim}d.png"
        save_plot(plot, words, word_vectors, word_colours)
        print(f"    saved the {dim}-D word embedding to {plot}")
        summary[f"{dim}d"] = {
            "loss_first_epoch": history.history["loss"][0],
            "loss_last_epoch": history.history["loss"][-1],
            "train_steps": len(history.step_losses),
            "heldout_mse": heldout_mse,
            "heldout_known_words_mse": known_mse,
            # Never looked up in training, but the L2 penalty's gradient reaches it (docs/training.md).
            "unknown_word_row": np.asarray(model.embed.embeddings[...])[UNKNOWN].tolist(),
            "plot": str(plot),
        }
        if dim == 3:
            print("\n    held-out name            true      predicted")
            for row, guess in list(zip(test_rows, predicted))[:12]:
                print(f"    {names[row]:24} {hex_colour(rgb[row])}   {hex_colour(guess)}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def save_plot(path: Path, words: list[str], vectors: np.ndarray, colours: np.ndarray) -> None:
    dim = vectors.shape[1]
    jaxembed.viz.plot_embeddings(
        vectors,
        words,
        path=path,
        colors=np.clip(colours, 0, 1),
        title=f"CSS colour words in {dim}-D, each drawn in the colour the model predicts for it alone",
        max_labels=len(words),
        figsize=(9, 8),
        dpi=110,
    )


if __name__ == "__main__":
    main()
