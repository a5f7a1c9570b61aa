"""Discrete features: one-hot encoding or an Embedding? The classic question, answered on UCI Adult.

    python examples/census_income.py                      # three seeds, all models (a few minutes)
    python examples/census_income.py --seeds 0 --no-keras # one seed, no Keras comparison

*"I have a classification problem where the features are discrete; the standard procedure is
one-hot encoding; with Keras it seems an Embedding layer does it -- how, and is that right?"*
On the census income table (48,842 people, 8 categorical and 6 numeric columns, income above
$50K or not; UCI's original split: 32,561 train, 16,281 test rows,
``jaxembed.datasets.load_adult``):

* **jaxembed**: each categorical column goes through its own ``jaxembed.StringLookup`` (Keras
  semantics: id 0 for values unseen in training) into its own ``jaxembed.Embedding`` of
  ``min(50, (ids + 1) // 2)`` dimensions; the vectors are concatenated with the standardized
  numeric columns (``log1p`` first for the heavy-tailed capital gain / loss and fnlwgt) and go
  through an MLP (two ReLU layers, dropout) to one logit; Adam, ``jaxembed.train.fit``. Each
  numeric column is also bucketed into quantile bins (``--bins``, through ``jaxembed.IntegerLookup``)
  with an embedding of its own, so the network can learn thresholds as trees do.
* **one-hot + logistic regression** (scikit-learn): the "standard procedure" of the question,
  on the same columns.
* **Keras 3**: the same embedding model in Keras (same sizes, optimizer, epochs, batches).
* **gradient-boosted trees** (scikit-learn's ``HistGradientBoostingClassifier``): the usual
  strongest model on such tables, as a reference.

Each model prints ``test accuracy (<model>): <value>`` and its ROC AUC, jaxembed first, averaged
over ``--seeds``; the time per epoch of jaxembed and Keras; and a PCA plot of the learned
``occupation`` embedding (``jaxembed.viz``): occupations with similar incomes land together.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxembed
from jaxembed import datasets, viz
from jaxembed._files import write_text
from jaxembed.train import Batches, Trainer, fit

LOG_COLUMNS = ("capital-gain", "capital-loss", "fnlwgt")  # heavy tails: log1p before standardizing
HIGHEST = jax.lax.Precision.HIGHEST


def embedding_size(input_dim: int) -> int:
    """The rule used here: half the number of ids, rounded up, at most 50 (fast.ai's old rule)."""
    return min(50, (input_dim + 1) // 2)


def bin_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Quantile edges of a numeric column (of its non-zero values when most are zero, as capital gain)."""
    if np.mean(values == 0) > 0.5:
        values = values[values != 0]
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def prepare(train: datasets.Table, test: datasets.Table, bins: int) -> tuple[dict, dict, dict]:
    """Ids per categorical column (StringLookup adapted on train), binned and standardized numbers, labels.

    With ``bins``, each numeric column also becomes a categorical one: its quantile bin on the
    training rows (``IntegerLookup`` of the bin number), looked up in an embedding of its own, so
    the network sees thresholds (capital gain above a few thousand dollars) the way trees do.
    """
    lookups = {}
    data = {"train": {}, "test": {}}
    if bins:
        for column in datasets.ADULT_NUMERIC:
            edges = bin_edges(train[column], bins)
            lookup = jaxembed.IntegerLookup()
            lookup.adapt(np.searchsorted(edges, train[column], side="right"))
            lookups[f"{column}_bin"] = lookup
            for name, table in (("train", train), ("test", test)):
                binned = np.searchsorted(edges, table[column], side="right")
                data[name][f"{column}_bin"] = np.asarray(lookup(binned), np.int32)
    for column in datasets.ADULT_CATEGORICAL:
        lookup = jaxembed.StringLookup()
        lookup.adapt(train[column])
        lookups[column] = lookup
        for name, table in (("train", train), ("test", test)):
            data[name][column] = np.asarray(lookup(table[column]), np.int32)
    numbers = {}
    for name, table in (("train", train), ("test", test)):
        columns = []
        for column in datasets.ADULT_NUMERIC:
            values = table[column].astype(np.float64)
            columns.append(np.log1p(values) if column in LOG_COLUMNS else values)
        numbers[name] = np.stack(columns, axis=1)
    mean, std = numbers["train"].mean(0), numbers["train"].std(0)
    for name, table in (("train", train), ("test", test)):
        data[name]["numeric"] = ((numbers[name] - mean) / std).astype(np.float32)
        data[name]["label"] = (table["income"] == ">50K").astype(np.float32)
    return data["train"], data["test"], lookups


class EmbeddingMLP(nnx.Module):
    """One Embedding per categorical column, concatenated with the numbers, then an MLP to a logit."""

    def __init__(self, sizes: dict[str, int], num_numeric: int, *, hidden=(128, 64), dropout=0.1, seed=0):
        keys = iter(jax.random.split(jax.random.key(seed), len(sizes) + len(hidden) + 2))
        self.columns = list(sizes)
        self.embeddings = nnx.List(
            [jaxembed.Embedding(n, embedding_size(n), rngs=next(keys)) for n in sizes.values()]
        )
        width = sum(embedding_size(n) for n in sizes.values()) + num_numeric
        layers = []
        for units in hidden:
            layers.append(nnx.Linear(width, units, precision=HIGHEST, rngs=nnx.Rngs(next(keys))))
            width = units
        self.hidden = nnx.List(layers)
        self.dropout = nnx.Dropout(dropout, rngs=nnx.Rngs(dropout=seed))
        self.out = nnx.Linear(width, 1, precision=HIGHEST, rngs=nnx.Rngs(next(keys)))

    def __call__(self, batch: dict) -> jax.Array:
        parts = [layer(batch[column]) for column, layer in zip(self.columns, self.embeddings)]
        x = jnp.concatenate([*parts, batch["numeric"]], axis=-1)
        for layer in self.hidden:
            x = self.dropout(jax.nn.relu(layer(x)))
        return self.out(x)[:, 0]


def loss_fn(model: EmbeddingMLP, batch: dict) -> tuple[jax.Array, dict]:
    logits = model(batch)
    loss = optax.sigmoid_binary_cross_entropy(logits, batch["label"]).mean()
    return loss, {"accuracy": jnp.mean((logits > 0) == (batch["label"] > 0.5))}


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties half)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    positive = labels > 0.5
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def predict(model: EmbeddingMLP, data: dict, batch_size: int = 8192) -> np.ndarray:
    model.eval()
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, batch: nnx.merge(graphdef, state)(batch))
    n = len(data["label"])
    return np.concatenate(
        [
            np.asarray(forward(state, {k: v[i : i + batch_size] for k, v in data.items()}))
            for i in range(0, n, batch_size)
        ]
    )


class EpochTimer(jaxembed.train.Callback):
    def __init__(self):
        self.times, self.last = [], None

    def on_train_begin(self, trainer):
        self.last = time.perf_counter()

    def on_epoch_end(self, epoch, logs, trainer):
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now


def run_jaxembed(train: dict, test: dict, sizes: dict[str, int], args, seed: int) -> dict:
    model = EmbeddingMLP(sizes, train["numeric"].shape[1], dropout=args.dropout, seed=seed)
    trainer = Trainer(model, optax.adam(args.learning_rate), loss_fn)
    timer = EpochTimer()
    batches = Batches(train, args.batch_size, seed=seed)
    fit(trainer, batches, epochs=args.epochs, callbacks=[timer], progress=False)
    scores = predict(model, test)
    return {
        "accuracy": float(np.mean((scores > 0) == (test["label"] > 0.5))),
        "auc": roc_auc(scores, test["label"]),
        "seconds_per_epoch": float(np.mean(timer.times[1:] or timer.times)),  # the first one compiles
        "model": model,
    }


def run_keras(train: dict, test: dict, sizes: dict[str, int], args, seed: int) -> dict:
    """The same model in Keras 3 (its JAX backend): Embedding per column, Concatenate, Dense."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Keras imports TensorFlow's logging: no INFO lines
    import keras

    keras.utils.set_random_seed(seed)
    inputs, parts = [], []
    for column, n in sizes.items():
        x = keras.Input(shape=(), dtype="int32", name=column)
        inputs.append(x)
        parts.append(keras.layers.Embedding(n, embedding_size(n))(x))
    numeric = keras.Input(shape=(train["numeric"].shape[1],), name="numeric")
    x = keras.layers.Concatenate()([*parts, numeric])
    for units in (128, 64):
        x = keras.layers.Dropout(args.dropout)(keras.layers.Dense(units, activation="relu")(x))
    model = keras.Model([*inputs, numeric], keras.layers.Dense(1)(x))
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    features = {k: v for k, v in train.items() if k != "label"}
    model.fit(
        features,
        train["label"],
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=0,
        callbacks=[Timer()],
    )
    scores = np.asarray(
        model.predict({k: v for k, v in test.items() if k != "label"}, batch_size=8192, verbose=0)
    )[:, 0]
    return {
        "accuracy": float(np.mean((scores > 0) == (test["label"] > 0.5))),
        "auc": roc_auc(scores, test["label"]),
        "seconds_per_epoch": float(np.mean(times[1:] or times)),
    }


def run_sklearn(train_table: datasets.Table, test_table: datasets.Table, train: dict, test: dict) -> dict:
    """One-hot + logistic regression, and gradient-boosted trees, on the same columns and split."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    columns = datasets.ADULT_CATEGORICAL
    categorical = [np.stack([t[c] for c in columns], 1) for t in (train_table, test_table)]
    encoder = OneHotEncoder(handle_unknown="ignore").fit(categorical[0])
    import scipy.sparse

    x_train = scipy.sparse.hstack([encoder.transform(categorical[0]), train["numeric"]]).tocsr()
    x_test = scipy.sparse.hstack([encoder.transform(categorical[1]), test["numeric"]]).tocsr()
    logistic = LogisticRegression(max_iter=2000, C=1.0).fit(x_train, train["label"])
    scores = logistic.decision_function(x_test)
    results = {
        "one-hot + logistic regression": {
            "accuracy": float(np.mean((scores > 0) == (test["label"] > 0.5))),
            "auc": roc_auc(scores, test["label"]),
        }
    }
    ids_train = np.stack([train[c] for c in datasets.ADULT_CATEGORICAL], 1)
    ids_test = np.stack([test[c] for c in datasets.ADULT_CATEGORICAL], 1)
    trees = HistGradientBoostingClassifier(
        categorical_features=list(range(ids_train.shape[1])), random_state=0
    ).fit(np.concatenate([ids_train, train["numeric"]], 1), train["label"])
    scores = trees.decision_function(np.concatenate([ids_test, test["numeric"]], 1))
    results["gradient-boosted trees"] = {
        "accuracy": float(np.mean((scores > 0) == (test["label"] > 0.5))),
        "auc": roc_auc(scores, test["label"]),
    }
    return results


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder with adult.data and adult.test")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--bins", type=int, default=16, help="quantile bins per numeric column (0: none)")
    parser.add_argument("--fraction", type=float, default=1.0, help="use only this share of the rows (tests)")
    parser.add_argument("--no-keras", dest="keras", action="store_false")
    parser.add_argument("--no-sklearn", dest="sklearn", action="store_false")
    parser.add_argument("--plot-column", default="occupation", choices=datasets.ADULT_CATEGORICAL)
    parser.add_argument("--out", type=Path, default=Path("out/census_income"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    print(f"JAX backend: {jax.default_backend()}; devices: {jax.devices()}")
    train_table, test_table = datasets.load_adult(args.data)
    if args.fraction < 1.0:
        train_table = train_table.subset(np.arange(int(args.fraction * len(train_table))))
        test_table = test_table.subset(np.arange(int(args.fraction * len(test_table))))
    train, test, lookups = prepare(train_table, test_table, args.bins)
    sizes = {column: lookup.vocabulary_size() for column, lookup in lookups.items()}
    print(
        f"Adult: {len(train_table)} train / {len(test_table)} test rows; embeddings "
        + ", ".join(f"{c} {n}->{embedding_size(n)}" for c, n in sizes.items())
        + f"; {train['numeric'].shape[1]} numeric columns"
    )
    results: dict[str, list[dict]] = {"jaxembed": [], "keras": []}
    for seed in args.seeds:
        run = run_jaxembed(train, test, sizes, args, seed)
        model = run.pop("model")
        results["jaxembed"].append(run)
        line = f"seed {seed}: jaxembed {run['accuracy']:.4f} (AUC {run['auc']:.4f})"
        if args.keras:
            results["keras"].append(run_keras(train, test, sizes, args, seed))
            line += f" | Keras {results['keras'][-1]['accuracy']:.4f} (AUC {results['keras'][-1]['auc']:.4f})"
        print(line, flush=True)
    if args.sklearn:
        for name, value in run_sklearn(train_table, test_table, train, test).items():
            results[name] = [value]
    majority = float(np.mean(test["label"] == (train["label"].mean() > 0.5)))
    summary = {
        "backend": jax.default_backend(),
        "seeds": args.seeds,
        "majority_accuracy": majority,
        "models": {},
    }
    for name, runs in results.items():
        if not runs:
            continue
        accuracy = [r["accuracy"] for r in runs]
        auc = [r["auc"] for r in runs]
        summary["models"][name] = {
            "accuracy_mean": float(np.mean(accuracy)),
            "accuracy_std": float(np.std(accuracy)),
            "auc_mean": float(np.mean(auc)),
            "runs": runs,
        }
        spread = f" ± {np.std(accuracy):.4f} over {len(runs)} seeds" if len(runs) > 1 else ""
        print(f"test accuracy ({name}): {np.mean(accuracy):.4f}{spread}  ROC AUC {np.mean(auc):.4f}")
    print(f"test accuracy (majority class): {majority:.4f}")
    for name in ("jaxembed", "keras"):
        if results[name]:
            seconds = np.mean([r["seconds_per_epoch"] for r in results[name]])
            summary["models"][name]["seconds_per_epoch"] = float(seconds)
            print(
                f"time per epoch ({name}): {seconds:.2f} s ({len(train['label'])} rows, "
                f"batch {args.batch_size})"
            )

    args.out.mkdir(parents=True, exist_ok=True)
    column = args.plot_column
    index = model.columns.index(column)
    table = np.asarray(model.embeddings[index].embeddings[...])
    vocabulary = lookups[column].get_vocabulary()
    rate = {v: float(train["label"][train[column] == i].mean()) for i, v in enumerate(vocabulary) if i}
    ids = list(range(1, len(vocabulary)))  # id 0 is the OOV slot, never seen in training
    summary["plot_rates"] = rate
    try:
        path = viz.plot_embeddings(
            np.asarray(viz.pca(table, 2, ids=ids).coords),
            [f"{vocabulary[i]} ({rate[vocabulary[i]]:.0%})" for i in ids],
            colors=[rate[vocabulary[i]] for i in ids],
            path=args.out / f"{column}_embedding.png",
            title=f"Adult: learned {column} embedding (PCA), share earning >50K",
        )
        summary["plot"] = str(path)
        print(f"plot of the {column} embedding: {path}")
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
    summary["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_text(args.out / "summary.json", json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
