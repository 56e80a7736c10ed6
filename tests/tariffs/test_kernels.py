"""The numba kernels (compiled and their pure-Python twins) equal the exact reference."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import UsageBatch, hit_threshold_exactly, tariff_tomls, usage_batches
from wattbill.tariffs import (
    ReferenceBill,
    TariffSchedule,
    UnpricedRegisterError,
    bill_households,
    load_catalog,
    parse_tariff,
    reference_bill,
    running_charge,
)
from wattbill.tariffs.kernels import FLAG_OVERFLOW, KernelSchedule, bill_kernel, prorate, range_sums
from wattbill.tariffs.reference import effective_thresholds, month_first_days


def fen(d: Decimal) -> int:
    return int(d * 100)


def assert_matches_reference(tariff, batch: UsageBatch, use_py: bool) -> None:
    refs: list[ReferenceBill | None] = []
    unpriced: list[int] = []
    for i in range(batch.total.shape[0]):
        try:
            refs.append(
                reference_bill(
                    tariff,
                    batch.year,
                    batch.total[i].tolist(),
                    batch.regs[i].tolist(),
                    int(batch.open_first[i]),
                    int(batch.open_last[i]),
                    int(batch.household_size[i]),
                )
            )
        except UnpricedRegisterError:
            refs.append(None)
            unpriced.append(i)
    args = (tariff, batch.year, batch.total, batch.regs, batch.open_first, batch.open_last, batch.household_size)
    if unpriced:
        with pytest.raises(UnpricedRegisterError) as err:
            bill_households(*args, use_py=use_py)
        assert err.value.households == unpriced
        return
    yb = bill_households(*args, use_py=use_py)
    for i, ref in enumerate(refs):
        assert ref is not None
        assert yb.month_fen[i].tolist() == [fen(m.charge) for m in ref.months], i
        assert yb.year_fen[i] == fen(ref.annual)
        assert yb.month_wh[i].tolist() == [m.wh_total for m in ref.months]
        assert yb.month_wh_reg[i].tolist() == [list(m.wh_reg) for m in ref.months]
        assert yb.month_wh_tier[i].tolist() == [list(m.wh_tier) for m in ref.months]
        assert yb.month_wh_period[i].tolist() == [[m.wh_period[p] for p in yb.period_names] for m in ref.months]
        assert yb.tier_cross_day[i].tolist() == list(ref.tier_cross_day)
    assert (yb.year_fen == yb.month_fen.sum(axis=1)).all()


@st.composite
def cases(draw, huge: bool = False):
    tariff = parse_tariff(draw(tariff_tomls()), "hypothesis")
    batch = draw(usage_batches(huge=huge))
    # put some households exactly on an effective threshold at the end of a drawn day
    for i in range(batch.total.shape[0]):
        if draw(st.booleans()):
            thr = effective_thresholds(
                tariff, batch.year, int(batch.open_first[i]), int(batch.open_last[i]), int(batch.household_size[i])
            )
            day = draw(st.integers(0, batch.total.shape[1] - 1))
            month = int(np.searchsorted(np.cumsum([31] * 12), day, side="right"))  # rough month, any month will do
            month_thr = thr[min(month, 11)]
            if month_thr:
                target = draw(st.sampled_from(month_thr))
                hit_threshold_exactly(batch, i, day, target, monthly=tariff.cycle == "monthly")
    return tariff, batch


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
class TestKernelsAgainstReference:
    """One class, both implementations: the compiled kernel and its plain-Python twin."""

    @pytest.mark.slow
    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=cases())
    def test_random_tariffs_and_usage(self, use_py, case):
        tariff, batch = case
        assert_matches_reference(tariff, batch, use_py)

    @pytest.mark.slow
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=cases(huge=True))
    def test_huge_months_fall_back_to_reference(self, use_py, case):
        tariff, batch = case
        assert_matches_reference(tariff, batch, use_py)

    @pytest.mark.parametrize("code", sorted(load_catalog().codes()))
    def test_catalogue_tariffs(self, use_py, code):
        tariff = load_catalog().get(code)
        rng = np.random.default_rng(7)
        n = 6 if use_py else 40
        regs = rng.integers(0, 6000, size=(n, 366, 4)).astype(np.int32)
        total = regs.sum(axis=2).astype(np.int32)
        total[::3] += rng.integers(0, 3000, size=(len(total[::3]), 366)).astype(np.int32)
        batch = UsageBatch(
            2024, total, regs, rng.integers(0, 40, n), rng.integers(320, 366, n), rng.integers(1, 7, n)
        )
        assert_matches_reference(tariff, batch, use_py)

    def test_range_sums_and_prorate(self, use_py):
        sums = range_sums.py_func if use_py else range_sums
        pr = prorate.py_func if use_py else prorate
        rng = np.random.default_rng(5)
        tr = rng.integers(0, 1000, 366).astype(np.int32)
        rr = rng.integers(0, 1000, (366, 4)).astype(np.int32)
        rf = rr.reshape(-1)
        t, r0, r1, r2, r3, orv = sums(tr, rf, 59, 60)  # 29 February alone
        assert (t, r0, r1, r2, r3) == (tr[59], *rr[59].tolist()) and 0 <= orv <= 2**31 - 1
        t, r0, r1, r2, r3, orv = sums(tr, rf, 335, 366)  # December
        assert t == int(tr[335:].sum()) and [r0, r1, r2, r3] == rr[335:].sum(axis=0).tolist()
        tr[100] = -1
        assert sums(tr, rf, 0, 366)[5] < 0
        assert pr(1_200_000, 62, 365) == 203_836 and pr(5, 1, 2) == 3 and pr(7, 3, 3) == 7

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=cases(), data=st.data())
    def test_running_charge_is_the_reference_through_the_day(self, use_py, case, data):
        tariff, batch = case
        through = data.draw(st.integers(-1, batch.total.shape[1] - 1))
        try:
            rc = running_charge(
                tariff, batch.year, batch.total, batch.regs, batch.open_first, batch.open_last,
                batch.household_size, through, use_py=use_py,
            )
        except UnpricedRegisterError:
            return
        for i in range(batch.total.shape[0]):
            ref = reference_bill(
                tariff, batch.year, batch.total[i].tolist(), batch.regs[i].tolist(), int(batch.open_first[i]),
                int(batch.open_last[i]), int(batch.household_size[i]), through_day=through,
            )
            assert rc.fen[i] == fen(ref.annual)
            assert rc.month_fen[i].tolist() == [fen(m.charge) for m in ref.months]
            assert rc.wh[i] == ref.wh_so_far
            assert rc.tier[i] == ref.tier_reached


def test_running_charge_through_year_end_equals_annual_bill():
    tariff = load_catalog().get("cn-shanghai-res-tou")
    rng = np.random.default_rng(3)
    regs = rng.integers(0, 9000, size=(50, 365, 4)).astype(np.int32)
    total = regs.sum(axis=2).astype(np.int32)
    yb = bill_households(tariff, 2023, total, regs, 0, 364, 1)
    rc = running_charge(tariff, 2023, total, regs, 0, 364, 1, 364)
    assert (rc.fen == yb.year_fen).all()
    assert (rc.wh == yb.month_wh.sum(axis=1)).all()
    assert set(rc.tier.tolist()) <= {1, 2, 3}


def _schedule_args(tariff, year):
    """The kernel's month and tariff arguments for one version pricing the whole year."""
    ks = KernelSchedule.of(TariffSchedule.single(tariff, year))
    return (np.array(month_first_days(year), np.int64), ks.part_first, ks.part_month, ks.part_version, ks.monthly,
            ks.base_thr, ks.proration, ks.bonus_min, ks.bonus_wh, ks.reg_period, ks.unsplit, ks.q, ks.scale_div,
            ks.safe_product)


