"""numba kernels of VEE: the per-meter sequential passes over reads sorted by (customer, meter, day).

Each kernel has its plain-Python twin (``kernel.py_func``); ``tests/ingest/test_kernels.py`` runs both
against a straightforward reference on random reads. Rules are the ones in ``ingest.vee``'s docstring.

Inputs are plain arrays: ``same[i]`` is True when row ``i`` belongs to the same meter as row ``i - 1``
(rows sorted by customer, meter, day); registers are integer Wh with ``-1`` for "no value" (registers
are never negative here: negative reads were quarantined before); days are days since 1970-01-01.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: the largest ``digits`` a register can have here: 10**15 kWh * 1000 Wh still fits in an int64
MAX_DIGITS = 15


@nb.njit(cache=True, nogil=True)
def _int_digits(kwh):  # pragma: no cover - numba (its twin runs in the tests)
    """Number of integer digits of ``kwh`` (>= 1): 0..9 -> 1, 10..99 -> 2, ..."""
    n = 1
    x = kwh
    while x >= 10 and n < MAX_DIGITS:
        x //= 10
        n += 1
    return n


#: ``delta`` of a register that has no value (no previous read, or a meter without the register)
NO_DELTA = np.iinfo(np.int64).min

#: how many later reads of a meter are looked at to see whether a register that went down comes back
MAX_GLITCH_RUN = 7

#: ``bad`` codes of :func:`register_deltas`
BAD_LOW = 1  # the read went down and a later read came back: a bad (low) read
BAD_HIGH = 2  # the read is above both neighbours, which are in line with each other: a bad (high) read
BAD_UNCONFIRMED = 3  # the last read of the meter went down: nothing yet says whether it comes back


@nb.njit(cache=True, nogil=True, inline="always")
def _below(regs, i, p):  # pragma: no cover - numba (its twin runs in the tests)
    """Index of the first register of row ``i`` below its value in row ``p`` (both known), else -1."""
    for c in range(regs.shape[0]):
        a = regs[c, i]
        b = regs[c, p]
        if a >= 0 and b >= 0 and a < b:
            return c
    return -1


@nb.njit(cache=True, nogil=True)
def register_deltas(same, day, regs, digits):  # pragma: no cover - numba (its twin runs in the tests)
    """Differences of each read to the meter's previous *accepted* read: bad reads, rollovers, resets.

    One forward pass per meter. A read where a register goes down is, in this order (the VEE rules
    "bad reads", "rollover" and "register reset" of ``ingest.vee``):

    1. a **bad low read** when one of the next ``MAX_GLITCH_RUN`` reads of the meter is back at or
       above the last accepted read in every register (``BAD_LOW``): whatever the register's size, a
       read that comes back was a bad read, not a wrap;
    2. a **bad high read** of the previous accepted read when this read is at or above the accepted
       read before that one in every register (``BAD_HIGH``, set on the previous read, whose
       difference is then taken again from the read before it);
    3. **unconfirmed** when it is the meter's last read here (``BAD_UNCONFIRMED``): held back until
       a later read shows whether it comes back;
    4. otherwise it stays down: each register that went down **wrapped** when the register's size is
       known and the read before was within the top 10 % of the range and the wrapped difference
       within its first 10 % (``rolled``); else a **reset** (``negcol``: no consumption that day, the
       read re-anchors the meter).

    The size of the register (``10**digits`` kWh) is the file's ``digits`` value when given, else
    the meter's history: the number of integer digits of the largest total accepted so far (a
    register that has shown 99,998 kWh has at least 5 digits), never one low value.

    Parameters
    ----------
    same : ndarray of bool, (n,)
        Row ``i`` is the same meter as row ``i - 1`` (rows sorted by customer, meter, day).
    day : ndarray of int32, (n,)
        Read date. [days since 1970-01-01]
    regs : ndarray of int64, (k, n)
        Register reads, row 0 the total, then the periods; ``-1`` where the meter has none. Not
        changed. [Wh]
    digits : ndarray of int64, (n,) or (0,)
        Digits of the register from the file, ``-1`` where not given, empty when no row gives them.

    Returns
    -------
    delta : ndarray of int64, (k, n)
        Read minus the previous accepted read (across the wrap for a rollover); ``NO_DELTA`` where
        either is missing, for a first read and for a bad read. [Wh]
    prev_day : ndarray of int32, (n,)
        Day of the previous accepted read of the meter (for a bad read: the read it was compared
        with), ``-1`` for its first read. [days since 1970-01-01]
    prev_total : ndarray of int64, (n,)
        That read's total (``-1`` where ``prev_day`` is). [Wh]
    rolled : ndarray of bool, (n,)
        Some register wrapped.
    negcol : ndarray of int8, (n,)
        The register that went down and stayed down (a reset), or that went down on a bad read; -1.
    bad : ndarray of int8, (n,)
        0, or ``BAD_LOW`` / ``BAD_HIGH`` / ``BAD_UNCONFIRMED``: the read is not used (quarantined by
        the caller).
    used_digits : ndarray of int64, (n,)
        The digits used for the rollover test, on rows that stayed down (else ``-1``).

    Notes
    -----
    The rule's source is wattbill's own field data (issue #12): collectors send 0.00 for a day now and
    then, and a 4-digit guess from a value such as 9,448 kWh turned such a read into 10,000 kWh.
    """
    k, n = regs.shape
    delta = np.full((k, n), NO_DELTA, np.int64)
    prev_day = np.full(n, -1, np.int32)
    prev_total = np.full(n, -1, np.int64)
    rolled = np.zeros(n, np.bool_)
    negcol = np.full(n, -1, np.int8)
    bad = np.zeros(n, np.int8)
    used_digits = np.full(n, -1, np.int64)
    has_digits = len(digits) == n
    i = 0
    while i < n:
        s = i
        e = i + 1
        while e < n and same[e]:
            e += 1
        p = s  # the last accepted read
        pp = -1  # the accepted read before it
        hist = regs[0, s]  # largest total accepted so far [Wh]
        hist_pp = hist  # the same before ``p`` was accepted
        for i2 in range(s + 1, e):
            c = _below(regs, i2, p)
            if c >= 0:
                back = False
                for j in range(i2 + 1, min(e, i2 + 1 + MAX_GLITCH_RUN)):
                    if _below(regs, j, p) < 0:
                        back = True
                        break
                if back:
                    bad[i2] = BAD_LOW
                    negcol[i2] = c
                    prev_day[i2] = day[p]
                    prev_total[i2] = regs[0, p]
                    continue
                if pp >= 0 and _below(regs, i2, pp) < 0:
                    bad[p] = BAD_HIGH  # p was out of line: take this read from the one before
                    for cc in range(k):
                        delta[cc, p] = NO_DELTA
                    rolled[p] = False
                    negcol[p] = -1
                    p = pp
                    pp = -1
                    hist = hist_pp
                elif i2 == e - 1:
                    bad[i2] = BAD_UNCONFIRMED
                    negcol[i2] = c
                    prev_day[i2] = day[p]
                    prev_total[i2] = regs[0, p]
                    continue
            prev_day[i2] = day[p]
            prev_total[i2] = regs[0, p]
            mod = np.int64(-1)
            for cc in range(k):
                a = regs[cc, i2]
                b = regs[cc, p]
                if a < 0 or b < 0:
                    continue
                d = a - b
                if d < 0:
                    if mod < 0:
                        dg = digits[i2] if has_digits else -1
                        if dg < 0:
                            dg = _int_digits(max(hist // 1000, 1))
                        if dg > MAX_DIGITS:
                            dg = MAX_DIGITS
                        used_digits[i2] = dg
                        mod = np.int64(1000)
                        for _ in range(dg):
                            mod *= 10
                    if b >= mod * 9 // 10 and 0 <= d + mod <= mod // 10:
                        d += mod
                        rolled[i2] = True
                    elif negcol[i2] < 0:
                        negcol[i2] = cc
                delta[cc, i2] = d
            pp = p
            p = i2
            hist_pp = hist
            if negcol[i2] >= 0:  # a reset: the register starts again
                hist = regs[0, i2]
            elif regs[0, i2] > hist:
                hist = regs[0, i2]
        i = e
    return delta, prev_day, prev_total, rolled, negcol, bad, used_digits


@nb.njit(cache=True, nogil=True)
def reconcile_periods(total, periods, tou, tol_wh, zero_target):  # pragma: no cover - numba
    """Make the period registers of each day add up to its total (the VEE rule "periods vs total").

    When ``|sum(periods) - total| <= max(tol_wh, 1 % of total)`` (1 % rounded half to even) the largest
    period (the first on ties) absorbs the difference, if it stays >= 0 ("small"). Beyond that the
    periods are scaled to the total: ``floor(p * total / sum)`` each, and the remainder goes to the
    largest scaled period; when the periods sum to 0 everything goes to period ``zero_target`` ("big",
    recorded as a ``periods_mismatch`` finding by the caller).

    Parameters
    ----------
    total : ndarray of int64, (n,)
        Consumption of the day. [Wh]
    periods : ndarray of int64, (k, n)
        Consumption per period, >= 0 on ``tou`` rows; changed in place (other rows are left alone). [Wh]
    tou : ndarray of bool, (n,)
        The meter has time-of-use registers.
    tol_wh : int
        Smallest tolerance. [Wh]
    zero_target : int
        Period that takes the total when the periods sum to 0.

    Returns
    -------
    big : ndarray of bool, (n,)
        The periods were scaled.
    sums : ndarray of int64, (n,)
        Sum of the periods as read. [Wh]
    changed : ndarray of bool, (k,)
        Some value of the period changed.
    """
    k, n = periods.shape
    big = np.zeros(n, np.bool_)
    sums = np.zeros(n, np.int64)
    changed = np.zeros(k, np.bool_)
    scaled = np.zeros(k, np.int64)
    for i in range(n):
        if not tou[i]:
            continue
        s = np.int64(0)
        jmax = 0
        for j in range(k):
            p = periods[j, i]
            s += p
            if p > periods[jmax, i]:
                jmax = j
        sums[i] = s
        t = total[i]
        diff = t - s
        if diff == 0:
            continue
        q = t // 100
        r = t - q * 100
        if r > 50 or (r == 50 and q % 2 == 1):
            q += 1
        tol = max(tol_wh, q)
        if abs(diff) <= tol and periods[jmax, i] + diff >= 0:
            periods[jmax, i] += diff
            changed[jmax] = True
            continue
        big[i] = True
        if s > 0:
            acc = np.int64(0)
            jm = 0
            for j in range(k):
                p = periods[j, i]
                if p != 0 and abs(t) > 9_000_000_000_000_000_000 // p:
                    v = np.int64(np.floor(float(p) * float(t) / float(s)))  # beyond int64: a float
                else:
                    v = (p * t) // s
                scaled[j] = v
                acc += v
                if v > scaled[jm]:
                    jm = j
            scaled[jm] += t - acc
        else:
            for j in range(k):
                scaled[j] = 0
            scaled[zero_target] = t
        for j in range(k):
            if periods[j, i] != scaled[j]:
                periods[j, i] = scaled[j]
                changed[j] = True
    return big, sums, changed


@nb.njit(cache=True, nogil=True)
def plain_strings(offsets, data):  # pragma: no cover - numba (its twin runs in the tests)
    """True when no string of an Arrow string array is empty or starts or ends with a byte that may be
    white space (ASCII 9-13 and 32, or any non-ASCII byte, conservatively).

    Parameters
    ----------
    offsets : ndarray of int64, (n + 1,)
        Arrow offsets of the strings into ``data``.
    data : ndarray of uint8
        UTF-8 bytes.
    """
    for i in range(len(offsets) - 1):
        a = offsets[i]
        b = offsets[i + 1]
        if b <= a:
            return False
        for x in (data[a], data[b - 1]):
            if x == 32 or (9 <= x <= 13) or x >= 128:
                return False
    return True


@nb.njit(cache=True, nogil=True)
def spike_days(starts, wh, measured, factor, min_excess, min_days):  # pragma: no cover - numba
    """Days far above the household's own typical day (the VEE rule "spikes").

    Per segment ``starts[j]:starts[j + 1]`` (one household), the median of its measured days; a measured
    day above ``max(factor * median, median + min_excess)`` is a spike when the household has at
    least ``min_days`` measured days.

    Parameters
    ----------
    starts : ndarray of int64, (m + 1,)
        Segment starts, ending with ``n``.
    wh : ndarray of int64, (n,)
        Consumption of the day. [Wh]
    measured : ndarray of bool, (n,)
        The day was measured (not estimated).
    factor, min_excess, min_days : float, float, int
        [1], [Wh], [days]

    Returns
    -------
    hit : ndarray of bool, (n,)
    median : ndarray of float64, (n,)
        The household's median day on spike days (NaN elsewhere). [Wh]
    """
    n = len(wh)
    hit = np.zeros(n, np.bool_)
    median = np.full(n, np.nan)
    for j in range(len(starts) - 1):
        lo = starts[j]
        hi = starts[j + 1]
        c = 0
        for i in range(lo, hi):
            if measured[i]:
                c += 1
        if c < min_days:
            continue
        vals = np.empty(c, np.int64)
        k = 0
        for i in range(lo, hi):
            if measured[i]:
                vals[k] = wh[i]
                k += 1
        h = c // 2
        part = np.partition(vals, h)
        med = float(part[h]) if c % 2 == 1 else (float(part[:h].max()) + float(part[h])) / 2.0
        limit = max(med * factor, med + min_excess)
        for i in range(lo, hi):
            if measured[i] and wh[i] > limit:
                hit[i] = True
                median[i] = med
    return hit, median
