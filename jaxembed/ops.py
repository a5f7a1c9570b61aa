"""Pure embedding operations: id checks, the two lookup paths, masks.

Everything here is a plain function on arrays. It composes with ``jax.jit``,
``jax.grad`` and ``jax.vmap`` and knows nothing about Flax; the modules in
:mod:`jaxembed.nn` and :mod:`jaxembed.linen` are thin shells over it.

The two lookups compute the same thing:

.. math::

    \\text{out}[i] = \\text{table}[\\text{ids}[i]]
                  = \\text{one\\_hot}(\\text{ids}[i], V) \\cdot \\text{table}

``"take"`` gathers rows (what XLA compiles to a gather on CPU, GPU and TPU);
``"one_hot"`` builds the one-hot matrix and multiplies at
``jax.lax.Precision.HIGHEST``, which is how the layer is usually explained.

Invalid ids. JAX's own ``jnp.take`` wraps ``-1`` to the last row and returns
NaN for ids past the end. Here:

* ids whose values are known (not traced) are checked on the host, and any id
  outside ``[0, input_dim)`` -- or a float id with a fractional part -- raises a
  ``ValueError`` naming the bad values and the valid range;
* under ``jax.jit`` the values are unknown at trace time. With
  ``invalid_ids="nan"`` (the default) every invalid id, negative ones
  included, gives a row of NaN, for both lookup paths -- never another row's
  vector; with ``invalid_ids="checkify"`` the lookup also emits a
  :func:`jax.experimental.checkify.check`, so a function wrapped in
  ``checkify.checkify`` returns an error that ``err.throw()`` raises.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from jax.experimental import sparse as jax_sparse

from jaxembed._checks import one_of

__all__ = [
    "LookupMethod",
    "InvalidIds",
    "LOOKUP_METHODS",
    "INVALID_IDS_MODES",
    "dense_ids",
    "prepare_ids",
    "CheckedIds",
    "check_ids",
    "gather",
    "take_lookup",
    "one_hot_lookup",
    "lookup",
    "compute_mask",
    "masked_mean",
    "Combiner",
    "COMBINERS",
    "bag_mask",
    "combine_bags",
    "embedding_bag",
]

LookupMethod = Literal["take", "one_hot"]
"""The two lookup paths: ``"take"`` (a gather) and ``"one_hot"`` (one-hot matrix times the table)."""
InvalidIds = Literal["nan", "checkify"]
"""What a traced invalid id does: ``"nan"`` (a NaN row) or ``"checkify"`` (also a checkify check)."""
LOOKUP_METHODS: tuple[str, ...] = get_args(LookupMethod)
"""The valid values of ``lookup``, ``("take", "one_hot")``, for validation and error messages."""
INVALID_IDS_MODES: tuple[str, ...] = get_args(InvalidIds)
"""The valid values of ``invalid_ids``, ``("nan", "checkify")``."""
Combiner = Literal["sum", "mean", "sqrtn"]
"""How a bag of vectors becomes one: weighted ``"sum"``, ``"mean"`` or ``"sqrtn"`` (TF's names)."""
COMBINERS: tuple[str, ...] = get_args(Combiner)
"""The valid values of ``combiner``, ``("sum", "mean", "sqrtn")``."""

_MAX_REPORTED = 5


def _check_lookup_method(method: str) -> str:
    """Returns ``method`` if it names a lookup path, else raises ``ValueError``.

    Examples:
        >>> _check_lookup_method("one_hot")
        'one_hot'
    """
    return one_of("lookup", method, LOOKUP_METHODS)


def _check_invalid_ids_mode(mode: str) -> str:
    """Returns ``mode`` if it names an invalid-id policy, else raises ``ValueError``.

    Examples:
        >>> _check_invalid_ids_mode("nan")
        'nan'
    """
    return one_of("invalid_ids", mode, INVALID_IDS_MODES)


def _describe_bad_ids(values: np.ndarray, positions: np.ndarray) -> str:
    shown = ", ".join(
        f"{values[tuple(p)].item()!r} at index {tuple(int(i) for i in p)}" for p in positions[:_MAX_REPORTED]
    )
    more = len(positions) - _MAX_REPORTED
    return shown + (f" and {more} more" if more > 0 else "")


def _check_concrete_ids(ids: np.ndarray, input_dim: int) -> None:
    if np.issubdtype(ids.dtype, np.floating):
        fractional = np.argwhere(np.isfinite(ids) & (ids != np.floor(ids)))
        not_finite = np.argwhere(~np.isfinite(ids))
        bad = np.concatenate([not_finite, fractional])
        if len(bad):
            raise ValueError(
                "Embedding ids must be integers; float ids are accepted only when "
                "they hold whole numbers. Received non-integral ids: "
                f"{_describe_bad_ids(ids, bad)}."
            )
    # Two reductions find whether any id is out of range; only then are they located.
    if ids.size and (ids.min() < 0 or ids.max() >= input_dim):
        out_of_range = np.argwhere((ids < 0) | (ids >= input_dim))
        raise ValueError(
            f"Embedding ids must be in the range [0, {input_dim - 1}] "
            f"(input_dim={input_dim}). Received out-of-range ids: "
            f"{_describe_bad_ids(ids, out_of_range)}."
        )


def dense_ids(ids: Any) -> Any:
    """``ids`` as a dense array when they come as a ``jax.experimental.sparse.BCOO`` (as Keras's
    JAX backend accepts them: the missing entries are id 0), else unchanged.

    Examples:
        >>> from jax.experimental import sparse
        >>> x = sparse.BCOO((jnp.array([2, 1]), jnp.array([[0, 0], [1, 2]])), shape=(2, 3))
        >>> dense_ids(x).tolist()
        [[2, 0, 0], [0, 0, 1]]
    """
    return ids.todense() if isinstance(ids, jax_sparse.JAXSparse) else ids


def prepare_ids(ids: jax.typing.ArrayLike, input_dim: int) -> tuple[jax.Array, jax.Array | None]:
    """Checks ids at the boundary and converts them to ``int32``.

    Args:
        ids: integer ids of any shape; floats holding whole numbers are cast
            like Keras does. Booleans and complex numbers are rejected.
        input_dim: the number of rows of the table (the vocabulary size).

    Returns:
        ``(int_ids, valid)``. For concrete ids, ``valid`` is ``None`` because
        every id has already been checked on the host (a bad one raised
        ``ValueError``). For traced ids, ``valid`` is a boolean array of
        ``ids.shape`` that is ``False`` where an id is negative, ``>= input_dim``
        or, for float ids, not a whole number.

    Raises:
        TypeError: for boolean, complex or non-numeric ids.
        ValueError: for concrete ids that are out of range or not whole numbers.

    Examples:
        >>> int_ids, valid = prepare_ids([0, 3.0, 2], input_dim=4)
        >>> int_ids.tolist(), valid is None
        ([0, 3, 2], True)
    """
    ids = dense_ids(ids)
    if isinstance(ids, jax.core.Tracer):
        dtype = ids.dtype
    else:
        host = np.asarray(ids)
        dtype = host.dtype
    if dtype == np.bool_ or not (
        np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating) or dtype == jnp.bfloat16
    ):
        raise TypeError(
            "Embedding ids must be integers (or floats holding whole numbers). "
            f"Received ids of dtype {dtype}."
        )

    if not isinstance(ids, jax.core.Tracer):
        _check_concrete_ids(host.astype(np.float64) if dtype == jnp.bfloat16 else host, input_dim)
        return jnp.asarray(host, dtype=jnp.int32), None

    if jnp.issubdtype(dtype, jnp.floating):
        integral = jnp.isfinite(ids) & (ids == jnp.floor(ids))
        valid = integral & (ids >= 0) & (ids < input_dim)
        int_ids = jnp.where(valid, ids, 0).astype(jnp.int32)
    else:
        valid = (ids >= 0) & (ids < input_dim)
        int_ids = ids.astype(jnp.int32)
    return int_ids, valid


