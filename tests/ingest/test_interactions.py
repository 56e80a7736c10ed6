"""Service interactions: every row loaded, quarantined with a reason, or counted as a duplicate."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from wattbill.cli import main
from wattbill.ingest import ingest_file
from wattbill.ingest.errors import MissingColumnsError
from wattbill.ingest.schemas import INTERACTION_SCHEMA
from wattbill.store import open_store

FIX = Path(__file__).parents[1] / "fixtures" / "ingest"
TODAY = dt.date(2026, 1, 31)

#: data row -> (column, code) of every bad row of interactions_messy.csv
EXPECTED = {
    5: ("occurred_at", "impossible_date"),
    6: ("occurred_at", "implausible_date"),
    7: ("channel", "bad_value"),
    8: ("intent", "bad_value"),
    9: ("resolved", "bad_value"),
    10: ("escalated_to", "bad_value"),
    11: ("handle_seconds", "non_numeric"),
    12: ("handle_seconds", "negative_value"),
    13: ("satisfaction", "bad_value"),
    14: ("satisfaction", "bad_value"),
    15: ("customer_id", "missing_value"),
    16: ("occurred_at", "missing_value"),
    17: ("channel", "missing_value"),
    18: ("intent", "missing_value"),
    19: ("resolved", "missing_value"),
    20: (None, "conflicting_duplicate"),
    21: (None, "conflicting_duplicate"),
}


def test_messy_file_every_row_accounted_for(tmp_path: Path) -> None:
    st = open_store(tmp_path / "store")
    rep = ingest_file(FIX / "interactions_messy.csv", "interactions", st, today=TODAY)
    assert rep.rows == 22 == rep.loaded + rep.quarantined + rep.duplicates
    assert (rep.loaded, rep.quarantined, rep.duplicates) == (4, 17, 1)  # row 2 repeats row 1 (PHONE, TRUE)
    q = st.load_quarantine(rep.sha256)
    assert {r: (c, k) for r, c, k in q.select("row", "column", "code").iter_rows()} == EXPECTED
    assert q["raw"].str.contains("pigeon").any()  # the row as read is kept
    got = st.load_interactions(2025)
    assert dict(got.schema) == INTERACTION_SCHEMA
    rows = {(r["customer_id"], r["occurred_at"]): r for r in got.iter_rows(named=True)}
    complaint = rows[("0001", dt.datetime(2025, 1, 6, 10, 15))]
    # exported names are codes: 95598 -> phone, 投诉 -> complaint, 营业厅 -> hall; 否 -> false
    assert (complaint["channel"], complaint["intent"], complaint["resolved"], complaint["escalated_to"]) == (
        "phone", "complaint", False, "hall")
    assert complaint["satisfaction"] is None  # missing stays missing, never zero
    assert rows[("0002", dt.datetime(2025, 2, 1, 8))]["resolved"] is True  # 2025/02/01 and "1" read
    day_only = rows[("0005", dt.datetime(2025, 3, 2))]  # a date alone is midnight
    assert (day_only["handle_seconds"], day_only["resolved"]) == (None, True)
    st.close()


def test_parquet_typed_columns(tmp_path: Path) -> None:
    f = tmp_path / "contacts.parquet"
    pl.DataFrame({
        "customer_id": ["0001", "0001"],
        "occurred_at": [dt.datetime(2025, 5, 1, 8, 0), dt.datetime(2025, 5, 2, 8, 0)],
        "channel": ["robot", "app"], "intent": ["outage", "bill_query"], "resolved": [False, True],
        "escalated_to": ["phone", None], "handle_seconds": [120, None], "satisfaction": [3, 9],
    }).write_parquet(f)
    rep = ingest_file(f, "interactions", None, today=TODAY)
    assert (rep.rows, rep.loaded, rep.quarantined) == (2, 1, 1)
    assert rep.quarantine_by_code == {"bad_value": 1}


def test_missing_required_column_is_one_line_error(tmp_path: Path) -> None:
    f = tmp_path / "contacts.csv"
    f.write_text("户号,时间,渠道,是否解决\n0001,2025-01-01 08:00,app,true\n", encoding="utf-8")
    with pytest.raises(MissingColumnsError) as e:
        ingest_file(f, "interactions", None)
    assert "intent" in str(e.value) and "\n" not in str(e.value)


def test_cli_json_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    assert main(["ingest", "interactions", str(FIX / "interactions_messy.csv"), "--store", str(store), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert out["rows"] == out["loaded"] + out["quarantined"] + out["duplicates"] == 22
    assert out["file"].endswith("interactions_messy.csv")


OFFSETS = (
    "户号,时间,渠道,诉求类型,是否解决\n"
    "0001,2025-03-01T09:00:00+08:00,app,bill_query,true\n"      # local time written with its offset
    "0001,2025-03-01T01:30:00Z,phone,bill_query,true\n"         # UTC: 09:30 in Shanghai
    "0001,2025-03-01 09:45+0800,hall,payment,true\n"            # the offset without a colon
    "0001,2025-03-01T02:00:00.250-05:00,wechat,payment,true\n"  # New York: 15:00 in Shanghai
    "0002,2025-12-31T20:00:00-05:00,robot,outage,false\n"       # the next day (and year) in Shanghai
    "0002,2025-03-01T09:00:00+25:00,app,payment,true\n"         # no such offset
    "0002,2025-02-30T09:00:00+08:00,app,payment,true\n"         # no such day
    "0001,2025-03-01 09:00:00,app,bill_query,true\n"            # the first row again, without its offset
    "0002,2025-03-01T03:00:00+01,app,bill_query,true\n"          # ISO 8601's hour-only offset: 10:00 here
)


def test_iso_offsets_become_local_time(tmp_path: Path) -> None:
    f = tmp_path / "offsets.csv"
    f.write_text(OFFSETS, encoding="utf-8")
    st = open_store(tmp_path / "store")
    rep = ingest_file(f, "interactions", st, today=TODAY)
    assert (rep.rows, rep.loaded, rep.quarantined, rep.duplicates) == (9, 6, 2, 1)
    assert rep.quarantine_by_code == {"impossible_date": 2}
    got = {(r["customer_id"], r["channel"]): r["occurred_at"]
           for r in pl.concat([st.load_interactions(2025), st.load_interactions(2026)]).iter_rows(named=True)}
    st.close()
    T = dt.datetime
    assert got == {("0001", "app"): T(2025, 3, 1, 9, 0), ("0001", "phone"): T(2025, 3, 1, 9, 30),
                   ("0001", "hall"): T(2025, 3, 1, 9, 45), ("0001", "wechat"): T(2025, 3, 1, 15, 0),
                   ("0002", "robot"): T(2026, 1, 1, 9, 0), ("0002", "app"): T(2025, 3, 1, 10, 0)}
    # a typed time with a time zone is converted the same way
    p = tmp_path / "tz.parquet"
    pl.DataFrame({"customer_id": ["0003"], "occurred_at": [T(2025, 6, 1, 1, 0)], "channel": ["app"],
                  "intent": ["payment"], "resolved": [True]}).with_columns(
        pl.col("occurred_at").dt.replace_time_zone("UTC")).write_parquet(p)
    st = open_store(tmp_path / "store2")
    ingest_file(p, "interactions", st, today=TODAY)
    assert st.load_interactions(2025)["occurred_at"].to_list() == [T(2025, 6, 1, 9, 0)]
    st.close()


def _unknown_customer_contacts(st, tmp_path: Path) -> None:
    """Contacts of an account not in the customers file are loaded, as reads of unknown customers
    are (files may come in any order: design.md keeps every row), and kept out of every figure of
    the channel report: they count only in its data quality, under unknown accounts."""
    from wattbill.diagnostics.channels import ReportParams
    from wattbill.report_channels import compute

    cust = tmp_path / "customers.csv"
    cust.write_text("customer_id,tariff,region\n0001,cn-zhejiang-res-tou,杭州\n0002,cn-zhejiang-res-tou,杭州\n",
                    encoding="utf-8")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "customer_id,occurred_at,channel,intent,resolved\n"
        "0001,2025-03-01T09:00:00+08:00,app,bill_query,true\n"
        "0002,2025-03-02 09:00,hall,payment,true\n"
        "9999,2025-03-03 09:00,phone,complaint,false\n"
        "9999,2025-03-04 09:00,phone,complaint,false\n", encoding="utf-8")
    ingest_file(cust, "customers", st, today=TODAY)
    rep = ingest_file(contacts, "interactions", st, today=TODAY)
    assert (rep.rows, rep.loaded, rep.quarantined) == (4, 4, 0)
    assert st.load_interactions(2025).filter(pl.col("customer_id") == "9999").height == 2
    figures, _ = compute(st, 2025, None, ReportParams(min_group=1))
    assert figures.headline["contacts"] == 2 and figures.headline["households"] == 2
    assert figures.tables["funnel"]["contacts"].sum() == 2
    assert "phone" not in figures.tables["intent_channel"]["channel"].to_list()
    q = figures.tables["quality_by_region"]
    assert dict(q.select("region", "contacts").iter_rows()) == {"杭州": 2, "unknown": 2}


def test_unknown_customer_contacts_embedded_store(tmp_path: Path) -> None:
    st = open_store(tmp_path / "store")
    try:
        _unknown_customer_contacts(st, tmp_path)
    finally:
        st.close()


@pytest.mark.db
def test_unknown_customer_contacts_timescale(pg_store_url: str, tmp_path: Path) -> None:
    st = open_store(pg_store_url)
    try:
        _unknown_customer_contacts(st, tmp_path)
    finally:
        st.close()
