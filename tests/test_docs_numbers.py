"""Every number quoted next to a results file in docs/ occurs in that file (convention: CONTRIBUTING.md).

A *block* of a page is a paragraph, a list item or a table (text between blank lines; a list
item ends where the next one starts). A block **cites** a results file when it links to or
names a path under ``benchmarks/results/`` or ``examples/results/``, or when an HTML comment
``<!-- results: PATH -->`` stands right before it; a table or list right after a citing
paragraph that ends with ``:`` inherits the citation. Every number in a citing block must occur
in one of the cited files: the same value, or a value in the file that rounds to it at the
number of decimals the page writes (``1.4`` matches ``1.42``; ``10⁶`` matches ``1000000``).
Numbers inside inline code (``(10⁶, 64)`` in backticks) and targets (a number right after
``≥``, ``≤``, ``<``, ``>`` or the word "target") are not measurements and are not checked.
Fenced code blocks are not checked. ``docs/benchmarks.md`` embeds the files themselves.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.glob("**/*.md") if p.name != "benchmarks.md")

RESULTS_PATH = re.compile(r"(?:\.\./)?((?:benchmarks|examples)/results/[\w.\-/]+\.(?:txt|json|csv|md))")
MARKER = re.compile(r"<!--\s*results:\s*([^>]+?)\s*-->")
SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
# 4·10⁶, 10⁶, 1,000,000, 3.86, 21.6 (a leading minus or sign is not part of the number)
NUMBER = re.compile(
    r"(?:(\d+(?:\.\d+)?)\s*[·×x]\s*)?10([⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+)|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
)
TARGET = re.compile(r"(?:[≥≤<>]|target\S*)\s*$", re.IGNORECASE)
FILE_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def blocks(text: str) -> list[str]:
    """The page's paragraphs, list items and tables, without fenced code."""
    text = re.sub(r"^```.*?^```[^\n]*$", "", text, flags=re.DOTALL | re.MULTILINE)
    out: list[str] = []
    for chunk in re.split(r"\n\s*\n", text):
        items = re.split(r"\n(?=[*\-] |\d+\. )", chunk)
        out.extend(item for item in items if item.strip())
    return out


def numbers_of(block: str) -> list[tuple[str, float, int]]:
    """(as written, value, decimals) of each checked number in ``block``."""
    prose = re.sub(r"`[^`]*`", " ", block)  # inline code
    prose = re.sub(r"\]\([^)]*\)", "]", prose)  # link targets
    prose = re.sub(r"<!--.*?-->", " ", prose, flags=re.DOTALL)
    found = []
    for match in NUMBER.finditer(prose):
        if TARGET.search(prose[: match.start()]):
            continue
        if match.start() > 0 and (prose[match.start() - 1].isalnum() or prose[match.start() - 1] == "_"):
            continue  # part of a name: float32, 2-D, (x86_64)
        written = match.group(0)
        if match.group(2) is not None:
            mantissa = float(match.group(1) or 1)
            value = mantissa * 10 ** int(match.group(2).translate(SUPERSCRIPT))
            found.append((written, value, -1))
        else:
            plain = written.replace(",", "")
            decimals = len(plain.split(".")[1]) if "." in plain else 0
            found.append((written, float(plain), decimals))
    return found


def file_values(path: Path) -> list[float]:
    return [float(m.replace(",", "")) for m in FILE_NUMBER.findall(path.read_text(encoding="utf-8"))]


def occurs(value: float, decimals: int, values: list[float]) -> bool:
    for v in values:
        if v == value or (decimals >= 0 and round(v, decimals) == value):
            return True
        if decimals == 0 and value >= 100 and abs(v - value) <= 0.5:  # 108 for 107.62
            return True
    return False


def citing_blocks(page: Path) -> list[tuple[str, list[str]]]:
    """(block, cited files) for each block of ``page`` that cites a results file."""
    out = []
    inherited: list[str] = []
    pending_marker: list[str] = []
    for block in blocks(page.read_text(encoding="utf-8")):
        markers = MARKER.findall(block)
        stripped = MARKER.sub("", block).strip()
        if markers and not stripped:
            pending_marker = [m.strip() for m in markers]
            continue
        cited = sorted(set(RESULTS_PATH.findall(block)) | set(pending_marker) | {m.strip() for m in markers})
        is_table_or_list = stripped.startswith(("|", "* ", "- "))
        if not cited and is_table_or_list and inherited:
            cited = inherited
        if cited:
            out.append((stripped, cited))
        if not is_table_or_list:
            inherited = cited if cited and stripped.rstrip().endswith(":") else []
        pending_marker = []
    return out


CASES = [(page, block, cited) for page in PAGES for block, cited in citing_blocks(page)]


def test_the_convention_finds_the_cited_blocks():
    cited_pages = {page.name for page, _, _ in CASES}
    assert {"sparse-updates.md", "training.md", "keras.md"} <= cited_pages


@pytest.mark.parametrize(
    ("page", "block", "cited"),
    CASES,
    ids=[f"{page.name}:{block[:40]}" for page, block, _ in CASES],
)
def test_numbers_next_to_a_results_file_occur_in_it(page, block, cited):
    missing_files = [c for c in cited if not (ROOT / c).is_file()]
    assert not missing_files, f"{page.name} cites results files that do not exist: {missing_files}"
    values = [v for c in cited for v in file_values(ROOT / c)]
    missing = [
        written for written, value, decimals in numbers_of(block) if not occurs(value, decimals, values)
    ]
    assert not missing, f"{page.name}: {missing} quoted next to {cited} but not found there, in:\n{block}"


def test_the_checker_catches_a_number_that_is_not_in_the_file():
    block = (
        "A step takes 66 ms and 191.5 ms, 10⁶ rows ([train_step.txt](../benchmarks/results/train_step.txt))."
    )
    values = file_values(ROOT / "benchmarks/results/train_step.txt") + [66.0, 1e6]
    found = {written: occurs(value, decimals, values) for written, value, decimals in numbers_of(block)}
    assert found["66"] and found["10⁶"]
    assert not found["191.5"] or 191.5 in values
