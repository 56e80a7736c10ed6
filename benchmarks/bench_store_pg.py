"""Daily-load benchmark of the TimescaleDB store (issue #14): does a day's file cost a day?

    WATTBILL_PG_PORT=... .venv/bin/python -m benchmarks.bench_store_pg [--customers 100000] [--dsn URL]

A store (a fresh database on the cluster of ``scripts/pg.sh``, or ``--dsn``) is filled through the real
ingest path (``ingest_file`` of register-read CSVs, 4 time-of-use registers, one read per meter and
day) up to 0, 90, 180 and 365 stored days of N households; at each level one daily file of the next
day (N reads) is loaded and timed. Then, at 365 stored days: the same day re-sent with other bytes
(identical rows: duplicates of stored rows, nothing changes) and a correction file (every meter's
last day read again with other values: upserts). Printed per load: wall seconds, CPU seconds of this
process, CPU seconds of the server processes serving the benchmark's database (``ServerCpu``: the
postmaster's children whose title names the database, so other clusters and other databases are not
counted; background workers such as autovacuum are not counted either), and the time inside ``store.save_ingest``; the bulk
files give the "year's file" rows/s the daily rate is compared with. CPU seconds, not wall, are the
fair comparison on a busy machine.

Read-back (``--read``): ``load_daily`` of the year after the loads, rows/s.

Recorded 2026-12-01 on the shared 2-core machine (load average 20-23; CPU = client + server)::

    N = 20,000      daily file at   0 stored days  0.66 + 0.50 CPU-s
                    daily file at  90 stored days  0.70 + 0.52 CPU-s
                    daily file at 180 stored days  0.75 + 0.66 CPU-s
                    daily file at 365 stored days  0.69 + 0.63 CPU-s     max/min x1.21 (wall x1.85)
                    re-sent day 0.72 + 0.76, correction 0.80 + 0.84 CPU-s
                    bulk files 0.08 M rows/CPU-s, daily files 0.02 M rows/CPU-s
    N = 100,000     before (the store at the start of issue #14): day at 0 / 90 stored days
                    2.04 + 2.76 / 1.67 + 2.98 CPU-s; 89-day bulk file 0.06 M rows/CPU-s (staging + INSERT)
                    after (BRIN check, per-part COPY): 2.72 + 2.60 / 2.63 + 6.05 CPU-s, bulk 0.07 M rows/CPU-s;
                    the 6.05 was the bulk's pages not yet BRIN-summarized (fixed after this run by
                    ``TimescaleStore._summarize_days``; not re-measured at 100k: the levels 180 and 365 did not
                    fit in the session)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
FIRST = dt.date(2023, 12, 31)  # the anchor read; day 1 of the stored data is 2024-01-01


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Reads:
    """Register reads of ``n`` meters, generated day range by day range (the cumulative registers carry on)."""

    def __init__(self, n: int, seed: int = 1) -> None:
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.ids = np.char.zfill(np.arange(n).astype(str), 10)
        self.shares = self.rng.dirichlet([1, 3, 4, 2], size=n)
        self.cum = self.rng.integers(100_000, 5_000_000, size=(n, 4)).astype(np.int64)  # 0.01 kWh
        self.next_day = 0  # days after FIRST already generated (the anchor is day 0)

    def write(self, path: Path, days: int) -> int:
        """Write the next ``days`` reads of every meter (day 0 = the anchor); returns the rows."""
        first = self.next_day
        if first == 0:
            regs = np.zeros((self.n, days, 4), dtype=np.int64)
            regs[:, 1:] = self._use(days - 1)
        else:
            regs = self._use(days)
        cum = self.cum[:, None, :] + np.cumsum(regs, axis=1)
        self.cum = cum[:, -1, :].copy()
        self.next_day += days
        df = pl.DataFrame(
            {
                "customer_id": np.repeat(self.ids, days),
                "meter_id": np.repeat(np.char.add("M", self.ids), days),
                "read_date": np.tile(np.arange(first, first + days, dtype="timedelta64[D]")
                                     + np.datetime64(FIRST), self.n),
                "total": cum.sum(axis=2).reshape(-1) / 100,
                "sharp": cum[:, :, 0].reshape(-1) / 100,
                "peak": cum[:, :, 1].reshape(-1) / 100,
                "flat": cum[:, :, 2].reshape(-1) / 100,
                "valley": cum[:, :, 3].reshape(-1) / 100,
            }
        ).with_columns(pl.col("read_date").cast(pl.Date))
        df.write_csv(path, float_precision=2)
        return df.height

    def _use(self, days: int) -> np.ndarray:
        daily = self.rng.gamma(2.0, 4.0, size=(self.n, days)) * 1000  # Wh
        return (daily[:, :, None] * self.shares[:, None, :] / 10).astype(np.int64)


def cluster_pid(url: str) -> int | None:
    """The postmaster of the cluster whose socket folder ``url`` names (``<base>/sock`` -> ``<base>/data``)."""
    host = url.split("host=", 1)[1].split("&", 1)[0] if "host=" in url else ""
    pidfile = Path(host).parent / "data" / "postmaster.pid"
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _backend_ticks(pm: int, db: str | None) -> dict[int, int]:
    """CPU ticks of the postmaster's children serving ``db`` (their process title names the database;
    all children when ``db`` is None)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            if int(f[1]) != pm:
                continue
            if db is not None and f" {db} " not in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace") + " ":
                continue
            out[int(d.name)] = int(f[11]) + int(f[12])
        except (OSError, ValueError, IndexError):
            continue
    return out


