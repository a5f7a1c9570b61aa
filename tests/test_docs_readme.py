"""The first screen (README.md and docs/index.md): two quickstart commands, then the answer and its output."""

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def fenced(kind: str, text: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", text, re.DOTALL | re.MULTILINE)


def test_quickstart_has_exactly_the_two_commands_before_the_answer():
    quickstart = README[
        README.index("## Quickstart") : README.index("\n## ", README.index("## Quickstart") + 3)
    ]
    commands = fenced("bash", quickstart.split("\n### ")[0])  # a "### Fast test loop" may follow
    assert len(commands) == 2
    demo, tests = (c.strip() for c in commands)
    assert demo.startswith("python3.11 -m venv") and demo.endswith("examples/cat_dog_snake.py")
    assert tests.startswith("python3.11 -m venv") and tests.endswith("-m pytest")
    assert README.index("## Quickstart") < README.index("```python")  # commands come first


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_the_answer_prints_what_the_page_shows(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    code = fenced("python", text)[0]
    shown = fenced("text", text)[0]
    assert text.index(code) < text.index(shown)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"{page} (the answer)", "exec"), {"__name__": "answer"})
    assert out.getvalue() == shown
    assert "SGD moved in step 2: ['cat', 'dog', 'snake']" in shown  # mouse not looked up: SGD leaves it
    assert "Adam moved in step 2: ['cat', 'dog', 'snake', 'mouse']" in shown  # Adam's moments move it


def test_no_nobody_builds_the_one_hot_vector():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert "nobody builds" not in page.read_text(encoding="utf-8"), page.name
