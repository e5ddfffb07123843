"""The package version (one place; ``deepstem_utils.__version__`` and the outputs' provenance read it)."""

__version__ = "0.1.0"
