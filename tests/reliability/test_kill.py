"""Every save function survives SIGKILL at a random moment: the old or the new result loads, never a mix.

A child process (forked from a server that has jaxembed imported, so a try costs no import)
saves version 1, 2, 3, ... of a result in a loop; once a write has begun, the test kills it
with SIGKILL after a random fraction of a write's duration, then loads what is on disk in
this process. The load must succeed and give
the last completed version or the one being written -- complete and internally consistent
(``_savers`` checks every value) -- and the number of kills that landed while a save was
in progress is printed and must be positive.

The default run makes ``JAXEMBED_KILL_TRIES`` (default 3) kills per save function; the full
run makes more and writes the statistics to a file::

    JAXEMBED_KILL_TRIES=20 JAXEMBED_KILL_REPORT=benchmarks/results/kill_tests.txt \
        python -m pytest tests/reliability/test_kill.py

(``-s`` shows the statistics of any run.)
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from pathlib import Path

import _savers
import pytest

pytestmark = pytest.mark.slow  # about 5 s per save function; outside the fast loop, inside CI

TRIES = int(os.environ.get("JAXEMBED_KILL_TRIES", "3"))
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["_preload", "jaxembed", "jax", "optax", "h5py", "matplotlib.pyplot"])
RESULTS: dict[str, tuple[int, int]] = {}


@pytest.fixture(scope="module", autouse=True)
def _fork_server():
    """Starts the fork server with this folder importable (Python 3.11's server ignores sys.path)."""
    from multiprocessing import forkserver

    here = str(Path(__file__).parent)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, saved) if p)
    try:
        forkserver.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    yield
    report = os.environ.get("JAXEMBED_KILL_REPORT")
    if report and RESULTS:
        import platform

        import jax

        lines = [
            f"# command: JAXEMBED_KILL_TRIES={TRIES} JAXEMBED_KILL_REPORT={report} "
            "python -m pytest tests/reliability/test_kill.py",
            f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs), "
            f"jax {jax.__version__}",
            "# SIGKILL at a random moment of a save; after every kill the old or the new result loaded, "
            "complete (any other outcome fails the test).",
            f"{'save function':40s} {'kills':>6s} {'mid-write':>10s}",
        ]
        for name, (landed, tries) in RESULTS.items():
            lines.append(f"{name:40s} {tries:6d} {landed:10d}")
        Path(report).write_text("\n".join(lines) + "\n")


def kill_during_saves(name: str, tmp_path: Path, tries: int, seed: int) -> tuple[int, int]:
    """Kills ``tries`` saving children; checks the disk after each; returns (mid-write kills, tries)."""
    rng = random.Random(seed)
    landed = 0
    for attempt in range(tries):
        folder = tmp_path / f"try{attempt}"
        folder.mkdir()
        progress = _CONTEXT.Array("q", 3, lock=False)
        child = _CONTEXT.Process(target=_savers.child, args=(name, str(folder), progress), daemon=True)
        child.start()
        deadline = time.monotonic() + 120
        saver = _savers.SAVERS[name]
        while progress[1] < saver.warm:  # warm, and the first version complete, before any kill
            assert child.is_alive(), f"{name}: the saving process died with exit code {child.exitcode}"
            assert time.monotonic() < deadline, f"{name}: the first save did not finish in 120 s"
            time.sleep(0.005)
        duration = progress[2] / 1e6
        # Wait for the next write to begin, then kill at a random moment of its expected span.
        current = progress[1]
        while progress[0] <= current and time.monotonic() < deadline:
            time.sleep(0.0002)
        time.sleep(rng.uniform(0.0, 0.9 * duration))
        child.kill()  # SIGKILL
        child.join()
        started, finished = progress[0], progress[1]
        landed += started > finished
        version = saver.load(folder)
        assert version in (-1, finished, started), (
            f"{name}: after a kill while writing version {started} (version {finished} complete), "
            f"the disk holds version {version}"
        )
    return landed, tries


@pytest.mark.parametrize("name", list(_savers.SAVERS))
def test_a_kill_during_a_save_leaves_the_old_or_the_new_result(name, tmp_path):
    landed, tries = kill_during_saves(name, tmp_path, TRIES, seed=sum(map(ord, name)))
    RESULTS[name] = (landed, tries)
    print(f"\n{name}: {landed} of {tries} kills landed mid-write")
    assert landed > 0, f"{name}: no kill landed while a save was in progress; the test proved nothing"
