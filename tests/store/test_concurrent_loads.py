"""Concurrent and out-of-order loads, and kill -9 mid-commit (issue #13), with real processes.

Two loads of consecutive periods started together must give the rows of the two loads one after the
other (each load reads the meters' last reads under the store's ingest lock), and a later period loaded
before an earlier one must not lose the boundary day (the later file's first reads are kept as heads).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from wattbill.ingest import ingest_file
from wattbill.store import open_store

REPO = Path(__file__).resolve().parents[2]
METERS = 300


def _period_files(tmp: Path) -> tuple[Path, Path]:
    """Register reads of ``METERS`` meters: January (file A) and February (file B), no overlap."""
    rng = np.random.default_rng(4)
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(59)]
    rows = []
    for m in range(METERS):
        start = float(rng.integers(1000, 90000))
        use = rng.integers(1000, 20000, len(days)) / 1000  # kWh per day, 3 decimals
        total = start + np.cumsum(use)
        for d, t in zip(days, total, strict=True):
            rows.append((f"{m:06d}", f"M{m:06d}", d.isoformat(), f"{t:.3f}"))
    df = pl.DataFrame(rows, schema=["customer_id", "meter_id", "read_date", "total"], orient="row")
    a, b = tmp / "jan.csv", tmp / "feb.csv"
    df.filter(pl.col("read_date") < "2025-02-01").write_csv(a)
    df.filter(pl.col("read_date") >= "2025-02-01").write_csv(b)
    return a, b


def _cli(args: list[str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "WATTBILL_STORE"}
    return subprocess.Popen([sys.executable, "-m", "wattbill.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _daily(url: str) -> pl.DataFrame:
    st = open_store(url)
    try:
        return st.load_daily(2025)
    finally:
        st.close()


def _sequential(tmp: Path, a: Path, b: Path) -> pl.DataFrame:
    st = open_store(tmp / "sequential")
    ingest_file(a, "registers", st)
    ingest_file(b, "registers", st)
    return st.load_daily(2025)


def _together(url: str, a: Path, b: Path) -> None:
    procs = [_cli(["ingest", "reads", str(f), "--store", url]) for f in (a, b)]
    for p in procs:
        _out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err


@pytest.fixture(scope="module")
def periods(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pl.DataFrame]:
    tmp = tmp_path_factory.mktemp("periods")
    a, b = _period_files(tmp)
    ref = _sequential(tmp, a, b)
    # the boundary day is there: every meter has 58 days (1 Jan only anchors)
    assert ref.height == METERS * 58
    return a, b, ref


@pytest.mark.parametrize("trial", range(3))
def test_two_loads_together_embedded(periods, tmp_path: Path, trial: int) -> None:
    a, b, ref = periods
    _together(str(tmp_path / "store"), a, b)
    assert _daily(str(tmp_path / "store")).equals(ref)


def test_later_period_first_embedded(periods, tmp_path: Path) -> None:
    a, b, ref = periods
    st = open_store(tmp_path / "store")
    ingest_file(b, "registers", st)
    assert st.load_daily(2025).height == METERS * 27  # 1 Feb only anchors: no earlier read yet
    ingest_file(a, "registers", st)
    assert st.load_daily(2025).equals(ref)  # 1 Feb computed from 31 Jan: nothing lost
    # and the state is February's last read, not January's
    state = st.load_register_state()
    assert state["day"].unique().to_list() == [dt.date(2025, 2, 28)]


@pytest.mark.db
@pytest.mark.parametrize("order", ["together", "together-again", "later-first"])
def test_loads_timescaledb(periods, pg_store_url: str, order: str) -> None:
    a, b, ref = periods
    if order == "later-first":
        st = open_store(pg_store_url)
        try:
            ingest_file(b, "registers", st)
            ingest_file(a, "registers", st)
        finally:
            st.close()
    else:
        _together(pg_store_url, a, b)
    assert _daily(pg_store_url).equals(ref)


# --- kill -9 mid-commit -----------------------------------------------------------------------


def _named(store: Path) -> set[str]:
    """Data files some commit of a table's Delta log names (added, or removed and kept for time travel)."""
    named = set()
    for log in store.glob("*/_delta_log"):
        for f in log.glob("*.json"):
            for line in f.read_text().splitlines():
                action = json.loads(line)
                for kind in ("add", "remove"):
                    if kind in action:
                        named.add(f"{log.parent.name}/{urllib.parse.unquote(action[kind]['path'])}")
    return named


def _strays(store: Path) -> list[str]:
    """Files of a write that died before its commit: data files (or their staging copies) no log names,
    temporary commit files and ``*.tmp`` files."""
    named = _named(store)
    out = []
    for p in store.rglob("*"):
        if not p.is_file():
            continue
        rel = p.relative_to(store).as_posix()
        if rel.startswith((".", "_")) or "/" not in rel:
            continue
        in_log = "/_delta_log/" in rel
        if p.suffix == ".tmp" or (in_log and p.name.startswith("_commit_")) or (not in_log and rel not in named):
            out.append(rel)
    return out


@pytest.mark.slow
def test_kill_9_mid_commit_leaves_no_orphans(periods, tmp_path: Path) -> None:
    """kill -9 an ingest at several moments (while it writes its files); the next write removes what the
    killed one left, the rows are those of a clean load, and no temporary folder stays behind."""
    a, b, ref = periods
    store = tmp_path / "store"
    ingest_file(a, "registers", open_store(store))
    rng = np.random.default_rng(9)
    killed_with_strays = 0
    for _ in range(6):
        p = _cli(["ingest", "reads", str(b), "--store", str(store)])
        deadline = time.monotonic() + 120
        # wait until the load is writing its files (a new partition file appears), then kill at once
        before = set(_named(store))
        while time.monotonic() < deadline and p.poll() is None:
            files = {q.relative_to(store).as_posix() for q in store.rglob("*.parquet*")}
            if files - before or (store / "_staging").exists():
                break
            time.sleep(0.002)
        time.sleep(float(rng.uniform(0, 0.05)))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
        if _strays(store) or (store / ".writing").exists():  # killed while writing: files or commits
            killed_with_strays += 1
        if p.returncode == 0:  # finished before the kill: start again from January only
            break
    # the next write (a load of the same file) sweeps the strays and completes
    rep = ingest_file(b, "registers", open_store(store))
    assert rep.rows == rep.loaded + rep.quarantined + rep.duplicates
    assert _strays(store) == []
    assert not (store / "_staging").exists()
    assert not list(store.rglob("*.tmp"))
    assert not (store / ".writing").exists()
    assert open_store(store).load_daily(2025).equals(ref)
    assert killed_with_strays >= 1, "no kill landed while files were being written"
