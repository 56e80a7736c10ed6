"""A store of the old embedded format (Parquet files named by manifest.json): refused with a one-line
error naming the migration command; ``wattbill store migrate`` converts it to Delta tables once, every
row kept; a migration that died before its commit point is started again."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from wattbill.ingest.schemas import DAILY_SCHEMA, LEDGER_SCHEMA, QUARANTINE_SCHEMA
from wattbill.store import StoreError, embedded, open_store

REPO = Path(__file__).resolve().parents[2]


def _legacy_store(root: Path) -> dict[str, pl.DataFrame]:
    """An old-format store as its writer left it: files under partition folders, a manifest naming them
    (a daily partition in two day segments), a replaced file in the garbage list."""
    daily = pl.DataFrame(
        [(f"C{c}", "M", dt.date(2024, 12, 30) + dt.timedelta(days=d), 1000 * c + d, None, None, None, None, d == 2)
         for c in range(5) for d in range(4)], schema=DAILY_SCHEMA, orient="row")
    ledger = pl.DataFrame([{"sha256": "aa", "file": "x.csv", "kind": "registers", "rows": 21, "loaded": 20,
                            "estimated": 1, "quarantined": 1, "duplicates": 0, "findings": 0}], schema=LEDGER_SCHEMA)
    quarantine = pl.DataFrame([{"file_sha256": "aa", "file": "x.csv", "row": 7, "column": "total",
                                "code": "ingest.bad_number", "reason": "not a number", "raw": "x"}],
                              schema=QUARANTINE_SCHEMA)
    bills = pl.DataFrame({"customer_id": ["C1", "C1"], "year": [2024, 2024], "version": [1, 2],
                          "total_fen": [100, 120], "reason": ["run", "recalc"], "content_hash": ["h1", "h2"]},
                         schema_overrides={"year": pl.Int32, "version": pl.Int32})
    files: dict[str, str | list[str]] = {}

    def put(key: str, df: pl.DataFrame, name: str) -> str:
        rel = f"{key}/{name}.parquet"
        (root / key).mkdir(parents=True, exist_ok=True)
        df.write_parquet(root / rel)
        return rel

    for (y,), part in daily.with_columns(pl.col("day").dt.year().alias("_y")).partition_by("_y", as_dict=True).items():
        part = part.drop("_y")
        key = f"daily/year={y}/bucket=00"
        half = part.height // 2
        files[key] = [put(key, part.head(half), "00000001-a.d1_2_n1"), put(key, part.tail(part.height - half), "00000002-b.d3_4_n1")]
    files["ledger/all"] = put("ledger/all", ledger, "00000002-c")
    files["quarantine/sha=aa"] = put("quarantine/sha=aa", quarantine, "00000002-d")
    files["bills/year=2024/bucket=00"] = put("bills/year=2024/bucket=00", bills, "00000003-e")
    gone = put("ledger/all", ledger.head(0), "00000001-old")
    (root / "manifest.json").write_text(json.dumps({"format": 1, "seq": 3, "files": files, "garbage": [[gone, 0]]}))
    (root / "store.json").write_text(json.dumps({"kind": "wattbill-embedded", "n_buckets": 1}))
    return {"daily": daily, "ledger": ledger, "quarantine": quarantine, "bills": bills}


def _check(root: Path, want: dict[str, pl.DataFrame]) -> None:
    st = open_store(root)
    keys = ["customer_id", "meter_id", "day"]
    got = pl.concat([st.load_daily(2024), st.load_daily(2025)])
    assert got.sort(keys).equals(want["daily"].sort(keys))
    assert st.load_ledger().equals(want["ledger"])
    assert st.load_quarantine("aa").equals(want["quarantine"])
    assert st.load_bills(2024, all_versions=True).select(want["bills"].columns).equals(want["bills"])
    assert not list(root.rglob("0000000*.parquet"))  # the old files are gone
    assert not (root / "manifest.json").exists() and not (root / "manifest.json.migrated").exists()


def test_an_old_store_is_refused_then_migrated_by_the_command(tmp_path: Path) -> None:
    root = tmp_path / "old"
    want = _legacy_store(root)
    with pytest.raises(StoreError, match="wattbill store migrate --store") as exc:
        open_store(root)
    assert "\n" not in str(exc.value)
    p = subprocess.run([sys.executable, "-m", "wattbill.cli", "ingest", "reads", str(tmp_path / "none.csv"),
                        "--store", str(root)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "wattbill.cli", "store", "migrate", "--store", str(root)],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "migrated to Delta Lake tables (24 rows in 4 tables)" in p.stdout
    _check(root, want)
    again = subprocess.run([sys.executable, "-m", "wattbill.cli", "store", "migrate", "--store", str(root)],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
    assert again.returncode == 0 and "already in Delta Lake tables" in again.stdout, again.stdout + again.stderr
    _check(root, want)


def test_a_migration_that_died_is_started_again(tmp_path: Path) -> None:
    root = tmp_path / "old"
    want = _legacy_store(root)
    manifest = json.loads((root / "manifest.json").read_text())
    old = {r for v in manifest["files"].values() for r in ([v] if isinstance(v, str) else v)}
    embedded._migrate_tables(root, manifest, old)  # died before the manifest's rename: still the old store
    with pytest.raises(StoreError, match="old embedded format"):
        open_store(root)
    assert embedded.migrate_legacy(root)["daily"] == 20
    _check(root, want)
    assert embedded.migrate_legacy(root) == {}  # done before: nothing to convert
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no store of the old embedded format"):
        embedded.migrate_legacy(tmp_path / "empty")
