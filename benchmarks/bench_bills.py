"""Bill rendering benchmark: the plain approach against the tuned one, in the same run.

    .venv/bin/python -m benchmarks.bench_bills [--bills 2000] [--speed-bills 30] [--workers N]

1. speed, one process each, same documents:
   * plain: a fresh HTML -> PDF per bill (stylesheet parsed per bill, new FontConfiguration per bill,
     the 20 MB system Noto CJK collection, subset per PDF);
   * tuned: one ``bills.Renderer`` (CSS parsed once, one FontConfiguration, the CJK subsets);
   both with PDF/UA tagging (the default), and tuned also without it.
   Figures: bills/s of CPU time (= per core: the machine is shared, CPU time is what one core
   delivers), bills/s of wall time, KB per bill, peak RSS of the process.
2. throughput: ``bills.render_many`` with N worker processes recycled every ``--max-tasks`` bills.
3. memory over ``--bills`` bills: the tuned renderer in one process without recycling (does it leak?)
   and the worker pool (RSS of the workers, sampled while it runs).

Documents are a realistic mix made from ``tests.bills.sample``: 0 to 5 labels, 1 in 10 in English,
usage scaled 0.4x to 2x, varied names and addresses (some with characters outside the subset).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from wattbill.bills import BillDocument

NAMES = ["王建国", "李秀英", "张伟", "刘洋", "陈静", "杨帆", "黄赟", "赵敏", "吴昊天", "周婷", "Li Wei",
         "欧阳娜娜", "孙喆", "马骁", "朱珺"]
STREETS = ["文三路", "天目山路", "解放路", "湖滨路", "莫干山路", "钱江路", "滨盛路", "丰潭路"]
CITIES = ["杭州市西湖区", "宁波市鄞州区", "温州市鹿城区", "绍兴市越城区", "嘉兴市南湖区", "金华市婺城区"]


def make_docs(n: int, seed: int = 7) -> list:
    from tests.bills.sample import LABEL_CODES, sample_inputs
    from wattbill import bills

    rng = random.Random(seed)
    docs = []
    for i in range(n):
        labels = rng.sample(LABEL_CODES, rng.randint(0, 5))
        kw = sample_inputs(
            language="en" if i % 10 == 9 else "zh", labels=labels, customer_id=f"{3300000000 + i:013d}",
            name=rng.choice(NAMES),
            address=f"浙江省{rng.choice(CITIES)}{rng.choice(STREETS)}{rng.randint(1, 999)}号"
                    f"{rng.randint(1, 30)}幢{rng.randint(101, 2805)}室",
            scale=rng.uniform(0.4, 2.0),
        )
        docs.append(bills.build_document(**kw))
    return docs


def rss_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _speed_child(mode: str, n: int, queue) -> None:
    from wattbill import bills
    docs = make_docs(n)
    render: Callable[[BillDocument], bytes]
    if mode == "plain":
        render = bills.render_pdf_plain
    else:
        renderer = bills.Renderer(pdf_variant=None if mode == "tuned-untagged" else "pdf/ua-1")
        render = renderer.render_pdf
    render(docs[0])  # warm-up (imports, first font load): not counted
    sizes = []
    c0, w0 = time.process_time(), time.perf_counter()
    for doc in docs:
        sizes.append(len(render(doc)))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"mode": mode, "n": n, "cpu_s": cpu, "wall_s": wall, "kb": sum(sizes) / len(sizes) / 1024,
               "kb_max": max(sizes) / 1024, "peak_mb": peak})


def run_speed(mode: str, n: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_speed_child, args=(mode, n, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def run_pool(docs: list, workers: int, max_tasks: int, sample_every: int = 50) -> dict:
    from wattbill import bills
    from wattbill.bills import render as render_mod

    total = 0
    kb_max = 0.0
    worker_rss: list[float] = []
    c0 = time.perf_counter()
    for i, pdf in enumerate(bills.render_many(docs, workers=workers, max_tasks_per_child=max_tasks), 1):
        total += len(pdf)
        kb_max = max(kb_max, len(pdf) / 1024)
        if i % sample_every == 0 and render_mod._POOL is not None:
            worker_rss.append(max((rss_mb(p.pid) for p in render_mod._POOL._pool), default=0.0))
    wall = time.perf_counter() - c0
    render_mod.shutdown_pool()
    return {"n": len(docs), "wall_s": wall, "kb": total / len(docs) / 1024, "kb_max": kb_max,
            "worker_rss": worker_rss}


def _memory_child(n: int, queue) -> None:
    from wattbill import bills
    docs = make_docs(min(n, 200))
    renderer = bills.Renderer()
    trace = []
    for i in range(n):
        renderer.render_pdf(docs[i % len(docs)])
        if (i + 1) % max(1, n // 10) == 0:
            trace.append((i + 1, rss_mb()))
    queue.put(trace)


def run_memory_in_process(n: int) -> list[tuple[int, float]]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_child, args=(n, queue))
    proc.start()
    trace = queue.get()
    proc.join()
    return trace


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bills", type=int, default=2000, help="bills for the memory/throughput run")
    ap.add_argument("--speed-bills", type=int, default=30, help="bills per approach for the speed comparison")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-tasks", type=int, default=250, help="bills per worker process before it is replaced")
    ap.add_argument("--in-process", type=int, default=None,
                    help="bills for the in-process (no recycling) memory trace; default min(--bills, 1000)")
    args = ap.parse_args(argv)

    from wattbill.bills import fonts

    t = time.perf_counter()
    fonts.subset_fonts()  # built once per machine; not part of the per-bill figures
    print(f"font subsets ready ({time.perf_counter() - t:.1f} s; cached in {fonts.cache_dir()})")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")

    print(f"1. speed, {args.speed_bills} bills per approach, one process each")
    print(f"   {'approach':<16}{'bills/s/core':>13}{'bills/s wall':>13}{'KB/bill':>9}{'KB max':>8}{'peak RSS':>10}")
    results = {}
    for mode in ("plain", "tuned", "tuned-untagged"):
        r = run_speed(mode, args.speed_bills)
        results[mode] = r
        print(f"   {mode:<16}{r['n'] / r['cpu_s']:>13.2f}{r['n'] / r['wall_s']:>13.2f}{r['kb']:>9.1f}"
              f"{r['kb_max']:>8.1f}{r['peak_mb']:>8.0f} MB", flush=True)
    speedup = results["plain"]["cpu_s"] / results["tuned"]["cpu_s"]
    print(f"   tuned vs plain: {speedup:.1f}x faster per core, "
          f"{results['plain']['kb'] / results['tuned']['kb']:.1f}x smaller\n")

    if not args.bills:
        return 0
    docs = make_docs(min(args.bills, 400))
    many = [docs[i % len(docs)] for i in range(args.bills)]
    print(f"2. throughput and memory: render_many, {args.bills} bills, {args.workers} workers, "
          f"recycled every {args.max_tasks} bills")
    r = run_pool(many, args.workers, args.max_tasks)
    rss = r["worker_rss"]
    print(f"   {r['n'] / r['wall_s']:.2f} bills/s wall ({r['n'] / r['wall_s'] / args.workers:.2f} per worker), "
          f"{r['kb']:.1f} KB/bill (max {r['kb_max']:.1f})")
    if rss:
        q = max(1, len(rss) // 4)
        print("   worker RSS (MB, largest worker) by quarter of the run: "
              + ", ".join(f"{max(rss[i:i + q]):.0f}" for i in range(0, len(rss), q)))

    n_in = args.in_process if args.in_process is not None else min(args.bills, 1000)
    if n_in:
        print(f"\n3. one tuned renderer in one process, no recycling, {n_in} bills: RSS (MB)")
        trace = run_memory_in_process(n_in)
        print("   " + ", ".join(f"{i}: {m:.0f}" for i, m in trace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
