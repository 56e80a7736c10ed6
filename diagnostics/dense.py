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

from wattbill._arrow import NO_BITMAP as _NO_BITMAP
from wattbill._arrow import string_runs
from wattbill._arrow import valid as _valid

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


def missing_by_month(present: np.ndarray, open_first: np.ndarray, open_last: np.ndarray, year: int) -> np.ndarray:
    """Open days without a read, per month: the days a bill of ``year`` cannot price.

    Parameters
    ----------
    present : bool[n, n_days]
        A read (measured or estimated by VEE) is stored for the day (``DenseYear.present``).
    open_first, open_last : int32[n]
        The account's open window in ``year`` [day index] (``-1``/``-1``: not open).
    year : int
        The year.

    Returns
    -------
    int32[n, 12]
        Days [days]. Their sum is the feature ``missing_days`` (``diagnostics.features``: open days
        without a read).

    Notes
    -----
    VEE estimates a gap only between two actual reads (the register difference spread over the days
    between them); the days before a meter's first read of the year or after its last one, and a
    daily-kWh meter's days without a value, stay missing. Those days' use is in no bill.
    """
    n, n_days = present.shape
    d = np.arange(n_days, dtype=np.int32)[None, :]
    gap = (d >= open_first[:, None]) & (d <= open_last[:, None]) & ~present
    starts = np.flatnonzero(np.r_[True, np.diff(month_of_day(year)) != 0])
    if n == 0:
        return np.zeros((0, 12), np.int32)
    return np.add.reduceat(gap, starts, axis=1).astype(np.int32)


def missing_ranges(present: np.ndarray, open_first: int, open_last: int, year: int) -> list[tuple[dt.date, dt.date]]:
    """The runs of open days without a read of one household, first to last.

    Parameters
    ----------
    present : bool[n_days]
        One row of ``DenseYear.present``.
    open_first, open_last : int
        The open window [day index] (``-1``: not open).
    year : int

    Returns
    -------
    list of (datetime.date, datetime.date)
        Each run's first and last day (inclusive).
    """
    if open_first < 0:
        return []
    gap = ~present[open_first : open_last + 1]
    if not gap.any():
        return []
    edges = np.diff(np.r_[0, gap.astype(np.int8), 0])
    first, last = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    jan1 = dt.date(year, 1, 1)
    return [(jan1 + dt.timedelta(days=int(a) + open_first), jan1 + dt.timedelta(days=int(b) + open_first))
            for a, b in zip(first, last, strict=True)]


