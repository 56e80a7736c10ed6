"""Daily frames (``DAILY_SCHEMA``) turned into dense per-household arrays.

The features are computed by numba kernels over dense ``[n, n_days]`` arrays, one row per customer of
the ``customers`` frame (in its order) and one column per day of the year. Meters are summed per
customer and day (a meter exchange day has two meters). The frame is read column by column into
numpy (zero-copy where polars allows) and scattered in one numba pass; rows of customers that are not
in ``customers``, of other years, or outside the account's open window are ignored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numba as nb
import numpy as np
import polars as pl

REGISTERS: tuple[str, ...] = ("sharp", "peak", "flat", "valley")
_EPOCH = dt.date(1970, 1, 1)


def take_rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]`` for sorted row indices, as a view (no copy) when they are one contiguous range.

    The bill run sorts each chunk by tariff, so a tariff's households are such a range.
    """
    if rows.size and int(rows[-1]) - int(rows[0]) + 1 == rows.size:
        return a[int(rows[0]) : int(rows[-1]) + 1]
    return a[rows]


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
    """Daily use of ``n`` households over one year as dense arrays, and per-household sums.

    Attributes
    ----------
    total : int64[n, n_days]
        Daily Wh summed over meters [Wh]; 0 where the day is missing.
    present : bool[n, n_days]
        A read exists for the customer and day (within the open window).
    tou : bool[n, n_days]
        A read with period registers exists for the day.
    estimated : bool[n, n_days]
        At least one row of the day was estimated by VEE.
    open_first, open_last : int32[n]
        Day index of the first and last open day of the account in the year (``-1``/``-1`` if the
        account was not open at all).
    reg_sum : int64[n, 4]
        Wh per register over the rows with period registers [Wh].
    tou_total : int64[n]
        ``wh_total`` over the same rows [Wh].
    regs : int64[n, n_days, 4] or None
        Daily Wh per register (0 where unknown) [Wh]; only with ``densify(..., with_regs=True)``.
    """

    total: np.ndarray
    present: np.ndarray
    tou: np.ndarray
    estimated: np.ndarray
    open_first: np.ndarray
    open_last: np.ndarray
    reg_sum: np.ndarray
    tou_total: np.ndarray
    regs: np.ndarray | None = None


@nb.njit(cache=True)
def _scatter(run_id, run_cust, day, jan1, total, r0, r1, r2, r3, tou_row, est, open_first, open_last, n, n_days,
             with_regs):  # pragma: no cover - numba
    out_total = np.zeros((n, n_days), np.int64)
    present = np.zeros((n, n_days), np.bool_)
    tou = np.zeros((n, n_days), np.bool_)
    estimated = np.zeros((n, n_days), np.bool_)
    reg_sum = np.zeros((n, 4), np.int64)
    tou_total = np.zeros(n, np.int64)
    regs = np.zeros((n if with_regs else 0, n_days, 4), np.int64)
    for k in range(run_id.shape[0]):
        i = run_cust[run_id[k]]
        if i < 0:
            continue
        d = day[k] - jan1
        if d < open_first[i] or d > open_last[i]:
            continue
        v = total[k]
        out_total[i, d] += v
        present[i, d] = True
        if est[k]:
            estimated[i, d] = True
        if tou_row[k]:
            tou[i, d] = True
            tou_total[i] += v
            reg_sum[i, 0] += r0[k]
            reg_sum[i, 1] += r1[k]
            reg_sum[i, 2] += r2[k]
            reg_sum[i, 3] += r3[k]
            if with_regs:
                regs[i, d, 0] += r0[k]
                regs[i, d, 1] += r1[k]
                regs[i, d, 2] += r2[k]
                regs[i, d, 3] += r3[k]
    return out_total, present, tou, estimated, reg_sum, tou_total, regs


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
    first = np.zeros(n, np.int64)
    last = np.full(n, n_days - 1, np.int64)
    cols = customers.columns
    if "opened_on" in cols:
        o = customers.select(((pl.col("opened_on") - pl.lit(jan1)).dt.total_days()).fill_null(0))
        first = np.clip(o.to_series().to_numpy(), 0, None)
    if "closed_on" in cols:
        c = customers.select(((pl.col("closed_on") - pl.lit(jan1)).dt.total_days()).fill_null(n_days - 1))
        last = np.clip(c.to_series().to_numpy(), None, n_days - 1)
    dead = (first > last) | (first >= n_days) | (last < 0)
    return (np.where(dead, -1, first).astype(np.int32), np.where(dead, -1, last).astype(np.int32))


