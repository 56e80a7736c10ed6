"""numba kernels: per-household usage features over dense daily arrays (see :mod:`diagnostics.dense`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

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


@nb.njit(cache=True)
def sort_days(vals, days, m, keys, tmp, out_vals, out_days):  # pragma: no cover - numba (twin tested)
    """Sort ``vals[:m]`` ascending into ``out_vals[:m]``, with the day of each value into ``out_days``.

    An LSD radix sort of ``(value - min) << DAY_BITS | day`` keys on the 8-bit digits of the value only
    (the day rides along in the low bits): one or two linear passes over a household's days, several
    times faster than a comparison sort or than repeated selection. Stable: ties keep their input
    order. Falls back to a stable comparison sort when the values span ``MAX_KEY_RANGE`` or more.
    ``keys`` and ``tmp`` are scratch of at least ``m`` elements; ``days`` must be below
    ``2**DAY_BITS``.
    """
    if m == 0:
        return
    lo = vals[0]
    hi = vals[0]
    for j in range(1, m):
        v = vals[j]
        if v < lo:
            lo = v
        elif v > hi:
            hi = v
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
    counts = np.zeros((n_digits, 257), np.int64)
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
"""Households per task of :func:`usage_kernel` (tasks go to a pool of Python threads)."""


@nb.njit(cache=True, nogil=True)
def usage_rows(lo, hi, total, present, open_first, open_last, month, season, base_q, low_abs_wh, low_frac,
               spike_year_factor, spike_local_factor, spike_min_wh, spike_window, min_season_days,
               wh_year, month_wh, days_open, days_present, base_wh, median_wh, level, low_run, low_run_start,
               low_days, spike_days, spike_max_ratio, spike_first):  # pragma: no cover - numba (twin tested)
    """The usage features of households ``lo:hi``, written into the output arrays (see
    :func:`usage_kernel`; serial, without the GIL)."""
    D = total.shape[1]
    season_of_day = np.empty(D, np.int64)
    for d in range(D):
        season_of_day[d] = season[month[d]]
    vals = np.empty(D, np.int64)
    days = np.empty(D, np.int64)
    keys = np.empty(D, np.int64)
    tmp = np.empty(D, np.int64)
    sv = np.empty(D, np.int64)
    sd = np.empty(D, np.int64)
    sbuf = np.empty((4, D), np.int64)
    for i in range(lo, hi):
        f = open_first[i]
        last = open_last[i]
        if f < 0:
            continue
        days_open[i] = last - f + 1
        m = 0
        wy = np.int64(0)
        for d in range(f, last + 1):
            if present[i, d]:
                v = np.int64(total[i, d])
                wy += v
                month_wh[i, month[d]] += v
                vals[m] = v
                days[m] = d
                m += 1
        wh_year[i] = wy
        days_present[i] = m
        if m == 0:
            continue
        sort_days(vals, days, m, keys, tmp, sv, sd)
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
            continue
        med = _sorted_quantile(sv, j0, m, 0.5)
        median_wh[i] = med
        level[i, 0] = med
        base_wh[i] = _sorted_quantile(sv, j0, m, base_q)
        # the occupied days of each season (0 = none), still sorted; the four counters are packed in
        # one integer (16 bits each) so that the loop has neither branches nor store-to-load chains
        packed = 0
        for j in range(j0, m):
            sh = 16 * season_of_day[sd[j]]
            sbuf[sh >> 4, (packed >> sh) & 0xFFFF] = sv[j]
            packed += 1 << sh
        for sidx in range(1, 4):
            cnt = (packed >> (16 * sidx)) & 0xFFFF
            if cnt >= min_season_days:
                level[i, sidx] = _sorted_quantile(sbuf[sidx], 0, cnt, 0.5)
        # spikes: candidates against the year's median, confirmed against the days around them
        cand = spike_year_factor * med
        if sv[m - 1] <= cand:
            continue
        for j in range(m):
            v = vals[j]
            if v <= cand:
                continue
            d = days[j]
            k = 0
            for e in range(max(f, d - spike_window), min(last, d + spike_window) + 1):
                if e != d and present[i, e] and total[i, e] >= thr:
                    keys[k] = total[i, e]
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
    out = (np.zeros(n, np.int64), np.zeros((n, 12), np.int64), np.zeros(n, np.int32), np.zeros(n, np.int32),
           np.full(n, np.nan), np.full(n, np.nan),
           np.full((n, 4), np.nan),  # 0 all occupied days, 1 shoulder, 2 summer, 3 winter  [Wh/day]
           np.zeros(n, np.int32), np.full(n, -1, np.int32), np.zeros(n, np.int32), np.zeros(n, np.int32),
           np.full(n, np.nan), np.full(n, -1, np.int32))
    kernel = usage_rows.py_func if use_py else usage_rows
    args = (total, present, open_first, open_last, month, season, float(base_q), float(low_abs_wh),
            float(low_frac), float(spike_year_factor), float(spike_local_factor), float(spike_min_wh),
            int(spike_window), int(min_season_days))
    tasks = range(0, n, USAGE_TASK)
    run_many(lambda lo: kernel(lo, min(n, lo + USAGE_TASK), *args, *out), tasks)
    return out


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
