"""wattbill's exceptions: one hierarchy, drawn here, with the packages' own bases inside it.

The pure packages (``tariffs``) and the edges (``ingest``, ``store``, ``bills``) may not import the
application, so each has its own base class. The application adds its own errors and treats all of
them alike: ``wattbill.cli.main`` prints ``str(error)`` on one line and exits with code 1.

Hierarchy::

    Exception
    ├── WattbillError                  errors of the application (this module)
    │   ├── NothingToBill              no customer, or no consumption, for the year asked
    │   ├── UnknownCustomer            a customer id that the store does not hold
    │   └── BadToken                   a download token that is malformed, forged or expired
    ├── ingest.errors.IngestError      a file that cannot be loaded (file, row, column)
    ├── store.errors.StoreError        the store cannot be used or is inconsistent
    └── tariffs.errors.TariffError     a tariff file or calculation problem (file, key)

``USER_ERRORS`` is the tuple of those bases, for ``except`` clauses.
"""

from __future__ import annotations

from wattbill.ingest.errors import IngestError
from wattbill.store.errors import StoreError
from wattbill.tariffs.errors import TariffError


class WattbillError(Exception):
    """Base of the application's own errors; ``str()`` is a one-line message."""


class NothingToBill(WattbillError):
    """No customer or no consumption for the year asked."""


class UnknownCustomer(WattbillError):
    """A customer id that the store does not hold."""


class BadToken(WattbillError):
    """A download token that is malformed, forged or expired."""


USER_ERRORS: tuple[type[BaseException], ...] = (WattbillError, IngestError, StoreError, TariffError)
