"""docs/index.md's "Where to go next" lists the site's navigation, in its order (tools/mkdocs_hooks.py)."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def topic_order() -> list[str]:
    """The guides of the site's navigation, in order, as the MkDocs hook builds it."""
    spec = importlib.util.spec_from_file_location("mkdocs_hooks_for_test", ROOT / "tools" / "mkdocs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    nav = hooks.on_config({"docs_dir": str(DOCS)})["nav"]
    guides = next(entry["Guides"] for entry in nav if "Guides" in entry)
    return [page if isinstance(page, str) else next(iter(page.values())) for page in guides]


def test_where_to_go_next_lists_every_guide_in_navigation_order():
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    section = text[text.index("## Where to go next") :]
    section = section[: section.index("\n## ")] if "\n## " in section[3:] else section
    linked = re.findall(r"^- \[[^\]]+\]\(([\w\-]+\.md)\)", section, re.MULTILINE)
    assert linked == topic_order() + ["benchmarks.md", "api.md"]
