"""The numba usage kernels (dense and over daily rows), compiled and as their plain twins (``py_func``),
against a plain-Python reference written from the documented definitions, on random households."""

from __future__ import annotations

import numpy as np
import pytest

from tests.twins import swap_in_plain_twins
from wattbill.diagnostics import DEFAULT_PARAMS as P
from wattbill.diagnostics import kernels as K
from wattbill.diagnostics.dense import month_of_day
from wattbill.diagnostics.kernels import season_of_month

YEAR = 2025


def reference(total, present, first, last, month, season):
    """Features of one household, written directly from the documented definitions."""
    days = [d for d in range(first, last + 1) if present[d]]
    vals = np.array([total[d] for d in days], dtype=float)
    thr = max(P.low_abs_wh, P.low_frac * np.quantile(vals, 0.5))
    occ = np.array([total[d] for d in days if total[d] >= thr], dtype=float)
    out = {"wh_year": int(vals.sum()), "days_present": len(days)}
    out["base"] = np.quantile(occ, P.base_quantile) if len(occ) else np.nan
    med = np.quantile(occ, 0.5) if len(occ) else np.nan
    out["median"] = med
    for s in (1, 2, 3):
        sv = [total[d] for d in days if total[d] >= thr and season[month[d]] == s]
        out[f"level{s}"] = np.quantile(sv, 0.5) if len(sv) >= P.min_season_days else np.nan
    best = run = 0
    start = best_start = -1
    for d in days:
        if total[d] < thr:
            if run == 0:
                start = d
            run += 1
            if run > best:
                best, best_start = run, start
        else:
            run = 0
    out["low_run"], out["low_start"] = best, best_start
    spikes = 0
    for d in days:
        v = total[d]
        if len(occ) == 0 or v <= P.spike_year_factor * med:
            continue
        window = [total[e] for e in range(max(first, d - P.spike_window), min(last, d + P.spike_window) + 1)
                  if e != d and present[e] and total[e] >= thr]
        if len(window) < 3:
            continue
        local = np.quantile(window, 0.5)
        if v > P.spike_local_factor * local and v - local >= P.spike_min_wh:
            spikes += 1
    out["spikes"] = spikes
    return out


def random_households(seed: int, n: int = 40):
    """Daily Wh of ``n`` households with cooling, vacancies, spikes, missing days and open windows."""
    rng = np.random.default_rng(seed)
    D = 365
    level = rng.uniform(1500, 20000, n)[:, None]
    total = (level * rng.lognormal(0, 0.3, (n, D))).astype(np.int64)
    total[:, 180:240] += rng.integers(0, 9000, n)[:, None]  # some cooling
    for i in range(0, n, 3):  # vacancies
        s = rng.integers(0, 300)
        total[i, s:s + rng.integers(5, 50)] = rng.integers(0, 700)
    for i in range(1, n, 4):  # spikes
        total[i, rng.integers(0, D, 3)] *= 8
    present = rng.random((n, D)) > 0.03
    first = rng.choice([0, 0, 0, 40, 200], n).astype(np.int32)
    last = rng.choice([D - 1, D - 1, 300], n).astype(np.int32)
    first[-1], last[-1] = -1, -1  # never open
    return total, present, first, last


def assert_matches_reference(outputs, total, present, first, last, month, season):
    """The usage kernel's outputs (``usage_kernel``'s tuple) equal :func:`reference`, household by household."""
    (wh_year, month_wh, _days_open, days_present, base_wh, median_wh, lev, low_run, low_start, _low_days,
     spike_days, _ratio, _first) = outputs
    n = total.shape[0]
    assert days_present[-1] == 0 and np.isnan(base_wh[-1])
    for i in range(n - 1):
        r = reference(total[i], present[i], first[i], last[i], month, season)
        assert wh_year[i] == r["wh_year"] and days_present[i] == r["days_present"]
        want_months = np.zeros(12, np.int64)
        for d in range(first[i], last[i] + 1):
            if present[i, d]:
                want_months[month[d]] += total[i, d]
        assert month_wh[i].tolist() == want_months.tolist()
        np.testing.assert_allclose(base_wh[i], r["base"], rtol=1e-12)
        np.testing.assert_allclose(median_wh[i], r["median"], rtol=1e-12)
        for s in (1, 2, 3):
            np.testing.assert_allclose(lev[i, s], r[f"level{s}"], rtol=1e-12)
        assert (low_run[i], low_start[i]) == (r["low_run"], r["low_start"])
        assert spike_days[i] == r["spikes"]


