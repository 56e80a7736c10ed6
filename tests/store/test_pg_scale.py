"""TimescaleDB at operational scale (issue #14): kill -9 of real loads, two years loaded at once,
re-sent and corrected days, and the compression of closed months. Real processes, real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
import pytest

from wattbill.ingest import ingest_file
from wattbill.store import open_store
from wattbill.store.errors import StoreError
from wattbill.store.timescale import TimescaleStore

pytestmark = pytest.mark.db

REPO = Path(__file__).resolve().parents[2]


def _reads(path: Path, meters: int, first: dt.date, days: int, seed: int = 3, start: np.ndarray | None = None
           ) -> np.ndarray:
    """Register reads (total + 4 time-of-use registers, kWh with 2 decimals) of ``meters`` meters for
    ``days`` days from ``first``; returns the last cumulative registers (to continue in a next file)."""
    rng = np.random.default_rng(seed)
    shares = np.random.default_rng(0).dirichlet([1, 3, 4, 2], size=meters)
    use = (rng.gamma(2.0, 4.0, size=(meters, days))[:, :, None] * shares[:, None, :] * 100).astype(np.int64)
    base = start if start is not None else np.random.default_rng(1).integers(10_000, 900_000, size=(meters, 4))
    cum = base[:, None, :] + np.cumsum(use, axis=1)
    ids = np.char.zfill(np.arange(meters).astype(str), 6)
    pl.DataFrame({
        "customer_id": np.repeat(ids, days),
        "meter_id": np.repeat(np.char.add("M", ids), days),
        "read_date": np.tile(np.arange(days, dtype="timedelta64[D]") + np.datetime64(first), meters),
        "total": cum.sum(axis=2).reshape(-1) / 100,
        "sharp": cum[:, :, 0].reshape(-1) / 100,
        "peak": cum[:, :, 1].reshape(-1) / 100,
        "flat": cum[:, :, 2].reshape(-1) / 100,
        "valley": cum[:, :, 3].reshape(-1) / 100,
    }).with_columns(pl.col("read_date").cast(pl.Date)).write_csv(path, float_precision=2)
    return cum[:, -1, :]


def _cli(args: list[str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "WATTBILL_STORE"}
    return subprocess.Popen([sys.executable, "-m", "wattbill.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _state(url: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """daily (both years), the register state and the ledger's counts."""
    st = TimescaleStore(url, setup=False)
    try:
        daily = pl.concat([st.load_daily(2024), st.load_daily(2025)])
        led = st.load_ledger().select("file", "rows", "loaded", "quarantined", "duplicates")
        return daily, st.load_register_state(), led
    finally:
        st.close()


