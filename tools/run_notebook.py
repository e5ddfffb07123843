"""Execute a chapter and print its text outputs (a quick look without building the book).

Usage: python tools/run_notebook.py notebooks/03_training_data.md [--quick] [--times]

Prints every cell's text output, every glued value (name = shown text) and every table's HTML.

Chapters are MyST Markdown notebooks; jupytext reads them, nbclient runs them in the
chapter's folder (as the book does).
"""

from __future__ import annotations

import os
import sys
import time

import jupytext
from nbclient import NotebookClient

path = sys.argv[1]
if "--quick" in sys.argv:
    os.environ["DEEPSTEM_QUICK"] = "1"
nb = jupytext.read(path)
start = time.perf_counter()
NotebookClient(nb, timeout=3600, kernel_name="python3",
               resources={"metadata": {"path": os.path.dirname(path) or "."}}).execute()
for i, cell in enumerate(nb.cells):
    if cell.cell_type != "code":
        continue
    for out in cell.get("outputs", []):
        if out.get("name") == "stdout":
            print(f"[{i}] {out['text'].rstrip()}")
        elif "scrapbook" in out.get("metadata", {}):  # a glued value: its name and what the text shows
            name = out["metadata"]["scrapbook"].get("name")
            plain = [v for k, v in out.get('data', {}).items() if k.endswith('text/plain')]
            print(f"[{i}] glue {name} = {(plain or [''])[0][:300]}")
        elif "data" in out and "text/html" in out["data"] and "image/png" not in out["data"]:
            print(f"[{i}] {out['data']['text/html'][:3000]}")  # tables (Styler): their HTML
        elif "data" in out and "text/plain" in out["data"] and "image/png" not in out["data"]:
            print(f"[{i}] {out['data']['text/plain'][:1500]}")
print(f"executed {path} in {time.perf_counter() - start:.0f} s")
if "--times" in sys.argv:  # each code cell's wall time (nbclient records it), slowest first
    from datetime import datetime
    rows = []
    for i, cell in enumerate(nb.cells):
        ex = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in ex and "shell.execute_reply" in ex:
            t0, t1 = (datetime.fromisoformat(ex[k].replace("Z", "+00:00"))
                      for k in ("iopub.execute_input", "shell.execute_reply"))
            rows.append(((t1 - t0).total_seconds(), i, cell.source.splitlines()[0][:70] if cell.source else ""))
    for sec, i, first in sorted(rows, reverse=True)[:12]:
        print(f"  cell {i:3d} {sec:7.1f} s  {first}")
