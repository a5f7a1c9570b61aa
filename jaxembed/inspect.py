"""Compiled-step diagnostics: the collectives a compiled program runs and the bytes they move.

:func:`collectives` reads a compiled step's HLO and lists the collectives it runs and their
bytes, so tests and benchmarks can show that nothing gathers an embedding table.

Examples:
    >>> [c.op for c in collectives("%x = f32[4,2]{1,0} all-reduce(f32[4,2]{1,0} %y), to_apply=%add")]
    ['all-reduce']
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

__all__ = ["Collective", "collectives", "communicated_bytes"]

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
        >>> from jaxembed.sharding import gathered_lookup, make_mesh, sharded_lookup, table_sharding
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
