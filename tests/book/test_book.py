"""The book, built once in quick mode: every chapter executes, the build has no warning, every page reads in a browser.

One quick-mode build (``DEEPSTEM_QUICK=1``, ``jupyter-book build -W -n``) executes every
chapter (MyST Markdown notebooks) exactly once; the tests below read what it left:
the executed notebooks, myst-nb's error reports and the HTML, which headless Chromium
then opens page by page (title, images loaded, math typeset by the bundled MathJax,
no console error).

The browser part needs Debian's ``chromium`` and ``chromium-driver``. Without them it is
skipped, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


CHAPTERS = [f for f in _toc_files() if f.startswith("notebooks/")]


@pytest.fixture(scope="session")
def quick_book(tmp_path_factory):
    """The book built once in quick mode: ``(build folder, completed process)``."""
    out = tmp_path_factory.mktemp("book")
    env = dict(os.environ, DEEPSTEM_QUICK="1")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--config", str(ROOT / "book/_config.yml"),
           "--toc", str(ROOT / "book/_toc.yml"), "--path-output", str(out), "-W", "-n", "--keep-going"]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    return out / "_build", result


@pytest.fixture(scope="session")
def built_book(quick_book) -> Path:
    build, result = quick_book
    html = build / "html"
    assert (html / "index.html").exists(), f"no book was built:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return html


def test_book_builds_without_warnings(quick_book):
    _, result = quick_book
    assert result.returncode == 0, f"book build failed (-W):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_executes_in_quick_mode(quick_book, chapter):
    """Every code cell of the chapter ran, without an error (the chapters' own asserts included)."""
    build, _ = quick_book
    report = build / "html" / "reports" / f"{chapter}.err.log"
    assert not report.exists(), f"{chapter} failed:\n{report.read_text()[-3000:] if report.exists() else ''}"
    executed = build / "jupyter_execute" / f"{chapter}.ipynb"
    assert executed.exists(), f"{chapter} was not executed"
    nb = json.loads(executed.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert code and all(c.get("execution_count") for c in code), "a code cell did not run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue")


@pytest.fixture(scope="module")
def server(built_book):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are needed in CI (apt-get install chromium chromium-driver)")
        pytest.skip("chromium/chromedriver not installed (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                 "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait_for_mathjax(driver, timeout=30):
    driver.set_script_timeout(timeout)
    return driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const start = Date.now();
        (function poll() {
          if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
            MathJax.startup.promise.then(() => done(document.querySelectorAll('mjx-container').length));
          } else if (Date.now() - start > 20000) { done(-1); } else { setTimeout(poll, 100); }
        })();
        """
    )


@pytest.mark.parametrize("page", _toc_files())
def test_chapter_renders(page, server, browser, built_book):
    browser.get(f"{server}/{page}.html")
    title = browser.title
    assert title and "DeepSTEM book" in title, f"unexpected title {title!r}"
    headings = browser.execute_script(
        "return Array.from(document.querySelectorAll('article h1')).map(h => h.textContent.trim());"
    )
    assert any(headings), "page has no heading"

    source = (built_book / f"{page}.html").read_text()
    has_math = "\\(" in source or "\\[" in source or 'class="math' in source
    if has_math:  # (a page without math loads no MathJax: nothing to wait for)
        n_math = _wait_for_mathjax(browser)
        assert n_math > 0, "math on the page was not typeset by MathJax"
        assert not browser.find_elements("css selector", "mjx-merror"), "MathJax reported an error"

    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth]);"
    )
    broken = [src for src, complete, width in images if not complete or width == 0]
    assert not broken, f"images that did not load: {broken}"

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"console errors: {errors}"

    if page.startswith("notebooks/01"):
        assert len(images) >= 5, "chapter 1 should show its figures and the explorer snapshot"
        browser.save_screenshot(str(built_book / "chapter01.png"))
