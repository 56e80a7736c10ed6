"""Embedded store specifics (Delta Lake tables): partition pruning, the commit across tables, a crash at
the commit point, time travel, streamed loads, daily appends and compaction."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import polars as pl
import pytest

from wattbill.ingest.schemas import DAILY_SCHEMA, IngestBatch
from wattbill.store import open_store
from wattbill.store.embedded import EmbeddedStore


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


def _daily_files(st: EmbeddedStore, customer_ids=None, year=None) -> pl.DataFrame:
    acts = st._actions("daily", st._read_state()["daily"])
    for col, vals in (st._bucket_parts(customer_ids, year, "daily") or {}).items():
        acts = acts.filter(pl.col(f"partition.{col}").is_in(list(vals)))
    return acts


def test_bill_run_for_some_customers_opens_only_their_partitions(tmp_path: Path) -> None:
    st = open_store(tmp_path / "s")
    assert isinstance(st, EmbeddedStore)
    st.save_ingest(_batch("a", _rows(2023, range(200)) + _rows(2024, range(200))))
    all_2024 = _daily_files(st, None, 2024)
    assert all_2024["partition.bucket"].n_unique() == st.n_buckets  # 200 customers fill every bucket
    few = _daily_files(st, ["000007", "000008"], 2024)
    assert 1 <= few.height <= 2
    assert all("year=2024" in f for f in few["path"])
    assert st.load_daily(2024, ["000007"])["day"].to_list() == [dt.date(2024, 1, d) for d in (1, 2, 3)]


def test_crash_at_commit_point_leaves_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deltalake import DeltaTable

    st = open_store(tmp_path / "s")
    st.save_ingest(_batch("a", _rows(2024, range(3))))
    before = st.load_daily(2024)
    state_before = (tmp_path / "s" / "state.json").read_text()
    real_replace = os.replace

    def crash(src, dst, *a, **k):
        if str(dst).endswith("state.json"):
            raise OSError("simulated power cut before the state's rename")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        st.save_ingest(_batch("b", _rows(2024, range(3, 6))))
    monkeypatch.setattr(os, "replace", real_replace)
    assert (tmp_path / "s" / "state.json").read_text() == state_before
    reopened = open_store(tmp_path / "s")
    assert reopened.load_daily(2024).equals(before)
    assert reopened.ledger_get("b") is None
    # the tables' latest versions (what a reader bypassing wattbill sees) were restored too
    latest = pl.read_delta(str(tmp_path / "s" / "daily"))
    assert latest.height == before.height
    assert DeltaTable(str(tmp_path / "s" / "ledger")).to_pyarrow_table().num_rows == 1
    # the store keeps working after the crash
    reopened.save_ingest(_batch("b", _rows(2024, range(3, 6))))
    assert reopened.load_daily(2024).height == 18


def test_an_earlier_state_opens_by_its_version(tmp_path: Path) -> None:
    """Time travel: the versions a state named stay readable after later writes (readers of that state
    finish; auditors open it with polars or deltalake)."""
    st = open_store(tmp_path / "s")
    st.save_ingest(_batch("a", _rows(2024, range(1))))
    v1 = json.loads((tmp_path / "s" / "state.json").read_text())["tables"]
    st.save_ingest(_batch("b", [("000000", "m", dt.date(2024, 1, 1), 5, None, None, None, None, True)]))
    assert st.load_daily(2024)["wh_total"].to_list() == [5, 1001, 1002]
    then = pl.read_delta(str(tmp_path / "s" / "daily"), version=v1["daily"]).sort("day")
    assert then["wh_total"].to_list() == [1000, 1001, 1002]
    assert pl.read_delta(str(tmp_path / "s" / "ledger"), version=v1["ledger"])["sha256"].to_list() == ["a"]
    st.compact(history_hours_=24)  # a vacuum that keeps a day of history keeps that version
    assert pl.read_delta(str(tmp_path / "s" / "daily"), version=v1["daily"]).height == 3


def test_streamed_load_reads_back_and_merges_on_upsert(tmp_path) -> None:
    """A streamed daily load (chunks: one Delta commit each, one state commit) reads back every row
    once; an upsert of one customer's days replaces only those rows; chunks that share a customer keep
    each key once (the last row wins)."""
    st = EmbeddedStore(tmp_path / "s", n_buckets=1)

    def chunk(customers, value):
        rows = [
            (c, f"M{c}", dt.date(2024, 1, 1) + dt.timedelta(days=d), value, None, None, None, None, False)
            for c in customers
            for d in range(10)
        ]
        return pl.DataFrame(rows, schema=DAILY_SCHEMA, orient="row")

    def batch(sha, daily):
        ledger = {"sha256": sha, "file": sha, "kind": "registers", "rows": 0, "loaded": 0, "estimated": 0,
                  "quarantined": 0, "duplicates": 0, "findings": 0}
        return IngestBatch(ledger=ledger, kind="registers", daily=daily)

    st.save_ingest(batch("a", iter([chunk(["c1", "c2", "c3"], 1), chunk(["c4", "c5", "c6"], 2),
                                    chunk(["c7", "c8", "c9"], 3)])))
    d = st.load_daily(2024)
    assert d.height == 90 and d.select("customer_id", "day").is_unique().all()
    st.save_ingest(batch("b", chunk(["c5"], 7)))
    d = st.load_daily(2024)
    assert d.height == 90
    assert d.filter(pl.col("customer_id") == "c5")["wh_total"].unique().to_list() == [7]
    assert d.filter(pl.col("customer_id") == "c4")["wh_total"].unique().to_list() == [2]
    st2 = EmbeddedStore(tmp_path / "t", n_buckets=1)
    st2.save_ingest(batch("c", iter([chunk(["c1", "c2", "c3"], 1), chunk(["c3", "c4", "c5"], 2)])))
    d2 = st2.load_daily(2024)
    assert d2.height == 50 and d2.filter(pl.col("customer_id") == "c3")["wh_total"].unique().to_list() == [2]


def _runs_frame(seed: int, shuffle_within: bool) -> pl.DataFrame:
    """Daily-like rows of 40 customers: each customer's rows sorted by (meter_id, day) and contiguous,
    the customers in a random order (as the buckets interleave them); ``shuffle_within`` breaks that.
    No key twice, as in the store."""
    import numpy as np

    rng = np.random.default_rng(seed)
    parts = []
    for c in rng.permutation(40):
        n = int(rng.integers(1, 30))
        meters = np.sort(rng.integers(0, 3, n))
        parts.append(pl.DataFrame({
            "customer_id": [f"c{c:03d}"] * n, "meter_id": [f"m{m}" for m in meters],
            "day": [dt.date(2025, 1, 1) + dt.timedelta(days=int(d)) for d in rng.choice(365, n, replace=False)],
            "wh_total": rng.integers(0, 9_000, n)}).sort("meter_id", "day"))
    if rng.random() < 0.3:  # a customer in two places (e.g. two files)
        parts.append(parts[0].with_columns(pl.col("day") + pl.duration(days=400)))
    df = pl.concat(parts)
    return df.sample(fraction=1.0, shuffle=True, seed=seed) if shuffle_within else df


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("shuffle_within", [False, True])
def test_sorted_customer_runs_equals_the_sort(seed: int, shuffle_within: bool) -> None:
    from wattbill.store.embedded import _sorted_customer_runs

    df = _runs_frame(seed, shuffle_within)
    keys = ["customer_id", "meter_id", "day"]
    assert _sorted_customer_runs(df, keys).equals(df.sort(keys))
    assert _sorted_customer_runs(df.head(1), keys).equals(df.head(1))
    assert _sorted_customer_runs(df.sort(keys), keys).equals(df.sort(keys))


# --- daily appends in day segments (issue #14) ----------------------------------------------------


def _day_rows(customers: range, days: range, value: int, meters: tuple[str, ...] = ("m",)) -> list[tuple]:
    return [
        (f"{c:06d}", m, dt.date(2024, 1, 1) + dt.timedelta(days=d), value + 7 * d + c, None, None, None, None,
         value % 2 == 1)
        for c in customers
        for m in meters
        for d in days
    ]


def _last_commit(root: Path, table: str) -> list[dict]:
    log = sorted((root / table / "_delta_log").glob("*.json"))[-1]
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_daily_load_appends_and_rewrites_nothing_stored(tmp_path: Path) -> None:
    st = open_store(tmp_path / "s")
    assert isinstance(st, EmbeddedStore)
    st.save_ingest(_batch("a", _day_rows(range(64), range(0, 90), 1000)))
    before = set(_daily_files(st)["path"])
    st.save_ingest(_batch("b", _day_rows(range(64), range(90, 91), 2000)))
    after = set(_daily_files(st)["path"])
    assert before < after  # every stored file kept, new ones added
    commit = _last_commit(tmp_path / "s", "daily")
    assert not [a for a in commit if "remove" in a]  # an append: nothing removed or rewritten
    assert {a["commitInfo"]["operation"] for a in commit if "commitInfo" in a} == {"WRITE"}
    d = st.load_daily(2024)
    assert d.height == 64 * 91 and d.equals(d.sort(["customer_id", "meter_id", "day"]))


def test_a_re_sent_day_upserts_only_its_segments(tmp_path: Path) -> None:
    st = open_store(tmp_path / "s")
    st.save_ingest(_batch("a", _day_rows(range(40), range(0, 30), 1000)))
    for day in range(30, 40):
        st.save_ingest(_batch(f"d{day}", _day_rows(range(40), range(day, day + 1), 3000)))
    # a correction of day 35 for some customers, and a late file of days 10..12
    st.save_ingest(_batch("fix", _day_rows(range(5, 9), range(35, 36), 5001)))
    st.save_ingest(_batch("late", _day_rows(range(0, 3), range(10, 13), 7001)))
    d = st.load_daily(2024)
    assert d.height == 40 * 40  # nothing lost, nothing doubled
    assert d.select(["customer_id", "meter_id", "day"]).is_unique().all()
    got = {(r[0], r[2].toordinal()): r[3] for r in d.iter_rows()}
    base = dt.date(2024, 1, 1).toordinal()
    for c in range(40):
        for day in range(40):
            want = 1000 if day < 30 else 3000
            if day == 35 and 5 <= c < 9:
                want = 5001
            if 10 <= day < 13 and c < 3:
                want = 7001
            assert got[(f"{c:06d}", base + day)] == want + 7 * day + c, (c, day)


@pytest.mark.parametrize("seed", [1, 2])
def test_many_daily_loads_compact_and_read_back_as_the_last_writes(tmp_path: Path, seed: int) -> None:
    """Random loads (new days, re-sent days, late ranges; two meters a customer) into day segments: the
    store reads back the last value written for each key, each customer's rows together unsorted, and
    compaction keeps the segments few; ``compact`` changes no row."""
    import random

    rnd = random.Random(seed)
    st = open_store(tmp_path / "s")
    assert isinstance(st, EmbeddedStore)
    want: dict[tuple[str, str, int], int] = {}
    next_day = 0
    for i in range(40):
        if rnd.random() < 0.75 or next_day < 3:
            days = range(next_day, next_day + 1)
            next_day += 1
        else:
            lo = rnd.randrange(0, next_day)
            days = range(lo, min(next_day, lo + rnd.randint(1, 4)))
        custs = range(rnd.randrange(0, 5), rnd.randrange(20, 50))
        rows = _day_rows(custs, days, 1000 * (i + 1), ("m1", "m2"))
        st.save_ingest(_batch(f"f{i}", rows))
        for r in rows:
            want[(r[0], r[1], r[2].toordinal())] = r[3]
    keys = ["customer_id", "meter_id", "day"]
    for step in ("appended", "compacted"):
        d = st.load_daily(2024)
        assert d.equals(d.sort(keys)) and d.height == len(want), step
        assert {(r[0], r[1], r[2].toordinal()): r[3] for r in d.iter_rows()} == want, step
        loose = st.load_daily(2024, sort=False)
        assert loose.sort(keys).equals(d)
        assert loose["customer_id"].rle().len() == loose["customer_id"].n_unique(), step
        some = [f"{c:06d}" for c in range(0, 50, 9)]
        assert st.load_daily(2024, some).equals(d.filter(pl.col("customer_id").is_in(some))), step
        most = _daily_files(st).group_by("partition.bucket").len()["len"].max()
        if step == "appended":
            assert most < next_day - 5, (most, next_day)  # one segment a new day, less compaction
            st.compact()
        else:
            assert most == 1, most  # one sorted file a partition


_KILL_BILLS = """
import os, signal, sys
import polars as pl
from wattbill.store import open_store
from wattbill.store.embedded import EmbeddedStore

