"""Tariff versions that start within the year (issue 12, item 4; ``tariffs.reference`` rule 6).

Each day is priced by the version in force that day; a month in which a version starts is split at
the day into lines; annual tiers continue across the change. The kernels (compiled and their plain
twins) equal the exact reference on random versioned catalogues, and the issue's example is worked
by hand to the fen.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import usage_batches, versioned_tariff_tomls
from wattbill.tariffs import (
    Catalog,
    TariffNotInForceError,
    TariffSchedule,
    UnknownTariffError,
    UnpricedRegisterError,
    bill_households,
    load_catalog,
    parse_tariff,
    reference_bill,
    running_charge,
)

ZJ = (Path(__file__).parents[2] / "tariffs" / "catalog" / "cn-zhejiang-res-tou.toml").read_text(encoding="utf-8")


def fen(d: Decimal) -> int:
    return int(d * 100)


def zj_version(valid_from: str, plus: str = "0", thresholds: str | None = None, cycle: str | None = None) -> str:
    """The shipped Zhejiang time-of-use file from ``valid_from``, every price ``plus`` yuan higher."""
    text = ZJ.replace("valid_from = 2012-07-01", f"valid_from = {valid_from}")
    for period, values in (("peak", ("0.568", "0.618", "0.868")), ("valley", ("0.288", "0.338", "0.588"))):
        new = ", ".join(str(Decimal(v) + Decimal(plus)) for v in values)
        text = text.replace(f"{period} = [{', '.join(values)}]", f"{period} = [{new}]")
    if thresholds is not None:
        text = text.replace("thresholds = [2760, 4800]", f"thresholds = {thresholds}")
    if cycle is not None:
        text = text.replace('cycle = "annual"', f'cycle = "{cycle}"')
    return text


def catalog_of(*texts: str) -> Catalog:
    return Catalog(parse_tariff(t, f"v{k}.toml") for k, t in enumerate(texts))


def flat_household(year: int, peak_wh: int = 12_000, valley_wh: int = 8_000, n: int = 1):
    """``n`` households using ``peak_wh`` + ``valley_wh`` every day of ``year``."""
    n_days = 366 if year % 4 == 0 else 365
    regs = np.zeros((n, n_days, 4), np.int64)
    regs[:, :, 1] = peak_wh
    regs[:, :, 3] = valley_wh
    return regs.sum(axis=2), regs


def both(schedule, year, total, regs, of, ol, hs=1, use_py=False):
    """Kernel bills and the reference of household 0."""
    yb = bill_households(schedule, year, total, regs, of, ol, hs, use_py=use_py)
    ref = reference_bill(schedule, year, total[0].tolist(), regs[0].tolist(), int(np.asarray(of).flat[0]),
                         int(np.asarray(ol).flat[0]), int(np.asarray(hs).flat[0]))
    return yb, ref


# ---- the issue's example, by hand --------------------------------------------------------------

# 2024 (366 days), 12 kWh peak + 8 kWh valley every day, Zhejiang time-of-use (annual tiers 2760 /
# 4800 kWh); a second file of the code from 2024-04-01 with every price 0.02 yuan higher.
# Per kWh at the period shares 0.6 / 0.4:
#   January version: tier 1 0.6*0.568 + 0.4*0.288 = 0.456, tier 2 0.506
#   April version:   tier 1 0.6*0.588 + 0.4*0.308 = 0.476, tier 2 0.526, tier 3 0.6*0.888 + 0.4*0.608 = 0.776
# Jan 620 kWh * 0.456 = 282.72; Feb 580 * 0.456 = 264.48; Mar 620 * 0.456 = 282.72 (1,820 kWh so far)
# Apr 600 * 0.476 = 285.60 (2,420); May: 340 kWh to 2,760 at 0.476 = 161.84 and 280 at 0.526 =
# 147.28: 309.12 (tier 2 from 18 May: 17 days of May end exactly on 2,760); Jun 600 * 0.526 = 315.60;
# Jul 620 * 0.526 = 326.12 (4,260); Aug: 540 to 4,800 at 0.526 = 284.04 and 80 at 0.776 = 62.08:
# 346.12 (tier 3 from 28 August); Sep 600 * 0.776 = 465.60; Oct 481.12; Nov 465.60; Dec 481.12.
ISSUE_MONTHS = ["282.72", "264.48", "282.72", "285.60", "309.12", "315.60", "326.12", "346.12", "465.60",
                "481.12", "465.60", "481.12"]
ISSUE_YEAR = "4305.92"


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_issue_example_by_hand(use_py):
    catalog = catalog_of(ZJ, zj_version("2024-04-01", "0.02"))
    schedule = catalog.schedule("cn-zhejiang-res-tou", 2024)
    assert schedule.starts == (0, 91)  # 1 January (the 2012 file), 1 April
    total, regs = flat_household(2024)
    yb, ref = both(schedule, 2024, total, regs, 0, 365, use_py=use_py)
    assert [str(m.charge) for m in ref.months] == ISSUE_MONTHS
    assert str(ref.annual) == ISSUE_YEAR
    assert yb.month_fen[0].tolist() == [fen(Decimal(x)) for x in ISSUE_MONTHS]
    assert yb.year_fen[0] == 430592
    assert yb.month_wh_tier[0].sum(axis=0).tolist() == [2_760_000, 2_040_000, 2_520_000]
    # tier 2 from 18 May, tier 3 from 28 August: annual cumulation continued across the change
    assert yb.tier_cross_day[0].tolist() == [(dt.date(2024, 5, 18) - dt.date(2024, 1, 1)).days,
                                             (dt.date(2024, 8, 28) - dt.date(2024, 1, 1)).days]
    # the old defect: the whole year at January's prices
    wrong = bill_households(catalog.get("cn-zhejiang-res-tou", dt.date(2024, 1, 1)), 2024, total, regs, 0, 365, 1)
    assert wrong.year_fen[0] != yb.year_fen[0]


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_issue_example_estimate_through_june(use_py):
    """``estimate --through 2024-06-30`` prices January at January's version (282.72, not 295.12)."""
    schedule = catalog_of(ZJ, zj_version("2024-04-01", "0.02")).schedule("cn-zhejiang-res-tou", 2024)
    total, regs = flat_household(2024)
    through = (dt.date(2024, 6, 30) - dt.date(2024, 1, 1)).days
    rc = running_charge(schedule, 2024, total, regs, 0, 365, 1, through, use_py=use_py)
    assert rc.month_fen[0].tolist()[:6] == [fen(Decimal(x)) for x in ISSUE_MONTHS[:6]]
    assert rc.fen[0] == 174024 and rc.wh[0] == 3_640_000 and rc.tier[0] == 2
    yb = bill_households(schedule, 2024, total, regs, 0, 365, 1, use_py=use_py)
    assert rc.month_fen[0].tolist()[:6] == yb.month_fen[0].tolist()[:6]  # estimate agrees with the bill