def test_overflow_risk_is_detected_and_billed_exactly():
    """A month of ~62 GWh (2e9 Wh a day) cannot be billed in int64: the kernel flags it and the
    wrapper bills it with the exact reference."""
    tariff = load_catalog().get("cn-shanghai-res-tou")
    n_days = 365
    total = np.zeros((2, n_days), np.int64)
    regs = np.zeros((2, n_days, 4), np.int64)
    regs[0, :, 1] = 1_200_000_000
    regs[0, :, 3] = 800_000_000
    total[0] = regs[0].sum(axis=1)
    regs[1, :, 1] = 5_000
    total[1] = 5_000
    flags = np.zeros(2, np.int64)
    out = [np.zeros(s, np.int64) for s in ((2, 12), (2, 12, 4), (2, 12, 3), (2, 12, 2), (2, 12), (2,), (2, 2), (2,), (2,))]

    bill_kernel(  # type: ignore[call-arg]  # numba dispatcher stubs
        total, regs, np.zeros(2, np.int64), np.full(2, 364), np.full(2, 364), np.ones(2, np.int64),
        *_schedule_args(tariff, 2023), *out, flags,
    )
    assert flags.tolist() == [FLAG_OVERFLOW, 0]
    yb = bill_households(tariff, 2023, total, regs, 0, 364, 1)
    assert yb.fallback.tolist() == [0]
    ref = reference_bill(tariff, 2023, total[0].tolist(), regs[0].tolist(), 0, 364, 1)
    assert yb.month_fen[0].tolist() == [fen(m.charge) for m in ref.months]
    assert yb.year_fen[0] > 10**10  # hundreds of millions of yuan, exact to the fen


