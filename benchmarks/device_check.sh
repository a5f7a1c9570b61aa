#!/usr/bin/env bash
# The prepared device check (correctness smokes + key benchmarks, one table, < 5 minutes) on
# whatever backend JAX finds; writes benchmarks/results/device_check_<backend>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=$(python -c "import jax; print(jax.default_backend())")
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout 300 python benchmarks/device_check.py "$@" \
    | tee "benchmarks/results/device_check_${backend}.txt"