class ServerCpu:
    """CPU seconds of the server processes serving one database, sampled every ``every`` seconds on a
    thread so that backends that end (a ``wattbill ingest`` or ``psql`` process's) are counted up to
    their last sample. Other clusters and other databases on the machine are not counted."""

    def __init__(self, pm: int | None, db: str | None, every: float = 0.25) -> None:
        self.pm, self.db, self.every = pm, db, every
        self.seen: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        if self.pm is None:
            return
        for pid, t in _backend_ticks(self.pm, self.db).items():
            if t > self.seen.get(pid, -1):
                self.seen[pid] = t

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def seconds(self) -> float:
        """CPU seconds so far (a fresh sample first)."""
        self._sample()
        return sum(self.seen.values()) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def server_cpu(pm: int | None) -> float:
    """CPU seconds of the postmaster ``pm``, its live children and its reaped ones (0 when unknown)."""
    if pm is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(d.name), int(f[1])
        if pid == pm:
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        elif ppid == pm:
            total += int(f[11]) + int(f[12])
    return total / tick


def warm_up() -> None:
    """Load a few small files into a throwaway embedded store: numba's kernels compile (or load from
    their cache) here, not inside the first timed load."""
    from wattbill.ingest import ingest_file
    from wattbill.store import open_store

    with tempfile.TemporaryDirectory(prefix="wattbill-bench-warm-") as d:
        r = Reads(50, seed=9)
        st = open_store(Path(d) / "store")
        for i, days in enumerate((1, 1, 5, 1)):
            p = Path(d) / f"{i}.csv"
            r.write(p, days)
            ingest_file(p, "registers", st)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--levels", default="0,90,180,365", help="stored days at which a daily file is timed")
    ap.add_argument("--dsn", help="an existing database (default: a fresh one on scripts/pg.sh's cluster)")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark database")
    ap.add_argument("--read", action="store_true", help="also time load_daily of the year")
    args = ap.parse_args(argv)

    import psycopg

    from wattbill.ingest import ingest_file
    from wattbill.store.timescale import TimescaleStore

    admin = args.dsn
    db = None
    if admin is None:
        out = subprocess.run(["bash", str(REPO / "scripts/pg.sh"), "start"], capture_output=True, text=True,
                             check=True)
        admin = out.stdout.strip().splitlines()[-1]
        db = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"CREATE DATABASE {db}")
        url = admin.replace("/wattbill?", f"/{db}?")
    else:
        url = admin
    pm = cluster_pid(url)
    dbname = url.split("?", 1)[0].rsplit("/", 1)[1]
    scpu = ServerCpu(pm, dbname)
    n = args.customers
    levels = [int(x) for x in args.levels.split(",")]
    work = Path(tempfile.mkdtemp(prefix="wattbill-bench-pg-"))
    reads = Reads(n)
    st = TimescaleStore(url)
    save_time = [0.0]
    orig_save = st.save_ingest

    def timed_save(batch):  # the store's share of a load (the rest is reading + VEE)
        t = time.perf_counter()
        try:
            return orig_save(batch)
        finally:
            save_time[0] = time.perf_counter() - t

    st.save_ingest = timed_save  # type: ignore[method-assign]

    def load(path: Path, label: str) -> dict:
        c0, s0, t0 = cpu_seconds(), scpu.seconds(), time.perf_counter()
        rep = ingest_file(path, "registers", st)
        wall = time.perf_counter() - t0
        time.sleep(0.1)
        r: dict[str, Any] = {"label": label, "rows": rep.rows, "loaded": rep.loaded, "dups": rep.duplicates,
             "quarantined": rep.quarantined, "wall": wall, "cpu": cpu_seconds() - c0,
             "server_cpu": scpu.seconds() - s0, "save": save_time[0]}
        print(f"  {label:<34} {rep.rows:>10,} rows  loaded {rep.loaded:>10,}  dups {rep.duplicates:>8,}"
              f"  wall {wall:7.2f} s  save {r['save']:6.2f} s  cpu {r['cpu']:6.2f} s"
              f"  server cpu {r['server_cpu']:6.2f} s  {rep.rows / wall / 1e6:5.2f} M rows/s wall"
              f"  {rep.rows / (r['cpu'] + r['server_cpu']) / 1e6:5.2f} M rows/CPU-s", flush=True)
        return r

    warm_up()
    print(f"TimescaleDB daily-load benchmark: N = {n:,} households, store {url.split('?')[0]}")
    results = []
    try:
        stored = 0
        p = work / "anchor.csv"
        reads.write(p, 1)
        load(p, "anchor read (day 0)")
        for lv in levels:
            if lv > stored:
                p = work / f"bulk-{stored + 1}-{lv}.csv"
                reads.write(p, lv - stored)
                results.append(load(p, f"bulk: days {stored + 1}-{lv}"))
                p.unlink()
                stored = lv
            p = work / f"day-{stored + 1}.csv"
            reads.write(p, 1)
            r = load(p, f"DAILY file at {stored} stored days")
            r["stored"] = stored
            results.append(r)
            stored += 1
            last = p
        # re-sent day (other bytes, same rows) and a correction of that day
        df = pl.read_csv(last, infer_schema=False)
        resent = work / "resent.csv"
        df.select(df.columns[::-1][4:] + df.columns[::-1][:4]).write_csv(resent)  # columns reordered
        results.append(load(resent, "re-sent day (identical rows)"))
        corr = work / "correction.csv"
        df.with_columns([(pl.col(c).cast(pl.Float64) + 0.01).round(2) for c in ("total", "flat")]).write_csv(
            corr, float_precision=2)
        results.append(load(corr, "correction of that day"))
        with st.conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM daily")
            row = cur.fetchone()
            total = row[0] if row else 0
        print(f"  daily rows stored: {total:,}  (expected {n * stored:,})")
        daily = [r for r in results if "stored" in r]
        bulk = [r for r in results if r["label"].startswith("bulk")]
        walls = [r["wall"] for r in daily]
        cpus = [r["cpu"] + r["server_cpu"] for r in daily]
        print(f"  daily wall max/min x{max(walls) / min(walls):.2f};  CPU (client+server) max/min"
              f" x{max(cpus) / min(cpus):.2f}   [target: within x1.5]")
        if bulk:
            year = sum(r["rows"] for r in bulk) / sum(r["wall"] for r in bulk)
            year_cpu = sum(r["rows"] for r in bulk) / sum(r["cpu"] + r["server_cpu"] for r in bulk)
            day = sum(r["rows"] for r in daily) / sum(walls)
            day_cpu = sum(r["rows"] for r in daily) / sum(cpus)
            print(f"  bulk files {year / 1e6:.2f} M rows/s wall, {year_cpu / 1e6:.2f} M rows/CPU-s;"
                  f" daily files {day / 1e6:.2f} M rows/s wall, {day_cpu / 1e6:.2f} M rows/CPU-s"
                  f"   [target: daily >= half]")
        if args.read:
            for y in (2024,):
                c0, s0, t0 = cpu_seconds(), scpu.seconds(), time.perf_counter()
                d = st.load_daily(y)
                wall = time.perf_counter() - t0
                print(f"  load_daily({y}): {d.height:,} rows  {d.height / wall / 1e6:.2f} M rows/s wall,"
                      f" cpu {cpu_seconds() - c0:.2f} s + server {scpu.seconds() - s0:.2f} s")
    finally:
        scpu.stop()
        st.close()
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
        if db is not None and not args.keep:
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        elif db is not None:
            print(f"  kept database {db}")


if __name__ == "__main__":
    main()
