"""The fast paths of the diagnostics against the plain computations they replace, on random data.

Every numba kernel added for speed has its plain-Python twin (``kernel.py_func``) checked against an
independent reference (see the table of ``tests/test_kernel_twins.py``).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import daily_cases
from wattbill import tariffs
from wattbill.diagnostics import densify, shift_peak_to_valley, tariff_what_if
from wattbill.diagnostics import whatif as W
from wattbill.diagnostics.features import ALTERNATIVES_SCHEMA, BILLS_SCHEMA, bills_frame

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def catalog():
    return tariffs.load_catalog()


# --- what-if ----------------------------------------------------------------------------------


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_gather_rows(use_py, dtype):
    a = np.arange(7 * 5 * 4, dtype=dtype).reshape(7, 5, 4)
    view, buf = W.gather_rows(a, np.array([2, 3, 4]), None, use_py=use_py)
    assert buf is None and np.shares_memory(view, a) and (view == a[2:5]).all()
    rows = np.array([0, 3, 6])
    got, buf = W.gather_rows(a, rows, None, use_py=use_py)
    assert buf is not None and got.dtype == dtype and (got == a[rows]).all()
    again, buf2 = W.gather_rows(a[:, :, 0].copy(), rows, buf, use_py=use_py)  # other shape: a new buffer
    assert buf2 is not buf and (again == a[rows, :, 0]).all()
    got2, buf3 = W.gather_rows(a, np.array([1, 5]), buf, use_py=use_py)  # same shape: the buffer is reused
    assert buf3 is buf and np.shares_memory(got2, buf) and (got2 == a[[1, 5]]).all()


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_shift_into_a_buffer_equals_the_new_array(use_py, dtype):
    rng = np.random.default_rng(3)
    regs = rng.integers(-30, 50_000, (6, 365, 4)).astype(dtype)  # (negative Wh: floor rounding kept)
    buf = np.empty_like(regs)
    out = shift_peak_to_valley(regs, use_py=use_py, out=buf)
    assert out is buf and out.dtype == dtype
    assert (out == shift_peak_to_valley(regs.astype(np.int64), use_py=use_py)).all()
    r = regs.astype(np.int64)
    for tenths in (1, 3, 10):
        moved = (r[..., :2] * tenths + 5) // 10  # the definition, numpy's floor division
        want = np.concatenate([r[..., :2] - moved, r[..., 2:3], r[..., 3:] + moved.sum(axis=-1, keepdims=True)],
                              axis=-1)
        assert (shift_peak_to_valley(r, tenths, use_py=use_py) == want).all()
    with pytest.raises(ValueError):
        shift_peak_to_valley(regs, out=np.empty(regs.shape, np.float64))


def reference_what_if(catalog, daily, customers, year):
    """The what-if as first written: each tariff group billed at once on fancy-indexed copies."""
    d = densify(daily, customers, year, with_regs=True)
    hs = customers.get_column("household_size").fill_null(1).cast(pl.Int64).to_numpy()
    ids = customers.get_column("customer_id")
    codes = customers.get_column("tariff")
    has_tou = d.tou.sum(axis=1) >= np.maximum(1, d.present.sum(axis=1) // 2)
    on = __import__("datetime").date(year, 1, 1)
    bill_parts, alt_parts = [], []
    for code in sorted(codes.unique().drop_nulls().to_list()):
        try:
            tariff = catalog.get(code, on=on)
        except Exception:
            continue
        rows = np.nonzero((codes == code).to_numpy() & (d.open_first >= 0))[0]
        if rows.size == 0:
            continue
        total, regs, of, ol = d.total[rows], d.regs[rows], d.open_first[rows], d.open_last[rows]
        try:
            yb = tariffs.bill_households(tariff, year, total, regs, of, ol, hs[rows])
            shifted = (tariffs.bill_households(tariff, year, total, shift_peak_to_valley(regs), of, ol, hs[rows])
                       if tariff.is_time_of_use else None)
        except tariffs.TariffError:
            continue
        bill_parts.append(bills_frame(ids.gather(rows), code, yb, shifted, tariff.is_time_of_use))
        for alt in catalog.alternatives(code, on=on):
            if alt.code == code:
                continue
            sel = has_tou[rows] if alt.is_time_of_use else np.ones(rows.size, bool)
            if not sel.any():
                continue
            try:
                ab = tariffs.bill_households(alt, year, total[sel], regs[sel], of[sel], ol[sel], hs[rows[sel]])
            except tariffs.TariffError:
                continue
            k = int(sel.sum())
            alt_parts.append(pl.DataFrame({
                "customer_id": ids.gather(rows[sel]), "tariff": [alt.code] * k,
                "year_fen": np.asarray(ab.year_fen, np.int64), "is_tou": [alt.is_time_of_use] * k,
                "name": [alt.name] * k, "name_en": [alt.name_en] * k}, schema=ALTERNATIVES_SCHEMA))
    bills = pl.concat(bill_parts) if bill_parts else pl.DataFrame(schema=BILLS_SCHEMA)
    alts = pl.concat(alt_parts) if alt_parts else pl.DataFrame(schema=ALTERNATIVES_SCHEMA)
    return bills, alts


@SETTINGS
@given(case=daily_cases(max_households=12))
def test_what_if_in_blocks_equals_billing_each_group_at_once(catalog, case):
    old = W.BLOCK_HOUSEHOLDS
    W.BLOCK_HOUSEHOLDS = 3  # several blocks, gathered and contiguous, with and without time-of-use rows
    try:
        bills, alts = tariff_what_if(catalog, case.daily, case.customers, case.year)
    finally:
        W.BLOCK_HOUSEHOLDS = old
    ref_bills, ref_alts = reference_what_if(catalog, case.daily, case.customers, case.year)
    assert bills.equals(ref_bills)
    assert alts.equals(ref_alts)


# --- densify ----------------------------------------------------------------------------------


def reference_dense(daily: pl.DataFrame, customers: pl.DataFrame, year: int):
    """``densify`` written with polars: sums per customer and day within the open window."""
    import datetime as dt

    from wattbill.diagnostics.dense import days_in_year, open_window

    n, n_days = customers.height, days_in_year(year)
    first, last = open_window(customers, year)
    idx = customers.select("customer_id", pl.int_range(pl.len()).alias("i"),
                           pl.Series("f", first), pl.Series("l", last))
    regs = ["wh_sharp", "wh_peak", "wh_flat", "wh_valley"]
    rows = (daily.join(idx, on="customer_id", how="inner")
            .with_columns((pl.col("day") - pl.lit(dt.date(year, 1, 1))).dt.total_days().alias("d"),
                          pl.any_horizontal(pl.col(r).is_not_null() for r in regs).alias("tou_row"))
            .filter((pl.col("f") >= 0) & (pl.col("d") >= pl.col("f")) & (pl.col("d") <= pl.col("l")))
            .group_by("i", "d")
            .agg(pl.col("wh_total").fill_null(0).sum(), pl.col("estimated").fill_null(False).any(),
                 pl.col("tou_row").any(),
                 *[pl.col(r).filter(pl.col("tou_row")).sum() for r in regs],
                 pl.col("wh_total").filter(pl.col("tou_row")).sum().alias("tou_wh")))
    i, d = rows["i"].to_numpy(), rows["d"].to_numpy()
    total = np.zeros((n, n_days), np.int64)
    regs_a = np.zeros((n, n_days, 4), np.int64)
    present, tou, est = (np.zeros((n, n_days), bool) for _ in range(3))
    total[i, d] = rows["wh_total"].to_numpy()
    present[i, d] = True
    tou[i, d] = rows["tou_row"].to_numpy()
    est[i, d] = rows["estimated"].to_numpy()
    for k, r in enumerate(regs):
        regs_a[i, d, k] = rows[r].to_numpy()
    reg_sum = regs_a.sum(axis=1)
    tou_total = np.zeros(n, np.int64)
    np.add.at(tou_total, i, rows["tou_wh"].to_numpy())
    return total, present, tou, est, reg_sum, tou_total, regs_a


@SETTINGS
@given(case=daily_cases())
def test_densify_equals_a_polars_group_by(case):
    d = densify(case.daily, case.customers, case.year, with_regs=True)
    total, present, tou, est, reg_sum, tou_total, regs = reference_dense(case.daily, case.customers, case.year)
    assert d.total.dtype == d.regs.dtype and d.total.dtype in (np.int32, np.int64)
    assert (d.total == total).all() and (d.present == present).all() and (d.tou == tou).all()
    assert (d.estimated == est).all() and (d.regs == regs).all()
    assert (d.reg_sum == reg_sum).all() and (d.tou_total == tou_total).all()
    plain = densify(case.daily, case.customers, case.year)
    assert plain.regs is None and (plain.total == d.total).all()


def test_densify_falls_back_to_int64_when_a_day_does_not_fit_int32():
    import datetime as dt

    daily = pl.DataFrame({"customer_id": ["a", "a", "b"], "meter_id": ["1", "2", "1"],
                          "day": [dt.date(2025, 3, 1)] * 3, "wh_total": [2**31 - 10, 20, 5],
                          "wh_sharp": [0, 0, 0], "wh_peak": [0, 0, 0], "wh_flat": [0, 0, 0],
                          "wh_valley": [2**31 - 10, 20, 5]})
    cust = pl.DataFrame({"customer_id": ["b", "a"]})
    d = densify(daily, cust, 2025, with_regs=True)
    assert d.total.dtype == np.int64 and d.regs is not None and d.regs.dtype == np.int64
    assert d.total[1, 59] == 2**31 + 10 and d.regs[1, 59, 3] == 2**31 + 10 and d.total[0, 59] == 5
    small = densify(daily.filter(pl.col("meter_id") == "1"), cust, 2025, with_regs=True)
    assert small.total.dtype == np.int32 and small.total[1, 59] == 2**31 - 10


def test_densify_of_clean_runs_in_day_order_adds_runs_and_checks_int32():
    """Runs of one row a day (the fast path) are added, not written, when a customer has two runs,
    and a day's sum or register over int32 still moves the arrays to int64."""
    import datetime as dt

    d1, d2 = dt.date(2025, 3, 1), dt.date(2025, 3, 2)
    base = {"customer_id": ["a", "a", "b", "a"], "day": [d1, d2, d1, d1], "wh_total": [2**31 - 10, 7, 5, 20],
            "wh_sharp": [0] * 4, "wh_peak": [0] * 4, "wh_flat": [0] * 4, "wh_valley": [2**31 - 10, 7, 5, 20]}
    cust = pl.DataFrame({"customer_id": ["b", "a"]})
    d = densify(pl.DataFrame(base), cust, 2025, with_regs=True)  # runs a(2 days), b, a again
    assert d.total.dtype == np.int64 and d.total[1, 59] == 2**31 + 10 and d.total[1, 60] == 7
    assert d.regs is not None and d.regs[1, 59, 3] == 2**31 + 10 and d.reg_sum[1, 3] == 2**31 + 17
    one = {k: v[:3] for k, v in base.items()}
    fits = densify(pl.DataFrame(one), cust, 2025, with_regs=True)
    assert fits.total.dtype == np.int32 and fits.total[1, 59] == 2**31 - 10
    reg_over = pl.DataFrame(one).with_columns(pl.Series("wh_peak", [2**31, 0, 0]))
    assert densify(reg_over, cust, 2025, with_regs=True).regs.dtype == np.int64
    assert densify(reg_over, cust, 2025).total.dtype == np.int32  # (registers not kept: only their sums)