def missing_ranges_json(present: np.ndarray, open_first: np.ndarray, open_last: np.ndarray, year: int) -> list[str]:
    """:func:`missing_ranges` of many households at once, each as the JSON a bill states
    (``missing_ranges``: ``[["2025-03-02", "2025-03-04"], ...]``, ``json.dumps``' separators; ``"[]"``
    for a household without such days).

    The same rule as :func:`missing_ranges` (which a test holds it equal to), in numpy over all rows: a
    bill run's chunk of 50,000 households, 1,500 of them with gaps, spent 0.3 s in a call per household.

    Parameters
    ----------
    present : bool[n, n_days]
        Rows of ``DenseYear.present``.
    open_first, open_last : int[n]
        Each household's open window [day index] (``-1``: not open).
    year : int

    Returns
    -------
    list of str
        One JSON text per row.
    """
    n, n_days = present.shape
    out = ["[]"] * n
    if n == 0:
        return out
    of, ol = np.asarray(open_first, np.int64), np.asarray(open_last, np.int64)
    d = np.arange(n_days, dtype=np.int64)[None, :]
    gap = (d >= of[:, None]) & (d <= ol[:, None]) & ~present & (of[:, None] >= 0)
    edges = np.diff(np.pad(gap.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    row_a, first = np.nonzero(edges == 1)
    _, after = np.nonzero(edges == -1)  # (row-major: each row's runs in order, starts and ends paired)
    if not row_a.size:
        return out
    jan1 = np.datetime64(f"{year}-01-01", "D")
    a_text = np.datetime_as_string(jan1 + first.astype("timedelta64[D]"), unit="D").tolist()
    b_text = np.datetime_as_string(jan1 + (after - 1).astype("timedelta64[D]"), unit="D").tolist()
    cuts = np.flatnonzero(np.r_[True, row_a[1:] != row_a[:-1], True])
    rows = row_a[cuts[:-1]].tolist()
    for r, lo, hi in zip(rows, cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
        out[r] = "[" + ", ".join(f'["{a_text[k]}", "{b_text[k]}"]' for k in range(lo, hi)) + "]"
    return out


@dataclass
class DenseYear:
    """Daily use of ``n`` households over one year as dense arrays, and per-household sums.

    Attributes
    ----------
    total : int32[n, n_days] or int64[n, n_days]
        Daily Wh summed over meters [Wh]; 0 where the day is missing. int32 when every value fits.
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
    regs : int32[n, n_days, 4] or int64[n, n_days, 4] or None
        Daily Wh per register (0 where unknown) [Wh], the dtype of ``total``; only with
        ``densify(..., with_regs=True)``.
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


@nb.njit(cache=True, inline="always")
def _sum(a):  # pragma: no cover - numba
    """Sum of an int64 array (a loop from 0, which LLVM vectorises)."""
    t = np.int64(0)
    for k in range(a.shape[0]):
        t += a[k]
    return t


@nb.njit(cache=True, inline="always")
def _run_bits(bitmap, offset, lo, hi):  # pragma: no cover - numba
    """Bits ``lo:hi`` of an Arrow bitmap (bit offset ``offset``): 1 all set (or an empty bitmap, i.e.
    no nulls), 0 none set, -1 mixed."""
    if bitmap.shape[0] == 0:
        return 1
    a = offset + lo
    b = offset + hi
    ones = 0
    j = a
    while j < b and (j & 7):
        ones += (bitmap[j >> 3] >> (j & 7)) & 1
        j += 1
    while j + 8 <= b:
        x = bitmap[j >> 3]
        if x == 255:
            ones += 8
        elif x != 0:
            return -1
        j += 8
    while j < b:
        ones += (bitmap[j >> 3] >> (j & 7)) & 1
        j += 1
    if ones == b - a:
        return 1
    return 0 if ones == 0 else -1


@nb.njit(cache=True, inline="always")
def _day_span(day, lo, hi):  # pragma: no cover - numba
    """First and last day of the rows ``lo:hi`` (``hi > lo``) and whether the days strictly increase."""
    rday = day[lo:hi]
    dmin = rday[0]
    dmax = rday[0]
    ordered = True
    for k in range(1, rday.shape[0]):  # (a slice and a loop from 0: no negative-index checks)
        dmin = min(dmin, rday[k])
        dmax = max(dmax, rday[k])
        ordered &= rday[k] > rday[k - 1]
    return dmin, dmax, ordered


@nb.njit(cache=True, inline="always")
def _classify_run(lo, hi, day, jan1, f, last, v0, v1, v2, v3, voff, has_regs, est, est_off):  # pragma: no cover
    """How the rows ``lo:hi`` of one customer (a run, ``hi > lo``) can be read.

    Returns ``(clean, ordered, regs_state, mask)``: ``clean`` when every row is within the open window
    ``f..last`` [day index], each period register is on every row or on none and nothing is estimated
    (nearly every run); ``ordered`` when the days strictly increase (one meter, one row a day);
    ``regs_state`` 1 when every row has the same non-empty set of period registers, 0 when no row has
    any, -1 mixed (see :func:`_run_bits`); ``mask`` the registers of that set (bit ``k``: register
    ``k``). A meter has the registers it has: a two-period meter (peak and valley) has period
    registers on every row; its sharp and flat are no kWh, not unknown.
    """
    dmin, dmax, ordered = _day_span(day, lo, hi)
    regs_state = 0
    mask = 0
    if has_regs:
        b0 = _run_bits(v0, voff[0], lo, hi)
        b1 = _run_bits(v1, voff[1], lo, hi)
        b2 = _run_bits(v2, voff[2], lo, hi)
        b3 = _run_bits(v3, voff[3], lo, hi)
        mask = (b0 == 1) * 1 + (b1 == 1) * 2 + (b2 == 1) * 4 + (b3 == 1) * 8
        if min(b0, b1, b2, b3) < 0:
            regs_state = -1
        elif mask:
            regs_state = 1
    est_none = est.shape[0] == 0 or _run_bits(est, est_off[0], lo, hi) == 0
    clean = dmin - jan1 >= f and dmax - jan1 <= last and regs_state >= 0 and est_none
    return clean, ordered, regs_state, mask


@nb.njit(cache=True, inline="always")
def _row_regs(v0, v1, v2, v3, voff, k, r0, r1, r2, r3):  # pragma: no cover - numba
    """Row ``k``'s period registers: (any present, the four values with 0 for an absent one) [Wh]."""
    a0 = _valid(v0, voff[0], k)
    a1 = _valid(v1, voff[1], k)
    a2 = _valid(v2, voff[2], k)
    a3 = _valid(v3, voff[3], k)
    x0 = r0[k] if a0 else 0
    x1 = r1[k] if a1 else 0
    x2 = r2[k] if a2 else 0
    x3 = r3[k] if a3 else 0
    return a0 or a1 or a2 or a3, x0, x1, x2, x3


@nb.njit(cache=True, inline="always")
def _write_run(i, a, b, day, jan1, total, r0, r1, r2, r3, mask, lo, hi, out_total, present, tou, reg_sum, tou_total,
               regs):  # pragma: no cover - numba
    """Add a clean run in day order (rows ``a:b``, see :func:`_classify_run`) into row ``i`` of the
    dense arrays, with the period registers of ``mask`` (the others are no kWh); False when a day's
    sum does not fit ``lo..hi`` (the dtype of ``out_total``)."""
    with_regs = regs.shape[0] > 0
    rday = day[a:b]
    rtot = total[a:b]
    tt = np.int64(0)
    for k in range(rday.shape[0]):
        d = rday[k] - jan1
        v = rtot[k]
        x = out_total[i, d] + v  # (added: another run of the customer may have the day)
        if x < lo or x > hi:
            return False
        out_total[i, d] = x
        present[i, d] = True
        tt += v
    if mask == 0:
        return True
    # (an absent register's values are unspecified: read a present one in its place, times 0)
    m0 = np.int64(mask & 1)
    m1 = np.int64((mask >> 1) & 1)
    m2 = np.int64((mask >> 2) & 1)
    m3 = np.int64((mask >> 3) & 1)
    x0 = r0[a:b] if m0 else total[a:b]
    x1 = r1[a:b] if m1 else total[a:b]
    x2 = r2[a:b] if m2 else total[a:b]
    x3 = r3[a:b] if m3 else total[a:b]
    s0 = np.int64(0)
    s1 = np.int64(0)
    s2 = np.int64(0)
    s3 = np.int64(0)
    for k in range(rday.shape[0]):
        d = rday[k] - jan1
        tou[i, d] = True
        s0 += x0[k] * m0
        s1 += x1[k] * m1
        s2 += x2[k] * m2
        s3 += x3[k] * m3
        if with_regs:
            y0 = regs[i, d, 0] + x0[k] * m0
            y1 = regs[i, d, 1] + x1[k] * m1
            y2 = regs[i, d, 2] + x2[k] * m2
            y3 = regs[i, d, 3] + x3[k] * m3
            if min(y0, y1, y2, y3) < lo or max(y0, y1, y2, y3) > hi:
                return False
            regs[i, d, 0] = y0
            regs[i, d, 1] = y1
            regs[i, d, 2] = y2
            regs[i, d, 3] = y3
    tou_total[i] += tt
    reg_sum[i, 0] += s0
    reg_sum[i, 1] += s1
    reg_sum[i, 2] += s2
    reg_sum[i, 3] += s3
    return True


@nb.njit(cache=True)
def _scatter(bounds, run_cust, day, jan1, total, r0, r1, r2, r3, v0, v1, v2, v3, voff, has_regs, est, est_valid,
             est_off,
             open_first, open_last, out_total, present, tou, estimated, reg_sum, tou_total,
             regs):  # pragma: no cover - numba (its twin runs in the tests)
    """Add every daily row into the dense arrays (allocated and zeroed by the caller).

    ``v0..v3`` are the Arrow validity bitmaps of the register columns (bit offsets ``voff``; empty =
    no nulls): a row has period registers when any of the four is valid (and ``has_regs``); an absent
    one is no kWh in its period (a meter without that register). ``est`` and
    ``est_valid`` are the value and validity bitmaps of ``estimated`` (bit offsets ``est_off``; an empty
    ``est``: no column, nothing estimated). ``regs`` has 0
    rows when the daily registers are not kept. Returns False, with the arrays partly filled, as soon
    as a day's sum does not fit the dtype of ``out_total``/``regs`` (the caller then uses int64).
    """
    with_regs = regs.shape[0] > 0
    lo = np.iinfo(out_total.dtype).min
    hi = np.iinfo(out_total.dtype).max
    for r in range(run_cust.shape[0]):
        i = run_cust[r]
        if i < 0:
            continue
        f = open_first[i]
        last = open_last[i]
        if f < 0:  # (not open in the year; a row of the day before Jan 1 would be day -1)
            continue
        if bounds[r + 1] == bounds[r]:
            continue
        clean, ordered, _regs_state, mask = _classify_run(bounds[r], bounds[r + 1], day, jan1, f, last, v0, v1, v2,
                                                         v3, voff, has_regs, est, est_off)
        if clean and ordered:  # one row a day: no per-row checks; sums in registers
            if not _write_run(i, bounds[r], bounds[r + 1], day, jan1, total, r0, r1, r2, r3, mask, lo, hi,
                              out_total, present, tou, reg_sum, tou_total, regs):
                return False
            continue
        for k in range(bounds[r], bounds[r + 1]):
            d = day[k] - jan1
            if d < f or d > last:
                continue
            v = total[k]
            x = out_total[i, d] + v
            if x < lo or x > hi:
                return False
            out_total[i, d] = x
            present[i, d] = True
            if est.shape[0] and _valid(est, est_off[0], k) and _valid(est_valid, est_off[1], k):
                estimated[i, d] = True
            if not has_regs:
                continue
            any_reg, x0, x1, x2, x3 = _row_regs(v0, v1, v2, v3, voff, k, r0, r1, r2, r3)
            if any_reg:
                tou[i, d] = True
                tou_total[i] += v
                reg_sum[i, 0] += x0
                reg_sum[i, 1] += x1
                reg_sum[i, 2] += x2
                reg_sum[i, 3] += x3
                if with_regs:
                    for c, rv in enumerate((x0, x1, x2, x3)):
                        y = regs[i, d, c] + rv
                        if y < lo or y > hi:
                            return False
                        regs[i, d, c] = y
    return True


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


def _run_bounds(ids: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Row bounds of the runs of equal values of a string column (nulls equal to each other), and the
    value of each run (:func:`wattbill._arrow.string_runs`: read from the Arrow views, else polars'
    run-length encoding)."""
    return string_runs(ids.cast(pl.Utf8))


def _runs(customers: pl.DataFrame, daily: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Runs of consecutive equal ``customer_id`` in ``daily``: row bounds and the customer index of each.

    A frame grouped by customer (as the store returns it) has one run per customer, so only that many
    ids are looked up (one join of ``n`` strings); any order is correct, only slower.

    Returns
    -------
    (int64[n_runs + 1], int64[n_runs])
        Run ``r`` holds rows ``bounds[r]:bounds[r + 1]``; its customer's row in ``customers`` (-1: not
        there).
    """
    bounds, values = _run_bounds(daily.get_column("customer_id"))
    keys = customers.select(pl.col("customer_id").cast(pl.Utf8),
                            pl.int_range(pl.len(), dtype=pl.Int64).alias("__i"))
    j = pl.DataFrame({"customer_id": values}).join(keys, on="customer_id", how="left", maintain_order="left")
    return bounds, j.get_column("__i").fill_null(-1).to_numpy()


def _ints(s: pl.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer column -> (int64 values, Arrow validity bitmap or an empty one, its bit offset).

    Values under nulls are unspecified (callers read the bitmap). Zero-copy where polars and Arrow
    allow (no cast, a single chunk).
    """
    if s.dtype != pl.Int64:
        s = s.cast(pl.Int64)
    if not s.null_count():
        return s.to_numpy(), _NO_BITMAP, 0
    a = s.to_arrow()
    if hasattr(a, "combine_chunks"):
        a = a.combine_chunks()
    values = np.frombuffer(a.buffers()[1], dtype=np.int64, count=len(a) + a.offset)[a.offset:]
    return values, np.frombuffer(a.buffers()[0], dtype=np.uint8), int(a.offset)


def _bools(s: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean column -> (Arrow value bitmap, validity bitmap or an empty one, their bit offsets [2]).

    Read in place by the kernel instead of unpacking the bits into a bool array.
    """
    if s.dtype != pl.Boolean:
        s = s.cast(pl.Boolean)
    a = s.to_arrow()
    if hasattr(a, "combine_chunks"):
        a = a.combine_chunks()
    validity, values = a.buffers()[:2]
    if values is None:  # (an all-null column may come without values)
        return np.zeros(max(1, (len(a) + a.offset + 7) // 8), np.uint8), _NO_BITMAP, np.zeros(2, np.int64)
    return (np.frombuffer(values, np.uint8), _NO_BITMAP if validity is None else np.frombuffer(validity, np.uint8),
            np.array([a.offset, a.offset], np.int64))


@dataclass
class DailyColumns:
    """The columns of a ``DAILY_SCHEMA`` frame as the row kernels read them (zero-copy where possible).

    Attributes
    ----------
    bounds, run_cust : int64[r + 1], int64[r]
        Runs of equal ``customer_id`` and the row of each in ``customers`` (-1: not there).
    day : int32[rows]
        Days since 1970-01-01; ``jan1`` is the year's first.
    total : int64[rows]
        ``wh_total`` (nulls as 0) [Wh].
    regs, valid, voff : list of int64[rows], list of uint8 bitmaps, int64[4]
        The period registers [Wh], their Arrow validity bitmaps (empty: no nulls) and bit offsets;
        ``has_regs`` False when the frame has no register columns.
    est, est_valid, est_off : uint8, uint8, int64[2]
        ``estimated`` as Arrow value and validity bitmaps and their bit offsets (empty: no column).
    open_first, open_last : int32[n]
        The open window of each customer (:func:`open_window`).
    """

    bounds: np.ndarray
    run_cust: np.ndarray
    day: np.ndarray
    jan1: int
    total: np.ndarray
    regs: list[np.ndarray]
    valid: list[np.ndarray]
    voff: np.ndarray
    has_regs: bool
    est: np.ndarray
    est_valid: np.ndarray
    est_off: np.ndarray
    open_first: np.ndarray
    open_last: np.ndarray

    def scatter_args(self) -> tuple:
        """The row arguments of the row kernels, ``bounds`` .. ``est_off``, in their order."""
        return (self.bounds, self.run_cust, self.day, self.jan1, self.total, *self.regs, *self.valid, self.voff,
                self.has_regs, self.est, self.est_valid, self.est_off)

    def one_run_per_customer(self) -> bool:
        """Every customer's rows are one run (the frame is grouped by customer, as the stores return it)."""
        known = self.run_cust[self.run_cust >= 0]
        return known.size == 0 or int(np.bincount(known).max()) <= 1


def daily_columns(daily: pl.DataFrame, customers: pl.DataFrame, year: int) -> DailyColumns:
    """Read a ``DAILY_SCHEMA`` frame's columns for the row kernels (see :class:`DailyColumns`)."""
    first, last = open_window(customers, year)
    jan1 = (dt.date(year, 1, 1) - _EPOCH).days
    if daily.height == 0 or customers.height == 0:
        daily = pl.DataFrame(schema={"customer_id": pl.Utf8, "day": pl.Date, "wh_total": pl.Int64})
    bounds, run_cust = _runs(customers, daily) if daily.height else (np.zeros(1, np.int64), np.zeros(0, np.int64))
    cols = daily.columns
    day = daily.get_column("day").to_physical().cast(pl.Int32).to_numpy()
    tot = daily.get_column("wh_total")
    total = _ints(tot.fill_null(0) if tot.null_count() else tot)[0]
    has_regs = all(f"wh_{r}" in cols for r in REGISTERS)
    regs, valid, voff = [], [], np.zeros(4, np.int64)
    for k, r in enumerate(REGISTERS):
        if has_regs:
            values, bitmap, voff[k] = _ints(daily.get_column(f"wh_{r}"))
        else:
            values, bitmap = np.zeros(0, np.int64), _NO_BITMAP
        regs.append(values)
        valid.append(bitmap)
    est, est_valid, est_off = _bools(daily.get_column("estimated")) if "estimated" in cols else (
        _NO_BITMAP, _NO_BITMAP, np.zeros(2, np.int64))
    ro = _readonly
    return DailyColumns(ro(bounds), ro(run_cust), ro(day), jan1, ro(total), [ro(a) for a in regs],
                        [ro(a) for a in valid], ro(voff), has_regs, ro(est), ro(est_valid), ro(est_off), ro(first),
                        ro(last))


def _readonly(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only array (a view, no copy).

    numba compiles a kernel once per combination of argument types, and a read-only array (a
    zero-copy Arrow buffer) is another type than a writable one (a copy, a multi-chunk column): the
    same rows could then cost one compilation (~55 CPU-s for ``_scatter``) per combination met,
    run after run. Every row argument read-only gives the kernels one signature."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


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

    Notes
    -----
    ``total`` and ``regs`` are int32 when every day's sum fits (half the memory, which is most of the
    cost here), else int64.
    """
    n = customers.height
    n_days = days_in_year(year)
    c = daily_columns(daily, customers, year)
    first, last = c.open_first, c.open_last
    for dtype in (np.int32, np.int64):
        # numpy's zeroed allocations (calloc, huge pages) cost less than numba's for these sizes
        out = DenseYear(np.zeros((n, n_days), dtype), np.zeros((n, n_days), np.bool_),
                        np.zeros((n, n_days), np.bool_), np.zeros((n, n_days), np.bool_), first, last,
                        np.zeros((n, 4), np.int64), np.zeros(n, np.int64),
                        np.zeros((n if with_regs else 0, n_days, 4), dtype))
        if _scatter(*c.scatter_args(), first, last, out.total, out.present, out.tou,  # type: ignore[call-arg]
                    out.estimated, out.reg_sum, out.tou_total, out.regs):
            break
    if not with_regs:
        out.regs = None
    return out
