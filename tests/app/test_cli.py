"""The command line end to end: the demo, bill runs, recalculation and exit codes."""

from __future__ import annotations

import shutil
import subprocess

import polars as pl
import pytest

from tests.app.conftest import Demo, run_cli
from wattbill.statements import all_statements, statement_path

pytestmark = pytest.mark.slow


def pdftotext(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_demo_prints_where_things_are(demo: Demo) -> None:
    assert f"bills: {demo.out / 'bills.parquet'}" in demo.stdout
    assert f"PDFs: {demo.out / 'pdf' / '2025'}" in demo.stdout
    assert "40 of 40 households billed" in demo.stdout


def test_demo_pdfs_carry_chinese_text_and_the_households_charge(demo: Demo) -> None:
    bills = pl.read_parquet(demo.out / "bills.parquet")
    customers = pl.read_csv(demo.out / "input" / "customers.csv", schema_overrides={"customer_id": pl.Utf8})
    zh = customers.filter(pl.col("language") == "zh")["customer_id"].to_list()
    assert bills.height == 40 and len(all_statements(demo.out, 2025)) == 40
    checked = 0
    for row in bills.filter(pl.col("customer_id").is_in(zh)).head(5).iter_rows(named=True):
        text = pdftotext(statement_path(demo.out, 2025, row["customer_id"], row["version"]))
        assert "电费" in text and row["customer_id"] in text
        yuan = f"{row['charge_total']:,.2f}"  # Decimal, formatted with thousands separators
        assert yuan in text, (yuan, row["customer_id"])
        checked += 1
    assert checked == 5


def test_bills_parquet_follows_the_design(demo: Demo) -> None:
    bills = pl.read_parquet(demo.out / "bills.parquet")
    for col in ("customer_id", "year", "version", "tariff", "kwh_total", "kwh_sharp", "kwh_peak", "kwh_flat",
                "kwh_valley", "kwh_tier1", "kwh_tier2", "kwh_tier3", "charge_total", "labels", "estimated_days"):
        assert col in bills.columns, col
    assert bills["customer_id"].dtype == pl.Utf8 and bills["customer_id"][0].startswith("0")
    assert isinstance(bills.schema["charge_total"], pl.Decimal) and bills.schema["charge_total"].scale == 2
    months = pl.read_parquet(demo.out / "bill_months.parquet")
    assert months.height == 40 * 12
    per_customer = months.group_by("customer_id").agg(pl.col("charge_fen").sum())
    joined = bills.join(per_customer, on="customer_id", suffix="_m")
    assert (joined["charge_fen"] == joined["charge_fen_m"]).all()  # annual = sum of rounded months
    tiers = bills["kwh_tier1"] + bills["kwh_tier2"] + bills["kwh_tier3"]
    assert ((tiers - bills["kwh_total"]).abs() < 1e-6).all()


def test_second_run_is_idempotent_and_resumes_pdfs(demo: Demo, tmp_path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(demo.out, out)
    victim = all_statements(out, 2025)[3]
    victim.unlink()  # as if the run had been stopped before this PDF
    proc = run_cli("bill", "run", "--year", "2025", "--out", str(out), "--store", str(out / "store"))
    assert proc.returncode == 0, proc.stderr
    assert "new bill versions: 0" in proc.stdout
    assert "(1 written, 39 already there)" in proc.stdout
    assert victim.exists()
    before = pl.read_parquet(demo.out / "bills.parquet").sort("customer_id")
    after = pl.read_parquet(out / "bills.parquet").sort("customer_id")
    assert before.equals(after)


def test_recalc_makes_a_new_version_with_a_diff_and_a_reason(demo: Demo, tmp_path) -> None:
    out = tmp_path / "recalc"
    shutil.copytree(demo.out, out)
    store = str(out / "store")
    bills = pl.read_parquet(out / "bills.parquet")
    cid = bills.sort("customer_id")["customer_id"][0]
    # a corrected day: 50 kWh more on 2025-03-10, given as daily consumption
    daily = tmp_path / "correction.csv"
    daily.write_text(
        "customer_id,meter_id,read_date,kwh_total,kwh_sharp,kwh_peak,kwh_flat,kwh_valley\n"
        f"{cid},M{cid},2025-03-10,60.00,5.00,25.00,10.00,20.00\n"
    )
    proc = run_cli("ingest", "reads", str(daily), "--kind", "consumption", "--store", store)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("bill", "recalc", "--year", "2025", "--customer", cid, "--reason", "meter read corrected",
                   "--out", str(out), "--store", store, "--no-pdf")
    assert proc.returncode == 0, proc.stderr
    assert f"{cid}: version 1 -> 2: charge" in proc.stdout
    assert "reason: meter read corrected" in proc.stdout
    from wattbill.store import open_store

    st = open_store(store)
    try:
        versions = st.load_bills(2025, [cid], all_versions=True).sort("version")
    finally:
        st.close()
    assert versions["version"].to_list() == [1, 2]
    assert versions["charge_fen"][1] > versions["charge_fen"][0]
    # recalculating again with nothing changed makes no new version
    proc = run_cli("bill", "recalc", "--year", "2025", "--customer", cid, "--reason", "again",
                   "--out", str(out), "--store", store, "--no-pdf")
    assert f"{cid}: unchanged (version 2)" in proc.stdout


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x00\x01\x02 not a csv", "reads.csv"),
        (b"customer_id,meter_id\n001,M1\n", "read_date"),
        (b"", "reads.csv"),
    ],
)
def test_bad_files_end_with_one_line_and_exit_1(tmp_path, content: bytes, needle: str) -> None:
    bad = tmp_path / "reads.csv"
    bad.write_bytes(content)
    proc = run_cli("ingest", "reads", str(bad), "--store", str(tmp_path / "store"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert needle in lines[0]


def test_usage_errors_exit_2(tmp_path) -> None:
    proc = run_cli("bill", "run", "--store", str(tmp_path / "s"))  # --year missing
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_unknown_customer_is_a_user_error(demo: Demo) -> None:
    proc = run_cli("bill", "run", "--year", "2025", "--customer", "9999999999", "--store", str(demo.store),
                   "--no-pdf", "--out", str(demo.out / "unused"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == "wattbill: error: unknown customer 9999999999"


def test_token_needs_a_secret_and_prints_only_the_token(demo: Demo) -> None:
    proc = run_cli("token", "--customer", "0000000001", "--store", str(demo.store), env={"WATTBILL_SECRET": ""})
    assert proc.returncode == 1 and "WATTBILL_SECRET" in proc.stderr
    proc = run_cli("token", "--customer", "0000000001", "--ttl", "60", "--store", str(demo.store),
                   env={"WATTBILL_SECRET": "s" * 32})
    assert proc.returncode == 0
    assert len(proc.stdout.strip().splitlines()) == 1 and "." in proc.stdout


def test_no_token_for_a_customer_the_store_does_not_hold(demo: Demo, tmp_path) -> None:
    """A mistyped customer number gets an error, not a link to an empty page (a new user's report); a store
    that is not there is one line too."""
    proc = run_cli("token", "--customer", "000000001", "--store", str(demo.store), env={"WATTBILL_SECRET": "s" * 32})
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == "wattbill: error: unknown customer 000000001: no token made"
    proc = run_cli("token", "--customer", "0000000001", "--store", str(tmp_path / "none"),
                   env={"WATTBILL_SECRET": "s" * 32})
    assert proc.returncode == 1 and proc.stdout == "" and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr and "s" * 32 not in proc.stderr
    empty = tmp_path / "empty"  # a folder that is not a store is not made one by a command that only reads
    empty.mkdir()
    for args in (["token", "--customer", "0000000001"], ["bill", "run", "--year", "2025", "--no-pdf"]):
        proc = run_cli(*args, "--store", str(empty), env={"WATTBILL_SECRET": "s" * 32})
        assert proc.returncode == 1 and proc.stderr.startswith(f"wattbill: error: no store at {empty}"), proc.stderr
        assert list(empty.iterdir()) == []
