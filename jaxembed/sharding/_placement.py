"""Embedding tables on a device mesh: placements, a ``shard_map`` lookup, and what a step communicates.

JAX is the distributed engine; this module only names the three ways to place
a ``(input_dim, output_dim)`` table on a :class:`jax.sharding.Mesh` and wires
them into Flax's own sharding metadata, so ``jax.jit`` partitions lookups and
gradients:

* ``"row"``: the vocabulary axis is split over the ``model`` mesh axis (each of
  ``n`` devices holds ``input_dim / n`` whole rows; TorchRec's row-wise);
* ``"column"``: the feature axis is split (each device holds every row's
  ``output_dim / n`` slice; TorchRec's column-wise);
* ``"replicated"``: every device holds the whole table.

A batch can be split over a ``data`` mesh axis at the same time (data parallel).
:func:`sharded_lookup` is the explicit lookup for row-sharded tables: each device
gathers the rows it owns, writes zeros for the others, and one ``psum`` over the
model axis adds the partial results -- the table itself never moves.
:func:`sharded_lazy_update` runs the lazy optimizer of :mod:`jaxembed.sparse` on each
shard (each device updates only its own touched rows).
:func:`collectives` reads a compiled step's HLO and lists the collectives it runs
and their bytes, so tests and benchmarks can show that nothing gathers the table.
Checkpoints of placed tables: :func:`jaxembed.checkpoint.save_sharded_checkpoint`.

Examples:
    >>> mesh = make_mesh(model=2, devices=jax.devices()[:2])
    >>> table = jax.device_put(jnp.arange(8.0).reshape(4, 2), table_sharding(mesh, "row"))
    >>> [shard.data.shape for shard in table.addressable_shards]
    [(2, 2), (2, 2)]
    >>> sharded_lookup(table, jnp.array([3, 0]), mesh).tolist()
    [[6.0, 7.0], [0.0, 1.0]]
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxembed import ops, sparse

__all__ = [
    "Placement",
    "PLACEMENTS",
    "make_mesh",
    "table_spec",
    "table_sharding",
    "variable_metadata",
    "place_tables",
    "state_shardings",
    "sharded_lookup",
    "gathered_lookup",
    "sharded_lazy_update",
    "Collective",
    "collectives",
    "communicated_bytes",
]

Placement = Literal["row", "column", "replicated"]
"""Where a table lives: split by vocabulary rows, by feature columns, or copied to every device."""
PLACEMENTS: tuple[str, ...] = get_args(Placement)
"""The valid values of ``placement``, ``("row", "column", "replicated")``."""


def _check_placement(placement: str) -> str:
    if placement not in PLACEMENTS:
        raise ValueError(f"`placement` must be one of {PLACEMENTS}. Received: placement={placement!r}.")
    return placement


def make_mesh(
    data: int = 1, model: int | None = None, *, devices: Sequence[jax.Device] | None = None
) -> Mesh:
    """A ``(data, model)`` mesh with JAX's automatic (GSPMD) sharding on both axes.

    Args:
        data: devices along the ``"data"`` axis (batch split, data parallel).
        model: devices along the ``"model"`` axis (table split); default: the rest.
        devices: the devices to use (default: all of ``jax.devices()``).

    Returns:
        A :class:`jax.sharding.Mesh` with axes ``("data", "model")``.

    Examples:
        >>> dict(make_mesh(2, 4).shape)
        {'data': 2, 'model': 4}
    """
    devices = list(jax.devices() if devices is None else devices)
    for name, value in (("data", data), ("model", model)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}.")
    if model is None:
        model = len(devices) // data
    if data * model != len(devices):
        raise ValueError(
            f"A ({data}, {model}) mesh needs data * model == the number of devices ({len(devices)}). "
            f"Received: data={data}, model={model}."
        )
    grid = np.array(devices, dtype=object).reshape(data, model)
    auto = jax.sharding.AxisType.Auto
    return Mesh(grid, ("data", "model"), axis_types=(auto, auto))


def table_spec(placement: Placement, *, axis: str = "model") -> PartitionSpec:
    """The :class:`~jax.sharding.PartitionSpec` of a table placed ``placement`` over mesh axis ``axis``.

    Examples:
        >>> [tuple(table_spec(placement)) for placement in PLACEMENTS]
        [('model', None), (None, 'model'), (None, None)]
    """
    names = {"row": (axis, None), "column": (None, axis), "replicated": (None, None)}
    return PartitionSpec(*names[_check_placement(placement)])


def table_sharding(mesh: Mesh, placement: Placement, *, axis: str = "model") -> NamedSharding:
    """The :class:`~jax.sharding.NamedSharding` of a table placed ``placement`` on ``mesh``.

    Pass it to ``jax.device_put``, or to ``Embedding(..., embeddings_sharding=...)``.

    Examples:
        >>> tuple(table_sharding(make_mesh(), "column").spec)
        (None, 'model')
    """
    if axis not in mesh.axis_names:
        raise ValueError(f"`axis` must name an axis of the mesh {mesh.axis_names}. Received: axis={axis!r}.")
    return NamedSharding(mesh, table_spec(placement, axis=axis))


def variable_metadata(embeddings_sharding: Any) -> dict[str, Any]:
    """Flax variable metadata for a table sharding (what ``embeddings_sharding=`` becomes).

    Args:
        embeddings_sharding: ``None``; a :class:`~jax.sharding.NamedSharding` (carries
            its mesh); or a ``PartitionSpec`` / tuple of mesh-axis names, one per
            table axis (the mesh then comes from ``jax.set_mesh``).

    Returns:
        ``{}`` or ``{"out_sharding": names, "mesh": mesh}`` -- the keywords of
        ``nnx.Param`` and of ``flax.linen.with_partitioning``.

    Examples:
        >>> variable_metadata(("model", None))
        {'out_sharding': ('model', None), 'mesh': None}
    """
    if embeddings_sharding is None:
        return {}
    mesh = None
    spec = embeddings_sharding
    if isinstance(embeddings_sharding, NamedSharding):
        mesh, spec = embeddings_sharding.mesh, embeddings_sharding.spec
    if (
        not isinstance(spec, (tuple, list, PartitionSpec))
        or len(spec) > 2
        or not all(name is None or isinstance(name, str) for name in spec)
    ):
        raise TypeError(
            "`embeddings_sharding` must be a NamedSharding, a PartitionSpec or a tuple of at most two "
            "mesh-axis names or None (one per table axis), e.g. table_sharding(mesh, 'row') or "
            f"('model', None). Received: {embeddings_sharding!r}."
        )
    names = tuple(spec) + (None,) * (2 - len(spec))
    return {"out_sharding": names, "mesh": mesh}


def _embedding_layers(model: Any):
    from flax import nnx

    from jaxembed.layers import Embedding

    for _, node in nnx.iter_graph(model):
        if isinstance(node, Embedding):
            yield node


def _check_divisible(shape: tuple[int, ...], placement: str, parts: int) -> None:
    split = {"row": 0, "column": 1}.get(placement)
    if split is not None and shape[split] % parts:
        name = ("input_dim", "output_dim")[split]
        raise ValueError(
            f"A {placement}-sharded table needs {name} divisible by the number of devices on the model "
            f"axis ({parts}). Received a table of shape {tuple(shape)}."
        )


def place_tables(model: Any, mesh: Mesh, placement: Placement, *, axis: str = "model") -> Any:
    """Places every :class:`jaxembed.Embedding` table of an NNX ``model`` on ``mesh``, in place.

    The table is moved with ``jax.device_put`` and its variable gets Flax's
    ``out_sharding`` metadata, so ``nnx.get_named_sharding`` (and
    :func:`state_shardings`) report the placement. Returns ``model``.

    Examples:
        >>> layer = place_tables(jaxembed.Embedding(16, 4, rngs=0), make_mesh(), "row")
        >>> layer.embeddings.out_sharding, layer.embeddings[...].addressable_shards[0].data.shape
        (('model', None), (2, 4))
    """
    sharding = table_sharding(mesh, placement, axis=axis)
    for layer in _embedding_layers(model):
        variable = layer.embeddings
        _check_divisible(variable.shape, placement, mesh.shape[axis])
        variable.set_metadata(out_sharding=tuple(sharding.spec), mesh=mesh)
        variable[...] = jax.device_put(variable[...], sharding)
    return model


def state_shardings(state: Any, mesh: Mesh) -> Any:
    """The ``NamedSharding`` tree of an ``nnx.State`` (from its variables' ``out_sharding``).

    Variables without sharding metadata are replicated. Use it as ``in_shardings``/
    ``out_shardings`` of ``jax.jit``, or as the target of ``jax.device_put``.

    Examples:
        >>> from flax import nnx
        >>> layer = place_tables(jaxembed.Embedding(16, 8, rngs=0), make_mesh(), "column")
        >>> tuple(state_shardings(nnx.state(layer), make_mesh())["embeddings"].spec)
        (None, 'model')
    """
    from flax import nnx

    return nnx.get_named_sharding(state, mesh)


def _ids_spec(ids: jax.Array, mesh: Mesh, data_axis: str | None) -> PartitionSpec:
    if data_axis is None:
        return PartitionSpec()
    if ids.ndim == 0 or ids.shape[0] % mesh.shape[data_axis]:
        raise ValueError(
            f"To split ids over the {data_axis!r} axis ({mesh.shape[data_axis]} devices) their leading "
            f"axis must be a multiple of it. Received ids of shape {ids.shape}."
        )
    return PartitionSpec(data_axis)


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
    id_spec = _ids_spec(int_ids, mesh, data_axis)

    def local(shard: jax.Array, local_ids: jax.Array) -> jax.Array:
        with jax.named_scope("embedding_sharded_take"):
            shifted = local_ids - jax.lax.axis_index(axis) * rows
            owned = (shifted >= 0) & (shifted < rows)
            vectors = ops.take_lookup(shard, jnp.where(owned, shifted, 0))
            return jax.lax.psum(jnp.where(owned[..., None], vectors, 0), axis)

    out = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(table_spec("row", axis=axis), id_spec),
        out_specs=id_spec,
    )(table, int_ids)
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
    :func:`collectives` catches its ``all-gather``): it moves
    ``input_dim * output_dim`` values per call where :func:`sharded_lookup` moves
    ``ids.size * output_dim``.

    Examples:
        >>> mesh = make_mesh()
        >>> gathered_lookup(jnp.arange(16.0).reshape(8, 2), jnp.array([7]), mesh).tolist()
        [[14.0, 15.0]]
    """
    int_ids, _ = ops.prepare_ids(ids, table.shape[0])
    id_spec = _ids_spec(int_ids, mesh, data_axis)

    def local(shard: jax.Array, local_ids: jax.Array) -> jax.Array:
        whole = jax.lax.all_gather(shard, axis, axis=0, tiled=True)
        return ops.take_lookup(whole, local_ids)

    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(table_spec("row", axis=axis), id_spec),
        out_specs=id_spec,
        check_vma=False,
    )(table, int_ids)


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


