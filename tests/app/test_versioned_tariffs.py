"""A tariff version starting within the year, end to end (issue 12, items 4 and 8).

The issue's example: two files of ``cn-zhejiang-res-tou``, the second from 2024-04-01 with every
price 0.02 yuan higher. ``bill run``, ``estimate``, the tariff what-if and the PDF price every day
at the version in force (hand-worked months in ``tests/tariffs/test_versions.py``), on both stores;
the run warns once about each unverified tariff file it used, naming it, and the PDF shows the
tariff's notice, never its internal note.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from tests.app.conftest import run_cli
from tests.tariffs.test_versions import ISSUE_MONTHS, zj_version
from wattbill.statements import latest_statement
from wattbill.tariffs import load_catalog

CID = "3300000001"  # all year
CID_LATE = "3300000002"  # opened 2024-05-10


def _files(tmp: Path) -> tuple[Path, Path, Path]:
    tariffs = tmp / "tariffs"
    tariffs.mkdir()
    newer = re.sub(r"(?m)^notice = .*$", 'notice = "浙江省发展和改革委员会 2024 年调价通知（测试）"',
                   re.sub(r"(?m)^verified = false.*$", "verified = true", zj_version("2024-04-01", "0.02")))
    assert "verified = true" in newer and "2024 年调价通知" in newer
    (tariffs / "zj-2024-04.toml").write_text(newer, encoding="utf-8")
    customers = tmp / "customers.csv"
    customers.write_text("customer_id,tariff,household_size,region,opened_on\n"
                         f"{CID},cn-zhejiang-res-tou,3,zj,\n{CID_LATE},cn-zhejiang-res-tou,3,zj,2024-05-10\n")
    reads = tmp / "reads.csv"
    lines = ["customer_id,meter_id,read_date,kwh_total,kwh_sharp,kwh_peak,kwh_flat,kwh_valley"]
    day = dt.date(2024, 1, 1)
    while day.year == 2024:
        lines.append(f"{CID},M1,{day.isoformat()},20.00,0.00,12.00,0.00,8.00")
        if day >= dt.date(2024, 5, 10):
            lines.append(f"{CID_LATE},M2,{day.isoformat()},20.00,0.00,12.00,0.00,8.00")
        day += dt.timedelta(days=1)
    reads.write_text("\n".join(lines) + "\n")
    return tariffs, customers, reads


@pytest.fixture(params=["embedded", pytest.param("timescale", marks=pytest.mark.db)])
def store_url(request, tmp_path) -> str:
    if request.param == "embedded":
        return str(tmp_path / "store")
    return request.getfixturevalue("pg_store_url")


def _cli(*args: str) -> subprocess.CompletedProcess:
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.slow
def test_bill_run_estimate_what_if_and_pdf_price_each_day_at_its_version(store_url, tmp_path) -> None:
    tariffs, customers, reads = _files(tmp_path)
    common = ("--store", store_url)
    _cli("ingest", "customers", str(customers), *common)
    _cli("ingest", "reads", str(reads), "--kind", "consumption", *common)
    out = tmp_path / "out"
    run = _cli("bill", "run", "--year", "2024", "--out", str(out), "--tariffs", str(tariffs), "--workers", "1",
               *common)

    # item 8: one warning, naming the shipped (unverified) file; none for the verified one
    warnings = [line for line in run.stderr.splitlines() if "warning" in line]
    shipped = str(Path(load_catalog().get("cn-zhejiang-res-tou").origin))
    assert len(warnings) == 1 and shipped in warnings[0] and "unverified" in warnings[0], run.stderr
    assert "zj-2024-04.toml" not in run.stderr

    # item 4: each month at the version in force (hand-worked in tests/tariffs/test_versions.py)
    months = pl.read_parquet(out / "bill_months.parquet").sort("customer_id", "month")
    mine = months.filter(pl.col("customer_id") == CID)
    assert [str(x) for x in mine["charge_total"].to_list()] == ISSUE_MONTHS
    bills = pl.read_parquet(out / "bills.parquet").sort("customer_id")
    assert str(bills.filter(pl.col("customer_id") == CID)["charge_total"][0]) == "4305.92"
    late = months.filter(pl.col("customer_id") == CID_LATE)
    assert str(late["charge_total"][4]) == "209.44"  # 22 days of May at the new prices

    # estimate agrees with the bill run on every month (through each month's last day)
    bill_month = {(r["customer_id"], r["month"]): r["charge_total"] for r in months.iter_rows(named=True)}
    for cid, m in ((CID, 6), (CID, 12), (CID_LATE, 12)):
        last = (dt.date(2024, m + 1, 1) if m < 12 else dt.date(2025, 1, 1)) - dt.timedelta(days=1)
        proc = _cli("estimate", "--customer", cid, "--through", last.isoformat(), "--tariffs", str(tariffs),
                    *common)
        by_month = proc.stdout.split("by month: ")[1].splitlines()[0].split(", ")
        assert len(by_month) == m
        for k, item in enumerate(by_month, start=1):
            label, amount = item.split(" ")
            assert label == f"2024-{k:02d}" and Decimal(amount) == bill_month[(cid, k)], (cid, m, item)
        if m >= 4:
            assert "price changes: from 2024-04-01" in proc.stdout

    # the PDF: the tariff's name, its notice, each version's prices with its days; no internal note
    text = subprocess.run(["pdftotext", "-layout", str(latest_statement(out, 2024, CID)), "-"],
                          capture_output=True, text=True, check=True).stdout
    flat = "".join(text.split())
    assert "浙江省发展和改革委员会2024年调价通知（测试）" in flat
    assert "NOTconfirmed" not in flat and "hypothesis" not in flat
    assert "2024年4月1日" in flat and "0.588" in flat and "0.568" in flat  # both versions' prices
    assert "年阶梯电量跨调价连续累计" in flat


def test_what_if_bills_each_day_at_its_version(tmp_path) -> None:
    """The tariff what-if (diagnostics) prices the household as the bill run does."""
    from wattbill.diagnostics import tariff_what_if
    from wattbill.tariffs import parse_tariff

    catalog = load_catalog()
    catalog.add(parse_tariff(zj_version("2024-04-01", "0.02"), "zj-2024-04.toml"))
    days = pl.date_range(dt.date(2024, 1, 1), dt.date(2024, 12, 31), eager=True)
    daily = pl.DataFrame({
        "customer_id": [CID] * len(days), "meter_id": ["M1"] * len(days), "day": days,
        "wh_total": [20_000] * len(days), "wh_sharp": [0] * len(days), "wh_peak": [12_000] * len(days),
        "wh_flat": [0] * len(days), "wh_valley": [8_000] * len(days), "estimated": [False] * len(days),
    })
    customers = pl.DataFrame({"customer_id": [CID], "tariff": ["cn-zhejiang-res-tou"], "household_size": [3],
                              "region": ["zj"], "opened_on": [None], "closed_on": [None]},
                             schema_overrides={"household_size": pl.Int32, "opened_on": pl.Date, "closed_on": pl.Date})
    bills, alternatives = tariff_what_if(catalog, daily, customers, 2024)
    assert bills["year_fen"][0] == 430592
    assert bills["month_fen"][0].to_list() == [int(Decimal(x) * 100) for x in ISSUE_MONTHS]
    # the alternative (Zhejiang tiered, one version in 2024) is billed too
    alt = alternatives.filter(pl.col("tariff") == "cn-zhejiang-res-tier")
    assert alt.height == 1 and alt["year_fen"][0] > 0
