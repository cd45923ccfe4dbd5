"""The jaxrec version: one copy, read by the package, the CLI, the run writer and the build
(``pyproject.toml``'s dynamic version). It imports nothing, so any floor may read it."""

__version__ = "0.2.0"
