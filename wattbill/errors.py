"""wattbill's exceptions: one tree, rooted here, with every package's errors inside it.

Every error a user can cause (a bad file, an unreachable store, an invalid tariff, a missing optional
package, ...) is a :class:`WattbillError`, whose ``str()`` is one line. ``wattbill.cli.main`` prints
that line and exits with code 1; a notebook catches ``WattbillError``. Lower libraries' errors
(psycopg, polars, WeasyPrint) are mapped into the tree where they cross into wattbill.

This module imports nothing of wattbill, so every package may derive its base from
:class:`WattbillError` without an import cycle; the packages' errors are re-exported here lazily
(PEP 562), so ``from wattbill.errors import IngestError`` works without loading polars or numba at
``import wattbill.errors``.

Hierarchy::

    Exception
    └── WattbillError                      root: every user error; str() is one line
        ├── MissingExtra (ImportError)     an optional part used without its extra installed
        ├── NothingToBill                  no customer, or no consumption, for the year asked
        ├── UnknownCustomer                a customer id that the store does not hold
        ├── BadToken                       a download token that is malformed, forged or expired
        ├── ingest.errors.IngestError      a file that cannot be loaded (file, row, column)
        │   ├── BadFileError               (Unsupported, Empty, MissingColumns, DuplicateColumns,
        │   │                               Truncated)
        │   └── UnknownKindError
        ├── store.errors.StoreError        the store cannot be used or is inconsistent
        │   ├── StoreUnavailable, StoreCorrupt, StoreConflict
        ├── tariffs.errors.TariffError     a tariff file or calculation problem (file, key)
        │   ├── TariffFileError, UnknownTariffError (KeyError), UnpricedRegisterError
        ├── labels.catalogue.CatalogueError (ValueError)  the label catalogue is malformed
        └── bills.render.RefusedURL (ValueError)          a bill asked for a resource outside its assets

``USER_ERRORS`` is kept for ``except`` clauses: ``(WattbillError,)``.
"""

from __future__ import annotations

import importlib
from typing import Any


class WattbillError(Exception):
    """Root of every wattbill error that a user can cause; ``str()`` is a one-line message."""


class MissingExtra(WattbillError, ImportError):
    """An optional part of wattbill was used without the extra that installs its packages.

    Parameters
    ----------
    part : str
        What needs the package (e.g. ``"PDF rendering"``).
    package : str
        The missing distribution (e.g. ``"weasyprint"``).
    extra : str
        The extra of wattbill that installs it (``pdf``, ``timescale``, ``web`` or ``dask``).
    """

    def __init__(self, part: str, package: str, extra: str) -> None:
        self.part, self.package, self.extra = part, package, extra
        super().__init__(f"{part} needs {package}, which is not installed: pip install 'wattbill[{extra}]'")

    def __reduce__(self):  # picklable across processes
        return (type(self), (self.part, self.package, self.extra))


class NothingToBill(WattbillError):
    """No customer or no consumption for the year asked."""


class UnknownCustomer(WattbillError):
    """A customer id that the store does not hold."""


class BadToken(WattbillError):
    """A download token that is malformed, forged or expired."""


USER_ERRORS: tuple[type[BaseException], ...] = (WattbillError,)

#: the packages' errors, re-exported lazily: name -> module that defines it
_REEXPORTS = {
    **dict.fromkeys(("IngestError", "BadFileError", "UnsupportedFormatError", "EmptyFileError",
                     "MissingColumnsError", "DuplicateColumnsError", "TruncatedFileError",
                     "UnknownKindError"), "wattbill.ingest.errors"),
    **dict.fromkeys(("StoreError", "StoreUnavailable", "StoreCorrupt", "StoreConflict"), "wattbill.store.errors"),
    **dict.fromkeys(("TariffError", "TariffFileError", "UnknownTariffError", "UnpricedRegisterError"),
                    "wattbill.tariffs.errors"),
    "CatalogueError": "wattbill.labels.catalogue",
    "RefusedURL": "wattbill.bills.render",
}

__all__ = ["USER_ERRORS", "BadToken", "MissingExtra", "NothingToBill", "UnknownCustomer", "WattbillError",
           *_REEXPORTS]


def __getattr__(name: str) -> Any:
    module = _REEXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def require(module: str, *, part: str, package: str, extra: str) -> Any:
    """Import ``module`` of an optional dependency, or raise :class:`MissingExtra` naming the extra.

    Parameters
    ----------
    module : str
        The module to import (e.g. ``"weasyprint"``).
    part, package, extra : str
        As for :class:`MissingExtra`.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingExtra
        When the module (or one it needs) cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(part, package, extra) from exc
