"""Diagnostics on small hand-made frames: every feature against a value worked out by hand."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from wattbill.diagnostics import (
    DEFAULT_PARAMS,
    FEATURES,
    Params,
    bills_frame,
    diagnose,
    shift_peak_to_valley,
)


def run(hh, houses, *, last_year=None, bills=None, alternatives=None, params=DEFAULT_PARAMS, year=None):
    y = year or hh.YEAR
    daily = hh.daily_frame(houses, y)
    prev = hh.daily_frame(last_year, y - 1) if last_year is not None else None
    pays = hh.payments_frame(houses, y) if any(h.payments for h in houses) else None
    return diagnose(daily, prev, hh.customers_frame(houses), pays, bills, alternatives, y, params)


def one(frame: pl.DataFrame, cid: str = "A") -> dict:
    return frame.filter(pl.col("customer_id") == cid).row(0, named=True)


def test_schema_and_order_follow_customers(hh):
    houses = [hh.House("B", hh.flat(5000)), hh.House("A", hh.flat(7000)), hh.House("C", np.full(365, -1))]
    f = run(hh, houses)
    assert f.schema == pl.Schema(FEATURES)
    assert f["customer_id"].to_list() == ["B", "A", "C"]
    c = one(f, "C")  # no reads at all: nulls, zero counts
    assert c["wh_year"] is None and c["base_load_w"] is None and c["share_valley"] is None
    assert c["days_present"] == 0 and c["missing_days"] == 365


def test_year_and_month_totals(hh):
    wh = np.full(365, 1000, np.int64)
    wh[31:59] = 2000  # February
    f = one(run(hh, [hh.House("A", wh)]))
    assert f["wh_year"] == 1000 * (365 - 28) + 2000 * 28
    assert f["month_wh"][0] == 31_000 and f["month_wh"][1] == 56_000 and f["month_wh"][11] == 31_000
    assert f["days_open"] == 365 and f["days_present"] == 365 and f["estimated_days"] == 0


def test_meters_summed_on_exchange_day_and_missing_and_estimated_days(hh):
    wh = hh.flat(6000)
    wh[[10, 11, 200]] = -1
    h = hh.House("A", wh, exchange_day=100, estimated_days=(5, 6, 7))
    f = one(run(hh, [h]))
    assert f["wh_year"] == int(wh[wh >= 0].sum())
    assert f["missing_days"] == 3 and f["days_present"] == 362 and f["estimated_days"] == 3


def test_tou_shares_and_null_without_registers(hh):
    houses = [hh.House("A", np.full(365, 10_000)), hh.House("B", np.full(365, 10_000), shares=None)]
    f = run(hh, houses)
    a, b = one(f, "A"), one(f, "B")
    assert a["share_sharp"] == pytest.approx(0.04) and a["share_peak"] == pytest.approx(0.46)
    assert a["share_flat"] == pytest.approx(0.20) and a["share_valley"] == pytest.approx(0.30)
    assert a["share_sharp_peak"] == pytest.approx(0.50) and a["tou_days"] == 365
    assert b["share_valley"] is None and b["tou_days"] == 0


def test_base_load_is_low_end_of_daily_use_in_watts(hh):
    wh = np.full(365, 9600, np.int64)
    wh[:100] = 4800  # the lowest 10 % of days: 4.8 kWh/day = 200 W
    f = one(run(hh, [hh.House("A", wh)]))
    assert f["base_load_w"] == pytest.approx(200.0)
    assert f["median_day_wh"] == pytest.approx(9600.0)


def test_seasonal_excess_over_spring_and_autumn(hh):
    wh = hh.add_months(np.full(365, 5000, np.int64), (7, 8), 4000)
    wh = hh.add_months(wh, (12, 1, 2), 2500)
    f = one(run(hh, [hh.House("A", wh)]))
    assert f["level_shoulder_wh"] == 5000 and f["level_summer_wh"] == 9000 and f["level_winter_wh"] == 7500
    assert f["summer_excess_wh"] == 4000 and f["summer_excess_pct"] == pytest.approx(80.0)
    assert f["winter_excess_wh"] == 2500 and f["winter_excess_pct"] == pytest.approx(50.0)


def test_seasonal_level_null_without_enough_days(hh):
    wh = np.full(365, 5000, np.int64)
    f = one(run(hh, [hh.House("A", wh, opened_on=dt.date(hh.YEAR, 9, 1))]))
    assert f["days_open"] == 122 and f["days_present"] == 122
    assert f["summer_excess_wh"] is None and f["level_summer_wh"] is None
    assert f["level_shoulder_wh"] == 5000  # Oct-Nov are there


def test_longest_low_run_with_start_and_missing_day_inside(hh, jan1):
    wh = np.full(365, 6000, np.int64)
    wh[100:130] = 200  # 30 near-zero days from day 100
    wh[110] = -1  # a missing read inside the run neither counts nor ends it
    wh[200:205] = 100  # a shorter run
    f = one(run(hh, [hh.House("A", wh)]))
    assert f["longest_low_run_days"] == 29
    assert f["longest_low_run_start"] == jan1 + dt.timedelta(days=100)
    assert f["low_days"] == 34
    # near-zero days do not pull the base load or the seasonal levels down
    assert f["base_load_w"] == pytest.approx(250.0)


def test_spike_days_against_own_typical_day(hh, jan1):
    wh = hh.flat(5000)
    wh[50] = 40_000
    wh[51] = 30_000
    f = one(run(hh, [hh.House("A", wh)]))
    assert f["spike_days"] == 2
    assert f["spike_first_date"] == jan1 + dt.timedelta(days=50)
    assert f["spike_max_ratio"] == pytest.approx(8.0, rel=0.02)


def test_no_spike_for_summer_cooling_ramp(hh):
    # a strong cooler: summer days 4x the median day, but not against the days around them
    wh = hh.add_months(hh.flat(4000), (7, 8), 14_000)
    f = one(run(hh, [hh.House("A", wh)]))
    assert f["spike_days"] == 0


def test_last_year_beside_this_year(hh):
    this = [hh.House("A", np.full(365, 1100, np.int64))]
    prev_wh = np.full(366, 1000, np.int64)  # 2024: a leap year
    prev_wh[:20] = -1  # January of last year: only 11 days read -> null month
    prev = [hh.House("A", prev_wh)]
    f = one(run(hh, this, last_year=prev))
    assert f["month_wh_last_year"][0] is None
    assert f["month_wh_last_year"][1] == 29_000
    assert f["wh_last_year"] == 346_000 and f["wh_year"] == 401_500
    assert f["change_pct"] == pytest.approx(100 * (401_500 - 346_000) / 346_000)


def test_last_year_null_when_too_little_data(hh):
    prev_wh = np.full(366, 1000, np.int64)
    prev_wh[:100] = -1
    f = one(run(hh, [hh.House("A", np.full(365, 1000))], last_year=[hh.House("A", prev_wh)]))
    assert f["wh_last_year"] is None and f["change_pct"] is None


def test_last_year_of_a_household_without_rows_does_not_depend_on_its_neighbours(hh):
    """A bill run diagnoses its chunks apart: a household without last year's rows gets the same
    ``month_wh_last_year`` (12 null months) whether or not another household of its chunk has rows
    (a new user's report: null in one chunking, a list of nulls in another)."""
    a, b = hh.House("A", np.full(365, 1000)), hh.House("B", np.full(365, 2000))
    with_neighbour = one(run(hh, [a, b], last_year=[hh.House("A", np.full(366, 900))]), "B")
    empty = hh.daily_frame([hh.House("B", np.full(366, 900))], hh.YEAR - 1).clear()
    alone = one(diagnose(hh.daily_frame([b], hh.YEAR), empty, hh.customers_frame([b]), None, None, None,
                         hh.YEAR), "B")
    assert with_neighbour["month_wh_last_year"] == alone["month_wh_last_year"] == [None] * 12
    assert with_neighbour["wh_last_year"] is alone["wh_last_year"] is None


class _YB:
    def __init__(self, month_fen, tier_cross_day):
        self.month_fen = np.asarray(month_fen, np.int64)
        self.year_fen = self.month_fen.sum(axis=1)
        self.tier_cross_day = np.asarray(tier_cross_day, np.int64)


def test_bills_tier_dates_price_and_shift_saving(hh, jan1):
    houses = [hh.House("A", np.full(365, 10_000)), hh.House("B", np.full(365, 10_000))]
    yb = _YB([[5000] * 12, [4000] * 12], [[150, 300], [-1, -1]])
    shifted = _YB([[4900] * 12, [4000] * 12], [[150, 300], [-1, -1]])
    bills = bills_frame(["A", "B"], "t-tou", yb, shifted, is_tou=True)
    f = run(hh, houses, bills=bills)
    a, b = one(f, "A"), one(f, "B")
    assert a["month_fen"] == [5000] * 12 and a["year_fen"] == 60_000
    assert a["tier2_date"] == jan1 + dt.timedelta(days=150) and a["tier3_date"] == jan1 + dt.timedelta(days=300)
    assert b["tier2_date"] is None and b["tier3_date"] is None
    assert a["avg_price_fen_per_kwh"] == pytest.approx(60_000 / 3650)
    assert a["shift10_saving_fen"] == 1200 and b["shift10_saving_fen"] == 0
    assert a["tariff_is_tou"] is True
    assert a["base100_saving_fen"] == 60_000 * 876_000 // 3_650_000


def test_best_alternative_excludes_current_tariff(hh):
    houses = [hh.House("A", np.full(365, 10_000)), hh.House("B", np.full(365, 10_000))]
    bills = bills_frame(["A", "B"], hh.TOU, _YB([[5000] * 12, [5000] * 12], [[-1, -1], [-1, -1]]))
    alts = pl.DataFrame({
        "customer_id": ["A", "A", "A", "B"],
        "tariff": [hh.TOU, "x-cheap", "y-dear", "y-dear"],
        "year_fen": [1, 55_000, 70_000, 70_000],
        "is_tou": [True, False, False, False],
    })
    f = run(hh, houses, bills=bills, alternatives=alts)
    a, b = one(f, "A"), one(f, "B")
    assert a["best_alt_tariff"] == "x-cheap" and a["best_alt_fen"] == 55_000 and a["best_alt_saving_fen"] == 5000
    assert a["best_alt_is_tou"] is False
    assert b["best_alt_tariff"] == "y-dear" and b["best_alt_saving_fen"] == -10_000


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_shift_peak_to_valley_is_integer_and_keeps_the_total(use_py):
    regs = np.array([[[15, 1004, 300, 200], [0, 5, 0, 0]]], np.int64)
    out = shift_peak_to_valley(regs, use_py=use_py)
    assert out.dtype == np.int64
    assert out.sum(axis=2).tolist() == regs.sum(axis=2).tolist()
    assert out[0, 0].tolist() == [13, 904, 300, 302]  # 1.5 -> 2 and 100.4 -> 100 moved (half-up)
    assert out[0, 1].tolist() == [0, 4, 0, 1]


def test_peer_percentile_and_minimum_group(hh):
    houses = [hh.House(f"H{i:02d}", np.full(365, 1000 * (i + 1))) for i in range(10)]
    houses.append(hh.House("LONE", np.full(365, 5000), region="宁波"))
    f = run(hh, houses, params=Params(peer_min_size=5))
    top = one(f, "H09")
    assert top["peer_group_size"] == 10 and top["peer_percentile"] == pytest.approx(95.0)
    assert one(f, "H00")["peer_percentile"] == pytest.approx(5.0)
    lone = one(f, "LONE")
    assert lone["peer_group_size"] == 1 and lone["peer_percentile"] is None
    # default minimum (30): no percentile for a group of 10
    assert one(run(hh, houses), "H09")["peer_percentile"] is None


def test_payments_delay_late_and_channels(hh):
    pays = [(1, "app")] * 6 + [(30, "counter")] * 3 + [(5, "wechat")] * 2 + [(-1, "counter")]
    h = hh.House("A", np.full(365, 5000), payments=pays)
    f = one(run(hh, [h]))
    assert f["pay_count"] == 12 and f["pay_unpaid_count"] == 1
    assert f["pay_delay_days_mean"] == pytest.approx((6 * 1 + 3 * 30 + 2 * 5) / 11)
    assert f["pay_delay_days_max"] == 30
    # December's bill is issued on Dec 20 and unpaid: not yet late at the end of the year
    assert f["pay_late_count"] == 3 and f["pay_late_share"] == pytest.approx(3 / 12)
    assert f["pay_channel_main"] == "app"
    mix = json.loads(f["pay_channel_mix"])
    assert mix["app"] == pytest.approx(6 / 11, abs=1e-4) and mix["counter"] == pytest.approx(3 / 11, abs=1e-4)
    assert f["pay_share_online"] == pytest.approx(8 / 11) and f["pay_share_counter"] == pytest.approx(3 / 11)


def test_no_payments_give_nulls(hh):
    f = one(run(hh, [hh.House("A", np.full(365, 5000))]))
    assert f["pay_count"] is None and f["pay_channel_main"] is None and f["pay_delay_days_mean"] is None


def test_closed_account_window(hh):
    wh = np.full(365, 5000, np.int64)
    h = hh.House("A", wh, closed_on=dt.date(hh.YEAR, 3, 31))
    f = one(run(hh, [h]))
    assert f["days_open"] == 90 and f["days_present"] == 90 and f["wh_year"] == 450_000


def test_leap_year(hh):
    wh = np.full(366, 1000, np.int64)
    f = one(run(hh, [hh.House("A", wh)], year=2024))
    assert f["wh_year"] == 366_000 and f["month_wh"][1] == 29_000


def test_add_peers_over_batches_equals_one_pass(hh):
    from wattbill.diagnostics import add_peers

    houses = [hh.House(f"H{i:02d}", np.full(365, 1000 * (i + 1)), household_size=2 + i % 2) for i in range(12)]
    p = Params(peer_min_size=3)
    whole = run(hh, houses, params=p)
    batches = pl.concat([run(hh, houses[:5], params=p), run(hh, houses[5:], params=p)])
    assert not batches.equals(whole)  # batches alone compare within the batch
    fixed = add_peers(batches, p)
    assert fixed.columns == whole.columns
    assert fixed.equals(whole)


def test_customers_with_only_ids(hh):
    houses = [hh.House("A", np.full(365, 5000))]
    daily = hh.daily_frame(houses)
    f = diagnose(daily, None, pl.DataFrame({"customer_id": ["A"]}), None, None, None, hh.YEAR)
    r = one(f)
    assert r["wh_year"] == 5000 * 365 and r["region"] is None and r["peer_percentile"] is None


def test_every_feature_is_documented():
    from wattbill.diagnostics import FEATURE_DOCS

    assert set(FEATURE_DOCS) == set(FEATURES)


def test_reusing_dense_gives_the_same_features(hh):
    from wattbill.diagnostics import densify

    houses = [hh.House("A", hh.add_months(hh.flat(5000), (7, 8), 4000)), hh.House("B", hh.flat(9000), shares=None)]
    daily, cust = hh.daily_frame(houses), hh.customers_frame(houses)
    a = diagnose(daily, None, cust, None, None, None, hh.YEAR)
    b = diagnose(daily, None, cust, None, None, None, hh.YEAR, dense=densify(daily, cust, hh.YEAR, with_regs=True))
    assert a.equals(b)


def test_tier_wh_from_year_bills(hh):
    yb = _YB([[5000] * 12], [[150, 300]])
    yb.month_wh_tier = np.zeros((1, 12, 3), np.int64)
    yb.month_wh_tier[0, 6:, 1] = 100_000
    yb.month_wh_tier[0, 10:, 2] = 250_000
    f = one(run(hh, [hh.House("A", np.full(365, 10_000))], bills=bills_frame(["A"], "t", yb)))
    assert f["wh_tier2"] == 600_000 and f["wh_tier3"] == 500_000
    g = one(run(hh, [hh.House("A", np.full(365, 10_000))], bills=bills_frame(["A"], "t", _YB([[1] * 12], [[-1, -1]]))))
    assert g["wh_tier3"] is None


def test_take_rows_is_a_view_for_a_contiguous_range_and_a_copy_otherwise():
    from wattbill.diagnostics import take_rows

    a = np.arange(24).reshape(6, 4)
    view = take_rows(a, np.array([2, 3, 4]))
    assert np.shares_memory(view, a) and view.tolist() == a[2:5].tolist()
    gathered = take_rows(a, np.array([0, 2, 5]))
    assert not np.shares_memory(gathered, a) and gathered.tolist() == a[[0, 2, 5]].tolist()
    assert take_rows(a, np.array([], dtype=np.int64)).shape == (0, 4)