# ---- siblings ----------------------------------------------------------------------------------


def test_version_from_1_january_prices_the_whole_year_at_it():
    catalog = catalog_of(ZJ, zj_version("2024-01-01", "0.02"))
    schedule = catalog.schedule("cn-zhejiang-res-tou", 2024)
    assert len(schedule.versions) == 1 and schedule.latest.valid_from == dt.date(2024, 1, 1)
    total, regs = flat_household(2024)
    yb, ref = both(schedule, 2024, total, regs, 0, 365)
    assert ref.months[0].charge == Decimal("295.12")  # 620 kWh * 0.476
    assert yb.month_fen[0, 0] == 29512


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_mid_month_version_splits_the_month_at_the_day(use_py):
    """From 16 April: 1-15 April 300 kWh at 0.456 = 136.80, 16-30 April 300 kWh at 0.476 = 142.80."""
    schedule = catalog_of(ZJ, zj_version("2024-04-16", "0.02")).schedule("cn-zhejiang-res-tou", 2024)
    total, regs = flat_household(2024)
    yb, ref = both(schedule, 2024, total, regs, 0, 365, use_py=use_py)
    april = ref.months[3]
    assert [c for _, _, c in april.parts] == [Decimal("136.80"), Decimal("142.80")]
    assert april.charge == Decimal("279.60") and yb.month_fen[0, 3] == 27960
    assert ref.months[2].charge == Decimal("282.72") and ref.months[4].charge == Decimal("309.12")


