"""Benchmark: the synthetic household generator (1M households x 365 days by default).

Prints the generation time and two baselines measured in the same run over arrays of the same size:
a plain memory pass (``numpy.sum`` over the int32 register array it produced) and the cost of only
drawing the random numbers it needs (numpy's generator filling five float32 arrays [n, days]).

    .venv/bin/python -m benchmarks.bench_synth [--households N] [--year Y]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from wattbill import synth


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--households", type=int, default=1_000_000)
    ap.add_argument("--year", type=int, default=2025)
    args = ap.parse_args(argv)
    n, year = args.households, args.year

    synth.simulate(1000, year, seed=1)  # compile (cached on disk after the first process)
    t0 = time.perf_counter()
    data = synth.simulate(n, year, seed=1)
    gen = time.perf_counter() - t0
    regs = data.regs[year]
    days = regs.shape[1]

    t0 = time.perf_counter()
    s = int(regs.sum(dtype=np.int64))
    mem = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for lo in range(0, n, synth.CHUNK):
        m = min(synth.CHUNK, n - lo)
        for _ in range(5):
            rng.random((m, days), dtype=np.float32)
    rand = time.perf_counter() - t0

    cells = n * days
    print(f"households x days        {n:,} x {days} = {cells:,} household-days ({regs.nbytes / 2**30:.1f} GiB of registers)")
    print(f"generate (simulate)      {gen:8.2f} s   {cells / gen / 1e6:8.1f} M household-days/s")
    print(f"baseline: memory pass    {mem:8.2f} s   ratio generate/memory pass = {gen / mem:.1f}x  (checksum {s})")
    print(f"baseline: random numbers {rand:8.2f} s   ratio generate/random draws = {gen / rand:.1f}x")
    print(f"target: 1M households x 365 days well under 60 s: {'met' if gen * 1_000_000 / n < 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
