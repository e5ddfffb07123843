"""The book, built once in quick mode and read as a reader sees it.

One quick-mode build (``DEEPSTEM_QUICK=1``, ``jupyter-book build -W -n``) executes every
chapter (MyST Markdown notebooks) exactly once; every test below reads what it left:
the executed notebooks, myst-nb's error reports, the jupyter cache and the HTML, which
headless Chromium opens page by page (title, images loaded, math typeset by the bundled
MathJax, no console error, and what a reader needs: no ``nan`` on the page, outputs and
tables inside the column, figures at natural size with text of at least 8 px, alt text,
code at most a quarter of the page, the chapter's objectives, summary and answered
exercises, glossary links that resolve). A screenshot of every page is kept in
``<repo>/_build/screenshots/`` (git-ignored) for a reviewer to look at after the run.

``TODO`` below is the to-do list of the chapter passes: each (chapter, check) that fails
today is marked ``xfail(strict=True)``, so that a chapter that gets fixed turns its entry
into a failure until the entry is removed. Every other case must pass.

``DEEPSTEM_BOOK_BUILD=<path-output>/_build`` reuses a finished quick build instead of
building (for working on these tests; the warnings check is then skipped: it needs the
build's own log).

The browser part needs Debian's ``chromium`` and ``chromium-driver``. Without them it is
skipped, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin

import pytest
import yaml
from bs4 import BeautifulSoup
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = ROOT / "_build" / "screenshots"
sys.path.insert(0, str(ROOT / "tools"))

from build_times import read_times  # noqa: E402  (tools/ is not a package)

from deepstem_utils.book import MIN_TEXT_PX, TEXT_SIZE_KEY  # noqa: E402

# ------------------------------------------------------------------------------------------------
# The to-do list of the chapter passes: (chapter, check) -> what fails today. Remove an entry
# when the chapter is fixed (a fixed chapter makes its strict xfail fail).
TODO: dict[tuple[str, str], str] = {
}  # fmt: skip
# ------------------------------------------------------------------------------------------------

#: The checks every chapter must pass (see the test functions for what each one reads).
CHECKS = ("no-nan-inf", "outputs-fit", "figures-natural-size", "text-8px", "alt-text", "code-quarter",
          "structure", "terms", "glued-figures")
#: A figure may be shown at no less than this fraction of its natural width.
MIN_DISPLAY_FRACTION = 0.7
#: Code (visible code cells) may take at most this fraction of a chapter's height.
MAX_CODE_SHARE = 0.25
#: Browser window [px]: the book's text column is 784 px wide in it (tools/measure_column.py).
WINDOW = (1400, 1000)


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


CHAPTERS = [f for f in _toc_files() if f.startswith("notebooks/")]


def _cases(checks):
    for chapter in CHAPTERS:
        for check in checks:
            reason = TODO.get((Path(chapter).name, check))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(chapter, check, marks=marks, id=f"{Path(chapter).name[:2]}-{check}")


def test_todo_table_names_real_chapters_and_checks():
    names = {Path(c).name for c in CHAPTERS}
    stale = [key for key in TODO if key[0] not in names or key[1] not in CHECKS]
    assert not stale, f"entries of TODO that name no chapter or check: {stale}"


# ------------------------------------------------------------------------------------------------ the build


@pytest.fixture(scope="session")
def quick_book(tmp_path_factory):
    """The book built once in quick mode: ``(_build folder, completed process or None)``."""
    reuse = os.environ.get("DEEPSTEM_BOOK_BUILD")
    if reuse:
        return Path(reuse), None
    out = tmp_path_factory.mktemp("book")
    env = dict(os.environ, DEEPSTEM_QUICK="1")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--config", str(ROOT / "book/_config.yml"),
           "--toc", str(ROOT / "book/_toc.yml"), "--path-output", str(out), "-W", "-n", "--keep-going"]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    return out / "_build", result


@pytest.fixture(scope="session")
def built_book(quick_book) -> Path:
    build, result = quick_book
    html = build / "html"
    log = f"\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}" if result else ""
    assert (html / "index.html").exists(), f"no book was built:{log}"
    return html


def test_book_builds_without_warnings(quick_book):
    _, result = quick_book
    if result is None:
        pytest.skip("DEEPSTEM_BOOK_BUILD: reusing a build whose log is not at hand")
    assert result.returncode == 0, f"book build failed (-W):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_executes_in_quick_mode(quick_book, chapter):
    """Every code cell of the chapter ran, without an error (the chapters' own asserts included)."""
    build, result = quick_book
    report = build / "html" / "reports" / f"{chapter}.err.log"
    assert not report.exists(), f"{chapter} failed:\n{report.read_text()[-3000:] if report.exists() else ''}"
    executed = build / "jupyter_execute" / f"{chapter}.ipynb"
    assert executed.exists(), f"{chapter} was not executed"
    nb = json.loads(executed.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    # (a chapter that a reused build took from its jupyter cache carries outputs but no execution counts)
    assert code and (result is None or all(c.get("execution_count") for c in code)), "a code cell did not run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue")


def test_build_times_reads_every_chapter_from_the_build(quick_book):
    """tools/build_times.py reads the execution seconds of every chapter from the build's jupyter cache."""
    build, _ = quick_book
    times = read_times(build)
    missing = [c for c in CHAPTERS if not (times.get(f"{c}.md", (None,))[0] or 0) > 0]
    assert not missing, f"no execution time in the build's report for {missing}: {times}"


# ------------------------------------------------------------------------------------------------ the browser


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
                 "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}"):  # fmt: skip
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


