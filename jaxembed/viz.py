"""Looking at an embedding table: PCA, nearest neighbours, plots, Projector export.

Three questions people ask of a trained table, each a pure function:

* *What does the space look like?* :func:`pca` projects rows to 2-D or 3-D
  (a centred SVD computed in JAX, with a deterministic sign), and
  :func:`plot_embeddings` draws them as a labelled scatter plot to PNG/SVG.
* *Which ids ended up close?* :func:`nearest_neighbors` returns the ``k`` most
  similar rows by cosine or dot-product similarity -- exact (a full matmul and
  ``jax.lax.top_k``, no approximate index), jit-compiled and batched over
  queries so memory stays ``O(batch_size * input_dim)``.
* *Can I explore it interactively?* :func:`export_projector` writes the files
  TensorBoard's Embedding Projector opens (``tensors.tsv``, ``metadata.tsv``,
  ``projector_config.pbtxt``).

Only :func:`plot_embeddings` needs matplotlib, and imports it when called:
install it with ``pip install "jaxembed[viz]"`` (or the ``examples`` extra).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np

from jaxembed import _files, ops

__all__ = [
    "PCAResult",
    "Neighbors",
    "SimilarityMetric",
    "SIMILARITY_METRICS",
    "pca",
    "nearest_neighbors",
    "plot_embeddings",
    "export_projector",
    "save_figure",
]

SimilarityMetric = Literal["cosine", "dot"]
"""How :func:`nearest_neighbors` scores rows: ``"cosine"`` (angle only) or ``"dot"`` (raw inner product)."""
SIMILARITY_METRICS: tuple[str, ...] = get_args(SimilarityMetric)
"""The valid values of ``metric``, ``("cosine", "dot")``."""

_PROJECTOR_FILES = ("tensors.tsv", "metadata.tsv", "projector_config.pbtxt")
_EXPORT_FOLDER = re.compile(r"projector-[0-9a-f]{12}")


class PCAResult(NamedTuple):
    """The output of :func:`pca`.

    Attributes:
        coords: ``(n_rows, n_components)`` coordinates of each row along the
            principal components.
        explained_variance_ratio: ``(n_components,)`` fraction of the total
            variance each component explains, largest first.
        components: ``(n_components, output_dim)`` unit principal directions;
            project new vectors with ``(x - mean) @ components.T``.

    Examples:
        >>> result = pca(jnp.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0]]), n_components=1)
        >>> result.coords.tolist(), result.explained_variance_ratio.tolist()
        ([[-2.0], [0.0], [2.0]], [1.0])
    """

    coords: jax.Array
    explained_variance_ratio: jax.Array
    components: jax.Array


class Neighbors(NamedTuple):
    """The output of :func:`nearest_neighbors`.

    Attributes:
        ids: ``(n_queries, k)`` int32 row ids, most similar first.
        scores: ``(n_queries, k)`` similarities of those rows to the query
            (cosine in ``[-1, 1]`` or the raw dot product).

    Examples:
        >>> table = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
        >>> nearest_neighbors(table, query_ids=[0], k=1).ids.tolist()
        [[2]]
    """

    ids: jax.Array
    scores: jax.Array


def _as_table(table: jax.typing.ArrayLike, name: str = "table") -> jax.Array:
    array = jnp.asarray(table)
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array of shape (rows, features). Received shape {array.shape}."
        )
    if not jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(jnp.float32)
    return array


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received {name}={value!r}.")
    return int(value)


@partial(jax.jit, static_argnames="n_components")
def _pca(table: jax.Array, n_components: int) -> PCAResult:
    with jax.named_scope("pca"):
        centered = table - jnp.mean(table, axis=0)
        _, singular_values, vt = jnp.linalg.svd(centered, full_matrices=False)
        components = vt[:n_components]
        # Deterministic sign: the largest-magnitude entry of each direction is positive.
        biggest = jnp.take_along_axis(components, jnp.argmax(jnp.abs(components), axis=1)[:, None], axis=1)
        components = components * jnp.where(biggest < 0, -1.0, 1.0).astype(components.dtype)
        coords = jnp.matmul(centered, components.T, precision=jax.lax.Precision.HIGHEST)
        variance = singular_values**2
        total = jnp.sum(variance)
        ratio = jnp.where(total > 0, variance[:n_components] / jnp.where(total > 0, total, 1), 0)
        return PCAResult(coords, ratio, components)


def pca(
    table: jax.typing.ArrayLike,
    n_components: int = 2,
    *,
    ids: jax.typing.ArrayLike | None = None,
) -> PCAResult:
    """Projects the rows of a table onto their top principal components.

    The rows are centred and decomposed with a thin SVD,
    ``table - mean = U S Vᵀ``; the coordinates are ``(table - mean) @ V[:, :n]``.
    Singular vectors are only defined up to sign, so each component is flipped
    to make its largest-magnitude entry positive: the same table always gives
    the same picture.

    Args:
        table: ``(input_dim, output_dim)`` embedding table (any float dtype;
            integer tables are cast to float32).
        n_components: number of components to keep, ``1 <= n_components <=
            min(rows, output_dim)``; 2 or 3 for a plot.
        ids: optional row ids to project instead of the whole table (checked
            like layer ids: out-of-range ids raise ``ValueError``). The mean is
            taken over the chosen rows.

    Returns:
        A :class:`PCAResult` ``(coords, explained_variance_ratio, components)``.

    Raises:
        ValueError: if ``table`` is not 2-D, ``n_components`` is out of range
            or an id does not exist.

    Examples:
        >>> table = jnp.array([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [3.0, 3.0]])
        >>> coords, ratio, components = pca(table, n_components=2)
        >>> coords.shape, ratio.shape, components.shape
        ((4, 2), (2,), (2, 2))
        >>> bool(ratio[0] > 0.9)
        True
        >>> pca(table, 1, ids=[0, 3]).coords.shape
        (2, 1)
    """
    array = _as_table(table)
    if ids is not None:
        int_ids, valid = ops.prepare_ids(ids, array.shape[0])
        array = ops.take_lookup(array, int_ids.reshape(-1))
        if valid is not None:  # traced ids: an invalid one poisons the result with NaN
            array = jnp.where(valid.reshape(-1)[:, None], array, jnp.nan)
    n_components = _positive_int("n_components", n_components)
    limit = min(array.shape)
    if n_components > limit:
        raise ValueError(
            f"`n_components` must be between 1 and min(rows, features) = {limit} for a table of "
            f"shape {array.shape}. Received n_components={n_components}."
        )
    return _pca(array, n_components)


def _check_metric(metric: str) -> str:
    if metric not in SIMILARITY_METRICS:
        raise ValueError(f"`metric` must be one of {SIMILARITY_METRICS}. Received metric={metric!r}.")
    return metric


def _normalize(x: jax.Array) -> jax.Array:
    norms = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / jnp.maximum(norms, jnp.finfo(x.dtype).tiny)


@partial(jax.jit, static_argnames=("k", "metric", "batch_size"))
def _top_k(
    table: jax.Array,
    queries: jax.Array,
    self_ids: jax.Array,
    *,
    k: int,
    metric: str,
    batch_size: int,
) -> Neighbors:
    """Exact top-k over all rows for ``queries`` padded to a multiple of ``batch_size``.

    ``self_ids`` holds, per query, a row to exclude (``-1`` excludes nothing).
    """
    with jax.named_scope("nearest_neighbors"):
        if metric == "cosine":
            table = _normalize(table)
            queries = _normalize(queries)
        chunks = queries.reshape(-1, batch_size, queries.shape[-1])
        self_chunks = self_ids.reshape(-1, batch_size)
        rows = jnp.arange(table.shape[0])
        finite_rows = jnp.all(jnp.isfinite(table), axis=1)
        # Ranking keys: a score that is not finite (a NaN/inf row, or an overflow) ranks
        # below every finite score, and the excluded row below everything.
        lowest = jnp.finfo(table.dtype).min

        def one_chunk(args: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
            chunk, chunk_self = args
            scores = jnp.matmul(chunk, table.T, precision=jax.lax.Precision.HIGHEST)
            scores = jnp.where(finite_rows[None, :], scores, jnp.nan)
            keys = jnp.where(jnp.isfinite(scores), scores, lowest)
            keys = jnp.where(rows[None, :] == chunk_self[:, None], -jnp.inf, keys)
            _, best_ids = jax.lax.top_k(keys, k)
            return best_ids.astype(jnp.int32), jnp.take_along_axis(scores, best_ids, axis=1)

        ids, scores = jax.lax.map(one_chunk, (chunks, self_chunks))
        return Neighbors(ids.reshape(-1, k), scores.reshape(-1, k))


def nearest_neighbors(
    table: jax.typing.ArrayLike,
    query_ids: jax.typing.ArrayLike | None = None,
    query_vectors: jax.typing.ArrayLike | None = None,
    *,
    k: int = 5,
    metric: SimilarityMetric = "cosine",
    exclude_self: bool = True,
    batch_size: int = 1024,
) -> Neighbors:
    """Finds the ``k`` rows most similar to each query -- exactly.

    Every query is compared with every row (one matmul per batch of queries at
    ``Precision.HIGHEST``) and ``jax.lax.top_k`` picks the best, so the answer
    is exact, not an approximate-index estimate. Queries are processed
    ``batch_size`` at a time under one compiled function (the last batch is
    padded, and fewer queries than a batch are padded to a power of two, so a
    new number of queries rarely means a new program), keeping memory at ``O(batch_size * input_dim)``.

    Similarity: ``"cosine"`` divides rows and queries by their L2 norm first
    (an all-zero vector has similarity 0 to everything); ``"dot"`` uses the raw
    inner product, which favours long vectors. Ties go to the smaller id. Rows
    holding NaN or inf never rank above a row with a finite score: they come last,
    with the score NaN (a NaN or inf query gets NaN scores for every row).

    The function also runs inside ``jax.jit`` (``k``, ``metric`` and the other
    options must then be static). Ids known on the host are checked and a bad
    one raises ``ValueError``; traced ids cannot be checked, so an invalid one
    gets NaN scores (like the layer's ``invalid_ids="nan"``), never another
    row's neighbours.

    Args:
        table: ``(input_dim, output_dim)`` embedding table.
        query_ids: ids of rows to find neighbours for, any shape (flattened).
        query_vectors: ``(n, output_dim)`` (or ``(output_dim,)``) vectors to find
            neighbours for. Give exactly one of ``query_ids`` and
            ``query_vectors``.
        k: number of neighbours, at most the number of candidate rows.
        metric: ``"cosine"`` or ``"dot"``.
        exclude_self: with ``query_ids``, leave each query's own row out of its
            neighbours (ignored for ``query_vectors``).
        batch_size: queries per compiled batch.

    Returns:
        :class:`Neighbors` ``(ids, scores)``, each ``(n_queries, k)``, most
        similar first.

    Raises:
        ValueError: for a bad ``metric``, ``k`` or ``batch_size``, out-of-range
            ids, mismatched vector width, or not exactly one kind of query.

    Examples:
        >>> table = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [-1.0, 0.0]])
        >>> result = nearest_neighbors(table, query_ids=[0, 1], k=2)
        >>> result.ids.tolist()
        [[2, 1], [2, 0]]
        >>> nearest_neighbors(table, query_vectors=jnp.array([0.0, 2.0]), k=1, metric="dot").ids.tolist()
        [[1]]
    """
    array = _as_table(table)
    _check_metric(metric)
    k = _positive_int("k", k)
    batch_size = _positive_int("batch_size", batch_size)
    if (query_ids is None) == (query_vectors is None):
        raise ValueError(
            "Give exactly one of `query_ids` and `query_vectors`. Received "
            f"query_ids={'None' if query_ids is None else 'an array'}, "
            f"query_vectors={'None' if query_vectors is None else 'an array'}."
        )
    if query_ids is not None:
        int_ids, valid = ops.prepare_ids(query_ids, array.shape[0])
        int_ids = int_ids.reshape(-1)
        queries = ops.take_lookup(array, int_ids)
        if valid is not None:  # traced ids: an invalid one gets NaN scores, never another row's
            queries = jnp.where(valid.reshape(-1)[:, None], queries, jnp.nan)
        self_ids = int_ids if exclude_self else jnp.full(int_ids.shape, -1, jnp.int32)
        excluded = 1 if exclude_self else 0
    else:
        queries = jnp.asarray(query_vectors)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != array.shape[1]:
            raise ValueError(
                f"`query_vectors` must have shape (n, {array.shape[1]}) to match the table's "
                f"{array.shape[1]} features. Received shape {jnp.shape(query_vectors)}."
            )
        queries = queries.astype(array.dtype)
        self_ids = jnp.full(queries.shape[0], -1, jnp.int32)
        excluded = 0
    candidates = array.shape[0] - excluded
    if k > candidates:
        raise ValueError(
            f"`k` must be at most the number of candidate rows ({candidates} = {array.shape[0]} rows"
            f"{' minus the query itself' if excluded else ''}). Received k={k}."
        )
    n = queries.shape[0]
    # Fewer queries than a batch: round up to a power of two so that small query
    # counts share a handful of compiled programs instead of one each.
    batch_size = min(batch_size, 1 << max(n - 1, 0).bit_length())
    padded = -(-n // batch_size) * batch_size
    queries = jnp.pad(queries, ((0, padded - n), (0, 0)))
    self_ids = jnp.pad(self_ids, (0, padded - n), constant_values=-1)
    result = _top_k(array, queries, self_ids, k=k, metric=metric, batch_size=batch_size)
    return Neighbors(result.ids[:n], result.scores[:n])


def _color_values(colors: Any, n: int) -> tuple[str, Any]:
    """Classifies ``colors`` as ``("rgb", array)``, ``("values", array)`` or ``("categories", list)``."""
    array = np.asarray(colors)
    if array.ndim == 2 and array.shape == (n, array.shape[1]) and array.shape[1] in (3, 4):
        if array.dtype.kind in "fiu":
            return "rgb", np.clip(array.astype(np.float64), 0.0, 1.0)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(
            f"`colors` must have one entry per point ({n}), or be an ({n}, 3) / ({n}, 4) RGB(A) "
            f"array. Received shape {array.shape}."
        )
    if array.dtype.kind == "f":
        return "values", array
    return "categories", [str(c) for c in array.tolist()]


def save_figure(figure: Any, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Saves a Matplotlib figure atomically, in the format its suffix names; returns the path.

    A reader sees the old file or the whole new picture, never half of one, and missing
    folders are created. :func:`plot_embeddings` saves through it; so can your own plots.

    Args:
        figure: a ``matplotlib.figure.Figure`` (pyplot's or one made directly).
        path: where to write, e.g. ``"plot.png"`` or ``"plot.svg"``.
        dpi: resolution of raster formats.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Example:
        >>> import os, tempfile
        >>> from matplotlib.figure import Figure
        >>> figure = Figure(figsize=(2, 2))
        >>> _ = figure.add_subplot().plot([0, 1], [1, 0])
        >>> path = save_figure(figure, os.path.join(tempfile.mkdtemp(), "line.png"))
        >>> path.stat().st_size > 1000
        True
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".") or "png"
    with _files.atomic_path(path) as temporary:
        figure.savefig(temporary, format=suffix, dpi=dpi)
    return path


def plot_embeddings(
    points: jax.typing.ArrayLike,
    labels: Sequence[str] | None = None,
    *,
    path: str | os.PathLike,
    label_subset: Sequence[int] | None = None,
    colors: Any = None,
    title: str | None = None,
    max_labels: int = 40,
    figsize: tuple[float, float] = (7.0, 6.0),
    dpi: int = 120,
) -> Path:
    """Draws embedding vectors as a labelled 2-D or 3-D scatter plot and saves it.

    ``points`` with 2 or 3 columns are drawn as they are; wider tables are
    first projected to 2-D with :func:`pca` (axes are then labelled with the
    variance each component explains). Defaults suit thousands of points:
    markers shrink and become translucent as the count grows, and text labels
    are drawn only for ``label_subset`` -- or for every point when there are at
    most ``max_labels`` of them.

    The figure is written atomically (temporary file, then rename) in the
    format named by the suffix of ``path`` (``.png``, ``.svg``, ``.pdf``).
    Matplotlib is imported here, not when :mod:`jaxembed.viz` is imported.

    Args:
        points: ``(n, d)`` coordinates or embedding table.
        labels: optional ``n`` names, one per point.
        path: where to write the figure; the folder must exist.
        label_subset: indices of the points to annotate (needs ``labels``).
        colors: optional per-point colouring: ``n`` categories (strings or
            integers; a legend is drawn for up to 20), ``n`` floats (a
            colour bar is drawn), or an ``(n, 3)``/``(n, 4)`` RGB(A) array in
            ``[0, 1]``.
        title: optional figure title.
        max_labels: when ``label_subset`` is ``None``, label every point if
            there are at most this many, otherwise none.
        figsize: figure size in inches.
        dpi: resolution of raster formats.

    Returns:
        The path written.

    Raises:
        ImportError: if matplotlib is not installed.
        ValueError: for mismatched ``labels``/``colors`` lengths, bad
            ``label_subset`` indices, an unsupported suffix or a missing folder.

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> table = jnp.array([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [3.0, 3.0]])
        >>> out = plot_embeddings(table, ["cat", "dog", "snake", "mouse"], path=folder / "pets.png")
        >>> out.name, out.stat().st_size > 1000
        ('pets.png', True)
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "jaxembed.viz.plot_embeddings needs matplotlib. Install it with "
            '`pip install "jaxembed[viz]"` (or the `examples` extra).'
        ) from error

    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "svg", "pdf"):
        raise ValueError(f"`path` must end in .png, .svg or .pdf. Received path={str(path)!r}.")
    if not path.parent.is_dir():
        raise ValueError(f"The folder of `path` does not exist: {str(path.parent)!r}.")

    array = np.asarray(_as_table(points, "points"), dtype=np.float64)
    n, dim = array.shape
    axis_names = [f"dim {i}" for i in range(dim)]
    if dim not in (2, 3):
        projection = pca(array.astype(np.float32), n_components=min(2, *array.shape))
        array = np.asarray(projection.coords, dtype=np.float64)
        ratio = np.asarray(projection.explained_variance_ratio)
        axis_names = [f"PC{i + 1} ({100 * r:.0f}% of variance)" for i, r in enumerate(ratio)]
        dim = array.shape[1]
        if dim == 1:
            array = np.concatenate([array, np.zeros_like(array)], axis=1)
            axis_names.append("")
            dim = 2

    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != n:
            raise ValueError(f"`labels` must have one entry per point ({n}). Received {len(labels)} labels.")
    if label_subset is None:
        annotate = list(range(n)) if labels is not None and n <= max_labels else []
    else:
        if labels is None:
            raise ValueError("`label_subset` needs `labels` to know what to write. Received labels=None.")
        annotate = [int(i) for i in np.asarray(label_subset).reshape(-1)]
        bad = [i for i in annotate if not 0 <= i < n]
        if bad:
            raise ValueError(f"`label_subset` indices must be in [0, {n}). Received {bad[:10]}.")

    size = float(np.clip(4000.0 / max(n, 1), 4.0, 60.0))
    alpha = float(np.clip(1.5 - np.log10(max(n, 1)) / 3.0, 0.35, 0.95))

    figure = Figure(figsize=figsize)
    axes = figure.add_subplot(projection="3d" if dim == 3 else None)
    columns = [array[:, i] for i in range(dim)]
    style = {"s": size, "alpha": alpha, "linewidths": 0}
    if colors is None:
        axes.scatter(*columns, color="tab:blue", **style)
    else:
        kind, values = _color_values(colors, n)
        if kind == "rgb":
            axes.scatter(*columns, c=values, **style)
        elif kind == "values":
            mappable = axes.scatter(*columns, c=values, cmap="viridis", **style)
            figure.colorbar(mappable, ax=axes, shrink=0.8)
        else:
            categories = list(dict.fromkeys(values))
            palette = "tab10" if len(categories) <= 10 else "tab20"
            from matplotlib import colormaps

            cmap = colormaps[palette]
            for index, category in enumerate(categories):
                chosen = np.array([v == category for v in values])
                axes.scatter(
                    *[c[chosen] for c in columns], color=cmap(index % cmap.N), label=category, **style
                )
            if len(categories) <= 20:
                axes.legend(loc="best", fontsize=8, markerscale=max(1.0, 30.0 / size) ** 0.5)
    for index in annotate:
        axes.text(*array[index, :dim], f" {labels[index]}", fontsize=8)
    for name, setter in zip(axis_names, ("set_xlabel", "set_ylabel", "set_zlabel")):
        getattr(axes, setter)(name)
    if dim == 2:
        axes.grid(alpha=0.3)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    save_figure(figure, path, dpi=dpi)
    return path