def _args(total, present, first, last, month, season):
    return (total, present, first, last, month, season, P.base_quantile, float(P.low_abs_wh), P.low_frac,
            P.spike_year_factor, P.spike_local_factor, float(P.spike_min_wh), P.spike_window, P.min_season_days)


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
@pytest.mark.parametrize("seed", range(6))
def test_kernel_matches_reference(seed, use_py, monkeypatch):
    """The dense kernel (``usage_rows`` and its helpers), compiled and as plain twins."""
    if use_py:
        swap_in_plain_twins(monkeypatch)
    month = month_of_day(YEAR)
    season = season_of_month()
    total, present, first, last = random_households(seed, 8 if use_py else 40)
    outputs = K.usage_kernel(*_args(total, present, first, last, month, season))
    assert_matches_reference(outputs, total, present, first, last, month, season)


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
@pytest.mark.parametrize("seed", range(3))
def test_row_kernels_match_reference(seed, use_py, monkeypatch):
    """The kernels over daily rows (``usage_runs``, ``month_sums_runs`` and their helpers), compiled and as
    their plain twins, from a frame grouped by customer that holds every present day (also outside the
    open window, which they must ignore); half the households' rows are shuffled within their run (the
    kernels' out-of-order path)."""
    import datetime as dt

    import polars as pl

    from wattbill.diagnostics.dense import daily_columns
    from wattbill.diagnostics.kernels import month_sums_from_rows, usage_from_rows, usage_params

    if use_py:
        swap_in_plain_twins(monkeypatch)
    n = 8 if use_py else 16
    month = month_of_day(YEAR)
    season = season_of_month()
    total, present, first, last = random_households(seed, n)
    jan1 = dt.date(YEAR, 1, 1)
    rng = np.random.default_rng(seed)
    ids, days, wh = [], [], []
    for i in range(n):
        d = np.flatnonzero(present[i])
        if i % 2:
            rng.shuffle(d)
        ids += [f"c{i:03d}"] * d.size
        days += [jan1 + dt.timedelta(days=int(x)) for x in d]
        wh += total[i, d].tolist()
    daily = pl.DataFrame({"customer_id": ids, "day": days, "wh_total": wh},
                         schema={"customer_id": pl.Utf8, "day": pl.Date, "wh_total": pl.Int64})
    opened = [jan1 + dt.timedelta(days=int(f)) if f >= 0 else None for f in first]
    closed = [jan1 + dt.timedelta(days=int(x)) if x >= 0 else dt.date(YEAR - 1, 6, 1) for x in last]
    customers = pl.DataFrame({"customer_id": [f"c{i:03d}" for i in range(n)], "opened_on": opened,
                              "closed_on": closed})
    cols = daily_columns(daily, customers, YEAR)
    prm = usage_params(*_args(total, present, first, last, month, season)[6:])
    outputs, *_ = usage_from_rows(cols, month, season, prm, n)
    assert_matches_reference(outputs, total, present, first, last, month, season)
    wh_m, days_m = month_sums_from_rows(cols, month, n)
    for i in range(n - 1):
        inside = present[i] & (np.arange(365) >= first[i]) & (np.arange(365) <= last[i])
        assert wh_m[i].tolist() == [int(total[i][inside & (month == m)].sum()) for m in range(12)]
        assert days_m[i].tolist() == [int((inside & (month == m)).sum()) for m in range(12)]
    assert wh_m[-1].sum() == 0 and days_m[-1].sum() == 0


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_month_sums_and_count_days_equal_numpy(use_py):
    month = month_of_day(YEAR)
    total, present, first, last = random_households(7, 12)
    ms = K.month_sums.py_func if use_py else K.month_sums
    cd = K.count_days.py_func if use_py else K.count_days
    wh, days = ms(total, present, month)
    for m in range(12):
        sel = present & (month == m)[None, :]
        assert wh[:, m].tolist() == np.where(sel, total, 0).sum(axis=1).tolist()
        assert days[:, m].tolist() == sel.sum(axis=1).tolist()
    window = (np.arange(365)[None, :] >= first[:, None]) & (np.arange(365)[None, :] <= last[:, None])
    assert cd(present, first, last).tolist() == (present & window & (first >= 0)[:, None]).sum(axis=1).tolist()


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
@pytest.mark.parametrize("m", [1, 2, 3, 4, 7, 31, 365, 366])
def test_quantile_selection_matches_numpy(m, use_py, monkeypatch):
    """``_quantile`` (``_select``, ``_quantile_inplace``) against numpy's linear quantile."""
    if use_py:
        swap_in_plain_twins(monkeypatch)
    quantile = K._quantile
    rng = np.random.default_rng(m)
    work = np.empty(m, np.int64)
    for _ in range(50 if not use_py else 10):
        a = rng.integers(0, 30, m).astype(np.int64)  # many ties
        for q in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
            assert quantile(a, m, q, work) == pytest.approx(np.quantile(a, q), rel=1e-12, abs=1e-12)
