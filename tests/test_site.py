"""The documentation site: a strict MkDocs build, and the built pages rendered in headless Chromium.

Needs the ``docs`` extra (MkDocs, Material, mkdocstrings, websocket-client) and Debian's
``chromium`` package. Without them these tests skip, naming what is missing; ``.ci/run``
installs both and sets ``JAXEMBED_REQUIRE_SITE_CHECKS=1``, which turns those skips into failures.
"""

from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

pytestmark = pytest.mark.site  # MkDocs build + headless Chromium

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCREENSHOT = ROOT / "build" / "screenshot-home.png"
REQUIRED = os.environ.get("JAXEMBED_REQUIRE_SITE_CHECKS") == "1"
BUILD_TIMEOUT_S = 300
BROWSER_TIMEOUT_S = 60


def require(condition: bool, reason: str) -> None:
    if not condition:
        if REQUIRED:
            pytest.fail(f"JAXEMBED_REQUIRE_SITE_CHECKS=1 but {reason}")
        pytest.skip(reason)


def require_mkdocs() -> None:
    missing = [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python") if not _has(m)]
    require(not missing, f"the `docs` extra is not installed (missing {missing}); pip install -e '.[docs]'")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def mkdocs_build(config: Path, site_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        env=env,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    require_mkdocs()
    site_dir = tmp_path_factory.mktemp("site")
    result = mkdocs_build(ROOT / "mkdocs.yml", site_dir)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert "WARNING" not in result.stderr, result.stderr
    assert "every public name" in result.stderr  # the API completeness check ran
    return site_dir


# ------------------------------------------------------------------ the strict build


def test_strict_build_renders_every_guide_and_api_page(site):
    for page in DOCS.glob("*.md"):
        html = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert html.exists(), f"{page.name} was not rendered"
    import jaxembed

    api_pages = sorted(p.parent.name for p in (site / "api").glob("jaxembed.*/index.html"))
    assert "jaxembed.viz" in api_pages and "jaxembed.ops" in api_pages
    for module_name in api_pages:
        module = sys.modules.get(module_name) or __import__(module_name, fromlist=["_"])
        html = (site / "api" / module_name / "index.html").read_text(encoding="utf-8")
        for name in module.__all__:
            if isinstance(getattr(module, name), types.ModuleType):  # a subpackage: its own page
                assert f"{module_name}.{name}" in api_pages, f"{module_name}.{name} has no API page"
                continue
            assert f'id="{module_name}.{name}"' in html, f"{module_name}.{name} missing from its API page"
    index = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in jaxembed.__all__:
        assert f"jaxembed.{name}" in index


def test_benchmarks_page_shows_every_committed_result(site):
    html = (site / "benchmarks" / "index.html").read_text(encoding="utf-8")
    results = sorted((ROOT / "benchmarks" / "results").glob("*.txt"))
    for path in results:
        first_line = path.read_text(encoding="utf-8").splitlines()[0].strip()
        assert f'id="{path.stem.lower()}"' in html
        assert _html_text(first_line) in html, f"{path.name} is not on the benchmarks page"


def _html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _config_copy(tmp_path: Path, extra_page: str) -> Path:
    """A copy of mkdocs.yml whose docs folder is a copy of docs/ plus one extra page."""
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    (docs / "broken.md").write_text(extra_page, encoding="utf-8")
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    text = re.sub(r"^docs_dir: .*$", f"docs_dir: {docs}", text, flags=re.MULTILINE)
    text = text.replace("  - tools/mkdocs_hooks.py", f"  - {ROOT / 'tools' / 'mkdocs_hooks.py'}")
    text = text.replace("paths: [.]", f"paths: [{ROOT}]")
    config = tmp_path / "mkdocs.yml"
    config.write_text(text, encoding="utf-8")
    return config


def test_strict_build_fails_on_a_broken_link(tmp_path):
    require_mkdocs()
    config = _config_copy(tmp_path, "# Broken\n\nSee [the missing page](no-such-page.md).\n")
    result = mkdocs_build(config, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr


def test_undocumented_public_name_is_reported(tmp_path, monkeypatch):
    require_mkdocs()
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package."""\n')
    (package / "things.py").write_text(
        '"""Things."""\n__all__ = ["documented", "bare", "CONSTANT"]\n'
        'def documented():\n    """Has a docstring."""\n'
        "def bare():\n    pass\n"
        "CONSTANT = 3\n"
    )
    spec = importlib.util.spec_from_file_location("jaxembed_site_hooks", ROOT / "tools" / "mkdocs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert hooks._undocumented("fakepkg.things", search_path=tmp_path) == [
        "fakepkg.things.bare",
        "fakepkg.things.CONSTANT",
    ]


# ------------------------------------------------------------------ the browser check


class DevTools:
    """A minimal Chrome DevTools Protocol client: commands in, events collected."""

    def __init__(self, url: str):
        import websocket

        self.socket = websocket.create_connection(url, timeout=BROWSER_TIMEOUT_S, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(self.socket.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            return
        while time.monotonic() < deadline:
            self.socket.settimeout(max(deadline - time.monotonic(), 0.01))
            event = json.loads(self.socket.recv())
            self.events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return
        raise TimeoutError(f"no {method} within {timeout} s")

    def drain(self, seconds: float) -> None:
        import websocket

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.socket.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                self.events.append(json.loads(self.socket.recv()))
            except websocket.WebSocketTimeoutException:
                return

    def close(self) -> None:
        self.socket.close()


def console_errors(events: list[dict], session: str) -> list[str]:
    errors = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            description = details.get("exception", {}).get("description", "")
            errors.append(f"exception: {details.get('text')} {description}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console.error: " + " ".join(str(a.get("value")) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            errors.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
    return errors


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = chromium_path()
    require(
        executable is not None, "no Chromium: install Debian's `chromium` package (apt-get install chromium)"
    )
    require(_has("websocket"), "websocket-client (the `docs` extra) is not installed")
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [
            executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            assert process.poll() is None, f"chromium exited with code {process.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port in time"
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        client = DevTools(f"ws://127.0.0.1:{port}{path}")
        yield client
        client.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def render(browser: DevTools, url: str, *, screenshot: Path | None = None) -> tuple[dict, list[str]]:
    """Opens ``url`` in a new tab; returns what the page shows and the errors it logged."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": url}, session=session)
        browser.wait_for("Page.loadEventFired", session, BROWSER_TIMEOUT_S)
        browser.drain(0.5)  # late console messages and script errors
        state = browser.send(
            "Runtime.evaluate",
            {
                "expression": """JSON.stringify({
                    title: document.title,
                    h1: (document.querySelector('article h1') || {}).textContent || '',
                    images: [...document.querySelectorAll('article img')].map(
                        i => ({src: i.getAttribute('src'), loaded: i.complete && i.naturalWidth > 0})),
                    text: document.body.innerText.length,
                })""",
                "returnByValue": True,
            },
            session=session,
        )
        if screenshot is not None:
            data = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            temporary = screenshot.with_name(f".{screenshot.name}.tmp")
            temporary.write_bytes(base64.b64decode(data))
            temporary.replace(screenshot)
        return json.loads(state["result"]["value"]), console_errors(browser.events, session)
    finally:
        browser.send("Target.closeTarget", {"targetId": target})


def main_pages() -> list[tuple[str, str, int]]:
    """(url path, source page, number of figures in its Markdown) for every guide and index page."""
    pages = [("/", "index.md"), ("/benchmarks/", "benchmarks.md"), ("/api/", "api.md")]
    pages += [
        (f"/{p.stem}/", p.name)
        for p in sorted(DOCS.glob("*.md"))
        if p.name not in ("index.md", "benchmarks.md", "api.md")
    ]
    pages.append(("/api/jaxembed.viz/", ""))
    figure = re.compile(r"!\[[^\]]*\]\(images/[^)]+\)")
    return [
        (url, source, len(figure.findall((DOCS / source).read_text(encoding="utf-8"))) if source else 0)
        for url, source in pages
    ]


@pytest.mark.parametrize("url,source,figures", main_pages(), ids=[p[0] for p in main_pages()])
def test_page_renders_in_chromium_without_errors(served, browser, url, source, figures):
    screenshot = SCREENSHOT if url == "/" else None
    state, errors = render(browser, served + url, screenshot=screenshot)
    assert errors == [], f"{url} logged errors: {errors}"
    assert "jaxembed" in state["title"]
    assert state["h1"].strip(), f"{url} has no heading"
    assert state["text"] > 200, f"{url} shows almost no text"
    assert len(state["images"]) >= figures, (
        f"{url}: {figures} figures in {source}, {state['images']} rendered"
    )
    broken = [image["src"] for image in state["images"] if not image["loaded"]]
    assert broken == [], f"{url}: figures that did not load: {broken}"
    if screenshot is not None:
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank image


def test_the_browser_check_sees_errors(served, browser, site):
    """The check can fail: a page with a script error and a missing image is reported."""
    (site / "bad.html").write_text(
        "<html><head><title>jaxembed bad</title></head><body><article><h1>Bad</h1>"
        '<img src="images/missing.png"><script>undefined_function()</script></article></body></html>'
    )
    state, errors = render(browser, served + "/bad.html")
    assert any("undefined_function" in e for e in errors), errors
    assert any("404" in e and "missing.png" in e for e in errors), errors
    assert state["images"] == [{"src": "images/missing.png", "loaded": False}]


def test_docstring_markup_becomes_markdown(site):
    """Sphinx roles and math blocks in docstrings do not reach the rendered API pages raw."""
    for html_path in (site / "api").glob("jaxembed.*/index.html"):
        html = html_path.read_text(encoding="utf-8")
        for raw in (":func:", ":class:", ":mod:", ":meth:", ".. math::"):
            assert raw not in html, f"{raw} left raw in {html_path.parent.name}"
    ops_html = (site / "api" / "jaxembed.ops" / "index.html").read_text(encoding="utf-8")
    assert '<span class="k">\\text</span>' in ops_html  # the math block, highlighted as LaTeX code