# --- usage kernel -----------------------------------------------------------------------------


def _usage_args(total, present, first, last, year, p=None):
    from wattbill.diagnostics import DEFAULT_PARAMS
    from wattbill.diagnostics.dense import month_of_day
    from wattbill.diagnostics.kernels import season_of_month

    p = p or DEFAULT_PARAMS
    return (total, present, first, last, month_of_day(year), season_of_month(), float(p.base_quantile),
            float(p.low_abs_wh), float(p.low_frac), float(p.spike_year_factor), float(p.spike_local_factor),
            float(p.spike_min_wh), int(p.spike_window), int(p.min_season_days))


def _assert_same_outputs(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)  # NaN == NaN here; floats bit for bit


def _random_usage(seed: int, n: int = 60, year: int = 2025):
    rng = np.random.default_rng(seed)
    D = 366 if year % 4 == 0 else 365
    level = rng.uniform(200, 40_000, n)[:, None]
    total = (level * rng.lognormal(0, 0.4, (n, D))).astype(np.int64)
    total[::5] = rng.integers(0, 4, (len(total[::5]), D)) * 700  # many ties, around the thresholds
    for i in range(1, n, 3):  # vacancies and spikes
        s = rng.integers(0, D - 60)
        total[i, s:s + rng.integers(3, 60)] = rng.integers(0, 900)
        total[i, rng.integers(0, D, 4)] *= 9
    total[2] = rng.integers(-2**40, 2**40, D)  # a huge span: the comparison-sort fallback
    total[3, :] = 5000  # all equal
    present = rng.random((n, D)) > rng.choice([0.0, 0.05, 0.6, 0.99], (n, 1))
    first = rng.choice([0, 0, 0, 40, 200, D - 1], n).astype(np.int32)
    last = np.maximum(first, rng.choice([D - 1, D - 1, 300, 0], n)).astype(np.int32)
    first[-1], last[-1] = -1, -1
    return total, present, first, last


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_sorted_usage_kernel_equals_the_quickselect_kernel(seed, dtype):
    from tests.diagnostics.select_kernel import select_usage_kernel
    from wattbill.diagnostics.kernels import usage_kernel

    year = 2024 if seed % 2 else 2025
    total, present, first, last = _random_usage(seed, year=year)
    if dtype == np.int32:
        total = np.clip(total, -(2**31), 2**31 - 1).astype(np.int32)
    _assert_same_outputs(usage_kernel(*_usage_args(total, present, first, last, year)),
                         select_usage_kernel(*_usage_args(total.astype(np.int64), present, first, last, year)))