def take_lookup(table: jax.Array, ids: jax.Array) -> jax.Array:
    """Gathers ``table[ids]`` with ``jnp.take``; ids must already be valid.

    Args:
        table: ``(input_dim, output_dim)`` array.
        ids: integer array of any shape with values in ``[0, input_dim)``.

    Returns:
        ``(*ids.shape, output_dim)`` array of ``table.dtype``.

    Examples:
        >>> table = jnp.array([[1., 1.], [1., 2.], [2., 2.], [3., 3.]])
        >>> take_lookup(table, jnp.array([0, 3])).tolist()
        [[1.0, 1.0], [3.0, 3.0]]
    """
    with jax.named_scope("embedding_take"):
        return jnp.take(table, ids, axis=0, mode="clip")


def one_hot_lookup(table: jax.Array, ids: jax.Array) -> jax.Array:
    """Computes ``one_hot(ids, input_dim) @ table`` at highest precision.

    A plain matmul would turn one non-finite entry into NaN for *every* id (``0 * inf``
    is NaN). So a table is first checked on the device (``O(input_dim * output_dim)``, no
    host round trip): an all-finite table takes the plain matmul; otherwise the finite part
    of the table is multiplied, and a second, exact matmul of a small code (0 finite,
    1 ``+inf``, 2 ``-inf``, 3 NaN) puts the looked-up non-finite entries back. Either way
    the result equals :func:`take_lookup` bit for bit, for any table. The gradient is the
    plain matmul's, ``one_hot.T @ cotangent``, as for ``take``.

    Args:
        table: ``(input_dim, output_dim)`` array.
        ids: integer array of any shape with values in ``[0, input_dim)``.

    Returns:
        ``(*ids.shape, output_dim)`` array of ``table.dtype``; the same numbers
        as :func:`take_lookup`, at a cost of ``O(ids.size * input_dim)``.

    Examples:
        >>> table = jnp.array([[1., 1.], [1., 2.], [2., 2.], [3., 3.]])
        >>> one_hot_lookup(table, jnp.array([0, 3])).tolist()
        [[1.0, 1.0], [3.0, 3.0]]
        >>> one_hot_lookup(table.at[1, 0].set(jnp.inf), jnp.array([0, 1])).tolist()
        [[1.0, 1.0], [inf, 2.0]]
    """
    with jax.named_scope("embedding_one_hot"):
        one_hot = jax.nn.one_hot(ids, table.shape[0], dtype=table.dtype)
        return _one_hot_matmul(one_hot, table)


