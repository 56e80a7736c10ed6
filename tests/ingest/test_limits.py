"""Physical limits and unambiguous formats at ingest (issue #13): each bad value a counted quarantine
reason, never a traceback, never stored differently from the file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from wattbill.errors import WattbillError
from wattbill.ingest import ingest_file
from wattbill.ingest.errors import IngestError
from wattbill.ingest.limits import DEFAULT_MAX_DAILY_WH, max_daily_wh
from wattbill.settings import reload_settings
from wattbill.store import open_store

TODAY = dt.date(2026, 6, 1)


def _csv(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _q(path: Path, kind: str, **kw):
    rep = ingest_file(path, kind, None, today=TODAY, **kw)
    assert rep.rows == rep.loaded + rep.quarantined + rep.duplicates
    return rep


# --- money ---------------------------------------------------------------------------------------

PAY_HEAD = "customer_id,bill_month,issued_on,paid_on,amount,channel\n"


@pytest.mark.parametrize(
    ("amount", "fen", "code"),
    [
        ("269.55", 26955, None),
        ('"1,234.50"', 123450, None),
        ('"12,345,678.00"', None, "implausible_value"),  # grouped right, beyond 10 million yuan
        ('"1,000,000.00"', 100000000, None),
        ('"269,55"', None, "non_numeric"),  # a decimal comma: never 26,955
        ('"2,69"', None, "non_numeric"),
        ('"1,2345.00"', None, "non_numeric"),
        ('"12,34,567.00"', None, "non_numeric"),  # Indian grouping
        ("100000000000000000.00", None, "implausible_value"),  # would wrap int64 fen
        ("99999999999999999999.99", None, "implausible_value"),  # was a traceback
        ("10000000.00", 1_000_000_000, None),  # the limit itself
        ("10000000.01", None, "implausible_value"),
        ("-5.00", -500, None),
        ("5.005", None, "non_numeric"),
        ("1e3", None, "non_numeric"),
        ("NaN", None, "non_numeric"),
        ("inf", None, "non_numeric"),
        ("0000000000000000000012.00", 1200, None),  # leading zeros: a small amount
    ],
)
def test_amounts(tmp_path: Path, amount: str, fen: int | None, code: str | None) -> None:
    f = _csv(tmp_path, "p.csv", PAY_HEAD + f"7,2025-01,2025-02-01,2025-02-05,{amount},app\n")
    rep = _q(f, "payments")
    store = open_store(tmp_path / "store")
    ingest_file(f, "payments", store, today=TODAY)
    stored = store.load_payments()
    if code is None:
        assert rep.loaded == 1
        assert stored["amount_fen"].to_list() == [fen]
    else:
        assert rep.quarantine_by_code == {code: 1}
        assert stored.height == 0
        assert store.load_quarantine()["code"].to_list() == [code]


def test_typed_amounts_from_parquet(tmp_path: Path) -> None:
    """A Parquet file's float amounts are read as written (shortest decimal), never truncated; huge or
    non-finite ones quarantined."""
    f = tmp_path / "p.parquet"
    pl.DataFrame({
        "customer_id": ["1", "2", "3", "4", "5"], "bill_month": ["2025-01"] * 5,
        "issued_on": [dt.date(2025, 2, 1)] * 5, "paid_on": [None] * 5,
        "amount": [0.29, 269.55, 1e20, float("nan"), float("inf")], "channel": ["app"] * 5,
    }).write_parquet(f)
    store = open_store(tmp_path / "store")
    rep = ingest_file(f, "payments", store, today=TODAY)
    assert rep.loaded == 2 and rep.quarantined == 3
    assert store.load_payments().sort("customer_id")["amount_fen"].to_list() == [29, 26955]


# --- dates ---------------------------------------------------------------------------------------


READS_HEAD = "customer_id,meter_id,read_date,kwh_total\n"


def test_day_first_dates_refused_unless_stated(tmp_path: Path) -> None:
    f = _csv(tmp_path, "c.csv", READS_HEAD + "1,M1,01/02/2025,3.5\n1,M1,2025-02-02,4.0\n1,M1,2025/2/3,4.5\n")
    rep = _q(f, "consumption")
    assert rep.quarantine_by_code == {"ambiguous_date": 1}
    for order, day in (("dmy", dt.date(2025, 2, 1)), ("mdy", dt.date(2025, 1, 2))):
        store = open_store(tmp_path / f"store-{order}")
        rep = ingest_file(f, "consumption", store, today=TODAY, date_order=order)
        assert rep.quarantined == 0, rep.quarantine_by_code
        days = store.load_daily(2025)["day"].to_list()
        assert day in days and dt.date(2025, 2, 2) in days


def test_day_first_dates_in_payments_and_customers(tmp_path: Path) -> None:
    pay = _csv(tmp_path, "p.csv", PAY_HEAD + "7,2025-01,05/02/2025,,10.00,app\n")
    assert _q(pay, "payments").quarantine_by_code == {"ambiguous_date": 1}
    cust = _csv(tmp_path, "c.csv", "customer_id,tariff,opened_on\n7,cn-shanghai-res-tier,3/4/2020\n")
    assert _q(cust, "customers").quarantine_by_code == {"ambiguous_date": 1}


def test_unknown_date_order_is_one_line(tmp_path: Path) -> None:
    f = _csv(tmp_path, "c.csv", READS_HEAD + "1,M1,2025-02-02,4.0\n")
    with pytest.raises(IngestError) as exc:
        ingest_file(f, "consumption", None, date_order="ydm")
    assert "\n" not in str(exc.value)


# --- customers -----------------------------------------------------------------------------------


def test_customers_unknown_tariff_and_closed_before_opened(tmp_path: Path) -> None:
    f = _csv(
        tmp_path, "c.csv",
        "customer_id,tariff,opened_on,closed_on\n"
        "1,cn-shanghai-res-tier,2020-01-01,\n"
        "2,cn-nowhere-res,2020-01-01,\n"
        "3,cn-shanghai-res-tier,2024-05-01,2024-04-30\n"
        "4,cn-shanghai-res-tier,2024-05-01,2024-05-01\n",
    )
    from wattbill.tariffs import load_catalog

    rep = _q(f, "customers", known_tariffs=load_catalog().codes())
    assert rep.loaded == 2
    assert rep.quarantine_by_code == {"unknown_tariff": 1, "closed_before_opened": 1}
    # without the catalogue (a library call that does not give it), only the dates are checked
    assert _q(f, "customers").quarantine_by_code == {"closed_before_opened": 1}


# --- physical limits of reads --------------------------------------------------------------------


def test_default_limit_and_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert max_daily_wh() == DEFAULT_MAX_DAILY_WH == 316_800  # 60 A x 220 V x 24 h
    monkeypatch.setenv("WATTBILL_MAX_DAILY_KWH", "950.4")
    reload_settings()  # settings are read once
    assert max_daily_wh() == 950_400
    for bad in ("lots", "0", "-3", "nan", "inf"):
        monkeypatch.setenv("WATTBILL_MAX_DAILY_KWH", bad)
        with pytest.raises(WattbillError, match=r"setting max_daily_kwh \(WATTBILL_MAX_DAILY_KWH\)"):
            reload_settings()  # settings are read once, and checked then (one line naming the setting)
    monkeypatch.delenv("WATTBILL_MAX_DAILY_KWH")
    reload_settings()


@pytest.mark.parametrize(
    ("value", "code"),
    [("316.8", None), ("316.9", "implausible_value"), ("77617814", "implausible_value"),
     ("1e308", "implausible_value"), ("NaN", "non_numeric"), ("inf", "non_numeric"), ("-inf", "non_numeric"),
     ("-1", "negative_value")],
)
def test_consumption_limits(tmp_path: Path, value: str, code: str | None) -> None:
    f = _csv(tmp_path, "c.csv", READS_HEAD + f"1,M1,2025-03-01,{value}\n1,M1,2025-03-02,5\n")
    rep = _q(f, "consumption")
    assert rep.quarantine_by_code == ({code: 1} if code else {})


def test_consumption_limit_counts_the_multiplier(tmp_path: Path) -> None:
    f = _csv(tmp_path, "c.csv", "customer_id,meter_id,read_date,kwh_total,multiplier\n1,M1,2025-03-01,200,2\n")
    assert _q(f, "consumption").quarantine_by_code == {"implausible_value": 1}


def _register_file(tmp_path: Path, totals: list[str]) -> Path:
    rows = [f"1,M1,{dt.date(2025, 3, 1) + dt.timedelta(days=i)},{t}" for i, t in enumerate(totals)]
    return _csv(tmp_path, "r.csv", "customer_id,meter_id,read_date,total\n" + "\n".join(rows) + "\n")


@pytest.mark.parametrize("bad", ["1e308", "NaN", "inf", "-inf", "1e12"])
def test_non_finite_and_huge_registers_quarantined(tmp_path: Path, bad: str) -> None:
    f = _register_file(tmp_path, ["100.0", "110.0", bad, "130.0", "140.0"])
    store = open_store(tmp_path / "store")
    rep = ingest_file(f, "registers", store, today=TODAY)
    assert rep.quarantined == 1 and rep.rows == rep.loaded + rep.quarantined
    daily = store.load_daily(2025).sort("day")
    # the bad read's days are estimated from its neighbours: the register difference is kept exactly
    assert daily["wh_total"].sum() == 40_000
    assert daily["estimated"].sum() == 2


def test_register_written_in_wh_is_a_bad_read(tmp_path: Path) -> None:
    """The issue's read: one register read among the others written in Wh (x1000)."""
    f = _register_file(tmp_path, ["77605.9", "77611.5", "77617814", "77623.1", "77629.0"])
    store = open_store(tmp_path / "store")
    rep = ingest_file(f, "registers", store, today=TODAY)
    # a bad read either way: above both neighbours, which are in line (``out_of_line_read``, VEE's general
    # rule, checked first), and beyond what the connection can draw (``implausible_consumption``)
    assert rep.quarantined == 1
    assert set(rep.quarantine_by_code) <= {"implausible_consumption", "out_of_line_read"}
    daily = store.load_daily(2025)
    assert daily["wh_total"].sum() == 23_100 and daily["wh_total"].max() < max_daily_wh()
    q = store.load_quarantine()
    assert q["raw"].to_list() == ["1,M1,2025-03-03,77617814"]


