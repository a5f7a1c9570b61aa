"""Placing an NNX model's tables on a mesh, and the shardings of its state."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx
from jax.sharding import Mesh

from jaxembed._mesh import (
    Placement,
    _check_divisible,
    make_mesh,  # noqa: F401 (the examples use it)
    table_sharding,
)
from jaxembed.nn._embedding import embedding_layers

__all__ = ["place_tables", "state_shardings"]


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
    for _, layer in embedding_layers(model):
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
    return nnx.get_named_sharding(state, mesh)