def die(self, table):
    if table == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)

EmbeddedStore._after_table_commit = die
bills = pl.DataFrame({"customer_id": ["c1", "c2"], "total_fen": [110, 220]})
months = pl.DataFrame({"customer_id": ["c1", "c2"], "month": [1, 1], "fen": [110, 220]})
open_store(sys.argv[1]).save_bills(2025, bills, months, "recalc")
"""


@pytest.mark.parametrize("mode", ["kill", "raise"])
def test_a_bill_save_stopped_between_bills_and_months_is_undone(tmp_path: Path, mode: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The sibling of a load killed between two tables: ``save_bills`` commits ``bills`` then ``bill_months``;
    stopped between them (kill -9, or an error in the process), the store keeps the previous versions of
    both, and the tables' latest Delta versions too after the recovery."""
    import signal
    import subprocess
    import sys

    root = tmp_path / "s"
    st = open_store(root)
    st.save_bills(2025, pl.DataFrame({"customer_id": ["c1", "c2"], "total_fen": [100, 200]}),
                  pl.DataFrame({"customer_id": ["c1", "c2"], "month": [1, 1], "fen": [100, 200]}), "run")
    before = (st.load_bills(2025, all_versions=True), st.load_bill_months(2025))
    if mode == "kill":
        p = subprocess.run([sys.executable, "-c", _KILL_BILLS, str(root), "bills"], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == -signal.SIGKILL, p.stderr
        st = open_store(root)
    else:
        def fail(self, table):
            if table == "bills":
                raise OSError("disk full")

        monkeypatch.setattr(EmbeddedStore, "_after_table_commit", fail)
        with pytest.raises(OSError, match="disk full"):
            st.save_bills(2025, pl.DataFrame({"customer_id": ["c1", "c2"], "total_fen": [110, 220]}),
                          pl.DataFrame({"customer_id": ["c1", "c2"], "month": [1, 1], "fen": [110, 220]}), "recalc")
    assert st.load_bills(2025, all_versions=True).equals(before[0])
    assert st.load_bill_months(2025).equals(before[1])
    assert pl.read_delta(str(root / "bills")).height == 2  # the latest version: restored
    assert not (root / ".writing").exists()


def test_the_bill_tables_are_zstd_with_dictionaries_for_text_only_also_after_compact(tmp_path: Path) -> None:
    """The bill run's tables are written (and compacted) with ``_results_writer``: zstd, a dictionary for the
    text columns and none for the numbers (read back from the Parquet files' metadata); the daily table keeps
    deltalake's defaults; the rows read back are those saved."""
    import glob

    import pyarrow.parquet as pq

    root = tmp_path / "s"
    st = open_store(root)
    st.save_ingest(_batch("a" * 64, _rows(2025, range(3))))
    for k in range(2):  # two versions: two files per partition, which compact merges
        st.save_bills(2025, pl.DataFrame({"customer_id": ["c1", "c2"], "tariff": ["t", "t"], "kwh": [1.5 + k, 2.5]}),
                      pl.DataFrame({"customer_id": ["c1", "c2"], "month": [1, 1], "kwh": [1.5 + k, 2.5]}), f"run {k}")
    saved = st.load_bill_months(2025)

    def encodings(table: str) -> dict[str, tuple[set[str], set[str]]]:
        got: dict[str, tuple[set[str], set[str]]] = {}
        for f in glob.glob(str(root / table / "**" / "*.parquet"), recursive=True):
            md = pq.ParquetFile(f).metadata
            for g in range(md.num_row_groups):
                for i in range(md.num_columns):
                    c = md.row_group(g).column(i)
                    codecs, encs = got.setdefault(c.path_in_schema, (set(), set()))
                    codecs.add(c.compression)
                    encs.update(c.encodings)
        return got

    for when in ("written", "compacted"):
        for table in ("bills", "bill_months"):
            got = encodings(table)
            assert {c for codecs, _ in got.values() for c in codecs} == {"ZSTD"}, (when, table, got)
            assert "RLE_DICTIONARY" in got["customer_id"][1], (when, table, got)
            assert "RLE_DICTIONARY" not in got["kwh"][1] and "RLE_DICTIONARY" not in got["version"][1], (when, table)
        assert "RLE_DICTIONARY" in encodings("daily")["wh_total"][1]  # (deltalake's defaults)
        st.compact(0)
    assert st.load_bill_months(2025).equals(saved)
