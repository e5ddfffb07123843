"""Execute a chapter and print its text outputs (a quick look without building the book).

Usage: python tools/run_notebook.py notebooks/03_training_data.ipynb [--quick]
"""

from __future__ import annotations

import os
import sys

import nbformat
from nbclient import NotebookClient

path = sys.argv[1]
if "--quick" in sys.argv:
    os.environ["DEEPSTEM_QUICK"] = "1"
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=3600, resources={"metadata": {"path": os.path.dirname(path) or "."}}).execute()
for i, cell in enumerate(nb.cells):
    if cell.cell_type != "code":
        continue
    for out in cell.get("outputs", []):
        if out.get("name") == "stdout":
            print(f"[{i}] {out['text'].rstrip()}")
        elif "data" in out and "text/plain" in out["data"] and "image/png" not in out["data"]:
            print(f"[{i}] {out['data']['text/plain'][:1500]}")
