"""pytest configuration shared by unit tests, doctests and notebook tests."""

import matplotlib

matplotlib.use("Agg")

# importing the CLI's __main__ would run the command
collect_ignore = ["deepstem_utils/__main__.py", "book", "_build", ".venv"]

import os

# chapters run in quick mode (smaller frames, fewer epochs) in the tests: tests/book builds the book once
os.environ.setdefault("DEEPSTEM_QUICK", "1")
