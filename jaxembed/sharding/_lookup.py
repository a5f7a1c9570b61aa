"""The explicit ``shard_map`` lookup of a row-sharded table and the lazy update on each shard."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from jaxembed import ops, sparse
from jaxembed._mesh import (  # noqa: F401 (the examples use them)
    Placement,
    _check_divisible,
    _check_placement,
    make_mesh,
    table_sharding,
    table_spec,
)

__all__ = ["sharded_lookup", "gathered_lookup", "sharded_lazy_update"]


def _ids_spec(ids: jax.Array, mesh: Mesh, data_axis: str | None) -> PartitionSpec:
    if data_axis is None:
        return PartitionSpec()
    if ids.ndim == 0 or ids.shape[0] % mesh.shape[data_axis]:
        raise ValueError(
            f"To split ids over the {data_axis!r} axis ({mesh.shape[data_axis]} devices) their leading "
            f"axis must be a multiple of it. Received ids of shape {ids.shape}."
        )
    return PartitionSpec(data_axis)


def _over_row_shards(
    local: Any, table: jax.Array, ids: jax.Array, mesh: Mesh, axis: str, data_axis: str | None, **options: Any
) -> jax.Array:
    """``local(table_shard, ids_shard)`` on every device, the table split by rows over ``axis`` and the
    ids over ``data_axis`` (or whole); the result is split like the ids."""
    id_spec = _ids_spec(ids, mesh, data_axis)
    return jax.shard_map(
        local, mesh=mesh, in_specs=(table_spec("row", axis=axis), id_spec), out_specs=id_spec, **options
    )(table, ids)


def sharded_lookup(
    table: jax.Array,
    ids: jax.typing.ArrayLike,
    mesh: Mesh,
    *,
    axis: str = "model",
    data_axis: str | None = None,
) -> jax.Array:
    """``table[ids]`` for a table split by rows over ``axis``, without moving the table.

    Inside ``jax.shard_map`` each device shifts the ids to its own rows
    (``ids - index * rows_per_device``), gathers those it owns with
    :func:`jaxembed.ops.take_lookup`, writes zeros for the rest, and one ``psum``
    over ``axis`` assembles the result: ``ids.size * output_dim`` values
    reduced, never the ``input_dim * output_dim`` table gathered. Its gradient
    is the mirror image: each device scatters into its own rows only.

    Args:
        table: ``(input_dim, output_dim)``, ``input_dim`` divisible by ``mesh.shape[axis]``
            (it is resharded to ``table_spec("row", axis=axis)`` if it is not already).
        ids: any shape; checked as in :func:`jaxembed.ops.lookup` (concrete ids on the host;
            traced invalid ids give NaN rows).
        mesh: the device mesh.
        axis: the mesh axis splitting the vocabulary.
        data_axis: optionally, a mesh axis splitting the ids' leading (batch) axis.

    Returns:
        ``(*ids.shape, output_dim)``, split like the ids.

    Examples:
        >>> mesh = make_mesh(2, 4)
        >>> table = jnp.arange(16.0).reshape(8, 2)
        >>> sharded_lookup(table, jnp.array([[7], [1]]), mesh, data_axis="data").tolist()
        [[[14.0, 15.0]], [[2.0, 3.0]]]
    """
    input_dim = table.shape[0]
    parts = mesh.shape[axis]
    if input_dim % parts:
        raise ValueError(
            f"A row-sharded table needs input_dim divisible by the {axis!r} axis size ({parts}). "
            f"Received input_dim={input_dim}; pad the vocabulary to a multiple of {parts}."
        )
    int_ids, valid = ops.prepare_ids(ids, input_dim)
    rows = input_dim // parts

    def local(shard: jax.Array, local_ids: jax.Array) -> jax.Array:
        with jax.named_scope("embedding_sharded_take"):
            shifted = local_ids - jax.lax.axis_index(axis) * rows
            owned = (shifted >= 0) & (shifted < rows)
            vectors = ops.take_lookup(shard, jnp.where(owned, shifted, 0))
            return jax.lax.psum(jnp.where(owned[..., None], vectors, 0), axis)

    out = _over_row_shards(local, table, int_ids, mesh, axis, data_axis)
    if valid is not None:
        out = jnp.where(valid[..., None], out, jnp.array(jnp.nan, out.dtype))
    return out


def gathered_lookup(
    table: jax.Array,
    ids: jax.typing.ArrayLike,
    mesh: Mesh,
    *,
    axis: str = "model",
    data_axis: str | None = None,
) -> jax.Array:
    """The naive baseline: all-gather the row-split table onto every device, then look up.

    Kept for comparison only (tests and ``benchmarks/sharding_comm.py`` show that
    :func:`jaxembed.inspect.collectives` catches its ``all-gather``): it moves
    ``input_dim * output_dim`` values per call where :func:`sharded_lookup` moves
    ``ids.size * output_dim``.

    Examples:
        >>> mesh = make_mesh()
        >>> gathered_lookup(jnp.arange(16.0).reshape(8, 2), jnp.array([7]), mesh).tolist()
        [[14.0, 15.0]]
    """
    int_ids, _ = ops.prepare_ids(ids, table.shape[0])

    def local(shard: jax.Array, local_ids: jax.Array) -> jax.Array:
        whole = jax.lax.all_gather(shard, axis, axis=0, tiled=True)
        return ops.take_lookup(whole, local_ids)

    return _over_row_shards(local, table, int_ids, mesh, axis, data_axis, check_vma=False)


def sharded_lazy_update(
    opt: sparse.LazyTransformation,
    grad: sparse.RowSparseGrad,
    opt_state: Any,
    table: jax.Array,
    mesh: Mesh,
    *,
    placement: Placement = "row",
    axis: str = "model",
    data_axis: str | None = None,
) -> tuple[jax.Array, Any]:
    """One lazy (row-sparse) optimizer step on a table and optimizer state placed on ``mesh``.

    The same :func:`jaxembed.sparse.lazy` update as on one device, run by every
    device on its own shard inside ``jax.shard_map``:

    * ``"row"``: each device shifts the touched ids to its local rows
      (``id - index * rows_per_device``); ids it does not own fall outside its
      shard and the lazy update ignores them, so each shard reads and writes only
      its own touched rows;
    * ``"column"``: each device updates its feature slice of every touched row;
    * ``"replicated"``: every device runs the whole update.

    With ``data_axis``, ``grad`` is split over that axis (each data shard's own
    gradient rows, e.g. from its part of the batch): each device coalesces its
    part, the parts are all-gathered over ``data_axis`` (``K * (output_dim + 1)``
    values, never the table) and coalesced again, so ids touched by several data
    shards get their summed gradient. Optimizer-state leaves shaped like the table
    are placed like it; the others (the step count) are replicated.

    Args:
        opt: a :class:`jaxembed.sparse.LazyTransformation` (``sparse.lazy(optax.adam(...))``).
        grad: a :class:`jaxembed.sparse.RowSparseGrad` with global ids; ids may repeat
            (they are coalesced), ids outside ``[0, input_dim)`` are ignored.
        opt_state: ``opt.init(table)``, placed like the table (see above).
        table: ``(input_dim, output_dim)``.
        mesh: the device mesh.
        placement: how ``table`` is split (``"row"``, ``"column"``, ``"replicated"``).
        axis: the mesh axis splitting the table.
        data_axis: a mesh axis splitting ``grad``'s leading axis, or ``None``.

    Returns:
        ``(new_table, new_opt_state)``, placed as given.

    Call it inside ``jax.jit`` (with the table and state donated): eagerly,
    ``shard_map`` runs one operation at a time.

    Examples:
        >>> import optax
        >>> mesh = make_mesh(2, 4)
        >>> opt = sparse.lazy(optax.adam(0.1))
        >>> table = jax.device_put(jnp.zeros((8, 2)), table_sharding(mesh, "row"))
        >>> state = opt.init(table)
        >>> grad = sparse.RowSparseGrad(jnp.array([6, 1, 6, 6]), jnp.ones((4, 2)))
        >>> step = jax.jit(lambda g, s, t: sharded_lazy_update(opt, g, s, t, mesh, data_axis="data"))
        >>> table, state = step(grad, state, table)
        >>> [round(v, 3) for v in table[:, 0].tolist()]
        [0.0, -0.1, 0.0, 0.0, 0.0, 0.0, -0.1, 0.0]
    """
    _check_placement(placement)
    num_rows, _ = table.shape
    parts = mesh.shape[axis]
    _check_divisible(table.shape, placement, parts)
    local_rows = num_rows // parts if placement == "row" else num_rows
    t_spec = table_spec(placement, axis=axis)
    ids_spec = PartitionSpec(data_axis)
    rows_spec = PartitionSpec(data_axis, axis if placement == "column" else None)
    state_specs = jax.tree.map(
        lambda leaf: t_spec if jnp.shape(leaf) == table.shape else PartitionSpec(), opt_state
    )
    if data_axis is not None:
        _ids_spec(grad.ids, mesh, data_axis)

    def local(ids: jax.Array, rows: jax.Array, state: Any, shard: jax.Array) -> tuple[jax.Array, Any]:
        with jax.named_scope("jaxembed_sharded_lazy_update"):
            if data_axis is not None:
                part = sparse.coalesce(ids, rows, num_rows)
                ids = jax.lax.all_gather(part.ids, data_axis, tiled=True)
                rows = jax.lax.all_gather(part.rows, data_axis, tiled=True)
            merged = sparse.coalesce(ids, rows, num_rows)
            ids = merged.ids
            if placement == "row":  # to local coordinates; other shards' ids fall outside [0, local_rows)
                ids = jnp.where(ids < num_rows, ids - jax.lax.axis_index(axis) * local_rows, ids)
            return opt.update(sparse.RowSparseGrad(ids, merged.rows), state, shard)

    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(ids_spec, rows_spec, state_specs, t_spec),
        out_specs=(t_spec, state_specs),
        check_vma=False,
    )(jnp.asarray(grad.ids, jnp.int32), grad.rows, opt_state, table)
