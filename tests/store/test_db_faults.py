"""Database faults and secrets (issue #13), with the real cluster: a server that stops or restarts in
the middle of a bill run or an ingest ends the command with one line and exit 1 (or, when the retries
of a read bridge a restart, completes); the rerun completes. Passwords never appear in any output."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import polars as pl
import psycopg
import pytest

from wattbill import synth
from wattbill.ingest import ingest_file
from wattbill.store import StoreUnavailable, open_store

REPO = Path(__file__).resolve().parents[2]
PG_SH = REPO / "scripts" / "pg.sh"
YEAR = 2025
SECRET = "Wb-S3cret-pw-9917"


def _cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "WATTBILL_STORE"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "wattbill.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full, cwd=REPO)


def _pg(cmd: str) -> None:
    proc = subprocess.run(["bash", str(PG_SH), cmd], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


# --- secrets -----------------------------------------------------------------------------------


def _secret_urls(pg_url: str) -> list[str]:
    q = parse_qs(urlsplit(pg_url).query)
    host, port = q["host"][0], q["port"][0]
    return [
        f"postgresql://wattbill:{SECRET}@127.0.0.1:1/wattbill",  # nothing listens there
        f"postgresql://postgres:{SECRET}@/no_such_db_x?host={host}&port={port}",  # the server says no
        f"postgresql://postgres@/wattbill?host=/nonexistent-{SECRET[:3]}&port=1&password={SECRET}",
        f"postgresql://postgres:{SECRET}@/wattbill?host={host}&port={port}&sslmode=bogus",  # a bad option
        f"postgres://u:{SECRET}@[::1:5432/db",  # malformed
    ]


@pytest.mark.db
def test_passwords_never_printed(pg_url: str, tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text("customer_id,tariff\n1,cn-shanghai-res-tier\n")
    commands = [
        ["ingest", "customers", str(f)],
        ["ingest", "reads", str(f)],
        ["ingest", "quarantine", "list"],
        ["bill", "run", "--year", "2025", "--no-pdf", "--out", str(tmp_path / "out")],
        ["bill", "recalc", "--year", "2025", "--customer", "1", "--reason", "r", "--no-pdf"],
        ["estimate", "--customer", "1", "--through", "2025-03-01"],
    ]
    for url in _secret_urls(pg_url):
        for cmd in commands:
            proc = _cli(*cmd, "--store", url, timeout=120)
            out = proc.stdout + proc.stderr
            assert SECRET not in out, (cmd, url, out)
            assert proc.returncode == 1, (cmd, url, out)
            assert "Traceback" not in out
            assert len(_error_lines(proc.stderr)) == 1, (cmd, url, proc.stderr)
        # the environment variable: the same
        proc = _cli("ingest", "customers", str(f), env={"WATTBILL_STORE": url}, timeout=120)
        assert SECRET not in proc.stdout + proc.stderr and proc.returncode == 1
        # and the library's exception text
        with pytest.raises(StoreUnavailable) as exc:
            open_store(url)
        assert SECRET not in str(exc.value) and SECRET not in repr(exc.value)


# --- server stopped or restarted mid-run -------------------------------------------------------


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> synth.SynthPaths:
    return synth.generate(400, YEAR, seed=17, out_dir=tmp_path_factory.mktemp("synth17"), years=1)


def _db_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _wait_for_client(pg_url: str, db: str, timeout: float = 120.0) -> None:
    """Until a session of another process is connected to ``db``."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(pg_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            n = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [db]
            ).fetchone()
            if n and n[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the command never connected")


def _interrupted(pg_url: str, db: str, args: list[str], restart: bool, delay: float,
                 ready=None) -> subprocess.CompletedProcess:
    """Run the command; once it is connected (+ ``delay``), or once ``ready()`` holds, stop the server (and
    start it again)."""
    env = {**os.environ}
    env.pop("WATTBILL_STORE", None)
    proc = subprocess.Popen([sys.executable, "-m", "wattbill.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        _wait_for_client(pg_url, db)
        time.sleep(delay)
        while ready is not None and not ready():
            assert proc.poll() is None, "the command ended before the point to stop the server at"
            time.sleep(0.005)
        _pg("stop")
        if restart:
            _pg("start")
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        _pg("start")  # idempotent: the cluster is running for the other tests
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _load(url: str, files: synth.SynthPaths, kinds=("customers", "registers", "payments")) -> None:
    store = open_store(url)
    try:
        for kind in kinds:
            path = {"customers": files.customers, "registers": files.reads, "payments": files.payments}[kind]
            ingest_file(path, kind, store)
    finally:
        store.close()


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.parametrize(("restart", "delay"), [(False, 0.5), (True, 0.5), (False, "after pass 1")])
def test_bill_run_survives_a_server_stop(pg_url: str, pg_store_url: str, population: synth.SynthPaths,
                                         tmp_path: Path, restart: bool, delay) -> None:
    _load(pg_store_url, population)
    out = tmp_path / "out"
    args = ["bill", "run", "--year", str(YEAR), "--no-pdf", "--out", str(out), "--store", pg_store_url]
    if delay == "after pass 1":  # the server stops once pass 1 has committed its chunk: the global step fails
        proc = _interrupted(pg_url, _db_of(pg_store_url), args, restart, 0.0,
                            ready=lambda: any(out.glob(".checkpoints/*/chunk-*")))
    else:
        proc = _interrupted(pg_url, _db_of(pg_store_url), args, restart, delay)
    assert "Traceback" not in proc.stderr + proc.stdout
    if proc.returncode != 0:  # stopped: one line naming the fault
        assert proc.returncode == 1
        lines = _error_lines(proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("wattbill: error:"), proc.stderr
        assert any(w in lines[0] for w in ("unreachable", "database", "cannot connect")), lines[0]
    else:
        assert restart, "a stopped server cannot have completed the run"
    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    store = open_store(pg_store_url)
    try:
        bills = store.load_bills(YEAR, all_versions=True)
        assert bills.height == bills["customer_id"].n_unique() == 400  # one version each: nothing doubled
    finally:
        store.close()


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.parametrize("restart", [False, True])
def test_ingest_survives_a_server_stop(pg_url: str, pg_store_url: str, population: synth.SynthPaths,
                                       tmp_path: Path, restart: bool) -> None:
    _load(pg_store_url, population, kinds=("customers",))
    args = ["ingest", "reads", str(population.reads), "--json", "--store", pg_store_url]
    proc = _interrupted(pg_url, _db_of(pg_store_url), args, restart, 0.2)
    assert "Traceback" not in proc.stderr + proc.stdout
    if proc.returncode != 0:
        assert proc.returncode == 1
        assert len(_error_lines(proc.stderr)) == 1, proc.stderr
    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    # the same rows as a load that was never interrupted
    store = open_store(pg_store_url)
    try:
        got = store.load_daily(YEAR)
        ledger = store.load_ledger()
    finally:
        store.close()
    ref_dir = tmp_path / "ref"
    ref = open_store(ref_dir)
    ingest_file(population.customers, "customers", ref)
    ingest_file(population.reads, "registers", ref)
    assert got.equals(ref.load_daily(YEAR))
    assert ledger.filter(pl.col("kind") == "registers").height == 1


@pytest.mark.db
def test_every_store_method_maps_a_lost_server(pg_url: str, pg_store_url: str, tmp_path: Path) -> None:
    """With the server gone, each method raises the store's error (one line), after its retries."""
    store = open_store(pg_store_url)
    calls = {
        "ledger_get": lambda: store.ledger_get("x"),
        "load_ledger": store.load_ledger,
        "load_daily": lambda: store.load_daily(YEAR),
        "load_register_state": store.load_register_state,
        "load_customers": store.load_customers,
        "load_payments": store.load_payments,
        "load_quarantine": store.load_quarantine,
        "load_findings": store.load_findings,
        "list_customer_ids": store.list_customer_ids,
        "load_bills": lambda: store.load_bills(YEAR),
        "load_bill_months": lambda: store.load_bill_months(YEAR),
        "load_labels": lambda: store.load_labels(YEAR),
        "load_not_billed": lambda: store.load_not_billed(YEAR),
        "save_not_billed": lambda: store.save_not_billed(YEAR, ["1"], pl.DataFrame()),
    }
    try:
        _pg("stop")
        for name, call in calls.items():
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailable) as exc:
                call()
            assert "\n" not in str(exc.value), name
            assert time.monotonic() - t0 < 60, name
    finally:
        _pg("start")
    # the pool replaces its broken connections: the same store object works again
    assert store.load_customers().height == 0
    store.close()


@pytest.mark.db
def test_reads_retry_across_a_restart(pg_url: str, pg_store_url: str) -> None:
    """A read issued while the server restarts is retried with backoff and succeeds."""
    store = open_store(pg_store_url)
    try:
        assert store.load_customers().height == 0
        t = threading.Thread(target=lambda: (_pg("stop"), time.sleep(0.3), _pg("start")))
        t.start()
        time.sleep(0.2)
        results = []
        while t.is_alive():
            try:
                results.append(store.load_customers().height)
            except StoreUnavailable:
                results.append(-1)
        t.join()
        assert store.load_customers().height == 0
    finally:
        _pg("start")
        store.close()
