"""One bad read must not stop a province (issue #13): a household whose data cannot be billed is left
out with a reason code and its evidence, stored as data; every other household is billed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from wattbill import synth
from wattbill.ingest import ingest_file
from wattbill.pipeline import IMPLAUSIBLE_DAILY, run_bills
from wattbill.settings import reload_settings
from wattbill.store import open_store
from wattbill.tariffs import load_catalog

from .conftest import run_cli

YEAR = 2025
N_HOUSEHOLDS = 2000


def _wh_read(reads: Path, out: Path, customer_ids: list[str], day: str) -> Path:
    """``reads`` with the read of ``day`` of each of ``customer_ids`` written in Wh (x1000)."""
    r = pl.read_csv(reads, infer_schema=False)
    hit = pl.col("customer_id").is_in(customer_ids) & (pl.col("read_date") == day)
    regs = [c for c in ("total", "sharp", "peak", "flat", "valley") if c in r.columns]
    r = r.with_columns([
        pl.when(hit & pl.col(c).is_not_null())
        .then((pl.col(c).cast(pl.Float64) * 1000).round(0).cast(pl.Int64).cast(pl.Utf8))
        .otherwise(pl.col(c)).alias(c)
        for c in regs
    ])
    r.write_csv(out)
    return out


def _absurd_day(tmp: Path, customer_id: str) -> Path:
    """A consumption file with one day of 77,617,814 kWh (the issue's read)."""
    f = tmp / "absurd.csv"
    f.write_text(f"customer_id,meter_id,read_date,kwh_total\n{customer_id},MX{customer_id},{YEAR}-03-03,77617814\n")
    return f


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> synth.SynthPaths:
    return synth.generate(N_HOUSEHOLDS, YEAR, seed=13, out_dir=tmp_path_factory.mktemp("synth13"), years=1)


@pytest.mark.slow
def test_one_absurd_read_in_thousands(population: synth.SynthPaths, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ids = pl.read_csv(population.customers, infer_schema=False)["customer_id"].sort().to_list()
    assert len(ids) == N_HOUSEHOLDS
    store_dir = tmp_path / "store"
    # 1. at ingest: the read written in Wh is quarantined, its days estimated; everyone is billed
    reads = _wh_read(population.reads, tmp_path / "reads.csv", [ids[5]], f"{YEAR}-06-15")
    store = open_store(store_dir)
    try:
        for kind, path in (("customers", population.customers), ("registers", reads),
                           ("payments", population.payments)):
            rep = ingest_file(path, kind, store)
            assert rep.rows == rep.loaded + rep.quarantined + rep.duplicates
        q = store.load_quarantine()
        # a bad read either way: above both neighbours (``out_of_line_read``, VEE's general rule, checked
        # first) and beyond what the connection can draw (``implausible_consumption``)
        bad = q.filter(pl.col("code").is_in(["implausible_consumption", "out_of_line_read"]))
        assert bad.height == 1 and bad["raw"].str.contains("2025-06-15").all()
        # 2. a day that reached the store anyway (loaded with a raised limit, or before the limit existed)
        monkeypatch.setenv("WATTBILL_MAX_DAILY_KWH", "100000000")
        reload_settings()  # settings are read once
        ingest_file(_absurd_day(tmp_path, ids[7]), "consumption", store)
        monkeypatch.delenv("WATTBILL_MAX_DAILY_KWH")
        reload_settings()  # settings are read once
    finally:
        store.close()

    out = tmp_path / "out"
    proc = run_cli("bill", "run", "--year", str(YEAR), "--out", str(out), "--no-pdf", "--store", str(store_dir),
                   env={"WATTBILL_STORE": str(store_dir)})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"{N_HOUSEHOLDS - 1} of {N_HOUSEHOLDS} households billed" in proc.stdout
    assert "left out: 1 households (wattbill.bill.implausible_daily 1)" in proc.stderr
    bills = pl.read_parquet(out / "bills.parquet")
    assert bills.height == N_HOUSEHOLDS - 1 and ids[7] not in bills["customer_id"].to_list()
    assert ids[5] in bills["customer_id"].to_list()
    nb = pl.read_parquet(out / "not_billed.parquet")
    assert nb.select("customer_id", "year", "code").rows() == [(ids[7], YEAR, IMPLAUSIBLE_DAILY)]
    ev = json.loads(nb["evidence"][0])
    assert ev["wh_total"] == 77_617_814_000 and ev["day"] == f"{YEAR}-03-03" and ev["limit_wh"] == 316_800
    store = open_store(store_dir)
    try:
        assert store.load_not_billed(YEAR)["customer_id"].to_list() == [ids[7]]
        # the household with the quarantined read: the register difference across the bad read is kept
        d = store.load_daily(YEAR, [ids[5]])
        assert d["wh_total"].max() < 316_800
    finally:
        store.close()
    # --strict: the same run, exit 1 with one line
    strict = run_cli("bill", "run", "--year", str(YEAR), "--out", str(out), "--no-pdf", "--strict",
                     "--store", str(store_dir), env={"WATTBILL_STORE": str(store_dir)})
    assert strict.returncode == 1
    assert strict.stderr.strip().splitlines()[-1].startswith("wattbill: error: --strict: 1 households left out")


def test_calculation_error_is_isolated_by_bisection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the limit raised past what the kernels take (2**31 Wh a day), the kernels raise for that
    household: it is left out with the error as evidence, the others are billed."""
    files = synth.generate(12, YEAR, seed=5, out_dir=tmp_path / "synth", years=1)
    store = open_store(tmp_path / "store")
    ids = pl.read_csv(files.customers, infer_schema=False)["customer_id"].sort().to_list()
    for kind, path in (("customers", files.customers), ("registers", files.reads), ("payments", files.payments)):
        ingest_file(path, kind, store)
    monkeypatch.setenv("WATTBILL_MAX_DAILY_KWH", "100000000")
    reload_settings()  # settings are read once
    ingest_file(_absurd_day(tmp_path, ids[3]), "consumption", store)
    summary = run_bills(store, load_catalog(), YEAR, out_dir=tmp_path / "out", pdf=False)
    assert summary.billed == 11 and summary.households == 12
    nb = summary.not_billed
    assert nb["customer_id"].to_list() == [ids[3]]
    assert nb["code"].to_list() == ["wattbill.bill.calculation_failed"]
    assert "2**31" in json.loads(nb["evidence"][0])["error"]
    # rerun with the default limit: the bill run's own screening names the day
    monkeypatch.delenv("WATTBILL_MAX_DAILY_KWH")
    reload_settings()  # settings are read once
    summary = run_bills(store, load_catalog(), YEAR, out_dir=tmp_path / "out", pdf=False)
    assert summary.not_billed["code"].to_list() == [IMPLAUSIBLE_DAILY]
    assert store.load_not_billed(YEAR)["code"].to_list() == [IMPLAUSIBLE_DAILY]
    # the household corrected (its absurd row replaced) is billed again and leaves the not-billed list
    fix = tmp_path / "fix.csv"
    fix.write_text(f"customer_id,meter_id,read_date,kwh_total\n{ids[3]},MX{ids[3]},{YEAR}-03-03,7.7\n")
    ingest_file(fix, "consumption", store)
    summary = run_bills(store, load_catalog(), YEAR, out_dir=tmp_path / "out", pdf=False)
    assert summary.billed == 12 and summary.not_billed.height == 0
    assert store.load_not_billed(YEAR).height == 0
    assert pl.read_parquet(tmp_path / "out" / "not_billed.parquet").height == 0


@pytest.mark.db
def test_not_billed_kept_in_timescaledb(tmp_path: Path, pg_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    files = synth.generate(10, YEAR, seed=8, out_dir=tmp_path / "synth", years=1)
    store = open_store(pg_store_url)
    try:
        ids = pl.read_csv(files.customers, infer_schema=False)["customer_id"].sort().to_list()
        for kind, path in (("customers", files.customers), ("registers", files.reads)):
            ingest_file(path, kind, store)
        monkeypatch.setenv("WATTBILL_MAX_DAILY_KWH", "100000000")
        reload_settings()  # settings are read once
        ingest_file(_absurd_day(tmp_path, ids[2]), "consumption", store)
        monkeypatch.delenv("WATTBILL_MAX_DAILY_KWH")
        reload_settings()  # settings are read once
        summary = run_bills(store, load_catalog(), YEAR, out_dir=tmp_path / "out", pdf=False)
        assert summary.billed == 9
        stored = store.load_not_billed(YEAR)
        assert stored.select("customer_id", "code").rows() == [(ids[2], IMPLAUSIBLE_DAILY)]
        assert json.loads(stored["evidence"][0])["wh_total"] == 77_617_814_000
    finally:
        store.close()


def test_stale_temporaries_of_a_killed_run_are_cleaned(tmp_path: Path) -> None:
    """A run killed between writing ``.bills.parquet.<pid>.tmp`` and its rename leaves it; the next run
    removes it (a real process, killed with SIGKILL, whose pid is then gone)."""
    out = tmp_path / "out"
    (out / "pdf" / str(YEAR)).mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc.kill()
    proc.wait()
    stale = [out / f".bills.parquet.{proc.pid}.tmp", out / f".bill_months.parquet.{proc.pid}.tmp",
             out / "pdf" / str(YEAR) / ".0000000001.pdf.tmp", out / "pdf" / str(YEAR) / ".manifest.json.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    mine = out / f".bills.parquet.{os.getppid()}.tmp"  # a live process's file is left alone
    mine.write_bytes(b"in progress")
    files = synth.generate(4, YEAR, seed=2, out_dir=tmp_path / "synth", years=1)
    store = open_store(tmp_path / "store")
    for kind, path in (("customers", files.customers), ("registers", files.reads)):
        ingest_file(path, kind, store)
    run_bills(store, load_catalog(), YEAR, out_dir=out, pdf=False)
    assert not any(p.exists() for p in stale)
    assert mine.exists()


def test_estimate_refuses_an_implausible_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The running charge applies the bill run's rule: one line, exit 1, the reason code."""
    store_dir = tmp_path / "store"
    c = tmp_path / "c.csv"
    c.write_text("customer_id,tariff\n0000000001,cn-shanghai-res-tier\n")
    st = open_store(store_dir)
    ingest_file(c, "customers", st)
    monkeypatch.setenv("WATTBILL_MAX_DAILY_KWH", "100000000")
    reload_settings()  # settings are read once
    ingest_file(_absurd_day(tmp_path, "0000000001"), "consumption", st)
    monkeypatch.delenv("WATTBILL_MAX_DAILY_KWH")
    reload_settings()  # settings are read once
    proc = run_cli("estimate", "--customer", "0000000001", "--through", f"{YEAR}-06-30", "--store", str(store_dir),
                   env={"WATTBILL_STORE": str(store_dir)})
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and IMPLAUSIBLE_DAILY in lines[0], proc.stderr


def test_running_charge_refuses_a_date_outside_the_bill_years() -> None:
    """``estimate --through 9999-12-31`` and ``/api/running?through=9999-12-31`` were a traceback (year 10000
    in the calendar arithmetic): a date outside the bill years is one line (found by a new user's try)."""
    import datetime as dt

    from wattbill.errors import WattbillError
    from wattbill.estimate import running_for_customer
    from wattbill.tariffs import load_catalog

    for day in (dt.date(9999, 12, 31), dt.date(1989, 12, 31), dt.date(2200, 1, 1)):
        with pytest.raises(WattbillError, match="outside the years"):
            running_for_customer(load_catalog(), {"customer_id": "1", "tariff": "cn-shanghai-res-tier"},
                                 pl.DataFrame(), day)