def _runs(customers: pl.DataFrame, daily: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Run id of each daily row (consecutive equal ``customer_id``) and the customer index of each run.

    A frame grouped by customer (as the store returns it) has one run per customer, so only that many
    ids are looked up; any order is correct, only slower.
    """
    ids = daily.get_column("customer_id")
    run_id = ids.rle_id().to_numpy()
    starts = _run_starts(run_id)
    keys = customers.select(pl.col("customer_id").cast(pl.Utf8),
                            pl.int_range(pl.len(), dtype=pl.Int64).alias("__i"))
    run_ids = pl.DataFrame({"customer_id": ids.gather(starts).cast(pl.Utf8)})
    j = run_ids.join(keys, on="customer_id", how="left", maintain_order="left")
    return run_id, j.get_column("__i").fill_null(-1).to_numpy()


@nb.njit(cache=True)
def _run_starts(run_id):  # pragma: no cover - numba
    """Row index where each run of ``run_id`` (0, 0, 1, 1, 1, 2, ...) starts."""
    n_runs = int(run_id[-1]) + 1 if run_id.shape[0] else 0
    out = np.zeros(n_runs, np.int64)
    for k in range(1, run_id.shape[0]):
        if run_id[k] != run_id[k - 1]:
            out[run_id[k]] = k
    return out


def _ints(s: pl.Series) -> np.ndarray:
    """Integer column -> int64 numpy; values under nulls are unspecified (callers mask them).

    Zero-copy where polars and Arrow allow (no cast, a single chunk).
    """
    if s.dtype != pl.Int64:
        s = s.cast(pl.Int64)
    if not s.null_count():
        return s.to_numpy()
    a = s.to_arrow()
    if hasattr(a, "combine_chunks"):
        a = a.combine_chunks()
    return np.frombuffer(a.buffers()[1], dtype=np.int64, count=len(a) + a.offset)[a.offset:]


def densify(daily: pl.DataFrame, customers: pl.DataFrame, year: int, with_regs: bool = False) -> DenseYear:
    """Turn a ``DAILY_SCHEMA`` frame into a :class:`DenseYear` aligned to ``customers``.

    Parameters
    ----------
    daily : pl.DataFrame
        ``DAILY_SCHEMA`` rows; rows outside ``year`` or of unknown customers are ignored.
    customers : pl.DataFrame
        ``CUSTOMER_SCHEMA`` rows (at least ``customer_id``), one per customer; output order.
    year : int
        The year.
    with_regs : bool
        Also keep the daily registers (``regs``; needed to bill, not for the features).
    """
    n = customers.height
    n_days = days_in_year(year)
    first, last = open_window(customers, year)
    jan1 = (dt.date(year, 1, 1) - _EPOCH).days
    if daily.height == 0 or n == 0:
        daily = pl.DataFrame(schema={"customer_id": pl.Utf8, "day": pl.Date, "wh_total": pl.Int64})
    run_id, run_cust = _runs(customers, daily) if daily.height else (np.zeros(0, np.uint32), np.zeros(0, np.int64))
    cols = daily.columns
    day = daily.get_column("day").to_physical().cast(pl.Int32).to_numpy()
    tot = daily.get_column("wh_total")
    total = _ints(tot.fill_null(0) if tot.null_count() else tot)
    nrows = daily.height
    regs = []
    tou_row = np.ones(nrows, np.bool_)
    for r in REGISTERS:
        c = f"wh_{r}"
        if c in cols:
            s = daily.get_column(c)
            if s.null_count():
                tou_row &= s.is_not_null().to_numpy()
            regs.append(_ints(s))
        else:
            tou_row[:] = False
            regs.append(np.zeros(nrows, np.int64))
    est = (daily.get_column("estimated").fill_null(False).to_numpy() if "estimated" in cols
           else np.zeros(nrows, np.bool_))
    t, present, tou, estd, reg_sum, tou_total, dregs = _scatter(
        run_id, run_cust, day, jan1, total, regs[0], regs[1], regs[2], regs[3], tou_row, est, first, last, n, n_days,
        with_regs)
    return DenseYear(t, present, tou, estd, first, last, reg_sum, tou_total, dregs if with_regs else None)
