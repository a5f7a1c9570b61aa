"""Runs benchmark scripts from two checkouts of jaxembed in alternation (A B B A A B ...) and compares them.

    python benchmarks/compare_commits.py --before /path/to/old/checkout [--after .] [--rounds 2]
        [--scripts sparse_train_step forward_lookup] [--out benchmarks/results/redesign]

Each round runs every script once from each checkout, one after the other, as separate
processes with ``PYTHONPATH`` set to that checkout (``nice -n 5``), so load on a shared
machine falls on both sides alike; the order alternates (before first in odd rounds, after
first in even ones), so an advantage of running first or second cancels too. Every timing
row of every run is parsed; the table gives, per row, the median over rounds of each side and
``after / before`` (above 1 = slower now). The raw outputs of every run, round by round, go to
``OUT_SCRIPT.txt`` beside the summary ``OUT.txt``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

# Rows whose label changed with the new API: before-label -> after-label.
RENAMED = {"jaxembed row_sparse=True": "jaxembed row_sparse(adam)"}

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def parse_rows(output: str) -> dict[str, list[float]]:
    """``label -> [numbers]`` for each table row: leading words (and leading integers such as a
    vocabulary size) form the label; the float columns after it, up to the first ``...x`` ratio
    column, are its numbers. Comment lines (``#``) and headers are skipped."""
    rows: dict[str, list[float]] = {}
    section = ""
    for line in output.splitlines():
        if not line.strip() or line.startswith("#"):
            if line.startswith("# one-hot"):
                section = "one-hot V="
            continue
        tokens = line.split()
        label, numbers = [], []
        for token in tokens:
            if token.endswith("x") and _NUMBER.match(token[:-1].replace(",", "")):
                break
            if "." in token and _NUMBER.match(token):
                numbers.append(float(token))
            elif numbers:
                break
            else:
                label.append(token)
        if numbers:
            name = " ".join(label)
            for old, new in RENAMED.items():
                name = name.replace(old, new)
            rows[section + name] = numbers
    return rows


def run(checkout: Path, script: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    command = ["nice", "-n", "5", sys.executable, str(checkout / "benchmarks" / f"{script}.py")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{script} from {checkout} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scripts", nargs="+", default=["sparse_train_step", "forward_lookup"])
    parser.add_argument("--out", type=Path, default=None, help="prefix of the files to write")
    parser.add_argument(
        "--summarize",
        action="store_true",
        help="only re-read the raw outputs OUT_SCRIPT.txt of an earlier run",
    )
    args = parser.parse_args()
    before_rev = subprocess.run(
        ["git", "-C", str(args.before), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    after_rev = subprocess.run(
        ["git", "-C", str(args.after), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"# command: python benchmarks/compare_commits.py --before <checkout of {before_rev}> "
        f"--rounds {args.rounds} --scripts {' '.join(args.scripts)}",
        f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs); "
        f"before = {before_rev}, after = {after_rev} (+ uncommitted edits, if any)",
        f"# each round runs each script from both checkouts, before first in odd rounds and after first "
        f"in even ones (nice -n 5); "
        f"median over {args.rounds} rounds of each row's median ms; after / before > 1 means slower now",
    ]
    for script in args.scripts:
        outputs: dict[str, list[str]] = {"before": [], "after": []}
        if args.summarize:
            raw = Path(f"{args.out}_{script}.txt").read_text(encoding="utf-8")
            for block in re.split(r"^### ", raw, flags=re.MULTILINE)[1:]:
                side = block.split()[0]
                outputs[side].append(block.split("\n", 1)[1])
        else:
            for round_ in range(args.rounds):
                # A B, then B A: whatever the second run of a pair gains or loses from the first
                # (page cache, memory the first left behind) falls on both sides alike.
                order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
                for side in order:
                    outputs[side].append(run(args.before if side == "before" else args.after, script))
        if args.out is not None and not args.summarize:
            runs = [
                f"### {side} ({before_rev if side == 'before' else after_rev}), round {i + 1}\n{text}"
                for i in range(args.rounds)
                for side, text in (("before", outputs["before"][i]), ("after", outputs["after"][i]))
            ]
            Path(f"{args.out}_{script}.txt").write_text("\n".join(runs), encoding="utf-8")
        parsed = {side: [parse_rows(text) for text in texts] for side, texts in outputs.items()}
        lines.append(f"\n## {script}")
        lines.append(f"{'row':48} {'column':>6} {'before':>9} {'after':>9} {'after/before':>13}")
        worst = 0.0
        for label in parsed["after"][0]:
            if not all(label in p for p in parsed["before"] + parsed["after"]):
                continue
            for column in range(len(parsed["after"][0][label])):
                before = statistics.median(p[label][column] for p in parsed["before"])
                after = statistics.median(p[label][column] for p in parsed["after"])
                if column > 0 and not label.startswith("one-hot"):
                    continue  # the min / ratio columns: the median column is compared
                ratio = after / before
                worst = max(worst, ratio) if "jaxembed" in label or label.startswith("one-hot") else worst
                lines.append(f"{label[:48]:48} {column:>6} {before:9.3f} {after:9.3f} {ratio:12.3f}x")
        lines.append(f"# {script}: worst after/before over jaxembed paths = {worst:.3f}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out is not None:
        Path(f"{args.out}.txt").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
