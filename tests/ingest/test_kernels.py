"""The VEE kernels (``ingest.kernels``), compiled and as plain Python (``py_func``), against
row-by-row references written from the rules in ``ingest.vee``'s docstring."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import meter_reads, period_days
from wattbill.ingest import kernels


def ref_deltas(same, day, regs, digits):
    """The rules of ``ingest.vee`` ("bad reads", "rollover", "register reset"), one meter and one read
    at a time: a read is compared with the meter's last accepted read; one that went down is a bad
    low read if a later read (within 7) is back up in every register, makes the accepted read
    before it a bad high read if it is in line with the read before that, is held back as the
    meter's last read, else wraps (size from ``digits``, else the largest total so far) or resets."""
    k, n = regs.shape
    r = [[int(regs[c, i]) for c in range(k)] for i in range(n)]
    out: list = [None] * n

    def below(i, j):
        return next((c for c in range(k) if r[i][c] >= 0 and r[j][c] >= 0 and r[i][c] < r[j][c]), -1)

    starts = [i for i in range(n) if not same[i]] + [n]
    for s0, e in itertools.pairwise(starts):
        out[s0] = (-1, [None] * k, False, -1, 0)
        accepted = [s0]
        hist = [r[s0][0]]  # the largest total after each accepted read
        for i in range(s0 + 1, e):
            p = accepted[-1]
            c = below(i, p)
            if c >= 0:
                if any(below(j, p) < 0 for j in range(i + 1, min(e, i + 8))):
                    out[i] = (int(day[p]), [None] * k, False, c, kernels.BAD_LOW)
                    continue
                if len(accepted) > 1 and below(i, accepted[-2]) < 0:
                    old = out[p]
                    out[p] = (old[0], [None] * k, False, -1, kernels.BAD_HIGH)
                    accepted.pop()
                    hist.pop()
                    p = accepted[-1]
                elif i == e - 1:
                    out[i] = (int(day[p]), [None] * k, False, c, kernels.BAD_UNCONFIRMED)
                    continue
            dg = int(digits[i]) if len(digits) and digits[i] > 0 else len(str(max(hist[-1] // 1000, 1)))
            mod = 10 ** min(dg, kernels.MAX_DIGITS) * 1000
            ds: list[int | None] = []
            rolled, neg = False, -1
            for cc in range(k):
                a, b = r[i][cc], r[p][cc]
                if a < 0 or b < 0:
                    ds.append(None)
                    continue
                d = a - b
                if d < 0 and b >= mod * 9 // 10 and 0 <= d + mod <= mod // 10:
                    d += mod
                    rolled = True
                if d < 0 and neg < 0:
                    neg = cc
                ds.append(d)
            out[i] = (int(day[p]), ds, rolled, neg, 0)
            accepted.append(i)
            hist.append(r[i][0] if neg >= 0 else max(hist[-1], r[i][0]))
    return out


def ref_reconcile(total, per, tou, tol_wh, zero_target):
    out, big = per.copy(), np.zeros(len(total), bool)
    for i in range(len(total)):
        if not tou[i]:
            continue
        t, p = int(total[i]), [int(x) for x in per[i]]
        s = sum(p)
        diff = t - s
        if diff == 0:
            continue
        tol = max(tol_wh, round(t / 100))  # Python's round: half to even, as the rule says
        j = p.index(max(p))
        if abs(diff) <= tol and p[j] + diff >= 0:
            out[i, j] += diff
            continue
        big[i] = True
        if s == 0:
            out[i] = 0
            out[i, zero_target] = t
            continue
        sc = [x * t // s for x in p]
        sc[sc.index(max(sc))] += t - sum(sc)
        out[i] = sc
    return out, big


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
class TestKernels:
    @settings(max_examples=150, deadline=None)
    @given(case=meter_reads())
    def test_register_deltas(self, use_py, case):
        same, day, regs, digits = case
        fn = kernels.register_deltas.py_func if use_py else kernels.register_deltas
        want = ref_deltas(same, day, regs, digits)
        delta, prev_day, _prev_total, rolled, negcol, bad, used = fn(same, day, regs, digits)
        for i, (pd_, ds, r, neg, b) in enumerate(want):
            assert bad[i] == b, i
            if b == kernels.BAD_HIGH:
                continue
            assert prev_day[i] == pd_, i
            got = [None if x == kernels.NO_DELTA else int(x) for x in delta[:, i]]
            assert got == ds, i
            assert rolled[i] == r and negcol[i] == neg, i
            if r:
                assert used[i] > 0

    def test_rollover_and_glitch_examples(self, use_py):
        fn = kernels.register_deltas.py_func if use_py else kernels.register_deltas
        same = np.array([False, True, True, True])
        day = np.array([1, 2, 3, 4], np.int32)
        # a 5-digit register: 99,990 kWh -> 5 kWh wraps (15 kWh); then a bad read down and back
        regs = np.array([[99_990_000, 5_000, 4_000, 6_000]], np.int64)
        delta, prev_day, _, rolled, negcol, bad, used = fn(same, day, regs, np.empty(0, np.int64))
        assert list(prev_day) == [-1, 1, 2, 2]
        assert delta[0, 1] == 15_000 and rolled[1] and used[1] == 5
        assert negcol[2] == 0 and bad[2] == kernels.BAD_LOW  # 4,000 < 5,000 and the next read is back up
        assert delta[0, 3] == 1_000 and not bad[3]  # taken from the last good read (5,000)

    def test_glitch_to_zero_is_not_a_four_digit_rollover(self, use_py):
        """Issue #12 item 2: 9,448.00 then 0.00 then 9,472.00 is a bad read, not 9,448 wrapping."""
        fn = kernels.register_deltas.py_func if use_py else kernels.register_deltas
        reads = [9_400, 9_412, 9_424, 9_436, 9_448, 0, 9_472, 9_484, 9_496, 9_508, 9_520]
        regs = np.array([[x * 1000 for x in reads]], np.int64)
        same = np.array([False] + [True] * 10)
        day = np.arange(11, dtype=np.int32)
        delta, prev_day, _, rolled, _negcol, bad, _ = fn(same, day, regs, np.empty(0, np.int64))
        assert list(bad) == [0] * 5 + [kernels.BAD_LOW] + [0] * 5
        assert not rolled.any() and delta[0, 6] == 24_000 and prev_day[6] == 4
        # with the register's size given as 4 digits: still a bad read, it came back
        delta, _, _, rolled, _, bad, _ = fn(same, day, regs, np.full(11, 4, np.int64))
        assert bad[5] == kernels.BAD_LOW and not rolled.any()

    def test_siblings_of_the_glitch(self, use_py):
        fn = kernels.register_deltas.py_func if use_py else kernels.register_deltas
        none = np.empty(0, np.int64)

        def run(rows, digits=none):
            regs = np.array(rows, np.int64).T.copy() * 1000
            n = regs.shape[1]
            return fn(np.array([False] + [True] * (n - 1)), np.arange(n, dtype=np.int32), regs, digits)

        # two bad reads in a row
        d, _, _, rolled, _, bad, _ = run([[100], [110], [0], [0], [140], [150]])
        assert list(bad) == [0, 0, 1, 1, 0, 0] and d[0, 4] == 30_000 and not rolled.any()
        # a bad read on a period register only (total fine, valley 0 and back)
        d, _, _, _, negcol, bad, _ = run([[100, 60, 40], [110, 66, 44], [120, 72, 0], [130, 78, 52]])
        assert list(bad) == [0, 0, 1, 0] and negcol[2] == 2 and list(d[:, 3]) == [20_000, 12_000, 8_000]
        # a bad read at the last read: held back
        _, _, _, _, _, bad, _ = run([[100], [110], [0]])
        assert list(bad) == [0, 0, kernels.BAD_UNCONFIRMED]
        # a bad high read: above both neighbours, which are in line
        d, _, _, rolled, _, bad, _ = run([[9_436], [9_448], [99_999], [9_472], [9_484]])
        assert list(bad) == [0, 0, kernels.BAD_HIGH, 0, 0] and d[0, 3] == 24_000 and not rolled.any()
        # a real rollover stays low: billed across the wrap (5 digits from the meter's history)
        d, _, _, rolled, _, bad, used = run([[99_986], [99_998], [10], [22], [34]])
        assert not bad.any() and rolled[2] and used[2] == 5 and d[0, 2] == 12_000
        # a reset stays low and does not wrap: re-anchored
        _, _, _, rolled, negcol, bad, _ = run([[500], [510], [2], [12], [22]])
        assert not bad.any() and not rolled.any() and negcol[2] == 0

    @settings(max_examples=150, deadline=None)
    @given(case=period_days())
    def test_reconcile_periods(self, use_py, case):
        total, per, tou = case
        fn = kernels.reconcile_periods.py_func if use_py else kernels.reconcile_periods
        per_kn = per.T.copy()  # the kernel changes it in place
        big, sums, changed = fn(total, per_kn, tou, 50, 2)
        out = per_kn.T
        want, want_big = ref_reconcile(total, per, tou, 50, 2)
        assert np.array_equal(changed, (want != per).any(axis=0))
        assert np.array_equal(out, want)
        assert np.array_equal(big, want_big)
        assert np.array_equal(sums[tou], per[tou].sum(axis=1))
        assert np.array_equal(out[tou].sum(axis=1), total[tou])  # periods now add up

    @settings(max_examples=100, deadline=None)
    @given(
        values=st.lists(st.integers(0, 80_000), max_size=60),
        cuts=st.lists(st.integers(0, 60), max_size=6),
        estimated=st.lists(st.booleans(), min_size=60, max_size=60),
    )
    def test_spike_days(self, use_py, values, cuts, estimated):
        wh = np.array(values, np.int64)
        measured = ~np.array(estimated[: len(wh)], bool)
        starts = np.array(sorted({0, len(wh), *[c for c in cuts if c <= len(wh)]}), np.int64)
        fn = kernels.spike_days.py_func if use_py else kernels.spike_days
        hit, median = fn(starts, wh, measured, 5.0, 20_000.0, 3)
        want = np.zeros(len(wh), bool)
        for j in range(len(starts) - 1):  # the rule, with numpy's median
            seg = slice(starts[j], starts[j + 1])
            days = wh[seg][measured[seg]]
            if len(days) < 3:
                continue
            med = float(np.median(days))
            want[seg] = measured[seg] & (wh[seg] > max(5 * med, med + 20_000))
            assert np.all(median[seg][want[seg]] == med)
        assert np.array_equal(hit, want)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.floats(0, 1e7, allow_nan=False), max_size=40))
    def test_kwh_to_wh(self, use_py, kwh):
        """The fast path of ``vee._wh_of`` (numpy) rounds as the text path (polars, half to even)."""
        from wattbill.ingest import vee

        x = [float(v) for v in kwh]
        df = pl.DataFrame({"total": x}, schema={"total": pl.Float64})
        got = vee._wh_of(df, "total") if len(x) else pl.Series("total", [], pl.Int64)
        want = (pl.Series(x, dtype=pl.Float64) * 1000).round(0).cast(pl.Int64)
        assert isinstance(got, pl.Series) or not len(x)
        assert got.to_list() == want.to_list()

    @pytest.mark.parametrize(
        "strings, plain",
        [
            (["0001", "A-2", "用户3"], False),  # non-ASCII at an end: checked the slow way
            (["0001", "A-2", "3"], True),
            (["0001", " 2"], False),
            (["0001", "2\t"], False),
            (["0001", ""], False),
            (["a b", "c"], True),  # inner spaces are part of the id
        ],
    )
    def test_plain_strings(self, use_py, strings, plain):
        arr = pa.array(strings, pa.large_string())
        _, off, data = arr.buffers()
        fn = kernels.plain_strings.py_func if use_py else kernels.plain_strings
        offsets = np.frombuffer(off, np.int64)[: len(arr) + 1]
        assert fn(offsets, np.frombuffer(data, np.uint8) if data else np.zeros(0, np.uint8)) is plain
        # the rule itself: no empty value, no white space (or non-ASCII, conservatively) at either end
        assert plain == all(v and v[0] not in " \t\n\v\f\r" and v[-1] not in " \t\n\v\f\r"
                            and v[0].isascii() and v[-1].isascii() for v in strings)