def test_each_part_is_rounded_half_up_and_the_month_is_their_sum():
    """Lines of a split month are rounded one by one: 0.005 + 0.005 yuan is 0.02, not 0.01."""
    one = 'code = "x-y-res-z"\nname = "z"\nsource = "t"\nvalid_from = {d}\n[periods]\nsharp = "all"\npeak = "all"\n' \
          'flat = "all"\nvalley = "all"\n[prices]\nall = [{p}]\n[tiers]\ncycle = "annual"\nthresholds = []\n'
    schedule = catalog_of(one.format(d="2020-01-01", p="0.5"), one.format(d="2024-01-16", p="0.5")).schedule("x-y-res-z", 2024)
    total = np.zeros((1, 366), np.int64)
    regs = np.zeros((1, 366, 4), np.int64)
    total[0, 3] = total[0, 20] = 10  # 10 Wh at 0.5 yuan/kWh = 0.005 yuan on each side of the change
    yb, ref = both(schedule, 2024, total, regs, 0, 365)
    assert ref.months[0].charge == Decimal("0.02") and yb.month_fen[0, 0] == 2
    single = bill_households(schedule.tariffs[0], 2024, total, regs, 0, 365, 1)
    assert single.month_fen[0, 0] == 1  # one line: 0.01


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_two_changes_in_one_year(use_py):
    """From 1 April +0.02, from 1 October +0.05: each day at its version, tiers cumulated all year."""
    schedule = catalog_of(ZJ, zj_version("2024-04-01", "0.02"), zj_version("2024-10-01", "0.05")).schedule(
        "cn-zhejiang-res-tou", 2024)
    assert schedule.starts == (0, 91, 274)
    total, regs = flat_household(2024)
    yb, ref = both(schedule, 2024, total, regs, 0, 365, use_py=use_py)
    assert [str(m.charge) for m in ref.months[:9]] == ISSUE_MONTHS[:9]
    # October at the third version, tier 3: 620 kWh * (0.6 * 0.918 + 0.4 * 0.638) = 620 * 0.806
    assert ref.months[9].charge == Decimal("499.72")
    assert yb.month_fen[0].tolist() == [fen(m.charge) for m in ref.months]


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_version_with_other_thresholds(use_py):
    """Thresholds lowered to 2000/4000 from 1 April: the kWh of the year before the change count
    against the new thresholds (cumulation continues): April starts at 1,820 kWh, so 180 kWh of
    April are in tier 1 and 420 in tier 2 (180 * 0.476 + 420 * 0.526 = 85.68 + 220.92 = 306.60)."""
    schedule = catalog_of(ZJ, zj_version("2024-04-01", "0.02", thresholds="[2000, 4000]")).schedule(
        "cn-zhejiang-res-tou", 2024)
    total, regs = flat_household(2024)
    yb, ref = both(schedule, 2024, total, regs, 0, 365, use_py=use_py)
    assert ref.months[3].wh_tier == (180_000, 420_000, 0)
    assert ref.months[3].charge == Decimal("306.60") and yb.month_fen[0, 3] == 30660
    assert yb.tier_cross_day[0, 0] == 91 + 9  # 10 April: 9 days of April end on 2,000 kWh


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_version_with_thresholds_already_passed(use_py):
    """A new threshold below the kWh already used: every kWh from the change is in the upper tier,
    and the tier begins on the day of the change."""
    schedule = catalog_of(ZJ, zj_version("2024-04-01", "0", thresholds="[1000, 4000]")).schedule(
        "cn-zhejiang-res-tou", 2024)
    total, regs = flat_household(2024)
    yb, ref = both(schedule, 2024, total, regs, 0, 365, use_py=use_py)
    assert ref.months[3].wh_tier == (0, 600_000, 0)
    assert ref.tier_cross_day[0] == 91 and yb.tier_cross_day[0, 0] == 91
    assert yb.month_fen[0].tolist() == [fen(m.charge) for m in ref.months]


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_version_with_another_tier_cycle(use_py):
    """Annual tiers to monthly tiers (200/400 kWh a month) from 16 April: the days of April before
    the change count towards April's monthly tiers (300 kWh by the 15th)."""
    schedule = catalog_of(ZJ, zj_version("2024-04-16", "0", thresholds="[200, 400]", cycle="monthly")).schedule(
        "cn-zhejiang-res-tou", 2024)
    total, regs = flat_household(2024)
    yb, ref = both(schedule, 2024, total, regs, 0, 365, use_py=use_py)
    april = ref.months[3]
    # first half (annual, 1,820 -> 2,120 kWh): tier 1; second half from 300 kWh in the month: 100 in
    # tier 2 (to 400), 200 in tier 3
    assert april.wh_tier == (300_000, 100_000, 200_000)
    assert yb.month_wh_tier[0, 3].tolist() == [300_000, 100_000, 200_000]
    assert yb.month_fen[0].tolist() == [fen(m.charge) for m in ref.months]


