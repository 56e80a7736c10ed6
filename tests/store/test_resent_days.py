"""Re-sent and late days cost the file, and count as what they are (issue #14), on both stores.

- A daily consumption file sent again (whole, or inside a later file) counts its rows identical to
  stored days as duplicates, not as loaded; a corrected day is loaded (upserted); the ledger's
  ``rows = loaded + quarantined + duplicates`` holds.
- A register load asks the store for its own customers' reads only (``load_register_state(ids)``):
  the meters not in a daily file keep their stored reads, and their next file continues from them.
- ``Store.load_daily_between``: the stored rows of some customers over some days, across years.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from wattbill.ingest import ingest_file
from wattbill.ingest.schemas import DAILY_SCHEMA, IngestBatch

D = dt.date
HEAD = "customer_id,meter_id,read_date,kwh_total,kwh_peak,kwh_valley\n"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text(HEAD + "".join(f"{x}\n" for x in lines), encoding="utf-8")
    return path


def _counts(rep) -> tuple[int, int, int, int]:
    assert rep.rows == rep.loaded + rep.quarantined + rep.duplicates
    return rep.rows, rep.loaded, rep.quarantined, rep.duplicates


def _ledger_adds_up(store) -> None:
    led = store.load_ledger()
    assert (led["rows"] == led["loaded"] + led["quarantined"] + led["duplicates"]).all()


def test_a_resent_consumption_day_is_a_duplicate_a_corrected_one_is_loaded(store, tmp_path: Path) -> None:
    first = _write(tmp_path / "d1.csv", [
        "0001,M1,2025-03-01,10.50,6.00,4.50",
        "0001,M1,2025-03-02,9.25,5.25,4.00",
        "0002,M2,2025-03-01,3.00,,",
        "0002,M2,2025-03-02,4.00,,",
    ])
    assert _counts(ingest_file(first, "consumption", store)) == (4, 4, 0, 0)
    # the same days sent again in a later file (another file: other bytes), one of them corrected, one new
    again = _write(tmp_path / "d2.csv", [
        "0002,M2,2025-03-01,3.00,,",          # identical: a duplicate
        "0001,M1,2025-03-01,10.50,6.00,4.50",  # identical: a duplicate
        "0001,M1,2025-03-02,9.75,5.75,4.00",   # corrected: loaded
        "0002,M2,2025-03-02,4.00,,",          # identical: a duplicate
        "0002,M2,2025-03-03,5.00,,",          # new: loaded
        "0002,M2,2025-03-03,5.00,,",          # repeated within the file: a duplicate
        "0003,M3,2025-03-01,-1.00,,",         # negative: quarantined
    ])
    rep = ingest_file(again, "consumption", store)
    assert _counts(rep) == (7, 2, 1, 4)
    d = store.load_daily(2025).sort("customer_id", "day")
    assert d.height == 5
    assert d.filter((pl.col("customer_id") == "0001") & (pl.col("day") == D(2025, 3, 2)))["wh_total"].item() == 9750
    # the whole file once more under another name: every row a duplicate, nothing loaded
    thrice = tmp_path / "d3.csv"
    thrice.write_bytes(again.read_bytes().replace(b"\n", b"\r\n"))
    assert _counts(ingest_file(thrice, "consumption", store)) == (7, 0, 1, 6)
    assert store.load_daily(2025).height == 5
    _ledger_adds_up(store)


def test_a_resent_consumption_day_counts_alike_in_a_large_file_read_in_buckets(store, tmp_path: Path) -> None:
    lines = [f"{c:04d},M{c},2025-01-{d:02d},{c % 7 + d / 4:.2f},," for c in range(40) for d in range(1, 11)]
    assert _counts(ingest_file(_write(tmp_path / "a.csv", lines), "consumption", store, n_buckets=4)) == (400, 400, 0, 0)
    more = lines[100:300] + [f"{c:04d},M{c},2025-01-11,1.00,," for c in range(40)]
    rep = ingest_file(_write(tmp_path / "b.csv", more), "consumption", store, n_buckets=3)
    assert _counts(rep) == (240, 40, 0, 200)
    assert store.load_daily(2025).height == 440
    _ledger_adds_up(store)


def test_an_estimated_day_resent_identical_is_a_duplicate_and_measured_replaces_it(store, tmp_path: Path) -> None:
    head = "customer_id,meter_id,read_date,kwh_total,estimated\n"
    (tmp_path / "e1.csv").write_text(head + "0001,M1,2025-05-01,2.00,E\n0001,M1,2025-05-02,3.00,\n")
    rep = ingest_file(tmp_path / "e1.csv", "consumption", store)
    assert (rep.loaded, rep.estimated) == (2, 1)
    (tmp_path / "e2.csv").write_text(head + "0001,M1,2025-05-01,2.00,E\n0001,M1,2025-05-02,3.00,\n\n")
    rep = ingest_file(tmp_path / "e2.csv", "consumption", store)
    assert (rep.loaded, rep.estimated, rep.duplicates) == (0, 0, 2)
    (tmp_path / "e3.csv").write_text(head + "0001,M1,2025-05-01,2.00,\n")  # the same kWh, now measured
    rep = ingest_file(tmp_path / "e3.csv", "consumption", store)
    assert (rep.loaded, rep.duplicates) == (1, 0)
    assert store.load_daily(2025)["estimated"].to_list() == [False, False]
    _ledger_adds_up(store)


REG_HEAD = "customer_id,meter_id,read_date,total\n"


def test_a_daily_register_file_of_some_meters_leaves_the_others_state(store, tmp_path: Path) -> None:
    (tmp_path / "r1.csv").write_text(REG_HEAD + "".join(
        f"{c},M{c},2025-02-{d:02d},{100 + 10 * d + c:.2f}\n" for c in (1, 2, 3) for d in (1, 2, 3)))
    assert _counts(ingest_file(tmp_path / "r1.csv", "registers", store)) == (9, 9, 0, 0)
    # a daily file of meter 1 only, then one of meters 2 and 3 only: each continues from its stored read
    (tmp_path / "r2.csv").write_text(REG_HEAD + "1,M1,2025-02-04,141.00\n")
    assert _counts(ingest_file(tmp_path / "r2.csv", "registers", store)) == (1, 1, 0, 0)
    (tmp_path / "r3.csv").write_text(REG_HEAD + "2,M2,2025-02-04,145.00\n3,M3,2025-02-05,163.00\n")
    assert _counts(ingest_file(tmp_path / "r3.csv", "registers", store)) == (2, 2, 0, 0)
    d = store.load_daily(2025).sort("customer_id", "day")
    by = {(r["customer_id"], r["day"]): (r["wh_total"], r["estimated"]) for r in d.iter_rows(named=True)}
    assert by[("1", D(2025, 2, 4))] == (10000, False)     # 141 - 131 kWh
    assert by[("2", D(2025, 2, 4))] == (13000, False)     # 145 - 132
    assert by[("3", D(2025, 2, 4))][1] and by[("3", D(2025, 2, 5))][1]  # 163 - 133 over two days: estimated
    assert by[("3", D(2025, 2, 4))][0] + by[("3", D(2025, 2, 5))][0] == 30000
    state = store.load_register_state().sort("customer_id")
    assert state["day"].to_list() == [D(2025, 2, 4), D(2025, 2, 4), D(2025, 2, 5)]
    assert store.load_register_state(["2"])["meter_id"].to_list() == ["M2"]
    # the first file's reads of meters 1 and 2 sent again: every read a duplicate, the state not moved back
    (tmp_path / "r1b.csv").write_text(REG_HEAD + "".join(
        f"{c},M{c},2025-02-{d:02d},{100 + 10 * d + c:.2f}\n" for c in (1, 2) for d in (1, 2, 3)))
    rep = ingest_file(tmp_path / "r1b.csv", "registers", store)
    assert (rep.loaded, rep.duplicates) == (0, 6)
    assert store.load_register_state().sort("customer_id")["day"].to_list() == state["day"].to_list()
    _ledger_adds_up(store)


def test_a_file_sent_again_with_other_bytes_records_its_findings_once(store, tmp_path: Path) -> None:
    """The same reads in another file (CRLF line ends): its findings (here two gaps) are the stored ones,
    not recorded a second time (a new user's report, 2026-12-01: exchanges 5 -> 10, gaps 19 -> 38)."""
    rows = ("1,M1,2025-03-01,100.00\n1,M1,2025-03-02,110.00\n1,M1,2025-03-06,150.00\n"  # a gap of 3 days
            "2,M2,2025-03-01,200.00\n2,M2,2025-03-04,230.00\n2,M2,2025-03-05,240.00\n")  # a gap of 2 days
    (tmp_path / "a.csv").write_text(REG_HEAD + rows)
    (tmp_path / "b.csv").write_bytes((REG_HEAD + rows).replace("\n", "\r\n").encode())
    first = ingest_file(tmp_path / "a.csv", "registers", store)
    codes = sorted(store.load_findings()["code"].to_list())
    assert codes == ["gap_estimated", "gap_estimated"] and first.findings == 2
    again = ingest_file(tmp_path / "b.csv", "registers", store)
    assert again.findings == 0
    assert sorted(store.load_findings()["code"].to_list()) == codes
    _ledger_adds_up(store)


def test_load_daily_between_days_customers_and_years(store) -> None:
    rows = [("0001", "m1", D(2024, 12, 30), 1, None, None, None, None, False),
            ("0001", "m1", D(2024, 12, 31), 2, None, None, None, None, False),
            ("0001", "m1", D(2025, 1, 1), 3, None, None, None, None, True),
            ("0002", "m2", D(2025, 1, 1), 4, 1, 1, 1, 1, False),
            ("0002", "m2", D(2025, 1, 2), 5, None, None, None, None, False)]
    led = {"sha256": "f" * 64, "file": "x", "kind": "registers", "rows": 0, "loaded": 0, "estimated": 0,
           "quarantined": 0, "duplicates": 0, "findings": 0, "loaded_at": dt.datetime(2025, 1, 3, tzinfo=dt.UTC)}
    store.save_ingest(IngestBatch(ledger=led, kind="registers",
                                  daily=pl.DataFrame(rows, schema=DAILY_SCHEMA, orient="row")))
    got = store.load_daily_between(D(2024, 12, 31), D(2025, 1, 1))
    assert dict(got.schema) == DAILY_SCHEMA
    assert sorted(got.select("customer_id", "wh_total").rows()) == [("0001", 2), ("0001", 3), ("0002", 4)]
    got = store.load_daily_between(D(2024, 12, 31), D(2025, 1, 2), ["0002", "0009"])
    assert sorted(got["wh_total"].to_list()) == [4, 5]
    assert got.filter(pl.col("wh_total") == 4)["wh_peak"].item() == 1
    assert store.load_daily_between(D(2025, 1, 3), D(2025, 2, 1)).height == 0
    assert store.load_daily_between(D(2024, 12, 30), D(2024, 12, 30), ["0002"]).height == 0


def test_a_lone_read_sent_again_after_later_reads_is_a_duplicate(store, tmp_path: Path) -> None:
    """A daily register file re-sent after later ones: each meter's one read of that day pairs with no
    stored read (the store keeps the meter's last read and the days' consumption). The read the stored
    days imply (the last read less their consumption) tells the same read sent again (a duplicate) from
    another one (quarantined, ``late_read_alone``: one read measures no day); before, both were counted
    as loaded and nothing was stored (a new user's report, 2026-12-01)."""
    head = "customer_id,meter_id,read_date,total,peak,valley\n"
    lines = [f"{c},M{c},2025-02-{d:02d},{100 + 10 * d + c:.2f},{60 + 6 * d:.2f},{40 + 4 * d + c:.2f}"
             for c in (1, 2) for d in range(1, 11)]
    lines += [f"3,M3,2025-02-{d:02d},{300 + 5 * d:.2f},," for d in (1, 2, 3, 7, 8)]  # 4-6 Feb: a gap, estimated
    (tmp_path / "a.csv").write_text(head + "\n".join(lines) + "\n")
    assert _counts(ingest_file(tmp_path / "a.csv", "registers", store))[1] == 25
    before = store.load_daily(2025).sort("customer_id", "day")
    # the 3 February file once more (every meter's read of that day, as sent then)
    (tmp_path / "b.csv").write_text(head + "1,M1,2025-02-03,131.00,78.00,53.00\n2,M2,2025-02-03,132.00,78.00,54.00\n")
    assert _counts(ingest_file(tmp_path / "b.csv", "registers", store)) == (2, 0, 0, 2)
    # a read of that day that differs (in one register), and one before a stored estimated gap
    (tmp_path / "c.csv").write_text(head + "1,M1,2025-02-03,131.00,78.50,52.50\n3,M3,2025-02-02,310.00,,\n")
    rep = ingest_file(tmp_path / "c.csv", "registers", store)
    assert _counts(rep) == (2, 0, 2, 0)
    q = store.load_quarantine().filter(pl.col("code") == "late_read_alone")
    assert q.height == 2 and q["reason"].str.contains("send it with the meter's reads").all()
    assert q["reason"].str.contains("differs from the read the stored days imply").sum() == 1
    assert q["reason"].str.contains("not all measured").sum() == 1
    assert store.load_daily(2025).sort("customer_id", "day").equals(before)  # nothing stored changed
    _ledger_adds_up(store)


def test_has_interactions_tells_a_store_with_contacts(store, tmp_path: Path) -> None:
    """``Store.has_interactions``: a bill run decides once for the store (not per chunk) whether a
    household without contacts has 0 contacts or unknown channel features."""
    assert store.has_interactions() is False
    (tmp_path / "i.csv").write_text(
        "customer_id,occurred_at,channel,intent,resolved,escalated_to,handle_seconds,satisfaction\n"
        "0001,2025-03-01T10:00:00,app,payment,true,,120,\n")
    rep = ingest_file(tmp_path / "i.csv", "interactions", store)
    assert rep.loaded == 1
    assert store.has_interactions() is True
