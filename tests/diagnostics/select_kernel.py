"""The usage kernel as first written (quickselect per quantile), kept as the reference of the faster
sorted-days kernel in ``diagnostics.kernels`` (same definitions; results must be identical)."""

from __future__ import annotations

import numba as nb
import numpy as np

from wattbill.diagnostics.kernels import _quantile, _quantile_inplace, _select


@nb.njit(parallel=True)
def select_usage_kernel(total, present, open_first, open_last, month, season, base_q, low_abs_wh, low_frac,
                 spike_year_factor, spike_local_factor, spike_min_wh, spike_window,
                 min_season_days):  # pragma: no cover - numba
    """Usage features of every household (parallel over households, O(days) each): the parameters and
    results of :func:`diagnostics.kernels.usage_kernel` (``total`` as int64)."""
    n, D = total.shape
    wh_year = np.zeros(n, np.int64)
    month_wh = np.zeros((n, 12), np.int64)
    days_open = np.zeros(n, np.int32)
    days_present = np.zeros(n, np.int32)
    base_wh = np.full(n, np.nan)
    median_wh = np.full(n, np.nan)
    level = np.full((n, 4), np.nan)  # 0 all occupied days, 1 shoulder, 2 summer, 3 winter  [Wh/day]
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
        vals = np.empty(D, np.int64)
        work = np.empty(D, np.int64)
        m = 0
        for d in range(f, last + 1):
            if present[i, d]:
                v = total[i, d]
                wh_year[i] += v
                month_wh[i, month[d]] += v
                vals[m] = v
                m += 1
        days_present[i] = m
        if m == 0:
            continue
        for j in range(m):
            work[j] = vals[j]
        med_all, kmed_all = _quantile_inplace(work, 0, m, 0.5)  # work stays partitioned around kmed_all
        thr = max(low_abs_wh, low_frac * med_all)
        # near-zero runs (a missing day neither counts nor ends a run); occupied days per season
        occ = np.empty(D, np.int64)
        sbuf = np.empty((3, D), np.int64)
        scnt = np.zeros(3, np.int64)
        k0 = 0
        run = 0
        start = -1
        for d in range(f, last + 1):
            if not present[i, d]:
                continue
            v = total[i, d]
            if v < thr:
                if run == 0:
                    start = d
                run += 1
                low_days[i] += 1
                if run > low_run[i]:
                    low_run[i] = run
                    low_run_start[i] = start
            else:
                run = 0
                occ[k0] = v
                k0 += 1
                sm = season[month[d]]
                if sm > 0:
                    sbuf[sm - 1, scnt[sm - 1]] = v
                    scnt[sm - 1] += 1
        if k0 == 0:
            continue
        if k0 == m:
            # no near-zero day: the occupied days are all days, already partitioned in work
            occ, med, kmed = work, med_all, kmed_all
        else:
            med, kmed = _quantile_inplace(occ, 0, k0, 0.5)  # occ is scratch from here on
        if base_q <= 0.5 and kmed > 0:
            # a[:kmed] <= a[kmed]: the lower quantile is selected within a[:kmed + 1] alone
            nb_ = k0
            pos = base_q * (nb_ - 1)
            kb = int(np.floor(pos))
            frac = pos - kb
            if kb < kmed:
                _select(occ, 0, kmed + 1, kb)
                x = occ[kb]
                y = occ[kb + 1]
                for j in range(kb + 2, kmed + 1):
                    if occ[j] < y:
                        y = occ[j]
                base_wh[i] = x + (y - x) * frac if frac > 0.0 else float(x)
            else:
                base_wh[i] = med
        else:
            base_wh[i] = _quantile(occ, k0, base_q, vals)
        median_wh[i] = med
        level[i, 0] = med
        for sidx in range(3):
            if scnt[sidx] >= min_season_days:
                level[i, sidx + 1] = _quantile(sbuf[sidx], scnt[sidx], 0.5, work)
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
                    vals[k] = total[i, e]
                    k += 1
            if k < 3:
                continue
            local = _quantile(vals, k, 0.5, work)
            if v > spike_local_factor * local and v - local >= spike_min_wh:
                spike_days[i] += 1
                r = v / med
                if spike_first[i] < 0:
                    spike_first[i] = d
                if np.isnan(spike_max_ratio[i]) or r > spike_max_ratio[i]:
                    spike_max_ratio[i] = r
    return (wh_year, month_wh, days_open, days_present, base_wh, median_wh, level, low_run, low_run_start,
            low_days, spike_days, spike_max_ratio, spike_first)