def test_version_after_the_through_day_prices_nothing():
    schedule = catalog_of(ZJ, zj_version("2024-07-01", "0.02")).schedule("cn-zhejiang-res-tou", 2024)
    total, regs = flat_household(2024)
    through = (dt.date(2024, 6, 30) - dt.date(2024, 1, 1)).days
    rc = running_charge(schedule, 2024, total, regs, 0, 365, 1, through)
    single = running_charge(schedule.tariffs[0], 2024, total, regs, 0, 365, 1, through)
    assert rc.fen[0] == single.fen[0] and rc.month_fen[0].tolist() == single.month_fen[0].tolist()


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_household_opened_mid_year(use_py):
    """Opened 10 May (after the change): thresholds prorated by the new version over 8 months
    (2760 * 8/12 = 1840 kWh); every day at the new prices."""
    schedule = catalog_of(ZJ, zj_version("2024-04-01", "0.02")).schedule("cn-zhejiang-res-tou", 2024)
    total, regs = flat_household(2024)
    of = (dt.date(2024, 5, 10) - dt.date(2024, 1, 1)).days
    yb, ref = both(schedule, 2024, total, regs, of, 365, use_py=use_py)
    assert ref.months[4].charge == Decimal("209.44")  # 22 days * 20 kWh * 0.476
    assert ref.thresholds_wh[4] == (1_840_000, 3_200_000)
    assert yb.month_fen[0].tolist() == [fen(m.charge) for m in ref.months]


def test_household_open_before_a_tariff_exists_is_an_error_naming_it():
    schedule = catalog_of(zj_version("2024-04-01")).schedule("cn-zhejiang-res-tou", 2024)
    assert schedule.first_day == 91
    total, regs = flat_household(2024, n=3)
    of = np.array([0, 91, 200])
    with pytest.raises(TariffNotInForceError) as err:
        bill_households(schedule, 2024, total, regs, of, 365, 1)
    assert err.value.households == [0] and "2024-04-01" in str(err.value)
    yb = bill_households(schedule, 2024, total[1:], regs[1:], of[1:], 365, 1)
    assert yb.month_fen[0, :3].tolist() == [0, 0, 0]
    # an estimate through a day before the account opened is not an error
    rc = running_charge(schedule, 2024, total[1:], regs[1:], of[1:], 365, 1, 50)
    assert rc.fen.tolist() == [0, 0]


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_monthly_cycle_tariff_with_a_change(use_py):
    """Guangdong (seasonal monthly tiers) with a change on 10 March: March's tiers count the whole
    month; each part at its version."""
    gd = load_catalog().get("cn-guangdong-res-tier")
    text = (Path(gd.origin).read_text(encoding="utf-8").replace("valid_from = 2012-07-01", "valid_from = 2025-03-10")
            .replace("all = [0.68", "all = [0.70"))
    schedule = Catalog([gd, parse_tariff(text, "gd2.toml")]).schedule("cn-guangdong-res-tier", 2025)
    total, regs = flat_household(2025, 6_000, 4_000)  # 10 kWh a day: 310 kWh in March (tier 2 from 201)
    regs[:] = 0
    yb, ref = both(schedule, 2025, total, regs, 0, 364, use_py=use_py)
    march = ref.months[2]
    assert len(march.parts) == 2 and march.wh_tier == (200_000, 110_000, 0)
    assert yb.month_fen[0].tolist() == [fen(m.charge) for m in ref.months]


def test_catalog_schedule():
    catalog = catalog_of(ZJ, zj_version("2024-04-01", "0.02"), zj_version("2025-01-01", "0.04"),
                         zj_version("2024-04-01", "0.03"))  # the same date again: the later file wins
    s24 = catalog.schedule("cn-zhejiang-res-tou", 2024)
    assert s24.starts == (0, 91) and s24.tariffs[1].price("peak", 1) == Decimal("0.598")
    s25 = catalog.schedule("cn-zhejiang-res-tou", 2025)
    assert s25.starts == (0,) and s25.latest.valid_from == dt.date(2025, 1, 1)
    assert catalog.schedule("cn-zhejiang-res-tou", 2013).latest.valid_from == dt.date(2012, 7, 1)
    with pytest.raises(UnknownTariffError):
        catalog.schedule("cn-zhejiang-res-tou", 2011)
    assert catalog.schedule("cn-zhejiang-res-tou", 2012).first_day == (dt.date(2012, 7, 1) - dt.date(2012, 1, 1)).days


# ---- random versioned catalogues against the reference -------------------------------------------


