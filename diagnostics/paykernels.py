"""numba kernels for the payment features and the peer percentiles of :func:`diagnostics.diagnose`.

* Short string columns (a payment's ``channel`` and ``bill_month``) are coded by
  :func:`wattbill._arrow.string_codes` (polars' Arrow string views read in place, or None: the caller
  then uses polars); the few distinct strings are looked at in Python and their values spread back over
  the rows (:func:`take_codes`).
* The channel mix of every customer is keyed by its counts in one pass (:func:`mix_codes`), so that
  its JSON text is formatted once per distinct combination.
* Peer percentiles are ranked in one walk over the values in sorted order (:func:`rank_pct`).
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def take_codes(codes, lut, null_value):  # pragma: no cover - numba (its twin runs in the tests)
    """``lut[codes]``, with ``null_value`` where a code is -1 (a null row).

    Parameters
    ----------
    codes : int8[n]
        Codes of :func:`wattbill._arrow.string_codes`.
    lut : 1-d array
        The value of each code.
    null_value : scalar
        The value of a null row (of ``lut``'s dtype).

    Returns
    -------
    array[n]
        Of ``lut``'s dtype.
    """
    out = np.empty(codes.shape[0], lut.dtype)
    for k in range(codes.shape[0]):
        c = codes[k]
        out[k] = lut[c] if c >= 0 else null_value
    return out


@nb.njit(cache=True)
def mix_codes(by_channel, n_paid, paid_any):  # pragma: no cover - numba (its twin runs in the tests)
    """Number every distinct combination of channel counts and paid bills, in one pass.

    Parameters
    ----------
    by_channel : int64[n, c]
        Paid bills per channel (``c`` at most 6).
    n_paid : int64[n]
        Paid bills.
    paid_any : bool[n]
        The customers to number (the others get -1).

    Returns
    -------
    (int64[n], int64[k])
        The combination of every customer (-1 where not ``paid_any``) and the first customer of each
        of the ``k`` combinations (in order of first appearance); both empty when a count is outside
        ``0..511`` (the key packs the counts in 9 bits each) or ``c > 6``.
    """
    n, n_ch = by_channel.shape
    combo = np.full(n, -1, np.int64)
    if n_ch > 6:
        return combo[:0], combo[:0]
    size = 1024
    slot = np.full(size, -1, np.int64)
    keys = np.empty(64, np.int64)
    first = np.empty(64, np.int64)
    k_n = 0
    for i in range(n):
        if not paid_any[i]:
            continue
        key = n_paid[i]
        if key < 0 or key > 511:
            return combo[:0], combo[:0]
        for c in range(n_ch):
            v = by_channel[i, c]
            if v < 0 or v > 511:
                return combo[:0], combo[:0]
            key = (key << 9) | v
        x = (key ^ (key >> 32)) & 0xFFFFFFFF
        s = ((x * 0x5BD1E995) >> 8) & (size - 1)
        while True:
            j = slot[s]
            if j < 0:
                if k_n == keys.shape[0]:
                    keys = np.concatenate((keys, np.empty(k_n, np.int64)))
                    first = np.concatenate((first, np.empty(k_n, np.int64)))
                keys[k_n] = key
                first[k_n] = i
                slot[s] = k_n
                j = k_n
                k_n += 1
                if 2 * k_n > size:  # grow and re-insert: at most half full
                    size *= 2
                    slot = np.full(size, -1, np.int64)
                    for q in range(k_n):
                        y = (keys[q] ^ (keys[q] >> 32)) & 0xFFFFFFFF
                        t = ((y * 0x5BD1E995) >> 8) & (size - 1)
                        while slot[t] >= 0:
                            t = (t + 1) & (size - 1)
                        slot[t] = q
                break
            if keys[j] == key:
                break
            s = (s + 1) & (size - 1)
        combo[i] = j
    return combo, first[:k_n]


_CANON_NAN = 0x7FF8000000000000  # the key of every NaN (above +inf's 0x7FF0000000000000)
_FLIP = 0x7FFFFFFFFFFFFFFF


@nb.njit(cache=True)
def order_keys(values, rows):  # pragma: no cover - numba (its twin runs in the tests)
    """int64 keys of ``values[rows]`` in the order of the values: ``a < b`` exactly when ``key(a) < key(b)``.

    Ties as polars ranks them: -0.0 has the key of 0.0, and every NaN the same key, above +inf.

    Parameters
    ----------
    values : float64[n]
        Contiguous.
    rows : int64[m]
        The rows to key.

    Returns
    -------
    int64[m]
    """
    bits = values.view(np.int64)
    keys = np.empty(rows.shape[0], np.int64)
    for j in range(rows.shape[0]):
        i = rows[j]
        v = values[i]
        if v != v:
            b = _CANON_NAN
        elif v == 0.0:
            b = 0
        else:
            b = bits[i]
            if b < 0:  # negative: larger magnitudes below
                b ^= _FLIP
        keys[j] = b
    return keys


@nb.njit(cache=True)
def _digit(key, p):  # pragma: no cover - numba
    """Digit ``p`` (0 = lowest) of ``key`` in the order of signed int64: 11 bits, the top one 9 bits with
    the sign bit flipped."""
    if p < 5:
        return (key >> (11 * p)) & 2047
    return ((key >> 55) & 511) ^ 256


@nb.njit(cache=True)
def radix_sort(keys, rows):  # pragma: no cover - numba (its twin runs in the tests)
    """Sort ``keys`` (signed int64) ascending, carrying ``rows`` along (LSD radix, stable).

    Parameters
    ----------
    keys, rows : int64[m]
        Left as they are (the sorted copies are returned).

    Returns
    -------
    (int64[m], int64[m])
        The sorted keys and the rows in their order. A pass whose digit is the same for every key is
        skipped.
    """
    m = keys.shape[0]
    counts = np.zeros((6, 2048), np.int64)
    for j in range(m):
        for p in range(6):
            counts[p, _digit(keys[j], p)] += 1
    src_k = keys.copy()
    src_r = rows.copy()
    dst_k = np.empty_like(keys)
    dst_r = np.empty_like(rows)
    pos = np.empty(2048, np.int64)
    for p in range(6):
        if m == 0 or counts[p, _digit(src_k[0], p)] == m:
            continue
        total = 0
        for d in range(2048):
            pos[d] = total
            total += counts[p, d]
        for j in range(m):
            d = _digit(src_k[j], p)
            q = pos[d]
            pos[d] = q + 1
            dst_k[q] = src_k[j]
            dst_r[q] = src_r[j]
        src_k, dst_k = dst_k, src_k
        src_r, dst_r = dst_r, src_r
    return src_k, src_r


@nb.njit(cache=True)
def rank_pct(keys, rows, group, size, min_size, out):  # pragma: no cover - numba (its twin runs in the tests)
    """Percentile [0..100] of each value within its group: ``100 * (rank - 0.5) / size``.

    ``rank`` is the average rank within the group (ties share the mean of their positions, counted
    from 1), as polars' ``rank("average")``. Every intermediate is a half-integer or an integer, so the
    result is the same float as polars' ``100.0 * (rank - 0.5) / size``.

    Parameters
    ----------
    keys : int64[m]
        :func:`order_keys` of the rows to rank, ascending (:func:`radix_sort`): equal keys are ties.
    rows : int64[m]
        The row of each key.
    group : int64[n]
        Group of each row, ``0 <= group < size.shape[0]``.
    size : int64[g]
        Rows of ``rows`` in each group.
    min_size : int
        Groups smaller than this are left out.
    out : float64[n]
        Written at ``rows`` in groups of at least ``min_size`` (left as is elsewhere).
    """
    less = np.zeros(size.shape[0], np.int64)
    ties = np.zeros(size.shape[0], np.int64)
    m = keys.shape[0]
    a = 0
    while a < m:
        b = a + 1
        while b < m and keys[b] == keys[a]:
            b += 1
        for j in range(a, b):
            ties[group[rows[j]]] += 1
        for j in range(a, b):
            i = rows[j]
            g = group[i]
            if size[g] >= min_size:
                rank = less[g] + (ties[g] + 1) / 2.0
                out[i] = 100.0 * (rank - 0.5) / float(size[g])
        for j in range(a, b):
            g = group[rows[j]]
            less[g] += ties[g]
            ties[g] = 0
        a = b


def peer_pct(values: np.ndarray, valid: np.ndarray, group: np.ndarray, n_groups: int,
             min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Percentiles of ``values`` within groups (see :func:`rank_pct`) and every row's group size.

    Parameters
    ----------
    values : float64[n]
        The values (anything where not ``valid``).
    valid : bool[n]
        The rows ranked and counted.
    group : int64[n]
        Group of each row, ``0 <= group < n_groups``.
    n_groups : int
    min_size : int
        Percentiles need a group of at least this many valid rows.

    Returns
    -------
    (float64[n], int64[n])
        The percentile [0..100] (NaN where not valid or the group is too small) and the number of
        valid rows in the row's group.
    """
    values = np.ascontiguousarray(values, np.float64)
    rows = np.flatnonzero(valid).astype(np.int64)
    size = np.bincount(group[rows], minlength=n_groups).astype(np.int64)
    keys, rows = radix_sort(order_keys(values, rows), rows)
    out = np.full(values.shape[0], np.nan)
    rank_pct(keys, rows, group, size, int(min_size), out)
    return out, size[group]
