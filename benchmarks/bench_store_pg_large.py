"""Large register file into TimescaleDB (issue #14): ``wattbill ingest`` vs ``psql \\copy`` of the same rows.

    WATTBILL_PG_PORT=... .venv/bin/python -m benchmarks.bench_store_pg_large [--mb 1000]

A register-reads CSV of about ``--mb`` MB (one read per meter and day, 4 time-of-use registers) is
loaded into a fresh database by a real ``wattbill ingest reads FILE --store URL`` process (customer
buckets, each COPYed into the hypertable, one transaction); its wall time, CPU seconds (the process)
and peak RSS are measured, and the CPU seconds of the server processes serving its database (``ServerCpu``, sampled). The daily rows it
stored are then written out with ``psql \\copy daily TO`` and loaded by ``psql \\copy daily FROM`` into
another fresh database with the same schema: the floor any client can reach (the server's per-row
insert). Printed: rows/s wall and rows per CPU-second for both.

Recorded 2026-12-01, shared 2-core machine at load average ~20 (CPU seconds are the comparable figure)::

    register file: 13,617,762 rows, 1,024 MB, 37,207 meters x 366 reads
      wattbill ingest : 997.3 s wall, 13,580,555 daily rows; CPU ingest 52.6 s + server 104.5 s
                        = 0.09 M reads/CPU-s; peak RSS 3,213 MB (default 128 MB customer buckets)
      psql \\copy      : 415.9 s wall of the same daily rows; CPU psql 2.2 s + server 101.7 s = 0.13 M rows/CPU-s
      server CPU, ingest / psql \\copy: x1.03
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from benchmarks.bench_store_pg import REPO, Reads, ServerCpu, cluster_pid


def _children() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024


def _db(admin: str) -> tuple[str, str]:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return name, admin.replace("/wattbill?", f"/{name}?")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=1000.0, help="size of the register file [MB]")
    ap.add_argument("--days", type=int, default=365)
    args = ap.parse_args(argv)
    out = subprocess.run(["bash", str(REPO / "scripts/pg.sh"), "start"], capture_output=True, text=True, check=True)
    admin = out.stdout.strip().splitlines()[-1]
    work = Path(tempfile.mkdtemp(prefix="wattbill-bench-large-"))
    n = max(1, int(args.mb * 2**20 / 77 / (args.days + 1)))  # ~77 bytes a read
    src = work / "reads.csv"
    r = Reads(n, seed=3)
    rows = r.write(src, args.days + 1)
    size = src.stat().st_size / 2**20
    print(f"register file: {rows:,} rows, {size:,.0f} MB, {n:,} meters x {args.days + 1} reads", flush=True)
    dbs = []
    try:
        name, url = _db(admin)
        dbs.append(name)
        pm = cluster_pid(url)
        env = {k: v for k, v in os.environ.items() if k != "WATTBILL_STORE"}
        c0, _ = _children()
        scpu = ServerCpu(pm, name)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "wattbill.cli", "ingest", "reads", str(src), "--store", url],
                           capture_output=True, text=True, env=env, cwd=REPO)
        wall = time.perf_counter() - t0
        time.sleep(0.2)
        c1, peak = _children()
        srv = scpu.seconds()
        scpu.stop()
        if p.returncode != 0:
            print(p.stderr.strip()[-2000:])
            raise SystemExit(1)
        with psycopg.connect(url) as c:
            daily = c.execute("SELECT count(*) FROM daily").fetchone()[0]  # type: ignore[index]
        print(f"  wattbill ingest : {rows / wall / 1e6:5.2f} M reads/s wall ({wall:6.1f} s),"
              f" {daily:,} daily rows; CPU ingest {c1 - c0:6.1f} s + server {srv:6.1f} s"
              f" = {rows / (c1 - c0 + srv) / 1e6:5.2f} M reads/CPU-s; peak RSS {peak:,.0f} MB", flush=True)
        csv = work / "daily.csv"
        subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", f"\\copy (SELECT * FROM daily) TO '{csv}' CSV"], check=True)
        name2, url2 = _db(admin)
        dbs.append(name2)
        from wattbill.store.timescale import TimescaleStore

        TimescaleStore(url2).close()  # the same schema
        c0, _ = _children()
        scpu = ServerCpu(pm, name2)
        t0 = time.perf_counter()
        subprocess.run(["psql", url2, "-v", "ON_ERROR_STOP=1", "-qc", f"\\copy daily FROM '{csv}' CSV"], check=True)
        pwall = time.perf_counter() - t0
        time.sleep(0.2)
        c1, _ = _children()
        psrv = scpu.seconds()
        scpu.stop()
        print(f"  psql \\copy      : {daily / pwall / 1e6:5.2f} M rows/s wall ({pwall:6.1f} s) of the same"
              f" {daily:,} daily rows; CPU psql {c1 - c0:6.1f} s + server {psrv:6.1f} s"
              f" = {daily / (c1 - c0 + psrv) / 1e6:5.2f} M rows/CPU-s", flush=True)
        print(f"  ingest (read + VEE + store) / psql \\copy (store only): wall x{wall / pwall:.2f};"
              f" server CPU x{srv / psrv:.2f}")
    finally:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
        with psycopg.connect(admin, autocommit=True) as c:
            for d in dbs:
                c.execute(f"DROP DATABASE IF EXISTS {d} WITH (FORCE)")


if __name__ == "__main__":
    main()