def test_usage_kernel_in_tasks_equals_one_task(monkeypatch):
    from wattbill.diagnostics import kernels as K

    total, present, first, last = _random_usage(12, n=50)
    args = _usage_args(total, present, first, last, 2025)
    whole = K.usage_kernel(*args)
    monkeypatch.setattr(K, "USAGE_TASK", 7)  # several tasks on the thread pool, the last one short
    _assert_same_outputs(K.usage_kernel(*args), whole)


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_sort_days_is_a_stable_sort(use_py):
    from wattbill.diagnostics.kernels import MAX_KEY_RANGE, sort_days

    kernel = sort_days.py_func if use_py else sort_days
    rng = np.random.default_rng(2)
    for vals in (rng.integers(0, 9, 300), rng.integers(-50_000, 50_000, 365), np.array([7]),
                 rng.integers(0, 60_000, 365), rng.integers(0, 300, 200) * 7, np.array([5, 5 + 65_535, 9, 5]),
                 np.array([5, 5 + 255, 9, 5]), np.array([5, 5 + 256, 9, 5]), np.array([5, 5 + 65_536, 9, 5]),
                 rng.integers(0, 2**62, 40), np.array([-(2**62), 2**62, 0]), np.array([MAX_KEY_RANGE, 0, 1])):
        vals = vals.astype(np.int64)
        m = vals.size
        days = np.arange(m, dtype=np.int64)
        out_v, out_d = np.empty(m, np.int64), np.empty(m, np.int64)
        kernel(vals, days, m, np.empty(m, np.int64), np.empty(m, np.int64), out_v, out_d)
        order = np.argsort(vals, kind="stable")
        assert (out_v == vals[order]).all() and (out_d == order).all()