def _matmul(one_hot: jax.Array, table: jax.Array) -> jax.Array:
    return jnp.einsum("...v,vd->...d", one_hot, table, precision=jax.lax.Precision.HIGHEST)


@jax.custom_jvp
def _one_hot_matmul(one_hot: jax.Array, table: jax.Array) -> jax.Array:
    if not jnp.issubdtype(table.dtype, jnp.inexact):
        return _matmul(one_hot, table)
    # A finite table (the usual case) takes the plain matmul; checking costs O(input_dim * dim),
    # against the matmul's O(ids.size * input_dim * dim). Under vmap both branches run.
    return jax.lax.cond(jnp.isfinite(table).all(), _matmul, _non_finite_matmul, one_hot, table)


def _non_finite_matmul(one_hot: jax.Array, table: jax.Array) -> jax.Array:
    """``one_hot @ table`` for a table with inf or NaN entries: the finite part, then the code."""
    finite = jnp.isfinite(table)
    code = jnp.where(finite, 0, jnp.where(jnp.isnan(table), 3, jnp.where(table > 0, 1, 2))).astype(
        table.dtype
    )
    width = table.shape[1]
    both = _matmul(one_hot, jnp.concatenate([jnp.where(finite, table, 0), code], axis=1))
    out, code_out = both[..., :width], both[..., width:]
    inf = jnp.array(jnp.inf, table.dtype)
    special = jnp.select([code_out == 1, code_out == 2], [inf, -inf], jnp.array(jnp.nan, table.dtype))
    return jnp.where(code_out == 0, out, special)


@_one_hot_matmul.defjvp
def _one_hot_matmul_jvp(primals: tuple[jax.Array, jax.Array], tangents: tuple[jax.Array, jax.Array]):
    one_hot, table = primals
    _, table_dot = tangents  # one_hot comes from integer ids: its tangent is always zero
    # Linear in the tangent, so reverse mode transposes it to one_hot.T @ cotangent.
    return _one_hot_matmul(one_hot, table), _matmul(one_hot, table_dot)