def _tsv_field(value: Any, what: str) -> str:
    text = str(value)
    if "\t" in text or "\n" in text or "\r" in text:
        raise ValueError(
            f"{what} must not contain tabs or line breaks (the Projector's TSV cannot hold them). "
            f"Received {text!r}."
        )
    return text


def _metadata_lines(metadata: Sequence[Any] | Mapping[str, Sequence[Any]], n: int) -> list[str]:
    if isinstance(metadata, Mapping):
        if not metadata:
            raise ValueError("`metadata` must have at least one column. Received an empty mapping.")
        columns = {}
        for name, column in metadata.items():
            values = list(np.asarray(column).reshape(-1).tolist()) if not isinstance(column, list) else column
            if len(values) != n:
                raise ValueError(
                    f"Metadata column {name!r} must have one entry per row ({n}). Received {len(values)}."
                )
            columns[_tsv_field(name, "Metadata column names")] = values
        # With more than one column the Projector expects a header row.
        lines = ["\t".join(columns)] if len(columns) > 1 else []
        for row in zip(*columns.values()):
            lines.append("\t".join(_tsv_field(v, "Metadata values") for v in row))
        return lines
    values = list(metadata)
    if len(values) != n:
        raise ValueError(f"`metadata` must have one label per row ({n}). Received {len(values)} labels.")
    return [_tsv_field(v, "Metadata values") for v in values]