@SETTINGS
@given(case=daily_cases())
def test_usage_kernel_on_densified_frames(case):
    from tests.diagnostics.select_kernel import select_usage_kernel
    from wattbill.diagnostics.kernels import usage_kernel

    d = densify(case.daily, case.customers, case.year)
    args = _usage_args(d.total, d.present, d.open_first, d.open_last, case.year)
    _assert_same_outputs(usage_kernel(*args),
                         select_usage_kernel(*_usage_args(d.total.astype(np.int64), d.present, d.open_first,
                                                          d.open_last, case.year)))


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_run_bits(use_py):
    from wattbill.diagnostics.kernels import _run_bits

    kernel = _run_bits.py_func if use_py else _run_bits
    rng = np.random.default_rng(4)
    for _ in range(300):
        n = int(rng.integers(1, 60))
        bits = rng.random(n + 20) < rng.choice([0.0, 0.5, 1.0, 0.97])
        off = int(rng.integers(0, 9))
        lo = int(rng.integers(0, n))
        hi = int(rng.integers(lo + 1, n + 1))
        bitmap = np.packbits(np.concatenate([np.zeros(off, bool), bits]), bitorder="little")
        sub = bits[lo:hi]
        want = 1 if sub.all() else 0 if not sub.any() else -1
        assert kernel(bitmap, off, lo, hi) == want
    assert kernel(np.zeros(0, np.uint8), 0, 0, 5) == 1  # no bitmap: no nulls


