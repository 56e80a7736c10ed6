"""diagnostics.channels on hand-worked inputs: the funnel, payment lateness, region merging, costs."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from wattbill.diagnostics.channels import (
    DEFAULT_COST_FEN,
    MERGED,
    OTHER_REGIONS,
    ReportParams,
    channel_report,
    merge_small,
    plan_regions,
)
from wattbill.ingest.schemas import INTERACTION_SCHEMA

D, T = dt.date, dt.datetime


def _one(cid: str, when: dt.datetime, ch: str, intent: str, ok: bool, esc: str | None = None) -> tuple:
    return (cid, when, ch, intent, ok, esc, 60, None)


def test_funnel_and_complaints_by_hand() -> None:
    rows = [
        _one("a", T(2025, 1, 1, 9), "app", "bill_query", True),
        _one("a", T(2025, 1, 2, 9), "wechat", "payment", False, "robot"),
        _one("a", T(2025, 1, 3, 9), "robot", "payment", False, "phone"),
        _one("a", T(2025, 1, 4, 9), "phone", "payment", True),
        _one("b", T(2025, 2, 1, 9), "phone", "complaint", False, "hall"),
        _one("b", T(2025, 2, 2, 9), "hall", "complaint", True),
        _one("b", T(2024, 2, 2, 9), "hall", "complaint", True),  # last year: not in the funnel
    ]
    inter = pl.DataFrame(rows, schema=INTERACTION_SCHEMA, orient="row")
    cust = pl.DataFrame({"customer_id": ["a", "b"], "region": ["r", "r"]})
    rep = channel_report(inter, cust, None, None, None, None, 2025, params=ReportParams(min_group=1))
    f = {r["stage"]: r for r in rep.tables["funnel"].iter_rows(named=True)}
    assert list(f) == ["self_service", "robot", "phone", "person"]  # funnel order
    assert (f["self_service"]["contacts"], f["self_service"]["resolved"], f["self_service"]["escalated"]) == (2, 1, 1)
    assert (f["phone"]["contacts"], f["phone"]["resolved"], f["phone"]["escalated"]) == (2, 1, 1)
    assert f["person"]["share_of_needs"] == 1 / 6 and f["robot"]["resolved_share"] == 0.0
    c = {r["stage"]: r["complaints"] for r in rep.tables["complaints"].iter_rows(named=True)}
    assert c == {"phone": 1, "person": 1}
    assert rep.headline["contacts"] == 6 and rep.headline["contacts_last_year"] == 1
    assert rep.headline["online_share"] == 3 / 6


def test_payment_lateness_follows_the_payment_features_rule() -> None:
    inter = pl.DataFrame([_one("a", T(2025, 1, 1, 9), "app", "payment", True)], schema=INTERACTION_SCHEMA,
                         orient="row")
    pay = pl.DataFrame({
        "customer_id": ["a"] * 4, "bill_month": ["2025-01", "2025-02", "2025-11", "2025-12"],
        "issued_on": [D(2025, 2, 1), D(2025, 3, 1), D(2025, 12, 1), D(2025, 12, 28)],
        "paid_on": [D(2025, 2, 3), D(2025, 3, 30), None, None], "amount_fen": [1, 1, 1, 1], "channel": ["app"] * 4})
    rep = channel_report(inter, pl.DataFrame({"customer_id": ["a"], "region": ["r"]}), pay, None, None, None, 2025,
                         params=ReportParams(min_group=1))
    row = rep.tables["payment_mix"].row(0, named=True)
    # delays 2 and 29 days; unpaid from Dec 1 is late by Dec 31, unpaid from Dec 28 is not known yet
    assert (row["payments"], row["delay_days_mean"], row["late_share"]) == (4, 15.5, 2 / 3)


def _monthly(customers: dict[str, str], years: tuple[int, ...] = (2024, 2025), skip: set[tuple[str, int]] = frozenset(),
             channel=lambda cid, y, m: "app") -> pl.DataFrame:
    """One contact a month for every customer in ``years``, except (customer, year) in ``skip``."""
    rows = [_one(cid, T(y, m, 5, 9), channel(cid, y, m), "bill_query", True)
            for cid in customers for y in years for m in range(1, 13) if (cid, y) not in skip]
    return pl.DataFrame(rows, schema=INTERACTION_SCHEMA, orient="row")


def _customers(sizes: dict[str, int]) -> dict[str, str]:
    return {f"{r}{i:03d}": r for r, n in sizes.items() for i in range(n)}


def test_small_regions_become_one_other_regions_group() -> None:
    cust = _customers({"杭州": 30, "宁波": 12, "绍兴": 8, "湖州": 3})
    frame = pl.DataFrame({"customer_id": list(cust), "region": list(cust.values())})
    g = dict(plan_regions(frame, _monthly(cust), 2025, 10).select("customer_id", "region").iter_rows())
    # 绍兴 and 湖州 are below 10: one "other regions" group of 11, never folded into 宁波 or 杭州
    assert {g[c] for c, r in cust.items() if r in ("绍兴", "湖州")} == {OTHER_REGIONS}
    assert {g[c] for c, r in cust.items() if r == "宁波"} == {"宁波"}
    assert {g[c] for c, r in cust.items() if r == "杭州"} == {"杭州"}
    # 湖州 alone is too small for its own group: the smallest named region (宁波) joins it, not the reverse
    cust2 = _customers({"杭州": 30, "宁波": 12, "湖州": 3})
    frame2 = pl.DataFrame({"customer_id": list(cust2), "region": list(cust2.values())})
    g2 = dict(plan_regions(frame2, _monthly(cust2), 2025, 10).select("customer_id", "region").iter_rows())
    assert {g2[c] for c, r in cust2.items() if r in ("湖州", "宁波")} == {OTHER_REGIONS}
    assert {g2[c] for c, r in cust2.items() if r == "杭州"} == {"杭州"}


def test_a_region_small_in_one_year_or_one_month_is_merged() -> None:
    cust = _customers({"杭州": 30, "宁波": 30, "嘉兴": 15, "温州": 15})
    frame = pl.DataFrame({"customer_id": list(cust), "region": list(cust.values())})
    skip = {(c, 2024) for i, (c, r) in enumerate(cust.items()) if r == "嘉兴" and i % 15 < 8}  # 7 last year
    inter = _monthly(cust, skip=skip)
    # 温州: in March of the report year only 6 of its 15 households made contact
    inter = inter.filter(~((pl.col("customer_id").str.starts_with("温州")) & (pl.col("occurred_at").dt.year() == 2025)
                           & (pl.col("occurred_at").dt.month() == 3) & (pl.col("customer_id").str.slice(2).cast(pl.Int32) >= 6)))
    g = dict(plan_regions(frame, inter, 2025, 10).select("customer_id", "region").iter_rows())
    assert {g[c] for c, r in cust.items() if r in ("嘉兴", "温州")} == {OTHER_REGIONS}
    assert {g[c] for c, r in cust.items() if r in ("杭州", "宁波")} == {"杭州", "宁波"}


def test_merge_small_decides_once_for_every_period() -> None:
    """A channel small in one month only is merged in every month and both years (the trend compares
    like with like); the merged value too small takes the smallest kept value with it."""
    rows = pl.DataFrame({
        "_hh": list(range(20)) * 3 + list(range(4)) + list(range(12)) * 2,
        "region": ["r"] * 88,
        "channel": ["app"] * 60 + ["social"] * 4 + ["hall"] * 24,
        "_period": [0] * 20 + [1] * 20 + [2] * 20 + [1] * 4 + [0] * 12 + [1] * 12,
    })
    plan = dict(merge_small(rows, "channel", 10, within=["region"], period="_period")
                .select("channel", "_to").iter_rows())
    # hall is absent in period 2 (small there): merged; social (4) merged; the merged value has 12 + 4
    # households at most 12 >= 10 in each period where it is not empty... period 2 is empty: kept as is
    assert plan == {"app": "app", "social": MERGED, "hall": MERGED}
    rows2 = rows.filter(pl.col("channel") != "hall")  # social alone (4 households) is too small
    plan2 = dict(merge_small(rows2, "channel", 10, within=["region"], period="_period")
                 .select("channel", "_to").iter_rows())
    assert plan2 == {"app": MERGED, "social": MERGED}


def test_no_cell_can_be_had_by_subtraction() -> None:
    """Every contact of a named region is in a shown cell: region totals minus cells leave nothing."""
    cust = _customers({"杭州": 30, "宁波": 25})
    frame = pl.DataFrame({"customer_id": list(cust), "region": list(cust.values())})
    # one household of 杭州 uses the hall in March only; three of 宁波 use the robot all year
    def ch(c: str, y: int, m: int) -> str:
        return "hall" if c == "杭州000" and m == 3 else "robot" if c in ("宁波000", "宁波001", "宁波002") else "app"

    inter = _monthly(cust, channel=ch)
    rep = channel_report(inter, frame, None, None, None, None, 2025, params=ReportParams(min_group=10))
    for name in ("mix_month", "mix_trend", "mix_month_total", "intent_channel", "funnel"):
        t = rep.tables[name]
        assert t["households"].min() >= 10, name
        assert t["contacts"].sum() == inter.filter(pl.col("occurred_at").dt.year() == 2025).height, name
    assert not rep.suppressed
    trend = rep.tables["mix_trend"]
    assert trend["contacts_last_year"].sum() == inter.filter(pl.col("occurred_at").dt.year() == 2024).height
    assert "hall" not in trend["channel"] and "robot" not in trend["channel"]


def test_costs_are_whole_fen_and_campaign_saving() -> None:
    assert all(isinstance(v, int) and v > 0 for v in DEFAULT_COST_FEN.values())
    rows = [_one("h", T(2025, m, 1, 9), "hall", "bill_query", True) for m in range(1, 5)]
    inter = pl.DataFrame(rows, schema=INTERACTION_SCHEMA, orient="row")
    cust = pl.DataFrame({"customer_id": ["h"], "region": ["r"]})
    labels = pl.DataFrame({"customer_id": ["h"], "code": ["channel_hall_only"]})
    rep = channel_report(inter, cust, None, None, labels, None, 2025,
                         params=ReportParams(min_group=1, cost_fen={**DEFAULT_COST_FEN, "hall": 3000, "app": 10}))
    row = rep.campaign.row(0, named=True)
    assert (row["segment"], row["suggested_channel"], row["contacts_moved"], row["cost_saved_fen"]) == (
        "channel_hall_only", "app", 4, 4 * (3000 - 10))
    # one household: with the default minimum the totals would single it out
    assert channel_report(inter, cust, None, None, labels, None, 2025).headline["cost_saved_fen"] is None


@pytest.mark.parametrize("others", [
    ["", "  ", None] * 3 + ["宁波"],  # blank: in the other regions, not a group without a name
    ["其他地区"] * 6 + ["Other Regions", " 其它地区 ", "宁波", ""],  # named like the group: that group, not a second row
])
def test_blank_regions_and_regions_named_like_the_group_are_the_other_regions(others) -> None:
    from wattbill.diagnostics.channels import OTHER_REGIONS, plan_regions

    customers = pl.DataFrame({"customer_id": [str(i) for i in range(30)], "region": ["杭州"] * 20 + others})
    contacts = pl.DataFrame({"customer_id": [str(i) for i in range(30) for _ in range(24)],
                             "occurred_at": [dt.datetime(2024 + m // 12, m % 12 + 1, 5) for _ in range(30)
                                             for m in range(24)]})
    plan = plan_regions(customers, contacts, 2025, 5)
    assert set(plan["region"].to_list()) == {"杭州", OTHER_REGIONS}
    assert plan.filter(pl.col("region") == OTHER_REGIONS).height == 10
