"""numba kernels: per-household usage features over dense daily arrays (see :mod:`diagnostics.dense`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

from wattbill.diagnostics.dense import _classify_run, _day_span, _row_regs, _run_bits, _sum, _valid  # noqa: F401  (_run_bits: tests)

# months (0-based) of the seasons: shoulder = spring and autumn (Apr, May, Oct, Nov), summer = Jul-Aug,
# winter = Dec, Jan, Feb of the same calendar year
SHOULDER = (3, 4, 9, 10)
SUMMER = (6, 7)
WINTER = (11, 0, 1)


@nb.njit(cache=True)
def _select(a, lo, hi, k):  # pragma: no cover - numba
    """Reorder ``a[lo:hi]`` in place so that ``a[k]`` is its k-th smallest (Hoare quickselect,
    median-of-three pivot); afterwards ``a[lo:k] <= a[k] <= a[k+1:hi]``."""
    hi -= 1
    while hi > lo:
        if hi - lo < 12:  # small range: insertion sort
            for x in range(lo + 1, hi + 1):
                v = a[x]
                y = x - 1
                while y >= lo and a[y] > v:
                    a[y + 1] = a[y]
                    y -= 1
                a[y + 1] = v
            return
        mid = (lo + hi) >> 1
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@nb.njit(cache=True)
def _quantile_inplace(a, lo, m, q):  # pragma: no cover - numba
    """Linear-interpolated quantile ``q`` of ``a[lo:m]`` (reordered in place); returns (value, index).

    The index is the position of the lower order statistic after selection, so that a lower quantile
    can then be selected within ``a[lo:index+1]`` alone.
    """
    n = m - lo
    pos = q * (n - 1)
    k = int(np.floor(pos))
    frac = pos - k
    _select(a, lo, m, lo + k)
    x = a[lo + k]
    if frac == 0.0 or k + 1 >= n:
        return float(x), lo + k
    y = a[lo + k + 1]
    for j in range(lo + k + 2, m):
        if a[j] < y:
            y = a[j]
    return x + (y - x) * frac, lo + k


@nb.njit(cache=True)
def _quantile(buf, m, q, work):  # pragma: no cover - numba
    """Quantile ``q`` (0..1, linear interpolation) of ``buf[:m]``, using ``work`` as scratch; NaN if m == 0."""
    if m == 0:
        return np.nan
    for j in range(m):
        work[j] = buf[j]
    return _quantile_inplace(work, 0, m, q)[0]


DAY_BITS = 9
"""Bits of the day index in a sort key ``(value - min) << DAY_BITS | day`` (366 < 2**9)."""

MAX_KEY_RANGE = 1 << (62 - DAY_BITS)
"""A household whose daily values span this much or more is sorted by comparison instead [Wh] (half of
what the int64 keys hold, so that the span, computed in float to avoid overflow, is safe)."""

MAX_DIGITS = (62 - DAY_BITS + 7) // 8
"""Most 8-bit value digits of a sort key (the rows of the ``counts`` scratch of :func:`_sort_days`)."""


@nb.njit(cache=True, nogil=True)
def sort_days(vals, days, m, keys, tmp, out_vals, out_days):  # pragma: no cover - numba (twin tested)
    """:func:`_sort_days` with its own histogram scratch."""
    _sort_days(vals, days, m, keys, tmp, out_vals, out_days, np.empty((MAX_DIGITS, 257), np.int64))


@nb.njit(cache=True, nogil=True)
def _sort_days(vals, days, m, keys, tmp, out_vals, out_days, counts):  # pragma: no cover - numba (twin tested)
    """Sort ``vals[:m]`` ascending into ``out_vals[:m]``, with the day of each value into ``out_days``.

    An LSD radix sort of ``(value - min) << DAY_BITS | day`` keys on the 8-bit digits of the value only
    (the day rides along in the low bits): one or two linear passes over a household's days, several
    times faster than a comparison sort or than repeated selection. Stable: ties keep their input
    order. Falls back to a stable comparison sort when the values span ``MAX_KEY_RANGE`` or more.
    ``keys`` and ``tmp`` are scratch of at least ``m`` elements, ``counts`` of ``[MAX_DIGITS, 257]``;
    ``days`` must be below ``2**DAY_BITS``.
    """
    if m == 0:
        return
    lo = vals[0]
    hi = vals[0]
    for j in range(m):  # (branch-free min and max: vectorised)
        lo = min(lo, vals[j])
        hi = max(hi, vals[j])
    if float(hi) - float(lo) >= 65536 or hi - lo < 256:
        _sort_days_generic(vals, days, m, keys, tmp, out_vals, out_days, counts, lo, hi)
        return
    # two 8-bit digits, as for most households (a span of 256 to 65,535 Wh/day): both histograms in
    # the pass that makes the keys, and the second pass writes the output
    c0 = counts[0]
    c1 = counts[1]
    c0[:] = 0
    c1[:] = 0
    for j in range(m):
        k = ((vals[j] - lo) << DAY_BITS) | days[j]
        keys[j] = k
        c0[((k >> DAY_BITS) & 255) + 1] += 1
        c1[((k >> (DAY_BITS + 8)) & 255) + 1] += 1
    for c in range(256):
        c0[c + 1] += c0[c]
        c1[c + 1] += c1[c]
    for j in range(m):
        x = keys[j]
        c = (x >> DAY_BITS) & 255
        tmp[c0[c]] = x
        c0[c] += 1
    mask = (1 << DAY_BITS) - 1
    for j in range(m):
        x = tmp[j]
        c = (x >> (DAY_BITS + 8)) & 255
        q = c1[c]
        out_vals[q] = (x >> DAY_BITS) + lo
        out_days[q] = x & mask
        c1[c] = q + 1


@nb.njit(cache=True, nogil=True)
def _sort_days_generic(vals, days, m, keys, tmp, out_vals, out_days, counts, lo, hi):  # pragma: no cover
    """:func:`_sort_days` for any span (``lo``/``hi``: the least and greatest of ``vals[:m]``)."""
    if float(hi) - float(lo) >= MAX_KEY_RANGE:
        order = np.argsort(vals[:m], kind="mergesort")
        for j in range(m):
            out_vals[j] = vals[order[j]]
            out_days[j] = days[order[j]]
        return
    span = hi - lo
    n_digits = 0
    while (span >> (8 * n_digits)) > 0:
        n_digits += 1
    # keys and the histograms of all their value digits in one pass
    counts[:n_digits] = 0
    for j in range(m):
        k = ((vals[j] - lo) << DAY_BITS) | days[j]
        keys[j] = k
        for p in range(n_digits):
            counts[p, ((k >> (DAY_BITS + 8 * p)) & 255) + 1] += 1
    src = keys
    dst = tmp
    for p in range(n_digits):
        shift = DAY_BITS + 8 * p
        if counts[p, ((src[0] >> shift) & 255) + 1] == m:  # a digit shared by every key needs no pass
            continue
        for c in range(256):
            counts[p, c + 1] += counts[p, c]
        for j in range(m):
            x = src[j]
            c = (x >> shift) & 255
            dst[counts[p, c]] = x
            counts[p, c] += 1
        src, dst = dst, src
    mask = (1 << DAY_BITS) - 1
    for j in range(m):
        x = src[j]
        out_vals[j] = (x >> DAY_BITS) + lo
        out_days[j] = x & mask


@nb.njit(cache=True, inline="always")
def _sorted_quantile(a, lo, hi, q):  # pragma: no cover - numba
    """Linear-interpolated quantile ``q`` of the sorted ``a[lo:hi]`` (numpy's default; NaN if empty)."""
    n = hi - lo
    if n <= 0:
        return np.nan
    pos = q * (n - 1)
    k = int(np.floor(pos))
    frac = pos - k
    x = a[lo + k]
    if frac == 0.0 or k + 1 >= n:
        return float(x)
    y = a[lo + k + 1]
    return x + (y - x) * frac


USAGE_TASK = 2048
"""Households per task of :func:`usage_kernel` and :func:`usage_runs` (tasks go to a pool of Python
threads)."""

@nb.njit(cache=True, nogil=True)
def _usage_one(i, tot, pres, f, last, season_of_day, month_start, prm, scratch, out):  # pragma: no cover - numba
    """The usage features of household ``i`` from its daily Wh ``tot[D]`` and read flags ``pres[D]``
    (open window ``f..last``, ``f >= 0``), written into row ``i`` of the arrays of ``out``.

    ``prm`` holds the float parameters of :func:`usage_kernel` in its order (``base_q`` ...
    ``min_season_days``); ``scratch`` the per-thread buffers (see :func:`_scratch`).
    """
    vals, days = scratch[0], scratch[1]
    month_wh = out[1]
    # the read days, month by month (``month_start``: first day of each month and D): sums kept in
    # registers, and the days compacted without a branch
    m = 0
    wy = np.int64(0)
    for mo in range(12):
        acc = np.int64(0)
        for d in range(max(f, month_start[mo]), min(last + 1, month_start[mo + 1])):
            p = pres[d]
            v = np.int64(tot[d]) if p else np.int64(0)
            acc += v
            vals[m] = v
            days[m] = d
            m += p
        month_wh[i, mo] += acc
        wy += acc
    _usage_core(i, m, wy, tot, pres, False, f, last, season_of_day, prm, scratch, out)


@nb.njit(cache=True, nogil=True)
def _usage_core(i, m, wy, tot, pres, fill, f, last, season_of_day, prm, scratch, out):  # pragma: no cover - numba
    """The usage features of household ``i`` from its ``m`` read days, in day order, in ``scratch``'s
    ``vals`` [Wh] and ``days`` [day index] (``wy``: their sum [Wh]; the month sums are the caller's).

    ``tot``/``pres`` are the household's days by day index, for the local medians of spike candidates;
    with ``fill`` they are all zero and filled from ``vals``/``days`` only when there is a candidate
    (and zeroed again afterwards).
    """
    vals, days, keys, tmp, sv, sd, sbuf, counts = scratch
    (wh_year, _month_wh, days_open, days_present, base_wh, median_wh, level, low_run, low_run_start,
     low_days, spike_days, spike_max_ratio, spike_first) = out
    base_q = prm[0]
    low_abs_wh = prm[1]
    low_frac = prm[2]
    spike_year_factor = prm[3]
    spike_local_factor = prm[4]
    spike_min_wh = prm[5]
    spike_window = int(prm[6])
    min_season_days = int(prm[7])
    days_open[i] = last - f + 1
    wh_year[i] = wy
    days_present[i] = m
    if m == 0:
        return
    _sort_days(vals, days, m, keys, tmp, sv, sd, counts)
    med_all = _sorted_quantile(sv, 0, m, 0.5)
    thr = max(low_abs_wh, low_frac * med_all)
    # occupied days: the sorted values from the first one >= thr
    j0 = 0
    while j0 < m and sv[j0] < thr:
        j0 += 1
    if j0 > 0:
        # near-zero runs (a missing day neither counts nor ends a run)
        low_days[i] = j0
        run = 0
        start = -1
        best = 0
        best_start = -1
        for j in range(m):
            if vals[j] < thr:
                if run == 0:
                    start = days[j]
                run += 1
                if run > best:
                    best = run
                    best_start = start
            else:
                run = 0
        low_run[i] = best
        low_run_start[i] = best_start
    if j0 == m:
        return
    med = _sorted_quantile(sv, j0, m, 0.5)
    median_wh[i] = med
    level[i, 0] = med
    base_wh[i] = _sorted_quantile(sv, j0, m, base_q)
    # the occupied days of each season, still sorted: every value is written to the three season
    # buffers and only the counter of its season advances (no branch, no store-to-load chain)
    b1 = sbuf[1]
    b2 = sbuf[2]
    b3 = sbuf[3]
    c1 = 0
    c2 = 0
    c3 = 0
    for j in range(j0, m):
        v = sv[j]
        sn = season_of_day[sd[j]]
        b1[c1] = v
        b2[c2] = v
        b3[c3] = v
        c1 += sn == 1
        c2 += sn == 2
        c3 += sn == 3
    if c1 >= min_season_days:
        level[i, 1] = _sorted_quantile(b1, 0, c1, 0.5)
    if c2 >= min_season_days:
        level[i, 2] = _sorted_quantile(b2, 0, c2, 0.5)
    if c3 >= min_season_days:
        level[i, 3] = _sorted_quantile(b3, 0, c3, 0.5)
    # spikes: candidates against the year's median, confirmed against the days around them
    cand = spike_year_factor * med
    if sv[m - 1] <= cand:
        return
    if fill:
        for j in range(m):
            tot[days[j]] = vals[j]
            pres[days[j]] = True
    for j in range(m):
        v = vals[j]
        if v <= cand:
            continue
        d = days[j]
        k = 0
        for e in range(max(f, d - spike_window), min(last, d + spike_window) + 1):
            if e != d and pres[e] and tot[e] >= thr:
                keys[k] = tot[e]
                k += 1
        if k < 3:
            continue
        local = _quantile(keys, k, 0.5, tmp)
        if v > spike_local_factor * local and v - local >= spike_min_wh:
            spike_days[i] += 1
            r = v / med
            if spike_first[i] < 0:
                spike_first[i] = d
            if np.isnan(spike_max_ratio[i]) or r > spike_max_ratio[i]:
                spike_max_ratio[i] = r
    if fill:
        for j in range(m):
            tot[days[j]] = 0
            pres[days[j]] = False


@nb.njit(cache=True, nogil=True)
def _scratch(D):  # pragma: no cover - numba
    """Per-thread buffers of :func:`_usage_one` for years of ``D`` days."""
    return (np.empty(D, np.int64), np.empty(D, np.int64), np.empty(D, np.int64), np.empty(D, np.int64),
            np.empty(D, np.int64), np.empty(D, np.int64), np.empty((4, D), np.int64),
            np.empty((MAX_DIGITS, 257), np.int64))


@nb.njit(cache=True, nogil=True)
def _calendar(month, season):  # pragma: no cover - numba
    """Season of every day (``int64[D]``) and the first day of every month, then D (``int64[13]``)."""
    season_of_day = np.empty(month.shape[0], np.int64)
    for d in range(month.shape[0]):
        season_of_day[d] = season[month[d]]
    return season_of_day, _month_start(month)


@nb.njit(cache=True, nogil=True)
def _month_start(month):  # pragma: no cover - numba
    """The first day index of every month of ``month`` (``int8[D]``), then D: ``int64[13]``."""
    D = month.shape[0]
    month_start = np.full(13, D, np.int64)
    for d in range(D - 1, -1, -1):
        month_start[month[d]] = d
    return month_start


@nb.njit(cache=True, inline="always")
def _month_ends(rday, jan1, month_start, ends):  # pragma: no cover - numba
    """For days ``rday`` in increasing order [days since 1970-01-01], ``ends[mo]``: the first row of a
    later month than ``mo`` (bisection)."""
    a = 0
    for mo in range(12):
        a += np.searchsorted(rday[a:], month_start[mo + 1] + jan1)
        ends[mo] = a


@nb.njit(cache=True, nogil=True)
def usage_rows(lo, hi, total, present, open_first, open_last, month, season, prm,
               out):  # pragma: no cover - numba (twin tested)
    """The usage features of households ``lo:hi`` from dense arrays, written into ``out`` (see
    :func:`usage_kernel`; serial, without the GIL)."""
    season_of_day, month_start = _calendar(month, season)
    scratch = _scratch(total.shape[1])
    for i in range(lo, hi):
        if open_first[i] >= 0:
            _usage_one(i, total[i], present[i], open_first[i], open_last[i], season_of_day, month_start, prm,
                       scratch, out)


@nb.njit(cache=True, inline="always")
def _count(a):  # pragma: no cover - numba
    """True values of a bool array."""
    t = 0
    for k in range(a.shape[0]):
        t += a[k]
    return t


@nb.njit(cache=True, nogil=True)
def usage_runs(r_lo, r_hi, bounds, run_cust, day, jan1, total, r0, r1, r2, r3, v0, v1, v2, v3, voff, has_regs,
               est, est_valid, est_off, open_first, open_last, month, season, prm, out, tou_days, est_days,
               reg_sum, tou_total):  # pragma: no cover - numba (twin tested)
    """The usage features straight from daily rows: runs ``r_lo:r_hi`` of a frame whose customers each
    have one run of rows (see :func:`diagnostics.dense._runs`).

    A run of one meter's rows in day order, all in the open window, with registers on every row or on
    none and nothing estimated (nearly every run) goes to :func:`_usage_core` as it is. Any other run
    is summed into one year of days (per thread, in cache) as ``densify`` would fill the household's
    row of its dense arrays (the same inputs as ``diagnostics.dense._scatter``; int64, so no
    overflow), then :func:`_usage_one` runs on it. Also counts the days with period registers and
    the estimated days (``tou_days``, ``est_days``) and sums the registers (``reg_sum``,
    ``tou_total``) over the open window.
    """
    D = month.shape[0]
    season_of_day, month_start = _calendar(month, season)
    scratch = _scratch(D)
    vals, days = scratch[0], scratch[1]
    ends = np.empty(12, np.int64)  # (month cuts of a run, see _month_ends)
    tot = np.zeros(D, np.int64)
    pres = np.zeros(D, np.bool_)
    tou = np.zeros(D, np.bool_)
    estd = np.zeros(D, np.bool_)
    for r in range(r_lo, r_hi):
        i = run_cust[r]
        if i < 0:
            continue
        f = open_first[i]
        last = open_last[i]
        if f < 0:
            continue
        lo = bounds[r]
        hi = bounds[r + 1]
        if lo == hi:
            continue
        # (slices and loops from 0: numba then drops its negative-index checks, and LLVM vectorises)
        rday = day[lo:hi]
        rtot = total[lo:hi]
        # a clean run (see _classify_run), as nearly every run is, takes loops without per-row checks,
        # and the sums of its registers vectorised loops; a clean run in day order (one meter) is not
        # even laid out by day
        clean, ordered, regs_state, mask = _classify_run(lo, hi, day, jan1, f, last, v0, v1, v2, v3, voff, has_regs,
                                                         est, est_off)
        s0 = 0
        s1 = 0
        s2 = 0
        s3 = 0
        if clean and regs_state == 1:  # (a register the meter does not have: no kWh)
            if mask & 1:
                s0 = _sum(r0[lo:hi])
            if mask & 2:
                s1 = _sum(r1[lo:hi])
            if mask & 4:
                s2 = _sum(r2[lo:hi])
            if mask & 8:
                s3 = _sum(r3[lo:hi])
        if clean and ordered:
            m = rday.shape[0]
            wy = _sorted_month_sums(rtot, rday, jan1, month_start, vals, days, out[1][i], ends)
            _usage_core(i, m, wy, tot, pres, True, f, last, season_of_day, prm, scratch, out)
            tou_total[i] = wy if regs_state == 1 else 0
            tou_days[i] = m if regs_state == 1 else 0
        elif clean:
            tt = 0
            for k in range(rday.shape[0]):
                d = rday[k] - jan1
                v = rtot[k]
                tot[d] += v
                pres[d] = True
                tt += v
            _usage_one(i, tot, pres, f, last, season_of_day, month_start, prm, scratch, out)
            tou_total[i] = tt if regs_state == 1 else 0
            tou_days[i] = out[3][i] if regs_state == 1 else 0  # (every day read has registers)
        else:
            tt = 0
            for k in range(lo, hi):
                d = day[k] - jan1
                if d < f or d > last:
                    continue
                v = total[k]
                tot[d] += v
                pres[d] = True
                if est.shape[0] and _valid(est, est_off[0], k) and _valid(est_valid, est_off[1], k):
                    estd[d] = True
                if not has_regs:
                    continue
                any_reg, x0, x1, x2, x3 = _row_regs(v0, v1, v2, v3, voff, k, r0, r1, r2, r3)
                if any_reg:
                    tou[d] = True
                    tt += v
                    s0 += x0
                    s1 += x1
                    s2 += x2
                    s3 += x3
            tou_days[i] = _count(tou[f:last + 1])
            est_days[i] = _count(estd[f:last + 1])
            tou[f:last + 1] = False
            estd[f:last + 1] = False
            _usage_one(i, tot, pres, f, last, season_of_day, month_start, prm, scratch, out)
            tou_total[i] = tt
        if not (clean and ordered):  # (the days by day index are zero between runs)
            tot[f:last + 1] = 0
            pres[f:last + 1] = False
        reg_sum[i, 0] = s0
        reg_sum[i, 1] = s1
        reg_sum[i, 2] = s2
        reg_sum[i, 3] = s3


@nb.njit(cache=True, nogil=True)
def _sorted_month_sums(rtot, rday, jan1, month_start, vals, days, month_wh_row, ends):  # pragma: no cover - numba
    """Copy a run in increasing day order into ``vals``/``days`` (day index), add its Wh per month into
    ``month_wh_row`` and return its sum [Wh] (months cut by :func:`_month_ends`, each summed by a
    vectorised loop; ``ends``: scratch ``int64[12]``)."""
    m = rtot.shape[0]
    for k in range(m):
        vals[k] = rtot[k]
        days[k] = rday[k] - jan1
    _month_ends(rday, jan1, month_start, ends)
    wy = np.int64(0)
    a = 0
    for mo in range(12):
        acc = _sum(rtot[a:ends[mo]])
        month_wh_row[mo] += acc
        wy += acc
        a = ends[mo]
    return wy


def usage_outputs(n: int) -> tuple:
    """The zeroed / NaN output arrays of :func:`usage_kernel` for ``n`` households."""
    return (np.zeros(n, np.int64), np.zeros((n, 12), np.int64), np.zeros(n, np.int32), np.zeros(n, np.int32),
            np.full(n, np.nan), np.full(n, np.nan),
            np.full((n, 4), np.nan),  # 0 all occupied days, 1 shoulder, 2 summer, 3 winter  [Wh/day]
            np.zeros(n, np.int32), np.full(n, -1, np.int32), np.zeros(n, np.int32), np.zeros(n, np.int32),
            np.full(n, np.nan), np.full(n, -1, np.int32))


def usage_params(base_q, low_abs_wh, low_frac, spike_year_factor, spike_local_factor, spike_min_wh,
                 spike_window, min_season_days) -> np.ndarray:
    """The parameters of :func:`usage_kernel` packed for the kernels (``float64[8]``)."""
    return np.array([base_q, low_abs_wh, low_frac, spike_year_factor, spike_local_factor, spike_min_wh,
                     spike_window, min_season_days], np.float64)


def usage_kernel(total, present, open_first, open_last, month, season, base_q, low_abs_wh, low_frac,
                 spike_year_factor, spike_local_factor, spike_min_wh, spike_window, min_season_days,
                 use_py=False):
    """Usage features of every household (O(days) each; blocks of households on all of numba's threads).

    Each household's read days are sorted once (:func:`sort_days`); the median, the near-zero
    threshold, the occupied days (a suffix of the sorted values), the base load and the seasonal
    levels are then read off the sorted values.

    Parameters
    ----------
    total : int32|int64[n, D]
        Daily Wh [Wh].
    present : bool[n, D]
        Day has a read.
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

    use_py : bool
        Run the row kernel's plain-Python twin (tests).

    Returns
    -------
    tuple of arrays (see ``diagnostics.features._usage``).
    """
    n = total.shape[0]
    out = usage_outputs(n)
    kernel = usage_rows.py_func if use_py else usage_rows
    prm = usage_params(base_q, low_abs_wh, low_frac, spike_year_factor, spike_local_factor, spike_min_wh,
                       spike_window, min_season_days)
    run_many(lambda lo: kernel(lo, min(n, lo + USAGE_TASK), total, present, open_first, open_last, month, season,
                               prm, out), range(0, n, USAGE_TASK))
    return out


def usage_from_rows(cols, month, season, prm, n, use_py=False):
    """The usage features of ``n`` customers straight from their daily rows (:func:`usage_runs` on
    tasks of ``USAGE_TASK`` runs on Python threads).

    Parameters
    ----------
    cols : diagnostics.dense.DailyColumns
        The rows; every customer must have one run at most (``cols.one_run_per_customer()``).
    month, season, prm
        As for :func:`usage_rows` (``prm`` from :func:`usage_params`).
    n : int
        Customers.
    use_py : bool
        Run the row kernel's plain-Python twin (tests).

    Returns
    -------
    (tuple, int32[n], int32[n], int64[n, 4], int64[n])
        The outputs of :func:`usage_kernel`, then the days with period registers, the estimated days,
        the Wh per register and the total Wh of the days with registers [Wh].
    """
    if not cols.one_run_per_customer():
        raise ValueError("usage_from_rows: a customer's rows are not one run (group the frame by customer)")
    out = usage_outputs(n)
    f, last = cols.open_first, cols.open_last
    out[2][:] = np.where(f >= 0, last - f + 1, 0)  # days_open, also of the customers without rows
    extra = (np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros((n, 4), np.int64), np.zeros(n, np.int64))
    kernel = usage_runs.py_func if use_py else usage_runs
    rows = cols.scatter_args()
    r = cols.run_cust.shape[0]
    run_many(lambda lo: kernel(lo, min(r, lo + USAGE_TASK), *rows, cols.open_first,  # type: ignore[call-arg]
                               cols.open_last, month, season, prm, out, *extra), range(0, r, USAGE_TASK))
    return (out, *extra)


def run_many(fn, items) -> None:
    """``fn(item)`` for every item, on ``numba.get_num_threads()`` Python threads when there are several.

    For nogil kernels: tasks handed out one at a time, so a thread held up by other work on a shared
    machine delays nobody (numba's own parallel regions would spin-wait at their barrier for it).
    """
    items = list(items)
    workers = min(nb.get_num_threads(), len(items))
    if workers <= 1:
        for it in items:
            fn(it)
        return
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(fn, items):
            pass




@nb.njit(cache=True)
def payments_kernel(bounds, run_cust, in_year, issued, issued_ok, paid, paid_ok, channel, n_channels,
                    late_after, year_end, n):  # pragma: no cover - numba (its twin runs in the tests)
    """Per-customer payment counts of the bills of a year, one pass over the payment rows.

    Parameters
    ----------
    bounds, run_cust : int64[r + 1], int64[r]
        Runs of equal ``customer_id`` (``diagnostics.dense._runs``): rows ``bounds[j]:bounds[j + 1]``
        belong to customer row ``run_cust[j]`` (-1: not a customer here).
    in_year : bool[rows]
        The bill is of the year.
    issued, paid : int64[rows]
        Issue and payment dates [days since 1970-01-01], valid where ``issued_ok`` / ``paid_ok``.
    channel : int64[rows]
        Channel index (``CHANNELS`` order), -1 for any other channel.
    n_channels : int
    late_after : int
        A bill is late when paid more than this many days after issue, or unpaid and issued more than
        this many days before ``year_end`` [days].
    year_end : int
        Dec 31 of the year [days since 1970-01-01].
    n : int
        Customers.

    Returns
    -------
    tuple of int64 arrays
        ``count, unpaid, delay_sum, delay_n, delay_max, late, late_n, n_paid`` (``[n]``; ``delay_*``
        over bills with both dates; ``late_n`` bills whose lateness is known) and ``by_channel``
        (``[n, n_channels]``, paid bills).
    """
    count = np.zeros(n, np.int64)
    unpaid = np.zeros(n, np.int64)
    delay_sum = np.zeros(n, np.int64)
    delay_n = np.zeros(n, np.int64)
    delay_max = np.zeros(n, np.int64)
    late = np.zeros(n, np.int64)
    late_n = np.zeros(n, np.int64)
    n_paid = np.zeros(n, np.int64)
    by_channel = np.zeros((n, n_channels), np.int64)
    for r in range(run_cust.shape[0]):
        i = run_cust[r]
        if i < 0:
            continue
        for k in range(bounds[r], bounds[r + 1]):
            if not in_year[k]:
                continue
            count[i] += 1
            if paid_ok[k]:
                n_paid[i] += 1
                c = channel[k]
                if c >= 0:
                    by_channel[i, c] += 1
                if issued_ok[k]:
                    delay = paid[k] - issued[k]
                    if delay_n[i] == 0 or delay > delay_max[i]:
                        delay_max[i] = delay
                    delay_sum[i] += delay
                    delay_n[i] += 1
                    late_n[i] += 1
                    if delay > late_after:
                        late[i] += 1
            else:
                unpaid[i] += 1
                if issued_ok[k]:
                    late_n[i] += 1
                    if year_end - issued[k] > late_after:
                        late[i] += 1
    return count, unpaid, delay_sum, delay_n, delay_max, late, late_n, n_paid, by_channel


@nb.njit(cache=True)
def count_days(mask, open_first, open_last):  # pragma: no cover - numba
    """Days of each row of ``mask`` that are True within the open window."""
    n = mask.shape[0]
    out = np.zeros(n, np.int32)
    for i in range(n):
        if open_first[i] < 0:
            continue
        c = 0
        for d in range(open_first[i], open_last[i] + 1):
            if mask[i, d]:
                c += 1
        out[i] = c
    return out


@nb.njit(cache=True)
def month_sums(total, present, month):  # pragma: no cover - numba
    """Wh and read days per month: ``(int64[n, 12], int32[n, 12])``."""
    n, D = total.shape
    wh = np.zeros((n, 12), np.int64)
    days = np.zeros((n, 12), np.int32)
    for i in range(n):
        for d in range(D):
            if present[i, d]:
                wh[i, month[d]] += total[i, d]
                days[i, month[d]] += 1
    return wh, days


@nb.njit(cache=True, nogil=True)
def month_sums_runs(r_lo, r_hi, bounds, run_cust, day, jan1, total, open_first, open_last, month, wh,
                    days):  # pragma: no cover - numba (twin tested)
    """:func:`month_sums` straight from daily rows grouped by customer (one run each, as
    :func:`usage_runs`), runs ``r_lo:r_hi``: a run in day order within the open window is cut into
    months by :func:`_month_ends` and each month summed by a vectorised loop; any other run is laid out by day in a buffer in cache (meters summed per day, rows
    outside the open window ignored), then added up by month into ``wh`` [Wh] and ``days`` [days]."""
    D = month.shape[0]
    month_start = _month_start(month)
    ends = np.empty(12, np.int64)
    tot = np.zeros(D, np.int64)
    pres = np.zeros(D, np.bool_)
    for r in range(r_lo, r_hi):
        i = run_cust[r]
        if i < 0:
            continue
        f = open_first[i]
        last = open_last[i]
        lo = bounds[r]
        hi = bounds[r + 1]
        if f < 0 or lo == hi:
            continue
        dmin, dmax, ordered = _day_span(day, lo, hi)
        if ordered and dmin - jan1 >= f and dmax - jan1 <= last:
            _month_ends(day[lo:hi], jan1, month_start, ends)
            a = 0
            for mo in range(12):
                wh[i, mo] = _sum(total[lo + a:lo + ends[mo]])
                days[i, mo] = ends[mo] - a
                a = ends[mo]
            continue
        for k in range(lo, hi):
            d = day[k] - jan1
            if d < f or d > last:
                continue
            tot[d] += total[k]
            pres[d] = True
        for d in range(f, last + 1):
            if pres[d]:
                wh[i, month[d]] += tot[d]
                days[i, month[d]] += 1
        tot[f:last + 1] = 0
        pres[f:last + 1] = False


def month_sums_from_rows(cols, month, n, use_py=False):
    """Wh and read days per month of ``n`` customers from their rows (``cols``:
    ``diagnostics.dense.DailyColumns``, one run per customer): ``(int64[n, 12], int32[n, 12])``.
    Tasks of ``USAGE_TASK`` runs on Python threads."""
    if not cols.one_run_per_customer():
        raise ValueError("month_sums_from_rows: a customer's rows are not one run (group the frame by customer)")
    wh = np.zeros((n, 12), np.int64)
    days = np.zeros((n, 12), np.int32)
    kernel = month_sums_runs.py_func if use_py else month_sums_runs
    r = cols.run_cust.shape[0]
    run_many(lambda lo: kernel(lo, min(r, lo + USAGE_TASK), cols.bounds, cols.run_cust, cols.day, cols.jan1,
                               cols.total, cols.open_first, cols.open_last, month, wh, days), range(0, r, USAGE_TASK))
    return wh, days


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
