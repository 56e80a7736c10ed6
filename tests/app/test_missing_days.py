"""Open days without a read: a bill says how many and which, and a household with more than the
setting allows (``bill_max_missing_days``, default 31) is not billed but listed with its reason.

The silent case this closes: a meter whose reads stop in January was billed for the year with February
to December at 0 kWh and ``estimated_days`` 0, and its statement said every day had a reading.

Values are worked by hand from ``tariffs/catalog/cn-beijing-res-tier`` (0.4883 yuan/kWh in tier 1, each
month's charge rounded to the fen): 5 kWh a day, reads through 6 December 2025 = 340 days = 1,700 kWh;
31-day months 155 kWh -> 75.69 (x6), 30-day months 150 kWh -> 73.25 (x4), February 140 kWh -> 68.36,
December 30 kWh -> 14.65: 830.15 yuan.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from starlette.testclient import TestClient

from tests.app.test_field_data import customers, pdf_text, wb, write
from wattbill.api import bill_year
from wattbill.ingest.schemas import DAILY_SCHEMA
from wattbill.settings import reload_settings
from wattbill.statements import latest_statement

D = dt.date
TARIFF = "cn-beijing-res-tier"
SECRET = "test-secret-" + "z" * 24


@pytest.fixture(autouse=True)
def default_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's default (tests/conftest.py raises it for the short fixtures of other tests)."""
    monkeypatch.delenv("WATTBILL_BILL_MAX_MISSING_DAYS", raising=False)
    reload_settings()


