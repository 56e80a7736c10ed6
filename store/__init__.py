"""Persistence behind one interface: the embedded Parquet store and the TimescaleDB store.

``open_store(url)``: a ``postgresql://`` (or ``postgres://``) URL opens the TimescaleDB store, anything
else is a folder for the embedded store (default ``./wattbill-data``, or ``WATTBILL_STORE``).
"""

from __future__ import annotations

from pathlib import Path

from wattbill.errors import MissingExtra
from wattbill.settings import DEFAULT_STORE
from wattbill.store.base import Store
from wattbill.store.errors import StoreConflict, StoreCorrupt, StoreError, StoreUnavailable


def open_store(url: str | Path | None = None, *, setup: bool = True) -> Store:
    """Open the store named by ``url`` (None: the setting ``store``, ``WATTBILL_STORE``, default ``./wattbill-data``).

    ``setup=False``: run no schema statement (TimescaleDB: no ``CREATE``; for long-running readers
    such as the statement service, which open the store once per process).
    """
    if url is None or str(url) == "":
        from wattbill.settings import get_settings

        url = get_settings().store
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from wattbill.store.timescale import TimescaleStore
        except ModuleNotFoundError as exc:  # the [timescale] extra is not installed
            if (exc.name or "").split(".")[0] not in ("psycopg", "psycopg_pool", "psycopg_binary"):
                raise
            raise MissingExtra("the TimescaleDB store", "psycopg", "timescale") from exc

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
