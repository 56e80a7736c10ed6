"""diagnostics.channels on hand-worked inputs: the funnel, payment lateness, region merging, costs."""

from __future__ import annotations

import datetime as dt

import polars as pl

from wattbill.diagnostics.channels import (
    DEFAULT_COST_FEN,
    OTHER_REGIONS,
    ReportParams,
    channel_report,
    merge_regions,
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


def test_merge_regions() -> None:
    cust = pl.DataFrame({"customer_id": [str(i) for i in range(25)],
                         "region": ["big"] * 12 + ["mid"] * 10 + ["x", "y", None]})
    g = dict(merge_regions(cust, 10).iter_rows())
    assert {g["22"], g["23"], g["24"]} == {"mid"}  # 3 left over: too few alone, they join the smallest region
    cust2 = cust.with_columns(pl.when(pl.col("region") == "mid").then(pl.lit("other")).otherwise(pl.col("region"))
                              .alias("region"))
    g2 = merge_regions(cust2, 3)
    assert g2.filter(pl.col("region") == OTHER_REGIONS).height == 3


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
