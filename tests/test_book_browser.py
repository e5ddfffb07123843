"""Real-browser check of the built book.

Builds the book in quick mode into a temporary folder, serves it on
localhost, opens every chapter listed in book/_toc.yml in headless Chromium
and checks: the page title, every image loaded, math typeset by the bundled
MathJax, and no errors in the browser console.

Needs Debian's ``chromium`` and ``chromium-driver``. Without them the test is
skipped, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    env = dict(os.environ, DEEPSTEM_QUICK="1")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--config", str(ROOT / "book/_config.yml"),
           "--toc", str(ROOT / "book/_toc.yml"), "--path-output", str(out), "-W", "-n", "--keep-going"]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"book build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    html = out / "_build" / "html"
    assert (html / "index.html").exists()
    return html


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
    from selenium.webdriver.support.ui import WebDriverWait

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
    n_math = _wait_for_mathjax(browser)
    if has_math:
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
