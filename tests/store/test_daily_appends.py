"""Daily appends into the embedded store under kill -9 and concurrent loads (issue #14), real processes.

A store holding some weeks of reads gets daily files through ``wattbill ingest reads`` subprocesses:
killed with SIGKILL at random moments, the store must hold the previous state or the new one (daily
rows and ledger), never a mix; two loads started together (two days, or the last days of a year and
the first of the next) must give the rows of the two loads one after the other, the first day of the
next year included.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from wattbill.ingest import ingest_file
from wattbill.store import open_store

REPO = Path(__file__).resolve().parents[2]
METERS = 200
KEYS = ["customer_id", "meter_id", "day"]


def _reads(first: dt.date, days: int, seed: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    dates = [first + dt.timedelta(days=i) for i in range(days)]
    for m in range(METERS):
        total = float(rng.integers(1000, 90000)) + np.cumsum(rng.integers(1000, 20000, days) / 1000)
        rows += [(f"{m:06d}", f"M{m:06d}", d.isoformat(), f"{t:.3f}") for d, t in zip(dates, total, strict=True)]
    return pl.DataFrame(rows, schema=["customer_id", "meter_id", "read_date", "total"], orient="row")


def _split(df: pl.DataFrame, tmp: Path, bounds: list[str]) -> list[Path]:
    """Files of the reads in [bounds[i], bounds[i+1])."""
    out = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        p = tmp / f"part{i}-{lo}.csv"
        df.filter((pl.col("read_date") >= lo) & (pl.col("read_date") < hi)).write_csv(p)
        out.append(p)
    return out


def _cli(args: list[str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "WATTBILL_STORE"}
    return subprocess.Popen([sys.executable, "-m", "wattbill.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _state(store: Path, years: tuple[int, ...]) -> tuple[pl.DataFrame, list[str]]:
    st = open_store(store)
    daily = pl.concat([st.load_daily(y) for y in years], how="vertical_relaxed")
    return daily, sorted(st.load_ledger()["sha256"].to_list())


@pytest.mark.slow
def test_kill_9_of_daily_loads_leaves_the_previous_or_the_new_state(tmp_path: Path) -> None:
    reads = _reads(dt.date(2025, 1, 1), 40)
    base, *days = _split(reads, tmp_path, ["2025-01-01", "2025-02-01", "2025-02-02", "2025-02-03", "2025-02-04"])
    # the states one after the other, from a clean store
    ref = tmp_path / "ref"
    ingest_file(base, "registers", open_store(ref))
    states = [_state(ref, (2025,))]
    for f in days:
        ingest_file(f, "registers", open_store(ref))
        states.append(_state(ref, (2025,)))
    store = tmp_path / "store"
    ingest_file(base, "registers", open_store(store))
    # how long a daily load takes here (then kill within that span)
    t0 = time.monotonic()
    p = _cli(["ingest", "reads", str(days[0]), "--store", str(store)])
    p.communicate(timeout=300)
    span = time.monotonic() - t0
    assert p.returncode == 0
    rng = np.random.default_rng(14)
    at, kills = 1, 0
    while at < len(days):
        p = _cli(["ingest", "reads", str(days[at]), "--store", str(store)])
        time.sleep(float(rng.uniform(0.3, 1.0)) * span)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            kills += 1
        p.wait()
        daily, ledger = _state(store, (2025,))
        prev, new = states[at], states[at + 1]
        is_prev = daily.equals(prev[0]) and ledger == prev[1]
        is_new = daily.equals(new[0]) and ledger == new[1]
        assert is_prev or is_new, f"day {at}: a state between the two ({daily.height} rows)"
        assert daily.select(KEYS).is_unique().all()
        if is_new:
            at += 1
        elif kills > 12:  # the kills keep landing before the commit: load it cleanly
            rep = ingest_file(days[at], "registers", open_store(store))
            assert rep.rows == rep.loaded + rep.quarantined + rep.duplicates
    assert kills >= 1, "no kill landed during a load"
    assert _state(store, (2025,))[0].equals(states[-1][0])


def _together(store: Path, files: list[Path]) -> None:
    procs = [_cli(["ingest", "reads", str(f), "--store", str(store)]) for f in files]
    for p in procs:
        _out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err


@pytest.mark.slow
@pytest.mark.parametrize("case", ["two-days", "year-end"])
def test_two_loads_at_once_give_the_sequential_rows(tmp_path: Path, case: str) -> None:
    if case == "two-days":
        reads = _reads(dt.date(2025, 1, 1), 34)
        base, a, b = _split(reads, tmp_path, ["2025-01-01", "2025-02-02", "2025-02-03", "2025-02-04"])
        years: tuple[int, ...] = (2025,)
    else:  # the last days of 2024 and the first of 2025 at once: each meter's 1 January must be there
        reads = _reads(dt.date(2024, 12, 1), 40)
        base, a, b = _split(reads, tmp_path, ["2024-12-01", "2024-12-20", "2025-01-01", "2025-01-10"])
        years = (2024, 2025)
    seq = tmp_path / "sequential"
    for f in (base, a, b):
        ingest_file(f, "registers", open_store(seq))
    ref, ref_ledger = _state(seq, years)
    n_reads = reads.height
    assert ref.height == n_reads - METERS  # every read but each meter's first gives a day
    if case == "year-end":
        assert ref.filter(pl.col("day") == dt.date(2025, 1, 1)).height == METERS
    for trial in range(2):  # (the earlier day first, then the later first)
        store = tmp_path / f"together-{trial}"
        ingest_file(base, "registers", open_store(store))
        _together(store, [b, a] if trial else [a, b])
        daily, ledger = _state(store, years)
        assert daily.equals(ref), trial
        assert len(ledger) == len(ref_ledger)


_KILL_AT = """
import os, signal, sys
from wattbill.ingest import ingest_file
from wattbill.store import open_store
from wattbill.store.embedded import EmbeddedStore