def test_kernel_writes_every_output_element():
    """The wrapper allocates outputs with np.empty: the kernel must write every element."""
    tariff = load_catalog().get("cn-guangdong-res-tier")
    rng = np.random.default_rng(11)
    total = rng.integers(0, 20_000, (5, 365)).astype(np.int32)
    regs = np.zeros((5, 365, 4), np.int32)
    of, ol = np.array([0, 40, 303, 364, 200]), np.array([364, 300, 364, 364, 100])
    expected = bill_households(tariff, 2023, total, regs, of, ol, 1)
    out = [np.full(s, -7, np.int64) for s in ((5, 12), (5, 12, 4), (5, 12, 3), (5, 12, 1), (5, 12), (5,), (5, 2), (5,), (5,), (5,))]
    bill_kernel(
        total, regs, of, ol, ol, np.ones(5, np.int64), *_schedule_args(tariff, 2023), *out,
    )
    assert (out[0] == expected.month_wh).all() and (out[1] == expected.month_wh_reg).all()
    assert (out[2] == expected.month_wh_tier).all() and (out[3] == expected.month_wh_period).all()
    assert (out[4] == expected.month_fen).all() and (out[5] == expected.year_fen).all()
    assert (out[6] == expected.tier_cross_day).all() and (out[9] == 0).all()
    assert all((o != -7).all() for o in out)


def test_bad_values_are_rejected():
    tariff = load_catalog().get("cn-zhejiang-res-tier")
    total = np.zeros((3, 365), np.int64)
    regs = np.zeros((3, 365, 4), np.int64)
    total[1, 10] = -5
    total[2, 20] = 2**31
    with pytest.raises(ValueError, match=r"rows \[1, 2\]"):
        bill_households(tariff, 2023, total, regs, 0, 364, 1)
    with pytest.raises(ValueError, match="expected shape"):
        bill_households(tariff, 2024, total, regs, 0, 365, 1)


def test_unpriced_register_is_an_error_not_a_zero():
    tariff = parse_tariff(
        """
code = "x-test-res-tou"
name = "t"
source = "test"
[periods]
peak = "peak"
valley = "valley"
unsplit = "peak"
[prices]
peak = [0.6]
valley = [0.3]
[tiers]
thresholds = []
"""
    )
    total = np.full((2, 365), 10, np.int32)
    regs = np.zeros((2, 365, 4), np.int32)
    regs[1, 100, 2] = 3  # flat register, which the tariff does not price
    with pytest.raises(UnpricedRegisterError) as err:
        bill_households(tariff, 2023, total, regs, 0, 364, 1)
    assert err.value.register == "flat" and err.value.households == [1]
    with pytest.raises(UnpricedRegisterError):
        reference_bill(tariff, 2023, total[1].tolist(), regs[1].tolist(), 0, 364, 1)
    # outside the open window the kWh do not count
    yb = bill_households(tariff, 2023, total, regs, 0, np.array([364, 99]), 1)
    assert yb.year_fen.tolist()[1] > 0


def test_non_contiguous_inputs():
    tariff = load_catalog().get("cn-shanghai-res-tou")
    rng = np.random.default_rng(9)
    wide = rng.integers(0, 5000, (4, 365, 8)).astype(np.int32)
    regs = wide[:, :, 2:6]  # a view, not C-contiguous
    total = np.asfortranarray(regs.sum(axis=2))
    expected = bill_households(tariff, 2023, np.ascontiguousarray(total), np.ascontiguousarray(regs), 0, 364, 1)
    got = bill_households(tariff, 2023, total, regs, 0, 364, 1)
    assert (got.month_fen == expected.month_fen).all() and (got.month_wh_reg == expected.month_wh_reg).all()
