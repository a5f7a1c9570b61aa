"""Recommendations on MovieLens 100K: matrix factorization with user and movie embeddings.

    python examples/movielens.py                          # five folds: features + rated-movies bag
    python examples/movielens.py --folds 1                # fold 0 only (tuning)
    python examples/movielens.py --no-features --no-implicit  # plain biased matrix factorization
    python examples/movielens.py --dense                  # dense Adam on the tables instead of lazy

The model predicts a rating as ``mu + b_u + b_i + <p_u, q_i>``: ``p_u`` and ``q_i`` are rows of
two ``jaxembed.Embedding`` tables (users, movies), ``b_u``/``b_i`` rows of two one-column tables.
With features (the default) the user vector adds embeddings of the user's age band, gender and
occupation, the movie vector the mean of its genres' embeddings, and each feature has a bias too:
new or rarely seen users and movies then start from what their group likes. With the implicit
term (the default) the user vector also adds a scaled bag of vectors of the movies the user rated
in the training fold (SVD++'s idea). Training is ``jaxembed.train.Trainer`` with AdamW: its
decoupled weight decay is the regularizer (``--l2`` adds an explicit penalty on the looked-up
rows); with the default row-sparse step (lazy AdamW, ``O(batch)`` per table) only the rows a
batch looked up are decayed, ``--dense`` decays and moves every row every step.

Evaluation is the protocol of the Surprise library's benchmark table: five folds of
``KFold(n_splits=5, random_state=0)`` over the 100,000 ratings (``MovieLens.folds``), test RMSE
and MAE of the clipped predictions, averaged over the folds. ``--seeds N`` averages the predictions
of N models trained from different initializations. After the folds, one model is trained on
every rating to show the nearest neighbours of well-known titles (cosine, ``jaxembed.viz``) and a
2-D PCA map of the movie vectors coloured by genre.
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
from jaxembed import datasets, viz
from jaxembed._files import write_text
from jaxembed.train import Batches, Trainer

# Surprise 1.1 on the same five folds (measured in this project; they match its published table).
SURPRISE = {"BaselineOnly": 0.944, "SVD": 0.934, "KNNBaseline": 0.931, "SVD++": 0.919}
SURPRISE_SVDPP_SECONDS = 58.0
AGE_BANDS = np.array([18, 25, 35, 45, 50, 56])  # MovieLens 1M's bands: <18, 18-24, ..., 56+
TITLES = [
    "Star Wars (1977)",
    "Toy Story (1995)",
    "Fargo (1996)",
    "Scream (1996)",
    "Sound of Music, The (1965)",
]
MAP_GENRES = ["Children's", "Horror", "Documentary", "Film-Noir", "Romance", "Sci-Fi"]


def features(data: datasets.MovieLens) -> dict[str, np.ndarray]:
    """Per-user and per-movie feature ids (row 0 unused: ids start at 1)."""
    users = data.users
    occupations = sorted(set(users["occupation"]))
    pad = np.zeros(1, np.int32)
    genres = data.genres().astype(np.float32)
    genres = genres / np.maximum(genres.sum(1, keepdims=True), 1.0)
    return {
        "age": np.concatenate([pad, np.searchsorted(AGE_BANDS, users["age"], side="right")]).astype(np.int32),
        "gender": np.concatenate([pad, (users["gender"] == "F").astype(np.int32)]),
        "occupation": np.concatenate([pad, [occupations.index(o) for o in users["occupation"]]]).astype(
            np.int32
        ),
        "genres": np.concatenate([np.zeros((1, genres.shape[1]), np.float32), genres]),
        "num_occupations": len(occupations),
    }


class Rated(nnx.Variable):
    """Constant arrays of the model (the training ratings' user and movie ids): not trained."""


class MatrixFactorization(nnx.Module):
    """``mu + b_u + b_i + <p_u, q_i>``, with optional feature embeddings and the rated-movies bag.

    ``rated``: ``(user_ids, movie_ids)`` of the training ratings. When given, the user vector
    adds ``|R(u)|^-1/2 * sum_{j in R(u)} y_j`` over the movies ``R(u)`` the user rated (SVD++'s
    implicit feedback: *which* movies someone chose to rate says something about their taste).
    """

    def __init__(
        self,
        num_users: int,
        num_movies: int,
        dim: int,
        mean: float,
        side: dict | None,
        rated: tuple[np.ndarray, np.ndarray] | None,
        *,
        seed: int,
    ):
        init = jaxembed.keras.initializers.RandomNormal(stddev=0.01)
        keys = iter(jax.random.split(jax.random.key(seed), 10))
        self.user = jaxembed.Embedding(num_users, dim, embeddings_initializer=init, rngs=next(keys))
        self.movie = jaxembed.Embedding(num_movies, dim, embeddings_initializer=init, rngs=next(keys))
        self.user_bias = jaxembed.Embedding(num_users, 1, embeddings_initializer="zeros", rngs=0)
        self.movie_bias = jaxembed.Embedding(num_movies, 1, embeddings_initializer="zeros", rngs=0)
        self.mean = mean
        self.num_users = num_users
        self.side = side is not None
        if self.side:
            # Feature tables are small: dense parameters of the Adam update (not row-sparse).
            self.age = nnx.Param(init(next(keys), (len(AGE_BANDS) + 1, dim + 1)))
            self.gender = nnx.Param(init(next(keys), (2, dim + 1)))
            self.occupation = nnx.Param(init(next(keys), (side["num_occupations"], dim + 1)))
            self.genre = nnx.Param(init(next(keys), (side["genres"].shape[1], dim + 1)))
        self.implicit = rated is not None
        if self.implicit:
            order = np.argsort(rated[0], kind="stable")  # sorted segments: a faster segment sum
            users, movies = rated[0][order], rated[1][order]
            counts = np.bincount(users, minlength=num_users)
            self.rated_users = Rated(jnp.asarray(users, jnp.int32))
            self.rated_movies = Rated(jnp.asarray(movies, jnp.int32))
            self.rated_scale = Rated(jnp.asarray(1.0 / np.sqrt(np.maximum(counts, 1)), jnp.float32))
            # Every step reads all of it (one gather + segment sum): a dense parameter.
            self.rated_movie_vectors = nnx.Param(init(next(keys), (num_movies, dim)))

    def vectors(self, batch: dict) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """The batch's user and movie vectors ``(batch, dim)`` and biases ``(batch,)``, features added."""
        p, q = self.user(batch["user"]), self.movie(batch["movie"])
        b_u, b_i = self.user_bias(batch["user"])[:, 0], self.movie_bias(batch["movie"])[:, 0]
        if self.side:
            u = self.age[...][batch["age"]] + self.gender[...][batch["gender"]]
            u = u + self.occupation[...][batch["occupation"]]
            m = jnp.matmul(batch["genres"], self.genre[...], precision=jax.lax.Precision.HIGHEST)
            p, b_u = p + u[:, :-1], b_u + u[:, -1]
            q, b_i = q + m[:, :-1], b_i + m[:, -1]
        if self.implicit:
            with jax.named_scope("rated_movies_bag"):
                bags = jax.ops.segment_sum(
                    self.rated_movie_vectors[...][self.rated_movies[...]],
                    self.rated_users[...],
                    num_segments=self.num_users,
                    indices_are_sorted=True,
                )
                p = p + (bags * self.rated_scale[...][:, None])[batch["user"]]
        return p, q, b_u, b_i

    def __call__(self, batch: dict) -> tuple[jax.Array, jax.Array]:
        """Predicted ratings ``(batch,)`` and the L2 penalty of the looked-up rows (summed over the batch)."""
        p, q, b_u, b_i = self.vectors(batch)
        rows = (self.user(batch["user"]), self.movie(batch["movie"]))
        penalty = sum(jnp.sum(r**2) for r in rows)
        return self.mean + b_u + b_i + jnp.sum(p * q, axis=-1), penalty


def make_loss(l2: float):
    def loss_fn(model: MatrixFactorization, batch: dict) -> tuple[jax.Array, dict]:
        score, penalty = model(batch)
        mse = jnp.mean((score - batch["rating"]) ** 2)
        return mse + l2 * penalty / score.shape[0], {"mse": mse}

    return loss_fn


def rows(ratings: datasets.Table, index: np.ndarray, side: dict | None) -> dict[str, np.ndarray]:
    user, movie = ratings["user_id"][index].astype(np.int32), ratings["movie_id"][index].astype(np.int32)
    out = {"user": user, "movie": movie, "rating": ratings["rating"][index].astype(np.float32)}
    if side is not None:
        out.update(
            age=side["age"][user],
            gender=side["gender"][user],
            occupation=side["occupation"][user],
            genres=side["genres"][movie],
        )
    return out


def predict(model: MatrixFactorization, data: dict, batch_size: int = 8192) -> np.ndarray:
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, batch: nnx.merge(graphdef, state)(batch)[0])
    n = len(data["rating"])
    return np.concatenate(
        [
            np.asarray(forward(state, {k: v[i : i + batch_size] for k, v in data.items()}))
            for i in range(0, n, batch_size)
        ]
    )


