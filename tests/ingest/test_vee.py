"""VEE cases, each on a small committed fixture in tests/fixtures/ingest/."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from wattbill.ingest import ingest_file
from wattbill.ingest.readers import read_raw
from wattbill.ingest.vee import (
    VeeResult,
    consumption_to_daily,
    customers_frame,
    payments_frame,
    registers_to_daily,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"
TODAY = dt.date(2025, 6, 1)
D = dt.date


def run(name: str, kind: str = "registers") -> VeeResult:
    fn = {
        "registers": registers_to_daily,
        "consumption": consumption_to_daily,
        "customers": customers_frame,
        "payments": payments_frame,
    }[kind]
    res = fn(read_raw(FIX / name, kind), today=TODAY)
    assert res.rows == res.loaded + res.quarantined + res.duplicates
    if kind in ("registers", "consumption"):
        res.frame = res.frame.sort("customer_id", "meter_id", "day")
    return res


def codes(res: VeeResult) -> list[str]:
    return sorted(res.findings["code"].to_list())


def evidence(res: VeeResult, code: str) -> dict:
    return json.loads(res.findings.filter(pl.col("code") == code)["evidence"][0])


def test_identical_duplicates_count_once_conflicting_are_quarantined() -> None:
    r = run("duplicates.csv")
    assert (r.rows, r.loaded, r.quarantined, r.duplicates) == (7, 3, 2, 2)
    assert r.quarantine["row"].to_list() == [5, 6]
    assert set(r.quarantine["code"]) == {"conflicting_duplicate"}
    # the conflicting day becomes a gap, estimated from its neighbours
    assert r.frame["day"].to_list() == [D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 4)]
    assert r.frame["estimated"].to_list() == [False, True, True]
    assert r.frame["wh_total"].sum() == 30_000


def test_gap_is_estimated_and_keeps_the_register_difference() -> None:
    r = run("gap.csv")
    gap = r.frame.filter(pl.col("estimated"))
    assert gap["day"].to_list() == [D(2024, 3, d) for d in (3, 4, 5, 6)]
    # register difference across the gap 2024-03-02 -> 2024-03-06 is 10.01 kWh, flat 4.01 kWh
    assert gap["wh_total"].sum() == 10_010
    assert gap["wh_flat"].sum() == 4_010
    assert gap["wh_total"].to_list() == [2503, 2503, 2502, 2502]  # remainder to the first days
    periods = gap.select(pl.sum_horizontal("wh_sharp", "wh_peak", "wh_flat", "wh_valley"))
    assert periods.to_series().to_list() == gap["wh_total"].to_list()
    assert r.estimated == 4
    assert evidence(r, "gap_estimated") == {
        "from": "2024-03-02",
        "to": "2024-03-06",
        "days": 4,
        "total_wh": 10_010,
        # the two reads as read, for a late file of the gap's days to continue from
        "from_total_wh": 1_010_000, "from_sharp_wh": 101_000, "from_peak_wh": 303_000,
        "from_flat_wh": 404_000, "from_valley_wh": 202_000,
        "to_total_wh": 1_020_010, "to_sharp_wh": 102_000, "to_peak_wh": 306_000,
        "to_flat_wh": 408_010, "to_valley_wh": 204_000,
        "multiplier": 1.0, "digits": None,
    }
    assert r.frame.filter(~pl.col("estimated"))["wh_total"].to_list() == [10_000, 10_000]


def test_rollover_inferred_and_explicit_digits() -> None:
    r = run("rollover.csv")
    assert r.frame.filter(pl.col("customer_id") == "0003")["wh_total"].to_list() == [15_500, 6_500]
    # 99,980 -> 3.00 -> 15.00 with digits = 5: wrapped, and confirmed by the read after it
    assert r.frame.filter(pl.col("customer_id") == "0004")["wh_total"].to_list() == [23_000, 12_000]
    assert codes(r) == ["rollover", "rollover"]
    assert r.quarantined == 0


def test_meter_exchange() -> None:
    r = run("meter_exchange.csv")
    per_day = r.frame.group_by("customer_id", "day").agg(pl.col("wh_total").sum()).sort("customer_id", "day")
    c5 = per_day.filter(pl.col("customer_id") == "0005")
    # exchange day 06-03: 4 kWh on the old meter; the new meter's first read (6.00) is where it
    # starts, not use: it anchors, and 06-04 is 16.00 - 6.00
    assert c5["wh_total"].to_list() == [10_000, 4_000, 10_000]
    c6 = per_day.filter(pl.col("customer_id") == "0006")
    # no read of the old meter on the exchange day: 06-03 is estimated (mean of the measured days
    # around it) and flagged; the new meter's 12,345 kWh only anchors
    assert c6["day"].to_list() == [D(2024, 6, 2), D(2024, 6, 3), D(2024, 6, 4)]
    assert c6["wh_total"].to_list() == [10_000, 10_000, 10_000]
    est = r.frame.filter(pl.col("customer_id") == "0006", pl.col("day") == D(2024, 6, 3))
    assert est["estimated"].to_list() == [True] and est["meter_id"].to_list() == ["NEW6"]
    assert evidence(r, "exchange_estimated") == {
        "from": "2024-06-03", "to": "2024-06-03", "days": 1, "wh_per_day": 10_000, "basis_days": 2,
    }
    ex = r.findings.filter(pl.col("code") == "meter_exchange").sort("customer_id")
    assert ex["customer_id"].to_list() == ["0005", "0006"]
    e5, e6 = (json.loads(x) for x in ex["evidence"])
    assert e5["old_meter"] == "OLD5" and e5["new_meter"] == "NEW5" and e5["days_without_reads"] == 0
    assert e5["old_last_total_wh"] == 5_014_000 and e5["new_first_total_wh"] == 6_000
    assert e6["days_without_reads"] == 1


def test_negative_consumption_glitch_and_reset() -> None:
    r = run("negative.csv")
    # 0007: 50.00 between 510 and 530 is a bad read: quarantined, its days estimated
    assert r.quarantine["row"].to_list() == [3]
    assert r.quarantine["code"].to_list() == ["negative_consumption"]
    c7 = r.frame.filter(pl.col("customer_id") == "0007")
    assert c7["wh_total"].to_list() == [10_000, 10_000, 10_000, 10_000]
    assert c7["estimated"].to_list() == [False, True, True, False]
    # 0008: the register stays low: re-anchored, the reset day has no consumption
    c8 = r.frame.filter(pl.col("customer_id") == "0008")
    assert c8["day"].to_list() == [D(2024, 7, 2), D(2024, 7, 4), D(2024, 7, 5)]
    assert "register_reset" in codes(r)
    assert (r.frame["wh_total"] >= 0).all()


def test_spike_is_flagged_not_changed() -> None:
    r = run("spike.csv")
    assert codes(r) == ["spike"]
    sp = r.findings.row(0, named=True)
    assert sp["day"] == D(2024, 8, 17)
    assert json.loads(sp["evidence"])["ratio"] == 10.0
    assert r.frame.filter(pl.col("day") == D(2024, 8, 17))["wh_total"].to_list() == [100_000]


def test_periods_adjusted_within_tolerance_scaled_beyond() -> None:
    r = run("periods.csv")
    d2, d3 = r.frame.iter_rows(named=True)
    # 20 Wh of register rounding: the largest period (flat) absorbs it silently
    assert (d2["wh_sharp"], d2["wh_peak"], d2["wh_flat"], d2["wh_valley"]) == (1000, 3000, 4000, 2000)
    # 5 kWh of periods for 10 kWh total: scaled to the total (total is authoritative), with a finding
    assert (d3["wh_sharp"], d3["wh_peak"], d3["wh_flat"], d3["wh_valley"]) == (2000, 6000, 0, 2000)
    assert d3["wh_total"] == 10_000
    assert codes(r) == ["periods_mismatch"]
    assert evidence(r, "periods_mismatch")["periods_sum_wh"] == 5_000


def test_bad_values_never_read_as_zero() -> None:
    r = run("bad_values.csv")
    got = {(row, col, code) for row, col, code in r.quarantine.select("row", "column", "code").iter_rows()}
    assert got == {
        (2, "read_date", "impossible_date"),
        (3, "total", "non_numeric"),
        (4, "total", "missing_value"),
        (5, "total", "negative_value"),
        (6, "customer_id", "missing_value"),
        (7, "flat", "missing_value"),
        (8, "read_date", "implausible_date"),
        (10, "total", "non_numeric"),  # "nan" is not a number either
    }
    assert (r.rows, r.loaded, r.quarantined) == (10, 2, 8)
    # the two good reads (02-28 -> 03-05) bound an estimated gap: 50 kWh over 6 days, nothing read as 0
    assert r.frame["wh_total"].sum() == 50_000
    assert r.frame["estimated"].all()
    assert (r.frame["wh_total"] > 0).all()


def test_multiplier() -> None:
    r = run("multiplier.csv")
    assert r.frame["wh_total"].to_list() == [15_000, 22_500]


def test_chinese_headers_bom_crlf_leading_zeros() -> None:
    r = run("chinese_bom_crlf.csv")
    row = r.frame.row(0, named=True)
    assert row["customer_id"] == "0000123" and row["meter_id"] == "00456"
    assert row["wh_total"] == 10_000 and row["wh_valley"] == 2_000


def test_consumption_reads() -> None:
    r = run("consumption.csv", "consumption")
    assert r.quarantine.select("row", "code").rows() == [(3, "non_numeric")]
    assert r.frame["wh_total"].to_list() == [10_000, 11_000, 12_000]
    assert r.frame["estimated"].to_list() == [False, True, False]
    assert r.estimated == 1


def test_customers() -> None:
    r = run("customers.csv", "customers")
    assert (r.rows, r.loaded, r.quarantined, r.duplicates) == (6, 2, 3, 1)
    c = r.frame.row(0, named=True)
    assert c["address"] == "杭州市, 西湖区" and c["household_size"] == 3
    c2 = r.frame.row(1, named=True)
    assert c2["household_size"] == 1 and c2["language"] == "zh"  # defaults
    assert r.quarantine["code"].to_list() == ["missing_value", "bad_value", "bad_value"]


def test_payments_amounts_exact_in_fen() -> None:
    r = run("payments.csv", "payments")
    assert r.frame["amount_fen"].to_list() == [12_345, 50, -320]
    assert r.frame["paid_on"].to_list()[1] is None
    assert r.quarantine.select("row", "column").rows() == [(3, "bill_month"), (4, "amount"), (5, "channel")]


@pytest.mark.parametrize(
    "name,kind",
    [
        ("duplicates.csv", "registers"),
        ("gap.csv", "registers"),
        ("rollover.csv", "registers"),
        ("meter_exchange.csv", "registers"),
        ("negative.csv", "registers"),
        ("spike.csv", "registers"),
        ("periods.csv", "registers"),
        ("bad_values.csv", "registers"),
        ("multiplier.csv", "registers"),
        ("chinese_bom_crlf.csv", "registers"),
        ("consumption.csv", "consumption"),
        ("customers.csv", "customers"),
        ("payments.csv", "payments"),
    ],
)
def test_every_fixture_accounts_for_all_rows_and_survives_the_store(
    name: str, kind: str, tmp_path: Path
) -> None:
    from wattbill.store import open_store

    st = open_store(tmp_path / "store")
    rep = ingest_file(FIX / name, kind, st, today=TODAY)
    assert rep.rows == rep.loaded + rep.quarantined + rep.duplicates
    assert st.load_quarantine(rep.sha256).height == rep.quarantined
    if kind in ("registers", "consumption"):
        years = {2024}
        stored = pl.concat([st.load_daily(y) for y in years])
        assert int(stored["estimated"].sum()) == rep.estimated  # estimated flags survive into the store
    again = ingest_file(FIX / name, kind, st, today=TODAY)
    assert again.already_loaded
    assert st.load_ledger().height == 1
