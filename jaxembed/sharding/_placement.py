"""Placing an NNX model's tables on a mesh, and the shardings of its state.

A layer's tables are the variables of its parts (:mod:`jaxembed.tables`): the dense or quantized
table part, the LoRA part, and a :class:`jaxembed.ReversibleEmbedding`'s untied reverse kernel.
Each variable's axes play one of two roles -- the vocabulary (``input_dim``) or the features
(``output_dim``) -- or neither (LoRA's rank, int4 groups). ``"row"`` splits every variable along
its vocabulary axis (so each device holds whole rows, and their scales and LoRA rows);
``"column"`` splits the feature axis of the arrays that have one of full width (the table, LoRA's
``B``, the reverse kernel) and keeps the small per-row scales and zero points whole on each
device; ``"replicated"`` copies everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxembed._mesh import (
    Placement,
    _check_placement,
    make_mesh,  # noqa: F401 (the examples use it)
)
from jaxembed.nn._embedding import Embedding, embedding_layers
from jaxembed.tables._parts import DenseTable, LoRAPart, QuantizedTablePart, TablePart
from jaxembed.tables._reverse import ReverseKernel

__all__ = ["place_tables", "state_shardings"]

Role = Literal["rows", "features"] | None
"""What an axis of a table variable indexes: vocabulary rows, feature columns, or neither."""

_DIM_OF_ROLE = {"rows": "input_dim", "features": "output_dim"}


def _quantized_axes(part: QuantizedTablePart) -> dict[str, tuple[Role, ...]]:
    # values (input_dim, output_dim or packed int4 width); scales/zeros (input_dim,) or (input_dim, n_groups)
    grouped = "embeddings_zero" in part.names
    side: tuple[Role, ...] = ("rows", None) if grouped else ("rows",)
    return {"embeddings": ("rows", "features"), "embeddings_scale": side, "embeddings_zero": side}


def _reverse_axes(part: ReverseKernel) -> dict[str, tuple[Role, ...]]:
    # Keras's transposed layout: values (output_dim or packed, input_dim); scales (input_dim,) or
    # (n_groups, input_dim).
    grouped = "reverse_embeddings_zero" in part.names
    side: tuple[Role, ...] = (None, "rows") if grouped else ("rows",)
    return {
        "reverse_embeddings": ("features", "rows"),
        "reverse_embeddings_scale": side,
        "reverse_embeddings_zero": side,
    }


# The axis roles of each part kind's variables, by variable name (one row per part class). This
# table is the one place outside jaxembed.tables that knows the parts' layouts; it belongs on the
# parts themselves (a method per part) and moves there when the parts grow one.
_AXES: dict[type, Callable[[Any], dict[str, tuple[Role, ...]]]] = {
    DenseTable: lambda part: {"embeddings": ("rows", "features")},
    QuantizedTablePart: _quantized_axes,
    LoRAPart: lambda part: {"lora_embeddings_a": ("rows", None), "lora_embeddings_b": (None, "features")},
    ReverseKernel: _reverse_axes,
}


def _parts_of(layer: Embedding) -> tuple[TablePart, ...]:
    """The layer's parts that hold variables: the table part, LoRA, a reverse kernel."""
    reverse = getattr(layer, "reverse_part", None)
    return tuple(layer.parts) + (() if reverse is None else (reverse,))