def test_register_jump_that_stays_is_not_billed(tmp_path: Path) -> None:
    """A last read (or a jump the next reads confirm) beyond the limit: the interval is not billed,
    a finding says why; the reads after it count from it."""
    f = _register_file(tmp_path, ["100.0", "110.0", "90000.0", "90010.0", "90020.0"])
    store = open_store(tmp_path / "store")
    rep = ingest_file(f, "registers", store, today=TODAY)
    assert rep.quarantined == 0
    assert rep.findings_by_code.get("implausible_consumption") == 1
    daily = store.load_daily(2025)
    assert daily["wh_total"].to_list() == [10_000, 10_000, 10_000]
    ev = store.load_findings().filter(pl.col("code") == "implausible_consumption")
    assert ev["day"].to_list() == [dt.date(2025, 3, 3)]


def test_register_gap_limit_is_per_day(tmp_path: Path) -> None:
    """Across a gap of g days the limit is g times the daily limit (estimated days, not a bad read)."""
    rows = "1,M1,2025-03-01,100\n1,M1,2025-03-11,2500\n"
    f = _csv(tmp_path, "r.csv", "customer_id,meter_id,read_date,total\n" + rows)
    store = open_store(tmp_path / "store")
    rep = ingest_file(f, "registers", store, today=TODAY)
    assert rep.quarantined == 0 and "implausible_consumption" not in rep.findings_by_code
    assert store.load_daily(2025)["wh_total"].sum() == 2_400_000


