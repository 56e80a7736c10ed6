"""Embedded store specifics: partition pruning, atomic commit, crash at the commit point."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import polars as pl
import pytest

from ingest.schemas import DAILY_SCHEMA, IngestBatch
from store import open_store
from store.embedded import EmbeddedStore


def _batch(sha: str, rows: list[tuple]) -> IngestBatch:
    ledger = {
        "sha256": sha,
        "file": "f",
        "kind": "registers",
        "rows": len(rows),
        "loaded": len(rows),
        "estimated": 0,
        "quarantined": 0,
        "duplicates": 0,
        "findings": 0,
    }
    return IngestBatch(
        ledger=ledger, kind="registers", daily=pl.DataFrame(rows, schema=DAILY_SCHEMA, orient="row")
    )


def _rows(year: int, customers: range) -> list[tuple]:
    return [
        (f"{c:06d}", "m", dt.date(year, 1, 1) + dt.timedelta(days=d), 1000 + d, None, None, None, None, False)
        for c in customers
        for d in range(3)
    ]


def test_bill_run_for_some_customers_opens_only_their_partitions(tmp_path: Path) -> None:
    st = open_store(tmp_path / "s")
    assert isinstance(st, EmbeddedStore)
    st.save_ingest(_batch("a", _rows(2023, range(200)) + _rows(2024, range(200))))
    all_2024 = st._files("daily", st._bucket_pred(None, 2024))
    assert len(all_2024) == st.n_buckets  # 200 customers fill every bucket
    few = st._files("daily", st._bucket_pred(["000007", "000008"], 2024))
    assert 1 <= len(few) <= 2
    assert all("year=2024" in str(f) for f in few)
    assert st.load_daily(2024, ["000007"])["day"].to_list() == [dt.date(2024, 1, d) for d in (1, 2, 3)]


def test_crash_at_commit_point_leaves_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = open_store(tmp_path / "s")
    st.save_ingest(_batch("a", _rows(2024, range(3))))
    before = st.load_daily(2024)
    manifest_before = (tmp_path / "s" / "manifest.json").read_text()
    real_replace = os.replace

    def crash(src, dst, *a, **k):
        if str(dst).endswith("manifest.json"):
            raise OSError("simulated power cut before the manifest rename")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        st.save_ingest(_batch("b", _rows(2024, range(3, 6))))
    monkeypatch.setattr(os, "replace", real_replace)
    assert (tmp_path / "s" / "manifest.json").read_text() == manifest_before
    reopened = open_store(tmp_path / "s")
    assert reopened.load_daily(2024).equals(before)
    assert reopened.ledger_get("b") is None
    # the store keeps working after the crash
    reopened.save_ingest(_batch("b", _rows(2024, range(3, 6))))
    assert reopened.load_daily(2024).height == 18


def test_replaced_files_outlive_the_commit_for_readers(tmp_path: Path) -> None:
    st = open_store(tmp_path / "s")
    st.save_ingest(_batch("a", _rows(2024, range(1))))
    old_files = st._files("daily")
    st.save_ingest(_batch("b", [("000000", "m", dt.date(2024, 1, 1), 5, None, None, None, None, True)]))
    assert all(f.exists() for f in old_files)  # a reader holding the old manifest can still read them
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert {g[0] for g in manifest["garbage"]} >= {str(f.relative_to(tmp_path / "s")) for f in old_files}
    assert st.load_daily(2024)["wh_total"].to_list() == [5, 1001, 1002]