def export_projector(
    table: jax.typing.ArrayLike,
    metadata: Sequence[Any] | Mapping[str, Sequence[Any]],
    directory: str | os.PathLike,
    *,
    tensor_name: str = "embeddings",
) -> dict[str, Path]:
    """Writes a table in the format of TensorBoard's Embedding Projector.

    The files of one export are written together as one unit:

    * ``projector-<digest>/tensors.tsv`` -- one row per id, features separated by
      tabs, floats with 9 significant digits (float32 values read back exactly);
    * ``projector-<digest>/metadata.tsv`` -- one label per line, or, for several
      columns, a header line and one tab-separated line per id;
    * ``projector_config.pbtxt`` in ``directory`` -- a ``ProjectorConfig`` in
      protobuf text format pointing at the other two files.

    ``<digest>`` is the first 12 hex digits of the SHA-256 of both files, so an
    export never writes over the files another config points at. The two TSV
    files are written and synced first; the config is then replaced atomically,
    which is the one step that switches the Projector from the previous export to
    this one: a crash at any moment leaves the old set or the new set, never a
    table with another table's labels. Older ``projector-*`` folders are deleted
    afterwards; other files in ``directory`` (e.g. TensorBoard event files) are left alone.

    Open it with ``tensorboard --logdir DIRECTORY`` (Projector tab), or load
    the two TSV files at https://projector.tensorflow.org.

    Args:
        table: ``(input_dim, output_dim)`` embedding table.
        metadata: ``input_dim`` labels, or a mapping from column name to
            ``input_dim`` values for several columns (e.g. word and count).
        directory: output folder.
        tensor_name: the name the Projector shows for the table.

    Returns:
        ``{"tensors": ..., "metadata": ..., "config": ...}`` paths.

    Raises:
        ValueError: if the table is not 2-D or not finite, the metadata length
            does not match, or a label contains a tab or a line break.

    Examples:
        >>> import tempfile
        >>> table = jnp.array([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0]])
        >>> files = export_projector(table, ["cat", "dog", "snake"], tempfile.mkdtemp())
        >>> files["tensors"].read_text().splitlines()[1]
        '1\\t2'
        >>> files["metadata"].read_text().split()
        ['cat', 'dog', 'snake']
    """
    array = np.asarray(_as_table(table))
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[:5].tolist()
        raise ValueError(f"`table` must be finite to export. Received NaN/inf at (row, column) {bad}.")
    n = array.shape[0]
    lines = _metadata_lines(metadata, n)
    name = _tsv_field(tensor_name, "`tensor_name`").replace("\\", "\\\\").replace('"', '\\"')

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = "".join("\t".join(f"{v:.9g}" for v in row) + "\n" for row in array.astype(np.float64))
    labels = "".join(line + "\n" for line in lines)
    digest = hashlib.sha256(f"{len(tensors)}:{tensors}{labels}".encode()).hexdigest()[:12]
    subfolder = f"projector-{digest}"
    paths = {
        "tensors": folder / subfolder / _PROJECTOR_FILES[0],
        "metadata": folder / subfolder / _PROJECTOR_FILES[1],
        "config": folder / _PROJECTOR_FILES[2],
    }
    config = (
        "embeddings {\n"
        f'  tensor_name: "{name}"\n'
        f'  tensor_path: "{subfolder}/{_PROJECTOR_FILES[0]}"\n'
        f'  metadata_path: "{subfolder}/{_PROJECTOR_FILES[1]}"\n'
        f"  tensor_shape: {array.shape[0]}\n"
        f"  tensor_shape: {array.shape[1]}\n"
        "}\n"
    )
    # The TSV pair goes into its own folder (atomically, so a reader never sees one file of a
    # pair); the config, replaced atomically last, is what switches to the new pair.
    if not (folder / subfolder).is_dir():
        with _files.atomic_folder(folder / subfolder) as temporary:
            _files.write_text(temporary / _PROJECTOR_FILES[0], tensors)
            _files.write_text(temporary / _PROJECTOR_FILES[1], labels)
    _files.write_text(paths["config"], config)
    for entry in folder.iterdir():
        if _EXPORT_FOLDER.fullmatch(entry.name) and entry.name != subfolder and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
    return paths
