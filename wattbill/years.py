"""The bill years wattbill accepts, in one place for the command line, the running charge and the web API.

Reads before 1990 are refused at ingest (``ingest.vee``); 2199 bounds what the calendar arithmetic of
the kernels and of polars' dates is tested for.
"""

from __future__ import annotations

from wattbill.errors import WattbillError

MIN_YEAR, MAX_YEAR = 1990, 2199


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
