"""An independent, plain layout of one customer's daily rows for the tests' ``Decimal`` references
(deliberately not ``diagnostics.densify``, which the code under test uses)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from wattbill.errors import NothingToBill
from wattbill.ingest.schemas import REGISTERS
from wattbill.tariffs.reference import days_in_year


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