#: What the page looks like as loaded: heights of the article and of the visible code cells [px].
_AS_LOADED = """
const article = document.querySelector('article.bd-article') || document.querySelector('article');
let code = 0;
article.querySelectorAll('.cell_input').forEach(e => {
  // code in a closed toggle is not visible, though Chromium still reports its box (content-visibility)
  if (e.offsetParent !== null && !e.closest('details:not([open])')) { code += e.getBoundingClientRect().height; }
});
return [article.getBoundingClientRect().height, code, document.documentElement.scrollHeight];
"""

#: With every toggle open: images, and outputs or tables wider than their box.
_OPENED = """
const article = document.querySelector('article.bd-article') || document.querySelector('article');
article.querySelectorAll('details').forEach(d => { d.open = true; });
const style = getComputedStyle(article);
const column = article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
const images = Array.from(article.querySelectorAll('img')).map(i =>
  [i.getAttribute('src'), i.getAttribute('alt'), i.naturalWidth, i.getBoundingClientRect().width, i.complete]);
const wide = [];
article.querySelectorAll('.cell_output').forEach(out => {
  const box = out.getBoundingClientRect().width;
  out.querySelectorAll('pre').forEach(el => {
    if (el.scrollWidth > el.clientWidth + 1) wide.push(['output', el.scrollWidth, el.clientWidth, el.textContent.slice(0, 60)]);
  });
  out.querySelectorAll('table').forEach(el => {
    const w = el.getBoundingClientRect().width;
    if (w > box + 1) wide.push(['output table', Math.round(w), Math.round(box), el.textContent.slice(0, 60)]);
  });
});
article.querySelectorAll('table').forEach(el => {
  if (el.closest('.cell_output')) return;
  const w = el.getBoundingClientRect().width;
  if (w > column + 1) wide.push(['table', Math.round(w), Math.round(column), el.textContent.slice(0, 60)]);
});
return [column, images, wide];
"""


def _screenshot(driver, path: Path, height: int) -> None:
    """The whole page as the reader scrolls through it, in slices of at most 8000 px."""
    driver.set_window_size(WINDOW[0], min(max(height, 1), 8000))
    step = driver.execute_script("return window.innerHeight;")  # the window less the browser's own bars
    try:
        for i, top in enumerate(range(0, max(height, 1), step)):
            driver.execute_script("window.scrollTo(0, arguments[0]);", top)
            scrolled = driver.execute_script("return window.scrollY;")
            shot = Image.open(io.BytesIO(driver.get_screenshot_as_png()))
            shot = shot.crop((0, top - scrolled, shot.width, shot.height))  # the last slice cannot scroll a full step
            shot.save(path if i == 0 else path.with_name(f"{path.stem}-{i + 1}.png"))
    finally:
        driver.set_window_size(*WINDOW)
        driver.execute_script("window.scrollTo(0, 0);")


