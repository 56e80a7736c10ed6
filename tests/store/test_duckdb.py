"""The analyst's DuckDB query of the README (docs/store.md) over a real embedded store, without wattbill
reading it: the current files are those ``manifest.json`` names (a folder may also hold replaced files
kept for readers and files of a killed write, so a bare glob is not the store)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from wattbill.ingest import ingest_file
from wattbill.store import open_store

duckdb = pytest.importorskip("duckdb")


def _current_files(root: Path, prefix: str) -> list[str]:
    # the README's snippet, as written there
    m = json.loads((root / "manifest.json").read_text())
    return [str(root / r) for k, v in m["files"].items() if k.startswith(prefix)
            for r in ([v] if isinstance(v, str) else v)]


def test_readme_duckdb_query_over_daily_appends(tmp_path: Path) -> None:
    root = tmp_path / "store"
    st = open_store(root)
    # three daily files after a month: day segments; the third re-sends the second with a correction
    lines = ["customer_id,meter_id,read_date,total"]
    for c in range(3):
        lines += [f"C{c},M{c},{dt.date(2025, 1, 1) + dt.timedelta(days=d)},{1000 + (c + 1) * d}.000" for d in range(31)]
    (tmp_path / "jan.csv").write_text("\n".join(lines) + "\n")
    ingest_file(tmp_path / "jan.csv", "registers", st)
    (tmp_path / "feb1.csv").write_text("customer_id,meter_id,read_date,total\n"
                                       + "".join(f"C{c},M{c},2025-02-01,{1000 + (c + 1) * 31}.000\n" for c in range(3)))
    ingest_file(tmp_path / "feb1.csv", "registers", st)
    files = _current_files(root, "daily/year=2025/")
    got = duckdb.sql(
        f"SELECT customer_id, count(*) AS days, sum(wh_total) / 1000 AS kwh FROM read_parquet({files}) "
        "GROUP BY customer_id ORDER BY customer_id"
    ).fetchall()
    # each customer used (c + 1) kWh a day on the 31 days from 2 Jan to 1 Feb
    assert got == [(f"C{c}", 31, 31.0 * (c + 1)) for c in range(3)]
    ledger = duckdb.sql(f"SELECT sum(rows), sum(loaded) FROM read_parquet({_current_files(root, 'ledger/')})").fetchall()[0]
    assert ledger == (96, 96)
