"""Store benchmark (issue #14): does a daily file cost a day, whatever the store already holds?

    .venv/bin/python -m benchmarks.bench_store --store DIR|DSN --households N \\
        [--stored-days 0,90,180,365] [--large-gb 1,5]

1. **Daily load vs stored days.** One store (``DIR``: a fresh folder, emptied first; ``DSN``: a
   TimescaleDB database, which should be empty) is filled through the real ingest path
   (``wattbill.store.open_store`` + ``wattbill.ingest.ingest_file`` of register-read CSV files in the
   design format, written by ``benchmarks.bench_ingest.make_reads``'s generator) up to K stored days of
   N households, then ONE daily file (N rows, the next day's read of every meter) is loaded and timed
   (wall and CPU seconds of this process; the machine may be shared). Stored days grow in one store:
   the bulk file between two steps holds the reads of the days in between, so the store holds K days
   of the same households when the daily file of day K+1 is loaded. Printed: the daily-load times,
   their max/min ratio (target <= 1.5), the rows/s of the daily files against the rows/s of the
   largest bulk (year-part) file loaded in the same run (target: daily >= 0.5 x bulk), and a baseline
   in the same run: ``polars.read_csv`` of the same daily file (the memory pass).
2. **Year read after daily appends** (``--appends A``, embedded store): a fresh store gets the bulk of
   reads 0..366-A, then A daily files one by one (CPU s of each: min, median, max); then the bill run's
   read of the year (``load_daily(2024, sort=False)``) is timed, against a baseline in the same run
   (``polars.read_delta`` of the daily table's version: reading the rows back, nothing else), then
   ``EmbeddedStore.compact()`` and the year read again.
3. **Large files** (``--large-gb``): a register file of about that many GB is written, and loaded into a
   fresh embedded store in a subprocess (peak RSS = the child's ``ru_maxrss``); rows/s wall and per
   CPU-second, against a streamed ``polars.scan_csv`` pass over the same file (the baseline).
   Target: >= 1.5M rows/s, peak memory flat in the file size.

CPU seconds are those of this process (``resource.getrusage``); on a DSN the server's CPU is not counted.
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
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

FIRST_READ = dt.date(2023, 12, 31)  # read 0; read k is the meter's register at FIRST_READ + k days
HORIZON = 367  # reads 0..366: 2023-12-31 .. 2024-12-31
ROW_BYTES = 75  # about, per register-read CSV row (4 registers, 2 decimals)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def write_reads(path: Path, n: int, first: int, last: int, seed: int = 1, chunk: int = 20_000) -> int:
    """Write the register reads ``first..last`` (read indices, inclusive) of ``n`` households as a CSV
    (design format: customer_id, meter_id, read_date, total, sharp, peak, flat, valley [kWh, 2 places]).

    The reads are a deterministic function of (seed, household, day), so files of consecutive ranges
    continue each other. Written ``chunk`` households at a time (bounded memory). Returns the rows.
    """
    days = HORIZON  # the draws do not depend on the range asked: files of consecutive ranges continue
    if not 0 <= first <= last < HORIZON:
        raise ValueError(f"reads {first}..{last}: between 0 and {HORIZON - 1}")
    rows = 0
    with open(path, "wb") as out:
        for lo in range(0, n, chunk):
            m = min(chunk, n - lo)
            rng = np.random.default_rng([seed, lo])
            daily = rng.gamma(2.0, 4.0, size=(m, days)).astype(np.float32) * 1000  # Wh
            shares = rng.dirichlet([1, 3, 4, 2], size=m).astype(np.float32)
            regs = (daily[:, :, None] * shares[:, None, :] / 10).astype(np.int64)  # 0.01 kWh units
            start = rng.integers(100_000, 5_000_000, size=(m, 1, 4))
            cum = (start + np.cumsum(regs, axis=1))[:, first : last + 1, :]
            total = cum.sum(axis=2)
            k = last + 1 - first
            ids = np.char.zfill(np.arange(lo, lo + m).astype(str), 10)
            df = pl.DataFrame(
                {
                    "customer_id": np.repeat(ids, k),
                    "meter_id": np.repeat(np.char.add("M", ids), k),
                    "read_date": np.tile(
                        np.arange(first, last + 1, dtype="timedelta64[D]") + np.datetime64(FIRST_READ), m
                    ),
                    "total": total.reshape(-1) / 100,
                    "sharp": cum[:, :, 0].reshape(-1) / 100,
                    "peak": cum[:, :, 1].reshape(-1) / 100,
                    "flat": cum[:, :, 2].reshape(-1) / 100,
                    "valley": cum[:, :, 3].reshape(-1) / 100,
                }
            ).with_columns(pl.col("read_date").cast(pl.Date))
            df.write_csv(out, float_precision=2, include_header=lo == 0)
            rows += df.height
    return rows


def _open(target: str) -> Any:
    from wattbill.store import open_store

    if "://" not in target and not target.startswith("postgres"):
        shutil.rmtree(target, ignore_errors=True)
    return open_store(target)


def _load(path: Path, store: Any) -> tuple[float, float, Any]:
    from wattbill.ingest import ingest_file

    t0, c0 = time.perf_counter(), cpu_seconds()
    rep = ingest_file(path, "registers", store)
    return time.perf_counter() - t0, cpu_seconds() - c0, rep


def bench_daily(target: str, n: int, stored: list[int], work: Path) -> dict:
    """The daily-load series (see the module docstring)."""
    st = _open(target)
    done = -1  # last read index loaded
    out: dict = {"households": n, "steps": [], "bulk": []}
    for k in sorted(stored):
        # bulk: reads done+1 .. k (read 0 is the opening read: k stored days after read k)
        if k > done:
            bulk = work / f"bulk-{done + 1}-{k}.csv"
            rows = write_reads(bulk, n, done + 1, k)
            wall, cpu, rep = _load(bulk, st)
            out["bulk"].append({"reads": [done + 1, k], "rows": rows, "wall_s": wall, "cpu_s": cpu,
                                "mb": bulk.stat().st_size / 1e6})
            print(f"  bulk reads {done + 1:>3}..{k:<3} {rows:>12,} rows  {wall:7.2f} s wall  {cpu:7.2f} s CPU"
                  f"  {rows / wall / 1e6:5.2f} M rows/s   (loaded {rep.loaded:,}, dup {rep.duplicates:,},"
                  f" quarantined {rep.quarantined:,})", flush=True)
            bulk.unlink()
        daily = work / f"daily-{k + 1}.csv"
        rows = write_reads(daily, n, k + 1, k + 1)
        t0, c0 = time.perf_counter(), cpu_seconds()
        pl.read_csv(daily)
        base_wall, base_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        wall, cpu, rep = _load(daily, st)
        assert rep.rows == rows and rep.rows == rep.loaded + rep.quarantined + rep.duplicates
        if rep.quarantined or rep.loaded != rows:  # (the files continue each other: every read loads)
            raise SystemExit(f"daily file after {k} days: {rep.loaded:,} of {rows:,} loaded, "
                             f"quarantined {rep.quarantine_by_code}")
        out["steps"].append({"stored_days": k, "rows": rows, "wall_s": wall, "cpu_s": cpu, "loaded": rep.loaded,
                             "read_csv_wall_s": base_wall, "read_csv_cpu_s": base_cpu})
        print(f"  daily file after {k:>3} stored days: {rows:,} rows  {wall:6.2f} s wall  {cpu:6.2f} s CPU"
              f"   (polars read_csv of it: {base_wall:.3f} s wall, {base_cpu:.3f} s CPU)", flush=True)
        daily.unlink()
        done = k + 1
    st.close()
    return out


def bench_appends(target: str, n: int, appends: int, work: Path) -> None:
    """The year read after ``appends`` daily loads (see the module docstring)."""
    import json as _json

    from wattbill.store.embedded import EmbeddedStore

    st = _open(target)
    if not isinstance(st, EmbeddedStore):
        raise SystemExit("--appends: an embedded store folder")
    last = HORIZON - 1
    bulk = work / "bulk-appends.csv"
    write_reads(bulk, n, 0, last - appends)
    wall, cpu, _ = _load(bulk, st)
    bulk.unlink()
    print(f"  appends: bulk reads 0..{last - appends}  {wall:.2f} s wall  {cpu:.2f} s CPU", flush=True)
    cpus = []
    for k in range(last - appends + 1, last + 1):
        daily = work / f"append-{k}.csv"
        write_reads(daily, n, k, k)
        cpus.append(_load(daily, st)[1])
        daily.unlink()
    cpus.sort()
    acts = st._actions("daily", st._read_state()["daily"])
    print(f"  {appends} daily loads: CPU s min {cpus[0]:.2f}  median {cpus[len(cpus) // 2]:.2f}  max {cpus[-1]:.2f}"
          f"   daily files in the year's table: {acts.height if acts is not None else 0}", flush=True)

    def year_read(label: str) -> None:
        t0, c0 = time.perf_counter(), cpu_seconds()
        d = st.load_daily(2024, sort=False)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        version = _json.loads((Path(target) / "state.json").read_text())["tables"]["daily"]
        t0, c0 = time.perf_counter(), cpu_seconds()
        b = pl.read_delta(str(Path(target) / "daily"), version=version)
        bwall, bcpu = time.perf_counter() - t0, cpu_seconds() - c0
        print(f"  year read {label}: load_daily(2024, sort=False) {d.height:,} rows {wall:.2f} s wall {cpu:.2f} s CPU"
              f"   (baseline pl.read_delta of the table, {b.height:,} rows: {bwall:.2f} s wall {bcpu:.2f} s CPU)",
              flush=True)

    year_read(f"after {appends} appends")
    t0, c0 = time.perf_counter(), cpu_seconds()
    parts = st.compact()
    print(f"  compact(): {parts} partitions  {time.perf_counter() - t0:.2f} s wall  {cpu_seconds() - c0:.2f} s CPU")
    year_read("after compact()")


def _child_load(path: str, store: str) -> None:
    """In a subprocess: load ``path`` into a fresh embedded store at ``store``; print JSON."""
    from wattbill.ingest import ingest_file
    from wattbill.store import open_store

    st = open_store(store)
    t0, c0 = time.perf_counter(), cpu_seconds()
    rep = ingest_file(Path(path), "registers", st)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rep.rows, "loaded": rep.loaded, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_kb / 1024}))


def bench_large(gb: float, work: Path, keep: bool = False) -> dict:
    n = max(1, int(gb * 1e9 / ROW_BYTES / 366))
    path = work / f"large-{gb}gb.csv"
    if keep and path.exists():  # (the same generator's file, kept from an earlier run)
        rows = sum(1 for _ in open(path, "rb")) - 1
    else:
        rows = write_reads(path, n, 0, 365)
    size = path.stat().st_size
    t0, c0 = time.perf_counter(), cpu_seconds()
    s = pl.scan_csv(path).select(pl.col("total").sum()).collect(engine="streaming").item()
    base_wall, base_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    # the floor of any CSV ingest: a streamed scan that parses every column (ids and dates as text,
    # registers as numbers) without keeping the rows
    t0, c0 = time.perf_counter(), cpu_seconds()
    pl.scan_csv(path, schema_overrides={"customer_id": pl.Utf8, "meter_id": pl.Utf8, "read_date": pl.Utf8}).select(
        pl.col("customer_id").str.len_bytes().sum(), pl.col("meter_id").str.len_bytes().sum(),
        pl.col("read_date").str.len_bytes().sum(),
        *[pl.col(c).sum() for c in ("total", "sharp", "peak", "flat", "valley")],
    ).collect(engine="streaming")
    all_wall, all_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    store = work / f"large-store-{gb}"
    shutil.rmtree(store, ignore_errors=True)
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_store", "--child-load", str(path), "--store", str(store)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
    )
    if not keep:
        path.unlink()
    shutil.rmtree(store, ignore_errors=True)
    if out.returncode != 0:
        raise SystemExit(f"large-file load failed: {out.stderr.strip().splitlines()[-1:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update({"gb": size / 1e9, "file_rows": rows, "scan_wall_s": base_wall, "scan_cpu_s": base_cpu, "_sum": s,
                "scan_all_wall_s": all_wall, "scan_all_cpu_s": all_cpu})
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="embedded store folder (emptied first) or a TimescaleDB DSN")
    ap.add_argument("--households", type=int, default=100_000)
    ap.add_argument("--stored-days", default="0,90,180,365")
    ap.add_argument("--large-gb", default="")
    ap.add_argument("--appends", type=int, default=0, help="daily appends before the year read (embedded store)")
    ap.add_argument("--work", default=None, help="folder for the generated files (default: a temporary one)")
    ap.add_argument("--keep-files", action="store_true",
                    help="keep the large files in --work and reuse them in a later run")
    ap.add_argument("--child-load", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_load:
        _child_load(args.child_load, args.store)
        return
    stored = [int(x) for x in args.stored_days.split(",") if x.strip()]
    if any(k < 0 or k > HORIZON - 2 for k in stored):
        raise SystemExit("--stored-days: each between 0 and 365")
    work = Path(args.work or tempfile.mkdtemp(prefix="wattbill-bench-store-"))
    work.mkdir(parents=True, exist_ok=True)
    # warm up (numba kernels compiled or loaded from their cache) in a throwaway store
    from wattbill.store import open_store

    write_reads(work / "warm.csv", 200, 0, 20)
    _load(work / "warm.csv", open_store(work / "warm-store"))
    shutil.rmtree(work / "warm-store", ignore_errors=True)

    print(f"store {args.store if '://' not in args.store else args.store.split('@')[-1]}"
          f"   households {args.households:,}   load average {os.getloadavg()[0]:.1f}", flush=True)
    if stored:
        report_daily(bench_daily(args.store, args.households, stored, work))
    if args.appends:
        bench_appends(args.store, args.households, args.appends, work)
    for gb in [float(x) for x in args.large_gb.split(",") if x.strip()]:
        r = bench_large(gb, work, args.keep_files)
        print(f"large file {r['gb']:.2f} GB, {r['rows']:,} rows: {r['rows'] / r['wall_s'] / 1e6:.2f} M rows/s wall,"
              f" {r['rows'] / r['cpu_s'] / 1e6:.2f} M rows/CPU-s ({r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} CPU-s),"
              f" peak RSS {r['peak_rss_mb']:.0f} MB"
              f"   [target >= 1.5 M rows/s: {'met' if r['rows'] / r['wall_s'] >= 1.5e6 else 'NOT met'}]", flush=True)
        print(f"   baselines in the same run: streamed scan_csv of one column {r['scan_wall_s']:.1f} s wall,"
              f" {r['scan_cpu_s']:.1f} CPU-s ({r['rows'] / r['scan_cpu_s'] / 1e6:.1f} M rows/CPU-s); of every column"
              f" {r['scan_all_wall_s']:.1f} s wall, {r['scan_all_cpu_s']:.1f} CPU-s"
              f" ({r['rows'] / r['scan_all_cpu_s'] / 1e6:.1f} M rows/CPU-s); load average {os.getloadavg()[0]:.1f}",
              flush=True)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


def report_daily(res: dict) -> None:
    """Print the daily-load series' figures and targets."""
    steps = res["steps"]
    walls = [s["wall_s"] for s in steps]
    cpus = [s["cpu_s"] for s in steps]
    print("daily-load times (wall s):  " + "  ".join(f"{s['stored_days']}d={s['wall_s']:.2f}" for s in steps))
    print("daily-load times (CPU s):   " + "  ".join(f"{s['stored_days']}d={s['cpu_s']:.2f}" for s in steps))
    r_wall, r_cpu = max(walls) / min(walls), max(cpus) / min(cpus)
    print(f"max/min ratio: wall {r_wall:.2f}  CPU {r_cpu:.2f}   [target <= 1.5: "
          f"{'met' if r_cpu <= 1.5 else 'NOT met'} (CPU)]")
    big = max(res["bulk"], key=lambda b: b["rows"])
    daily_rate = sum(s["rows"] for s in steps) / sum(cpus)
    bulk_rate = big["rows"] / big["cpu_s"]
    print(f"rows per CPU-second: daily files {daily_rate / 1e6:.3f} M, largest bulk file ({big['rows']:,} rows,"
          f" {big['mb']:.0f} MB) {bulk_rate / 1e6:.3f} M; ratio {daily_rate / bulk_rate:.2f}"
          f"   [target >= 0.5: {'met' if daily_rate / bulk_rate >= 0.5 else 'NOT met'}]")
    print(f"rows per wall-second: daily files {sum(s['rows'] for s in steps) / sum(walls) / 1e6:.3f} M, "
          f"largest bulk file {big['rows'] / big['wall_s'] / 1e6:.3f} M")
    base = sum(s["read_csv_cpu_s"] for s in steps) / len(steps)
    print(f"baseline: polars read_csv of a daily file {base:.3f} CPU s (load / read_csv = "
          f"{(sum(cpus) / len(cpus)) / base:.0f}x)")


if __name__ == "__main__":
    main()