@st.composite
def versioned_cases(draw):
    batch = draw(usage_batches())
    texts = draw(versioned_tariff_tomls(batch.year))
    schedule = Catalog(parse_tariff(t, f"h{k}.toml") for k, t in enumerate(texts)).schedule(
        "test-random-res-x", batch.year)
    return schedule, batch


def _outcome(schedule, batch, i, through=None):
    try:
        return reference_bill(schedule, batch.year, batch.total[i].tolist(), batch.regs[i].tolist(),
                              int(batch.open_first[i]), int(batch.open_last[i]), int(batch.household_size[i]),
                              through_day=through)
    except (UnpricedRegisterError, TariffNotInForceError) as exc:
        return type(exc)


def _check(schedule, batch, use_py, through=None):
    refs = [_outcome(schedule, batch, i, through) for i in range(batch.total.shape[0])]
    args = (schedule, batch.year, batch.total, batch.regs, batch.open_first, batch.open_last, batch.household_size)
    for error in (TariffNotInForceError, UnpricedRegisterError):
        rows = [i for i, r in enumerate(refs) if r is error]
        if rows:
            with pytest.raises(error) as err:
                if through is None:
                    bill_households(*args, use_py=use_py)
                else:
                    running_charge(*args, through, use_py=use_py)
            assert err.value.households == rows
            return
    if through is not None:
        rc = running_charge(*args, through, use_py=use_py)
        for i, ref in enumerate(refs):
            assert rc.month_fen[i].tolist() == [fen(m.charge) for m in ref.months]
            assert rc.fen[i] == fen(ref.annual) and rc.wh[i] == ref.wh_so_far and rc.tier[i] == ref.tier_reached
        return
    yb = bill_households(*args, use_py=use_py)
    assert yb.period_names == schedule.period_names
    for i, ref in enumerate(refs):
        assert yb.month_fen[i].tolist() == [fen(m.charge) for m in ref.months], i
        assert yb.year_fen[i] == fen(ref.annual)
        assert yb.month_wh[i].tolist() == [m.wh_total for m in ref.months]
        assert yb.month_wh_reg[i].tolist() == [list(m.wh_reg) for m in ref.months]
        assert yb.month_wh_tier[i].tolist() == [list(m.wh_tier) for m in ref.months]
        assert yb.month_wh_period[i].tolist() == [[m.wh_period[p] for p in yb.period_names] for m in ref.months]
        assert yb.tier_cross_day[i].tolist() == list(ref.tier_cross_day)


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
class TestVersionedCatalogues:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=versioned_cases())
    def test_bills_equal_the_reference(self, use_py, case):
        _check(*case, use_py)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=versioned_cases(), data=st.data())
    def test_running_charge_equals_the_reference(self, use_py, case, data):
        schedule, batch = case
        _check(schedule, batch, use_py, through=data.draw(st.integers(-1, batch.total.shape[1] - 1)))


def test_a_single_version_schedule_is_the_tariff():
    """``TariffSchedule.single`` and a plain ``Tariff`` bill alike (the calls of before stay valid)."""
    t = load_catalog().get("cn-shanghai-res-tou")
    total, regs = flat_household(2023)
    a = bill_households(t, 2023, total, regs, 0, 364, 1)
    b = bill_households(TariffSchedule.single(t, 2023), 2023, total, regs, 0, 364, 1)
    assert a.month_fen.tolist() == b.month_fen.tolist() and a.period_names == b.period_names


def test_two_files_of_one_folder_with_the_same_code_and_date_are_refused(tmp_path) -> None:
    """Which of two same-dated versions prices the days must not depend on the file names."""
    from wattbill.tariffs import TariffFileError, load_catalog

    shipped = (Path(__file__).resolve().parents[2] / "tariffs" / "catalog" / "cn-jiangsu-res-tier.toml").read_text()
    body = shipped.split("\nvalid_from", 1)[0] + "\nvalid_from = 2025-04-16\n" + shipped.split("\nvalid_from", 1)[1].split("\n", 1)[1]
    (tmp_path / "a.toml").write_text(body)
    (tmp_path / "b.toml").write_text(body.replace("0.5283", "0.6283"))
    with pytest.raises(TariffFileError, match=r"also in a\.toml"):
        load_catalog([tmp_path])
    (tmp_path / "b.toml").unlink()
    cat = load_catalog([tmp_path])  # one file dated 2025-04-16 besides the shipped version: two versions
    assert len(cat.schedule("cn-jiangsu-res-tier", 2025).versions) == 2