@pytest.fixture(scope="module")
def page_report(server, browser, built_book):
    """Open each page once: its measurements (cached) and a screenshot in ``<repo>/_build/screenshots``."""
    reports = {}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def report(page: str) -> dict:
        if page not in reports:
            browser.get(f"{server}/{page}.html")
            source = (built_book / f"{page}.html").read_text()
            has_math = "\\(" in source or "\\[" in source or 'class="math' in source
            n_math = _wait_for_mathjax(browser) if has_math else None
            article, code, height = browser.execute_script(_AS_LOADED)
            _screenshot(browser, SCREENSHOTS / f"{page.replace('/', '__')}.png", int(height))
            column, images, wide = browser.execute_script(_OPENED)
            reports[page] = {
                "title": browser.title, "n_math": n_math,
                "headings": browser.execute_script(
                    "return Array.from(document.querySelectorAll('article h1')).map(h => h.textContent.trim());"),
                "merror": bool(browser.find_elements("css selector", "mjx-merror")),
                "article": article, "code": code, "column": column, "images": images, "wide": wide,
                "errors": [e for e in browser.get_log("browser") if e["level"] == "SEVERE"],
            }  # fmt: skip
        return reports[page]

    return report


@pytest.mark.parametrize("page", _toc_files())
def test_page_renders(page, page_report):
    r = page_report(page)
    assert r["title"] and "DeepSTEM book" in r["title"], f"unexpected title {r['title']!r}"
    assert any(r["headings"]), "page has no heading"
    if r["n_math"] is not None:  # (a page without math loads no MathJax: nothing to wait for)
        assert r["n_math"] > 0, "math on the page was not typeset by MathJax"
        assert not r["merror"], "MathJax reported an error"
    broken = [src for src, _, natural, _, complete in r["images"] if not complete or natural == 0]
    assert not broken, f"images that did not load: {broken}"
    assert not r["errors"], f"console errors: {r['errors']}"
    assert (SCREENSHOTS / f"{page.replace('/', '__')}.png").stat().st_size > 10_000
    if page.startswith("notebooks/01"):
        assert len(r["images"]) >= 5, "chapter 1 should show its figures and the explorer snapshot"


@pytest.mark.parametrize("page", [p for p in _toc_files() if p.startswith("book/")])
def test_reference_page_fits_the_column(page, page_report):
    """The reference pages (assumptions, glossary, bibliography) need no sideways scrolling."""
    wide = page_report(page)["wide"]
    assert not wide, f"wider than the {page_report(page)['column']:.0f} px column: {wide}"


# ------------------------------------------------------------------------------------------------ chapter checks


def _soup(built_book: Path, page: str) -> BeautifulSoup:
    return BeautifulSoup((built_book / f"{page}.html").read_text(), "html.parser")


def _article(built_book: Path, page: str):
    soup = _soup(built_book, page)
    return soup.select_one("article.bd-article") or soup.find("article")


def _png(built_book: Path, page: str, src: str) -> Image.Image | None:
    path = built_book / unquote(urljoin(f"/{page}.html", src)).lstrip("/")
    if path.suffix.lower() != ".png" or not path.exists():
        return None
    return Image.open(path)


def _is_plot(png: Image.Image | None) -> bool:
    """A figure drawn by matplotlib (photographs, animations and drawings from elsewhere are not)."""
    return png is not None and "matplotlib" in png.text.get("Software", "").lower()


def _section(article, title: str):
    for section in article.find_all("section"):
        heading = section.find(["h2", "h3"], recursive=False)
        if heading and heading.get_text(" ", strip=True).rstrip("#¶ ").strip().lower() == title:
            return section
    return None


#: nan and inf as words: in an output, a table or a sentence they mean a number that was not computed.
NAN_INF = re.compile(r"(?<![\w.])-?(?:nan|NaN|NAN|inf|Inf|INF)(?![\w])")


#: A float with six or more decimals in a sentence: glued without a format.
UNFORMATTED = re.compile(r"(?<![\w.])\d+\.\d{6,}")


