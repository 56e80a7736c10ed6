"""Tariff what-if: the charge under every alternative tariff, and of shifting peak use to the valley.

This is the only module of ``diagnostics`` that uses ``tariffs`` (imported when called, so that the
rest of the package works on its own).
"""

from __future__ import annotations

import datetime as dt

import numba as nb
import numpy as np
import polars as pl

from diagnostics.dense import DenseYear, densify, take_rows
from diagnostics.features import ALTERNATIVES_SCHEMA, BILLS_SCHEMA, bills_frame

SHIFT_FRACTION_TENTHS = 1
"""Share of sharp+peak Wh moved to the valley by the what-if [tenths]: 1 = 10 %."""


@nb.njit(parallel=True, cache=True)
def _shift_kernel(regs, tenths):  # pragma: no cover - numba (its twin runs in the tests)
    n, days, _ = regs.shape
    out = np.empty((n, days, 4), np.int64)
    for i in nb.prange(n):
        for d in range(days):
            moved_sharp = (regs[i, d, 0] * tenths + 5) // 10
            moved_peak = (regs[i, d, 1] * tenths + 5) // 10
            out[i, d, 0] = regs[i, d, 0] - moved_sharp
            out[i, d, 1] = regs[i, d, 1] - moved_peak
            out[i, d, 2] = regs[i, d, 2]
            out[i, d, 3] = regs[i, d, 3] + moved_sharp + moved_peak
    return out


def shift_peak_to_valley(regs: np.ndarray, tenths: int = SHIFT_FRACTION_TENTHS, *, use_py: bool = False) -> np.ndarray:
    """Registers with ``tenths``/10 of every day's sharp and peak Wh moved to valley (integer Wh).

    Parameters
    ----------
    regs : int[n, n_days, 4]
        Daily Wh per register (``REGISTERS`` order) [Wh].
    tenths : int
        How much to move [tenths]; each day's moved Wh are rounded half-up to the Wh.
    use_py : bool
        Run the kernel's plain-Python twin (tests).

    Returns
    -------
    int64[n, n_days, 4]
        Same total per day [Wh].
    """
    kernel = _shift_kernel.py_func if use_py else _shift_kernel
    return kernel(np.ascontiguousarray(regs, dtype=np.int64), np.int64(tenths))


def _keep(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``a[mask]``, without copying when the mask keeps every row."""
    return a if mask.all() else a[mask]


def _household_size(customers: pl.DataFrame) -> np.ndarray:
    if "household_size" not in customers.columns:
        return np.ones(customers.height, np.int32)
    return customers.get_column("household_size").fill_null(1).cast(pl.Int32).to_numpy()


def tariff_what_if(catalog, daily: pl.DataFrame, customers: pl.DataFrame, year: int,
                   dense: DenseYear | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bill every customer under its tariff, the shifted profile, and every alternative tariff.

    Parameters
    ----------
    catalog : tariffs.Catalog
        Gives the customer's tariff (``Catalog.get(code, on=Jan 1 of year)``) and its alternatives
        (``Catalog.alternatives(code)``).
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
    from tariffs import TariffError, bill_households  # diagnostics may import tariffs

    d = dense if dense is not None and dense.regs is not None else densify(daily, customers, year, with_regs=True)
    assert d.regs is not None
    hs = _household_size(customers)
    ids = customers.get_column("customer_id").cast(pl.Utf8)
    codes = customers.get_column("tariff").cast(pl.Utf8)
    # a customer has time-of-use data if most of its read days carry period registers
    has_tou = d.tou.sum(axis=1) >= np.maximum(1, d.present.sum(axis=1) // 2)
    on = dt.date(year, 1, 1)
    bill_parts: list[pl.DataFrame] = []
    alt_parts: list[pl.DataFrame] = []
    for code in sorted(codes.unique().drop_nulls().to_list()):
        try:
            tariff = catalog.get(code, on=on)
        except Exception:  # unknown code: no bill here (the pipeline reports it)
            continue
        rows = np.nonzero((codes == code).to_numpy() & (d.open_first >= 0))[0]
        if rows.size == 0:
            continue
        total, regs = take_rows(d.total, rows), take_rows(d.regs, rows)
        of, ol = d.open_first[rows], d.open_last[rows]
        try:
            yb = bill_households(tariff, year, total, regs, of, ol, hs[rows])
            shifted = None
            if tariff.is_time_of_use:
                shifted = bill_households(tariff, year, total, shift_peak_to_valley(regs), of, ol, hs[rows])
        except TariffError:  # e.g. an unpriced register: billing reports it, the what-if skips the group
            continue
        bill_parts.append(bills_frame(ids.gather(rows), code, yb, shifted, tariff.is_time_of_use))
        for alt in catalog.alternatives(code, on=on):
            if alt.code == code:
                continue
            sel = has_tou[rows] if alt.is_time_of_use else np.ones(rows.size, bool)
            if not sel.any():
                continue
            try:
                ab = bill_households(alt, year, _keep(total, sel), _keep(regs, sel), of[sel], ol[sel], hs[rows[sel]])
            except TariffError:  # this alternative cannot price these households: not offered
                continue
            alt_parts.append(pl.DataFrame({
                "customer_id": ids.gather(rows[sel]),
                "tariff": pl.Series(values=[alt.code] * int(sel.sum()), dtype=pl.Utf8),
                "year_fen": pl.Series(values=np.asarray(ab.year_fen, np.int64)),
                "is_tou": pl.Series(values=np.full(int(sel.sum()), alt.is_time_of_use)),
                "name": pl.Series(values=[alt.name] * int(sel.sum()), dtype=pl.Utf8),
                "name_en": pl.Series(values=[alt.name_en] * int(sel.sum()), dtype=pl.Utf8),
            }))
    bills = pl.concat(bill_parts) if bill_parts else pl.DataFrame(schema=BILLS_SCHEMA)
    alts = pl.concat(alt_parts) if alt_parts else pl.DataFrame(schema=ALTERNATIVES_SCHEMA)
    return bills, alts
