"""wattbill: smart-meter usage and annual-bill insight engine.

One import namespace: ``wattbill.ingest``, ``wattbill.store``, ``wattbill.tariffs``,
``wattbill.diagnostics``, ``wattbill.labels`` and ``wattbill.bills`` (each kept in its own top-level
folder of the source tree and mapped into this package by ``pyproject.toml``), with the application
(CLI, bill run, recalculation, web service) in ``wattbill`` itself. Importing it has no side effects.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("wattbill")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0+unknown"