def check_no_nan_inf(chapter, built_book, page_report):
    article = _article(built_book, chapter)
    for element in article.select(".cell_input, script, style, .math, mjx-container"):
        element.decompose()
    text = article.get_text(" ")
    found = [text[max(0, m.start() - 40) : m.end() + 40].replace("\n", " ") for m in NAN_INF.finditer(text)]
    assert not found, f"{len(found)} nan/inf shown: {found[:5]}"
    # a number glued into a sentence without a format shows every digit of a float: the prose rounds
    prose = " ".join(p.get_text(" ") for p in article.select("p, li") if not p.find_parent(class_="cell_output"))
    raw = [prose[max(0, m.start() - 40) : m.end() + 10] for m in UNFORMATTED.finditer(prose)]
    assert not raw, f"{len(raw)} unformatted number(s) in the text: {raw[:5]}"


def check_outputs_fit(chapter, built_book, page_report):
    wide = [w for w in page_report(chapter)["wide"]]
    assert not wide, f"{len(wide)} outputs or tables wider than their box (kind, width, box, start): {wide[:5]}"


def _figures(chapter, built_book, page_report):
    for src, alt, natural, shown, _ in page_report(chapter)["images"]:
        yield src, alt, natural, shown, _png(built_book, chapter, src)


def check_figures_natural_size(chapter, built_book, page_report):
    shrunk = [(src.rsplit("/", 1)[-1], natural, round(shown)) for src, _, natural, shown, png in
              _figures(chapter, built_book, page_report) if _is_plot(png) and shown < MIN_DISPLAY_FRACTION * natural]
    assert not shrunk, (f"{len(shrunk)} figures shown below {MIN_DISPLAY_FRACTION:.0%} of their natural width "
                        f"(file, natural px, shown px): {shrunk}")  # fmt: skip


def check_text_8px(chapter, built_book, page_report):
    small, unmeasured = [], []
    for src, _, natural, shown, png in _figures(chapter, built_book, page_report):
        if not _is_plot(png):
            continue
        smallest = png.text.get(TEXT_SIZE_KEY)
        if smallest is None:
            unmeasured.append(src.rsplit("/", 1)[-1])
            continue
        if smallest == "none":
            continue
        dpi = png.info.get("dpi", (72, 72))[0]
        px = float(smallest) * dpi / 72 * shown / natural
        if px < MIN_TEXT_PX - 0.05:
            small.append((src.rsplit("/", 1)[-1], round(px, 1)))
    assert not unmeasured, (f"{len(unmeasured)} figures without a text-size record: the chapter does not call "
                            f"deepstem_utils.book.setup() ({unmeasured[:3]})")  # fmt: skip
    assert not small, f"figures with text below {MIN_TEXT_PX} px as shown (file, px): {small}"


def check_alt_text(chapter, built_book, page_report):
    missing = [src.rsplit("/", 1)[-1] for src, alt, *_ in page_report(chapter)["images"]
               if not (alt or "").strip() or re.search(r"\.(png|jpe?g|gif|svg|webp)$", alt.strip(), re.I)]
    assert not missing, f"{len(missing)} images without alt text (myst-nb's default alt is the file name): {missing[:5]}"


def check_code_quarter(chapter, built_book, page_report):
    r = page_report(chapter)
    share = r["code"] / r["article"]
    assert share <= MAX_CODE_SHARE, f"visible code takes {share:.0%} of the chapter's height (at most {MAX_CODE_SHARE:.0%})"


