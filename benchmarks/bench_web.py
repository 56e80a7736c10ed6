"""Statement service benchmark: 50 concurrent clients on loopback, against the page and a cached statement.

    .venv/bin/python -m benchmarks.bench_web [--out DEMO_OUT] [--clients 50] [--requests 3000] [--seconds 30]

The server is ``wattbill.web`` under uvicorn in its own process on 127.0.0.1 (one process, as
``wattbill serve`` runs it; rate limits raised so that they do not bite). The clients are asyncio
tasks in this process, each with one keep-alive HTTP/1.1 connection (a minimal client: it costs
less CPU than an HTTP library, and the machine has two cores for both sides). Every phase is
bounded by a count of requests and a time budget, whichever comes first.

Phases:

1. **first render**: one customer after another asks for a statement that was never rendered (the
   demo is billed without PDFs): latency of that request (document built from the store, WeasyPrint,
   written to the cache);
2. **baseline**: the stylesheet (``/static/page.css``), the cheapest route: the floor of this
   server and client on this machine;
3. **page**: ``GET /`` with each client's session cookie (one customer per client, page cached
   per store generation after the client's first request);
4. **cached statement**: ``GET /api/statements/<year>.pdf`` with a bearer token (in memory).

Printed per phase: p50, p95, p99 [ms], requests/s, and the ratio of p99 to the target (p99 < 100 ms
for the page, < 50 ms for a cached statement, first render < 1 s).

Recorded on this 2-core machine shared with other sessions' test runs (load average 12-14), 40
customers, 2,000 requests per phase, uvicorn with httptools and uvloop:

    first render CPU   n=    3  median   906.3 ms CPU (document 51.9 + PDF 857.6); max 973.0 ms
    first render       n=    3  p50  3132.3 ms  max  4102.2 ms
    baseline (css)     n= 2000  p50   339.7 ms  p95   648.7 ms  p99  1072.4 ms    139.2 req/s
    page               n= 2000  p50    94.5 ms  p95   346.5 ms  p99   944.0 ms    232.2 req/s
    cached statement   n= 2000  p50   152.2 ms  p95   314.3 ms  p99   772.5 ms    287.4 req/s

A later run at load average 8.9 (same settings; the stylesheet now served from memory):

    first render CPU   n=    3  median   871.3 ms CPU (document 43.3 + PDF 820.0); max 902.4 ms
    first render       n=    3  p50  1677.5 ms  max  2704.8 ms
    baseline (css)     n= 2000  p50    17.1 ms  p95    72.9 ms  p99    98.0 ms   1667.5 req/s
    page               n= 2000  p50    91.8 ms  p95   161.1 ms  p99   314.2 ms    307.7 req/s
    cached statement   n= 2000  p50    88.5 ms  p95   159.7 ms  p99   192.5 ms    481.8 req/s

The targets are not met here: with the machine's two cores shared by ~14 runnable processes, even
the cheapest route has a p99 of a second; the service's own cost is ~1.5-2 ms per request in
process (page and cached statement, measured with a direct ASGI call).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRET = "bench-secret-" + "x" * 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(out: str, port: int) -> None:
    """Child process: the service on ``port`` with rate limits out of the way."""
    import uvicorn

    from wattbill.web import WebSettings, create_app
    from wattbill.web.security import Limits

    app = create_app(str(Path(out) / "store"), out, SECRET,
                     WebSettings(limits=Limits("10000000/minute", "10000000/minute", "10000000/minute")))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
        await self.writer.drain()
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        body = await self.reader.readexactly(int(hdrs.get("content-length", "0")))
        return status, hdrs, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def _load(port: int, clients: int, total: int, seconds: float, path_headers) -> tuple[list[float], float, int]:
    """``clients`` tasks sharing ``total`` requests; returns latencies [s], wall [s], errors."""
    latencies: list[float] = []
    errors = 0
    left = total
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal left, errors
        c = Client(port)
        path, headers = path_headers(i)
        try:
            await c.get(path, headers)  # warm: connection, caches
            while left > 0 and time.perf_counter() < deadline:
                left -= 1
                t0 = time.perf_counter()
                status, _h, _b = await c.get(path, headers)
                latencies.append(time.perf_counter() - t0)
                errors += status != 200
        finally:
            c.close()

    t0 = time.perf_counter()
    # warm-up requests are not counted; the clock starts with the first counted one
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return latencies, time.perf_counter() - t0, errors


def _report(name: str, latencies: list[float], wall: float, errors: int, target_ms: float | None) -> None:
    p50, p95, p99 = (1000 * _pct(latencies, q) for q in (0.50, 0.95, 0.99))
    rate = len(latencies) / wall if wall else 0.0
    ratio = f"  p99/target {p99 / target_ms:.2f}" if target_ms else ""
    print(f"{name:<18} n={len(latencies):>5}  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p99 {p99:7.1f} ms  "
          f"{rate:7.1f} req/s  errors {errors}{ratio}")


async def _session(port: int, token: str) -> str:
    c = Client(port)
    try:
        status, headers, _ = await c.get(f"/?token={token}", {})
    finally:
        c.close()
    assert status == 200, status
    cookie = headers["set-cookie"].split(";")[0]
    return cookie


def cpu_first(out: Path, n: int) -> None:
    """CPU time of an on-demand statement in this process (the comparable figure on a shared
    machine): the document from the store (``Service.document``) and its PDF (``render_pdf``), after
    one warm-up statement (fonts, CSS)."""
    import polars as pl

    from wattbill.bills import render_pdf
    from wattbill.web.service import Service

    ids = pl.read_parquet(out / "bills.parquet").sort("customer_id")["customer_id"].to_list()
    year = int(pl.read_parquet(out / "bills.parquet")["year"][0])
    service = Service(str(out / "store"), out)
    try:
        render_pdf(service.document(ids[-1], year, "zh"))
        docs, pdfs = [], []
        for cid in ids[-1 - n:-1]:
            t0 = time.process_time()
            doc = service.document(cid, year, "en")
            t1 = time.process_time()
            render_pdf(doc)
            docs.append(t1 - t0)
            pdfs.append(time.process_time() - t1)
    finally:
        service.close()
    total = [a + b for a, b in zip(docs, pdfs, strict=True)]
    print(f"{'first render CPU':<18} n={len(total):>5}  median {1000 * statistics.median(total):7.1f} ms CPU "
          f"(document {1000 * statistics.median(docs):.1f} + PDF {1000 * statistics.median(pdfs):.1f}); "
          f"max {1000 * max(total):.1f} ms  (target < 1000 ms)")


async def run(args: argparse.Namespace, out: Path) -> None:
    import polars as pl

    from wattbill.tokens import make_token

    cpu_first(out, args.first)
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_web", "--serve", str(out), "--port", str(port)],
                              env=env)
    try:
        for _ in range(600):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        bills = pl.read_parquet(out / "bills.parquet").sort("customer_id")
        ids = bills["customer_id"].to_list()
        year = int(bills["year"][0])
        print(f"{len(ids)} customers, year {year}; server pid {server.pid}; load average "
              f"{os.getloadavg()[0]:.1f}; {args.clients} clients")
        time.sleep(args.warm)  # the server warms its renderer and kernels in the background

        # 1. first render
        firsts = []
        c = Client(port)
        for cid in ids[: args.first]:
            t0 = time.perf_counter()
            status, headers, body = await c.get(f"/api/statements/{year}.pdf",
                                                {"Authorization": f"Bearer {make_token(cid, SECRET)}"})
            firsts.append(time.perf_counter() - t0)
            assert status == 200 and body.startswith(b"%PDF"), status
            assert headers.get("x-statement-source") in ("rendered", "run"), headers
        c.close()
        print(f"{'first render':<18} n={len(firsts):>5}  p50 {1000 * statistics.median(firsts):7.1f} ms  "
              f"max {1000 * max(firsts):7.1f} ms  (target < 1000 ms: median/target "
              f"{statistics.median(firsts):.2f})")

        # 2. baseline, 3. page, 4. cached statement
        lat, wall, err = await _load(port, args.clients, args.requests, args.seconds,
                                     lambda i: ("/static/page.css", {}))
        _report("baseline (css)", lat, wall, err, None)
        cookies = [await _session(port, make_token(ids[i % len(ids)], SECRET)) for i in range(args.clients)]
        lat, wall, err = await _load(port, args.clients, args.requests, args.seconds,
                                     lambda i: ("/", {"Cookie": cookies[i]}))
        _report("page", lat, wall, err, 100.0)
        lat, wall, err = await _load(
            port, args.clients, args.requests, args.seconds,
            lambda i: (f"/api/statements/{year}.pdf",
                       {"Authorization": f"Bearer {make_token(ids[i % args.first], SECRET)}"}))
        _report("cached statement", lat, wall, err, 50.0)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="a demo's output folder (default: a new demo, billed without PDFs)")
    ap.add_argument("--customers", type=int, default=60, help="customers of the new demo")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=3000, help="counted requests per phase (at most)")
    ap.add_argument("--seconds", type=float, default=30.0, help="time budget per phase [s]")
    ap.add_argument("--first", type=int, default=5, help="statements rendered on first request")
    ap.add_argument("--warm", type=float, default=5.0, help="seconds given to the server to warm up")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    args.requests = min(args.requests, 100_000)
    args.seconds = min(args.seconds, 300.0)
    if args.out is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
        proc = subprocess.run([sys.executable, "-m", "wattbill.cli", "demo", "--customers", str(args.customers),
                               "--out", str(tmp), "--no-pdf"], capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        args.out = tmp
    asyncio.run(run(args, args.out))


if __name__ == "__main__":
    main()
