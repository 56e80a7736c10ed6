"""The numba usage kernel against a plain-Python reference of the same definitions, on random households."""

from __future__ import annotations

import numpy as np
import pytest

from wattbill.diagnostics import DEFAULT_PARAMS as P
from wattbill.diagnostics.dense import month_of_day
from wattbill.diagnostics.kernels import _quantile, season_of_month, usage_kernel

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


@pytest.mark.parametrize("seed", range(6))
def test_kernel_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n, D = 40, 365
    month = month_of_day(YEAR)
    season = season_of_month()
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
    (wh_year, _month_wh, _days_open, days_present, base_wh, median_wh, lev, low_run, low_start, _low_days,
     spike_days, _ratio, _first) = usage_kernel(
        total, present, first, last, month, season, P.base_quantile, float(P.low_abs_wh), P.low_frac,
        P.spike_year_factor, P.spike_local_factor, float(P.spike_min_wh), P.spike_window, P.min_season_days)
    assert days_present[-1] == 0 and np.isnan(base_wh[-1])
    for i in range(n - 1):
        r = reference(total[i], present[i], first[i], last[i], month, season)
        assert wh_year[i] == r["wh_year"] and days_present[i] == r["days_present"]
        np.testing.assert_allclose(base_wh[i], r["base"], rtol=1e-12)
        np.testing.assert_allclose(median_wh[i], r["median"], rtol=1e-12)
        for s in (1, 2, 3):
            np.testing.assert_allclose(lev[i, s], r[f"level{s}"], rtol=1e-12)
        assert (low_run[i], low_start[i]) == (r["low_run"], r["low_start"])
        assert spike_days[i] == r["spikes"]


@pytest.mark.parametrize("m", [1, 2, 3, 4, 7, 31, 365, 366])
def test_quantile_selection_matches_numpy(m):
    rng = np.random.default_rng(m)
    work = np.empty(m, np.int64)
    for _ in range(50):
        a = rng.integers(0, 30, m).astype(np.int64)  # many ties
        for q in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
            assert _quantile(a, m, q, work) == pytest.approx(np.quantile(a, q), rel=1e-12, abs=1e-12)
