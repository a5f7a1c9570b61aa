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
:func:`jaxembed.inspect.collectives` reads a compiled step's HLO and lists the collectives
it runs and their bytes, so tests and benchmarks can show that nothing gathers the table.
Checkpoints of placed tables (restored onto any mesh): :func:`jaxembed.checkpoint.save_checkpoint`.

Examples:
    >>> mesh = make_mesh(model=2, devices=jax.devices()[:2])
    >>> table = jax.device_put(jnp.arange(8.0).reshape(4, 2), table_sharding(mesh, "row"))
    >>> [shard.data.shape for shard in table.addressable_shards]
    [(2, 2), (2, 2)]
    >>> sharded_lookup(table, jnp.array([3, 0]), mesh).tolist()
    [[6.0, 7.0], [0.0, 1.0]]
"""

from jaxembed._mesh import PLACEMENTS, Placement, make_mesh, table_sharding, table_spec, variable_metadata
from jaxembed.inspect import Collective, collectives, communicated_bytes  # noqa: F401 (moved; old spelling)
from jaxembed.sharding._lookup import gathered_lookup, sharded_lazy_update, sharded_lookup
from jaxembed.sharding._placement import place_tables, state_shardings

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
]
# Collective, collectives and communicated_bytes live in jaxembed.inspect; the names here stay for
# code written before the move.
