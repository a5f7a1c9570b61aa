"""benchmarks/plots.py draws every plot of docs/benchmarks.md from the committed results files."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "benchmarks" / "plots.py"


def test_the_plot_script_draws_every_plot_the_benchmarks_page_shows(tmp_path):
    pytest.importorskip("matplotlib", reason="the plots need matplotlib (the docs/examples extras)")
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import plots
    finally:
        sys.path.remove(str(SCRIPT.parent))
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    written = sorted(Path(line).name for line in out.stdout.split())
    assert written == sorted(plots.PLOTS)
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    for name in plots.PLOTS:
        drawn = tmp_path / name
        assert drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and drawn.stat().st_size > 10_000
        assert f"images/{name}" in page, f"docs/benchmarks.md does not show {name}"
        assert (ROOT / "docs" / "images" / name).exists(), f"docs/images/{name} is not committed"


def test_the_readers_take_the_committed_numbers():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import plots
    finally:
        sys.path.remove(str(SCRIPT.parent))
    steps = plots.read_step_times(plots.RESULTS / "sparse_optimizer_step.txt")
    assert {"jaxembed lazy adam", "optax dense adam", "torch SparseAdam", "torch Adam"} <= set(steps)
    assert [v for v, _ in steps["jaxembed lazy adam"]] == sorted(v for v, _ in steps["jaxembed lazy adam"])
    lookups = dict(plots.read_lookup(plots.RESULTS / "forward_lookup.txt"))
    assert "memcpy of the output (ceiling)" in lookups and lookups["memcpy of the output (ceiling)"] > 0
    cases = plots.read_max_table(plots.RESULTS / "max_table.jsonl")
    assert cases and all(c["status"] == "ok" and c["peak_rss_gib"] > 0 for c in cases)
