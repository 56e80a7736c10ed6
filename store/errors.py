"""Errors raised by ``store``.

Hierarchy::

    StoreError                 base
    ├── StoreUnavailable       the backend cannot be used: server unreachable, TimescaleDB extension
    │                          missing or not preloaded, store folder not writable
    ├── StoreCorrupt           the embedded store's manifest or a file it names is unreadable
    └── StoreConflict          a write lost a race it cannot resolve (e.g. concurrent bill versions)

``wattbill.cli.main`` prints ``str(error)`` (one line) and exits with code 1.
"""

from __future__ import annotations

import re

from wattbill.errors import WattbillError

_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s'\"]*:)([^\s'\"]*)(@)")
_KV_PASSWORD = re.compile(r"(?i)(?<![?&])\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)([^&\s'\"]*?)(?=:\s|:$|[&\s'\"]|$)")  # (not the ": " after it)


def mask_secrets(text: object) -> str:
    """``text`` with every password masked: in ``scheme://user:password@host`` URLs (any scheme), in
    ``password=...`` of a conninfo string (psycopg's error texts can carry one) and in a URL's
    ``?password=`` query parameter. Applied to every message the store and the command line print."""
    out = _URL_PASSWORD.sub(r"\1***\3", str(text))
    out = _QUERY_PASSWORD.sub(r"\1***", out)
    return _KV_PASSWORD.sub(r"\1***", out)


class StoreError(WattbillError):
    """Base of the store's errors; its message never shows a password (``mask_secrets``)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(mask_secrets(a) if isinstance(a, str) else a for a in args))


class StoreUnavailable(StoreError):
    """The backend cannot be used (server down, extension missing, folder not writable)."""


class StoreCorrupt(StoreError):
    """A file of the embedded store is missing or unreadable."""


class StoreConflict(StoreError):
    """A concurrent write conflicted."""