def die(self, table):
    if table == sys.argv[3]:
        os.kill(os.getpid(), signal.SIGKILL)

EmbeddedStore._after_table_commit = die
ingest_file(sys.argv[1], "registers", open_store(sys.argv[2]))
"""


@pytest.mark.parametrize("table", ["daily", "register_state", "ledger"])
def test_kill_9_between_two_tables_commits_is_undone(tmp_path: Path, table: str) -> None:
    """kill -9 a daily load right after one table's Delta commit (before the next table's, or after the
    ledger's and before the state names it): wattbill reads the previous state; the next open undoes the
    killed load's commits (a reader of the tables' latest versions then sees the previous rows too, never
    a row twice), and the load done again gives the state of a clean load."""
    from deltalake import DeltaTable

    reads = _reads(dt.date(2025, 1, 1), 33)
    base, day = _split(reads, tmp_path, ["2025-01-01", "2025-02-01", "2025-02-03"])
    ref = tmp_path / "ref"
    ingest_file(base, "registers", open_store(ref))
    ingest_file(day, "registers", open_store(ref))
    want = _state(ref, (2025,))
    store = tmp_path / "store"
    ingest_file(base, "registers", open_store(store))
    prev = _state(store, (2025,))
    p = subprocess.run([sys.executable, "-c", _KILL_AT, str(day), str(store), table], capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert (store / ".writing").exists()  # the killed write's marker
    # the killed load's commit is in the table's latest version, the state does not name it
    latest = DeltaTable(str(store / table)).version()
    assert latest > json.loads((store / "state.json").read_text())["tables"][table]
    st = open_store(store)  # recovery on open (no writer at work)
    daily, ledger = _state(store, (2025,))
    assert daily.equals(prev[0]) and ledger == prev[1]
    assert not (store / ".writing").exists()
    for t in ("daily", "ledger", "register_state"):  # what a reader bypassing wattbill sees
        raw = pl.read_delta(str(store / t))
        assert raw.height == {"daily": prev[0].height, "ledger": len(prev[1])}.get(t, raw.height), t
    raw = pl.read_delta(str(store / "daily"))
    assert raw.select(KEYS).is_unique().all()
    rep = ingest_file(day, "registers", st)
    assert rep.rows == rep.loaded + rep.quarantined + rep.duplicates
    got = _state(store, (2025,))
    assert got[0].equals(want[0]) and got[1] == want[1]
