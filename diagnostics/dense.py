"""Daily frames (``DAILY_SCHEMA``) turned into dense per-household arrays.

The features are computed by numba kernels over dense ``[n, n_days]`` arrays, one row per customer of
the ``customers`` frame (in its order) and one column per day of the year. Meters are summed per
customer and day (a meter exchange day has two meters).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numba as nb
import numpy as np
import polars as pl

REGISTERS: tuple[str, ...] = ("sharp", "peak", "flat", "valley")


def days_in_year(year: int) -> int:
    """Number of days of ``year`` [days]."""
    return (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days


def month_of_day(year: int) -> np.ndarray:
    """Month index 0..11 of every day index of ``year``, ``int8[n_days]``."""
    start = np.datetime64(f"{year}-01-01")
    days = start + np.arange(days_in_year(year))
    return (days.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int8)


@dataclass
class DenseYear:
    """Daily use of ``n`` households over one year as dense arrays.

    Attributes
    ----------
    total : int64[n, n_days]
        Daily Wh summed over meters [Wh]; 0 where the day is missing.
    regs : int64[n, n_days, 4]
        Daily Wh per register (``REGISTERS`` order) [Wh]; 0 where unknown.
    present : bool[n, n_days]
        A read exists for the customer and day.
    tou : bool[n, n_days]
        The period registers are known for that day (all meters of the day had them).
    estimated : bool[n, n_days]
        At least one row of the day was estimated by VEE.
    open_first, open_last : int32[n]
        Day index of the first and last open day of the account in the year (``-1``/``-1`` if the
        account was not open at all).
    """

    total: np.ndarray
    regs: np.ndarray
    present: np.ndarray
    tou: np.ndarray
    estimated: np.ndarray
    open_first: np.ndarray
    open_last: np.ndarray


@nb.njit(cache=True)
def _scatter(idx, day, total, regs, tou, est, n, n_days):  # pragma: no cover - numba
    out_total = np.zeros((n, n_days), np.int64)
    out_regs = np.zeros((n, n_days, 4), np.int64)
    present = np.zeros((n, n_days), np.bool_)
    tou_ok = np.zeros((n, n_days), np.bool_)
    notou = np.zeros((n, n_days), np.bool_)
    estimated = np.zeros((n, n_days), np.bool_)
    for k in range(idx.shape[0]):
        i = idx[k]
        d = day[k]
        if i < 0 or d < 0 or d >= n_days:
            continue
        out_total[i, d] += total[k]
        present[i, d] = True
        if tou[k]:
            tou_ok[i, d] = True
            for r in range(4):
                out_regs[i, d, r] += regs[k, r]
        else:
            notou[i, d] = True
        if est[k]:
            estimated[i, d] = True
    for i in range(n):
        for d in range(n_days):
            if notou[i, d]:
                tou_ok[i, d] = False
    return out_total, out_regs, present, tou_ok, estimated


def open_window(customers: pl.DataFrame, year: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last open day index of each customer within ``year``.

    Parameters
    ----------
    customers : pl.DataFrame
        Frame with ``opened_on`` and ``closed_on`` (Date, null = open before / still open); missing
        columns mean "open the whole year".
    year : int
        The billing year.

    Returns
    -------
    (int32[n], int32[n])
        Day indices [day]; ``(-1, -1)`` for an account not open at all in ``year``.
    """
    n_days = days_in_year(year)
    jan1 = dt.date(year, 1, 1)
    n = customers.height
    first = np.zeros(n, np.int32)
    last = np.full(n, n_days - 1, np.int32)
    cols = customers.columns
    if "opened_on" in cols:
        o = customers.select(((pl.col("opened_on") - pl.lit(jan1)).dt.total_days()).fill_null(0))
        first = np.clip(o.to_series().to_numpy(), 0, None).astype(np.int32)
    if "closed_on" in cols:
        c = customers.select(((pl.col("closed_on") - pl.lit(jan1)).dt.total_days()).fill_null(n_days - 1))
        last = np.clip(c.to_series().to_numpy(), None, n_days - 1).astype(np.int32)
    dead = (first > last) | (first >= n_days) | (last < 0)
    first = np.where(dead, -1, first).astype(np.int32)
    last = np.where(dead, -1, last).astype(np.int32)
    return first, last


def customer_index(customers: pl.DataFrame, daily: pl.DataFrame) -> np.ndarray:
    """Row index into ``customers`` of each row of ``daily`` (``-1`` for unknown customers), int64."""
    keys = customers.select(pl.col("customer_id"), pl.int_range(pl.len(), dtype=pl.Int64).alias("__i"))
    j = daily.select("customer_id").join(keys, on="customer_id", how="left", maintain_order="left")
    return j.get_column("__i").fill_null(-1).to_numpy()


def densify(daily: pl.DataFrame, customers: pl.DataFrame, year: int) -> DenseYear:
    """Turn a ``DAILY_SCHEMA`` frame into a :class:`DenseYear` aligned to ``customers``.

    Parameters
    ----------
    daily : pl.DataFrame
        ``DAILY_SCHEMA`` rows; rows outside ``year`` or of unknown customers are ignored.
    customers : pl.DataFrame
        ``CUSTOMER_SCHEMA`` rows (at least ``customer_id``), one per customer; output order.
    year : int
        The year.
    """
    n = customers.height
    n_days = days_in_year(year)
    jan1 = dt.date(year, 1, 1)
    first, last = open_window(customers, year)
    if daily.height == 0 or n == 0:
        z = np.zeros((n, n_days), np.int64)
        return DenseYear(z, np.zeros((n, n_days, 4), np.int64), z.astype(bool), z.astype(bool),
                         z.astype(bool), first, last)
    idx = customer_index(customers, daily)
    cols = daily.columns
    reg_exprs = [
        (pl.col(f"wh_{r}") if f"wh_{r}" in cols else pl.lit(None, pl.Int64)).alias(f"wh_{r}") for r in REGISTERS
    ]
    f = daily.select(
        (pl.col("day") - pl.lit(jan1)).dt.total_days().cast(pl.Int64).alias("d"),
        pl.col("wh_total").fill_null(0).cast(pl.Int64),
        *reg_exprs,
        (pl.col("estimated").fill_null(False) if "estimated" in cols else pl.lit(False)).alias("est"),
    ).with_columns(
        pl.all_horizontal([pl.col(f"wh_{r}").is_not_null() for r in REGISTERS]).alias("tou"),
    )
    day = f.get_column("d").to_numpy()
    total = f.get_column("wh_total").to_numpy()
    regs = np.ascontiguousarray(
        np.stack([f.get_column(f"wh_{r}").fill_null(0).to_numpy() for r in REGISTERS], axis=1).astype(np.int64)
    )
    tou = f.get_column("tou").to_numpy()
    est = f.get_column("est").to_numpy()
    t, rg, present, tou_ok, estd = _scatter(idx, day, total, regs, tou, est, n, n_days)
    return DenseYear(t, rg, present, tou_ok, estd, first, last)
