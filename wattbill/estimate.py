"""The running charge of one household's year so far ("每日电费实时测算"): one place for
``wattbill estimate`` and the statement service.

The money comes from ``tariffs.running_charge``, the kernels of the bill run (tier split, rounding
to the fen per month), fed with the household's days summed over its meters, as the bill run does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from wattbill.errors import NothingToBill
from wattbill.ingest.schemas import REGISTERS
from wattbill.tariffs.reference import days_in_year


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


def customer_arrays(daily: pl.DataFrame, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Daily Wh of one customer's rows, meters summed per day, null registers counted as 0.

    Parameters
    ----------
    daily : DataFrame[DAILY_SCHEMA]
        One customer's rows (any order; rows outside ``year`` are ignored).
    year : int

    Returns
    -------
    total : int64[1, n_days] [Wh]
    regs : int64[1, n_days, 4] [Wh], registers in ``REGISTERS`` order
    """
    n_days = days_in_year(year)
    total = np.zeros((1, n_days), np.int64)
    regs = np.zeros((1, n_days, 4), np.int64)
    if daily.height:
        per_day = (
            daily.with_columns(((pl.col("day") - pl.date(year, 1, 1)).dt.total_days()).alias("d"))
            .group_by("d")
            .agg(pl.col("wh_total").fill_null(0).sum(), *(pl.col(f"wh_{r}").fill_null(0).sum() for r in REGISTERS))
            .filter((pl.col("d") >= 0) & (pl.col("d") < n_days))
        )
        d = per_day["d"].to_numpy()
        total[0, d] = per_day["wh_total"].to_numpy()
        for k, r in enumerate(REGISTERS):
            regs[0, d, k] = per_day[f"wh_{r}"].to_numpy()
    return total, regs


def open_span(customer: dict[str, Any], year: int) -> tuple[int, int]:
    """First and last open day index of ``year`` from ``opened_on`` / ``closed_on``.

    Raises
    ------
    NothingToBill
        When the account is not open on any day of ``year``.
    """
    jan1 = dt.date(year, 1, 1)
    n_days = days_in_year(year)
    opened, closed = customer.get("opened_on"), customer.get("closed_on")
    first = max((opened - jan1).days, 0) if opened else 0
    last = min((closed - jan1).days, n_days - 1) if closed else n_days - 1
    if first > last:
        raise NothingToBill(f"customer {customer.get('customer_id')!r}: account not open in {year}")
    return first, last


def running_for_customer(catalog: Any, customer: dict[str, Any], daily: pl.DataFrame, through: dt.date) -> Running:
    """The running charge of ``customer`` from 1 January of ``through.year`` through ``through``.

    Parameters
    ----------
    catalog : tariffs.Catalog
        The tariff of ``customer["tariff"]`` in force on ``through`` is used.
    customer : dict
        A ``CUSTOMER_SCHEMA`` row.
    daily : DataFrame[DAILY_SCHEMA]
        The customer's rows of ``through.year`` (all meters).
    through : date
        The last day counted.

    Returns
    -------
    Running

    Raises
    ------
    NothingToBill
        The account is not open in that year.
    TariffError, KeyError
        From the catalogue (unknown tariff) or the kernels (a register without a price).
    """
    year = through.year
    tariff = catalog.get(customer["tariff"], on=through)
    first, last = open_span(customer, year)
    total, regs = customer_arrays(daily, year)
    from wattbill.tariffs import running_charge

    rc = running_charge(
        tariff, year, total, regs, np.array([first]), np.array([last]),
        np.array([int(customer.get("household_size") or 1)]), (through - dt.date(year, 1, 1)).days,
    )
    return Running(through, int(rc.fen[0]), int(rc.wh[0]), int(rc.tier[0]),
                   [int(x) for x in rc.month_fen[0]], str(tariff.code))
