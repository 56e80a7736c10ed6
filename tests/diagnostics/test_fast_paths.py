"""The fast paths of the diagnostics against the plain computations they replace, on random data.

Every numba kernel added for speed has its plain-Python twin (``kernel.py_func``) run here too.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

from diagnostics import densify, shift_peak_to_valley, tariff_what_if
from diagnostics import whatif as W
from diagnostics.features import ALTERNATIVES_SCHEMA, BILLS_SCHEMA, bills_frame
from tests.strategies import daily_cases

tariffs = pytest.importorskip("tariffs")
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
    regs = rng.integers(0, 50_000, (6, 365, 4)).astype(dtype)
    buf = np.empty_like(regs)
    out = shift_peak_to_valley(regs, use_py=use_py, out=buf)
    assert out is buf and out.dtype == dtype
    assert (out == shift_peak_to_valley(regs.astype(np.int64), use_py=use_py)).all()
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
