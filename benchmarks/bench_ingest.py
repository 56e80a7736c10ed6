"""Ingest benchmark: register reads into the embedded store and into TimescaleDB, and memory vs size.

    .venv/bin/python -m benchmarks.bench_ingest [--customers 6000] [--no-pg] [--rss-sizes 500000,1000000,...]

1. **Embedded**: ``ingest_file`` of a register-reads CSV (design format, 4 time-of-use registers,
   kWh with 2 decimals, one read per meter and day) into a fresh embedded store; rows/s (wall) and
   the process CPU seconds (the machine may be shared). Target: >= 2M rows/s on 2 cores.
2. **TimescaleDB vs psql \\copy** (same run, same rows, same table): the daily rows that ingest
   produced are loaded into an empty ``daily`` hypertable (a) by the store (vectorised binary COPY
   into a staging table + ``INSERT ... ON CONFLICT``, one transaction) and (b) by
   ``psql -c "\\copy daily FROM file CSV"`` of the same rows as CSV. Best of N alternating runs; ratio
   printed. Also the full ``ingest_file`` into TimescaleDB. The cluster is started with
   ``scripts/pg.sh start`` and stopped afterwards if this run started it.
3. **Peak RSS vs file size**: each size ingested in a fresh subprocess (embedded store) with customer
   buckets of ``WATTBILL_INGEST_BUCKET_MB`` (default here 16 MB) to show memory stays flat.

Recorded 2026-11-23, end of the second session, on a quiet machine (load average 1.3 from this
run itself), ``--rss-sizes 500000,2000000,8000000,16000000``::

    register reads: 2,196,000 rows, 165 MB CSV
    embedded store : 2.27 M rows/s wall, best of 5 (0.97 s; median 2.13 M rows/s),
                     1.26 M rows per CPU-second                              [target >= 2 M rows/s: met]
                     first run in the process (numba kernels loaded, memory first touched): 1.68 M rows/s
    peak memory vs file size (embedded, 16 MB customer buckets):
           499,956 rows     38 MB file   peak anon 296 MB   peak RSS 451 MB
         1,999,824 rows    150 MB file   peak anon 371 MB   peak RSS 527 MB
         7,999,662 rows    602 MB file   peak anon 421 MB   peak RSS 576 MB
        15,999,690 rows  1,203 MB file   peak anon 444 MB   peak RSS 600 MB

    TimescaleDB, the same 2,190,000 daily rows into the empty hypertable, best of 3, after dropping
    TimescaleDB's default index on day (store/timescale.py; both paths load the same table):
      store, new data (binary COPY)       wall 6.16 s   x1.00 vs psql   CPU (client + server) 6.53 s  x1.00
      psql \\copy of the same rows as CSV  wall 6.18 s                   CPU 6.53 s

Where the embedded time goes (one warm run, 2 cores): reading the CSV typed 0.30 s (both cores),
VEE 0.29 s (two halves of whole customers on two threads; numba kernels for the per-meter passes),
the store 0.40 s (check and partition in halves, 64 partition files written by 4 threads, register
state, ledger); the file's SHA-256 is computed beside VEE. Session start was 0.42-0.57 M rows/s.

Kernels removed for simplicity (issue #11, measured 2026-12-01 under load ~15 on 2 cores, CPU time):
``kwh_to_wh`` (numba) -> ``np.rint(kwh * 1000).astype(int64)``: 3.7 -> 16.2 ms CPU per 2.2M values,
about 12 ms per register column, ~60 ms (~3 %) of the ~2 CPU-s ingest of 2.2M reads.
Kept: "needs no stripping" read from polars' string views in place (``wattbill._arrow.plain_text``, in
the one module of such readers, with its plain path) against the copy to a large string array that
follows it otherwise: 7.8 vs 25.6 ms CPU per 2.2M customer ids (3.3x, load 16, best of 5).

TimescaleDB is at parity with ``psql \\copy``, not faster: the server's per-row insert (heap, primary
key, chunk routing) is the same work whichever client sends the rows, and it is ~95 % of the time.
Runs today gave x0.86 to x1.03 (best of 3 or 5, run to run noise of about 10 %); binary COPY is sent
100,000 rows at a time so that the server inserts while the client encodes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]


def make_reads(path: Path, n_customers: int, days: int = 366, seed: int = 1, start_id: int = 0) -> int:
    """Write a register-reads CSV (design format) and return its number of data rows."""
    rng = np.random.default_rng(seed)
    daily = rng.gamma(2.0, 4.0, size=(n_customers, days)) * 1000  # Wh
    shares = rng.dirichlet([1, 3, 4, 2], size=n_customers)  # sharp, peak, flat, valley
    regs = (daily[:, :, None] * shares[:, None, :] / 10).astype(np.int64)  # 0.01 kWh per day per register
    start = rng.integers(100_000, 5_000_000, size=(n_customers, 1, 4))
    cum = start + np.cumsum(regs, axis=1)
    total = cum.sum(axis=2)
    n = n_customers * days
    ids = np.char.zfill(np.arange(start_id, start_id + n_customers).astype(str), 10)
    first = dt.date(2024, 1, 1) - dt.timedelta(days=1)
    df = pl.DataFrame(
        {
            "customer_id": np.repeat(ids, days),
            "meter_id": np.repeat(np.char.add("M", ids), days),
            "read_date": np.tile(np.arange(days, dtype="timedelta64[D]") + np.datetime64(first), n_customers),
            "total": total.reshape(-1) / 100,
            "sharp": cum[:, :, 0].reshape(-1) / 100,
            "peak": cum[:, :, 1].reshape(-1) / 100,
            "flat": cum[:, :, 2].reshape(-1) / 100,
            "valley": cum[:, :, 3].reshape(-1) / 100,
        }
    ).with_columns(pl.col("read_date").cast(pl.Date))
    df.write_csv(path, float_precision=2)
    return n


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bench_embedded(reads: Path, rows: int, work: Path, repeats: int = 5) -> dict:
    """``ingest_file`` into a fresh embedded store, ``repeats`` times: best and median wall time, and
    the CPU seconds (all threads) of the best run."""
    from wattbill.ingest import ingest_file
    from wattbill.store import open_store

    runs = []
    for i in range(repeats):
        root = work / f"embedded-{i}"
        shutil.rmtree(root, ignore_errors=True)
        st = open_store(root)
        t0, c0 = time.perf_counter(), cpu_seconds()
        rep = ingest_file(reads, "registers", st)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        assert rep.rows == rows and rep.loaded == rows
        runs.append((wall, cpu))
        shutil.rmtree(root, ignore_errors=True)
    wall, cpu = min(runs)
    median = sorted(w for w, _ in runs)[len(runs) // 2]
    return {
        "first_wall_s": runs[0][0],
        "wall_s": wall,
        "median_wall_s": median,
        "cpu_s": cpu,
        "rows_per_s": rows / wall,
        "median_rows_per_s": rows / median,
        "rows_per_cpu_s": rows / cpu,
    }


def _server_cpu() -> float:
    """CPU seconds used so far by the PostgreSQL server processes (user ``postgres``)."""
    import pwd

    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        uid = os.getuid()
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if d.stat().st_uid != uid:
                continue
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            # utime, stime, and cutime, cstime: backends that have exited (psql's) are counted in the
            # postmaster's children times once it has reaped them
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _psql_copy(url: str, csv_path: Path, cols: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of psql + server) of ``psql \\copy`` of the CSV into ``daily``."""
    cmd = f"\\copy daily ({', '.join(cols)}) FROM '{csv_path}' WITH (FORMAT csv, HEADER true)"
    c0, s0 = _children_cpu(), _server_cpu()
    t0 = time.perf_counter()
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-c", cmd], check=True, capture_output=True)
    wall = time.perf_counter() - t0
    time.sleep(0.2)  # let the postmaster reap psql's backend, so that its CPU time is counted
    return wall, (_children_cpu() - c0) + (_server_cpu() - s0)