_LOOKUPS = {"take": take_lookup, "one_hot": one_hot_lookup}


class CheckedIds(NamedTuple):
    """Ids checked once at a layer's boundary, ready for any table part to gather with.

    Attributes:
        index: int32 ids of the input's shape, each in ``[0, input_dim)`` (a traced invalid
            id is replaced by 0, so gathers never go out of bounds).
        valid: ``None`` when the ids were concrete (every one was checked on the host), else a
            boolean array of ``index.shape``: ``False`` where the id was invalid (its rows
            become NaN, see :func:`gather`).
    """

    index: jax.Array
    valid: jax.Array | None


def check_ids(ids: jax.typing.ArrayLike, input_dim: int, invalid_ids: InvalidIds = "nan") -> CheckedIds:
    """Checks ``ids`` once (:func:`prepare_ids`) and applies the ``invalid_ids`` policy.

    The one boundary check of a lookup: a layer calls it once per call and hands the result
    to each of its table parts (:mod:`jaxembed.tables`), which gather without checking again.

    Args:
        ids: ids of any shape (see :func:`prepare_ids`).
        input_dim: the number of rows of the table.
        invalid_ids: ``"nan"``, or ``"checkify"`` to also emit a ``checkify.check`` for traced
            invalid ids.

    Returns:
        A :class:`CheckedIds`.

    Raises:
        ValueError: for concrete out-of-range or non-integral ids, an unknown ``invalid_ids``.
        TypeError: for boolean or non-numeric ids.

    Examples:
        >>> checked = check_ids(jnp.array([[0, 3]]), input_dim=4)
        >>> checked.index.tolist(), checked.valid is None
        ([[0, 3]], True)
        >>> jax.jit(lambda i: check_ids(i, 4).valid)(jnp.array([-1, 2])).tolist()
        [False, True]
    """
    _check_invalid_ids_mode(invalid_ids)
    int_ids, valid = prepare_ids(ids, input_dim)
    if valid is None:
        return CheckedIds(int_ids, None)
    if invalid_ids == "checkify":
        # An empty batch has nothing to check (and argmin of nothing is undefined); the
        # formatting arguments must still be arrays.
        bad = jnp.argmin(valid.ravel()) if valid.size else jnp.int32(0)
        checkify.check(
            jnp.all(valid),
            f"Embedding ids must be in the range [0, {input_dim - 1}] "
            f"(input_dim={input_dim}); found invalid id {{bad_id}} at flat index {{pos}}.",
            bad_id=jnp.ravel(dense_ids(ids))[bad] if valid.size else jnp.zeros((), jnp.int32),
            pos=bad,
        )
    return CheckedIds(jnp.where(valid, int_ids, 0), valid)


def gather(table: jax.Array, ids: CheckedIds, *, method: LookupMethod = "take") -> jax.Array:
    """``table[ids]`` for ids already checked by :func:`check_ids`; NaN rows where an id was invalid.

    Args:
        table: ``(input_dim, ...)`` array (a float table, or the scales of a quantized one).
        ids: the :class:`CheckedIds`.
        method: ``"take"`` or ``"one_hot"``.

    Returns:
        ``(*ids.index.shape, *table.shape[1:])`` array of ``table.dtype``.

    Examples:
        >>> table = jnp.array([[1., 1.], [1., 2.], [2., 2.], [3., 3.]])
        >>> gather(table, check_ids([3, 0], 4)).tolist()
        [[3.0, 3.0], [1.0, 1.0]]
    """
    out = _LOOKUPS[_check_lookup_method(method)](table, ids.index)
    if ids.valid is None:
        return out
    valid = ids.valid.reshape(ids.valid.shape + (1,) * (out.ndim - ids.valid.ndim))
    return jnp.where(valid, out, jnp.array(jnp.nan, dtype=table.dtype))