# ------------------------------------------------------------------ reading the HLO
_COLLECTIVE = re.compile(
    r"=\s*(?P<shape>\(?[a-z0-9]+\[[^=]*?\]\S*(?:,\s*[a-z0-9]+\[[^=]*?\]\S*)*\)?)\s+"
    r"(?P<op>all-gather|all-reduce|reduce-scatter|all-to-all|collective-permute|"
    r"ragged-all-to-all|collective-broadcast)(?P<start>-start)?\("
)
_ARRAY = re.compile(r"([a-z]+[0-9]*)\[([0-9,]*)\]")
_DTYPE_BITS = {"pred": 8, "s4": 4, "u4": 4, "f8e4m3fn": 8, "f8e5m2": 8}


class Collective(NamedTuple):
    """One collective operation of a compiled program, as :func:`collectives` reads it."""

    op: str  # "all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute", ...
    shapes: tuple[str, ...]  # result arrays, e.g. ("f32[8,64]",)
    bytes: int  # size of the result on one device, in bytes


def _array_bytes(dtype: str, dims: str) -> int:
    bits = _DTYPE_BITS.get(dtype)
    if bits is None:
        match = re.search(r"(\d+)$", dtype)
        bits = int(match.group(1)) if match else 8
    count = math.prod(int(d) for d in dims.split(",") if d)
    return count * bits // 8


