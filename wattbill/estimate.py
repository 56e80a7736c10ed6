"""The running charge of one household's year so far ("每日电费实时测算"): one place for
``wattbill estimate`` and the statement service.

The money comes from ``tariffs.running_charge``, the kernels of the bill run (tier split, rounding
to the fen per month, every day priced by the tariff version in force that day), fed with the
household's days as the bill run feeds them: screened by ``pipeline.screen_daily`` (a day beyond what
a connection can draw is not billed) and laid out by ``diagnostics.densify`` (meters summed per day, a
register the meter does not have is no kWh, the account's open window), so an estimate through
31 December equals the year's bill.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from wattbill.errors import NothingToBill, WattbillError


@dataclass(frozen=True)
class Running:
    """The year of one household from 1 January through ``through``.

    ``fen`` [fen] and ``wh`` [Wh] so far, ``tier`` (1..3) reached by the last counted Wh,
    ``month_fen`` (12 entries [fen], months after ``through`` are 0), ``tariff`` (its code).
    """

    through: dt.date
    fen: int
    wh: int
    tier: int
    month_fen: list[int]
    tariff: str
    #: open days through ``through`` without a read (their use is not counted) and their runs
    missing_days: int = 0
    missing_ranges: tuple[tuple[dt.date, dt.date], ...] = ()


def running_charge_for(
    catalog: Any, customers: pl.DataFrame, daily: pl.DataFrame, through: dt.date,
) -> tuple[Any, Any, list[tuple[dt.date, dt.date]]]:
    """The tariff schedule of the year and ``tariffs.RunningCharge`` of one household through ``through``.

    Parameters
    ----------
    catalog : tariffs.Catalog
    customers : DataFrame[CUSTOMER_SCHEMA]
        One row: the household.
    daily : DataFrame[DAILY_SCHEMA]
        Its rows of ``through.year`` (all meters) [Wh].
    through : date
        The last day counted.

    Returns
    -------
    schedule : tariffs.TariffSchedule
        The versions of the household's tariff in force during the year.
    charge : tariffs.RunningCharge
        Arrays of length 1 [fen, Wh].
    missing : list of (date, date)
        The runs of open days through ``through`` without a read (``diagnostics.dense.missing_ranges``,
        the bill's rule): their use is not in the charge.

    Raises
    ------
    NothingToBill
        The account is not open in that year.
    WattbillError
        ``through`` outside the years wattbill bills (``wattbill.years``), or a day beyond what a residential connection can draw (``ingest.limits``).
    TariffError, KeyError
        From the catalogue (unknown tariff) or the kernels (a register without a price).
    """
    from wattbill.diagnostics import densify
    from wattbill.diagnostics.dense import missing_ranges
    from wattbill.pipeline import screen_daily
    from wattbill.tariffs import running_charge
    from wattbill.years import check_year

    year = check_year(through.year, "through")
    row = customers.row(0, named=True)
    schedule = catalog.schedule(row["tariff"], year)  # each day priced by the version in force that day
    daily, bad = screen_daily(daily, year)
    if bad:
        raise WattbillError(f"customer {row['customer_id']!r}: {bad[0]['code']}: {bad[0]['detail']}")
    dense = densify(daily, customers.head(1), year, with_regs=True)
    first, last = int(dense.open_first[0]), int(dense.open_last[0])
    if first < 0 or first > last:
        raise NothingToBill(f"customer {row['customer_id']!r}: account not open in {year}")
    sizes = customers.head(1)["household_size"].fill_null(1).to_numpy().astype(np.int64)  # as the bill run
    through_day = (through - dt.date(year, 1, 1)).days
    charge = running_charge(schedule, year, dense.total, dense.regs, dense.open_first, dense.open_last, sizes,
                            through_day)
    missing = missing_ranges(dense.present[0], first, min(last, through_day), year) if through_day >= first else []
    return schedule, charge, missing


def running_for_customer(catalog: Any, customer: dict[str, Any], daily: pl.DataFrame, through: dt.date) -> Running:
    """The running charge of ``customer`` (a ``CUSTOMER_SCHEMA`` row) from 1 January of ``through.year``
    through ``through``; see :func:`running_charge_for` for the rules and the errors."""
    from wattbill.ingest.schemas import CUSTOMER_SCHEMA

    row = {k: customer.get(k) for k in CUSTOMER_SCHEMA}
    customers = pl.DataFrame([row], schema=CUSTOMER_SCHEMA)
    schedule, rc, missing = running_charge_for(catalog, customers, daily, through)
    through_day = (through - dt.date(through.year, 1, 1)).days
    tariff = schedule.on(through_day) or schedule.latest
    return Running(through, int(rc.fen[0]), int(rc.wh[0]), int(rc.tier[0]),
                   [int(x) for x in rc.month_fen[0]], str(tariff.code),
                   sum((b - a).days + 1 for a, b in missing), tuple(missing))