def _fresh_db(admin_url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {name}")
    p = urlsplit(admin_url)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


def _drop_db(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- kill -9 of a real load -------------------------------------------------------------------


def _backend_doing(url: str, db: str) -> str | None:
    """The query text of the active client backend on ``db`` in a transaction, if any."""
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND xact_start IS NOT NULL AND state <> 'idle' AND backend_type = 'client backend'"
            " ORDER BY xact_start LIMIT 1",
            [db],
        ).fetchone()
    return row[0] if row else None


@pytest.mark.slow
def test_kill_9_of_a_real_load_leaves_the_previous_or_the_new_state(pg_url: str, tmp_path: Path) -> None:
    """``wattbill ingest`` killed with SIGKILL while it writes (its transaction open on the server: COPY,
    upsert, ledger) and at fixed moments: the store holds exactly the state before the file or after it,
    never a part; the rerun completes it to the rows of a clean load."""
    jan, feb = tmp_path / "jan.csv", tmp_path / "feb.csv"
    last = _reads(jan, 400, dt.date(2024, 1, 1), 31)
    _reads(feb, 400, dt.date(2024, 2, 1), 120, seed=5, start=last)
    ref_url = _fresh_db(pg_url, "wb_kill_ref")
    try:
        st = open_store(ref_url)
        ingest_file(jan, "registers", st)
        st.close()
        before = _state(ref_url)
        st = open_store(ref_url)
        ingest_file(feb, "registers", st)
        st.close()
        after = _state(ref_url)
    finally:
        _drop_db(pg_url, "wb_kill_ref")
    assert after[0].height == before[0].height + 400 * 120

    def same(a, b) -> bool:
        return a[0].equals(b[0]) and a[1].equals(b[1]) and a[2].drop("file").equals(b[2].drop("file"))

    landed_in_transaction = 0
    for trial, delay in enumerate([None, None, 1.0]):
        name = f"wb_kill_{trial}"
        url = _fresh_db(pg_url, name)
        try:
            st = open_store(url)
            ingest_file(jan, "registers", st)
            st.close()
            p = _cli(["ingest", "reads", str(feb), "--store", url])
            if delay is None:  # kill while the load's transaction is open on the server
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and p.poll() is None:
                    q = _backend_doing(pg_url, name)
                    if q is not None:
                        time.sleep(0.1 * trial)  # a little further into the transaction each trial
                        if p.poll() is None:
                            landed_in_transaction += 1
                        break
                    time.sleep(0.01)
            else:
                time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.communicate(timeout=60)
            # the server notices the dead client and rolls its transaction back
            deadline = time.monotonic() + 30
            while _backend_doing(pg_url, name) is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            now = _state(url)
            assert same(now, before) or same(now, after), f"trial {trial}: a partial load is visible"
            st = open_store(url)
            ingest_file(feb, "registers", st)  # the rerun completes it (or finds it loaded)
            st.close()
            assert same(_state(url), after), f"trial {trial}: the rerun does not give a clean load's rows"
        finally:
            _drop_db(pg_url, name)
    assert landed_in_transaction >= 1, "no kill landed while the load's transaction was open"


# --- two loads at once: a year's last month and the next year's first ----------------------


@pytest.mark.slow
def test_next_years_file_loaded_at_the_same_time(pg_url: str, tmp_path: Path) -> None:
    """December 2024 and January 2025 loaded by two processes at once (each order) give the rows of the
    two loads in sequence; every meter keeps 1 January 2025 (computed from its 31 December read)."""
    dec, jan = tmp_path / "dec.csv", tmp_path / "jan.csv"
    meters = 300
    last = _reads(dec, meters, dt.date(2024, 12, 1), 31)
    _reads(jan, meters, dt.date(2025, 1, 1), 31, seed=8, start=last)
    ref_url = _fresh_db(pg_url, "wb_years_ref")
    try:
        st = open_store(ref_url)
        ingest_file(dec, "registers", st)
        ingest_file(jan, "registers", st)
        st.close()
        ref = _state(ref_url)
    finally:
        _drop_db(pg_url, "wb_years_ref")
    ref_daily = ref[0]
    assert ref_daily.filter(pl.col("day") == dt.date(2025, 1, 1)).height == meters
    assert ref_daily.height == meters * (30 + 31)
    for trial in range(2):
        name = f"wb_years_{trial}"
        url = _fresh_db(pg_url, name)
        try:
            TimescaleStore(url).close()  # the tables exist before the race (both processes would make them)
            files = (dec, jan) if trial % 2 == 0 else (jan, dec)
            procs = [_cli(["ingest", "reads", str(f), "--store", url]) for f in files]
            for p in procs:
                _out, err = p.communicate(timeout=300)
                assert p.returncode == 0, err
            daily, state, _led = _state(url)
            assert daily.equals(ref_daily), f"trial {trial}: rows differ from the two loads in sequence"
            assert state.equals(ref[1])
        finally:
            _drop_db(pg_url, name)


# --- re-sent and corrected days ------------------------------------------------------------


def _consumption(path: Path, meters: int, first: dt.date, days: int, extra_wh: int = 0) -> None:
    """Daily consumption (kWh with 3 decimals, total and 4 periods) of ``meters`` meters."""
    rng = np.random.default_rng(11)
    wh = rng.integers(0, 2000, size=(meters, days, 4)) + np.array([0, 0, extra_wh, 0])
    ids = np.char.zfill(np.arange(meters).astype(str), 6)
    pl.DataFrame({
        "customer_id": np.repeat(ids, days),
        "meter_id": np.repeat(np.char.add("M", ids), days),
        "read_date": np.tile(np.arange(days, dtype="timedelta64[D]") + np.datetime64(first), meters),
        "kwh_total": wh.sum(axis=2).reshape(-1) / 1000,
        "kwh_sharp": wh[:, :, 0].reshape(-1) / 1000,
        "kwh_peak": wh[:, :, 1].reshape(-1) / 1000,
        "kwh_flat": wh[:, :, 2].reshape(-1) / 1000,
        "kwh_valley": wh[:, :, 3].reshape(-1) / 1000,
    }).with_columns(pl.col("read_date").cast(pl.Date)).write_csv(path, float_precision=3)


def test_resent_day_changes_nothing_and_a_correction_upserts(pg_store_url: str, tmp_path: Path) -> None:
    """A register day re-sent with other bytes (same reads) leaves every stored row as it was; a corrected
    consumption day replaces the stored one (upsert); counts add up in every report and ledger row."""
    jan, day, resent = tmp_path / "jan.csv", tmp_path / "day.csv", tmp_path / "resent.csv"
    last = _reads(jan, 50, dt.date(2024, 1, 1), 31)
    _reads(day, 50, dt.date(2024, 2, 1), 1, seed=4, start=last)
    d = pl.read_csv(day, infer_schema=False)
    d.select(list(reversed(d.columns))).write_csv(resent)  # other bytes, same reads
    st = open_store(pg_store_url)
    try:
        ingest_file(jan, "registers", st)
        ingest_file(day, "registers", st)
        stored = st.load_daily(2024)
        assert stored.height == 50 * 31
        rep = ingest_file(resent, "registers", st)
        assert rep.rows == rep.loaded + rep.quarantined + rep.duplicates
        assert st.load_daily(2024).equals(stored)
        # consumption of March, then March 10-12 corrected (1 kWh more on the flat register each day)
        mar, fix = tmp_path / "mar.csv", tmp_path / "fix.csv"
        _consumption(mar, 50, dt.date(2024, 3, 1), 31)
        ingest_file(mar, "consumption", st)
        march = st.load_daily(2024).filter(pl.col("day") >= dt.date(2024, 3, 1))
        full = pl.read_csv(mar, infer_schema=False)
        _consumption(fix, 50, dt.date(2024, 3, 1), 31, extra_wh=1000)
        pl.read_csv(fix, infer_schema=False).filter(
            pl.col("read_date").is_between(pl.lit("2024-03-10"), pl.lit("2024-03-12"))).write_csv(fix)
        rep = ingest_file(fix, "consumption", st)
        assert rep.rows == rep.loaded + rep.quarantined + rep.duplicates == 150
        now = st.load_daily(2024).filter(pl.col("day") >= dt.date(2024, 3, 1))
        assert now.height == march.height == full.height
        changed = now.join(march, on=["customer_id", "meter_id", "day"], suffix="_old").filter(
            pl.col("wh_total") != pl.col("wh_total_old"))
        assert changed.height == 150
        assert changed["day"].unique().sort().to_list() == [dt.date(2024, 3, d) for d in (10, 11, 12)]
        assert (changed["wh_flat"] - changed["wh_flat_old"]).unique().to_list() == [1000]
        led = st.load_ledger()
        assert led.height == 5
        assert (led["rows"] == led["loaded"] + led["quarantined"] + led["duplicates"]).all()
    finally:
        st.close()


# --- compression of closed months -----------------------------------------------------------


def test_compression_state_is_reported(pg_store_url: str) -> None:
    """``compression()`` says whether the server compresses; without compression (the Apache-only build
    of scripts/build_timescaledb.sh) compressing refuses in one line and loads go on as before."""
    st = TimescaleStore(pg_store_url)
    try:
        c = st.compression()
        assert c["supported"] == st.compression_supported
        if c["supported"]:
            assert c["enabled"] and c["policy"] is not None
        else:
            assert not c["enabled"] and c["policy"] is None
            with pytest.raises(StoreError) as e:
                st.compress_closed_months(dt.date(2030, 1, 1))
            assert "no compression" in str(e.value) and "\n" not in str(e.value)
    finally:
        st.close()


def test_corrections_and_late_reads_into_a_compressed_month(pg_store_url: str, tmp_path: Path) -> None:
    """January 2024 compressed, then a correction of 15 January and a late January day of new meters:
    both land, and the bill run's read (``load_daily``) sees them. Runs where TimescaleDB has compression."""
    st = TimescaleStore(pg_store_url)
    try:
        if not st.compression_supported:
            pytest.skip("this TimescaleDB is an Apache-only build: no native compression")
        jan, feb, fix, late = (tmp_path / f for f in ("jan.csv", "feb.csv", "fix.csv", "late.csv"))
        _consumption(jan, 40, dt.date(2024, 1, 1), 31)
        _consumption(feb, 40, dt.date(2024, 2, 1), 29)
        ingest_file(jan, "consumption", st)
        ingest_file(feb, "consumption", st)
        before = st.load_daily(2024)
        assert st.compress_closed_months(dt.date(2024, 2, 1)) >= 1
        assert st.compression()["compressed_chunks"] >= 1
        assert st.load_daily(2024).equals(before)  # the bill run reads compressed chunks
        _consumption(fix, 40, dt.date(2024, 1, 1), 31, extra_wh=500)
        pl.read_csv(fix, infer_schema=False).filter(pl.col("read_date") == "2024-01-15").write_csv(fix)
        ingest_file(fix, "consumption", st)
        _consumption(late, 45, dt.date(2024, 1, 20), 1)
        pl.read_csv(late, infer_schema=False).filter(pl.col("customer_id") >= "000040").write_csv(late)
        ingest_file(late, "consumption", st)
        now = st.load_daily(2024)
        assert now.height == before.height + 5
        diff = now.join(before, on=["customer_id", "meter_id", "day"], suffix="_old").filter(
            pl.col("wh_total") != pl.col("wh_total_old"))
        assert diff["day"].unique().to_list() == [dt.date(2024, 1, 15)] and diff.height == 40
    finally:
        st.close()


def test_a_load_leaves_its_days_summarized_for_the_next_load(pg_store_url: str, tmp_path: Path) -> None:
    """After a load the BRIN index on day has no page range left to summarize in the chunks it wrote: the
    next load's check of its days reads summaries, not the pages (``TimescaleStore._summarize_days``;
    at 100,000 households the unsummarized pages of a bulk load made the next day's check read the chunk)."""
    jan = tmp_path / "jan.csv"
    _consumption(jan, 300, dt.date(2024, 1, 1), 40)
    st = TimescaleStore(pg_store_url)
    try:
        ingest_file(jan, "consumption", st)
        with st.conn.cursor() as cur:
            cur.execute(
                "SELECT count(*), coalesce(sum(brin_summarize_new_values(i.indexrelid)), 0) FROM pg_index i"
                " JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam"
                " AND am.amname = 'brin' JOIN pg_class t ON t.oid = i.indrelid"
                " WHERE t.relname LIKE '\\_hyper\\_%'"
            )
            n_indexes, newly = cur.fetchone()  # type: ignore[misc]
        assert n_indexes == 2 and newly == 0  # two month chunks, nothing left unsummarized
    finally:
        st.close()
