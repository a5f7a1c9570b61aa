"""Vectorizing 25,000 review-length texts: jaxembed.text.TextVectorizer against Keras's TextVectorization.

The texts are synthetic reviews made of real text: runs of consecutive words
(case and punctuation kept) from the standard-library docstrings of
``jaxembed.datasets.load_builtin``, 230 words each on average like IMDB
reviews. Both vectorizers ``adapt`` on the texts and turn them into
``(25000, 200)`` ids with ``max_tokens=20000`` (the Keras IMDB tutorial's
settings). The vocabularies and every id are checked equal first; then each
step is timed, interleaved, over several repeats (median). Keras runs on
TensorFlow's string ops (it needs the ``compare`` extra).

    python benchmarks/text_vectorization.py --texts 25000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import median, timed  # noqa: E402

from jaxembed.datasets import load_builtin  # noqa: E402
from jaxembed.text import TextVectorizer  # noqa: E402


def synthetic_reviews(count: int, seed: int = 0) -> list[str]:
    words = " ".join(load_builtin().texts).split()
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(170), 0.75, count).astype(int), 10, 2500)
    starts = rng.integers(0, len(words) - lengths.max(), count)
    return [" ".join(words[s : s + n]) for s, n in zip(starts, lengths)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=25_000)
    parser.add_argument("--max-tokens", type=int, default=20_000)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    print("# python benchmarks/text_vectorization.py " + " ".join(sys.argv[1:]))
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores visible, "
        f"python {platform.python_version()}, keras {keras.__version__}, tensorflow {tf.__version__}"
    )
    texts = synthetic_reviews(args.texts)
    words = [len(text.split()) for text in texts]
    print(
        f"# {len(texts)} synthetic reviews from stdlib docstrings: mean {np.mean(words):.0f} words, "
        f"{sum(words):,} in all; max_tokens={args.max_tokens}, output_sequence_length={args.length}; "
        f"median of {args.repeats}"
    )

    def make_ours():
        return TextVectorizer(args.max_tokens, output_sequence_length=args.length)

    def make_keras():
        return keras.layers.TextVectorization(max_tokens=args.max_tokens, output_sequence_length=args.length)

    ours, theirs = make_ours(), make_keras()
    ours.adapt(texts)
    theirs.adapt(texts)
    same_vocabulary = ours.get_vocabulary() == theirs.get_vocabulary()
    ours_ids, keras_ids = ours(texts), np.asarray(theirs(texts))
    same_ids = np.array_equal(ours_ids, keras_ids)
    print(
        f"# check: same vocabulary {same_vocabulary}; same ids for all {ours_ids.size:,} positions {same_ids}"
    )
    if not (same_vocabulary and same_ids):
        raise SystemExit("results differ; not timing")

    def seconds_of(run) -> float:
        return timed(run)[0] / 1e3

    times: dict[str, list[float]] = {}
    for _ in range(args.repeats):  # interleaved
        fresh_ours, fresh_keras = make_ours(), make_keras()
        times.setdefault("ours adapt", []).append(seconds_of(lambda: fresh_ours.adapt(texts)))
        times.setdefault("keras adapt", []).append(seconds_of(lambda: fresh_keras.adapt(texts)))
        times.setdefault("ours vectorize", []).append(seconds_of(lambda: ours(texts)))
        times.setdefault("keras vectorize", []).append(seconds_of(lambda: np.asarray(theirs(texts))))
    print(f"{'step':12} {'implementation':44} {'seconds':>8} {'texts/s':>10}")
    for step in ("adapt", "vectorize"):
        for who, name in (
            ("ours", "jaxembed.text.TextVectorizer (Python)"),
            ("keras", "keras TextVectorization (TF)"),
        ):
            seconds = median(times[f"{who} {step}"])
            print(f"{step:12} {name:44} {seconds:8.2f} {len(texts) / seconds:10,.0f}")


if __name__ == "__main__":
    main()