def lookup(
    table: jax.Array,
    ids: jax.typing.ArrayLike,
    *,
    method: LookupMethod = "take",
    invalid_ids: InvalidIds = "nan",
) -> jax.Array:
    """Looks up rows of ``table``: ``out[..., :] = table[ids[...], :]``.

    :func:`check_ids` then :func:`gather`.

    Args:
        table: ``(input_dim, output_dim)`` floating-point array.
        ids: ids of any shape (scalar, ``(B,)``, ``(B, L)``, ``(B, L, K)``, ...).
            Concrete ids are checked on the host; see the module docstring.
        method: ``"take"`` (gather) or ``"one_hot"`` (one-hot matmul at
            ``Precision.HIGHEST``). Same outputs, same gradients.
        invalid_ids: what traced invalid ids do: ``"nan"`` gives NaN rows,
            ``"checkify"`` also emits a ``checkify.check`` (the caller must
            then wrap the function in ``checkify.checkify``).

    Returns:
        ``(*ids.shape, output_dim)`` array of ``table.dtype``.

    Raises:
        ValueError: for concrete out-of-range or non-integral ids, an unknown
            ``method`` or ``invalid_ids``.
        TypeError: for boolean or non-numeric ids.

    Examples:
        >>> table = jnp.array([[1., 1.], [1., 2.], [2., 2.], [3., 3.]])
        >>> lookup(table, [0, 1, 2, 1, 3], method="one_hot").tolist()
        [[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [1.0, 2.0], [3.0, 3.0]]

        Under ``jit`` an out-of-range id gives NaN instead of wrapping:

        >>> jax.jit(lookup)(table, jnp.array([-1]))
        Array([[nan, nan]], dtype=float32)
    """
    _check_lookup_method(method)
    return gather(table, check_ids(ids, table.shape[0], invalid_ids), method=method)


def masked_mean(x: jax.Array, mask: jax.typing.ArrayLike | None, axis: int = 1) -> jax.Array:
    """Mean of ``x`` over ``axis`` counting only positions where ``mask`` is true.

    Keras's masked ``GlobalAveragePooling1D``: padded steps contribute nothing,
    so padding a sequence to any length leaves the result unchanged. A row whose
    steps are all masked gives zeros (Keras divides 0 by 0 and returns NaN).

    Args:
        x: ``(batch, steps, features)`` (or any shape with ``axis`` the steps axis).
        mask: boolean ``x.shape[:-1]``-shaped mask, or ``None`` for a plain mean.
        axis: the axis to pool over.

    Returns:
        ``x`` with ``axis`` removed.

    Examples:
        >>> x = jnp.array([[[1.0], [3.0], [100.0]]])
        >>> masked_mean(x, jnp.array([[True, True, False]])).tolist()
        [[2.0]]
    """
    if mask is None:
        return jnp.mean(x, axis=axis)
    weights = jnp.expand_dims(jnp.asarray(mask), -1)
    total = jnp.sum(jnp.where(weights, x, 0), axis=axis)
    count = jnp.sum(weights.astype(x.dtype), axis=axis)
    return total / jnp.maximum(count, 1)


def compute_mask(ids: jax.typing.ArrayLike, mask_zero: bool) -> jax.Array | None:
    """Keras's padding mask: ``ids != 0`` when ``mask_zero``, else ``None``.

    Examples:
        >>> compute_mask(jnp.array([[3, 1, 0, 0]]), mask_zero=True).tolist()
        [[True, True, False, False]]
        >>> compute_mask(jnp.array([3, 0]), mask_zero=False) is None
        True
    """
    if not mask_zero:
        return None
    return jnp.not_equal(jnp.asarray(dense_ids(ids)), 0)