def _rows_vs_dense(daily, customers, year, use_py=False):
    from wattbill.diagnostics.dense import daily_columns
    from wattbill.diagnostics.kernels import count_days, usage_from_rows, usage_kernel, usage_params

    d = densify(daily, customers, year)
    args = _usage_args(d.total, d.present, d.open_first, d.open_last, year)
    cols = daily_columns(daily, customers, year)
    assert cols.one_run_per_customer()
    outs, tou_days, est_days, reg_sum, tou_total = usage_from_rows(cols, args[4], args[5], usage_params(*args[6:]),
                                                                   customers.height, use_py=use_py)
    _assert_same_outputs(outs, usage_kernel(*args))
    np.testing.assert_array_equal(tou_days, count_days(d.tou, d.open_first, d.open_last))
    np.testing.assert_array_equal(est_days, count_days(d.estimated, d.open_first, d.open_last))
    np.testing.assert_array_equal(reg_sum, d.reg_sum)
    np.testing.assert_array_equal(tou_total, d.tou_total)


@SETTINGS
@given(case=daily_cases(sort="customer"), clean=st.booleans(), offset=st.booleans())
def test_usage_from_rows_equals_densify_and_the_dense_kernel(case, clean, offset):
    """The one-pass path over the rows gives what densify + the dense kernel give: with estimated days
    (runs with per-row checks) or without (clean runs), and from a frame sliced at an offset (Arrow
    bitmaps that do not start at bit 0)."""
    daily = case.daily
    if clean:
        daily = daily.with_columns(pl.lit(False).alias("estimated"))
    if offset and daily.height:
        daily = pl.concat([daily.head(3), daily], rechunk=True).slice(min(3, daily.height))
    _rows_vs_dense(daily, case.customers, case.year)


def test_usage_from_rows_refuses_a_customer_in_two_runs():
    import datetime as dt

    from wattbill.diagnostics.dense import daily_columns
    from wattbill.diagnostics.kernels import usage_from_rows

    daily = pl.DataFrame({"customer_id": ["a", "b", "a"], "day": [dt.date(2025, 1, d) for d in (1, 1, 2)],
                          "wh_total": [1, 2, 3]})
    cols = daily_columns(daily, pl.DataFrame({"customer_id": ["a", "b"]}), 2025)
    assert not cols.one_run_per_customer()
    with pytest.raises(ValueError, match="one run"):
        usage_from_rows(cols, None, None, None, 2)


@SETTINGS
@given(case=daily_cases(sort="shuffled"))
def test_diagnose_of_a_shuffled_frame_equals_the_grouped_frame(case):
    """A frame not grouped by customer takes the dense path; the features are the same."""
    from wattbill.diagnostics import diagnose

    grouped = case.daily.sort("customer_id", maintain_order=True)
    a = diagnose(case.daily, None, case.customers, case.payments, None, None, case.year)
    b = diagnose(grouped, None, case.customers, case.payments, None, None, case.year)
    assert a.equals(b)


