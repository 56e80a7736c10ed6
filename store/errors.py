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

from wattbill.errors import WattbillError


class StoreError(WattbillError):
    """Base of the store's errors."""


class StoreUnavailable(StoreError):
    """The backend cannot be used (server down, extension missing, folder not writable)."""


class StoreCorrupt(StoreError):
    """A file of the embedded store is missing or unreadable."""


class StoreConflict(StoreError):
    """A concurrent write conflicted."""
