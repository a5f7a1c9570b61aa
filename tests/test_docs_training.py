"""The behaviour docs/training.md states, checked (one test per claim)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxembed
from jaxembed.train import Trainer

ROOT = Path(__file__).resolve().parent.parent


def run_colours(out: Path, *args: str) -> dict:
    env = dict(
        os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg"
    )
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "colours.py"), "--out", str(out), "--quiet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_colours_unknown_word_row_is_pulled_to_zero_by_the_l2_penalty(tmp_path):
    # "its id is never looked up in training, yet its row does not keep its random initial value":
    # the penalty's gradient reaches the row, and Adam pulls it to (almost exactly) zero.
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import colours
    finally:
        sys.path.remove(str(ROOT / "examples"))
    summary = run_colours(tmp_path, "--epochs", "40")
    for dim in (2, 3):
        initial = np.asarray(colours.ColourModel(98, dim, seed=0).embed.embeddings[...])[colours.UNKNOWN]
        final = np.asarray(summary[f"{dim}d"]["unknown_word_row"])
        assert np.abs(initial).max() > 1e-3, initial  # it starts random...
        assert np.abs(final).max() < 1e-6, final  # ...and ends at (almost) zero


def test_colours_training_data_never_looks_up_the_unknown_word():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import colours
    finally:
        sys.path.remove(str(ROOT / "examples"))
    names, _ = colours.css_colours()
    order = np.random.default_rng(0).permutation(len(names))
    train_names = [names[i] for i in np.sort(order[round(0.2 * len(names)) :])]
    vocabulary = {w: i for i, w in enumerate(sorted({w for n in train_names for w in n.split()}), start=2)}
    ids = colours.encode(train_names, vocabulary, 4)
    assert not (ids == colours.UNKNOWN).any()
    assert len(vocabulary) + 2 == 98  # the table size the test above rebuilds


def test_l2_penalty_moves_rows_that_are_never_looked_up():
    # "The L2 penalty's gradient reaches every row, looked up or not" (Regularization section).
    layer = jaxembed.Embedding(4, 2, weights=np.ones((4, 2)), embeddings_regularizer="l2")
    trainer = Trainer(layer, optax.sgd(0.1), lambda m, ids: jnp.sum(m(ids)))
    trainer.train_step(np.array([0, 1]))
    table = np.asarray(trainer.state.params["embeddings"][...])
    np.testing.assert_allclose(table[2:], 1 - 0.1 * 0.02, rtol=1e-6)
    np.testing.assert_allclose(table[:2], 1 - 0.1 * (1 + 0.02), rtol=1e-6)
