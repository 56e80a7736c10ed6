"""Benchmark: the bill run without PDFs (store → bills → diagnosis → labels → bills.parquet).

Ingests N synthetic households into a fresh embedded store, then times ``run_bills(pdf=False)`` and,
in the same run, its parts measured alone on the same data as baselines: reading the year's daily
rows from the store (``load_daily``), and the tariff kernel on the dense arrays. The ratios say how
much the whole run costs over those floors. Several sizes (``--households 100000,300000,1000000``)
run each in a fresh process, so that each size's peak memory (``ru_maxrss``) is its own, and the
table shows whether the time is linear in households (households/s per size), the CPU seconds (the
figure that is comparable on a loaded machine) and the share of each stage of the run.

    .venv/bin/python -m benchmarks.bench_billrun [--households N[,N...]] [--chunk C] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from wattbill import synth
from wattbill.diagnostics import densify
from wattbill.ingest import ingest_file
from wattbill.pipeline import run_bills
from wattbill.store import open_store
from wattbill.tariffs import bill_households, load_catalog

YEAR = 2025


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def prepare(n: int, work: Path) -> dict:
    """Generate two years of ``n`` households and ingest them into ``work/store``."""
    t0 = time.perf_counter()
    paths = synth.generate(n, YEAR, seed=3, out_dir=work / "input", years=2, fmt="parquet")
    t_gen = time.perf_counter() - t0
    store = open_store(str(work / "store"))
    t0 = time.perf_counter()
    for kind, path in (("customers", paths.customers), ("registers", paths.reads), ("payments", paths.payments)):
        ingest_file(path, kind, store)
    store.close()
    return {"generate_s": t_gen, "ingest_s": time.perf_counter() - t0}


def measure(n: int, chunk: int, work: Path) -> dict:
    """Bill the prepared store in ``work`` in this process (its own peak memory); the figures as a dict."""
    store = open_store(str(work / "store"))
    catalog = load_catalog()
    run_bills(store, catalog, YEAR, customer_ids=store.list_customer_ids()[:200], pdf=False)  # warm-up
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    c0, t0 = _cpu(), time.perf_counter()
    summary = run_bills(store, catalog, YEAR, out_dir=work / "out", pdf=False, chunk_size=chunk)
    t_run, c_run = time.perf_counter() - t0, _cpu() - c0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    c0, t0 = _cpu(), time.perf_counter()
    daily = store.load_daily(YEAR, sort=False)
    t_load, c_load = time.perf_counter() - t0, _cpu() - c0
    customers = store.load_customers().sort("customer_id")
    dense = densify(daily, customers, YEAR, with_regs=True)
    del daily
    assert dense.regs is not None
    codes = np.array(customers["tariff"].to_list())
    sizes = customers["household_size"].fill_null(1).to_numpy()
    t0 = time.perf_counter()
    for code in np.unique(codes):
        rows = np.nonzero(codes == code)[0]
        bill_households(catalog.get(code), YEAR, dense.total[rows], dense.regs[rows],
                        dense.open_first[rows], dense.open_last[rows], sizes[rows])
    t_kernel = time.perf_counter() - t0
    store.close()
    return {"households": n, "billed": summary.billed, "labels": sum(summary.labels.values()),
            "run_s": t_run, "run_cpu_s": c_run, "peak_mb": peak_mb, "peak_before_run_mb": rss_before / 1024,
            "load_s": t_load, "load_cpu_s": c_load, "kernel_s": t_kernel, "stages": summary.stage_seconds}


def _child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_billrun", *args], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--households", default="50000", help="One size or several, comma-separated.")
    ap.add_argument("--chunk", type=int, default=100_000, help="Households per chunk.")
    ap.add_argument("--keep", type=Path, default=None, help="Work in this folder and keep it (one size).")
    ap.add_argument("--child", choices=["prepare", "run"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = [int(x) for x in str(args.households).split(",")]
    if args.child:
        work = args.keep
        assert work is not None
        out = prepare(sizes[0], work) if args.child == "prepare" else measure(sizes[0], args.chunk, work)
        print(json.dumps(out))
        return
    rows = []
    for n in sizes:
        work = args.keep or Path(tempfile.mkdtemp(prefix="wattbill-bench-"))
        try:
            common = ["--households", str(n), "--chunk", str(args.chunk), "--keep", str(work)]
            prepared = _child("--child", "prepare", *common)
            rows.append({**prepared, **_child("--child", "run", *common)})
        except RuntimeError as exc:
            print(f"{n:,} households: failed\n{exc}")
        finally:
            if args.keep is None:
                shutil.rmtree(work, ignore_errors=True)
    for r in rows:
        n, t_run = r["households"], r["run_s"]
        print(f"households                 {n:,} ({r['billed']:,} billed, {r['labels']:,} labels), chunks of {args.chunk:,}")
        print(f"generate 2 years (files)   {r['generate_s']:8.2f} s")
        print(f"ingest (3 files)           {r['ingest_s']:8.2f} s")
        print(f"bill run, no PDF           {t_run:8.2f} s   {n / t_run:10,.0f} households/s   "
              f"{r['run_cpu_s']:.1f} CPU-s ({r['run_cpu_s'] / n * 1e6:.1f} CPU-s per 1M)   "
              f"peak RSS {r['peak_mb']:,.0f} MB (after the warm-up {r['peak_before_run_mb']:,.0f} MB)")
        print(f"baseline: load_daily       {r['load_s']:8.2f} s   ratio run/load = {t_run / r['load_s']:.1f}x "
              f"(CPU {r['run_cpu_s'] / max(r['load_cpu_s'], 1e-9):.1f}x)")
        print(f"baseline: tariff kernels   {r['kernel_s']:8.2f} s   ratio run/kernel = {t_run / r['kernel_s']:.1f}x")
        stages = r["stages"]
        total = stages.get("total", t_run)
        print("stages (share of the run; read = the store's rows, in pass 1): " + ", ".join(
            f"{k} {v:.2f} s ({v / total:.0%})" for k, v in stages.items() if k != "total"))
        print(f"at this rate 1M households bill in {1e6 / (n / t_run) / 60:.1f} min (without PDFs)")
    if len(rows) > 1:
        rates = [r["households"] / r["run_s"] for r in rows]
        print("linearity: households/s " + " -> ".join(f"{x:,.0f}" for x in rates)
              + f" (largest/smallest size: {rates[-1] / rates[0]:.2f}x the rate)")


if __name__ == "__main__":
    main()