@SETTINGS
@given(case=daily_cases(sort="customer"))
def test_month_sums_from_rows_equal_densify(case):
    from wattbill.diagnostics.dense import daily_columns, month_of_day
    from wattbill.diagnostics.kernels import month_sums, month_sums_from_rows

    d = densify(case.daily, case.customers, case.year)
    want = month_sums(d.total, d.present, month_of_day(case.year))
    cols = daily_columns(case.daily, case.customers, case.year)
    for use_py in (False, True):
        got = month_sums_from_rows(cols, month_of_day(case.year), case.customers.height, use_py=use_py)
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


@SETTINGS
@given(case=daily_cases(sort="customer"))
def test_last_year_from_rows_equals_the_shuffled_frame(case):
    """Last year's columns from the grouped rows equal those of the dense path (a shuffled frame)."""
    from wattbill.diagnostics import diagnose

    shuffled = case.daily.sample(fraction=1.0, shuffle=True, seed=1)
    last = case.daily.with_columns(pl.col("day").dt.offset_by("1y"))  # the same rows a year later
    a = diagnose(last, case.daily, case.customers, None, None, None, case.year + 1)
    b = diagnose(last, shuffled, case.customers, None, None, None, case.year + 1)
    assert a.select("wh_last_year", "month_wh_last_year").equals(b.select("wh_last_year", "month_wh_last_year"))


# --- payments ---------------------------------------------------------------------------------


def reference_payments(payments, ids, year, p):
    """The payment features as first written: a polars group_by (kept as the reference)."""
    import datetime as dt
    from typing import Any

    from wattbill.diagnostics.features import CHANNELS

    if payments is None or payments.height == 0:
        return ids.select("customer_id")
    year_end = dt.date(year, 12, 31)
    pay = payments.filter(pl.col("bill_month").str.starts_with(f"{year}-")).with_columns(
        (pl.col("paid_on") - pl.col("issued_on")).dt.total_days().alias("delay"),
        pl.col("channel").fill_null("other").str.to_lowercase().alias("channel"),
    ).with_columns(
        (pl.col("delay").is_null() & ((pl.lit(year_end) - pl.col("issued_on")).dt.total_days() > p.late_after_days)
         | (pl.col("delay") > p.late_after_days).fill_null(False)).alias("late"),
    )
    paid = pl.col("paid_on").is_not_null()
    agg = pay.group_by("customer_id").agg(
        pl.len().cast(pl.Int32).alias("pay_count"),
        pl.col("paid_on").is_null().sum().cast(pl.Int32).alias("pay_unpaid_count"),
        pl.col("delay").mean().alias("pay_delay_days_mean"),
        pl.col("delay").max().cast(pl.Int32).alias("pay_delay_days_max"),
        pl.col("late").sum().cast(pl.Int32).alias("pay_late_count"),
        pl.col("late").mean().alias("pay_late_share"),
        *[(paid & (pl.col("channel") == c)).sum().alias(f"__n_{c}") for c in CHANNELS],
        paid.sum().alias("__n_paid"),
    )
    np_ = pl.col("__n_paid")
    share = {c: pl.when(np_ > 0).then(pl.col(f"__n_{c}") / np_) for c in CHANNELS}
    counts = [pl.col(f"__n_{c}") for c in CHANNELS]
    best = pl.max_horizontal(counts)
    main: Any = pl.when(np_ == 0).then(pl.lit(None, pl.Utf8))
    for c in CHANNELS:
        main = main.when(pl.col(f"__n_{c}") == best).then(pl.lit(c))
    mix = pl.when(np_ > 0).then(pl.concat_str(
        [pl.lit("{"), pl.concat_str([pl.format('"{}": {}', pl.lit(c), (pl.col(f"__n_{c}") / np_).round(4))
                                     for c in CHANNELS], separator=", "), pl.lit("}")]))
    agg = agg.with_columns(
        main.alias("pay_channel_main"), mix.alias("pay_channel_mix"),
        (share["app"] + share["wechat"] + share["alipay"]).alias("pay_share_online"),
        share["counter"].alias("pay_share_counter"), share["bank"].alias("pay_share_bank"),
    ).drop([f"__n_{c}" for c in CHANNELS] + ["__n_paid"])
    return ids.select("customer_id").join(agg, on="customer_id", how="left", maintain_order="left")


