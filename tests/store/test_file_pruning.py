"""The embedded store opens only the Delta files whose customer range (the per-file statistics) meets
the customers asked for; a file without statistics is always opened; the rows are those of a store
that opens every file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from wattbill.ingest.schemas import DAILY_SCHEMA
from wattbill.store.base import IngestBatch
from wattbill.store.embedded import EmbeddedStore, _files_of_customers


def test_files_are_kept_when_their_range_meets_the_customers_or_is_unknown() -> None:
    files = pl.DataFrame({"path": ["a", "b", "c", "d"], "min.customer_id": ["c01", "c10", None, "c20"],
                          "max.customer_id": ["c05", "c19", None, "c29"]})
    assert _files_of_customers(files, ["c11", "c12"])["path"].to_list() == ["b", "c"]
    assert _files_of_customers(files, ["c05", "c20"])["path"].to_list() == ["a", "b", "c", "d"]
    assert _files_of_customers(files, ["c06", "c09"])["path"].to_list() == ["c"]
    assert _files_of_customers(files, None).height == 4
    assert _files_of_customers(files, []).height == 0
    assert _files_of_customers(files.drop("min.customer_id", "max.customer_id"), ["x"]).height == 4


def _batch(ids: list[str], year: int, sha: str) -> IngestBatch:
    rows = [(c, "m", dt.date(year, 1, 1) + dt.timedelta(days=d), 1000 + d, None, None, None, None, False)
            for c in ids for d in range(3)]
    ledger = {"sha256": sha, "file": "f", "kind": "registers", "rows": len(rows), "loaded": len(rows),
              "estimated": 0, "quarantined": 0, "duplicates": 0, "findings": 0}
    return IngestBatch(ledger=ledger, kind="registers", daily=pl.DataFrame(rows, schema=DAILY_SCHEMA, orient="row"))


def test_reads_of_customer_ranges_give_the_rows_of_those_customers(tmp_path: Path) -> None:
    st = EmbeddedStore(tmp_path / "s", n_buckets=2)
    # two loads of disjoint ranges of customers: files with disjoint statistics
    for k, ids in enumerate(([f"c{i:02d}" for i in range(0, 10)], [f"c{i:02d}" for i in range(10, 20)])):
        st.save_ingest(_batch(ids, 2025, f"{k}" * 64))
    acts = st._actions("daily", st._read_state()["daily"])
    assert acts is not None and acts["min.customer_id"].null_count() == 0
    for ids in (["c03"], ["c09", "c10"], ["c15", "c19"], [f"c{i:02d}" for i in range(20)]):
        got = st.load_daily(2025, ids)
        assert sorted(set(got["customer_id"].to_list())) == sorted(ids)
        assert got.height == 3 * len(ids)
    assert st.load_daily(2025, ["c99"]).height == 0
