"""Each label: a household built to have it and one built not to; withheld labels keep a reason."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from wattbill.diagnostics import bills_frame, diagnose
from wattbill.labels import assign_labels, load_catalogue

PEAKY = (0.05, 0.65, 0.22, 0.08)
VALLEY = (0.03, 0.30, 0.15, 0.52)


class _YB:
    def __init__(self, year_fen, tier_cross_day):
        n = len(year_fen)
        self.month_fen = np.zeros((n, 12), np.int64)
        self.month_fen[:, 0] = year_fen
        self.year_fen = np.asarray(year_fen, np.int64)
        self.tier_cross_day = np.asarray(tier_cross_day, np.int64)


def label(hh, houses, bills=None, alternatives=None):
    f = diagnose(hh.daily_frame(houses), None, hh.customers_frame(houses),
                 hh.payments_frame(houses) if any(h.payments for h in houses) else None, bills, alternatives,
                 hh.YEAR)
    return assign_labels(f, load_catalogue())


def codes(assigned: pl.DataFrame, cid: str) -> set[str]:
    return set(assigned.filter(pl.col("customer_id") == cid)["code"])


def reasons(withheld: pl.DataFrame, cid: str) -> dict[str, str]:
    w = withheld.filter(pl.col("customer_id") == cid)
    return dict(zip(w["code"], w["reason"], strict=True))


def usage_pair(hh, code):
    """(household with the label, household without) for the usage labels."""
    base = hh.flat(6000)
    match code:
        case "peak_heavy":
            return hh.House("yes", base, shares=PEAKY), hh.House("no", base)
        case "valley_smart":
            return hh.House("yes", base, shares=VALLEY), hh.House("no", base)
        case "summer_cooling":
            return (hh.House("yes", hh.add_months(base, (7, 8), 5000)),
                    hh.House("no", hh.add_months(base, (7, 8), 1000)))
        case "winter_heating":
            return (hh.House("yes", hh.add_months(base, (12, 1, 2), 4000)),
                    hh.House("no", hh.add_months(base, (12, 1, 2), 800)))
        case "high_baseload":
            return hh.House("yes", hh.flat(12_000)), hh.House("no", hh.flat(6000))
        case "possible_vacancy":
            yes, no = base.copy(), base.copy()
            yes[90:125] = 150
            no[90:100] = 150  # a ten-day trip is no vacancy
            return hh.House("yes", yes), hh.House("no", no)
        case "usage_spike":
            yes = base.copy()
            yes[200] = 45_000
            no = base.copy()
            no[200] = 9000  # a busy day, not a spike
            return hh.House("yes", yes), hh.House("no", no)
    raise AssertionError(code)


USAGE = ["peak_heavy", "valley_smart", "summer_cooling", "winter_heating", "high_baseload", "possible_vacancy",
         "usage_spike"]


@pytest.mark.parametrize("code", USAGE)
def test_usage_label(hh, code):
    yes, no = usage_pair(hh, code)
    filler = [hh.House(f"f{i}", hh.flat(6000)) for i in range(3)]
    assigned, withheld = label(hh, [yes, no, *filler])
    assert code in codes(assigned, "yes")
    assert code not in codes(assigned, "no")
    assert code not in reasons(withheld, "no")
    row = assigned.filter((pl.col("customer_id") == "yes") & (pl.col("code") == code)).row(0, named=True)
    ev = json.loads(row["evidence"])
    assert ev and all(k in ev for k in load_catalogue_by_code()[code].evidence)


def load_catalogue_by_code():
    return {d.code: d for d in load_catalogue()}


@pytest.mark.parametrize("code,delay,channel,other_delay,other_channel", [
    ("late_payer", 30, "app", 10, "app"),
    ("prompt_payer", 2, "app", 8, "app"),
    ("counter_payer", 8, "counter", 8, "app"),
    ("online_payer", 8, "wechat", 8, "counter"),
    ("auto_debit", 0, "bank", 0, "alipay"),
])
def test_payment_label(hh, code, delay, channel, other_delay, other_channel):
    yes = hh.House("yes", hh.flat(6000), payments=hh.pay(delay, channel))
    no = hh.House("no", hh.flat(6000), payments=hh.pay(other_delay, other_channel))
    assigned, withheld = label(hh, [yes, no])
    assert code in codes(assigned, "yes")
    assert code not in codes(assigned, "no") and code not in reasons(withheld, "no")


def test_payment_labels_withheld_with_too_few_bills(hh):
    h = hh.House("few", hh.flat(6000), payments=hh.pay(40, "counter", n=2))
    assigned, withheld = label(hh, [h])
    r = reasons(withheld, "few")
    assert not (codes(assigned, "few") & {"late_payer", "counter_payer"})
    assert r["late_payer"].startswith("fewer than 4") and r["counter_payer"].startswith("fewer than 4")


def test_tier3_household(hh):
    houses = [hh.House("yes", hh.flat(20_000)), hh.House("no", hh.flat(8000))]
    bills = bills_frame(["yes", "no"], hh.TOU, _YB([700_000, 200_000], [[150, 290], [200, -1]]), is_tou=True)
    assigned, withheld = label(hh, houses, bills=bills)
    assert "tier3_household" in codes(assigned, "yes")
    assert "tier3_household" not in codes(assigned, "no") | set(reasons(withheld, "no"))
    ev = json.loads(assigned.filter(pl.col("code") == "tier3_household")["evidence"][0])
    assert ev["tier3_date"] == "2025-10-18" and ev["tier2_date"] == "2025-05-31"


def test_tier3_withheld_without_bill(hh):
    _, withheld = label(hh, [hh.House("a", hh.flat(6000))])
    assert reasons(withheld, "a")["tier3_household"] == "no bill for the year"


def _alts(rows):
    return pl.DataFrame(rows, orient="row", schema={"customer_id": pl.Utf8, "tariff": pl.Utf8, "year_fen": pl.Int64,
                                                    "is_tou": pl.Boolean, "name": pl.Utf8, "name_en": pl.Utf8})


def test_tou_would_save_with_the_saving(hh):
    houses = [hh.House(c, hh.flat(6000), tariff=hh.TIER) for c in ("yes", "no", "dearer")]
    bills = bills_frame(["yes", "no", "dearer"], hh.TIER, _YB([100_000] * 3, [[-1, -1]] * 3), is_tou=False)
    alts = _alts([("yes", hh.TOU, 94_321, True, "峰谷", "TOU"), ("no", hh.TOU, 99_500, True, "峰谷", "TOU"),
                  ("dearer", hh.TOU, 120_000, True, "峰谷", "TOU")])
    assigned, _withheld = label(hh, houses, bills=bills, alternatives=alts)
    row = assigned.filter((pl.col("customer_id") == "yes") & (pl.col("code") == "tou_would_save")).row(0, named=True)
    assert row["saving_fen"] == 5679
    assert "tou_would_save" not in codes(assigned, "no") | codes(assigned, "dearer")
    assert "tier_would_save" not in codes(assigned, "yes")


def test_tou_would_save_withheld_without_tou_registers(hh):
    h = hh.House("a", hh.flat(6000), shares=None, tariff=hh.TIER)
    bills = bills_frame(["a"], hh.TIER, _YB([100_000], [[-1, -1]]), is_tou=False)
    assigned, withheld = label(hh, [h], bills=bills, alternatives=None)
    assert "tou_would_save" not in codes(assigned, "a")
    assert "time-of-use" in reasons(withheld, "a")["tou_would_save"]


def test_tier_would_save(hh):
    houses = [hh.House("yes", hh.flat(6000), shares=PEAKY), hh.House("no", hh.flat(6000))]
    bills = bills_frame(["yes", "no"], hh.TOU, _YB([100_000, 100_000], [[-1, -1]] * 2), is_tou=True)
    alts = _alts([("yes", hh.TIER, 97_000, False, "阶梯", "tiered"), ("no", hh.TIER, 104_000, False, "阶梯", "tiered")])
    assigned, _ = label(hh, houses, bills=bills, alternatives=alts)
    assert "tier_would_save" in codes(assigned, "yes")
    assert "tier_would_save" not in codes(assigned, "no")


def test_tou_labels_withheld_without_registers(hh):
    h = hh.House("a", hh.flat(6000), shares=None, tariff=hh.TIER)
    assigned, withheld = label(hh, [h])
    r = reasons(withheld, "a")
    assert "time-of-use" in r["peak_heavy"] and "time-of-use" in r["valley_smart"]
    assert not codes(assigned, "a") & {"peak_heavy", "valley_smart"}


def test_partial_year_withholds_no_but_keeps_yes(hh):
    opened = dt.date(hh.YEAR, 9, 1)
    quiet = hh.flat(6000)
    away = hh.flat(6000)
    away[250:280] = 100
    houses = [hh.House("quiet", quiet, opened_on=opened), hh.House("away", away, opened_on=opened)]
    assigned, withheld = label(hh, houses)
    assert "possible_vacancy" in codes(assigned, "away")
    assert reasons(withheld, "quiet")["possible_vacancy"].startswith("fewer than 300 days")
    assert "possible_vacancy" not in reasons(withheld, "away")
    # summer is before the opening: undecidable, and said so
    assert reasons(withheld, "quiet")["summer_cooling"] == "no data for summer_excess_wh"


def test_outputs_are_ordered_and_typed(hh):
    houses = [hh.House("b", hh.flat(12_000), shares=PEAKY), hh.House("a", hh.flat(12_000), shares=VALLEY)]
    assigned, withheld = label(hh, houses)
    assert assigned.schema == pl.Schema({"customer_id": pl.Utf8, "code": pl.Utf8, "evidence": pl.Utf8,
                                         "saving_fen": pl.Int64})
    assert withheld.columns == ["customer_id", "code", "reason"]
    assert assigned["customer_id"].to_list() == ["b", "b", "a", "a"]
    assert assigned["code"].to_list() == ["peak_heavy", "high_baseload", "valley_smart", "high_baseload"]


def test_rows_follow_the_features_order_then_the_catalogue(hh):
    """Assigned and withheld rows come household by household in the order of ``features`` and, within a
    household, in catalogue order, whatever the order of the rows: each household's rows are the same
    (with their evidence and reasons) when the features are reversed."""
    houses = [hh.House("b", hh.flat(12_000), shares=PEAKY), hh.House("a", hh.flat(12_000), shares=VALLEY),
              hh.House("c", hh.flat(3_000)), hh.House("d", hh.flat(30_000), shares=PEAKY)]
    f = diagnose(hh.daily_frame(houses), None, hh.customers_frame(houses), None, None, None, hh.YEAR)
    cat = load_catalogue()
    rank = {d.code: k for k, d in enumerate(cat)}
    for frame in (f, f.reverse()):
        position = {c: i for i, c in enumerate(frame["customer_id"].to_list())}
        for out in assign_labels(frame, cat):
            keys = [(position[c], rank[k]) for c, k in zip(out["customer_id"], out["code"], strict=True)]
            assert keys == sorted(keys) and len(set(keys)) == len(keys)
    forward, backward = assign_labels(f, cat), assign_labels(f.reverse(), cat)
    for a, b in zip(forward, backward, strict=True):
        assert a.height and a.sort("customer_id", "code").equals(b.sort("customer_id", "code"))


def test_empty_features():
    from wattbill.diagnostics import FEATURES

    a, w = assign_labels(pl.DataFrame(schema=FEATURES))
    assert a.height == 0 and w.height == 0


def test_usage_labels_withheld_when_most_days_are_estimated(hh):
    h = hh.House("est", hh.flat(12_000), shares=PEAKY, estimated_days=tuple(range(200)))
    ok = hh.House("ok", hh.flat(12_000), shares=PEAKY, estimated_days=tuple(range(100)))
    assigned, withheld = label(hh, [h, ok])
    assert not codes(assigned, "est") & {"peak_heavy", "high_baseload"}
    assert reasons(withheld, "est")["high_baseload"] == "more than half of the days were estimated"
    assert {"peak_heavy", "high_baseload"} <= codes(assigned, "ok")


def test_household_without_reads_is_withheld_for_lack_of_reads(hh):
    h = hh.House("none", np.full(365, -1))
    assigned, withheld = label(hh, [h])
    r = reasons(withheld, "none")
    assert codes(assigned, "none") == set()
    for code in ("summer_cooling", "winter_heating", "high_baseload", "possible_vacancy", "usage_spike"):
        assert r[code].startswith("fewer than"), (code, r[code])