@SETTINGS
@given(case=daily_cases(max_households=10))
def test_payments_kernel_equals_the_group_by(case):
    from wattbill.diagnostics import DEFAULT_PARAMS
    from wattbill.diagnostics.features import _payments

    ids = case.customers.select("customer_id")
    got = _payments(case.payments, ids, case.year, DEFAULT_PARAMS)
    ref = reference_payments(case.payments, ids, case.year, DEFAULT_PARAMS)
    assert got.columns == ref.columns
    assert got.equals(ref), (got, ref)


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_payments_kernel_twin(use_py):
    import datetime as dt

    from wattbill.diagnostics import DEFAULT_PARAMS
    from wattbill.diagnostics import features as F
    from wattbill.diagnostics.kernels import payments_kernel

    rows = [("a", "2025-01", dt.date(2025, 2, 1), dt.date(2025, 2, 20), "app"),
            ("a", "2025-02", dt.date(2025, 3, 1), None, "Bank"),
            ("a", "2025-03", None, dt.date(2025, 4, 2), None),
            ("b", "2024-12", dt.date(2025, 1, 1), dt.date(2025, 1, 2), "counter"),
            ("b", "2025-12", dt.date(2025, 12, 20), None, "cash")]
    pays = pl.DataFrame(rows, orient="row", schema={"customer_id": pl.Utf8, "bill_month": pl.Utf8,
                                                     "issued_on": pl.Date, "paid_on": pl.Date, "channel": pl.Utf8})
    ids = pl.DataFrame({"customer_id": ["b", "a", "c"]})
    if use_py:
        orig = F.payments_kernel
        F.payments_kernel = payments_kernel.py_func
    try:
        got = F._payments(pays, ids, 2025, DEFAULT_PARAMS)
    finally:
        if use_py:
            F.payments_kernel = orig
    assert got.equals(reference_payments(pays, ids, 2025, DEFAULT_PARAMS))
    a = got.row(1, named=True)
    assert a["pay_count"] == 3 and a["pay_unpaid_count"] == 1 and a["pay_delay_days_max"] == 19
    assert a["pay_late_count"] == 2 and a["pay_late_share"] == 1.0  # the third bill's lateness is unknown
    assert got.row(2, named=True)["pay_count"] is None


# --- bills and alternatives -------------------------------------------------------------------


def reference_best_alt(alternatives: pl.DataFrame, out: pl.DataFrame) -> pl.DataFrame:
    """The cheapest other tariff as first written: a sort by customer id and a group_by."""
    alt = (alternatives.select("customer_id", pl.col("tariff").alias("__alt"), "year_fen",
                               pl.col("is_tou").alias("__alt_tou"), pl.col("name").alias("__alt_name"),
                               pl.col("name_en").alias("__alt_name_en"))
           .join(out.select("customer_id", "tariff"), on="customer_id", how="inner")
           .filter(pl.col("__alt") != pl.col("tariff").fill_null(""))
           .sort(["customer_id", "year_fen", "__alt"])
           .group_by("customer_id", maintain_order=True)
           .agg(pl.col("__alt").first().alias("best_alt_tariff"), pl.col("year_fen").first().alias("best_alt_fen"),
                pl.col("__alt_tou").first().alias("best_alt_is_tou"),
                pl.col("__alt_name").first().alias("best_alt_name"),
                pl.col("__alt_name_en").first().alias("best_alt_name_en")))
    return out.select("customer_id").join(alt, on="customer_id", how="left", maintain_order="left")