@pytest.fixture(params=["embedded", pytest.param("timescale", marks=pytest.mark.db)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return str(tmp_path / "store")
    return str(request.getfixturevalue("pg_store_url"))


def _days(first: D, last: D) -> list[D]:
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]


def _daily(cid: str, days: list[D], wh: int = 5000) -> list[dict]:
    return [dict(customer_id=cid, meter_id="M" + cid, day=d, wh_total=wh, wh_sharp=None, wh_peak=None,
                 wh_flat=None, wh_valley=None, estimated=False) for d in days]


def test_bill_states_its_missing_days_and_more_than_a_month_is_not_billed() -> None:
    year_days = _days(D(2025, 1, 1), D(2025, 12, 31))
    rows = (_daily("JAN", year_days[:31]) + _daily("FULL", year_days) + _daily("DEC6", year_days[:340])
            + _daily("JULY", year_days[181:])  # opened 1 July: its open days all have reads
            + _daily("HOLES", [d for d in year_days if d.day != 15]))  # daily kWh, the 15th never sent
    cust = pl.DataFrame(
        [dict(customer_id=c, tariff=TARIFF, household_size=3, opened_on=D(2025, 7, 1) if c == "JULY" else None)
         for c in ("JAN", "FULL", "DEC6", "JULY", "HOLES")],
        schema_overrides={"household_size": pl.Int32},
    )
    yb = bill_year(pl.DataFrame(rows, schema=DAILY_SCHEMA), cust, 2025)
    bills = {r["customer_id"]: r for r in yb.bills.iter_rows(named=True)}

    assert set(bills) == {"FULL", "DEC6", "JULY", "HOLES"}
    nb = yb.not_billed.row(0, named=True)
    assert (nb["customer_id"], nb["code"]) == ("JAN", "wattbill.bill.incomplete_reads")
    assert "334 of 365 open days have no read (2025-02-01 to 2025-12-31)" in nb["detail"]
    assert json.loads(nb["evidence"]) == {"limit": 31, "missing_days": 334, "open_days": 365,
                                          "missing_ranges": [["2025-02-01", "2025-12-31"]]}

    assert (bills["FULL"]["missing_days"], json.loads(bills["FULL"]["missing_ranges"])) == (0, [])
    assert (bills["JULY"]["missing_days"], json.loads(bills["JULY"]["missing_ranges"])) == (0, [])
    dec6 = bills["DEC6"]
    assert (dec6["missing_days"], json.loads(dec6["missing_ranges"])) == (25, [["2025-12-07", "2025-12-31"]])
    assert str(dec6["charge_total"]) == "830.15" and dec6["kwh_total"] == 1700
    assert bills["HOLES"]["missing_days"] == 12
    assert json.loads(bills["HOLES"]["missing_ranges"])[:2] == [["2025-01-15", "2025-01-15"], ["2025-02-15", "2025-02-15"]]
    months = yb.months.filter(pl.col("customer_id") == "DEC6").sort("month")
    assert months["missing_days"].to_list() == [0] * 11 + [25]
    holes = yb.months.filter(pl.col("customer_id") == "HOLES")
    assert holes["missing_days"].to_list() == [1] * 12


def test_the_bills_missing_days_are_the_diagnosis_missing_days() -> None:
    """One rule: ``features.missing_days`` (open days without a read) equals the bill's."""
    from wattbill.api import diagnose

    year_days = _days(D(2025, 1, 1), D(2025, 12, 31))
    rows = _daily("A", year_days[:350]) + _daily("B", year_days[10:]) + _daily("C", year_days[::2][:183] + year_days[-20:])
    cust = pl.DataFrame([dict(customer_id=c, tariff=TARIFF, household_size=2) for c in "ABC"],
                        schema_overrides={"household_size": pl.Int32})
    daily = pl.DataFrame(rows, schema=DAILY_SCHEMA).unique(["customer_id", "meter_id", "day"])
    yb = bill_year(daily, cust, 2025, max_missing_days=366)
    feats = diagnose(daily, cust, 2025)
    joined = yb.bills.select("customer_id", "missing_days").join(
        feats.select("customer_id", pl.col("missing_days").alias("f")), on="customer_id")
    assert joined.height == 3
    assert joined["missing_days"].to_list() == joined["f"].to_list() == [15, 10, joined["f"][2]]
    assert joined["f"][2] > 100


def _registers(cid: str, meter: str, days: list[D], start: float = 1000.0) -> list[str]:
    """Cumulative register reads, 5 kWh a day, from the day before the first day."""
    rows = [f"{cid},{meter},{days[0] - dt.timedelta(days=1)},{start:.2f}"]
    for k, d in enumerate(days, start=1):
        rows.append(f"{cid},{meter},{d},{start + 5 * k:.2f}")
    return rows


def test_bill_run_lists_the_stopped_meter_and_the_statement_says_the_missing_days(
        capsys, tmp_path: Path, store_url: str) -> None:
    """End to end on both stores: the stopped meter in ``not_billed.parquet``, the late meter's bill,
    PDF and page say its 25 days; the late reads arriving make version 2 complete."""
    from wattbill.tokens import Keys, make_token
    from wattbill.web import create_app

    year_days = _days(D(2025, 1, 1), D(2025, 12, 31))
    cust = customers(tmp_path, ("1100000001", TARIFF), ("1100000002", TARIFF))
    wb(capsys, "ingest", "customers", str(cust), "--store", store_url)
    reads = write(tmp_path / "reads.csv", "户号,表号,日期,正向有功总",
                  _registers("1100000001", "M1", year_days[:31]) + _registers("1100000002", "M2", year_days[:340]))
    wb(capsys, "ingest", "reads", str(reads), "--store", store_url)
    out = tmp_path / "out"
    wb(capsys, "bill", "run", "--year", "2025", "--out", str(out), "--store", store_url)

    nb = pl.read_parquet(out / "not_billed.parquet")
    assert nb.select("customer_id", "code").rows() == [("1100000001", "wattbill.bill.incomplete_reads")]
    bill = pl.read_parquet(out / "bills.parquet").row(0, named=True)
    assert (bill["customer_id"], bill["missing_days"], bill["charge_fen"]) == ("1100000002", 25, 83015)
    text = " ".join(pdf_text(latest_statement(out, 2025, "1100000002")).split())
    assert "有 25 天没有抄表数据（12月7日至12月31日），这些天的用电不在本账单中" in text
    assert "全年每天均有实际抄表数据" not in text  # (the statement no longer claims every day was read)
    assert "最少的是2月（140.0 千瓦时）" in text  # not December, whose 30 kWh are 6 days read of 31

    app = create_app(store_url, out, Keys(SECRET, None))
    with TestClient(app) as client:
        summary = client.get("/api/summary", headers={"Authorization": f"Bearer {make_token('1100000002', SECRET)}"})
        assert summary.status_code == 200
        row = summary.json()["bills"][0]
        assert row["missing_days"] == 25 and "12月7日至12月31日" in row["missing_text"]
        assert client.get("/?token=" + make_token("1100000002", SECRET)).status_code == 200  # (sets the session)
        page = client.get("/")
        assert page.status_code == 200 and 'id="missing" data-days="25"' in page.text

    late = write(tmp_path / "late.csv", "户号,表号,日期,正向有功总",
                 _registers("1100000002", "M2", year_days[340:], start=1000.0 + 5 * 340)[1:])  # 7-31 December
    wb(capsys, "ingest", "reads", str(late), "--store", store_url)
    diff = wb(capsys, "bill", "recalc", "--year", "2025", "--customer", "1100000002", "--out", str(out),
              "--store", store_url, "--no-pdf", "--reason", "late December reads")
    assert "version 1 -> 2" in diff and "missing_days 25 -> 0" in diff and "charge 830.15 -> " in diff
    again = pl.read_parquet(out / "bills.parquet").row(0, named=True)
    assert (again["version"], again["missing_days"], again["kwh_total"]) == (2, 0, 1825)


def test_the_running_charge_says_the_days_it_has_no_read_for(capsys, tmp_path: Path) -> None:
    """``wattbill estimate`` through 31 December of a meter read only in January: January's charge, and
    the days it cannot count said (the bill's rule, ``missing_ranges``)."""
    from wattbill.estimate import running_for_customer
    from wattbill.store import open_store
    from wattbill.tariffs import load_catalog

    url = str(tmp_path / "store")
    wb(capsys, "ingest", "customers", str(customers(tmp_path, ("1100000001", TARIFF))), "--store", url)
    reads = write(tmp_path / "reads.csv", "户号,表号,日期,正向有功总",
                  _registers("1100000001", "M1", _days(D(2025, 1, 1), D(2025, 1, 31))))
    wb(capsys, "ingest", "reads", str(reads), "--store", url)
    out = wb(capsys, "estimate", "--customer", "1100000001", "--through", "2025-12-31", "--store", url)
    assert "155 kWh, 75.69 yuan" in out  # 31 x 5 kWh x 0.4883, to the fen
    assert "no read on 334 day(s) (2025-02-01 to 2025-12-31): their use is not counted" in out
    store = open_store(url)
    try:
        run = running_for_customer(load_catalog(), store.load_customers(["1100000001"]).row(0, named=True),
                                   store.load_daily(2025, ["1100000001"]), D(2025, 1, 20))
    finally:
        store.close()
    assert (run.missing_days, run.missing_ranges) == (0, ())


def _three_households(capsys, tmp_path: Path, store_url: str) -> None:
    """0000000010 and 0000000011 read every day of 2025; 0000000014 stops on 29 November (32 days
    without a read: ``wattbill.bill.incomplete_reads`` under the default limit of 31)."""
    year_days = _days(D(2025, 1, 1), D(2025, 12, 31))
    cust = customers(tmp_path, ("0000000010", TARIFF), ("0000000011", TARIFF), ("0000000014", TARIFF))
    wb(capsys, "ingest", "customers", str(cust), "--store", store_url)
    reads = write(tmp_path / "reads.csv", "户号,表号,日期,正向有功总",
                  _registers("0000000010", "M10", year_days) + _registers("0000000011", "M11", year_days)
                  + _registers("0000000014", "M14", year_days[:333]))
    wb(capsys, "ingest", "reads", str(reads), "--store", store_url)


def _stored_not_billed(store_url: str) -> list[tuple[str, str]]:
    from wattbill.store import open_store

    store = open_store(store_url)
    try:
        return store.load_not_billed(2025).select("customer_id", "code").rows()
    finally:
        store.close()


def test_recalc_into_the_years_folder_keeps_the_other_households_not_billed(
        capsys, tmp_path: Path, store_url: str) -> None:
    """``bill recalc --out`` into the year's folder replaces only its customers' rows of every table it
    writes there (``pipeline.keep_others``): ``not_billed.parquet`` was emptied (a new user's report),
    the printed count was the run's; the file and the store say the same."""
    _three_households(capsys, tmp_path, store_url)
    out = tmp_path / "out"
    run = wb(capsys, "bill", "run", "--year", "2025", "--out", str(out), "--no-pdf", "--store", store_url)
    assert f"not billed: {out / 'not_billed.parquet'} (1 households)" in run
    left = [("0000000014", "wattbill.bill.incomplete_reads")]
    tables = ("bills.parquet", "bill_months.parquet", "features/2025.parquet")
    heights = {t: pl.read_parquet(out / t).height for t in tables}
    assert heights == {"bills.parquet": 2, "bill_months.parquet": 24, "features/2025.parquet": 2}

    again = wb(capsys, "bill", "recalc", "--year", "2025", "--customer", "0000000010", "--reason", "check",
               "--out", str(out), "--no-pdf", "--store", store_url)
    assert f"not billed: {out / 'not_billed.parquet'} (1 households)" in again
    assert pl.read_parquet(out / "not_billed.parquet").select("customer_id", "code").rows() == left
    assert _stored_not_billed(store_url) == left
    assert {t: pl.read_parquet(out / t).height for t in tables} == heights

    # the late reads arrive: a recalculation of 0000000014 bills it and removes its record, from both
    late = write(tmp_path / "late.csv", "户号,表号,日期,正向有功总",
                 _registers("0000000014", "M14", _days(D(2025, 11, 30), D(2025, 12, 31)), start=1000.0 + 5 * 333)[1:])
    wb(capsys, "ingest", "reads", str(late), "--store", store_url)
    billed = wb(capsys, "bill", "recalc", "--year", "2025", "--customer", "0000000014", "--reason", "late reads",
                "--out", str(out), "--no-pdf", "--store", store_url)
    assert f"not billed: {out / 'not_billed.parquet'} (0 households)" in billed
    assert pl.read_parquet(out / "not_billed.parquet").height == 0 and _stored_not_billed(store_url) == []
    assert pl.read_parquet(out / "bills.parquet")["customer_id"].to_list() == ["0000000010", "0000000011",
                                                                             "0000000014"]


def test_a_run_whose_every_household_is_left_out_keeps_their_reasons(capsys, tmp_path: Path, store_url: str) -> None:
    """Every household of the run left out: ``not_billed.parquet`` and the store keep them, one line says
    no household could be billed and where the reasons are, exit 0 (1 with ``--strict``) as any run with
    households left out; ``bill recalc`` the same. It was an error, exit 1, and nothing written."""
    from wattbill.cli import main

    _three_households(capsys, tmp_path, store_url)
    left = [("0000000014", "wattbill.bill.incomplete_reads")]
    for command in (["run"], ["recalc", "--reason", "check"]):
        out = tmp_path / command[0]
        args = ["bill", *command, "--year", "2025", "--customer", "0000000014", "--out", str(out), "--no-pdf",
                "--store", store_url]
        assert main(args) == 0
        std = capsys.readouterr()
        assert "Traceback" not in std.out + std.err
        assert (f"wattbill: warning: no household of 2025 could be billed (1 left out; the reasons: "
                f"{out / 'not_billed.parquet'} and the store)") in std.err
        assert "0 of 1 households billed" in std.out
        assert f"not billed: {out / 'not_billed.parquet'} (1 households)" in std.out
        assert sorted(p.name for p in out.iterdir()) == ["not_billed.parquet"]
        assert pl.read_parquet(out / "not_billed.parquet").select("customer_id", "code").rows() == left
        assert _stored_not_billed(store_url) == left
        assert main([*args, "--strict"]) == 1
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1].startswith("wattbill: error: --strict: 1 households left out of 2025")
        assert "Traceback" not in err
