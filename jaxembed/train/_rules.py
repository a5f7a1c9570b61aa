"""Update rules: one value that says how a train step updates the parameters (dense or row-sparse)."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import optax

from jaxembed import sparse


class Dense(NamedTuple):
    """The dense update rule (what a plain optax transformation means): every parameter gets its
    dense gradient and one ``tx.update``. Make it with :func:`dense`."""

    tx: optax.GradientTransformation


class RowSparse(NamedTuple):
    """The row-sparse update rule: the embedding tables get row-sparse gradients and ``tx`` is applied
    to the gathered view (:func:`jaxembed.sparse.apply_row_sparse`). Make it with :func:`row_sparse`."""

    tx: optax.GradientTransformation
    dense_fraction: float | None
    chunked: bool  # the rows of tx do not interact (check_row_sparse): large gradients go in chunks


UpdateRule = Dense | RowSparse
"""What :class:`~jaxembed.train.Trainer`, :func:`~jaxembed.train.init_train_state` and
:func:`~jaxembed.train.make_train_step` take as their update: :func:`dense`, :func:`row_sparse`, or
a plain optax transformation (dense)."""


def _check_tx(tx: object, name: str) -> optax.GradientTransformation:
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(
            f"{name} takes an optax.GradientTransformation (e.g. optax.adam(1e-3)). "
            f"Received: {type(tx).__name__}."
        )
    return tx


def dense(tx: optax.GradientTransformation) -> Dense:
    """The dense update rule: dense gradients of every parameter and ``tx`` (a plain ``tx`` means this).

    Args:
        tx: any optax transformation.

    Returns:
        A :class:`Dense` rule.

    Raises:
        TypeError: ``tx`` is not an optax transformation.

    Examples:
        >>> import optax
        >>> rule = dense(optax.adam(1e-3))
        >>> type(rule).__name__, isinstance(rule.tx, optax.GradientTransformation)
        ('Dense', True)
    """
    return Dense(_check_tx(tx, "dense()"))


def row_sparse(
    tx: optax.GradientTransformation, *, check: bool = True, dense_fraction: float | None = 0.25
) -> RowSparse:
    """The row-sparse update rule: ``O(batch)`` steps for the embedding tables at any vocabulary size.

    The trainable float tables of the model's :class:`jaxembed.Embedding` layers
    (:func:`~jaxembed.train.row_sparse_tables`) get the gradient of the rows the batch
    looked up, never a ``(V, D)`` gradient; ``tx`` then runs once on the gathered view:
    every other parameter with its dense gradient, and for each table its touched rows
    and the same rows of its optimizer state (:func:`jaxembed.sparse.apply_row_sparse`).
    Rows a batch does not touch keep their values and state (lazy semantics: TF's
    ``LazyAdam``, torch's ``SparseAdam``); for SGD this is the dense update. Chains work:
    ``row_sparse(optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)))`` clips
    by the same global norm as the dense step (the untouched rows' gradients are zero).

    Args:
        tx: an optax transformation that :func:`jaxembed.sparse.check_row_sparse` accepts
            (element-wise, row-wise, global-norm clipping and chains of these).
        check: run that check now (``False`` skips it; large gradients are then applied in
            chunks, so ``tx`` must not need a global norm).
        dense_fraction: a table whose batch can touch at least this fraction of its rows
            is updated densely, masked to the touched rows (``None``: never).

    Returns:
        A :class:`RowSparse` rule.

    Raises:
        TypeError: ``tx`` is not an optax transformation.
        ValueError: ``tx`` needs the whole table (lamb, adafactor, ...).

    Examples:
        >>> import optax
        >>> rule = row_sparse(optax.adam(1e-3))
        >>> type(rule).__name__, rule.chunked
        ('RowSparse', True)
        >>> row_sparse(optax.lamb(1e-3))
        Traceback (most recent call last):
        ...
        ValueError: row_sparse() needs an optax transformation that can update the touched rows alone...
    """
    _check_tx(tx, "row_sparse()")
    chunked = sparse.check_row_sparse(tx, name="row_sparse()") if check else True
    return RowSparse(tx, dense_fraction, chunked)


def as_rule(update: object, *, flag: bool | None, where: str) -> UpdateRule:
    """``update`` as a rule; ``flag`` is the deprecated ``row_sparse=`` argument (``None``: not given)."""
    if flag is not None:
        warnings.warn(
            f"{where}(..., row_sparse={flag!r}) is deprecated: pass the update rule as one value, "
            "jaxembed.train.row_sparse(tx) or jaxembed.train.dense(tx) (a plain optax transformation "
            "means dense).",
            DeprecationWarning,
            stacklevel=3,
        )
        if flag:
            if isinstance(update, RowSparse):
                return update
            if isinstance(update, Dense):
                raise TypeError(
                    f"{where} got row_sparse=True and a dense(tx) rule; pass row_sparse(tx) alone."
                )
            return row_sparse(_check_tx(update, f"{where}'s optimizer"))
    if isinstance(update, (Dense, RowSparse)):
        return update
    if isinstance(update, optax.GradientTransformation):
        return Dense(update)
    raise TypeError(
        f"`optimizer` must be an optax.GradientTransformation (e.g. optax.adam(1e-3)) or an update rule "
        f"(jaxembed.train.dense(tx), jaxembed.train.row_sparse(tx)). Received: {type(update).__name__}."
    )
