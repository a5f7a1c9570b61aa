"""Row taps: the explicit mechanism that lets a row-sparse train step see the rows a layer gathers.

A row-sparse step needs the gradient of the loss with respect to the rows each lookup
gathered, never the whole table. Flax NNX's answer for gradients with respect to
intermediates is ``Module.perturb`` under ``nnx.capture``: a zero array is added to the
intermediate and the loss is differentiated with respect to it. A :class:`RowTap` is the
same idea, specialised to lookups: the step attaches one tap to each table layer of *its
own copy* of the model (made by ``nnx.merge`` inside the traced step) for the length of
one forward pass; each lookup of that layer then records its ids and, in the gradient
pass, adds the next zero probe to its rows. Nothing is global: a layer without a tap (any
layer outside a row-sparse step) looks up as usual, and the tap dies with the copy.

Why not ``perturb`` itself: it keys a perturbation by name and reuses it for every call
of the module, so a layer called twice in one loss (weight tying) would need names per
call, and the ids of each call would still need a second channel (``sow``). A tap keeps
the ids and the probes of every call in call order, in one object.

A tap refuses to work under a transformation that the step does not see
(``nnx.scan``, ``jax.vmap``, ``nnx.remat``, a nested ``jax.jit``...): the rows there are
per-example or per-iteration tracers of an inner trace, and a probe from the outer trace
would give a wrong gradient. It raises a ``ValueError`` that says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp

from jaxembed import ops

__all__ = ["RowTap", "tap_rows", "is_tapped", "tapping"]

_TAP = "_jaxembed_row_tap"  # the attribute a step sets on its own copy of a layer


def _current_trace() -> Any:
    return jax.extend.core.get_opaque_trace_state(convention="nnx")


class RowTap:
    """The record of one layer's lookups during one forward pass of a row-sparse step.

    Args:
        name: the table's key (its path in the model), for error messages.
        probes: one zero array per lookup, in call order, shaped like the rows that
            lookup gathers; ``None`` while the step only discovers the ids' shapes.

    Attributes:
        ids: the int32 ids of each lookup, in call order (invalid ids replaced by ``-1``).

    Examples:
        >>> tap = RowTap("embed/embeddings", probes=None)
        >>> rows = tap(jnp.ones((2, 3)), jnp.array([4, 1]), num_rows=5)
        >>> rows.shape, [i.tolist() for i in tap.ids]
        ((2, 3), [[4, 1]])
    """

    def __init__(self, name: str, probes: Sequence[jax.Array] | None) -> None:
        self.name = name
        self.probes = probes
        self.ids: list[jax.Array] = []
        self._trace = _current_trace()

    def __call__(
        self, rows: jax.Array, ids: ops.CheckedIds | jax.typing.ArrayLike, *, num_rows: int
    ) -> jax.Array:
        """Records ``ids`` and returns ``rows`` plus this call's probe (``rows`` while discovering)."""
        if _current_trace() != self._trace:
            raise ValueError(
                f"The table {self.name!r} was looked up inside a transformation that the row-sparse "
                "train step does not see (nnx.scan, nnx.vmap, jax.vmap, jax.lax.scan, nnx.remat, a nested "
                "jax.jit, ...): its row-sparse gradient would be wrong. Look the ids up outside the "
                "transformation (e.g. embed the whole (batch, time) block before the scan) or train "
                "this model with the dense update rule (a plain optax transformation)."
            )
        # Ids the layer already checked (ops.CheckedIds) are not checked again.
        checked = ids if isinstance(ids, ops.CheckedIds) else ops.check_ids(ids, num_rows)
        int_ids = checked.index if checked.valid is None else jnp.where(checked.valid, checked.index, -1)
        self.ids.append(int_ids)
        if self.probes is None:
            return rows
        call = len(self.ids) - 1
        if call >= len(self.probes) or self.probes[call].shape != rows.shape:
            raise ValueError(
                f"The table {self.name!r} was looked up differently in the row-sparse step's two passes "
                f"over the loss (lookup {call + 1}, rows of shape {rows.shape}); the loss must make the "
                "same lookups, with the same shapes, every time it is traced."
            )
        return rows + self.probes[call].astype(rows.dtype)


def tap_rows(
    layer: object, rows: jax.Array, ids: ops.CheckedIds | jax.typing.ArrayLike, *, num_rows: int
) -> jax.Array:
    """``rows`` as gathered for ``ids``, passed through ``layer``'s tap when a row-sparse step set one.

    The one call a table layer makes where it gathers its rows.

    Examples:
        >>> layer = jaxembed.Embedding(5, 2, rngs=0)
        >>> rows = jnp.ones((3, 2))
        >>> tap_rows(layer, rows, jnp.array([0, 1, 2]), num_rows=5) is rows  # no step, no tap
        True
    """
    tap = getattr(layer, _TAP, None)
    return rows if tap is None else tap(rows, ids, num_rows=num_rows)


def is_tapped(layer: object) -> bool:
    """Whether a row-sparse step taps ``layer`` (it then penalizes the touched rows itself).

    Examples:
        >>> is_tapped(jaxembed.Embedding(5, 2, rngs=0))
        False
    """
    return getattr(layer, _TAP, None) is not None


@contextlib.contextmanager
def tapping(
    layers: Mapping[str, object], probes: Mapping[str, Sequence[jax.Array]] | None = None
) -> Iterator[dict[str, RowTap]]:
    """Attaches a :class:`RowTap` to each of ``layers`` (keyed by table) for the ``with`` block.

    Use it on a model copy that belongs to the traced step (``nnx.merge`` inside it).

    Examples:
        >>> layer = jaxembed.Embedding(5, 2, rngs=0)
        >>> with tapping({"t": layer}) as taps:
        ...     _ = layer(jnp.array([[3, 3]]))
        >>> [i.shape for i in taps["t"].ids], is_tapped(layer)
        ([(1, 2)], False)
    """
    taps = {key: RowTap(key, None if probes is None else probes[key]) for key in layers}
    for key, layer in layers.items():
        if is_tapped(layer):
            raise ValueError(f"The table {key!r} is already tapped by another row-sparse step.")
        object.__setattr__(layer, _TAP, taps[key])
    try:
        yield taps
    finally:
        for layer in layers.values():
            object.__delattr__(layer, _TAP)
