"""MkDocs hooks for the jaxembed site (listed under ``hooks:`` in ``mkdocs.yml``).

What they do, so that ``mkdocs build --strict`` stays green while topic pages,
modules and benchmark results are added by different people:

* **Navigation** is built from the pages that exist: the topic pages in
  :data:`TOPIC_ORDER` first (those not written yet are left out), then any other
  ``docs/*.md`` page, then the benchmarks page and the API reference.
* **API pages** are generated, one per public module (every ``jaxembed/*.py``
  not starting with ``_``), each rendering that module's ``__all__`` with
  mkdocstrings. ``docs/api.md`` gets an index of the modules and of the
  top-level ``jaxembed`` names.
* **Every public name is documented, or the build fails**: each name in each
  public module's ``__all__`` (and in ``jaxembed.__all__``) must have a
  docstring and an anchor in the rendered API pages.
* **Benchmarks**: ``docs/benchmarks.md`` gets every committed
  ``benchmarks/results/*.txt`` appended in name order; links in
  any page to ``../benchmarks/results/NAME.txt`` point at that section, and
  other links out of ``docs/`` (to examples, the README) become plain paths.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
import types
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.jaxembed")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "jaxembed"


def _import(name: str) -> types.ModuleType:
    """Imports a jaxembed module, from the source tree when the package is not installed."""
    if str(ROOT) not in sys.path:  # MkDocs restores sys.path after loading this file
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(name)


TOPIC_ORDER = [
    ("How embeddings work", "how-embeddings-work.md"),
    ("Training", "training.md"),
    ("Categorical features", "categorical-features.md"),
    ("Text classification", "text-classification.md"),
    ("Recommendations", "recommendations.md"),
    ("Sparse updates", "sparse-updates.md"),
    ("Migrating from Keras", "keras.md"),
    ("Scaling", "scaling.md"),
    ("Looking at embeddings", "looking-at-embeddings.md"),
    ("Reliability", "reliability.md"),
]
SPECIAL_PAGES = {"index.md", "api.md", "benchmarks.md"}
API_INDEX_MARKER = "<!-- api-index -->"
BENCHMARKS_MARKER = "<!-- benchmark-results -->"


# ------------------------------------------------------------------ public API discovery


def public_modules() -> list[str]:
    """Dotted names of the public modules: ``jaxembed/**`` modules and packages not starting with ``_``."""

    def walk(directory: Path, prefix: str) -> list[str]:
        names = []
        for path in sorted(directory.iterdir()):
            if path.name.startswith("_"):
                continue
            if path.suffix == ".py":
                names.append(f"{prefix}.{path.stem}")
            elif path.is_dir() and (path / "__init__.py").exists():
                names.append(f"{prefix}.{path.name}")
                names.extend(walk(path, f"{prefix}.{path.name}"))
        return names

    return walk(ROOT / PACKAGE, PACKAGE)


def _api_page(module: str) -> str:
    return f"api/{module}.md"


def _module_page_markdown(module: str) -> str:
    return (
        f"# `{module}`\n\n"
        f"::: {module}\n"
        "    options:\n"
        "      show_root_heading: false\n"
        "      show_root_toc_entry: false\n"
        "      members_order: source\n"
        "      filters: public\n"
        "      show_submodules: false\n"
    )


def _undocumented(module_name: str, search_path: Path = ROOT) -> list[str]:
    """Names in the module's ``__all__`` without a docstring of their own.

    Classes and functions are checked at runtime (their ``__doc__``); constants and
    type aliases by static analysis (the string literal after the assignment).
    """
    import griffe

    module = _import(module_name)
    if not (module.__doc__ or "").strip():
        return [f"{module_name} (module docstring)"]
    static = griffe.load(module_name, search_paths=[str(search_path)], resolve_aliases=False)
    missing = []
    for name in getattr(module, "__all__", []):
        if name.startswith("__"):  # __version__ and friends
            continue
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            documented = bool((value.__doc__ or "").strip())
        elif isinstance(value, types.ModuleType):
            documented = bool((value.__doc__ or "").strip())
        else:
            member = static.members.get(name)
            documented = member is not None and member.docstring is not None and bool(member.docstring.value)
        if not documented:
            missing.append(f"{module_name}.{name}")
    return missing


# ------------------------------------------------------------------ hooks


def on_config(config):
    docs = Path(config["docs_dir"])
    nav: list = [{"Home": "index.md"}]
    topics = []
    known = {page for _, page in TOPIC_ORDER}
    for title, page in TOPIC_ORDER:
        if (docs / page).exists():
            topics.append({title: page})
    for path in sorted(docs.glob("*.md")):
        if path.name not in known and path.name not in SPECIAL_PAGES:
            topics.append(path.name)
    if topics:
        nav.append({"Guides": topics})
    nav.append({"Benchmarks": "benchmarks.md"})
    api = [{"Overview": "api.md"}] + [{module: _api_page(module)} for module in public_modules()]
    nav.append({"API reference": api})
    config["nav"] = nav
    return config


def on_files(files: Files, config) -> Files:
    for module in public_modules():
        files.append(File.generated(config, _api_page(module), content=_module_page_markdown(module)))
    return files


def _public_home(name: str, value: Any, exported: dict[str, list[str]] | None = None) -> str | None:
    """The public module whose ``__all__`` lists ``name`` (as the same object): its API page documents it."""
    if exported is None:
        exported = {m: getattr(_import(m), "__all__", []) for m in public_modules()}
    candidates = [m for m, names in exported.items() if name in names and getattr(_import(m), name) is value]
    if value.__module__ in candidates:
        return value.__module__
    return candidates[0] if candidates else None


def _api_index() -> str:
    package = _import(PACKAGE)
    lines = ["## Modules", "", "| module | what it holds |", "|---|---|"]
    for module in public_modules():
        doc = (_import(module).__doc__ or "").strip().splitlines()[0]
        lines.append(f"| [`{module}`]({_api_page(module)}) | {doc} |")
    lines += ["", "## Top-level names", "", "`import jaxembed` gives you:", ""]
    for name in package.__all__:
        value = getattr(package, name)
        if isinstance(value, types.ModuleType):
            lines.append(f"- [`jaxembed.{name}`]({_api_page(value.__name__)})")
        elif name.startswith("__"):
            lines.append(f"- `jaxembed.{name}`: the installed version string.")
        else:
            home = _public_home(name, value) or value.__module__
            lines.append(f"- [`jaxembed.{name}`][{home}.{name}] (from `{home}`)")
    return "\n".join(lines) + "\n"


def _benchmark_sections() -> str:
    results = sorted((ROOT / "benchmarks" / "results").glob("*.txt"))
    if not results:
        return "No benchmark results are committed yet.\n"
    sections = []
    for path in results:
        script = ROOT / "benchmarks" / f"{path.stem}.py"
        source = f"`benchmarks/{script.name}`" if script.exists() else "its benchmark script"
        text = path.read_text(encoding="utf-8").rstrip()
        sections.append(
            f"## {path.stem}\n\nOutput of {source}, committed as `benchmarks/results/{path.name}`:\n\n"
            f"```text\n{text}\n```\n"
        )
    return "\n".join(sections)


_OUTSIDE_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((\.\./[^)#\s]+)(#[^)\s]*)?\)")


def _rewrite_outside_links(markdown: str, page_path: str) -> str:
    depth = page_path.count("/")
    prefix = "../" * depth

    def replace(match: re.Match) -> str:
        label, target = match.group(1), match.group(2)
        resolved = (ROOT / "docs" / Path(page_path).parent / target).resolve()
        try:
            relative = resolved.relative_to(ROOT)
        except ValueError:
            return match.group(0)
        if relative.parts[:2] == ("benchmarks", "results") and resolved.suffix == ".txt":
            return f"[{label}]({prefix}benchmarks.md#{resolved.stem.lower()})"
        if relative.parts and relative.parts[0] == "docs":
            return match.group(0)
        # A link out of the docs folder (an example script, the README): keep the path as text.
        return f"{label} (`{relative.as_posix()}` in the repository)"

    return _OUTSIDE_LINK.sub(replace, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    path = page.file.src_uri
    if path == "api.md":
        if API_INDEX_MARKER not in markdown:
            raise PluginError(f"docs/api.md must contain the marker {API_INDEX_MARKER}")
        markdown = markdown.replace(API_INDEX_MARKER, _api_index())
    elif path == "benchmarks.md":
        if BENCHMARKS_MARKER not in markdown:
            raise PluginError(f"docs/benchmarks.md must contain the marker {BENCHMARKS_MARKER}")
        markdown = markdown.replace(BENCHMARKS_MARKER, _benchmark_sections())
    return _rewrite_outside_links(markdown, path)


def on_post_build(config) -> None:
    """Fails the build if a public name lacks a docstring or an anchor in the API pages."""
    site = Path(config["site_dir"])
    problems = []
    for module in [PACKAGE, *public_modules()]:
        problems += [f"no docstring: {name}" for name in _undocumented(module)]
    for module in public_modules():
        html_path = site / "api" / module / "index.html"
        if not html_path.exists():
            html_path = site / "api" / f"{module}.html"
        html = html_path.read_text(encoding="utf-8") if html_path.exists() else ""
        runtime = _import(module)
        for name in getattr(runtime, "__all__", []):
            if isinstance(getattr(runtime, name), types.ModuleType):
                continue  # a subpackage or submodule has its own API page
            if f'id="{module}.{name}"' not in html:
                problems.append(f"not on the API page {_api_page(module)}: {module}.{name}")
    package = _import(PACKAGE)
    exported = {m: getattr(_import(m), "__all__", []) for m in public_modules()}
    for name in package.__all__:
        value = getattr(package, name)
        if isinstance(value, types.ModuleType) or name.startswith("__"):
            continue
        if _public_home(name, value, exported) is None:
            problems.append(
                f"jaxembed.{name} is in no public module's __all__ (defined in {value.__module__})"
            )
    if problems:
        raise PluginError("Public API not fully documented:\n  " + "\n  ".join(problems))
    log.info("every public name of %d modules is documented", len(public_modules()))
