"""wattbill: smart-meter usage and annual-bill insight engine.

One import namespace: ``wattbill.ingest``, ``wattbill.store``, ``wattbill.tariffs``,
``wattbill.diagnostics``, ``wattbill.labels`` and ``wattbill.bills`` (each kept in its own top-level
folder of the source tree and mapped into this package by ``pyproject.toml``), with the application
(CLI, bill run, recalculation, web service) in ``wattbill`` itself.

The notebook API (:mod:`wattbill.api`) is re-exported here::

    import wattbill
    reads = wattbill.validate_reads(frame)            # .daily, .quarantine, .findings
    year = wattbill.bill_year(reads.daily, customers, 2025)
    features = wattbill.diagnose(reads.daily, customers, 2025, payments=payments)
    labels = wattbill.label(features)
    pdf = wattbill.render_pdf(wattbill.bill_document("0000000001", customers, year, features, labels))

Importing it has no side effects and loads neither polars nor numba: the API and ``__version__`` are
resolved on first use (PEP 562).
"""

from __future__ import annotations

from typing import Any

_API = (
    "LabelSet", "Validated", "YearBills", "bill_document", "bill_year", "diagnose", "label", "render_pdf",
    "validate_reads",
)

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("wattbill")
        except PackageNotFoundError:  # pragma: no cover - a source tree that is not installed
            return "0+unknown"
    if name in _API:
        from wattbill import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
