"""Benchmark: the bill run without PDFs (store → bills → diagnosis → labels → bills.parquet).

Ingests N synthetic households into a fresh embedded store, then times ``run_bills(pdf=False)`` and,
in the same run, its parts measured alone on the same data as baselines: reading the year's daily
rows from the store (``load_daily``), and the tariff kernel on the dense arrays. The ratios say how
much the whole run costs over those floors.

    .venv/bin/python -m benchmarks.bench_billrun [--households N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--households", type=int, default=50_000)
    ap.add_argument("--keep", type=Path, default=None, help="Work in this folder and keep it.")
    args = ap.parse_args(argv)
    n = args.households
    work = args.keep or Path(tempfile.mkdtemp(prefix="wattbill-bench-"))
    try:
        t0 = time.perf_counter()
        paths = synth.generate(n, YEAR, seed=3, out_dir=work / "input", years=2, fmt="parquet")
        t_gen = time.perf_counter() - t0
        store = open_store(str(work / "store"))
        t0 = time.perf_counter()
        for kind, path in (("customers", paths.customers), ("registers", paths.reads), ("payments", paths.payments)):
            ingest_file(path, kind, store)
        t_ingest = time.perf_counter() - t0
        catalog = load_catalog()
        run_bills(store, catalog, YEAR, customer_ids=store.list_customer_ids()[:200], pdf=False)  # warm-up
        t0 = time.perf_counter()
        summary = run_bills(store, catalog, YEAR, out_dir=work / "out", pdf=False)
        t_run = time.perf_counter() - t0

        t0 = time.perf_counter()
        daily = store.load_daily(YEAR)
        t_load = time.perf_counter() - t0
        customers = store.load_customers().sort("customer_id")
        dense = densify(daily, customers, YEAR, with_regs=True)
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

        print(f"households                 {n:,} ({summary.billed:,} billed, {sum(summary.labels.values()):,} labels)")
        print(f"generate 2 years (files)   {t_gen:8.2f} s")
        print(f"ingest (3 files)           {t_ingest:8.2f} s")
        print(f"bill run, no PDF           {t_run:8.2f} s   {n / t_run:10,.0f} households/s")
        print(f"baseline: load_daily       {t_load:8.2f} s   ratio run/load = {t_run / t_load:.1f}x")
        print(f"baseline: tariff kernels   {t_kernel:8.2f} s   ratio run/kernel = {t_run / t_kernel:.1f}x")
        print(f"at this rate 1M households bill in {1e6 / (n / t_run) / 60:.1f} min (without PDFs)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
