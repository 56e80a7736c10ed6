"""The analyst's DuckDB query of the README (docs/store.md) over a real embedded store, without wattbill
reading it: each table is a Delta table; DuckDB reads the data files of the version ``state.json``
names (the files of a Delta version, from ``deltalake``: DuckDB's own delta extension is not installable
offline), and polars reads a table, or an earlier version of it, with ``pl.read_delta``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from wattbill.ingest import ingest_file
from wattbill.store import open_store

duckdb = pytest.importorskip("duckdb")
deltalake = pytest.importorskip("deltalake")


def _files(root: Path, table: str, version: int | None = None) -> list[str]:
    # the README's snippet, as written there
    if version is None:
        version = json.loads((root / "state.json").read_text())["tables"][table]
    return deltalake.DeltaTable(str(root / table), version=version).file_uris()


def test_readme_duckdb_query_over_daily_appends(tmp_path: Path) -> None:
    root = tmp_path / "store"
    st = open_store(root)
    # a month, then a daily file; then the daily file re-sent with a correction of one reading
    lines = ["customer_id,meter_id,read_date,total"]
    for c in range(3):
        lines += [f"C{c},M{c},{dt.date(2025, 1, 1) + dt.timedelta(days=d)},{1000 + (c + 1) * d}.000" for d in range(31)]
    (tmp_path / "jan.csv").write_text("\n".join(lines) + "\n")
    ingest_file(tmp_path / "jan.csv", "registers", st)
    month = json.loads((root / "state.json").read_text())["tables"]
    (tmp_path / "feb1.csv").write_text("customer_id,meter_id,read_date,total\n"
                                       + "".join(f"C{c},M{c},2025-02-01,{1000 + (c + 1) * 31}.000\n" for c in range(3)))
    ingest_file(tmp_path / "feb1.csv", "registers", st)
    files = _files(root, "daily")
    q = (f"SELECT customer_id, count(*) AS days, sum(wh_total) / 1000 AS kwh "
         f"FROM read_parquet({files}, hive_partitioning = true) WHERE year = 2025 "
         "GROUP BY customer_id ORDER BY customer_id")
    # each customer used (c + 1) kWh a day on the 31 days from 2 Jan to 1 Feb
    assert duckdb.sql(q).fetchall() == [(f"C{c}", 31, 31.0 * (c + 1)) for c in range(3)]
    ledger = duckdb.sql(f"SELECT sum(rows), sum(loaded) FROM read_parquet({_files(root, 'ledger')})").fetchall()[0]
    assert ledger == (96, 96)
    # the tables' latest versions (what DuckDB's delta_scan or Spark read) are the same rows
    assert pl.read_delta(str(root / "daily")).height == 93
    # an auditor opens the state before the daily file: by its versions
    then = duckdb.sql(f"SELECT count(*) FROM read_parquet({_files(root, 'daily', month['daily'])})").fetchall()
    assert then == [(90,)]
    assert pl.read_delta(str(root / "ledger"), version=month["ledger"]).height == 1


def test_a_corrected_day_is_never_doubled_for_duckdb(tmp_path: Path) -> None:
    """A re-sent day with a correction replaces its rows in one Delta commit: the latest version holds
    each key once, with the corrected value."""
    root = tmp_path / "store"
    st = open_store(root)
    from wattbill.ingest.schemas import DAILY_SCHEMA, IngestBatch

    def batch(sha: str, wh: int) -> IngestBatch:
        rows = [(f"C{c}", "M", dt.date(2025, 3, d), wh + c, None, None, None, None, False)
                for c in range(4) for d in (1, 2)]
        led = {"sha256": sha, "file": sha, "kind": "consumption", "rows": 8, "loaded": 8, "estimated": 0,
               "quarantined": 0, "duplicates": 0, "findings": 0}
        return IngestBatch(ledger=led, kind="consumption", daily=pl.DataFrame(rows, schema=DAILY_SCHEMA, orient="row"))

    st.save_ingest(batch("a", 1000))
    st.save_ingest(batch("b", 2000))
    got = duckdb.sql(f"SELECT count(*), count(DISTINCT (customer_id, day)), min(wh_total) "
                     f"FROM read_parquet({_files(root, 'daily')})").fetchall()
    assert got == [(8, 8, 2000)]
    assert pl.read_delta(str(root / "daily")).select("customer_id", "day").is_unique().all()