def table_variables(model: Any) -> Iterator[tuple[tuple[Any, ...], str, nnx.Variable, tuple[Role, ...]]]:
    """Every table variable of every :class:`jaxembed.Embedding` in ``model``, with its axis roles.

    Asks each layer for its parts (table part, LoRA part, a reversible layer's untied reverse
    kernel) and each part for its variables; this is the one walk :func:`place_tables` uses.

    Yields:
        ``(layer_path, name, variable, roles)``: ``roles`` gives, per axis of the variable,
        ``"rows"`` (the vocabulary axis), ``"features"`` (the full-width feature axis) or ``None``.

    Examples:
        >>> layer = jaxembed.Embedding(8, 4, rngs=0, lora_rank=2)
        >>> for _, name, variable, roles in table_variables(layer):
        ...     print(name, variable.shape, roles)
        embeddings (8, 4) ('rows', 'features')
        lora_embeddings_a (8, 2) ('rows', None)
        lora_embeddings_b (2, 4) (None, 'features')
    """
    for path, layer in embedding_layers(model):
        for part in _parts_of(layer):
            axes = _AXES.get(type(part))
            if axes is None:
                raise TypeError(
                    f"place_tables does not know how to place a {type(part).__name__} part (layer at path "
                    f"{path}); add its variables' axis roles to jaxembed/sharding/_placement.py."
                )
            roles = axes(part)
            for name, variable in layer.part_variables(part).items():
                if name not in roles:
                    raise TypeError(
                        f"place_tables does not know the axes of {type(part).__name__}'s variable {name!r} "
                        f"(layer at path {path}); add them to jaxembed/sharding/_placement.py."
                    )
                yield path, name, variable, roles[name]


def _spec(
    roles: tuple[Role, ...], placement: str, axis: str, parts: int, where: str, shape: tuple[int, ...]
) -> PartitionSpec:
    split = {"row": "rows", "column": "features"}.get(placement)
    names = []
    for position, role in enumerate(roles):
        if role is not None and role == split:
            if shape[position] % parts:
                raise ValueError(
                    f"A {placement}-sharded table needs {_DIM_OF_ROLE[role]} divisible by the number of "
                    f"devices on the {axis!r} axis ({parts}). Received {where} of shape {tuple(shape)}."
                )
            names.append(axis)
        else:
            names.append(None)
    return PartitionSpec(*names)


def place_tables(model: Any, mesh: Mesh, placement: Placement, *, axis: str = "model") -> Any:
    """Places every :class:`jaxembed.Embedding` table of an NNX ``model`` on ``mesh``, in place.

    Every variable of every part is placed: the dense or quantized table (with its scales and
    zero points), LoRA's factors, a :class:`jaxembed.ReversibleEmbedding`'s untied reverse kernel.
    ``"row"`` splits each along its vocabulary axis; ``"column"`` splits the table, LoRA's ``B``
    and the reverse kernel along their feature axis (per-row scales, zero points and LoRA's ``A``
    stay whole on each device); ``"replicated"`` copies each. Each variable is moved with
    ``jax.device_put`` and gets Flax's ``out_sharding`` metadata, so ``nnx.get_named_sharding``
    (and :func:`state_shardings`) report the placement. All sizes are checked before anything
    moves. Returns ``model``.

    Args:
        model: an NNX module (or graph of modules) holding Embedding layers.
        mesh: the device mesh.
        placement: ``"row"``, ``"column"`` or ``"replicated"``.
        axis: the mesh axis that splits the tables.

    Returns:
        ``model``, its tables placed.

    Raises:
        ValueError: for an unknown ``placement`` or ``axis``, or a split axis that the number of
            devices on ``axis`` does not divide (the message names the variable and its shape).

    Examples:
        >>> layer = place_tables(jaxembed.Embedding(16, 4, rngs=0), make_mesh(), "row")
        >>> layer.embeddings.out_sharding, layer.embeddings[...].addressable_shards[0].data.shape
        (('model', None), (2, 4))
        >>> layer = jaxembed.Embedding(16, 8, rngs=0)
        >>> layer.quantize("int8")
        >>> layer = place_tables(layer, make_mesh(), "column")
        >>> layer.embeddings.out_sharding, layer.embeddings_scale.out_sharding
        ((None, 'model'), (None,))
    """
    _check_placement(placement)
    if axis not in mesh.axis_names:
        raise ValueError(f"`axis` must name an axis of the mesh {mesh.axis_names}. Received: axis={axis!r}.")
    parts = mesh.shape[axis]
    planned = []
    for path, name, variable, roles in table_variables(model):
        where = name if not path else f"{name} of the layer at {'/'.join(map(str, path))}"
        planned.append((variable, _spec(roles, placement, axis, parts, where, variable.shape)))
    for variable, spec in planned:
        variable.set_metadata(out_sharding=tuple(spec), mesh=mesh)
        variable[...] = jax.device_put(variable[...], NamedSharding(mesh, spec))
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
    return nnx.get_named_sharding(state, mesh)
