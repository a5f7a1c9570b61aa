"""Tables that never exist in float32: chunked init, row-sparse steps, orbax save and restore.

Runs benchmarks/table_memory.py in a fresh process (peak RSS per phase from the kernel's VmHWM).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "table_memory.py"


@pytest.mark.skipif(
    not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc peak-RSS counters"
)
def test_a_float16_table_lives_without_a_full_size_float32_temporary(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parent.parent)}
    env.pop("XLA_FLAGS", None)  # one CPU device, as a user would have
    out = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--rows",
            "2000000",
            "--dtype",
            "float16",
            "--json",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=600,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    table, float32 = result["table_mib"], result["float32_table_mib"]
    phases = result["phases"]
    assert result["restored_equal"]
    work = 160  # MiB of fixed workspace: a 65,536-row float32 chunk and its random bits, runtime pages
    # A float32 draw of the whole table would add float32 (= 2x table) MiB on top of the table.
    assert phases["init (chunked, uniform)"]["extra_mib"] < table + work
    assert phases["train step (x3)"]["extra_mib"] < work  # O(batch) temporaries only
    assert phases["save (orbax, whole arrays)"]["extra_mib"] < table + work  # one 16-bit host copy
    # Orbax reads into a host buffer, then copies it into the device array: two 16-bit copies at the
    # peak (no float32 conversion) -- the bound a float32 temporary would break is table + float32.
    assert phases["restore (orbax, whole arrays)"]["extra_mib"] < 2 * table + work
    # Streamed, block by block (64 MiB blocks): a block or two beyond the table being restored.
    block = 64
    assert phases["save (orbax, streamed)"]["extra_mib"] < 2 * block + work
    assert phases["restore (orbax, streamed)"]["extra_mib"] < table + 2 * block + work
    # The whole life fits in what Adam in float32 would need for the table and its moments alone.
    assert result["peak_rss_mib"] < 3 * float32
