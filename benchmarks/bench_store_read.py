"""The bill run's read of daily rows (issue #14): ``load_daily`` rows/s, TimescaleDB vs the embedded store.

    WATTBILL_PG_PORT=... .venv/bin/python -m benchmarks.bench_store_read [--customers 20000] [--days 120]

The same register reads (``--customers`` meters, ``--days`` days of 2024) are loaded through
``ingest_file`` into a fresh TimescaleDB database and a fresh embedded store; then ``load_daily(2024)``
(all customers, and a bill-run part of ``--part`` customers) is timed on each, best of ``--repeats``,
with the CPU seconds of this process and of the server processes serving the benchmark's database. Where the server's TimescaleDB has
native compression (``TimescaleStore.compression()``), the months are compressed
(``compress_closed_months``) and the read is timed again on compressed chunks; on an Apache-only build
that line says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from benchmarks.bench_store_pg import REPO, Reads, ServerCpu, cluster_pid, cpu_seconds, warm_up


def _time(fn, repeats: int, scpu: ServerCpu) -> tuple[int, float, float]:
    """(rows, best wall s, CPU s of client + server of that run)."""
    best = (0, float("inf"), 0.0)
    for _ in range(repeats):
        c0, s0, t0 = cpu_seconds(), scpu.seconds(), time.perf_counter()
        df = fn()
        wall = time.perf_counter() - t0
        cpu = cpu_seconds() - c0 + scpu.seconds() - s0
        if wall < best[1]:
            best = (df.height, wall, cpu)
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--part", type=int, default=5_000, help="customers of one bill-run part")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    from wattbill.ingest import ingest_file
    from wattbill.store import open_store
    from wattbill.store.timescale import TimescaleStore

    warm_up()
    out = subprocess.run(["bash", str(REPO / "scripts/pg.sh"), "start"], capture_output=True, text=True, check=True)
    admin = out.stdout.strip().splitlines()[-1]
    db = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {db}")
    url = admin.replace("/wattbill?", f"/{db}?")
    scpu = ServerCpu(cluster_pid(url), db)
    with tempfile.TemporaryDirectory(prefix="wattbill-bench-read-") as d:
        src = Path(d) / "reads.csv"
        Reads(args.customers, seed=5).write(src, args.days + 1)
        pg = TimescaleStore(url)
        emb = open_store(Path(d) / "embedded")
        try:
            ingest_file(src, "registers", pg)
            ingest_file(src, "registers", emb)
            part = [f"{i:010d}" for i in range(args.part)]
            print(f"load_daily(2024): {args.customers:,} households x {args.days} days; best of {args.repeats};"
                  " CPU = this process + the server's backends of this database")

            def show(label: str, store, compressed: str = "") -> None:
                for what, ids in (("all", None), (f"part of {args.part:,}", part)):
                    n, wall, cpu = _time(lambda s=store, i=ids: s.load_daily(2024, i), args.repeats, scpu)
                    print(f"  {label + compressed:<34} {what:<14} {n:>11,} rows  {n / wall / 1e6:6.2f} M rows/s wall"
                          f"  {n / cpu / 1e6:6.2f} M rows/CPU-s", flush=True)

            show("embedded", emb)
            show("TimescaleDB", pg, " (uncompressed)")
            comp = pg.compression()
            if comp["supported"]:
                pg.compress_closed_months(dt.date(2025, 1, 1))
                cs = pg.compression()
                show("TimescaleDB", pg, f" (compressed {cs['compressed_chunks']}/{cs['chunks']} chunks)")
            else:
                print(f"  TimescaleDB (compressed)           not measured: TimescaleDB {pg.timescaledb_version} on this"
                      " server is an Apache-only build, without native compression")
        finally:
            scpu.stop()
            pg.close()
            emb.close()
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    main()
