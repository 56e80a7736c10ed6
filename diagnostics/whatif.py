"""Tariff what-if: the charge under every alternative tariff, and of shifting peak use to the valley.

This is the only module of ``diagnostics`` that uses ``tariffs`` (imported when called, so that the
rest of the package works on its own).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
import polars as pl

from wattbill.diagnostics.dense import DenseYear, densify
from wattbill.diagnostics.features import ALTERNATIVES_SCHEMA, BILLS_SCHEMA, bills_frame
from wattbill.diagnostics.kernels import count_days

SHIFT_FRACTION_TENTHS = 1
"""Share of sharp+peak Wh moved to the valley by the what-if [tenths]: 1 = 10 %."""


@nb.njit(cache=True, nogil=True)
def _shift_kernel(regs, tenths, out):  # pragma: no cover - numba (its twin runs in the tests)
    """Write ``regs`` with ``tenths``/10 of each day's sharp and peak Wh moved to valley into ``out``.

    Both C-contiguous; one flat pass over the days (the moved Wh rounded half-up: ``floor((x * tenths
    + 5) / 10)``, written with a division of non-negative numbers, which compiles to fewer
    instructions than Python's floor division of signed ones).
    """
    r = regs.reshape(-1, 4)
    o = out.reshape(-1, 4)
    t = np.int64(tenths)
    for k in range(r.shape[0]):
        sharp = np.int64(r[k, 0])
        peak = np.int64(r[k, 1])
        ms = sharp * t + 5
        mp = peak * t + 5
        ms = ms // 10 if ms >= 0 else -((9 - ms) // 10)
        mp = mp // 10 if mp >= 0 else -((9 - mp) // 10)
        o[k, 0] = sharp - ms
        o[k, 1] = peak - mp
        o[k, 2] = r[k, 2]
        o[k, 3] = r[k, 3] + ms + mp


def shift_peak_to_valley(regs: np.ndarray, tenths: int = SHIFT_FRACTION_TENTHS, *, use_py: bool = False,
                         out: np.ndarray | None = None) -> np.ndarray:
    """Registers with ``tenths``/10 of every day's sharp and peak Wh moved to valley (integer Wh).

    Parameters
    ----------
    regs : int[n, n_days, 4]
        Daily Wh per register (``REGISTERS`` order) [Wh].
    tenths : int
        How much to move [tenths]; each day's moved Wh are rounded half-up to the Wh.
    use_py : bool
        Run the kernel's plain-Python twin (tests).
    out : int[n, n_days, 4] or None
        Where to write the result (C-contiguous, the dtype of ``regs``; a reused buffer avoids
        touching fresh memory). None: a new int64 array.

    Returns
    -------
    int[n, n_days, 4]
        Same total per day [Wh]; ``out`` when given.
    """
    kernel = _shift_kernel.py_func if use_py else _shift_kernel
    if out is None:
        regs = np.ascontiguousarray(regs, dtype=np.int64)
        out = np.empty(regs.shape, np.int64)
    elif not regs.flags.c_contiguous:
        regs = np.ascontiguousarray(regs)
    elif out.shape != regs.shape or out.dtype != regs.dtype or not out.flags.c_contiguous:
        raise ValueError("out: expected a C-contiguous array of the shape and dtype of regs")
    kernel(regs, regs.dtype.type(tenths), out)
    return out


BLOCK_HOUSEHOLDS = 1024
"""Households billed per call by the what-if [households]: the shifted registers (and rows gathered
from a non-contiguous selection) go to buffers of this many rows, reused block after block, instead of
fresh arrays as large as the chunk (touching fresh memory costs more than billing it)."""


@dataclass
class _Bills:
    """The parts of ``tariffs.YearBills`` the what-if keeps (rows = the billed households)."""

    month_fen: np.ndarray
    year_fen: np.ndarray
    tier_cross_day: np.ndarray
    month_wh_tier: np.ndarray


@nb.njit(cache=True, nogil=True)
def _gather_kernel(a, rows, out):  # pragma: no cover - numba (its twin runs in the tests)
    """``out[k] = a[rows[k]]`` for every k (rows of a 2-D or 3-D array)."""
    for k in range(rows.shape[0]):
        out[k] = a[rows[k]]


def gather_rows(a: np.ndarray, rows: np.ndarray, buf: np.ndarray | None = None, *,
                use_py: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """``a[rows]`` for sorted ``rows``: a view for a contiguous range, else copied into a reused buffer.

    Parameters
    ----------
    a : array[n, ...]
        C-contiguous, 2-D or 3-D.
    rows : int64[k]
        Sorted row indices, ``k <= BLOCK_HOUSEHOLDS``.
    buf : array[BLOCK_HOUSEHOLDS, ...] or None
        The buffer of the previous call (reused when its dtype and shape fit).
    use_py : bool
        Run the kernel's plain-Python twin (tests).

    Returns
    -------
    (array[k, ...], buffer)
        The rows, and the buffer to pass to the next call.
    """
    if rows.size and int(rows[-1]) - int(rows[0]) + 1 == rows.size:
        return a[int(rows[0]): int(rows[-1]) + 1], buf
    if buf is None or buf.dtype != a.dtype or buf.shape[1:] != a.shape[1:] or buf.shape[0] < rows.size:
        buf = np.empty((max(BLOCK_HOUSEHOLDS, rows.size), *a.shape[1:]), a.dtype)
    out = buf[: rows.size]
    (_gather_kernel.py_func if use_py else _gather_kernel)(a, rows.astype(np.int64, copy=False), out)
    return out, buf


def _concat(parts: list) -> _Bills:
    if len(parts) == 1:
        p = parts[0]
        return _Bills(p.month_fen, p.year_fen, p.tier_cross_day, p.month_wh_tier)
    return _Bills(*(np.concatenate([getattr(p, f) for p in parts])
                    for f in ("month_fen", "year_fen", "tier_cross_day", "month_wh_tier")))


class _GroupBills:
    """Bills of one tariff group: current, shifted (or None) and per alternative (None = not offered)."""

    def __init__(self, rows: np.ndarray, alts: list, alt_rows: list[np.ndarray]) -> None:
        self.rows = rows
        self.current: list = []
        self.shifted: list = []
        self.alt_rows = alt_rows
        self.alt: list[list | None] = [[] for _ in alts]


class _Biller:
    """Bills a tariff group of a :class:`DenseYear` block by block: each block of rows is gathered once
    (a view when contiguous) into reused buffers, then billed under the tariff, the shifted profile and
    each alternative.

    The blocks are shared out to ``numba.get_num_threads()`` Python threads, each running the (nogil)
    kernels on one core (numba's own threads set to 1 there). Many short parallel regions, one per
    kernel call, would leave numba's OpenMP threads spin-waiting at every barrier, which costs as much
    CPU time as the billing itself on a loaded machine.
    """

    def __init__(self, d: DenseYear, hs: np.ndarray, year: int) -> None:
        assert d.regs is not None
        self.d, self.regs, self.hs, self.year = d, d.regs, hs, year
        self.of = d.open_first.astype(np.int64)
        self.ol = d.open_last.astype(np.int64)

    def _block(self, bufs: dict[str, np.ndarray | None], tariff, rows: np.ndarray, lo: int, alts: list,
               alt_masks: list[np.ndarray | None]) -> tuple[Any, Any, list[Any]]:
        """Bills of ``rows[lo:lo + BLOCK_HOUSEHOLDS]``: (current, shifted or None, per alternative: its
        bills, None when no row of the block is offered it, or ``False`` when it cannot bill them)."""
        from wattbill.tariffs import TariffError, bill_households

        r = rows[lo: lo + BLOCK_HOUSEHOLDS]
        total, bufs["total"] = gather_rows(self.d.total, r, bufs.get("total"))
        regs, bufs["regs"] = gather_rows(self.regs, r, bufs.get("regs"))
        of, ol, hs = self.of[r], self.ol[r], self.hs[r]
        current = bill_households(tariff, self.year, total, regs, of, ol, hs)
        shifted = None
        if tariff.is_time_of_use:
            buf = bufs.get("shift")
            if buf is None or buf.dtype != regs.dtype or buf.shape[1:] != regs.shape[1:]:
                buf = bufs["shift"] = np.empty((BLOCK_HOUSEHOLDS, *regs.shape[1:]), regs.dtype)
            shifted = bill_households(tariff, self.year, total, shift_peak_to_valley(regs, out=buf[: r.size]),
                                      of, ol, hs)
        alt_bills: list[Any] = []
        for alt, m in zip(alts, alt_masks, strict=True):
            at, ar, aof, aol, ahs = total, regs, of, ol, hs
            if m is not None:
                sel = np.flatnonzero(m[lo: lo + BLOCK_HOUSEHOLDS])
                if sel.size == 0:
                    alt_bills.append(None)
                    continue
                at, bufs["alt_total"] = gather_rows(total, sel, bufs.get("alt_total"))
                ar, bufs["alt_regs"] = gather_rows(regs, sel, bufs.get("alt_regs"))
                aof, aol, ahs = of[sel], ol[sel], hs[sel]
            try:
                alt_bills.append(bill_households(alt, self.year, at, ar, aof, aol, ahs))
            except TariffError:  # this alternative cannot price these households: not offered
                alt_bills.append(False)
        return current, shifted, alt_bills

    def bill_group(self, tariff, rows: np.ndarray, alts: list, alt_masks: list[np.ndarray | None]) -> _GroupBills:
        """Bills of ``rows`` (sorted row indices) under ``tariff`` (and shifted when time-of-use) and
        under each of ``alts`` for the rows where its mask (over ``rows``; None = all) is True.

        Raises ``tariffs.TariffError`` when ``tariff`` cannot bill the group; an alternative that
        cannot bill some of its rows is recorded as None (not offered to the group).
        """
        starts = list(range(0, rows.size, BLOCK_HOUSEHOLDS))
        workers = min(nb.get_num_threads(), len(starts))

        def work(w: int) -> list[tuple[Any, Any, list[Any]]]:
            threads = nb.get_num_threads()
            if workers > 1:
                nb.set_num_threads(1)  # per Python thread: the kernels run on this thread alone
            try:
                bufs: dict[str, np.ndarray | None] = {}
                return [self._block(bufs, tariff, rows, lo, alts, alt_masks) for lo in starts[w::workers]]
            finally:
                nb.set_num_threads(threads)

        if workers <= 1:
            blocks = work(0)
        else:
            with ThreadPoolExecutor(workers) as pool:
                per_worker = list(pool.map(work, range(workers)))
            blocks = [per_worker[k % workers][k // workers] for k in range(len(starts))]
        g = _GroupBills(rows, alts, [rows if m is None else rows[m] for m in alt_masks])
        for current, shifted, alt_bills in blocks:
            g.current.append(current)
            if shifted is not None:
                g.shifted.append(shifted)
            for k, ab in enumerate(alt_bills):
                parts = g.alt[k]
                if ab is False:
                    g.alt[k] = None
                elif parts is not None and ab is not None:
                    parts.append(ab)
        return g


def _household_size(customers: pl.DataFrame) -> np.ndarray:
    if "household_size" not in customers.columns:
        return np.ones(customers.height, np.int64)
    return customers.get_column("household_size").fill_null(1).cast(pl.Int64).to_numpy()


def tariff_what_if(catalog, daily: pl.DataFrame, customers: pl.DataFrame, year: int,
                   dense: DenseYear | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bill every customer under its tariff, the shifted profile, and every alternative tariff.

    Parameters
    ----------
    catalog : tariffs.Catalog
        Gives the customer's tariff (``Catalog.schedule(code, year)``: every day priced by the
        version in force that day, as the bill run does) and its alternatives
        (``Catalog.alternatives(code)``, each as its schedule of ``year``).
    daily : pl.DataFrame
        ``DAILY_SCHEMA`` rows of ``year``.
    customers : pl.DataFrame
        ``CUSTOMER_SCHEMA`` rows (``customer_id``, ``tariff``, ``household_size``, ``opened_on``,
        ``closed_on``).
    year : int
    dense : DenseYear or None
        The densified ``daily`` (``with_regs=True``) if the caller has it already.

    Returns
    -------
    (bills, alternatives) : (pl.DataFrame, pl.DataFrame)
        ``BILLS_SCHEMA`` (with ``shift10_year_fen``) and ``ALTERNATIVES_SCHEMA``. A time-of-use alternative is not priced for
        a customer without time-of-use registers (no data to split its use), and a customer whose
        tariff code is unknown (or whose tariff cannot bill it, ``TariffError``) gets no row; an
        alternative that cannot price a group is left out for it.
    """
    from wattbill.tariffs import TariffError  # diagnostics may import tariffs

    d = dense if dense is not None and dense.regs is not None else densify(daily, customers, year, with_regs=True)
    assert d.regs is not None
    hs = _household_size(customers)
    ids = customers.get_column("customer_id").cast(pl.Utf8)
    codes = customers.get_column("tariff").cast(pl.Utf8)
    # a customer has time-of-use data if most of its read days carry period registers
    has_tou = count_days(d.tou, d.open_first, d.open_last) >= np.maximum(
        1, count_days(d.present, d.open_first, d.open_last) // 2)
    biller = _Biller(d, hs, year)
    bill_parts: list[pl.DataFrame] = []
    alt_parts: list[pl.DataFrame] = []
    for code in sorted(codes.unique().drop_nulls().to_list()):
        try:
            tariff = catalog.schedule(code, year)
        except Exception:  # unknown code: no bill here (the pipeline reports it)
            continue
        rows = np.nonzero((codes == code).to_numpy() & (d.open_first >= 0))[0]
        if rows.size == 0:
            continue
        offered = []
        for alt in catalog.alternatives(code):
            try:
                offered.append(catalog.schedule(alt.code, year))
            except TariffError:  # no version of the alternative in force in the year
                continue
        tou_rows = has_tou[rows]
        masks = [None if not alt.is_time_of_use or tou_rows.all() else tou_rows for alt in offered]
        try:
            g = biller.bill_group(tariff, rows, offered, masks)
        except TariffError:  # e.g. an unpriced register: billing reports it, the what-if skips the group
            continue
        shifted = _concat(g.shifted) if g.shifted else None
        bill_parts.append(bills_frame(ids.gather(rows), code, _concat(g.current), shifted, tariff.is_time_of_use))
        for alt, arows, parts in zip(offered, g.alt_rows, g.alt, strict=True):
            if parts is None or not arows.size:
                continue
            k = int(arows.size)
            alt_parts.append(pl.DataFrame({
                "customer_id": ids.gather(arows),
                "tariff": pl.Series(values=[alt.code], dtype=pl.Utf8).new_from_index(0, k),
                "year_fen": pl.Series(values=np.concatenate([p.year_fen for p in parts]).astype(np.int64)),
                "is_tou": pl.Series(values=[alt.is_time_of_use], dtype=pl.Boolean).new_from_index(0, k),
                "name": pl.Series(values=[alt.latest.name], dtype=pl.Utf8).new_from_index(0, k),
                "name_en": pl.Series(values=[alt.latest.name_en], dtype=pl.Utf8).new_from_index(0, k),
            }))
    bills = pl.concat(bill_parts) if bill_parts else pl.DataFrame(schema=BILLS_SCHEMA)
    alts = pl.concat(alt_parts) if alt_parts else pl.DataFrame(schema=ALTERNATIVES_SCHEMA)
    return bills, alts
