"""The bill years wattbill accepts, in one place for the command line, the running charge and the web API.

Dated input rows before :data:`MIN_DATE` or after :func:`latest_date` are refused at ingest
(``ingest.vee``, ``ingest.interactions``); 2199 bounds what the calendar arithmetic of
the kernels and of polars' dates is tested for.
"""

from __future__ import annotations

import datetime as dt

from wattbill.errors import WattbillError

MIN_YEAR, MAX_YEAR = 1990, 2199

MIN_DATE = dt.date(MIN_YEAR, 1, 1)
"""The first day a read, payment, customer date or interaction may have (earlier: ``implausible_date``)."""


def latest_date(today: dt.date) -> dt.date:
    """The last day a dated input row may have: tomorrow (a meter clock a little ahead, a time zone east
    of the server's); later is ``implausible_date`` at ingest.

    Parameters
    ----------
    today : datetime.date
        The day of the load (``ingest``'s ``today``, the server's date by default).

    Returns
    -------
    datetime.date
        ``today`` + 1 day.
    """
    return today + dt.timedelta(days=1)


def check_year(year: int, what: str = "year") -> int:
    """``year`` if it is a bill year wattbill accepts.

    Raises
    ------
    WattbillError
        Outside ``MIN_YEAR``..``MAX_YEAR`` (one line).
    """
    if not MIN_YEAR <= int(year) <= MAX_YEAR:
        raise WattbillError(f"{what}: {year} is outside the years wattbill bills ({MIN_YEAR}-{MAX_YEAR})")
    return int(year)