def collectives(compiled: Any) -> list[Collective]:
    """Lists the collectives in a compiled program (``jax.jit(f).lower(...).compile()``) with their bytes.

    The bytes are those of each collective's result on one device: for an
    ``all-gather`` the gathered array, for an ``all-reduce`` the reduced one.
    Asynchronous pairs (``all-gather-start`` / ``-done``, as GPUs and TPUs run
    them) count once, at the start; the operand buffers and context scalars that
    an ``all-gather-start`` or ``collective-permute-start`` carries in its result
    tuple are not counted.

    Args:
        compiled: a ``jax.stages.Compiled`` (or ``Lowered``), or HLO text.

    Returns:
        The collectives in program order.

    Examples:
        >>> mesh = make_mesh()
        >>> table = jax.device_put(jnp.zeros((64, 4)), table_sharding(mesh, "row"))
        >>> step = jax.jit(lambda t, i: sharded_lookup(t, i, mesh))
        >>> [c.op for c in collectives(step.lower(table, jnp.zeros(2, jnp.int32)).compile())]
        ['all-reduce']
        >>> naive = jax.jit(lambda t, i: gathered_lookup(t, i, mesh))
        >>> [(c.op, c.bytes) for c in collectives(naive.lower(table, jnp.zeros(2, jnp.int32)).compile())]
        [('all-gather', 1024)]
    """
    text = compiled if isinstance(compiled, str) else compiled.as_text()
    found = []
    for line in text.splitlines():
        match = _COLLECTIVE.search(line)
        if match is None:
            continue
        arrays = _ARRAY.findall(match.group("shape"))
        if match.group("start") and match.group("op") == "all-gather" and len(arrays) > 1:
            arrays = arrays[len(arrays) // 2 :]  # (operands..., results...)
        elif match.group("start") and match.group("op") == "collective-permute" and len(arrays) > 1:
            arrays = arrays[1:2]  # (operand, result, context scalars...)
        found.append(
            Collective(
                op=match.group("op"),
                shapes=tuple(f"{dtype}[{dims}]" for dtype, dims in arrays),
                bytes=sum(_array_bytes(dtype, dims) for dtype, dims in arrays),
            )
        )
    return found


def communicated_bytes(compiled: Any, *, op: str | None = None) -> int:
    """Total bytes of the collectives in a compiled program (of one kind, if ``op`` is given).

    Examples:
        >>> communicated_bytes("%x = f32[4,2]{1,0} all-reduce(f32[4,2]{1,0} %y), to_apply=%add")
        32
    """
    return sum(c.bytes for c in collectives(compiled) if op is None or c.op == op)