@pytest.mark.parametrize("seed", range(6))
def test_bills_and_alternatives_by_row_index_equal_the_joins(seed):
    from wattbill.diagnostics import diagnose

    rng = np.random.default_rng(seed)
    n = 40
    ids = [f"{i:04d}" for i in rng.permutation(n)]
    codes = ["t-a", "t-b", "t-c", None]
    cust = pl.DataFrame({"customer_id": ids, "tariff": [codes[k] for k in rng.integers(0, 4, n)],
                         "region": ["r"] * n, "household_size": [2] * n})
    bills = pl.DataFrame({
        "customer_id": ids, "tariff": cust["tariff"].fill_null("t-a"),
        "month_fen": [rng.integers(0, 5000, 12).tolist() for _ in range(n)],
        "year_fen": rng.integers(0, 60_000, n), "tier2_day": rng.integers(0, 365, n).astype(np.int32),
        "tier3_day": pl.Series([None] * n, dtype=pl.Int32), "wh_tier2": rng.integers(0, 10**6, n),
        "wh_tier3": rng.integers(0, 10**6, n), "shift10_year_fen": rng.integers(0, 60_000, n),
        "is_tou": rng.random(n) < 0.5}).select([pl.col(c).cast(t) for c, t in BILLS_SCHEMA.items()])
    rows = []
    for cid in [*ids, "unknown"]:
        for _ in range(int(rng.integers(0, 4))):
            code = codes[int(rng.integers(0, 3))]
            rows.append((cid, code, int(rng.integers(0, 3)) * 1000, code.endswith("b"), f"{code} zh", f"{code} en"))
    alts = pl.DataFrame(rows, orient="row", schema=ALTERNATIVES_SCHEMA)
    same = diagnose(pl.DataFrame(), None, cust, None, bills, alts, 2025)
    shuffled = diagnose(pl.DataFrame(), None, cust, None, bills.sample(fraction=1.0, shuffle=True, seed=seed),
                        alts.sample(fraction=1.0, shuffle=True, seed=seed), 2025)
    partial = diagnose(pl.DataFrame(), None, cust, None, bills.head(n - 3), alts, 2025)
    assert same.equals(shuffled)
    assert partial.head(n - 3).drop(PEERS).equals(same.head(n - 3).drop(PEERS))
    assert partial.tail(3)["year_fen"].null_count() == 3
    ref = reference_best_alt(alts, same.select("customer_id", "tariff"))
    assert same.select(ref.columns).equals(ref)


PEERS = ["peer_group_size", "peer_percentile", "peer_share_valley_pct", "peer_share_sharp_peak_pct",
         "peer_base_load_pct"]


# --- runs of customer ids ---------------------------------------------------------------------


def _rle_bounds(ids: pl.Series):
    rle = ids.rle().struct.unnest()
    return np.concatenate([[0], np.cumsum(rle["len"].to_numpy())]), rle["value"]


@pytest.mark.parametrize("kind", ["short", "long", "mixed", "sliced", "chunked", "nulls", "twelve", "one"])
def test_run_bounds_equal_rle(kind):
    from wattbill.diagnostics.dense import _run_bounds

    rng = np.random.default_rng(len(kind))
    base = {"short": "{:010d}", "long": "customer-{:020d}", "twelve": "{:012d}", "one": "{:010d}",
            "mixed": "{:d}", "sliced": "{:07d}", "chunked": "{:05d}", "nulls": "{:04d}"}[kind]
    values = [base.format(int(i)) for i in np.repeat(rng.integers(0, 30, 40), rng.integers(1, 9, 40))]
    if kind == "mixed":
        values[5:9] = ["a-much-longer-customer-id"] * 4
    if kind == "one":
        values = values[:1]
    ids = pl.Series("customer_id", values, dtype=pl.Utf8)
    if kind == "sliced":
        ids = ids.slice(7, 50)
    if kind == "chunked":
        ids = pl.concat([ids.slice(0, 30), ids.slice(30)], rechunk=False)
    if kind == "nulls":
        ids = ids.scatter([3, 4], None)
    got_b, got_v = _run_bounds(ids)
    want_b, want_v = _rle_bounds(ids)
    assert got_b.tolist() == want_b.tolist()
    assert got_v.to_list() == want_v.to_list()