def train_one(train: dict, num_users: int, num_movies: int, side: dict | None, args, seed: int):
    """One model on ``train``; returns it and the seconds per epoch (the first, compiling, left out)."""
    rated = (train["user"], train["movie"]) if args.implicit else None
    mean = float(train["rating"].mean())
    model = MatrixFactorization(num_users, num_movies, args.dim, mean, side, rated, seed=seed)
    optimizer = optax.adamw(args.learning_rate, weight_decay=args.weight_decay)
    trainer = Trainer(model, optimizer, make_loss(args.l2), row_sparse=not args.dense)
    batches = Batches(train, args.batch_size, seed=seed, drop_remainder=True)
    epoch_seconds = []
    for _ in range(args.epochs):
        started = time.perf_counter()
        for batch in batches:
            metrics = trainer.train_step(batch)
        jax.block_until_ready(metrics["loss"])
        epoch_seconds.append(time.perf_counter() - started)
    trainer.sync_model()
    return model, float(np.mean(epoch_seconds[1:] or epoch_seconds))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=None, help="the ml-100k folder (default: the packaged copy)"
    )
    parser.add_argument("--folds", type=int, default=5, help="how many of the five folds to run (1: fold 0)")
    parser.add_argument(
        "--fraction", type=float, default=1.0, help="use only this share of each fold (tests)"
    )
    parser.add_argument("--dim", type=int, default=100, help="factors per user and movie")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument(
        "--weight-decay", type=float, default=0.5, help="AdamW's decoupled decay (row-sparse: looked-up rows)"
    )
    parser.add_argument("--l2", type=float, default=0.0, help="L2 penalty weight on the looked-up rows")
    parser.add_argument("--seeds", type=int, default=1, help="models averaged per fold")
    parser.add_argument("--no-features", dest="features", action="store_false", help="no user/movie features")
    parser.add_argument(
        "--no-implicit", dest="implicit", action="store_false", help="no bag of the movies each user rated"
    )
    parser.add_argument("--dense", action="store_true", help="dense Adam on the tables (default: row-sparse)")
    parser.add_argument("--no-neighbours", dest="neighbours", action="store_false")
    parser.add_argument("--out", type=Path, default=Path("out/movielens"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    started = time.perf_counter()
    print(f"JAX backend: {jax.default_backend()}; devices: {jax.devices()}")
    data = datasets.load_movielens_100k(args.data)
    ratings = data.ratings
    num_users, num_movies = len(data.users) + 1, len(data.movies) + 1
    side = features(data) if args.features else None
    print(
        f"MovieLens 100K: {len(ratings)} ratings, {num_users - 1} users, {num_movies - 1} movies; "
        f"biased MF{' + user/movie features' if side else ''}"
        f"{' + rated-movies bag' if args.implicit else ''}, {args.dim} factors, "
        f"{'dense' if args.dense else 'row-sparse'} AdamW, {args.seeds} seed(s) per fold"
    )
    folds = []
    for fold, (train_index, test_index) in enumerate(data.folds()):
        if fold == args.folds:
            break
        if args.fraction < 1.0:
            rng = np.random.default_rng(fold)
            train_index = np.sort(
                rng.choice(train_index, int(args.fraction * len(train_index)), replace=False)
            )
            test_index = np.sort(rng.choice(test_index, int(args.fraction * len(test_index)), replace=False))
        train, test = rows(ratings, train_index, side), rows(ratings, test_index, side)
        fold_started = time.perf_counter()
        predictions, per_seed, epoch_seconds = [], [], []
        for seed in range(args.seeds):
            model, seconds = train_one(train, num_users, num_movies, side, args, seed)
            predictions.append(np.clip(predict(model, test), 1.0, 5.0))
            per_seed.append(float(np.sqrt(np.mean((predictions[-1] - test["rating"]) ** 2))))
            epoch_seconds.append(seconds)
        guess = np.clip(np.mean(predictions, axis=0), 1.0, 5.0)
        result = {
            "fold": fold,
            "rmse": float(np.sqrt(np.mean((guess - test["rating"]) ** 2))),
            "mae": float(np.mean(np.abs(guess - test["rating"]))),
            "rmse_per_seed": per_seed,
            "seconds": time.perf_counter() - fold_started,
            "seconds_per_epoch": float(np.mean(epoch_seconds)),
        }
        folds.append(result)
        print(
            f"fold {fold}: RMSE {result['rmse']:.4f}  MAE {result['mae']:.4f}  "
            f"(single models {', '.join(f'{r:.4f}' for r in per_seed)}; {result['seconds']:.1f} s, "
            f"{result['seconds_per_epoch'] * 1000:.0f} ms/epoch)"
        )
    rmse, mae = float(np.mean([f["rmse"] for f in folds])), float(np.mean([f["mae"] for f in folds]))
    seconds = float(sum(f["seconds"] for f in folds))
    print(f"test RMSE (jaxembed): {rmse:.4f}")
    print(f"test MAE (jaxembed): {mae:.4f}")
    print(
        f"time for {len(folds)} fold(s): {seconds:.1f} s "
        f"(Surprise SVD++: {SURPRISE_SVDPP_SECONDS:.0f} s for five)"
    )
    print("Surprise on the same folds: " + ", ".join(f"{k} {v:.3f}" for k, v in SURPRISE.items()))

    summary = {
        "backend": jax.default_backend(),
        "folds": folds,
        "test_rmse": rmse,
        "test_mae": mae,
        "seconds": seconds,
        "surprise_rmse": SURPRISE,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    if args.neighbours:
        summary.update(neighbours_and_map(data, side, args))
    summary["total_seconds"] = time.perf_counter() - started
    write_text(args.out / "summary.json", json.dumps(summary, indent=2))
    return summary


def neighbours_and_map(data: datasets.MovieLens, side: dict | None, args) -> dict:
    """One model on every rating: nearest movies of well-known titles and a genre-coloured map."""
    everything = rows(data.ratings, np.arange(len(data.ratings)), side)
    model, _ = train_one(everything, len(data.users) + 1, len(data.movies) + 1, side, args, seed=0)
    table = np.asarray(model.movie.embeddings[...])
    if side is not None:  # the vector the model uses: the movie's own row plus its genres'
        table = table + side["genres"] @ np.asarray(model.genre[...])[:, :-1]
    titles = ["(padding)", *data.movies["movie_title"].tolist()]
    counts = np.bincount(data.ratings["movie_id"], minlength=len(titles))
    # Movies with few ratings have noisy vectors: neighbours among those rated 50 times or more.
    popular = np.flatnonzero(counts >= 50)
    queries = [titles.index(t) for t in TITLES if t in titles]
    found = viz.nearest_neighbors(
        table[popular], query_ids=[int(np.flatnonzero(popular == q)[0]) for q in queries], k=5
    )
    neighbours = {}
    for query, ids in zip(queries, np.asarray(found.ids)):
        neighbours[titles[query]] = [titles[popular[i]] for i in ids]
        print(f"nearest to {titles[query]}: {'; '.join(neighbours[titles[query]])}")
    genres = data.genres()
    labels, keep = [], []
    for movie in popular:
        own = [g for g in MAP_GENRES if genres[movie - 1, datasets.MOVIELENS_GENRES.index(g)]]
        if len(own) == 1:  # movies of exactly one of the mapped genres
            keep.append(movie)
            labels.append(own[0])
    plot = None
    try:
        plot = str(
            viz.plot_embeddings(
                np.asarray(viz.pca(table[keep], 2).coords),
                colors=labels,
                path=args.out / "movie_map.png",
                title="MovieLens 100K: movie vectors (PCA), coloured by genre",
            )
        )
        print(f"map of {len(keep)} movies: {plot}")
    except ImportError:
        print("matplotlib is not installed: no map (pip install matplotlib)")
    return {"neighbours": neighbours, "map": plot, "map_movies": len(keep)}


if __name__ == "__main__":
    main()
