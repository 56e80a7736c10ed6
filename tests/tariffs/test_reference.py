"""The exact reference against examples worked out by hand from the design's rules.

Every number below is derived step by step in the comments; the reference must reproduce it.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from wattbill.tariffs import parse_tariff, reference_bill
from wattbill.tariffs.reference import effective_thresholds, place_in_tiers

N_2023 = 365  # 2023 is not a leap year


def tariff(prices: str, tiers: str, periods: str = 'sharp = "all"\npeak = "all"\nflat = "all"\nvalley = "all"'):
    return parse_tariff(
        f'code = "x-test-res-hand"\nname = "hand"\nsource = "test"\n[periods]\n{periods}\n[prices]\n{prices}\n[tiers]\n{tiers}\n'
    )


def daily(kwh_per_day: float, n_days: int = N_2023) -> list[int]:
    return [round(kwh_per_day * 1000)] * n_days


def no_regs(n_days: int = N_2023) -> list[list[int]]:
    return [[0, 0, 0, 0] for _ in range(n_days)]


def test_annual_tiers_crossing_mid_month():
    # Tariff: one period, 0.5 / 0.6 / 0.9 yuan/kWh, annual thresholds 100 and 200 kWh, no proration.
    t = tariff("all = [0.5, 0.6, 0.9]", 'cycle = "annual"\nthresholds = [100, 200]\nproration = "none"')
    # Usage: 2 kWh every day of 2023 (no TOU registers: all of total is unsplit -> period "all").
    bill = reference_bill(t, 2023, daily(2), no_regs(), 0, N_2023 - 1, 1)
    jan, feb, mar, apr, may = bill.months[:5]
    # January: 31 days x 2 = 62 kWh, cumulative before 0 -> all tier 1: 62 x 0.5 = 31.00
    assert jan.wh_tier == (62_000, 0, 0) and jan.charge == D("31.00")
    # February: 28 x 2 = 56 kWh, cumulative before 62 -> 38 kWh up to 100 in tier 1, 18 in tier 2:
    # 38 x 0.5 + 18 x 0.6 = 19 + 10.8 = 29.80
    assert feb.wh_tier == (38_000, 18_000, 0) and feb.charge == D("29.80")
    # March: 62 kWh from 118 to 180, all tier 2: 62 x 0.6 = 37.20
    assert mar.wh_tier == (0, 62_000, 0) and mar.charge == D("37.20")
    # April: 60 kWh from 180 to 240: 20 in tier 2, 40 in tier 3: 12 + 36 = 48.00
    assert apr.wh_tier == (0, 20_000, 40_000) and apr.charge == D("48.00")
    # May: 62 kWh in tier 3: 55.80
    assert may.charge == D("55.80")
    # Tier 2 begins on the day whose kWh pass 100: cumulative after day d is 2(d+1) > 100 -> d = 50
    # (20 February); tier 3: 2(d+1) > 200 -> d = 100 (11 April).
    assert bill.tier_cross_day == (50, 100)
    # Year: 730 kWh = 100 at 0.5 + 100 at 0.6 + 530 at 0.9 = 50 + 60 + 477 = 587.00 (no fen rounding
    # anywhere, so the sum of the months equals the year's figure).
    assert bill.annual == D("587.00")
    assert bill.tier_reached == 3


def test_monthly_seasonal_tiers():
    # Guangdong-like: summer (May-October) 260 / 600 kWh a month, otherwise 200 / 400.
    t = tariff(
        "all = [0.68, 0.73, 0.98]",
        'cycle = "monthly"\nthresholds_by_month = { "5-10" = [260, 600], "1-4,11-12" = [200, 400] }',
    )
    # 10 kWh a day in January and in July only.
    usage = [0] * N_2023
    for d in list(range(0, 31)) + list(range(181, 212)):  # 1-31 January, 1-31 July
        usage[d] = 10_000
    bill = reference_bill(t, 2023, usage, no_regs(), 0, N_2023 - 1, 1)
    # January: 310 kWh, winter thresholds: 200 in tier 1, 110 in tier 2: 136.00 + 80.30 = 216.30
    assert bill.months[0].wh_tier == (200_000, 110_000, 0) and bill.months[0].charge == D("216.30")
    # July: 310 kWh, summer thresholds: 260 in tier 1, 50 in tier 2: 176.80 + 36.50 = 213.30
    assert bill.months[6].wh_tier == (260_000, 50_000, 0) and bill.months[6].charge == D("213.30")
    # Other months: nothing. Year: 216.30 + 213.30 = 429.60
    assert all(m.charge == 0 for i, m in enumerate(bill.months) if i not in (0, 6))
    assert bill.annual == D("429.60")
    # Tier 2 first begins in January: month cumulative 10(d+1) > 200 -> d = 20; tier 3 never.
    assert bill.tier_cross_day == (20, -1)


SHANGHAI_TOU = """
code = "cn-shanghai-res-tou"
name = "上海 峰谷"
source = "test copy of the catalogue's figures"
[periods]
sharp = "peak"
peak = "peak"
flat = "peak"
valley = "valley"
[prices]
peak = [0.617, 0.677, 0.977]
valley = [0.307, 0.337, 0.487]
[tiers]
cycle = "annual"
thresholds = [3120, 4800]
"""


def test_shanghai_differing_adders_proportional_rule():
    t = parse_tariff(SHANGHAI_TOU)
    # One big day, 15 January: total 4000 kWh = peak register 2400 + valley register 1600.
    total = [0] * N_2023
    regs = no_regs()
    total[14] = 4_000_000
    regs[14] = [0, 2_400_000, 0, 1_600_000]
    bill = reference_bill(t, 2023, total, regs, 0, N_2023 - 1, 1)
    jan = bill.months[0]
    # Tiers by total: 3120 kWh in tier 1, 880 in tier 2.
    assert jan.wh_tier == (3_120_000, 880_000, 0)
    # Rule 2: each tier is shared 60 % peak / 40 % valley (the month's period shares):
    #   tier 1: 3120 x (0.6 x 0.617 + 0.4 x 0.307) = 3120 x 0.4930 = 1538.16
    #   tier 2:  880 x (0.6 x 0.677 + 0.4 x 0.337) =  880 x 0.5410 =  476.08
    # total 2014.24. (Pricing tier 2 all at the peak adder would give 3120 x .. + 880 x 0.677; the
    # proportional rule does not.)
    assert jan.wh_period == {"peak": 2_400_000, "valley": 1_600_000}
    assert jan.charge == D("2014.24")
    assert bill.annual == D("2014.24")


def test_shanghai_meter_without_tou_registers_is_priced_in_unsplit_period():
    t = parse_tariff(SHANGHAI_TOU)
    # 100 kWh in January, no registers: unsplit defaults to the period of "flat" = peak.
    total = [0] * N_2023
    total[0] = 100_000
    bill = reference_bill(t, 2023, total, no_regs(), 0, N_2023 - 1, 1)
    # 100 x 0.617 = 61.70
    assert bill.months[0].wh_period == {"peak": 100_000, "valley": 0}
    assert bill.months[0].charge == D("61.70")


def opened_on_31_october_usage() -> list[int]:
    # Opened 31 October 2023 (day index 273 + 30 = 303): 50 kWh that day, then 10 kWh a day
    # (November 300 kWh, December 310 kWh).
    usage = [0] * N_2023
    usage[303] = 50_000
    for d in range(304, N_2023):
        usage[d] = 10_000
    return usage


def test_proration_by_months_account_opened_on_last_day_of_month():
    t = tariff("all = [0.5, 0.6, 0.9]", 'cycle = "annual"\nthresholds = [1200, 2400]\nproration = "months"')
    bill = reference_bill(t, 2023, opened_on_31_october_usage(), no_regs(), 303, N_2023 - 1, 1)
    # Open months: October (one day is enough), November, December = 3 of 12:
    # thresholds 1200 x 3/12 = 300 kWh and 2400 x 3/12 = 600 kWh.
    assert bill.thresholds_wh[0] == (300_000, 600_000)
    oct_, nov, dec = bill.months[9:]
    # October: 50 kWh in tier 1 = 25.00
    assert oct_.charge == D("25.00")
    # November: from 50 to 350: 250 in tier 1, 50 in tier 2: 125 + 30 = 155.00
    assert nov.wh_tier == (250_000, 50_000, 0) and nov.charge == D("155.00")
    # December: from 350 to 660: 250 in tier 2, 60 in tier 3: 150 + 54 = 204.00
    assert dec.wh_tier == (0, 250_000, 60_000) and dec.charge == D("204.00")
    assert bill.annual == D("384.00")


def test_proration_by_days():
    t = tariff("all = [0.5, 0.6, 0.9]", 'cycle = "annual"\nthresholds = [1200, 2400]\nproration = "days"')
    bill = reference_bill(t, 2023, opened_on_31_october_usage(), no_regs(), 303, N_2023 - 1, 1)
    # Open days: 1 + 30 + 31 = 62 of 365.
    #   1 200 000 Wh x 62 / 365 = 203 835.616... -> 203 836 Wh (half-up to a whole Wh)
    #   2 400 000 Wh x 62 / 365 = 407 671.232... -> 407 671 Wh
    assert bill.thresholds_wh[0] == (203_836, 407_671)
    oct_, nov, dec = bill.months[9:]
    assert oct_.charge == D("25.00")
    # November: from 50 000 to 350 000 Wh: tier 1 153 836, tier 2 146 164 Wh:
    #   153.836 x 0.5 + 146.164 x 0.6 = 76.918 + 87.6984 = 164.6164 -> 164.62
    assert nov.wh_tier == (153_836, 146_164, 0) and nov.charge == D("164.62")
    # December: from 350 000 to 660 000 Wh: tier 2 57 671, tier 3 252 329 Wh:
    #   57.671 x 0.6 + 252.329 x 0.9 = 34.6026 + 227.0961 = 261.6987 -> 261.70
    assert dec.wh_tier == (0, 57_671, 252_329) and dec.charge == D("261.70")
    assert bill.annual == D("451.32")


def test_monthly_cycle_proration_by_days():
    # Monthly cycle, 300 kWh a month threshold, account open from 17 January (day 16): January has
    # 15 open days of 31 -> 300 000 x 15 / 31 = 145 161.29 -> 145 161 Wh.
    t = tariff("all = [0.5, 1.0]", 'cycle = "monthly"\nthresholds = [300]\nproration = "days"')
    assert effective_thresholds(t, 2023, 16, N_2023 - 1, 1)[0] == (145_161,)
    assert effective_thresholds(t, 2023, 16, N_2023 - 1, 1)[1] == (300_000,)


BONUS = 'cycle = "annual"\nthresholds = [2760, 4800]\nproration = "months"\nhousehold_bonus = { min_size = 5, kwh_per_month = 100 }'


@pytest.mark.parametrize(
    ("size", "thresholds", "annual"),
    [
        # 4 persons: no bonus. 12 kWh a day; cumulative at month ends: Jan 372, Feb 708, Mar 1080,
        # Apr 1440, May 1812, Jun 2172, Jul 2544, Aug 2916 ... Dec 4380.
        # Months at 0.538: 372 kWh -> 200.136 -> 200.14; 336 -> 180.768 -> 180.77; 360 -> 193.68.
        # August crosses 2760: 216 x 0.538 + 156 x 0.588 = 116.208 + 91.728 = 207.936 -> 207.94;
        # then at 0.588: Sep 211.68, Oct 218.736 -> 218.74, Nov 211.68, Dec 218.74.
        # Sum: 4 x 200.14 + 180.77 + 2 x 193.68 + 207.94 + 211.68 + 218.74 + 211.68 + 218.74 = 2437.47
        (4, (2_760_000, 4_800_000), D("2437.47")),
        # 5 persons: thresholds + 12 x 100 kWh = 3960 / 6000. November crosses 3960:
        # 312 x 0.538 + 48 x 0.588 = 167.856 + 28.224 = 196.08; December 372 x 0.588 -> 218.74.
        # Sum: 6 x 200.14 + 180.77 + 3 x 193.68 + 196.08 + 218.74 = 2377.47 (60.00 less: 1200 kWh
        # moved from 0.588 to 0.538).
        (5, (3_960_000, 6_000_000), D("2377.47")),
    ],
)
def test_household_bonus(size, thresholds, annual):
    t = tariff("all = [0.538, 0.588, 0.838]", BONUS)
    bill = reference_bill(t, 2023, daily(12), no_regs(), 0, N_2023 - 1, size)
    assert bill.thresholds_wh[0] == thresholds
    assert bill.annual == annual


def test_half_up_at_exactly_half_a_fen():
    t = tariff("all = [0.5]", 'thresholds = []')
    usage = [0] * N_2023
    usage[0] = 10  # 10 Wh x 0.5 yuan/kWh = 0.005 yuan exactly -> 0.01 (banker's rounding gives 0.00)
    usage[31] = 9  # 0.0045 -> 0.00
    usage[59] = 50  # 0.025 -> 0.03 (banker's: 0.02)
    bill = reference_bill(t, 2023, usage, no_regs(), 0, N_2023 - 1, 1)
    assert bill.month_charges[:3] == [D("0.01"), D("0.00"), D("0.03")]
    assert bill.annual == D("0.04")  # sum of rounded months, not round(0.0345)


def test_half_up_at_exactly_half_a_fen_with_proportional_share():
    t = tariff(
        "peak = [0.6]\nvalley = [0.3]",
        "thresholds = []",
        periods='sharp = "peak"\npeak = "peak"\nflat = "peak"\nvalley = "valley"',
    )
    total = [0] * N_2023
    regs = no_regs()
    total[0] = 125
    regs[0] = [0, 25, 0, 100]
    # 125 Wh x (25/125 x 0.6 + 100/125 x 0.3) / 1000 = (15 + 30) / 1 000 000 x 1000 = 0.045 -> 0.05
    bill = reference_bill(t, 2023, total, regs, 0, N_2023 - 1, 1)
    assert bill.months[0].charge == D("0.05")


def test_thirds_are_divided_last():
    # Shares of 1/3 and 2/3 are not finite decimals; the division is done last and exactly.
    t = tariff(
        "peak = [1.0, 2.0]\nvalley = [0.1, 0.2]",
        'thresholds = [0.001]\nproration = "none"',
        periods='sharp = "peak"\npeak = "peak"\nflat = "peak"\nvalley = "valley"',
    )
    total = [0] * N_2023
    regs = no_regs()
    total[0] = 3
    regs[0] = [0, 1, 0, 2]
    # tier 1: 1 Wh, tier 2: 2 Wh. Charge (yuan) = [1 x (1/3 x 1.0 + 2/3 x 0.1) + 2 x (1/3 x 2.0 + 2/3 x 0.2)] / 1000
    #   = [0.4 + 2 x 0.8] / 1000 = 0.002 -> 0.00
    bill = reference_bill(t, 2023, total, regs, 0, N_2023 - 1, 1)
    from fractions import Fraction

    assert bill.months[0].exact == Fraction(2, 1000)
    assert bill.months[0].charge == D("0.00")


def test_place_in_tiers_boundaries():
    # Exactly on a threshold stays in the lower tier; the next Wh is in the next tier.
    assert place_in_tiers(0, 100, [100, 200]) == (100, 0, 0)
    assert place_in_tiers(100, 1, [100, 200]) == (0, 1, 0)
    assert place_in_tiers(150, 100, [100, 200]) == (0, 50, 50)
    assert place_in_tiers(0, 500, []) == (500, 0, 0)
    assert place_in_tiers(0, 500, [100]) == (100, 400, 0)


def test_days_outside_open_window_are_ignored_and_leap_year():
    t = tariff("all = [1.0]", "thresholds = []")
    usage = [1000] * 366  # 2024 is a leap year: 29 February is day 59
    bill = reference_bill(t, 2024, usage, no_regs(366), 59, 59, 1)
    assert [m.wh_total for m in bill.months][:3] == [0, 1000, 0]
    assert bill.annual == D("1.00")
    with pytest.raises(ValueError):
        reference_bill(t, 2023, usage, no_regs(366), 0, 364, 1)
