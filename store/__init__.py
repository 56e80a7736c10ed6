"""Persistence behind one interface: the embedded Parquet store and the TimescaleDB store.

``open_store(url)``: a ``postgresql://`` (or ``postgres://``) URL opens the TimescaleDB store, anything
else is a folder for the embedded store (default ``./wattbill-data``, or ``WATTBILL_STORE``).
"""

from __future__ import annotations

import re
from pathlib import Path

from wattbill.errors import MissingExtra
from wattbill.settings import DEFAULT_STORE
from wattbill.store.base import Store
from wattbill.store.errors import StoreConflict, StoreCorrupt, StoreError, StoreUnavailable, mask_secrets

#: ``scheme://`` of an address that is not a folder
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: ``user:password@host...`` or ``user@host:port/db``: a PostgreSQL address typed without its scheme
_DSN_WITHOUT_SCHEME = re.compile(r"^[^/\s@]+@[^/\s@]+(/[^/\s]*)?$")
#: a libpq keyword/value connection string (``host=db port=5432 dbname=wattbill``): libpq's keywords
_CONNINFO = re.compile(r"(^|\s)(host|hostaddr|port|dbname|user|password|sslmode|service|connect_timeout)\s*=")


def open_store(url: str | Path | None = None, *, setup: bool = True, create: bool = True) -> Store:
    """Open the store named by ``url`` (None: the setting ``store``, ``WATTBILL_STORE``, default ``./wattbill-data``).

    ``setup=False``: run no schema statement (TimescaleDB: no ``CREATE``; for long-running readers
    such as the statement service, which open the store once per process). ``create=False``: an
    embedded store must exist, its folder holding ``store.json`` (or an old store's ``manifest.json``:
    commands that only read: a mistyped ``--store``, or a folder that is not a store, is an error, not a
    new empty store).

    Raises
    ------
    StoreError
        ``url`` has a scheme other than ``postgresql://``, ``postgres://`` or ``file://``; it looks like
        a database address typed without ``postgresql://`` (``user:password@host/db``: never made a
        folder, the password never shown); ``create=False`` and no store is there.
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
    elif _SCHEME.match(text):
        raise StoreError(f"{text}: not a store address (a folder, or postgresql://user@host/db)")
    elif _DSN_WITHOUT_SCHEME.match(text) and ":" in text:  # (a folder "data@2025" is a folder)
        raise StoreError(f"{mask_secrets('postgresql://' + text)[len('postgresql://'):]}: looks like a database "
                         "address without 'postgresql://' in front; a folder of that name is not made")
    elif _CONNINFO.search(text) and not Path(text).exists():
        raise StoreError(f"{text}: looks like a PostgreSQL keyword connection string; give the store as a URL "
                         "(postgresql://user@host:port/dbname, the password in PGPASSWORD or ~/.pgpass); a folder "
                         "of that name is not made")
    if not create and not any((Path(text) / marker).is_file() for marker in ("store.json", "manifest.json")):
        # (a folder that is not a store, an empty one say, is not made one by a command that only reads)
        raise StoreError(f"no store at {text}: load data first (wattbill ingest ... --store {text}), "
                         "or check --store and the setting store (WATTBILL_STORE)")
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
