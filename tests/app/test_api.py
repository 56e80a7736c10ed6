"""The notebook API (wattbill.api, re-exported from wattbill) and its example in docs/."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

import wattbill
from wattbill.errors import IngestError, UnknownCustomer, WattbillError
from wattbill.tariffs import load_catalog
from wattbill.tariffs.reference import reference_bill

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "ingest"


def _fen(yuan) -> int:
    """Decimal yuan -> fen, exactly (the reference's annual amount has two decimals)."""
    return int(yuan * 100)


@pytest.mark.slow
def test_docs_example_runs_and_renders_a_pdf(tmp_path: Path):
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "example.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "quarantined" in proc.stdout and "bill:" in proc.stdout
    pdfs = list(tmp_path.glob("*.pdf"))
    assert len(pdfs) == 1
    text = subprocess.run(["pdftotext", str(pdfs[0]), "-"], capture_output=True, text=True, check=True).stdout
    charge = proc.stdout.split(f"{pdfs[0].stem}: ", 1)[1].split(" yuan", 1)[0]
    assert charge in text  # the PDF shows the charge the API computed


def test_validate_reads_file_and_frame_agree():
    path = FIXTURES / "bad_values.csv"
    from_file = wattbill.validate_reads(path, today=date(2026, 1, 1))
    frame = pl.read_csv(path, infer_schema=False)  # every value as text, as a utility's export
    from_frame = wattbill.validate_reads(frame, today=date(2026, 1, 1))
    r = from_file.report
    assert r.rows == r.loaded + r.quarantined + r.duplicates and r.quarantined > 0
    for a, b in ((from_file, from_frame),):
        assert (a.report.rows, a.report.loaded, a.report.quarantined, a.report.duplicates) == \
            (b.report.rows, b.report.loaded, b.report.quarantined, b.report.duplicates)
        assert a.daily.equals(b.daily)
        assert sorted(a.quarantine["code"].to_list()) == sorted(b.quarantine["code"].to_list())
    assert from_file.quarantine["reason"].str.len_chars().min() > 0  # each with its reason


def test_validate_reads_refuses_a_frame_without_the_columns():
    with pytest.raises(IngestError, match="missing column"):
        wattbill.validate_reads(pl.DataFrame({"customer_id": ["1"], "total": [1.0]}))
    assert issubclass(IngestError, WattbillError)


def _case():
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(365)]
    daily = pl.DataFrame({
        "customer_id": ["A"] * 365 + ["B"] * 365, "meter_id": ["m"] * 730, "day": days * 2,
        "wh_total": [10_000] * 365 + [4_000] * 365,
        "wh_sharp": [0] * 365 + [None] * 365, "wh_peak": [6_000] * 365 + [None] * 365,
        "wh_flat": [0] * 365 + [None] * 365, "wh_valley": [4_000] * 365 + [None] * 365,
        "estimated": [False] * 730,
    }, schema_overrides={c: pl.Int64 for c in ("wh_sharp", "wh_peak", "wh_flat", "wh_valley")})
    customers = pl.DataFrame({
        "customer_id": ["A", "B"], "tariff": ["cn-shanghai-res-tou", "cn-zhejiang-res-tou"],
        "household_size": [3, 1], "region": ["r", "r"], "opened_on": [None, date(2025, 7, 1)],
        "closed_on": [None, None], "language": ["en", "zh"],
    }, schema_overrides={"opened_on": pl.Date, "closed_on": pl.Date, "household_size": pl.Int32})
    return daily, customers


def test_bill_year_equals_the_decimal_reference():
    daily, customers = _case()
    year = wattbill.bill_year(daily, customers, 2025)
    catalog = load_catalog()
    jan1 = date(2025, 1, 1)
    expected = {
        "A": reference_bill(catalog.get("cn-shanghai-res-tou", on=jan1), 2025, [10_000] * 365,
                            [(0, 6_000, 0, 4_000)] * 365, 0, 364, 3),
        # B opened on 1 July (day 181): thresholds prorated; no registers: all in one period
        "B": reference_bill(catalog.get("cn-zhejiang-res-tou", on=jan1), 2025, [4_000] * 365,
                            [(0, 0, 0, 0)] * 365, 181, 364, 1),
    }
    got = dict(zip(year.bills["customer_id"], year.bills["charge_fen"], strict=True))
    assert got == {k: _fen(v.annual) for k, v in expected.items()}
    assert year.not_billed.height == 0


def test_bill_year_reports_households_it_cannot_bill():
    daily, customers = _case()
    customers = customers.with_columns(pl.when(pl.col("customer_id") == "B").then(pl.lit("no-such-tariff"))
                                       .otherwise(pl.col("tariff")).alias("tariff"))
    year = wattbill.bill_year(daily, customers, 2025)
    assert year.bills["customer_id"].to_list() == ["A"]
    assert year.not_billed["customer_id"].to_list() == ["B"] and "no-such-tariff" in year.not_billed["detail"][0]
    assert year.not_billed["code"].to_list() == ["wattbill.bill.unknown_tariff"]


def test_diagnose_label_and_document():
    daily, customers = _case()
    year = wattbill.bill_year(daily, customers, 2025)
    features = wattbill.diagnose(daily, customers, 2025)
    assert features["customer_id"].to_list() == ["A", "B"]
    # A: 60 % of its kWh at peak, by construction
    assert features.filter(pl.col("customer_id") == "A")["share_peak"].item() == pytest.approx(0.6)
    labels = wattbill.label(features)
    assert set(labels.assigned["customer_id"].unique()) <= {"A", "B"}
    doc = wattbill.bill_document("A", customers, year, features, labels)
    fen = int(year.bills.filter(pl.col("customer_id") == "A")["charge_fen"].item())
    assert doc.charge_text == f"{fen // 100:,}.{fen % 100:02d}"
    with pytest.raises(UnknownCustomer):
        wattbill.bill_document("Z", customers, year, features, labels)


def test_import_wattbill_loads_no_heavy_module():
    code = ("import sys, wattbill, wattbill.cli, wattbill.errors, wattbill.settings; "
            "heavy = [m for m in ('polars', 'numba', 'numpy', 'weasyprint', 'psycopg', 'starlette') if m in sys.modules]; "
            "print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == ""
