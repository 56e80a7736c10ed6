"""numba kernels: per-household usage features over dense daily arrays (see :mod:`diagnostics.dense`)."""

from __future__ import annotations

import numba as nb
import numpy as np

# months (0-based) of the seasons: shoulder = spring and autumn (Apr, May, Oct, Nov), summer = Jul-Aug,
# winter = Dec, Jan, Feb of the same calendar year
SHOULDER = (3, 4, 9, 10)
SUMMER = (6, 7)
WINTER = (11, 0, 1)


@nb.njit(cache=True)
def _pct_sorted(a, m, q):  # pragma: no cover - numba
    """Linear-interpolated quantile ``q`` (0..1) of the first ``m`` values of sorted ``a``."""
    if m == 0:
        return np.nan
    pos = q * (m - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, m - 1)
    frac = pos - lo
    return a[lo] + (a[hi] - a[lo]) * frac


@nb.njit(cache=True)
def _median_of(buf, m):  # pragma: no cover - numba
    if m == 0:
        return np.nan
    s = np.sort(buf[:m])
    return _pct_sorted(s, m, 0.5)


@nb.njit(parallel=True, cache=True)
def usage_kernel(total, regs, present, tou, estimated, open_first, open_last, month, season,
                 base_q, low_abs_wh, low_frac, spike_year_factor, spike_local_factor, spike_min_wh,
                 spike_window, min_season_days):  # pragma: no cover - numba
    """Usage features of every household (one pass per household, parallel over households).

    Parameters
    ----------
    total : int64[n, D]
        Daily Wh [Wh].
    regs : int64[n, D, 4]
        Daily Wh per register [Wh].
    present, tou, estimated : bool[n, D]
        Day has a read / has period registers / was estimated.
    open_first, open_last : int32[n]
        Open window [day index], -1 when never open.
    month : int8[D]
        Month index of each day.
    season : int8[12]
        0 other, 1 shoulder, 2 summer, 3 winter per month.
    base_q : float
        Quantile of occupied daily Wh used as base load (0..1).
    low_abs_wh : float
        A day below ``max(low_abs_wh, low_frac * median day)`` is near-zero [Wh/day].
    low_frac : float
        See ``low_abs_wh``.
    spike_year_factor : float
        A spike day is above ``spike_year_factor`` times the household's median occupied day ...
    spike_local_factor : float
        ... and above ``spike_local_factor`` times the median of the days around it ...
    spike_min_wh : float
        ... and at least this many Wh above that local median [Wh].
    spike_window : int
        Half-width of the local window [days].
    min_season_days : int
        Fewer occupied days in a season gives a null level.

    Returns
    -------
    tuple of arrays (see ``diagnostics.features._usage``).
    """
    n, D = total.shape
    wh_year = np.zeros(n, np.int64)
    month_wh = np.zeros((n, 12), np.int64)
    month_days = np.zeros((n, 12), np.int32)
    reg_sum = np.zeros((n, 4), np.int64)
    tou_total = np.zeros(n, np.int64)
    tou_days = np.zeros(n, np.int32)
    days_open = np.zeros(n, np.int32)
    days_present = np.zeros(n, np.int32)
    est_days = np.zeros(n, np.int32)
    base_wh = np.full(n, np.nan)
    median_wh = np.full(n, np.nan)
    level = np.full((n, 4), np.nan)  # 0 all occupied days, 1 shoulder, 2 summer, 3 winter  [Wh/day]
    season_days = np.zeros((n, 4), np.int32)
    low_run = np.zeros(n, np.int32)
    low_run_start = np.full(n, -1, np.int32)
    low_days = np.zeros(n, np.int32)
    spike_days = np.zeros(n, np.int32)
    spike_max_ratio = np.full(n, np.nan)
    spike_first = np.full(n, -1, np.int32)
    for i in nb.prange(n):
        f = open_first[i]
        last = open_last[i]
        if f < 0:
            continue
        days_open[i] = last - f + 1
        vals = np.empty(D, np.float64)
        m = 0
        for d in range(f, last + 1):
            if not present[i, d]:
                continue
            v = total[i, d]
            wh_year[i] += v
            month_wh[i, month[d]] += v
            month_days[i, month[d]] += 1
            if estimated[i, d]:
                est_days[i] += 1
            if tou[i, d]:
                tou_days[i] += 1
                tou_total[i] += v
                for r in range(4):
                    reg_sum[i, r] += regs[i, d, r]
            vals[m] = v
            m += 1
        days_present[i] = m
        if m == 0:
            continue
        s = np.sort(vals[:m])
        thr = max(low_abs_wh, low_frac * _pct_sorted(s, m, 0.5))
        # near-zero runs: a missing day neither counts nor ends a run
        run = 0
        start = -1
        for d in range(f, last + 1):
            if not present[i, d]:
                continue
            if total[i, d] < thr:
                if run == 0:
                    start = d
                run += 1
                low_days[i] += 1
                if run > low_run[i]:
                    low_run[i] = run
                    low_run_start[i] = start
            else:
                run = 0
        # occupied days: base load, median day, seasonal levels
        k0 = 0
        for j in range(m):
            if s[j] >= thr:
                vals[k0] = s[j]
                k0 += 1
        if k0 == 0:
            continue
        base_wh[i] = _pct_sorted(vals, k0, base_q)  # vals[:k0] is sorted
        med = _pct_sorted(vals, k0, 0.5)
        median_wh[i] = med
        season_days[i, 0] = k0
        level[i, 0] = med
        buf = np.empty(D, np.float64)
        for sidx in range(1, 4):
            k = 0
            for d in range(f, last + 1):
                if present[i, d] and total[i, d] >= thr and season[month[d]] == sidx:
                    buf[k] = total[i, d]
                    k += 1
            season_days[i, sidx] = k
            if k >= min_season_days:
                level[i, sidx] = _median_of(buf, k)
        # spikes: candidates against the year's median, confirmed against the days around them
        for d in range(f, last + 1):
            if not present[i, d]:
                continue
            v = total[i, d]
            if v <= spike_year_factor * med:
                continue
            k = 0
            for e in range(max(f, d - spike_window), min(last, d + spike_window) + 1):
                if e != d and present[i, e] and total[i, e] >= thr:
                    buf[k] = total[i, e]
                    k += 1
            if k < 3:
                continue
            local = _median_of(buf, k)
            if v > spike_local_factor * local and v - local >= spike_min_wh:
                spike_days[i] += 1
                r = v / med
                if spike_first[i] < 0:
                    spike_first[i] = d
                if np.isnan(spike_max_ratio[i]) or r > spike_max_ratio[i]:
                    spike_max_ratio[i] = r
    return (wh_year, month_wh, month_days, reg_sum, tou_total, tou_days, days_open, days_present, est_days,
            base_wh, median_wh, level, season_days, low_run, low_run_start, low_days, spike_days,
            spike_max_ratio, spike_first)


def season_of_month() -> np.ndarray:
    """``int8[12]``: 1 shoulder, 2 summer, 3 winter, 0 other."""
    s = np.zeros(12, np.int8)
    for mo in SHOULDER:
        s[mo] = 1
    for mo in SUMMER:
        s[mo] = 2
    for mo in WINTER:
        s[mo] = 3
    return s
