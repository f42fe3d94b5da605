"""The version, in a module of its own so that any module can read it without importing the package's
`__init__` (which imports the data package: a cycle)."""

__version__ = "0.1.0"  # the one place: pyproject.toml reads it, the API, COCO files and install hints report it
