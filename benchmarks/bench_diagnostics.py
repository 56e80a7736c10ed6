"""Benchmark: diagnostics of N households x 365 days (default 1M), with baselines measured in the same run.

    .venv/bin/python -m benchmarks.bench_diagnostics [--households N] [--chunk C] [--what-if] [--last-year]
        [--unsorted]

Households are processed in chunks of ``--chunk`` (the bill run batches the same way: a 1M x 365
daily frame does not fit in memory at once). For each chunk a ``DAILY_SCHEMA`` frame, customers,
12 payments per customer and a bills frame are generated (not timed), then timed:

* ``diagnose``: the whole feature computation (from the rows, year-over-year with ``--last-year``,
  peers, bills, alternatives, payments);
* baseline ``group_by``: a plain polars ``group_by(customer_id)`` of the same daily frame computing
  the annual sum per register, the count and the 10th percentile of daily Wh (the least any
  per-household aggregation must do);
* baseline ``memory pass``: ``wh_total.sum()`` over the chunk (reading the data once);
* with ``--what-if``: ``tariff_what_if`` on its own (it densifies with registers, then bills under
  the tariff, the 10 % shift and the alternative), ``densify(..., with_regs=True)`` and the
  what-if given those arrays; "bill-run flow" is what the bill run does per chunk: densify once with
  registers, the what-if and ``diagnose`` given the arrays (the sum of those three rows).

The chunk's customers (and its bills) are sorted by tariff, as the bill run sorts its chunks, so
that the what-if reads each tariff's households in place (``--unsorted`` keeps them in id order: the
what-if then gathers each block of households into a buffer).

Times are wall-clock seconds and CPU seconds (all threads: "core-seconds"), summed over chunks and
scaled to 1M households. Time a run of other code with the same script: put its ``diagnostics`` first
on the path, e.g. ``git archive <commit> diagnostics | tar -x -C /tmp/old`` and, from ``/tmp/old``,
``<repo>/.venv/bin/python -m benchmarks.bench_diagnostics (from the repository root)``.

Recorded 2026-11-23 06:40-07:16, ``--what-if --last-year``, 1,000,000 households, chunks of 100,000,
2 cores (load average 1.2-1.5 during the runs; CPU seconds are the comparable figure, and they vary by
10-40 % from run to run here, so the ratio to the ``group_by`` baseline of the same run is given too).
Before: the code of 54555d7 (issue #6 open; the benchmark then kept chunks in id order), run by this
script right before the after runs::

    before (54555d7), with last year   wall s     CPU s   CPU s / 1M hh  x group_by
    diagnose (all features)            19.30     22.87           22.87        0.65
    diagnose given the arrays          11.40     14.48           14.48        0.41
    densify with registers              7.63      7.70            7.70        0.22
    what-if given the arrays            4.06      6.64            6.64        0.19
    bill-run flow (sum of 3 rows)      23.09     28.82           28.82        0.82
    baseline: polars group_by          20.97     34.98           34.98        1.00

    after, with last year             wall s     CPU s   CPU s / 1M hh  x group_by
    diagnose (all features)             4.88      7.74            7.74        0.38
      densify (not used by diagnose)    3.93      4.10            4.10        0.20
    diagnose given the arrays           4.04      6.18            6.18        0.31
    tariff_what_if (3 bills)           14.73     17.38           17.38        0.86
      densify with registers            5.06      5.18            5.18        0.26
    what-if given the arrays            3.67      6.01            6.01        0.30
    bill-run flow (sum of 3 rows)      12.77     17.36           17.36        0.86
    baseline: polars group_by          11.11     20.17           20.17        1.00
    baseline: memory pass (sum)         0.11      0.11            0.11        0.01

    after, without last year          wall s     CPU s   CPU s / 1M hh  x group_by
    diagnose (all features)             4.53      7.43            7.43        0.35
    diagnose given the arrays           3.57      5.73            5.73        0.27
    bill-run flow (sum of 3 rows)      12.82     17.10           17.10        0.79
    baseline: polars group_by          11.56     21.53           21.53        1.00

i.e. ``diagnose`` of 1M household-years, reading the daily rows (no dense arrays: the usage features
straight from each customer's run of rows) and last year's months, costs 7.4-7.7 CPU s: 3.7-3.9 s per
core on this machine. Of a household's ~7.5 us: the usage kernel ~4 us (the radix sort of its days
~1.5, seasons ~0.8, reading the rows and summing the registers ~1.5), columns and runs ~0.5, payments
~0.5, peers ~0.2, last year ~1, the rest the polars glue. The tariff what-if is billing (the
``tariffs`` kernel, three bills a household) on dense arrays: ~5 CPU s of densify with registers and
~6 of billing per 1M households, i.e. ~5.7 s per core more for the tariff recommendation.

Kernels kept after measurement (issue #11, 2026-12-01, load ~15 on 2 cores, CPU time): the peer
percentiles by radix sort (``diagnostics.paykernels.peer_pct``) against the polars ``rank().over()``
formulation they replace (``features._peer_pct``, still the path for non-Float64 values), four metrics
of 1M households in 200 groups: 1.06 vs 2.18 CPU-s (2.04x, identical floats). Above the issue's ~2x
bar, so kept; going back would cost ~1.1 CPU-s per 1M households in ``diagnose``.

Readers of polars' Arrow string views (issue #11, 2026-12-01, load 16-22 on 2 cores, CPU seconds of
the process, best of 5; all now in ``wattbill/_arrow.py``, each with its plain path, forced by
``_arrow.plain_path()`` in ``tests/app/test_arrow.py``):

* payment channels and bill months coded from the views (``_arrow.string_codes``) against polars'
  ``replace_strict`` / ``str.starts_with``: ``features._channel_index`` of 1.2M payments 10.5 vs 125 ms
  (11.9x); ``features._payments`` of 100k households x 12 bills 121 vs 231 ms (1.9x for the whole
  step). Kept.
* runs of customer ids from the views (``dense._view_run_starts``) against polars: 9.9 ms vs 12.5 ms
  (``ne_missing`` of the shifted column, now the only path) or 16.2 ms (``Series.rle``) per 3.65M daily
  rows (1.3x). Removed: it costs ~0.7 CPU-s more per 1M household-years of 365 rows (~2.6 ms per 1M
  rows) in ``densify`` and the row kernels, under 10 % of ``diagnose``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import time

import numpy as np
import polars as pl

from wattbill.diagnostics import densify, diagnose
from wattbill.diagnostics.features import BILLS_SCHEMA

YEAR = 2025
DAYS = 365
TOU = "cn-zhejiang-res-tou"
TIER = "cn-zhejiang-res-tier"
REGIONS = ["杭州", "宁波", "温州", "绍兴", "嘉兴"]
CHANNELS = ["app", "wechat", "alipay", "bank", "counter", "other"]


def make_chunk(first: int, n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame,
                                                       pl.DataFrame]:
    """(daily, customers, payments, bills, alternatives) of ``n`` households, ids from ``first``."""
    rng = np.random.default_rng(seed)
    ids = pl.Series("customer_id", [f"{i:010d}" for i in range(first, first + n)], dtype=pl.Utf8)
    level = rng.uniform(2000, 15000, n)
    season = 1 + 0.5 * np.sin(np.linspace(0, 4 * np.pi, DAYS))[None, :] * rng.uniform(0, 1, n)[:, None]
    total = (level[:, None] * season * rng.lognormal(0, 0.2, (n, DAYS))).astype(np.int64) // 10 * 10
    valley = rng.uniform(0.05, 0.6, n)[:, None]
    v = (total * valley).astype(np.int64)
    s = total // 25
    p = (total - v - s) * 2 // 3
    f = total - v - s - p
    tou = rng.random(n) < 0.85
    row_cust = np.repeat(np.arange(n), DAYS)
    days = pl.Series(values=np.tile(np.arange(DAYS, dtype=np.int32), n) + (dt.date(YEAR, 1, 1) - dt.date(1970, 1, 1)).days
                     ).cast(pl.Date)
    tou_rows = pl.Series(values=np.repeat(tou, DAYS))
    daily = pl.DataFrame({
        "customer_id": ids.gather(row_cust),
        "meter_id": ids.gather(row_cust),
        "day": days,
        "wh_total": total.reshape(-1),
        "wh_sharp": s.reshape(-1),
        "wh_peak": p.reshape(-1),
        "wh_flat": f.reshape(-1),
        "wh_valley": v.reshape(-1),
        "estimated": np.zeros(n * DAYS, bool),
    }).with_columns([pl.when(tou_rows).then(pl.col(c)).alias(c) for c in ("wh_sharp", "wh_peak", "wh_flat", "wh_valley")])
    customers = pl.DataFrame({
        "customer_id": ids,
        "tariff": np.where(tou, TOU, TIER),
        "household_size": rng.integers(1, 7, n).astype(np.int32),
        "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), n)],
        "opened_on": pl.Series(values=[None] * n, dtype=pl.Date),
        "closed_on": pl.Series(values=[None] * n, dtype=pl.Date),
        "name": pl.Series(values=[None] * n, dtype=pl.Utf8),
        "address": pl.Series(values=[None] * n, dtype=pl.Utf8),
        "language": ["zh"] * n,
    })
    months = [f"{YEAR}-{m:02d}" for m in range(1, 13)]
    issued = pl.Series(values=np.tile([(dt.date(YEAR + (m == 12), m % 12 + 1, 1) - dt.date(1970, 1, 1)).days
                                       for m in range(1, 13)], n).astype(np.int32)).cast(pl.Date)
    delay = rng.integers(0, 40, n * 12)
    payments = pl.DataFrame({
        "customer_id": ids.gather(np.repeat(np.arange(n), 12)),
        "bill_month": np.tile(months, n),
        "issued_on": issued,
        "amount_fen": rng.integers(1000, 100000, n * 12),
        "channel": np.array(CHANNELS)[rng.integers(0, 6, n * 12)],
    }).with_columns(
        (pl.col("issued_on") + pl.duration(days=pl.lit(pl.Series(values=delay)))).alias("paid_on")
    ).select("customer_id", "bill_month", "issued_on", "paid_on", "amount_fen", "channel")
    month_fen = rng.integers(1000, 100000, (n, 12))
    year_fen = month_fen.sum(axis=1)
    bills = pl.DataFrame({
        "customer_id": ids,
        "tariff": customers["tariff"],
        "month_fen": pl.Series(values=month_fen).arr.to_list(),
        "year_fen": year_fen,
        "tier2_day": pl.Series(values=rng.integers(100, 400, n).astype(np.int32)),
        "tier3_day": pl.Series(values=rng.integers(200, 500, n).astype(np.int32)),
        "wh_tier2": total.sum(axis=1) // 4,
        "wh_tier3": total.sum(axis=1) // 10,
        "shift10_year_fen": year_fen - rng.integers(0, 3000, n),
        "is_tou": tou,
    }).with_columns(pl.when(pl.col(c) < DAYS).then(pl.col(c)).alias(c) for c in ("tier2_day", "tier3_day"))
    bills = bills.select([pl.col(c).cast(t) for c, t in BILLS_SCHEMA.items()])
    alternatives = pl.DataFrame({
        "customer_id": ids,
        "tariff": np.where(tou, TIER, TOU),
        "year_fen": year_fen + rng.integers(-5000, 5000, n),
        "is_tou": ~tou,
    }).filter(pl.Series(values=tou))
    return daily, customers, payments, bills, alternatives


def timed(fn, *args):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w0, time.process_time() - c0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--households", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=100_000)
    ap.add_argument("--what-if", action="store_true", help="also time tariff_what_if (needs tariffs)")
    ap.add_argument("--last-year", action="store_true",
                    help="also give diagnose last year's rows (this year's rows 365 days earlier), as the bill run does")
    ap.add_argument("--unsorted", action="store_true", help="keep each chunk's customers in id order")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"diagnostics benchmark: {args.households:,} households x {DAYS} days in chunks of {args.chunk:,}"
          f"{' (and last year)' if args.last_year else ''}; "
          f"{cores} cores, polars {pl.__version__} ({pl.thread_pool_size()} threads)")
    # warm-up: compile the numba kernels (cached on disk afterwards) outside the timings
    wd, wc, wp, wb, wa = make_chunk(0, 200, args.seed)
    wl = wd.with_columns(pl.col("day") - pl.duration(days=365))
    for dense in (None, densify(wd, wc, YEAR), densify(wd, wc, YEAR, with_regs=True)):  # every path
        diagnose(wd, wl, wc, wp, wb, wa, YEAR, dense=dense)
    catalog = None
    if args.what_if:
        from wattbill.diagnostics import tariff_what_if
        from wattbill.tariffs import load_catalog

        catalog = load_catalog()
        tariff_what_if(catalog, wd, wc, YEAR)

    totals = {k: [0.0, 0.0] for k in ("diagnose", "densify", "given_dense", "group_by", "memory", "what_if",
                                       "densify_regs", "what_if_dense")}
    done = 0
    gen = 0.0
    while done < args.households:
        n = min(args.chunk, args.households - done)
        (daily, cust, pays, bills, alts), gw, _ = timed(make_chunk, done, n, args.seed + done)
        gen += gw
        if not args.unsorted:  # as the bill run: a chunk's customers by tariff (bills in the same order)
            order = cust.select(pl.arg_sort_by("tariff", "customer_id")).to_series()
            cust, bills = cust[order], bills[order]
        _, w, c = timed(daily.get_column("wh_total").sum)
        totals["memory"][0] += w
        totals["memory"][1] += c
        _, w, c = timed(daily.group_by("customer_id").agg,
                        pl.col("wh_total", "wh_sharp", "wh_peak", "wh_flat", "wh_valley").sum(),
                        pl.len(), pl.col("wh_total").quantile(0.1).alias("p10"))
        totals["group_by"][0] += w
        totals["group_by"][1] += c
        last = daily.with_columns(pl.col("day") - pl.duration(days=365)) if args.last_year else None
        feats, w, c = timed(diagnose, daily, last, cust, pays, bills, alts, YEAR)
        assert feats.height == n
        totals["diagnose"][0] += w
        totals["diagnose"][1] += c
        dense, w, c = timed(densify, daily, cust, YEAR)
        totals["densify"][0] += w
        totals["densify"][1] += c
        _, w, c = timed(functools.partial(diagnose, dense=dense), daily, last, cust, pays, bills, alts, YEAR)
        totals["given_dense"][0] += w
        totals["given_dense"][1] += c
        del dense
        if catalog is not None:
            _, w, c = timed(tariff_what_if, catalog, daily, cust, YEAR)
            totals["what_if"][0] += w
            totals["what_if"][1] += c
            dense, w, c = timed(functools.partial(densify, with_regs=True), daily, cust, YEAR)
            totals["densify_regs"][0] += w
            totals["densify_regs"][1] += c
            _, w, c = timed(functools.partial(tariff_what_if, dense=dense), catalog, daily, cust, YEAR)
            totals["what_if_dense"][0] += w
            totals["what_if_dense"][1] += c
            del dense
        done += n
        del daily, cust, pays, bills, alts, feats, last
        print(f"  {done:>10,} households  diagnose {totals['diagnose'][0]:7.2f} s wall so far", flush=True)

    scale = 1_000_000 / args.households
    print(f"(data generation, not timed: {gen:.1f} s)")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'step':<30}{'wall s':>10}{'CPU s':>10}{'CPU s / 1M hh':>16}{'x group_by':>12}")
    rows = [("diagnose", "diagnose (all features)"), ("densify", "  densify (not used by diagnose)"),
            ("given_dense", "diagnose given the arrays"), ("group_by", "baseline: polars group_by"),
            ("memory", "baseline: memory pass (sum)")]
    if catalog is not None:
        rows[3:3] = [("what_if", "tariff_what_if (3 bills)"), ("densify_regs", "  densify with registers"),
                     ("what_if_dense", "what-if given the arrays")]
    if catalog is not None:  # the bill run densifies once (with registers) for billing, what-if and features
        totals["bill_run"] = [sum(totals[k][i] for k in ("densify_regs", "what_if_dense", "given_dense"))
                              for i in (0, 1)]
        rows.insert(6, ("bill_run", "bill-run flow (sum of 3 rows)"))
    gb = totals["group_by"][1] or 1e-9
    for key, label in rows:
        w, c = totals[key]
        print(f"{label:<30}{w:>10.2f}{c:>10.2f}{c * scale:>16.2f}{c / gb:>12.2f}")


if __name__ == "__main__":
    main()
