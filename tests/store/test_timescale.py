"""TimescaleDB specifics: a real hypertable, the staging + upsert path, binary COPY encoding."""

from __future__ import annotations

import datetime as dt

import polars as pl
import psycopg
import pytest

from wattbill.ingest.schemas import DAILY_SCHEMA, IngestBatch
from wattbill.store.pgcopy import encode

pytestmark = pytest.mark.db


def _batch(sha: str, df: pl.DataFrame) -> IngestBatch:
    ledger = {
        "sha256": sha,
        "file": "f",
        "kind": "registers",
        "rows": df.height,
        "loaded": df.height,
        "estimated": 0,
        "quarantined": 0,
        "duplicates": 0,
        "findings": 0,
    }
    return IngestBatch(ledger=ledger, kind="registers", daily=df)


def _daily(n: int, wh: int = 1000) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [f"{i % 7:04d}" for i in range(n)],
            "meter_id": [f"m{i % 7}" for i in range(n)],
            "day": [dt.date(2024, 1, 1) + dt.timedelta(days=i // 7) for i in range(n)],
            "wh_total": [wh + i for i in range(n)],
            "wh_sharp": [None if i % 2 else i for i in range(n)],
            "wh_peak": [None if i % 2 else 0 for i in range(n)],
            "wh_flat": [None if i % 2 else 0 for i in range(n)],
            "wh_valley": [None if i % 2 else wh for i in range(n)],
            "estimated": [i % 3 == 0 for i in range(n)],
        },
        schema=DAILY_SCHEMA,
    )


def test_daily_is_a_hypertable_by_day(pg_store_url: str) -> None:
    from wattbill.store import open_store

    st = open_store(pg_store_url)
    st.save_ingest(_batch("a", _daily(7 * 70)))  # 70 days: 3 monthly chunks
    row = st.conn.execute(
        "SELECT column_name FROM timescaledb_information.dimensions WHERE hypertable_name = 'daily'"
    ).fetchone()
    assert row == ("day",)
    chunks = st.conn.execute(
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'daily'"
    ).fetchone()
    assert chunks is not None and chunks[0] == 3
    st.close()


@pytest.mark.parametrize("direct", [True, False])
def test_staging_and_direct_paths_agree(pg_store_url: str, direct: bool) -> None:
    from wattbill.store.timescale import TimescaleStore

    st = TimescaleStore(pg_store_url, direct_copy_new=direct)
    df = _daily(200)
    st.save_ingest(_batch("a", df))
    got = st.load_daily(2024)
    assert got.equals(df.sort("customer_id", "meter_id", "day"))
    # an overlapping correction upserts (staging + ON CONFLICT) in both modes
    fix = _daily(14, wh=5).with_columns(pl.lit(True).alias("estimated"))
    st.save_ingest(_batch("b", fix))
    got = st.load_daily(2024)
    assert got.height == 200
    first = got.filter(pl.col("day") <= dt.date(2024, 1, 2)).sort("customer_id", "day")
    assert first["estimated"].all() and sorted(first["wh_total"].to_list()) == list(range(5, 19))
    st.close()


def test_binary_copy_encoding_roundtrip(pg_store_url: str) -> None:
    df = pl.DataFrame(
        {
            "t": ["007", "户号", None, ""],
            "d": [dt.date(2024, 2, 29), dt.date(1999, 12, 31), None, dt.date(2000, 1, 1)],
            "i8": [1, -2, None, 2**40],
            "i4": pl.Series([1, None, 3, -4], dtype=pl.Int32),
            "b": [True, False, None, True],
            "f": [1.5, None, 2.0, -0.25],
        }
    )
    with psycopg.connect(pg_store_url, autocommit=True) as c:
        c.execute("CREATE TABLE enc (t text, d date, i8 int8, i4 int4, b bool, f float8)")
        with c.cursor() as cur, cur.copy("COPY enc FROM STDIN (FORMAT BINARY)") as cp:
            cp.write(encode(df))
        rows = c.execute("SELECT * FROM enc").fetchall()
    assert rows == list(df.iter_rows())


@pytest.mark.slow
def test_refuses_a_server_without_timescaledb_preloaded() -> None:
    """A second cluster started without shared_preload_libraries=timescaledb: StoreUnavailable."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    from wattbill.store import StoreUnavailable, open_store

    if not Path("/usr/lib/postgresql/15/bin/initdb").exists():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL 15 server binaries are not installed (scripts/setup.sh installs them)")
        pytest.skip("PostgreSQL 15 server binaries are not installed")
    repo = Path(__file__).resolve().parents[2]
    base = f"/tmp/wattbill-pg-nopreload-{os.getpid()}"
    env = dict(os.environ, WATTBILL_PGDATA=base, WATTBILL_PG_PORT="54339", WATTBILL_PG_PRELOAD="")
    pg = ["bash", str(repo / "scripts" / "pg.sh")]
    try:
        out = subprocess.run([*pg, "start"], env=env, capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        url = out.stdout.strip().splitlines()[-1]
        with pytest.raises(StoreUnavailable, match="TimescaleDB cannot be used") as ei:
            open_store(url)
        assert "preload" in str(ei.value)
        with psycopg.connect(url) as conn:  # and nothing was created in its place
            n = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert n == (0,)
    finally:
        subprocess.run([*pg, "destroy"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)
