"""Compares the compiled XLA programs of jaxembed's jitted forward paths between two checkouts.

    python benchmarks/compare_hlo.py --before /path/to/old/checkout [--after .]

Timings on a shared machine move by more than the 5 % a redesign may cost, even for code that
did not change. A compiled program that is the same instruction for instruction cannot be
slower, whatever the timings say. Each checkout compiles, in its own process (``PYTHONPATH`` set
to it), the paths below for the shapes of ``benchmarks/forward_lookup.py``; the optimized HLO is
compared after dropping what does not run (instruction numbering, source locations, metadata).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import subprocess
import sys
from pathlib import Path

# Runs inside each checkout's process: prints {path: optimized HLO text} as JSON.
_COMPILE = r"""
import json, sys
import jax, jax.numpy as jnp
from flax import nnx
import jaxembed
assert jaxembed.__file__.startswith(sys.argv[1]), jaxembed.__file__
from jaxembed import ops

table = jax.ShapeDtypeStruct((1_000_000, 64), jnp.float32)
ids = jax.ShapeDtypeStruct((256, 128), jnp.int32)
layer = jaxembed.Embedding(1_000, 64, rngs=0)
graphdef, state = nnx.split(layer)
small = jax.ShapeDtypeStruct((4096, 64), jnp.float32)
small_ids = jax.ShapeDtypeStruct((4096,), jnp.int32)
paths = {
    "ops.lookup (take), jax.jit": jax.jit(ops.lookup).lower(table, ids),
    "layer, split + jax.jit": jax.jit(lambda s, i: nnx.merge(graphdef, s)(i)).lower(state, ids),
    "ops.lookup (one_hot, V=4096), jax.jit": jax.jit(
        lambda t, i: ops.lookup(t, i, method="one_hot")
    ).lower(small, small_ids),
}
print(json.dumps({name: lowered.compile().as_text() for name, lowered in paths.items()}))
"""


def instructions(hlo: str) -> list[str]:
    """The program's instructions with numbering, metadata and backend configs removed."""
    kept = []
    for line in hlo.splitlines():
        text = line.strip()
        if not text.startswith(("%", "ROOT", "ENTRY", "}")):
            continue
        text = re.sub(r"(%[\w\-]+?)\.\d+", r"\1", text)
        text = re.sub(r",?\s*(metadata|backend_config)=\{[^}]*\}", "", text)
        text = re.sub(r",?\s*backend_config=\S+", "", text)
        text = re.sub(r",?\s*stack_frame_id=\d+", "", text)
        kept.append(text)
    return kept


def compile_paths(checkout: Path) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", _COMPILE, str(checkout.resolve())],
        cwd=checkout,  # ``python -c`` puts the working folder first on sys.path
        env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise SystemExit(f"compiling from {checkout} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    revisions = [
        subprocess.run(
            ["git", "-C", str(p), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        for p in (args.before, args.after)
    ]
    before, after = compile_paths(args.before), compile_paths(args.after)
    print(f"# command: python benchmarks/compare_hlo.py --before <checkout of {revisions[0]}>")
    print(f"# before = {revisions[0]}, after = {revisions[1]}; optimized HLO on the CPU backend")
    print(f"{'path':42} {'before':>7} {'after':>7}  program")
    for name in after:
        old, new = instructions(before[name]), instructions(after[name])
        verdict = "identical" if old == new else "differs"
        print(f"{name:42} {len(old):7d} {len(new):7d}  {verdict}")
        if old != new:
            changed = [d for d in difflib.unified_diff(old, new, lineterm="", n=0) if d[:1] in "+-"]
            print(f"#   {len(changed) - 2} instruction lines changed")


if __name__ == "__main__":
    main()