def check_structure(chapter, built_book, page_report):
    """Objectives ("What you will learn"), a Summary, and Exercises whose every exercise has a solution labelled
    "Solution" (a hidden cell, a dropdown admonition or a sphinx-design dropdown)."""
    article = _article(built_book, chapter)
    problems = []
    if "what you will learn" not in article.get_text(" ").lower():
        problems.append("no 'What you will learn'")
    if _section(article, "summary") is None:
        problems.append("no Summary section")
    exercises = _section(article, "exercises")
    if exercises is None:
        problems.append("no Exercises section")
    else:
        listing = exercises.find("ol")
        n = len(listing.find_all("li", recursive=False)) if listing else 0
        toggles = []  # (label, content)
        for details in exercises.select("details"):
            summary = details.find("summary")
            label = summary.select_one(".collapsed") or summary if summary else None
            toggles.append(((label.get_text(" ", strip=True) if label else ""), details.get_text(" ")))
        for dropdown in exercises.select("div.admonition.dropdown, div.toggle"):
            title = dropdown.select_one(".admonition-title")
            toggles.append(((title.get_text(" ", strip=True) if title else ""), dropdown.get_text(" ")))
        unlabelled = [label for label, _ in toggles if not label.startswith("Solution")]
        if unlabelled:
            problems.append(f"toggles in Exercises not labelled 'Solution': {unlabelled}")
        text = " ".join(label + " " + content for label, content in toggles)
        numbered = all(re.search(rf"\bSolution {k}\b", text) for k in range(1, n + 1))
        if n == 0:
            problems.append("the Exercises section lists no exercises")
        elif not (numbered or len(toggles) >= n):
            answered = [k for k in range(1, n + 1) if re.search(rf"\bSolution {k}\b", text)]
            problems.append(f"{n} exercises, solutions found for {answered or 'none'}")
    assert not problems, "; ".join(problems)


TERM_ROLE = re.compile(r"\{term\}`([^`]*)`")


def _glossary_terms() -> set[str]:
    text = (ROOT / "book" / "glossary.md").read_text()
    block = text.split("```{glossary}", 1)[1].split("\n```", 1)[0]
    return {line.strip().lower() for line in block.splitlines()
            if line.strip() and not line.startswith((" ", "\t", ":"))}  # fmt: skip


def check_terms(chapter, built_book, page_report):
    """Every {term} of the chapter names a glossary entry, and every term link on the page leads to the glossary."""
    source = (ROOT / f"{chapter}.md").read_text()
    names = [m.group(1) for m in TERM_ROLE.finditer(source)]
    names = [re.search(r"<([^>]*)>\s*$", n).group(1) if re.search(r"<[^>]*>\s*$", n) else n for n in names]
    unknown = sorted({n for n in names if n.strip().lower() not in _glossary_terms()})
    article = _article(built_book, chapter)
    dangling = [span.get_text() for span in article.select(".std-term")
                if not (span.find_parent("a") and "glossary.html#term-" in span.find_parent("a").get("href", ""))]
    assert not unknown and not dangling, f"terms not in the glossary: {unknown}; term links that lead nowhere: {dangling}"


# ---- glued figures: a number with a unit in a chapter's prose must be glued from the computation ----

_SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹⁻"
_NUM = rf"(?:\d+(?:\.\d+)?\s*[×x]\s*10[{_SUP}]+|10[{_SUP}]+|\d+(?:\.\d+)?e[+-]?\d+|\d{{1,3}}(?:,\d{{3}})+|\d+(?:\.\d+)?)"
_UNITS = ("e⁻/Å²", "e-/Å²", "e⁻/px", "µs/Å²", "frames/s", "frame/s", "Å/px", "Å²", "Å", "pm", "nm", "µm", "mm", "mrad",
          "rad", "keV", "kV", "eV", "°C", "K", "%", "dB", "pA", "nA", "ms", "µs", "ns", "s", "min", "h", "px", "MiB",
          "GiB", "MB", "GB", "°", "Hz")  # fmt: skip
_UNIT = "(?:" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + ")"
#: A figure with a unit: "0.12 Å", "10⁴ e⁻/Å²", "2 × 10⁴ e⁻/Å²", "60–200 mrad", "25 and 35 mrad".
FIGURE = re.compile(rf"(?<![\w.^/]){_NUM}(?:\s*(?:–|-|to|and|or)\s*{_NUM})?\s*{_UNIT}(?![\w/²])")

