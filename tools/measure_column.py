"""Measure the book's text column in a built book with headless Chromium.

Figures are made ``deepstem_utils.book.COLUMN_PX`` wide so that they are shown at
natural size; this script measures that width instead of guessing it: it serves a
built book's HTML, opens a chapter at several window widths and prints the width
[CSS px] of the chapter's article (the content box that images and outputs fill,
``max-width: 100%``) and of a code cell's output area.

Usage::

    python tools/measure_column.py /tmp/quick/_build/html [--page notebooks/01_linear_image_model]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import sys
import threading
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

#: Window widths [px]: a laptop, a desktop and a wide screen.
WIDTHS = (1280, 1400, 1600, 1920)

_MEASURE = """
const article = document.querySelector('article.bd-article') || document.querySelector('article');
const style = getComputedStyle(article);
const content = article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
const output = document.querySelector('.cell_output');
return [content, output ? output.getBoundingClientRect().width : null];
"""


def measure(html: Path, page: str, widths=WIDTHS) -> dict[int, tuple[float, float | None]]:
    """Width of the article's content box and of a cell's output area at each window width.

    Parameters
    ----------
    html : Path
        A built book's ``html`` folder.
    page : str
        Page path without ``.html``.
    widths : sequence of int
        Browser window widths [px].

    Returns
    -------
    dict
        Window width [px] -> (article content width [px], output area width [px] or None).
    """

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(html)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        out = {}
        for width in widths:
            driver.set_window_size(width, 1000)
            driver.get(f"http://127.0.0.1:{httpd.server_address[1]}/{page}.html")
            content, output = driver.execute_script(_MEASURE)
            out[width] = (content, output)
        return out
    finally:
        driver.quit()
        httpd.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="a built book's html folder")
    parser.add_argument("--page", default="notebooks/01_linear_image_model")
    args = parser.parse_args(argv)
    print("| window [px] | article content [px] | cell output [px] |\n|---:|---:|---:|")
    for width, (content, output) in measure(args.html, args.page).items():
        print(f"| {width} | {content:.0f} | {'' if output is None else f'{output:.0f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
