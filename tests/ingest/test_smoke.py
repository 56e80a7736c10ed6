"""Smoke test: a small register file through ingest into the embedded store."""

from __future__ import annotations

from pathlib import Path

from wattbill.ingest import ingest_file
from wattbill.store import open_store

CSV = (
    "\ufeff户号,表号,日期,正向有功总,尖,峰,平,谷\r\n"
    "007,m1,2024-01-01,100.00,10,30,40,20\r\n"
    "007,m1,2024-01-02,110.00,11,33,44,22\r\n"
    "007,m1,2024-01-02,110.00,11,33,44,22\r\n"
    "007,m1,2024-01-05,140.00,14,42,56,28\r\n"
    "007,m1,2024-02-30,abc,1,1,1,1\r\n"
)


def test_smoke(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text(CSV, encoding="utf-8")
    store = open_store(tmp_path / "store")
    rep = ingest_file(f, "registers", store)
    assert (rep.rows, rep.loaded, rep.quarantined, rep.duplicates, rep.estimated) == (5, 3, 1, 1, 3)
    daily = store.load_daily(2024)
    assert daily["customer_id"].to_list() == ["007"] * 4
    assert daily["wh_total"].sum() == 40_000
    assert daily["estimated"].sum() == 3
    again = ingest_file(f, "registers", store)
    assert again.already_loaded
    assert store.load_daily(2024).equals(daily)