#: Figures that are not measured and need no glue: constants of nature, definitions, and the settings
#: of the paper and of the book that the chapters state as inputs (with every value of book/assumptions.md).
ALLOWED_FIGURES = {
    "500 °C", "773 K",                  # the paper's thermolysis temperature, and in kelvin
    "60°", "120°", "180°",              # the symmetry of the MoS₂ lattice and of its mirror twins
    "60 kV", "80 kV", "300 kV",         # beam energies: the real frame of chapter 7, the book's default, the paper's TEM
    "30 mrad", "20 mrad", "10 mrad",    # the convergence semiangle; the tilts of the tableau
    "10³ e⁻/Å²", "10⁴ e⁻/Å²", "10⁵ e⁻/Å²",  # the doses of the book's examples and sweeps
}  # fmt: skip
#: Per-chapter additions to ALLOWED_FIGURES (a chapter's own definitions), filled in by the chapter passes.
ALLOWED_IN_CHAPTER: dict[str, set[str]] = {
    "07_insitu_mos2": {"55 and 90 keV",   # the energies of a cited measurement (Speckmann et al. 2023)
                       "10⁻⁸ Å²"},        # the definition of the barn
}


def _normal(figure: str) -> str:
    figure = re.sub(r"\s*(?:–|-|to)\s*", "–", figure.strip())
    figure = re.sub(r"\s*×\s*", "×", figure)
    return re.sub(r"\s+", " ", figure)


def _endpoints(figure: str) -> list[str]:
    match = re.fullmatch(rf"({_NUM})\s*(?:–|and|or)\s*({_NUM})\s*({_UNIT})", figure)
    return [f"{match.group(1)} {match.group(3)}", f"{match.group(2)} {match.group(3)}"] if match else []


def prose_of(markdown: str) -> str:
    """The sentences of a MyST notebook: no front matter, code cells, code blocks, display math, directive
    options or role contents (glue, references, citations), inline math unwrapped, up to its Exercises."""
    lines = markdown.splitlines()
    start = lines.index("---", 1) + 1 if lines and lines[0].strip() == "---" else 0
    out, fence, in_math = [], None, False
    for line in lines[start:]:
        s = line.strip()
        if fence:
            if s.startswith(fence) and not s.strip("`~"):
                fence = None
            continue
        opening = re.match(r"^(`{3,}|~{3,})\s*(\{[\w:-]+\})?", s)
        if opening:
            if opening.group(2) in (None, "{code-cell}", "{math}", "{code-block}", "{code}"):
                fence = opening.group(1)
            continue
        if s.startswith("$$"):
            in_math = in_math if s.count("$$") > 1 else not in_math
            continue
        if in_math or re.match(r"^:[\w-]+:", s):
            continue
        if re.match(r"^#+\s+Exercises", s):
            break
        out.append(line)
    text = "\n".join(out)
    text = re.sub(r"\{[\w:-]+\}`[^`]*`", " ", text)
    text = re.sub(r"``[^`]+``|`[^`]+`", " ", text)
    return text.replace("$", "").replace("\\,", " ").replace("\\;", " ")


def unglued_figures(markdown: str, allowed: set[str]) -> list[str]:
    """Numbers with units in the prose that are neither glued nor allowed."""
    allowed = {_normal(a) for a in allowed}
    allowed |= {e for a in list(allowed) for e in _endpoints(a)}
    found = []
    for match in FIGURE.finditer(prose_of(markdown)):
        figure = _normal(match.group(0))
        if figure in allowed or (_endpoints(figure) and all(e in allowed for e in _endpoints(figure))):
            continue
        found.append(figure)
    return found


def _settings() -> set[str]:
    return {m.group(0) for m in FIGURE.finditer(prose_of((ROOT / "book" / "assumptions.md").read_text()))}


def test_glued_figure_check_can_fail():
    text = "---\nx: 1\n---\n# T\nThe probe is 0.83 Å wide; {glue:text}`w:.2f` Å.\n```{code-cell}\nx = 3.2  # Å\n```\n"
    assert unglued_figures(text, set()) == ["0.83 Å"]
    assert unglued_figures(text, {"0.83 Å"}) == []
    assert unglued_figures("A dose of 2 × 10⁴ e⁻/Å² at 60–200 mrad.", {"2×10⁴ e⁻/Å²", "60–200 mrad"}) == []
    assert unglued_figures("$C_{30} = 10$ µm, 3.5 dB better", set()) == ["10 µm", "3.5 dB"]