# ------------------------------------------------------------------ multi-hot bags
def _check_bag_arguments(
    ids_shape: tuple[int, ...], combiner: str, mask: Any, weights: Any, offsets: Any
) -> None:
    _check_combiner(combiner)
    for name, value in (("mask", mask), ("weights", weights)):
        if value is not None and jnp.shape(value) != ids_shape:
            raise ValueError(
                f"`{name}` must have the ids' shape {ids_shape}. Received shape {jnp.shape(value)}."
            )
    if offsets is None:
        if len(ids_shape) < 1:
            raise ValueError("Padded bags need ids of shape (..., bag_size). Received a scalar id.")
        return
    if len(ids_shape) != 1 or jnp.ndim(offsets) != 1:
        raise ValueError(
            "Ragged bags take 1-D ids (the values) and 1-D `offsets` (where each bag starts). "
            f"Received ids of shape {ids_shape} and offsets of shape {jnp.shape(offsets)}."
        )
    if isinstance(offsets, jax.core.Tracer):
        return
    host = np.asarray(offsets)
    if not np.issubdtype(host.dtype, np.integer):
        raise TypeError(f"`offsets` must be integers. Received dtype {host.dtype}.")
    if host.size and (host[0] != 0 or np.any(np.diff(host) < 0) or host[-1] > ids_shape[0]):
        raise ValueError(
            "`offsets` must start at 0, never decrease and not exceed the number of ids "
            f"({ids_shape[0]}). Received: offsets={host.tolist()}."
        )


def _check_combiner(combiner: str) -> str:
    """Returns ``combiner`` if it names a bag combiner, else raises ``ValueError``.

    Examples:
        >>> _check_combiner("sqrtn")
        'sqrtn'
    """
    return one_of("combiner", combiner, COMBINERS)


def bag_mask(
    ids: jax.typing.ArrayLike, mask: jax.typing.ArrayLike | None, mask_zero: bool
) -> jax.Array | None:
    """Which ids are in their bag: ``mask`` and, with ``mask_zero``, ``ids != 0`` (torch's ``padding_idx=0``).

    Examples:
        >>> bag_mask(jnp.array([[4, 0, 2]]), jnp.array([[True, True, False]]), mask_zero=True).tolist()
        [[True, False, False]]
    """
    padding = compute_mask(ids, mask_zero)
    if padding is None:
        return mask
    return padding if mask is None else padding & jnp.asarray(mask, bool)


