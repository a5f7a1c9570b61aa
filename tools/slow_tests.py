"""Adds the tests a durations report measures as slow to ``tests/slow_tests.txt``.

The fast loop (``pytest -m "not slow and not site and not lint"``) leaves out every test that
``tests/slow_tests.txt`` names (``tests/conftest.py`` marks them ``slow``; the full suite and CI
still run them). To keep it under a minute, measure it and add what has become slow::

    python -m pytest -m "not slow and not site and not lint" -p no:cacheprovider -q \\
        --durations=0 > /tmp/durations.txt
    python tools/slow_tests.py /tmp/durations.txt --threshold 0.25

A test function is slow when one of its parametrizations (setup + call + teardown) took more
than ``--threshold`` seconds; the whole function is then listed, with the time measured. Entries
already in the file stay (an entry leaves by hand only), and so do the ``!``-prefixed ones (tests
kept in the fast loop on purpose, so that each subpackage keeps a few); the file is rewritten
sorted.
Measure on a quiet machine, or scale the threshold with the load (``uptime``).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOW_LIST = ROOT / "tests" / "slow_tests.txt"
DURATION = re.compile(r"^\s*([\d.]+)s (setup|call|teardown)\s+(\S+)")
MEASURED = "# ---- measured"


def function_durations(report: str) -> dict[str, float]:
    """``path::function`` -> the largest setup + call + teardown of its parametrizations."""
    per_item: dict[str, float] = defaultdict(float)
    for line in report.splitlines():
        match = DURATION.match(line)
        if match:
            per_item[match.group(3)] += float(match.group(1))
    per_function: dict[str, float] = defaultdict(float)
    for node_id, seconds in per_item.items():
        function = node_id.split("[", 1)[0]
        per_function[function] = max(per_function[function], seconds)
    return dict(per_function)


def merged(text: str, measured: dict[str, float], threshold: float) -> str:
    """The list ``text`` with every function of ``measured`` above ``threshold`` added below
    its ``# ---- measured`` line (kept entries keep their comments)."""
    head, _, tail = text.partition(MEASURED)
    if not _:
        raise SystemExit(f"{SLOW_LIST} has no {MEASURED!r} line")
    header, _, body = tail.partition("\n")
    entries: dict[str, str] = {}
    for line in body.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            entries[entry.removeprefix("!")] = line.strip()
    listed_modules = {line.split("#", 1)[0].strip() for line in head.splitlines()}
    for function, seconds in measured.items():
        module = function.split("::", 1)[0]
        if seconds > threshold and function not in entries and module not in listed_modules:
            entries[function] = f"{function}  # {seconds:.2f} s"
    lines = [entries[key] for key in sorted(entries)]
    return head + MEASURED + header + "\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="pytest --durations=0 outputs")
    parser.add_argument("--threshold", type=float, default=0.25, help="seconds (default 0.25)")
    arguments = parser.parse_args()
    measured: dict[str, float] = {}
    for report in arguments.reports:
        for function, seconds in function_durations(report.read_text(encoding="utf-8")).items():
            measured[function] = max(measured.get(function, 0.0), seconds)
    before = SLOW_LIST.read_text(encoding="utf-8")
    after = merged(before, measured, arguments.threshold)
    SLOW_LIST.write_text(after, encoding="utf-8")
    added = len(after.splitlines()) - len(before.splitlines())
    print(f"{SLOW_LIST.relative_to(ROOT)}: {added} entries added")


if __name__ == "__main__":
    main()
