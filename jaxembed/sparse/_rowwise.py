"""Memory-lean optimizers for huge tables, and stochastic rounding of low-precision tables.

Why: Adam keeps two float32 moments per *entry*, so a float32 table row of
``output_dim=64`` costs 768 bytes with its optimizer state. The optimizers of large
recommendation systems (FBGEMM's table-batched embeddings, TPU embedding libraries)
keep state per *row* instead:

=========================  =====================================  ==========================
optimizer                  state per row (``D = output_dim``)     bytes a row besides table
=========================  =====================================  ==========================
``optax.sgd``              none                                   0
:func:`rowwise_adagrad`    one float32 accumulator                4
:func:`partial_rowwise_adam`  ``mu`` (``D`` float32), ``nu`` (1)  ``4 * D + 4``
``optax.adam``             ``mu``, ``nu`` (``D`` float32 each)    ``8 * D``
=========================  =====================================  ==========================

(:func:`state_bytes_per_row` computes the last column for any transformation.)

All of them are plain optax ``GradientTransformation``\\ s -- usable densely, or
row-sparsely through :func:`jaxembed.sparse.lazy` -- whose state leaves are either
per row (leading dimension = the table's rows) or global scalars, and whose update
of a row depends only on that row's gradient, parameters and state. Applied
row-sparsely, rows that a batch does not touch keep their values and state (the
"lazy" semantics of FBGEMM, TF's ``LazyAdam`` and torch's ``SparseAdam``).

:func:`stochastic_rounding` goes last in a chain for tables stored in bfloat16 or
float16: it turns the float32 update into the one that lands each entry on a
randomly chosen neighbour of ``param + update`` with the probabilities that make
the rounding unbiased.

Examples:
    >>> import optax
    >>> table = jnp.ones((3, 2))
    >>> tx = rowwise_adagrad(0.1)
    >>> state = tx.init(table)
    >>> state[0].sum_of_mean_squares.shape  # one float32 per row
    (3,)
    >>> updates, state = tx.update(jnp.array([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]]), state)
    >>> [round(v, 4) for v in updates[:, 0].tolist()]  # row 2: 1 / sqrt(1); row 0: 3 / sqrt(12.5)
    [-0.0849, -0.0, -0.1]
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "ScaleByRowwiseAdagradState",
    "ScaleByPartialRowwiseAdamState",
    "StochasticRoundingState",
    "scale_by_rowwise_adagrad",
    "rowwise_adagrad",
    "scale_by_partial_rowwise_adam",
    "partial_rowwise_adam",
    "stochastic_rounding",
    "stochastically_round",
    "state_bytes_per_row",
]


def _check_nonnegative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(
            f"`{name}` must be a non-negative number. "
            f"Received: {name}={value!r} (of type {type(value).__name__})."
        )
    return float(value)


def _check_beta(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"`{name}` must be a number in [0, 1). "
            f"Received: {name}={value!r} (of type {type(value).__name__})."
        )
    return float(value)


def _row_mean_square(g: jax.Array) -> jax.Array:
    """The mean of ``g ** 2`` over every axis but the first (entry-wise for 0-d and 1-d leaves)."""
    g = g.astype(jnp.float32)
    return jnp.mean(jnp.square(g), axis=tuple(range(1, g.ndim))) if g.ndim >= 2 else jnp.square(g)


def _per_row(stat: jax.Array, like: jax.Array) -> jax.Array:
    """A per-row statistic ``(V,)`` broadcast against a ``(V, ...)`` leaf."""
    return stat.reshape(stat.shape + (1,) * (like.ndim - stat.ndim))


def _row_shape(param: Any) -> tuple[int, ...]:
    shape = jnp.shape(param)
    return shape[:1] if len(shape) >= 2 else shape


class ScaleByRowwiseAdagradState(NamedTuple):
    """State of :func:`scale_by_rowwise_adagrad`: one accumulator per table row."""

    sum_of_mean_squares: optax.Updates  # per leaf (V,) float32: the sum over steps of mean_d g**2


def scale_by_rowwise_adagrad(
    eps: float = 1e-8, initial_accumulator_value: float = 0.0
) -> optax.GradientTransformation:
    r"""Row-wise Adagrad's scaling: each row's gradient divided by the root of its own accumulator.

    For a ``(V, D)`` leaf, with ``g`` the row's gradient at step ``t``:

    .. math::
        a \leftarrow a + \tfrac{1}{D} \textstyle\sum_d g_d^2, \qquad
        u = \frac{g}{\sqrt{a} + \epsilon}

    (``eps`` outside the root, as FBGEMM's ``EXACT_ROWWISE_ADAGRAD``). Leaves of
    fewer than two dimensions get one accumulator per entry (plain Adagrad).

    Args:
        eps: added to the root of the accumulator (FBGEMM's default ``1e-8``).
        initial_accumulator_value: the accumulators' starting value.

    Returns:
        An optax ``GradientTransformation``; its state holds one float32 a row.

    Examples:
        >>> tx = scale_by_rowwise_adagrad()
        >>> state = tx.init(jnp.zeros((2, 2)))
        >>> updates, state = tx.update(jnp.array([[3.0, 4.0], [0.0, 0.0]]), state)
        >>> state.sum_of_mean_squares.tolist(), [round(v, 4) for v in updates[0].tolist()]
        ([12.5, 0.0], [0.8485, 1.1314])
    """
    eps = _check_nonnegative("eps", eps)
    start = _check_nonnegative("initial_accumulator_value", initial_accumulator_value)

    def init_fn(params: optax.Params) -> ScaleByRowwiseAdagradState:
        return ScaleByRowwiseAdagradState(
            jax.tree.map(lambda p: jnp.full(_row_shape(p), start, jnp.float32), params)
        )

    def update_fn(updates, state, params=None):
        del params
        acc = jax.tree.map(lambda g, a: a + _row_mean_square(g), updates, state.sum_of_mean_squares)
        scaled = jax.tree.map(
            lambda g, a: (g.astype(jnp.float32) / _per_row(jnp.sqrt(a) + eps, g)).astype(
                jnp.promote_types(g.dtype, jnp.float32)
            ),
            updates,
            acc,
        )
        return scaled, ScaleByRowwiseAdagradState(acc)

    return optax.GradientTransformation(init_fn, update_fn)


def rowwise_adagrad(
    learning_rate: optax.ScalarOrSchedule, eps: float = 1e-8, initial_accumulator_value: float = 0.0
) -> optax.GradientTransformation:
    """Row-wise Adagrad (FBGEMM's ``EXACT_ROWWISE_ADAGRAD``): 4 bytes of state a table row.

    ``row -= learning_rate * g / (sqrt(a) + eps)`` with ``a`` the row's running sum
    of the mean squared gradient (:func:`scale_by_rowwise_adagrad`). Matches
    FBGEMM's CPU implementation to float32 rounding (tested). For FBGEMM's L2
    weight decay, chain ``optax.add_decayed_weights(weight_decay)`` in front.

    Args:
        learning_rate: a float or an optax schedule.
        eps: added to the root of the accumulator.
        initial_accumulator_value: the accumulators' starting value.

    Returns:
        An optax ``GradientTransformation``.

    Examples:
        >>> tx = rowwise_adagrad(0.5)
        >>> table = jnp.zeros((4, 3))
        >>> updates, _ = tx.update(jnp.ones((4, 3)), tx.init(table))
        >>> updates[0].tolist()
        [-0.5, -0.5, -0.5]
    """
    return optax.chain(
        scale_by_rowwise_adagrad(eps, initial_accumulator_value), optax.scale_by_learning_rate(learning_rate)
    )


class ScaleByPartialRowwiseAdamState(NamedTuple):
    """State of :func:`scale_by_partial_rowwise_adam`."""

    count: jax.Array  # () int32: the number of updates (global)
    mu: optax.Updates  # per leaf, like the leaf, float32: first moment per entry
    nu: optax.Updates  # per leaf (V,) float32: second moment of the row's mean squared gradient


def scale_by_partial_rowwise_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    r"""Partial row-wise Adam's scaling: per-entry first moment, per-row second moment.

    FBGEMM's ``PARTIAL_ROWWISE_ADAM``. With ``t`` the (global) step count and ``g``
    a row's gradient:

    .. math::
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
        v \leftarrow \beta_2 v + (1 - \beta_2) \tfrac{1}{D} \textstyle\sum_d g_d^2, \quad
        u = \frac{m / (1 - \beta_1^t)}{\sqrt{v / (1 - \beta_2^t)} + \epsilon}

    Args:
        b1: decay of the first moment.
        b2: decay of the second moment.
        eps: added to the root of the corrected second moment.

    Returns:
        An optax ``GradientTransformation``; its state holds ``D + 1`` float32 a row.

    Examples:
        >>> tx = scale_by_partial_rowwise_adam()
        >>> state = tx.init(jnp.zeros((5, 8)))
        >>> state.mu.shape, state.nu.shape
        ((5, 8), (5,))
    """
    b1, b2 = _check_beta("b1", b1), _check_beta("b2", b2)
    eps = _check_nonnegative("eps", eps)

    def init_fn(params: optax.Params) -> ScaleByPartialRowwiseAdamState:
        return ScaleByPartialRowwiseAdamState(
            jnp.zeros((), jnp.int32),
            jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.float32), params),
            jax.tree.map(lambda p: jnp.zeros(_row_shape(p), jnp.float32), params),
        )

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_int32_increment(state.count)
        mu = jax.tree.map(lambda g, m: b1 * m + (1 - b1) * g.astype(jnp.float32), updates, state.mu)
        nu = jax.tree.map(lambda g, v: b2 * v + (1 - b2) * _row_mean_square(g), updates, state.nu)
        t = count.astype(jnp.float32)
        c1, c2 = 1 - b1**t, 1 - b2**t
        scaled = jax.tree.map(lambda m, v: (m / c1) / _per_row(jnp.sqrt(v / c2) + eps, m), mu, nu)
        return scaled, ScaleByPartialRowwiseAdamState(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def partial_rowwise_adam(
    learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """Partial row-wise Adam (FBGEMM's ``PARTIAL_ROWWISE_ADAM``): ``4 * D + 4`` bytes of state a row.

    Adam with the second moment kept per row (of the row's mean squared gradient)
    instead of per entry: half of Adam's state. See :func:`scale_by_partial_rowwise_adam`.

    Args:
        learning_rate: a float or an optax schedule.
        b1: decay of the first moment.
        b2: decay of the second moment.
        eps: added to the root of the corrected second moment.

    Returns:
        An optax ``GradientTransformation``.

    Examples:
        >>> tx = partial_rowwise_adam(0.1)
        >>> updates, _ = tx.update(jnp.full((2, 3), 2.0), tx.init(jnp.zeros((2, 3))))
        >>> [round(v, 5) for v in updates[0].tolist()]  # the first Adam step is -lr * sign(g)
        [-0.1, -0.1, -0.1]
    """
    return optax.chain(
        scale_by_partial_rowwise_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate)
    )


# --------------------------------------------------------------------- stochastic rounding
_LOW_PRECISION = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def _low_precision_dtype(dtype: Any) -> jnp.dtype:
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype not in _LOW_PRECISION:
        raise ValueError(f"`dtype` must be bfloat16 or float16. Received: dtype={dtype!r}.")
    return dtype


def stochastically_round(x: jax.typing.ArrayLike, dtype: Any, key: jax.Array) -> jax.Array:
    """Rounds float32 ``x`` to ``dtype`` at random, up or down, so that the mean is ``x``.

    ``x`` lies between two neighbours ``lo <= x <= hi`` of ``dtype``; the result is
    ``hi`` with probability ``(x - lo) / (hi - lo)`` and ``lo`` otherwise, so
    ``E[result] = x`` (the probability resolved to 2**-16 for bfloat16, 2**-13 for
    normal float16 values). It adds random low bits to the float32 pattern and
    truncates (float16 subnormals: ``floor(x * 2**24 + u) * 2**-24``); 16 random
    bits per entry, half a 32-bit draw. Values beyond the format's range become
    ``inf``, as with rounding to nearest.

    Args:
        x: values to round (converted to float32).
        dtype: ``jnp.bfloat16`` or ``jnp.float16``.
        key: a JAX PRNG key; one 32-bit random number is drawn per two entries.

    Returns:
        ``x`` rounded to ``dtype``, of ``x``'s shape.

    Raises:
        ValueError: ``dtype`` is not bfloat16 or float16.

    Examples:
        >>> x = jnp.full((10000,), 1.0 + 2.0**-9)  # a quarter of the way from 1 to the next bfloat16
        >>> r = stochastically_round(x, jnp.bfloat16, jax.random.key(0))
        >>> sorted(set(r.astype(float).tolist())), round(float(r.astype(float).mean()), 3)
        ([1.0, 1.0078125], 1.002)
    """
    dtype = _low_precision_dtype(dtype)
    x = jnp.asarray(x, jnp.float32)
    bits = _random_halves(key, x.shape)  # 16 random bits per entry
    pattern = jax.lax.bitcast_convert_type(x, jnp.uint32)
    if dtype == jnp.bfloat16:
        # Adding 16 random low bits carries into the kept half with probability (x - lo) / (hi - lo).
        rounded = jax.lax.bitcast_convert_type((pattern + bits) & jnp.uint32(0xFFFF0000), jnp.float32)
        return jnp.where(jnp.isfinite(x), rounded, x).astype(jnp.bfloat16)
    # float16 keeps 10 of float32's 23 fraction bits where it is normal (|x| >= 2**-14): the same
    # trick with 13 random bits. Below, its subnormals are multiples of 2**-24: floor(x * 2**24 + u).
    normal = jax.lax.bitcast_convert_type((pattern + (bits >> 3)) & jnp.uint32(0xFFFFE000), jnp.float32)
    uniform = bits.astype(jnp.float32) * (1.0 / (1 << 16))
    subnormal = jnp.floor(x * 2.0**24 + uniform) * 2.0**-24
    rounded = jnp.where(jnp.abs(x) < 2.0**-14, subnormal, normal)
    return jnp.where(jnp.isfinite(x), rounded, x).astype(jnp.float16)


def _random_halves(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """16 random bits per entry of ``shape`` (``uint32`` values below 2**16), from half as many draws."""
    size = math.prod(shape)
    words = jax.random.bits(key, ((size + 1) // 2,), jnp.uint32)
    halves = jnp.concatenate([words >> 16, words & jnp.uint32(0xFFFF)])
    return halves[:size].reshape(shape)


class StochasticRoundingState(NamedTuple):
    """State of :func:`stochastic_rounding`: the PRNG key of the next step (a global leaf)."""

    key: jax.Array  # () typed PRNG key


def stochastic_rounding(key: int | jax.Array = 0, *, dtype: Any = None) -> optax.GradientTransformation:
    """The last link of a chain for low-precision tables: unbiased rounding of ``param + update``.

    Given float32 updates ``u`` for a bfloat16/float16 parameter ``p``, returns
    ``SR(p + u) - p`` computed in float32, so that ``optax.apply_updates`` (which
    adds in float32 and casts to ``p``'s dtype) lands exactly on the stochastically
    rounded value (:func:`stochastically_round`). Without it, ``apply_updates``
    rounds to nearest, and updates smaller than half a unit in the last place are
    lost for good -- a bfloat16 table keeps only 8 significant bits.

    Random bits are drawn for the entries of the updates it is given: applied
    row-sparsely (:func:`jaxembed.sparse.lazy`), only for the rows a batch
    touches. The key advances once per step; when a row-sparse update is applied
    in chunks of 4,096 rows, the chunks of one step draw the same bits for their
    k-th row (each rounding is still unbiased).

    Exactness: ``SR(p + u) - p`` and ``p + (SR(p + u) - p)`` are exact in float32
    unless ``p`` and the result differ by more than 2**16 in magnitude (an update
    that shrinks a value by that factor in one step); such a value may land one
    unit in the last place off.

    Args:
        key: an int seed or a JAX PRNG key.
        dtype: the storage dtype to round to; ``None`` (default) rounds each
            bfloat16/float16 parameter to its own dtype and leaves other leaves'
            updates as they are. A dtype rounds every floating leaf to it
            (e.g. to simulate a bfloat16 table stored in float32).

    Returns:
        An optax ``GradientTransformation`` that needs ``params`` in ``update``.

    Raises:
        ValueError: ``dtype`` is neither ``None``, bfloat16 nor float16.

    Examples:
        >>> import optax
        >>> table = jnp.ones((2, 3), jnp.bfloat16)
        >>> tx = optax.chain(optax.sgd(1.0), stochastic_rounding(0))
        >>> state = tx.init(table)
        >>> updates, state = tx.update(jnp.full((2, 3), 2.0**-10), state, table)  # sgd: step -2**-10
        >>> new = optax.apply_updates(table, updates)  # 1 - 2**-10 is not a bfloat16: 1 or 1 - 2**-8
        >>> new.dtype, all(v in (1.0, 1.0 - 2.0**-8) for v in new.astype(float).ravel().tolist())
        (dtype(bfloat16), True)
    """
    target = None if dtype is None else _low_precision_dtype(dtype)
    if isinstance(key, bool) or not (isinstance(key, int) or isinstance(key, jax.Array)):
        raise ValueError(
            "`key` must be an int seed or a JAX PRNG key. "
            f"Received: key={key!r} (of type {type(key).__name__})."
        )

    def init_fn(params: optax.Params) -> StochasticRoundingState:
        del params
        k = jax.random.key(key) if isinstance(key, int) else key
        if not jnp.issubdtype(k.dtype, jax.dtypes.prng_key):
            k = jax.random.wrap_key_data(k)
        return StochasticRoundingState(k)

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(optax.NO_PARAMS_MSG)
        next_key, step_key = jax.random.split(state.key)
        leaves, treedef = jax.tree.flatten(updates)
        param_leaves = treedef.flatten_up_to(params)
        out = []
        for i, (u, p) in enumerate(zip(leaves, param_leaves)):
            to = target if target is not None and jnp.issubdtype(p.dtype, jnp.floating) else None
            if to is None and jnp.dtype(p.dtype) in _LOW_PRECISION:
                to = jnp.dtype(p.dtype)
            if to is None:
                out.append(u)
                continue
            p32 = p.astype(jnp.float32)
            rounded = stochastically_round(p32 + u.astype(jnp.float32), to, jax.random.fold_in(step_key, i))
            out.append(rounded.astype(jnp.float32) - p32)
        return treedef.unflatten(out), StochasticRoundingState(next_key)

    return optax.GradientTransformation(init_fn, update_fn)


def state_bytes_per_row(tx: optax.GradientTransformation, output_dim: int, dtype: Any = jnp.float32) -> int:
    """The bytes of ``tx``'s state that a ``(rows, output_dim)`` table adds per row.

    Measured from the shapes of ``tx.init`` on tables of two sizes (nothing is
    allocated), so global leaves (a step count, a PRNG key) do not count.

    Args:
        tx: an optax transformation.
        output_dim: the table's row width.
        dtype: the table's dtype.

    Returns:
        Bytes per row.

    Examples:
        >>> import optax
        >>> state_bytes_per_row(optax.adam(1e-3), 64), state_bytes_per_row(rowwise_adagrad(0.1), 64)
        (512, 4)
        >>> state_bytes_per_row(partial_rowwise_adam(1e-3), 64), state_bytes_per_row(optax.sgd(0.1), 64)
        (260, 0)
    """

    def size(rows: int) -> int:
        shapes = jax.eval_shape(tx.init, jax.ShapeDtypeStruct((rows, output_dim), dtype))
        return sum(
            leaf.size * jnp.dtype(leaf.dtype).itemsize
            for leaf in jax.tree.leaves(shapes)
            if not jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)
        )

    return size(3) - size(2)