def bench_timescale(reads: Path, rows: int, work: Path, repeats: int) -> dict:
    import psycopg

    from wattbill.ingest import IngestBatch, ingest_file
    from wattbill.ingest.readers import read_raw
    from wattbill.ingest.schemas import DAILY_SCHEMA
    from wattbill.ingest.vee import registers_to_daily
    from wattbill.store.timescale import TimescaleStore

    was_running = (
        subprocess.run(["bash", str(REPO / "scripts/pg.sh"), "status"], capture_output=True).returncode == 0
    )
    out = subprocess.run(
        ["bash", str(REPO / "scripts/pg.sh"), "start"], capture_output=True, text=True, check=True
    )
    admin = out.stdout.strip().splitlines()[-1]
    db = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {db}")
    url = admin.replace("/wattbill?", f"/{db}?")
    res: dict = {}
    try:
        st = TimescaleStore(url)
        # full ingest_file into TimescaleDB
        t0 = time.perf_counter()
        rep = ingest_file(reads, "registers", st)
        res["ingest_file_wall_s"] = time.perf_counter() - t0
        res["ingest_file_rows_per_s"] = rows / res["ingest_file_wall_s"]
        assert rep.loaded == rows
        # same rows, same table: store (binary COPY + staging + upsert) vs psql \copy CSV
        daily = registers_to_daily(read_raw(reads, "registers")).frame.select(list(DAILY_SCHEMA))
        csv_path = work / "daily.csv"
        daily.write_csv(csv_path)
        res["daily_rows"] = daily.height
        res["daily_csv_mb"] = csv_path.stat().st_size / 2**20
        staged = TimescaleStore(url, direct_copy_new=False)
        ours: list[float] = []
        staging: list[float] = []
        theirs: list[float] = []

        cpu_ours: list[float] = []
        cpu_staging: list[float] = []
        cpu_theirs: list[float] = []

        def load(store, sink: list, cpu_sink: list) -> None:
            store.conn.execute("TRUNCATE daily")
            batch = IngestBatch(
                ledger={
                    "sha256": f"bench-{uuid.uuid4().hex}",
                    "file": "bench",
                    "kind": "registers",
                    "rows": 0,
                    "loaded": 0,
                    "estimated": 0,
                    "quarantined": 0,
                    "duplicates": 0,
                    "findings": 0,
                },
                kind="registers",
                daily=daily,
            )
            c0, s0 = cpu_seconds(), _server_cpu()
            t0 = time.perf_counter()
            store.save_ingest(batch)
            sink.append(time.perf_counter() - t0)
            cpu_sink.append((cpu_seconds() - c0) + (_server_cpu() - s0))

        for _ in range(repeats):
            load(st, ours, cpu_ours)
            load(staged, staging, cpu_staging)
            st.conn.execute("TRUNCATE daily")
            wall, cpu = _psql_copy(url, csv_path, list(DAILY_SCHEMA))
            theirs.append(wall)
            cpu_theirs.append(cpu)
            n = st.conn.execute("SELECT count(*) FROM daily").fetchone()
            assert n == (daily.height,), n
        res["cpu_store_s"] = min(cpu_ours)
        res["cpu_staging_s"] = min(cpu_staging)
        res["cpu_psql_s"] = min(cpu_theirs)
        staged.close()
        res["store_s"] = min(ours)
        res["store_staging_upsert_s"] = min(staging)
        res["psql_copy_csv_s"] = min(theirs)
        res["store_rows_per_s"] = daily.height / min(ours)
        res["staging_rows_per_s"] = daily.height / min(staging)
        res["psql_rows_per_s"] = daily.height / min(theirs)
        res["ratio_store_vs_psql"] = min(theirs) / min(ours)
        res["ratio_staging_vs_psql"] = min(theirs) / min(staging)
        st.close()
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        if not was_running:
            subprocess.run(["bash", str(REPO / "scripts/pg.sh"), "stop"], capture_output=True)
    return res


