"""Table placements on a device mesh (private; public through :mod:`jaxembed.sharding`).

The vocabulary of placing a ``(input_dim, output_dim)`` table -- ``"row"``, ``"column"``,
``"replicated"`` -- and the Flax variable metadata an ``embeddings_sharding=`` argument
becomes. It sits below the modules (``jaxembed.nn``, ``jaxembed.linen``), which use it, and
below :mod:`jaxembed.sharding`, which re-exports it.

Examples:
    >>> tuple(table_spec("row"))
    ('model', None)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxembed._checks import one_of, positive_int

__all__ = ["Placement", "PLACEMENTS", "make_mesh", "table_spec", "table_sharding", "variable_metadata"]

Placement = Literal["row", "column", "replicated"]
"""Where a table lives: split by vocabulary rows, by feature columns, or copied to every device."""
PLACEMENTS: tuple[str, ...] = get_args(Placement)
"""The valid values of ``placement``, ``("row", "column", "replicated")``."""


def _check_placement(placement: str) -> str:
    return one_of("placement", placement, PLACEMENTS)


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
    data = positive_int("data", data)
    model = positive_int("model", model, allow_none=True)
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


def _check_divisible(shape: tuple[int, ...], placement: str, parts: int) -> None:
    split = {"row": 0, "column": 1}.get(placement)
    if split is not None and shape[split] % parts:
        name = ("input_dim", "output_dim")[split]
        raise ValueError(
            f"A {placement}-sharded table needs {name} divisible by the number of devices on the model "
            f"axis ({parts}). Received a table of shape {tuple(shape)}."
        )
