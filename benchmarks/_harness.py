"""Shared pieces of the sparse-training benchmarks: the header, interleaved timing, peak memory.

Peak memory of a step is measured in a fresh subprocess per case: the script builds the case,
runs one step (so optimizer state that is created lazily exists), resets the kernel's
peak-RSS counter (``echo 5 > /proc/self/clear_refs``), runs a few more steps and reports
``VmHWM - VmRSS``: the memory the steps needed on top of the state they keep. For JAX steps
the compiled executable's ``memory_analysis().temp_size_in_bytes`` is reported as well.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import jax


def header(title: str) -> None:
    print(f"# command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs), "
        f"jax {jax.__version__}, backend {jax.default_backend()}"
    )
    tuned = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    if tuned:
        print(f"# glibc malloc settings: {tuned}")
    print(f"# {title}")


def interleaved(
    runners: dict[str, Callable[[], object]], repeats: int, calls: int = 1
) -> dict[str, list[float]]:
    """ms per call of each runner: one warm-up, then ``repeats`` interleaved rounds of ``calls`` calls."""
    for run in runners.values():
        jax.block_until_ready(run())
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(calls):
                out = run()
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - start) / calls * 1e3)
    return times


def timed(run: Callable[[], object]) -> tuple[float, object]:
    """(ms, output) of one call of ``run``, waiting for its JAX arrays (no warm-up)."""
    start = time.perf_counter()
    out = jax.block_until_ready(run())
    return (time.perf_counter() - start) * 1e3, out


def median(values: list[float]) -> float:
    return statistics.median(values)


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure_peak(step: Callable[[], object], steps: int = 3) -> int:
    """Bytes of peak RSS above the resident set before ``steps`` calls of ``step`` (after one warm-up)."""
    jax.block_until_ready(step())
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = _status("VmRSS")
    for _ in range(steps):
        jax.block_until_ready(step())
    return max(0, _status("VmHWM") - before)


def peak_in_subprocess(script: str, *args: str) -> dict:
    """Runs ``script --memory ARGS`` in a fresh interpreter; returns the JSON it prints last."""
    out = subprocess.run(
        [sys.executable, script, "--memory", *args], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])