def check_glued_figures(chapter, built_book, page_report):
    allowed = ALLOWED_FIGURES | _settings() | ALLOWED_IN_CHAPTER.get(Path(chapter).name, set())
    found = unglued_figures((ROOT / f"{chapter}.md").read_text(), allowed)
    assert not found, (f"{len(found)} figures with units in the text are not glued ({{glue:text}}) nor allowed "
                       f"(ALLOWED_FIGURES, book/assumptions.md): {found}")  # fmt: skip


@pytest.mark.parametrize("chapter, check", list(_cases(CHECKS)))
def test_chapter_reads_well(chapter, check, built_book, page_report):
    globals()[f"check_{check.replace('-', '_')}"](chapter, built_book, page_report)


# ------------------------------------------------------------------------------------------------ reference pages


def test_glossary_defines_the_terms_the_chapters_use():
    needed = {"psnr", "anscombe transform", "bm3d", "softplus", "bfloat16", "bkl algorithm", "4|4p core", "d′", "em",
              "fisher information", "u-net", "haadf", "object function", "probe", "zemlin tableau", "thon rings",
              "reciprocity", "dose", "poisson noise", "binomial split", "binomial thinning", "self-supervised learning",
              "posterior mean", "mixture model", "ideal observer", "cramér–rao bound", "richardson–lucy",
              "wiener filter", "frozen phonons", "multislice", "focal spread", "source size", "d50", "fwhm"}  # fmt: skip
    assert not needed - _glossary_terms(), f"not in book/glossary.md: {sorted(needed - _glossary_terms())}"


def _bib_entries() -> dict[str, tuple[str, dict[str, str]]]:
    text = (ROOT / "book" / "references.bib").read_text()
    entries = {}
    for kind, key, body in re.findall(r"@(\w+)\{([^,]+),(.*?)\n\}", text, re.S):
        fields = dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*)\},?\s*$", body, re.M))
        entries[key] = (kind.lower(), fields)
    return entries


REQUIRED_FIELDS = {"article": {"author", "title", "journal", "year", "volume", "pages"},
                   "book": {"author", "title", "publisher", "year"},
                   "inproceedings": {"author", "title", "booktitle", "year", "pages"},
                   "incollection": {"author", "title", "booktitle", "publisher", "year"}}  # fmt: skip


def test_bibliography_entries_are_complete_and_not_placeholders():
    entries = _bib_entries()
    assert len(entries) >= 20
    problems = []
    for key, (kind, fields) in entries.items():
        missing = REQUIRED_FIELDS.get(kind, {"author", "title", "year"}) - set(fields)
        if missing:
            problems.append(f"{key}: no {sorted(missing)}")
        if "$" in fields.get("title", ""):
            problems.append(f"{key}: LaTeX math in the title (write MoS₂ in braces)")
        if re.search(r"not verified|placeholder|as cited|\bothers\b|\bTODO\b", " ".join(fields.values()), re.I):
            problems.append(f"{key}: a placeholder")
    assert not problems, problems


def test_bibliography_page_shows_formulas_and_names_as_written(built_book):
    text = _article(built_book, "book/bibliography").get_text(" ").replace("\xa0", " ")
    assert "MoS₂" in text and "$" not in text and not re.search(r"\bmos", text)
    for name in ("Richardson", "Lucy", "Noise2Noise", "Dabov", "U-Net", "StatSTEM", "Crocker", "De Backer"):
        assert name in text, f"{name} missing from the bibliography page"


def test_solution_toggles_are_labelled_book_wide(built_book):
    """The book's extension relabels whole-cell toggles in Exercises sections; other toggles keep myst-nb's label."""
    labels = {}
    for chapter in CHAPTERS:
        article = _article(built_book, chapter)
        for details in article.select("details.hide"):
            label = details.select_one("summary .collapsed").get_text(strip=True)
            in_exercises = details.find_parent("section") is _section(article, "exercises")
            labels.setdefault(in_exercises, set()).add(label)
    assert labels.get(True) == {"Solution"}, labels
    assert "Solution" not in labels.get(False, set()), labels