def combine_bags(
    vectors: jax.Array,
    *,
    combiner: Combiner = "mean",
    mask: jax.typing.ArrayLike | None = None,
    weights: jax.typing.ArrayLike | None = None,
    offsets: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Combines looked-up vectors bag by bag: the second half of :func:`embedding_bag`.

    With per-id weights :math:`w_i` (1 when not given, 0 where ``mask`` is false)
    and vectors :math:`e_i` of one bag:

    .. math::

        \\text{sum} = \\sum_i w_i e_i, \\quad
        \\text{mean} = \\frac{\\sum_i w_i e_i}{\\sum_i w_i}, \\quad
        \\text{sqrtn} = \\frac{\\sum_i w_i e_i}{\\sqrt{\\sum_i w_i^2}}

    An empty bag (no ids, all masked, or zero weights) gives zeros.

    Args:
        vectors: padded ``(..., bag_size, dim)`` or, with ``offsets``, ragged ``(num_ids, dim)``.
        combiner: ``"sum"``, ``"mean"`` or ``"sqrtn"``.
        mask: boolean, the ids' shape (``vectors.shape[:-1]``): false entries are not in
            their bag. Their vectors may be NaN (an invalid id): they are dropped, not multiplied.
        weights: per-id weights, the ids' shape (torch's ``per_sample_weights``).
        offsets: ``(num_bags,)`` start of each bag in the ragged ids (torch's ``offsets``):
            bag ``b`` holds ids ``offsets[b]:offsets[b + 1]``, the last one runs to the end.

    Returns:
        ``(..., dim)`` for padded bags, ``(num_bags, dim)`` for ragged ones.

    Examples:
        >>> vectors = jnp.array([[[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]]])
        >>> combine_bags(vectors, mask=jnp.array([[True, True, False]])).tolist()
        [[2.0, 1.0]]
        >>> ragged = jnp.array([[1.0], [3.0], [5.0]])
        >>> combine_bags(ragged, combiner="sum", offsets=jnp.array([0, 2, 3])).tolist()
        [[4.0], [5.0], [0.0]]
    """
    _check_bag_arguments(tuple(vectors.shape[:-1]), combiner, mask, weights, offsets)
    dtype = vectors.dtype
    w = jnp.ones(vectors.shape[:-1], dtype) if weights is None else jnp.asarray(weights, dtype)
    keep = jnp.ones(vectors.shape[:-1], bool) if mask is None else jnp.asarray(mask, bool)
    w = jnp.where(keep, w, 0)
    weighted = jnp.where(keep[..., None], vectors * w[..., None], 0)
    with jax.named_scope("embedding_bag_combine"):
        if offsets is None:
            total = jnp.sum(weighted, axis=-2)
            w_sum, w_sq = jnp.sum(w, axis=-1), jnp.sum(w * w, axis=-1)
        else:
            num_bags = jnp.shape(offsets)[0]
            bag = jnp.searchsorted(jnp.asarray(offsets), jnp.arange(vectors.shape[0]), side="right") - 1
            total = jax.ops.segment_sum(weighted, bag, num_segments=num_bags)
            w_sum = jax.ops.segment_sum(w, bag, num_segments=num_bags)
            w_sq = jax.ops.segment_sum(w * w, bag, num_segments=num_bags)
        if combiner == "sum":
            return total
        scale = w_sum if combiner == "mean" else jnp.sqrt(w_sq)
        empty = scale == 0
        return jnp.where(empty[..., None], 0, total / jnp.where(empty, 1, scale)[..., None])


def embedding_bag(
    table: jax.Array,
    ids: jax.typing.ArrayLike,
    *,
    combiner: Combiner = "mean",
    mask: jax.typing.ArrayLike | None = None,
    weights: jax.typing.ArrayLike | None = None,
    offsets: jax.typing.ArrayLike | None = None,
    method: LookupMethod = "take",
    invalid_ids: InvalidIds = "nan",
) -> jax.Array:
    """Multi-hot lookup: looks up every id of each bag and combines them (torch's ``EmbeddingBag``).

    Two layouts, both with static shapes (so ``jax.jit`` compiles once per shape):

    * padded: ``ids`` of shape ``(..., bag_size)`` and a ``mask`` saying which
      entries are real (padding entries must still hold a valid id, e.g. 0);
    * ragged: 1-D ``ids`` holding every bag's ids back to back and ``offsets``
      giving where each bag starts (torch's ``input`` + ``offsets``).

    Semantics (see :func:`combine_bags` for the math): ``"sum"`` with ``weights``
    is torch's ``per_sample_weights``; ``"mean"`` and ``"sqrtn"`` with weights divide
    by ``sum(w)`` and ``sqrt(sum(w**2))`` as ``tf.nn.embedding_lookup_sparse`` does
    (torch allows weights only with ``"sum"``). Empty bags give zeros (as torch; TF
    drops trailing empty rows from its output).

    Args:
        table: ``(input_dim, output_dim)`` array.
        ids: ``(..., bag_size)`` padded ids, or ``(num_ids,)`` ragged ids with ``offsets``.
        combiner: ``"sum"``, ``"mean"`` (default, as torch) or ``"sqrtn"``.
        mask: boolean, ``ids.shape``; entries that are false are left out.
        weights: per-id weights, ``ids.shape``.
        offsets: ``(num_bags,)`` int start offsets for ragged ids.
        method: the lookup path (:func:`lookup`).
        invalid_ids: what traced invalid ids do (:func:`lookup`); an invalid id
            makes its bag NaN unless it is masked out.

    Returns:
        ``(..., output_dim)`` for padded ids, ``(num_bags, output_dim)`` for ragged ids.

    Examples:
        >>> table = jnp.array([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [3.0, 3.0]])
        >>> embedding_bag(table, jnp.array([[0, 1], [3, 0]]), mask=jnp.array([[1, 1], [1, 0]])).tolist()
        [[1.0, 1.5], [3.0, 3.0]]
        >>> embedding_bag(table, jnp.array([2, 2, 3]), offsets=jnp.array([0, 2]), combiner="sum").tolist()
        [[4.0, 4.0], [3.0, 3.0]]
    """
    _check_bag_arguments(tuple(jnp.shape(ids)), combiner, mask, weights, offsets)
    with jax.named_scope("embedding_bag"):
        vectors = lookup(table, ids, method=method, invalid_ids=invalid_ids)
        return combine_bags(vectors, combiner=combiner, mask=mask, weights=weights, offsets=offsets)