def test_extra_fields_never_cut_to_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row with more fields than the header (``1,234.5`` unquoted): quarantined, the row kept whole,
    whether the file is read at once or streamed in customer buckets (a large file: it used to be refused
    whole, a new user's report). Never stored as 1 kWh."""
    text = READS_HEAD + "1,M1,2025-03-01,3\n1,M1,2025-03-02,1,234.5\n1,M1,2025-03-03,4\n"
    f = _csv(tmp_path, "r.csv", text)
    assert _q(f, "consumption").quarantine_by_code == {"extra_fields": 1}
    store = open_store(tmp_path / "store")
    ingest_file(f, "consumption", store, today=TODAY)
    q = store.load_quarantine()
    assert q.select("row", "code", "raw").rows() == [(2, "extra_fields", "1,M1,2025-03-02,1,234.5")]  # kept whole
    store.close()
    monkeypatch.setenv("WATTBILL_INGEST_BUCKET_MB", "0.00005")  # stream it in customer buckets
    reload_settings()  # settings are read once
    streamed = open_store(tmp_path / "streamed")
    rep = ingest_file(f, "consumption", streamed, today=TODAY)
    assert rep.quarantine_by_code == {"extra_fields": 1} and (rep.rows, rep.loaded) == (3, 2)
    assert streamed.load_quarantine().select("row", "code", "raw").rows() == [
        (2, "extra_fields", "1,M1,2025-03-02,1,234.5")]
    assert sorted(streamed.load_daily(2025)["wh_total"].to_list()) == [3000, 4000]
    streamed.close()


def test_full_width_digits_in_an_amount_are_quarantined_not_a_crash(tmp_path: Path) -> None:
    """Full-width digits (１２.５, common in Chinese exports): the row is quarantined with its reason and the
    other rows of the file load (found by a new user's try: the whole file used to stop)."""
    f = _csv(tmp_path, "p.csv", "customer_id,bill_month,issued_on,paid_on,amount,channel\n"
             "1,2025-01,2025-02-01,2025-02-03,１２.５,app\n2,2025-01,2025-02-01,2025-02-03,12.50,app\n")
    store = open_store(tmp_path / "store")
    rep = ingest_file(f, "payments", store, today=TODAY)
    assert (rep.rows, rep.loaded, rep.quarantined) == (2, 1, 1)
    assert store.load_payments()["amount_fen"].to_list() == [1250]
