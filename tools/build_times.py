"""Per-chapter execution time of a finished book build, read from the build's own execution report.

A jupyter-book build with ``execute_notebooks: cache`` keeps, in
``<build>/.jupyter_cache``, one record per executed notebook with the wall-clock
seconds nbclient took to run it (``execution_seconds``, written by myst-nb when it
executed the chapter). This script reads those records, nothing else: the figures
are measured, not typed.

Usage (``<build>`` is the ``_build`` folder under ``--path-output``)::

    python tools/build_times.py /tmp/quick/_build                      # one build
    python tools/build_times.py --quick /tmp/quick/_build --full _build  # both columns, Markdown for benchmarks/README.md

A chapter taken from an older cache entry shows the time of the run that made
that entry, with its date (myst-nb reuses an entry whose code cells are the same,
even under another file name: such a chapter is found by its code); a chapter that
failed to execute has no entry and shows "failed" (its traceback is in the project
records).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import jupytext
import yaml
from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parents[1]


def toc_chapters() -> list[str]:
    """The notebooks of the book's table of contents, as paths relative to the repository (with suffix)."""
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [f"{f}.md" for f in files if f.startswith("notebooks/")]


def read_times(build: Path, notebooks: list[str] | None = None) -> dict[str, tuple[float | None, datetime | None]]:
    """Execution seconds of each notebook in a build's jupyter cache.

    Parameters
    ----------
    build : Path
        The build's ``_build`` folder (holding ``.jupyter_cache``).
    notebooks : list of str, optional
        Notebooks (paths relative to the repository) to find by their code when no
        cache entry carries their name; the book's chapters by default.

    Returns
    -------
    dict
        Notebook path (relative to the repository) -> ``(seconds [s], time the record
        was made)``, for the notebooks asked for that the build executed;
        ``(None, None)`` for one whose execution failed.
    """
    cache_dir = Path(build) / ".jupyter_cache"
    if not (cache_dir / "global.db").exists():
        raise FileNotFoundError(f"no jupyter cache in {build} (expected {cache_dir}/global.db)")
    cache = get_cache(str(cache_dir))
    times: dict[str, tuple[float | None, datetime | None]] = {}
    for record in sorted(cache.list_cache_records(), key=lambda r: r.created):  # the newest record wins
        times[_name(record.uri)] = (record.data.get("execution_seconds"), record.created)
    for project in cache.list_project_records():
        if project.traceback and _name(project.uri) not in times:
            times[_name(project.uri)] = (None, None)
    for notebook in toc_chapters() if notebooks is None else notebooks:
        if notebook not in times and (ROOT / notebook).exists():
            try:
                record = cache.match_cache_notebook(jupytext.read(ROOT / notebook))
            except KeyError:  # never executed with this code
                continue
            times[notebook] = (record.data.get("execution_seconds"), record.created)
    wanted = toc_chapters() if notebooks is None else notebooks
    return {name: times[name] for name in wanted if name in times}


def _name(uri: str) -> str:
    path = Path(uri)
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def _cell(entry: tuple[float | None, datetime | None] | None) -> str:
    if entry is None:
        return "–"
    seconds, _ = entry
    return "failed" if seconds is None else f"{seconds:.0f}"


def table(columns: dict[str, dict[str, tuple[float | None, datetime | None]]], names: list[str]) -> str:
    """A Markdown table: one row per chapter, one column of seconds per build, a total row.

    Parameters
    ----------
    columns : dict
        Column title -> the :func:`read_times` of one build.
    names : list of str
        The rows: notebook paths; "–" where a build has no time for one.

    Returns
    -------
    str
    """
    heads = [f"{title} [s]" for title in columns]
    lines = ["| chapter | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for name in names:
        lines.append(f"| {Path(name).stem} | " + " | ".join(_cell(t.get(name)) for t in columns.values()) + " |")
    totals = []
    for times in columns.values():
        seconds = [s for s, _ in times.values() if s is not None]
        totals.append(f"{sum(seconds):.0f}" if seconds else "–")
    lines.append("| **total** | " + " | ".join(totals) + " |")
    dates = {title: max((d for _, d in t.values() if d is not None), default=None) for title, t in columns.items()}
    note = "; ".join(f"{title}: last executed {d:%Y-%m-%d %H:%M}" for title, d in dates.items() if d is not None)
    return "\n".join(lines) + (f"\n\n({note}; wall-clock seconds from the builds' jupyter caches)" if note else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", nargs="?", type=Path, help="a build's _build folder")
    parser.add_argument("--quick", type=Path, help="_build folder of a quick-mode build (DEEPSTEM_QUICK=1)")
    parser.add_argument("--full", type=Path, help="_build folder of a full build")
    args = parser.parse_args(argv)
    columns = {}
    if args.build:
        columns["execution"] = read_times(args.build)
    if args.quick:
        columns["quick mode"] = read_times(args.quick)
    if args.full:
        columns["full"] = read_times(args.full)
    if not columns:
        parser.error("give a build folder, or --quick and/or --full")
    print(table(columns, toc_chapters()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
