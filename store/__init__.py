"""Persistence behind one interface: the embedded Parquet store and the TimescaleDB store.

``open_store(url)``: a ``postgresql://`` (or ``postgres://``) URL opens the TimescaleDB store, anything
else is a folder for the embedded store (default ``./wattbill-data``, or ``WATTBILL_STORE``).
"""

from __future__ import annotations

import os
from pathlib import Path

from wattbill.store.base import Store
from wattbill.store.errors import StoreConflict, StoreCorrupt, StoreError, StoreUnavailable

DEFAULT_STORE = "./wattbill-data"


def open_store(url: str | Path | None = None, *, setup: bool = True) -> Store:
    """Open the store named by ``url`` (None: ``WATTBILL_STORE`` or ``./wattbill-data``).

    ``setup=False``: run no schema statement (TimescaleDB: no ``CREATE``; for long-running readers
    such as the statement service, which open the store once per process).
    """
    if url is None or str(url) == "":
        url = os.environ.get("WATTBILL_STORE") or DEFAULT_STORE
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from wattbill.store.timescale import TimescaleStore

        return TimescaleStore(text, setup=setup)
    if text.startswith("file://"):
        text = text[len("file://") :]
    from wattbill.store.embedded import EmbeddedStore

    return EmbeddedStore(text)


__all__ = [
    "DEFAULT_STORE",
    "Store",
    "StoreConflict",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]