def _vm_hwm_mb() -> float:
    """Peak RSS of this process (VmHWM; ru_maxrss would include the parent's peak inherited via fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_anon_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def rss_child(path: str) -> None:
    """Subprocess: ingest ``path`` into a fresh embedded store; print peak memory (MB) as JSON.

    ``peak_anon_mb``: the peak of anonymous memory (heap: what the process really needs), sampled every
    20 ms; ``peak_rss_mb`` (VmHWM) also counts file pages mapped from the input and Parquet files.
    """
    import threading

    from wattbill.ingest import ingest_file
    from wattbill.store import open_store

    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_anon_kb())
            done.wait(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rep = ingest_file(path, "registers", open_store(Path(tmp) / "s"))
        wall = time.perf_counter() - t0
    done.set()
    th.join()
    print(
        json.dumps(
            {"rows": rep.rows, "peak_rss_mb": _vm_hwm_mb(), "peak_anon_mb": peak[0] / 1024, "wall_s": wall}
        )
    )


def bench_rss(sizes: list[int], work: Path, bucket_mb: float) -> list[dict]:
    out = []
    for n_rows in sizes:
        customers = max(1, n_rows // 366)
        f = work / f"reads-{n_rows}.csv"
        rows = make_reads(f, customers, seed=n_rows)
        env = dict(os.environ, WATTBILL_INGEST_BUCKET_MB=str(bucket_mb))
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_ingest", "--rss-child", str(f)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            check=True,
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r.update(file_mb=f.stat().st_size / 2**20, rows=rows)
        out.append(r)
        f.unlink()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=6000, help="households (x 366 reads each)")
    ap.add_argument("--no-pg", action="store_true", help="skip the TimescaleDB part")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--rss-sizes", default="250000,1000000,4000000", help="rows per file for the RSS part ('' to skip)"
    )
    ap.add_argument("--bucket-mb", type=float, default=16.0)
    ap.add_argument("--rss-child")
    args = ap.parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child)
        return
    work = Path(tempfile.mkdtemp(prefix="wattbill-bench-"))
    os.chmod(work, 0o755)  # psql \copy reads the CSV as this user; keep it readable anyway
    try:
        reads = work / "reads.csv"
        rows = make_reads(reads, args.customers)
        mb = reads.stat().st_size / 2**20
        print(
            f"register reads: {rows:,} rows, {mb:.0f} MB CSV, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}"
        )
        e = bench_embedded(reads, rows, work, args.repeats)
        print(
            f"embedded store : {e['rows_per_s'] / 1e6:.2f} M rows/s wall, best of {args.repeats} "
            f"({e['wall_s']:.2f} s; median {e['median_rows_per_s'] / 1e6:.2f} M rows/s), "
            f"{e['rows_per_cpu_s'] / 1e6:.2f} M rows per CPU-second  [target >= 2 M rows/s]\n"
            f"                 first run in the process (numba kernels loaded, memory first touched): "
            f"{rows / e['first_wall_s'] / 1e6:.2f} M rows/s ({e['first_wall_s']:.2f} s)"
        )
        if not args.no_pg:
            t = bench_timescale(reads, rows, work, args.repeats)
            print(
                f"timescaledb    : ingest_file {t['ingest_file_rows_per_s'] / 1e6:.2f} M rows/s "
                f"({t['ingest_file_wall_s']:.2f} s)"
            )
            print(
                f"same {t['daily_rows']:,} daily rows into the empty hypertable, best of {args.repeats} "
                "(wall s; CPU s of client + server, the fair figure on a shared machine):"
            )
            for label, wall_key, cpu_key in (
                ("store, new data (binary COPY)      ", "store_s", "cpu_store_s"),
                ("store, staging + upsert path       ", "store_staging_upsert_s", "cpu_staging_s"),
                ("psql \\copy of the same rows as CSV ", "psql_copy_csv_s", "cpu_psql_s"),
            ):
                print(
                    f"  {label} wall {t[wall_key]:6.2f} s ({t['daily_rows'] / t[wall_key] / 1e6:.2f} M rows/s,"
                    f" x{t['psql_copy_csv_s'] / t[wall_key]:.2f} vs psql)   CPU {t[cpu_key]:6.2f} s"
                    f" (x{t['cpu_psql_s'] / t[cpu_key]:.2f} vs psql)"
                )
        sizes = [int(x) for x in args.rss_sizes.split(",") if x.strip()]
        if sizes:
            print(f"peak RSS vs file size (embedded, buckets of {args.bucket_mb:g} MB):")
            for r in bench_rss(sizes, work, args.bucket_mb):
                print(
                    f"  {r['rows']:>11,} rows  {r['file_mb']:>7.0f} MB file  peak anon {r['peak_anon_mb']:>6.0f} MB"
                    f"  peak RSS {r['peak_rss_mb']:>6.0f} MB  ({r['rows'] / r['wall_s'] / 1e6:.2f} M rows/s)"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
