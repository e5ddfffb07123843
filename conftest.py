"""pytest configuration shared by unit tests, doctests and notebook tests."""

import matplotlib

matplotlib.use("Agg")

# importing the CLI's __main__ would run the command
collect_ignore = ["deepstem_utils/__main__.py", "book", "_build", ".venv"]

import os

# notebooks run under nbval in quick mode (smaller frames, fewer epochs)
os.environ.setdefault("DEEPSTEM_QUICK", "1")
