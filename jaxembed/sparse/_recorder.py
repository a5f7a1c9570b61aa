"""The lookup recorder of the row-sparse train step (private; to be replaced by an explicit mechanism)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp

from jaxembed import ops

# A row-sparse train step needs the gradient of the loss with respect to the rows each
# lookup gathered, not the table. While it traces the model it activates a recorder:
# the lookups of the tables it tracks (keyed by their owner, e.g. an Embedding layer)
# then add a zero "probe" of the gathered rows' shape -- the step differentiates with
# respect to the probes -- and record their ids. A first pass without probes
# (under jax.eval_shape) only records the ids' shapes. Plain Python state, no Flax.


class _LookupRecorder:
    def __init__(self, owners: Mapping[int, str], probes: Mapping[str, Sequence[jax.Array]] | None):
        self.owners = dict(owners)  # id(owner) -> table key
        self.probes = probes  # table key -> one zero array per lookup; None while discovering shapes
        self.ids: dict[str, list[jax.Array]] = {key: [] for key in self.owners.values()}


_RECORDERS: list[_LookupRecorder] = []


@contextlib.contextmanager
def _record_lookups(
    owners: Mapping[int, str], probes: Mapping[str, Sequence[jax.Array]] | None = None
) -> Iterator[_LookupRecorder]:
    recorder = _LookupRecorder(owners, probes)
    _RECORDERS.append(recorder)
    try:
        yield recorder
    finally:
        _RECORDERS.remove(recorder)


def _recorder_for(owner: object) -> tuple[_LookupRecorder, str] | None:
    for recorder in reversed(_RECORDERS):
        key = recorder.owners.get(id(owner))
        if key is not None:
            return recorder, key
    return None


def _is_recorded(owner: object) -> bool:
    """Whether a row-sparse step is tracing ``owner``'s table (its table penalty is then applied
    to the touched rows by the step, not to the whole table)."""
    return _recorder_for(owner) is not None


def _recorded_lookup(
    owner: object, table: jax.Array, ids: jax.typing.ArrayLike, *, method: str, invalid_ids: str
) -> jax.Array:
    """:func:`jaxembed.ops.lookup`, plus a zero probe and a record of the ids when ``owner`` is tracked."""
    rows = ops.lookup(table, ids, method=method, invalid_ids=invalid_ids)
    found = _recorder_for(owner)
    if found is None:
        return rows
    recorder, key = found
    int_ids, valid = ops.prepare_ids(ids, table.shape[0])
    if valid is not None:
        int_ids = jnp.where(valid, int_ids, -1)
    calls = recorder.ids[key]
    calls.append(int_ids)
    if recorder.probes is None:
        return rows
    probe = recorder.probes[key][len(calls) - 1]
    return rows + probe.astype(rows.dtype)
