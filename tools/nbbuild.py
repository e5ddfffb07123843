"""Tiny helper to write a chapter notebook from a list of (kind, source[, tags]) cells.

Used by the tools/build_chXX.py scripts that hold the source of a chapter; the
notebooks in notebooks/ are what the book executes.
"""

from __future__ import annotations

import sys

import nbformat


def write(path: str, cells: list) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    for cell in cells:
        kind, source = cell[0], cell[1].strip("\n")
        tags = cell[2] if len(cell) > 2 else None
        c = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        if tags:
            c.metadata["tags"] = list(tags)
        nb.cells.append(c)
    nbformat.write(nb, path)
    print(f"wrote {path} ({len(nb.cells)} cells)", file=sys.stderr)
