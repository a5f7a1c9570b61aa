"""jaxembed.viz: PCA vs NumPy's SVD, exact neighbours vs brute force, Projector round trip, plots."""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxembed import viz


def random_table(rows=300, dim=16, seed=0):
    return np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)


# ---------------------------------------------------------------- PCA


@pytest.mark.parametrize("n_components", [1, 2, 3])
def test_pca_matches_numpy_svd_up_to_sign(n_components):
    table = random_table() * np.linspace(3.0, 0.1, 16, dtype=np.float32)
    result = viz.pca(table, n_components=n_components)

    centered = table.astype(np.float64) - table.astype(np.float64).mean(axis=0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    expected = centered @ vt[:n_components].T
    signs = np.sign(np.sum(np.asarray(result.coords) * expected, axis=0))
    np.testing.assert_allclose(np.asarray(result.coords), expected * signs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(result.components), vt[:n_components] * signs[:, None], rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(result.explained_variance_ratio), (s**2 / np.sum(s**2))[:n_components], rtol=1e-5
    )


def test_pca_sign_is_deterministic_and_flip_invariant():
    table = random_table(50, 5)
    a = viz.pca(table, 3)
    b = viz.pca(-table, 3)  # negating the data flips every singular vector
    comps = np.asarray(a.components)
    biggest = comps[np.arange(3), np.argmax(np.abs(comps), axis=1)]
    assert np.all(biggest > 0)
    np.testing.assert_allclose(np.asarray(a.components), np.asarray(b.components), atol=1e-5)
    np.testing.assert_allclose(np.asarray(a.coords), -np.asarray(b.coords), atol=1e-4)


def test_pca_of_chosen_rows_equals_pca_of_the_slice():
    table = random_table(40, 6)
    ids = [3, 7, 11, 20, 39]
    np.testing.assert_allclose(
        np.asarray(viz.pca(table, 2, ids=ids).coords), np.asarray(viz.pca(table[ids], 2).coords), atol=1e-6
    )


def test_pca_rejects_bad_arguments():
    with pytest.raises(
        ValueError, match=r"n_components.*between 1 and min\(rows, features\) = 4.*n_components=5"
    ):
        viz.pca(np.ones((10, 4)), 5)
    with pytest.raises(ValueError, match=r"positive integer.*n_components=0"):
        viz.pca(np.ones((10, 4)), 0)
    with pytest.raises(ValueError, match=r"2-D array.*\(10,\)"):
        viz.pca(np.ones(10))
    with pytest.raises(ValueError, match="10"):
        viz.pca(np.ones((10, 4)), 2, ids=[0, 10])


# ---------------------------------------------------------------- nearest neighbours


def brute_force(table, queries, k, metric, exclude=None):
    table = table.astype(np.float64)
    queries = queries.astype(np.float64)
    if metric == "cosine":
        table = table / np.linalg.norm(table, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = queries @ table.T
    if exclude is not None:
        scores[np.arange(len(queries)), exclude] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("metric", ["cosine", "dot"])
@pytest.mark.parametrize("batch_size", [7, 1024])
def test_neighbors_of_ids_match_numpy_brute_force(metric, batch_size):
    table = random_table(500, 12)
    query_ids = np.arange(0, 500, 9)  # 56 queries: several batches of 7 with a padded last one
    result = viz.nearest_neighbors(table, query_ids=query_ids, k=6, metric=metric, batch_size=batch_size)
    ids, scores = brute_force(table, table[query_ids], 6, metric, exclude=query_ids)
    assert result.ids.shape == (56, 6) and result.ids.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(result.ids), ids)
    np.testing.assert_allclose(np.asarray(result.scores), scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_neighbors_of_vectors_match_numpy_brute_force(metric):
    table = random_table(200, 8)
    queries = np.random.default_rng(1).normal(size=(13, 8)).astype(np.float32)
    result = viz.nearest_neighbors(table, query_vectors=queries, k=5, metric=metric)
    ids, scores = brute_force(table, queries, 5, metric)
    np.testing.assert_array_equal(np.asarray(result.ids), ids)
    np.testing.assert_allclose(np.asarray(result.scores), scores, rtol=1e-5, atol=1e-5)


def test_neighbors_include_self_when_asked():
    table = random_table(30, 4)
    result = viz.nearest_neighbors(table, query_ids=[5, 6], k=1, exclude_self=False)
    assert result.ids.tolist() == [[5], [6]]
    np.testing.assert_allclose(np.asarray(result.scores), 1.0, rtol=1e-6)


def test_neighbors_compile_once_for_the_same_padded_shape():
    table = random_table(64, 4)
    viz._top_k.clear_cache()
    for n in (3, 4, 5, 7, 8):  # fewer queries than a batch pad to a power of two: 4 or 8
        viz.nearest_neighbors(table, query_vectors=table[:n], k=2, batch_size=8)
    assert viz._top_k._cache_size() == 2
    viz.nearest_neighbors(table, query_vectors=table[:20], k=2, batch_size=8)
    viz.nearest_neighbors(table, query_vectors=table[:24], k=2, batch_size=8)
    assert viz._top_k._cache_size() == 3  # 20 and 24 both pad to 3 batches of 8


def test_neighbors_under_jit_match_eager_and_poison_invalid_ids():
    table = jnp.asarray(random_table(20, 3))
    eager = viz.nearest_neighbors(table, query_ids=jnp.array([1, 2]), k=3)
    ids, _ = brute_force(np.asarray(table), np.asarray(table)[[1, 2]], 3, "cosine", exclude=[1, 2])
    np.testing.assert_array_equal(np.asarray(eager.ids), ids)

    jitted = jax.jit(lambda t, q: viz.nearest_neighbors(t, query_ids=q, k=3))
    inside = jitted(table, jnp.array([1, 2]))
    np.testing.assert_array_equal(np.asarray(inside.ids), ids)
    np.testing.assert_allclose(np.asarray(inside.scores), np.asarray(eager.scores), rtol=1e-6)
    bad = jitted(table, jnp.array([1, 25]))  # id 25 does not exist: NaN scores, not a wrapped row
    assert np.all(np.isfinite(np.asarray(bad.scores[0]))) and np.all(np.isnan(np.asarray(bad.scores[1])))


def test_pca_of_traced_invalid_ids_is_nan():
    table = jnp.asarray(random_table(10, 4))
    coords = jax.jit(lambda ids: viz.pca(table, 2, ids=ids).coords)(jnp.array([0, 1, 2, 99]))
    assert np.all(np.isnan(np.asarray(coords)))


def test_neighbors_reject_bad_arguments():
    table = random_table(10, 4)
    with pytest.raises(ValueError, match=r"metric.*\('cosine', 'dot'\).*'euclid'"):
        viz.nearest_neighbors(table, query_ids=[0], metric="euclid")
    with pytest.raises(ValueError, match=r"at most the number of candidate rows \(9 = 10 rows minus.*k=10"):
        viz.nearest_neighbors(table, query_ids=[0], k=10)
    with pytest.raises(ValueError, match=r"positive integer.*k=0"):
        viz.nearest_neighbors(table, query_ids=[0], k=0)
    with pytest.raises(ValueError, match="exactly one of `query_ids` and `query_vectors`"):
        viz.nearest_neighbors(table)
    with pytest.raises(ValueError, match="exactly one of"):
        viz.nearest_neighbors(table, query_ids=[0], query_vectors=table[:1])
    with pytest.raises(ValueError, match=r"shape \(n, 4\).*\(2, 3\)"):
        viz.nearest_neighbors(table, query_vectors=np.ones((2, 3)))
    with pytest.raises(ValueError, match="10"):
        viz.nearest_neighbors(table, query_ids=[12])


# ---------------------------------------------------------------- Projector export


def read_tensors(path):
    return np.array([[float(v) for v in line.split("\t")] for line in path.read_text().splitlines()])


def test_projector_files_round_trip(tmp_path):
    table = random_table(25, 7)
    labels = [f"word{i}" for i in range(25)]
    files = viz.export_projector(table, labels, tmp_path / "projector")
    (subfolder,) = [p for p in (tmp_path / "projector").iterdir() if p.is_dir()]
    assert sorted(p.name for p in (tmp_path / "projector").iterdir()) == [
        subfolder.name,
        "projector_config.pbtxt",
    ]
    assert sorted(p.name for p in subfolder.iterdir()) == ["metadata.tsv", "tensors.tsv"]
    np.testing.assert_array_equal(read_tensors(files["tensors"]).astype(np.float32), table)  # exact
    assert files["metadata"].read_text().splitlines() == labels
    assert all(path.stat().st_mode & 0o044 == 0o044 for path in files.values())  # readable, like open()
    config = files["config"].read_text()
    assert f'tensor_path: "{subfolder.name}/tensors.tsv"' in config
    assert f'metadata_path: "{subfolder.name}/metadata.tsv"' in config


def test_projector_config_parses_as_tensorboard_proto(tmp_path):
    projector_pb2 = pytest.importorskip(
        "tensorboard.plugins.projector.projector_config_pb2",
        reason="tensorboard (the `compare` extra) is needed to parse the config as a ProjectorConfig",
    )
    from google.protobuf import text_format

    files = viz.export_projector(np.ones((3, 2)), ["a", "b", "c"], tmp_path, tensor_name='my "table"')
    config = text_format.Parse(files["config"].read_text(), projector_pb2.ProjectorConfig())
    (embedding,) = config.embeddings
    assert embedding.tensor_name == 'my "table"'
    assert embedding.tensor_path == files["tensors"].relative_to(tmp_path).as_posix()
    assert embedding.metadata_path == files["metadata"].relative_to(tmp_path).as_posix()
    assert list(embedding.tensor_shape) == [3, 2]


def test_projector_multi_column_metadata_has_a_header(tmp_path):
    files = viz.export_projector(np.eye(3), {"word": ["cat", "dog", "snake"], "count": [3, 4, 2]}, tmp_path)
    assert files["metadata"].read_text().splitlines() == ["word\tcount", "cat\t3", "dog\t4", "snake\t2"]


def test_projector_rejects_bad_input_and_leaves_no_temporaries(tmp_path):
    with pytest.raises(ValueError, match=r"one label per row \(3\). Received 2"):
        viz.export_projector(np.eye(3), ["a", "b"], tmp_path)
    with pytest.raises(ValueError, match=r"tabs or line breaks.*'a\\tb'"):
        viz.export_projector(np.eye(3), ["a\tb", "c", "d"], tmp_path)
    with pytest.raises(ValueError, match=r"finite.*\[\[1, 0\]\]"):
        viz.export_projector(np.array([[0.0, 1.0], [np.nan, 2.0]]), ["a", "b"], tmp_path)
    with pytest.raises(ValueError, match=r"Metadata column 'n'.*\(3\). Received 1"):
        viz.export_projector(np.eye(3), {"w": ["a", "b", "c"], "n": [1]}, tmp_path)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- plots


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plot_of_a_wide_table_is_written(tmp_path, suffix):
    table = random_table(2000, 32)
    labels = [f"id{i}" for i in range(2000)]
    categories = np.arange(2000) % 5
    path = viz.plot_embeddings(
        table, labels, path=tmp_path / f"many.{suffix}", label_subset=[0, 10, 1999], colors=categories
    )
    assert path.exists() and path.stat().st_size > 10_000
    if suffix == "png":
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "<svg" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_plot_3d_with_rgb_and_value_colours(tmp_path):
    points = random_table(100, 3)
    rgb = np.random.default_rng(0).uniform(size=(100, 3))
    a = viz.plot_embeddings(points, path=tmp_path / "rgb.png", colors=rgb)
    b = viz.plot_embeddings(points[:, :2], path=tmp_path / "values.png", colors=np.linspace(0, 1, 100))
    assert a.stat().st_size > 10_000 and b.stat().st_size > 10_000


def test_plot_rejects_bad_arguments(tmp_path):
    points = random_table(5, 2)
    with pytest.raises(ValueError, match=r"one entry per point \(5\). Received 2 labels"):
        viz.plot_embeddings(points, ["a", "b"], path=tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"label_subset.*\[0, 5\).*\[7\]"):
        viz.plot_embeddings(points, list("abcde"), path=tmp_path / "x.png", label_subset=[1, 7])
    with pytest.raises(ValueError, match=r"\.png, \.svg or \.pdf.*x\.jpg"):
        viz.plot_embeddings(points, path=tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=r"`colors`.*one entry per point \(5\).*\(4,\)"):
        viz.plot_embeddings(points, path=tmp_path / "x.png", colors=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="folder of `path` does not exist"):
        viz.plot_embeddings(points, path=tmp_path / "missing" / "x.png")


def test_viz_imports_and_computes_without_matplotlib():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import jaxembed.viz as viz, numpy as np\n"
        "print(viz.nearest_neighbors(np.eye(3), query_ids=[0], k=1).ids.shape)\n"
        "try:\n"
        "    viz.plot_embeddings(np.eye(3)[:, :2], path='x.png')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    ).stdout
    assert out.splitlines()[0] == "(1, 1)"
    assert 'pip install "jaxembed[viz]"' in out
