"""Issue #12 (field data), items 1, 2, 3, 5 and 6: each example with its right value, end to end
through the command line, on the embedded store and on TimescaleDB, and every path that computes kWh
or money (bill run, recalc, ``estimate``, the tariff what-if, diagnostics, the PDF) agreeing.

The right values are worked by hand from the tariff files (prices in ``tariffs/catalog``), as the
issue states them; the siblings of each kind follow each example.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from wattbill.cli import main
from wattbill.statements import latest_statement
from wattbill.store import open_store
from wattbill.tariffs import load_catalog

D = dt.date


@pytest.fixture(params=["embedded", pytest.param("timescale", marks=pytest.mark.db)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return str(tmp_path / "store")
    return str(request.getfixturevalue("pg_store_url"))


def wb(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``wattbill ARGS`` in process (the Typer app and ``main``'s error handling); its stdout."""
    rc = main(list(args))
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


def wb_fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    rc = main(list(args))
    out = capsys.readouterr()
    assert rc == 1, out.out
    return out.err


def write(path: Path, header: str, rows: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
    return path


def customers(tmp: Path, *rows: tuple[str, str]) -> Path:
    return write(tmp / "customers.csv", "customer_id,tariff,household_size,region",
                 [f"{cid},{tariff},3,r1" for cid, tariff in rows])


@dataclass
class Paths:
    """What every path says about one customer and year."""

    bill: dict
    months: pl.DataFrame
    estimate_kwh: str
    estimate_yuan: str
    whatif_fen: int
    features: dict


def all_paths(capsys: pytest.CaptureFixture[str], url: str, out: Path, year: int, cid: str,
              through: str | None = None, pdf: bool = False) -> Paths:
    """Bill run (bills.parquet, bill_months.parquet), ``estimate``, the tariff what-if and the
    features of the diagnosis, for ``cid``."""
    from wattbill import insight
    from wattbill.diagnostics import densify

    args = ["bill", "run", "--year", str(year), "--out", str(out), "--store", url]
    wb(capsys, *args, *([] if pdf else ["--no-pdf"]))
    bills = pl.read_parquet(out / "bills.parquet").filter(pl.col("customer_id") == cid)
    months = pl.read_parquet(out / "bill_months.parquet").filter(pl.col("customer_id") == cid).sort("month")
    est = wb(capsys, "estimate", "--customer", cid, "--through", through or f"{year}-12-31", "--store", url)
    m = re.search(r": ([\d,.]+) kWh, ([\d,.]+) yuan", est)
    assert m, est
    store = open_store(url)
    try:
        cust = store.load_customers([cid])
        daily = store.load_daily(year, [cid])
        dense = densify(daily, cust, year, with_regs=True)
        catalog = load_catalog()
        from wattbill.diagnostics import tariff_what_if

        wi, _alts = tariff_what_if(catalog, daily, cust, year, dense=dense)
        feats = insight.diagnose_chunk(cust, daily, store.load_daily(year - 1, [cid]), dense,
                                       store.load_payments(customer_ids=[cid]), catalog, year)
    finally:
        store.close()
    return Paths(bills.row(0, named=True), months, m.group(1), m.group(2),
                 int(wi.filter(pl.col("customer_id") == cid)["year_fen"][0]), feats.row(0, named=True))


def kwh(text: str) -> float:
    return float(text.replace(",", ""))


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


# --- 1. meters with only some period registers ----------------------------------------------------

ZJ_ROWS = [("2026-01-01", "3.60", "2.10", "1.50"), ("2026-01-02", "3.73", "2.25", "1.48"),
           ("2026-01-03", "3.60", "2.05", "1.55"), ("2026-01-04", "3.68", "2.16", "1.52"),
           ("2026-01-05", "3.68", "2.20", "1.48")]


def _two_period_consumption(tmp: Path, blank_columns: bool) -> Path:
    if blank_columns:  # 尖/平 columns present and empty on every row
        return write(tmp / "reads.csv", "户号,表号,日期,用电量(kWh),尖电量,峰电量,平电量,谷电量",
                     [f"3300000001,ZJ-M-0001,{d},{t},,{p},,{v}" for d, t, p, v in ZJ_ROWS])
    return write(tmp / "reads.csv", "户号,表号,日期,用电量(kWh),峰电量,谷电量",
                 [f"3300000001,ZJ-M-0001,{d},{t},{p},{v}" for d, t, p, v in ZJ_ROWS])


def _two_period_registers(tmp: Path) -> Path:
    """The same days as cumulative registers (正向有功总, 峰, 谷 only), read from 31 December."""
    total, peak, valley = 1000.00, 600.00, 400.00
    rows = [f"3300000001,ZJ-M-0001,2025-12-31,{total:.2f},{peak:.2f},{valley:.2f}"]
    for d, t, p, v in ZJ_ROWS:
        total, peak, valley = total + float(t), peak + float(p), valley + float(v)
        rows.append(f"3300000001,ZJ-M-0001,{d},{total:.2f},{peak:.2f},{valley:.2f}")
    return write(tmp / "reads.csv", "户号,表号,日期,正向有功总,峰,谷", rows)


@pytest.mark.parametrize("shape", ["absent columns", "blank columns", "registers"])
def test_two_period_meter_is_billed_at_its_periods_on_every_path(capsys, tmp_path, store_url, shape) -> None:
    """18.29 kWh, peak 10.76, valley 7.53: 10.76 x 0.568 + 7.53 x 0.288 = 8.28 yuan (not 10.39)."""
    cust = customers(tmp_path, ("3300000001", "cn-zhejiang-res-tou"))
    wb(capsys, "ingest", "customers", str(cust), "--store", store_url)
    if shape == "registers":
        reads, kind = _two_period_registers(tmp_path), "registers"
    else:
        reads, kind = _two_period_consumption(tmp_path, shape == "blank columns"), "consumption"
    out = wb(capsys, "ingest", "reads", str(reads), "--kind", kind, "--json", "--store", store_url)
    assert '"quarantined": 0' in out
    p = all_paths(capsys, store_url, tmp_path / "out", 2026, "3300000001", pdf=shape == "absent columns")
    assert p.bill["kwh_total"] == pytest.approx(18.29)
    assert (p.bill["kwh_peak"], p.bill["kwh_valley"]) == (pytest.approx(10.76), pytest.approx(7.53))
    assert (p.bill["kwh_sharp"], p.bill["kwh_flat"]) == (0, 0)
    assert p.bill["charge_fen"] == 828
    assert (kwh(p.estimate_kwh), p.estimate_yuan) == (18.29, "8.28")
    assert p.whatif_fen == 828
    assert p.features["wh_year"] == 18_290 and p.features["month_fen"][0] == 828
    assert p.features["share_peak"] == pytest.approx(10.76 / 18.29)
    assert p.features["share_valley"] == pytest.approx(7.53 / 18.29)
    if shape == "absent columns":
        text = pdf_text(latest_statement(tmp_path / "out", 2026, "3300000001"))
        assert "8.28 元" in text and "18.3 千瓦时" in text  # (the PDF shows kWh to 0.1)
        assert "高峰 59%" in text and "低谷 41%" in text  # 10.76 / 18.29 and 7.53 / 18.29


def test_two_period_meter_siblings(tmp_path) -> None:
    """A row blank in a period the meter has elsewhere is still quarantined; a meter with four
    registers beside a two-period one keeps all four; periods that do not add up to the total are
    scaled keeping their shares; a day with kWh and no period kWh on a meter without a flat
    register is priced at the tariff's unsplit period, never guessed into peak or valley."""
    from wattbill.ingest import ingest_file

    reads = write(tmp_path / "r.csv", "户号,表号,日期,用电量,尖电量,峰电量,平电量,谷电量", [
        "A,MA,2026-01-01,3.00,,2.00,,1.00",
        "A,MA,2026-01-02,3.00,,,,3.00",        # peak blank on a meter that has peak: quarantined
        "A,MA,2026-01-03,4.00,,1.00,,1.00",    # periods 2.00 of 4.00: scaled to 2.00 / 2.00
        "A,MA,2026-01-04,5.00,,0.00,,0.00",    # no period kWh at all: no share known that day
        "B,MB,2026-01-01,4.00,0.50,1.50,1.00,1.00",
    ])
    store = open_store(str(tmp_path / "store"))
    try:
        rep = ingest_file(reads, "consumption", store, today=D(2026, 6, 1))
        assert (rep.rows, rep.loaded, rep.quarantined) == (5, 4, 1)
        q = store.load_quarantine()
        assert q["row"].to_list() == [2] and q["column"].to_list() == ["kwh_peak"]
        daily = store.load_daily(2026).sort("customer_id", "day")
    finally:
        store.close()
    a = daily.filter(pl.col("customer_id") == "A")
    assert a["wh_sharp"].null_count() == 3 and a["wh_flat"].null_count() == 3
    assert a["wh_peak"].to_list() == [2_000, 2_000, None] and a["wh_valley"].to_list() == [1_000, 2_000, None]
    b = daily.filter(pl.col("customer_id") == "B").row(0, named=True)
    assert (b["wh_sharp"], b["wh_peak"], b["wh_flat"], b["wh_valley"]) == (500, 1_500, 1_000, 1_000)


# --- 2. a glitch read is not a rollover -----------------------------------------------------------

def _glitch_reads(values: list[tuple[str, str]], extra: str = "") -> list[str]:
    return [f"3100000001,SH-M-1,{d},{v}{extra}" for d, v in values]


def _shanghai_days(bad: dict[str, str]) -> list[tuple[str, str]]:
    """12 kWh a day from 9,400.00 on 31 May to 9,520.00 on 10 June, with ``bad`` reads."""
    days = [D(2026, 5, 31) + dt.timedelta(days=i) for i in range(11)]
    return [(d.isoformat(), bad.get(d.isoformat(), f"{9400 + 12 * i:.2f}")) for i, d in enumerate(days)]


def test_glitch_read_is_not_a_rollover_on_every_path(capsys, tmp_path, store_url) -> None:
    """0.00 on 5 June between 9,448.00 and 9,472.00: 120 kWh, 120 x 0.617 = 74.04 yuan, two
    estimated days (not 10,120 kWh and 7,924.04 yuan)."""
    cust = customers(tmp_path, ("3100000001", "cn-shanghai-res-tier"))
    reads = write(tmp_path / "reads.csv", "户号,表号,日期,正向有功总",
                  _glitch_reads(_shanghai_days({"2026-06-05": "0.00"})))
    wb(capsys, "ingest", "customers", str(cust), "--store", store_url)
    out = wb(capsys, "ingest", "reads", str(reads), "--json", "--store", store_url)
    assert '"quarantined": 1' in out
    p = all_paths(capsys, store_url, tmp_path / "out", 2026, "3100000001", pdf=not store_url.startswith("postgres"))
    assert p.bill["kwh_total"] == pytest.approx(120.0) and p.bill["charge_fen"] == 7404
    assert p.bill["estimated_days"] == 2
    assert (kwh(p.estimate_kwh), p.estimate_yuan) == (120.0, "74.04")
    assert p.whatif_fen == 7404
    assert p.features["wh_year"] == 120_000 and p.features["estimated_days"] == 2
    if not store_url.startswith("postgres"):
        text = pdf_text(latest_statement(tmp_path / "out", 2026, "3100000001"))
        assert "74.04 元" in text and "120.0 千瓦时" in text and "10,120" not in text and "7,924" not in text


@pytest.mark.parametrize(
    ("case", "bad", "extra", "kwh", "estimated"),
    [
        ("two bad reads in a row", {"2026-06-05": "0.00", "2026-06-06": "0.00"}, "", 120_000, 3),
        ("a glitch with digits = 4 given", {"2026-06-05": "0.00"}, ",4", 120_000, 2),
        ("a bad high read", {"2026-06-05": "99999.00"}, "", 120_000, 2),
        ("a glitch at the last read", {"2026-06-10": "0.00"}, "", 108_000, 0),
        ("a glitch at the first read after 31 May", {"2026-06-01": "0.00"}, "", 120_000, 2),
    ],
)
def test_glitch_siblings(tmp_path, case, bad, extra, kwh, estimated) -> None:
    from wattbill.ingest import ingest_file

    header = "户号,表号,日期,正向有功总" + (",位数" if extra else "")
    reads = write(tmp_path / "reads.csv", header, _glitch_reads(_shanghai_days(bad), extra))
    store = open_store(str(tmp_path / "store"))
    try:
        ingest_file(reads, "registers", store, today=D(2026, 11, 1))
        daily = store.load_daily(2026)
    finally:
        store.close()
    assert daily["wh_total"].sum() == kwh, case
    assert int(daily["estimated"].sum()) == estimated, case
    assert daily["wh_total"].max() <= 36_000, case


def test_glitch_on_a_period_register_only(tmp_path) -> None:
    """The total is fine, the valley register reads 0.00 for a day and comes back."""
    from wattbill.ingest import ingest_file

    rows = []
    for i in range(6):
        d = D(2026, 6, 1) + dt.timedelta(days=i)
        valley = "0.00" if i == 3 else f"{400 + 4 * i:.2f}"
        rows.append(f"C,M,{d},{1000 + 10 * i:.2f},{600 + 6 * i:.2f},{valley}")
    reads = write(tmp_path / "reads.csv", "户号,表号,日期,正向有功总,峰,谷", rows)
    store = open_store(str(tmp_path / "store"))
    try:
        rep = ingest_file(reads, "registers", store, today=D(2026, 11, 1))
        daily = store.load_daily(2026).sort("day")
        q = store.load_quarantine()
    finally:
        store.close()
    assert rep.quarantined == 1 and q["column"].to_list() == ["valley"]
    assert daily["wh_total"].to_list() == [10_000] * 5
    assert daily["wh_valley"].to_list() == [4_000] * 5 and daily["wh_peak"].to_list() == [6_000] * 5
    assert daily["estimated"].to_list() == [False, False, True, True, False]


def test_real_rollover_is_billed_across_the_wrap_and_a_glitch_in_a_later_file(tmp_path) -> None:
    """99,998.00 then 10.00, 22.00, ...: 12 kWh a day across the wrap. A later file whose first read is
    a bad 0.00 is checked against the stored last read of the meter."""
    from wattbill.ingest import ingest_file

    first = write(tmp_path / "a.csv", "户号,表号,日期,正向有功总", [
        "R,M,2026-03-01,99986.00", "R,M,2026-03-02,99998.00", "R,M,2026-03-03,10.00",
        "R,M,2026-03-04,22.00", "R,M,2026-03-05,34.00"])
    later = write(tmp_path / "b.csv", "户号,表号,日期,正向有功总", [
        "R,M,2026-03-06,0.00", "R,M,2026-03-07,58.00", "R,M,2026-03-08,70.00"])
    store = open_store(str(tmp_path / "store"))
    try:
        ingest_file(first, "registers", store, today=D(2026, 11, 1))
        rep = ingest_file(later, "registers", store, today=D(2026, 11, 1))
        daily = store.load_daily(2026).sort("day")
    finally:
        store.close()
    assert rep.quarantined == 1
    assert daily["wh_total"].to_list() == [12_000] * 7
    assert daily["estimated"].to_list() == [False] * 4 + [True, True, False]


# --- 3. a new meter's first read is where it starts -------------------------------------------------

def _exchange_reads(new_first: float, old_last_day: D, new_first_day: D) -> list[str]:
    """10 kWh a day all of 2025; the old meter read from 3,000.00 on 31 December 2024."""
    rows = []
    d, v = D(2024, 12, 31), 3000.0
    while d <= old_last_day:
        rows.append(f"3200000001,JS-OLD,{d},{v:.2f}")
        d, v = d + dt.timedelta(days=1), v + 10
    d, v = new_first_day, new_first
    while d <= D(2025, 12, 31):
        rows.append(f"3200000001,JS-NEW,{d},{v:.2f}")
        d, v = d + dt.timedelta(days=1), v + 10
    return rows


def test_new_meter_first_read_is_where_it_starts_on_every_path(capsys, tmp_path, store_url) -> None:
    """Exchange on 15 March: old meter's last read 3,740.00, new meter's first read the same day
    150.00, then 160.00, ...: 900 kWh and 475.46 yuan for January to March (Jiangsu 0.5283 yuan/kWh:
    163.77 + 147.92 + 163.77), not 150 kWh more."""
    cust = customers(tmp_path, ("3200000001", "cn-jiangsu-res-tier"))
    reads = write(tmp_path / "reads.csv", "户号,表号,日期,正向有功总",
                  _exchange_reads(150.0, D(2025, 3, 15), D(2025, 3, 15)))
    assert "3200000001,JS-OLD,2025-03-15,3740.00" in reads.read_text()
    wb(capsys, "ingest", "customers", str(cust), "--store", store_url)
    wb(capsys, "ingest", "reads", str(reads), "--store", store_url)
    p = all_paths(capsys, store_url, tmp_path / "out", 2025, "3200000001", through="2025-03-31")
    q1 = p.months.filter(pl.col("month") <= 3)
    assert q1["kwh_total"].sum() == pytest.approx(900.0) and q1["charge_fen"].sum() == 47546
    assert (kwh(p.estimate_kwh), p.estimate_yuan) == (900.0, "475.46")
    assert p.bill["kwh_total"] == pytest.approx(3650.0) and p.bill["estimated_days"] == 0
    assert p.whatif_fen == p.bill["charge_fen"]
    assert p.features["wh_year"] == 3_650_000
    assert p.features["month_wh"][2] == 310_000


@pytest.mark.parametrize(
    ("case", "new_first", "new_day", "estimated"),
    [
        ("the new meter starts at 0 the same day", 0.0, D(2025, 3, 15), 0),
        ("no same-day read of the old meter: the day after is estimated", 150.0, D(2025, 3, 16), 1),
        ("three days without a meter read: estimated", 150.0, D(2025, 3, 18), 3),
        ("a new meter starting at 12,345 kWh the same day", 12345.0, D(2025, 3, 15), 0),
    ],
)
@pytest.mark.parametrize("files", ["one file", "the old meter's reads, then the new meter's",
                                   "the new meter's reads, then the old meter's"])
def test_exchange_siblings(tmp_path, case, new_first, new_day, estimated, files) -> None:
    """The same exchange whether both meters come in one file or the new meter's reads in a later one
    (the old meter's last read then stored): the days no meter saw are estimated either way."""
    from wattbill.ingest import ingest_file

    rows = _exchange_reads(new_first, D(2025, 3, 15), new_day)
    old, new = [r for r in rows if "JS-OLD" in r], [r for r in rows if "JS-NEW" in r]
    parts = [rows] if files == "one file" else [old, new] if files.startswith("the old") else [new, old]
    store = open_store(str(tmp_path / "store"))
    try:
        for i, part in enumerate(parts):
            ingest_file(write(tmp_path / f"reads{i}.csv", "户号,表号,日期,正向有功总", part), "registers", store,
                        today=D(2026, 6, 1))
        daily = store.load_daily(2025)
        findings = store.load_findings()
    finally:
        store.close()
    per_day = daily.group_by("day").agg(pl.col("wh_total").sum())
    assert per_day.height == 365, case
    assert daily["wh_total"].sum() == 3_650_000, case  # every day 10 kWh, seen or estimated
    assert int(daily["estimated"].sum()) == estimated, case
    if estimated:
        f = findings.filter(pl.col("code") == "exchange_estimated")
        assert f.height == 1 and f"\"days\":{estimated}" in f["evidence"][0].replace(" ", ""), case


@pytest.mark.parametrize(
    ("new_first", "new_day"),
    [(0.0, D(2025, 3, 15)), (150.0, D(2025, 3, 16)), (150.0, D(2025, 3, 18)), (12345.0, D(2025, 3, 15))],
)
@pytest.mark.parametrize("files", ["one file", "the old meter's reads, then the new meter's",
                                   "the new meter's reads, then the old meter's"])
@pytest.mark.parametrize("copy", ["gbk", "crlf"])
def test_an_exchange_sent_again_with_other_bytes_changes_nothing(tmp_path, store_url, new_first, new_day, files,
                                                                  copy) -> None:
    """Every file of an exchange sent again as another export (GBK from Excel, CRLF line ends), and both
    meters' reads in one file after two: its reads are duplicates, nothing is estimated again and no
    finding is added (a GBK copy once added a second ``exchange_estimated`` finding saying the days were
    not estimated, beside the first load's; the one file after two, a second ``meter_exchange`` told
    from the other meter's side). Both stores."""
    from wattbill.ingest import ingest_file

    rows = _exchange_reads(new_first, D(2025, 3, 15), new_day)
    old, new = [r for r in rows if "JS-OLD" in r], [r for r in rows if "JS-NEW" in r]
    parts = [rows] if files == "one file" else [old, new] if files.startswith("the old") else [new, old]
    header = "户号,表号,日期,正向有功总"
    store = open_store(store_url)
    try:
        for i, part in enumerate(parts):
            ingest_file(write(tmp_path / f"reads{i}.csv", header, part), "registers", store, today=D(2026, 6, 1))
        daily, findings = store.load_daily(2025), store.load_findings()
        # each file again; then both meters' reads in one file (the exchange found inside it, not across loads)
        for i, part in enumerate([*parts, rows] if len(parts) > 1 else parts):
            text = header + "\n" + "\n".join(part) + "\n"
            again = tmp_path / f"again{i}.csv"
            again.write_bytes(text.encode("gbk") if copy == "gbk" else text.replace("\n", "\r\n").encode())
            rep = ingest_file(again, "registers", store, today=D(2026, 6, 1))
            assert (rep.loaded, rep.estimated, rep.quarantined, rep.findings) == (0, 0, 0, 0), rep
            assert rep.duplicates == rep.rows == len(part)
        assert store.load_daily(2025).sort("customer_id", "meter_id", "day").equals(
            daily.sort("customer_id", "meter_id", "day"))
        cols = ["customer_id", "meter_id", "day", "code", "description", "evidence"]
        assert store.load_findings().select(cols).sort(cols).equals(findings.select(cols).sort(cols))
    finally:
        store.close()


# --- 5. late reads replace estimates completely ----------------------------------------------------

def _year_reads(cid: str, skip: tuple[D, D] | None = None, only: tuple[D, D] | None = None) -> list[str]:
    """One read a day from 31 December 2024 to 31 December 2025: 2.00 kWh a day except 27 January
    (0.50), 5 February (3.50) and 1 March (1.00): 729 kWh in the year."""
    special = {D(2025, 1, 27): 0.5, D(2025, 2, 5): 3.5, D(2025, 3, 1): 1.0}
    rows, d, v = [], D(2024, 12, 31), 5000.0
    while d <= D(2025, 12, 31):
        inside_skip = skip is not None and skip[0] <= d <= skip[1]
        inside_only = only is None or only[0] <= d <= only[1]
        if not inside_skip and inside_only:
            rows.append(f"{cid},M-{cid},{d},{v:.2f}")
        d = d + dt.timedelta(days=1)
        v += special.get(d, 2.0)
    return rows


GAP = (D(2025, 1, 27), D(2025, 2, 4))


def test_late_reads_replace_estimates_and_recalc_keeps_other_households(capsys, tmp_path, store_url) -> None:
    """27 January - 4 February missing, estimated; the nine real reads arrive later: after ``bill
    recalc`` the year is 729 kWh (the register difference) with 0 estimated days; ``--out`` into the
    year's own folder keeps the other household's row."""
    cust = customers(tmp_path, ("0001", "cn-jiangsu-res-tier"), ("0002", "cn-jiangsu-res-tier"))
    first = write(tmp_path / "year.csv", "户号,表号,日期,正向有功总",
                  _year_reads("0001", skip=GAP) + _year_reads("0002"))
    late = write(tmp_path / "late.csv", "户号,表号,日期,正向有功总", _year_reads("0001", only=GAP))
    assert len(late.read_text().splitlines()) == 10
    out = tmp_path / "out"
    wb(capsys, "ingest", "customers", str(cust), "--store", store_url)
    wb(capsys, "ingest", "reads", str(first), "--store", store_url)
    before = all_paths(capsys, store_url, out, 2025, "0001")
    assert before.bill["estimated_days"] == 10 and before.bill["kwh_total"] == pytest.approx(729.0)
    wb(capsys, "ingest", "reads", str(late), "--store", store_url)
    text = wb(capsys, "bill", "recalc", "--year", "2025", "--customer", "0001", "--reason", "late reads",
              "--out", str(out), "--no-pdf", "--store", store_url)
    assert "0001: version 1 -> 2" in text
    bills = pl.read_parquet(out / "bills.parquet").sort("customer_id")
    assert bills["customer_id"].to_list() == ["0001", "0002"]  # the other household stays
    assert bills["version"].to_list() == [2, 1]
    assert bills["kwh_total"].to_list() == [pytest.approx(729.0), pytest.approx(729.0)]
    assert bills["estimated_days"].to_list() == [0, 0]
    months = pl.read_parquet(out / "bill_months.parquet")
    assert sorted(set(months["customer_id"])) == ["0001", "0002"] and months.height == 24
    jan = months.filter(pl.col("customer_id") == "0001", pl.col("month") == 1)
    assert jan["kwh_total"][0] == pytest.approx(60.5)  # 30 x 2.00 + 0.50 on 27 January
    store = open_store(store_url)
    try:
        daily = store.load_daily(2025, ["0001"])
    finally:
        store.close()
    assert not daily["estimated"].any()
    got = dict(zip(daily["day"].to_list(), daily["wh_total"].to_list(), strict=True))
    assert got[D(2025, 1, 27)] == 500 and got[D(2025, 2, 5)] == 3_500
    after = all_paths(capsys, store_url, out, 2025, "0001")
    assert after.features["estimated_days"] == 0 and after.features["wh_year"] == 729_000
    assert after.whatif_fen == after.bill["charge_fen"] == bills["charge_fen"][0]


@pytest.mark.parametrize(
    ("case", "late", "estimated"),
    [
        ("only part of the gap arrives", (D(2025, 1, 30), D(2025, 2, 1)), 8),
        ("a late file overlapping real reads on both sides", (D(2025, 1, 20), D(2025, 2, 10)), 0),
        ("the first days of the gap only", (D(2025, 1, 27), D(2025, 1, 29)), 7),
    ],
)
def test_late_read_siblings(tmp_path, case, late, estimated) -> None:
    from wattbill.ingest import ingest_file

    first = write(tmp_path / "year.csv", "户号,表号,日期,正向有功总", _year_reads("0001", skip=GAP))
    late_f = write(tmp_path / "late.csv", "户号,表号,日期,正向有功总", _year_reads("0001", only=late))
    store = open_store(str(tmp_path / "store"))
    try:
        ingest_file(first, "registers", store, today=D(2026, 6, 1))
        ingest_file(late_f, "registers", store, today=D(2026, 6, 1))
        daily = store.load_daily(2025, ["0001"])
    finally:
        store.close()
    assert daily.height == 365, case
    assert daily["wh_total"].sum() == 729_000, case  # the register difference, whatever arrives
    assert int(daily["estimated"].sum()) == estimated, case


# --- 6. Chinese Excel exports ----------------------------------------------------------------------

def _gbk_customers(tmp: Path, n: int, address_row: int, encoding: str = "gb18030",
                   address: str = "浙江省杭州市西湖区文三路 1 号") -> Path:
    rows = [f"{i:04d},cn-zhejiang-res-tier,2,r1,," for i in range(1, n + 1)]
    rows[address_row - 1] = f"{address_row:04d},cn-zhejiang-res-tier,2,r1,张三,{address}"
    return write(tmp / "customers.csv", "customer_id,tariff,household_size,region,name,address", rows,
                 encoding=encoding)


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig", "utf-8"])
def test_excel_export_with_chinese_far_down_loads_decoded(capsys, tmp_path, store_url, encoding) -> None:
    cust = _gbk_customers(tmp_path, 3000, 2900, encoding)
    reads = write(tmp_path / "reads.csv", "户号,表号,日期,用电量(kWh)",
                  ["2900,M1,2025/1/1,3.00", "2900,M1,2025/1/2,4.00"], encoding="gbk" if "gb" in encoding else "utf-8")
    wb(capsys, "ingest", "customers", str(cust), "--store", store_url)
    out = wb(capsys, "ingest", "reads", str(reads), "--kind", "consumption", "--json", "--store", store_url)
    assert '"loaded": 2' in out
    store = open_store(store_url)
    try:
        c = store.load_customers(["2900"]).row(0, named=True)
        daily = store.load_daily(2025, ["2900"])
        assert store.load_customers().height == 3000
    finally:
        store.close()
    assert c["name"] == "张三" and c["address"] == "浙江省杭州市西湖区文三路 1 号"
    assert daily["day"].to_list() == [D(2025, 1, 1), D(2025, 1, 2)]


def test_gb18030_only_character_and_a_file_in_no_encoding(capsys, tmp_path) -> None:
    store = str(tmp_path / "store")
    # 𠀀 (U+20000) exists in GB18030 (four bytes), not in GBK
    cust = _gbk_customers(tmp_path, 10, 7, "gb18030", address="𠀀村 3 号")
    wb(capsys, "ingest", "customers", str(cust), "--store", store)
    s = open_store(store)
    try:
        assert s.load_customers(["0007"])["address"][0] == "𠀀村 3 号"
    finally:
        s.close()
    bad = tmp_path / "bad.csv"
    lines = [b"customer_id,tariff", *[f"{i:04d},cn-zhejiang-res-tier".encode() for i in range(1, 41)]]
    lines[33] = b"0033,cn-zhejiang-res-tier\xff\xfe\x80"  # valid in no supported encoding
    bad.write_bytes(b"\n".join(lines) + b"\n")
    err = wb_fails(capsys, "ingest", "customers", str(bad), "--store", store)
    assert len(err.strip().splitlines()) == 1 and "row 33" in err and str(bad) in err
    assert "Traceback" not in err


def test_two_period_register_meter_continues_across_files(tmp_path) -> None:
    """The stored last read of a two-period meter (sharp and flat null) anchors its next file."""
    from wattbill.ingest import ingest_file

    reads = _two_period_registers(tmp_path).read_text().splitlines()
    a = write(tmp_path / "a.csv", reads[0], reads[1:4])  # 31 December - 2 January
    b = write(tmp_path / "b.csv", reads[0], reads[4:])  # 3 - 5 January
    store = open_store(str(tmp_path / "store"))
    try:
        ingest_file(a, "registers", store, today=D(2026, 6, 1))
        ingest_file(b, "registers", store, today=D(2026, 6, 1))
        daily = store.load_daily(2026).sort("day")
    finally:
        store.close()
    assert daily["wh_total"].to_list() == [3_600, 3_730, 3_600, 3_680, 3_680]
    assert daily["wh_peak"].sum() == 10_760 and daily["wh_valley"].sum() == 7_530
    assert not daily["estimated"].any()


# --- 5b. an older read sent again with a newer one: measured days are never re-estimated ------------

#: the first file: 31 December 2024 .. 10 January 2025, uneven days (so an even spread shows)
_JAN = {D(2024, 12, 31): 1000.0}
for _i, _kwh in enumerate([8.0, 12.0, 9.0, 15.0, 7.0, 11.0, 10.0, 13.0, 6.0, 9.0], start=1):
    _JAN[D(2025, 1, _i)] = _JAN[D(2025, 1, _i) - dt.timedelta(days=1)] + _kwh


def _reads(pairs: list[tuple[D, float]], cid: str = "0001") -> list[str]:
    return [f"{cid},M-{cid},{d},{v:.2f}" for d, v in pairs]


def _jan_wh(changed: dict[D, int]) -> dict[D, int]:
    """The first file's days [Wh], with the days a later file ``changed``."""
    want = {d: round((_JAN[d] - _JAN[d - dt.timedelta(days=1)]) * 1000) for d in _JAN if d.year == 2025}
    return {**want, **changed}


def _days_wh(daily: pl.DataFrame) -> dict[D, int]:
    return dict(zip(daily["day"].to_list(), daily["wh_total"].to_list(), strict=True))


@pytest.mark.parametrize(
    ("case", "late", "expect", "estimated", "dups", "codes"),
    [
        # the user's repro: 3 January sent again (same value) with 12 January (+50 kWh after the 10th)
        ("older read re-sent + a newer read", [(D(2025, 1, 3), _JAN[D(2025, 1, 3)]), (D(2025, 1, 12), _JAN[D(2025, 1, 10)] + 50)],
         {D(2025, 1, 11): 25_000, D(2025, 1, 12): 25_000}, 2, 1, set()),
        ("the stored last read re-sent too", [(D(2025, 1, 3), _JAN[D(2025, 1, 3)]), (D(2025, 1, 10), _JAN[D(2025, 1, 10)]),
                                               (D(2025, 1, 12), _JAN[D(2025, 1, 10)] + 50)],
         {D(2025, 1, 11): 25_000, D(2025, 1, 12): 25_000}, 2, 2, set()),
        ("the whole first file re-sent", sorted(_JAN.items())[1:], {}, 0, 10, set()),
        ("two older reads only", [(D(2025, 1, 2), _JAN[D(2025, 1, 2)]), (D(2025, 1, 6), _JAN[D(2025, 1, 6)])], {}, 0, 2,
         set()),
        ("an older read that disagrees", [(D(2025, 1, 3), _JAN[D(2025, 1, 3)] - 5), (D(2025, 1, 12), _JAN[D(2025, 1, 10)] + 50)],
         {D(2025, 1, 11): 25_000, D(2025, 1, 12): 25_000}, 2, 0, {"late_read_conflict"}),
        ("a corrected read with both neighbours", [(D(2025, 1, 3), _JAN[D(2025, 1, 3)]),
                                                    (D(2025, 1, 4), _JAN[D(2025, 1, 4)] - 2),
                                                    (D(2025, 1, 5), _JAN[D(2025, 1, 5)])],
         {D(2025, 1, 4): 13_000, D(2025, 1, 5): 9_000}, 0, 0, set()),
        ("a corrected read without its earlier neighbour", [(D(2025, 1, 4), _JAN[D(2025, 1, 4)] - 2),
                                                            (D(2025, 1, 5), _JAN[D(2025, 1, 5)])],
         {}, 0, 0, {"late_read_conflict"}),
    ],
)
def test_resent_older_read_keeps_measured_days(tmp_path, case, late, expect, estimated, dups, codes) -> None:
    """A file holding an older read sent again and a newer read: the measured days between stay
    measured, only the days after the stored last read are estimated (from it), and the re-sent read is a
    duplicate. Every other day keeps the first file's value."""
    from wattbill.ingest import ingest_file

    first = write(tmp_path / "a.csv", "户号,表号,日期,正向有功总", _reads(sorted(_JAN.items())))
    late_f = write(tmp_path / "b.csv", "户号,表号,日期,正向有功总", _reads(late))
    store = open_store(str(tmp_path / "store"))
    try:
        ingest_file(first, "registers", store, today=D(2026, 6, 1))
        rep = ingest_file(late_f, "registers", store, today=D(2026, 6, 1))
        daily = store.load_daily(2025, ["0001"])
        found = set(store.load_findings(["0001"])["code"].to_list())
    finally:
        store.close()
    assert _days_wh(daily) == _jan_wh(expect), case
    assert int(daily["estimated"].sum()) == estimated, case
    assert rep.duplicates == dups and rep.rows == rep.loaded + rep.quarantined + rep.duplicates, case
    assert codes <= found, case


_J10 = _JAN[D(2025, 1, 10)]


@pytest.mark.parametrize(
    ("case", "files", "expect", "quarantined"),
    [
        # the stored last read (10 January) corrected alone, then the next day's read: nothing to measure
        # the 10th from (the store keeps the day's kWh, not the read before it): held out, not moved into
        # the 11th
        ("corrected up, alone", [[(D(2025, 1, 10), _J10 + 5)], [(D(2025, 1, 11), _J10 + 12)]],
         {D(2025, 1, 11): 12_000}, 1),
        ("corrected down, alone", [[(D(2025, 1, 10), _J10 - 5)], [(D(2025, 1, 11), _J10 + 12)]],
         {D(2025, 1, 11): 12_000}, 1),
        ("corrected, with the next read in the same file", [[(D(2025, 1, 10), _J10 + 5), (D(2025, 1, 11), _J10 + 12)]],
         {D(2025, 1, 11): 12_000}, 1),
        # with the read before it: a pair over a measured day that disagrees and does not end on a read that
        # agrees with the store is a conflict (the stored day stands, finding), and the stored last read
        # stays the meter's last read
        ("corrected with the read before it", [[(D(2025, 1, 9), _JAN[D(2025, 1, 9)]), (D(2025, 1, 10), _J10 + 5)],
                                               [(D(2025, 1, 11), _J10 + 12)]],
         {D(2025, 1, 11): 12_000}, 0),
        # inside a run whose ends agree with the store, the correction is measured (9 + 2 and 6 - 2 kWh)
        ("corrected inside a run", [[(D(2025, 1, 8), _JAN[D(2025, 1, 8)]), (D(2025, 1, 9), _JAN[D(2025, 1, 9)] + 2),
                                     (D(2025, 1, 10), _J10)], [(D(2025, 1, 11), _J10 + 12)]],
         {D(2025, 1, 9): 8_000, D(2025, 1, 10): 7_000, D(2025, 1, 11): 12_000}, 0),
        # the quarantine's advice followed: the 10th sent again with the 9th and the 11th once the 11th is in
        ("corrected as advised", [[(D(2025, 1, 11), _J10 + 12)],
                                  [(D(2025, 1, 9), _JAN[D(2025, 1, 9)]), (D(2025, 1, 10), _J10 + 5),
                                   (D(2025, 1, 11), _J10 + 12)]],
         {D(2025, 1, 10): 14_000, D(2025, 1, 11): 7_000}, 0),
    ],
)
def test_correction_of_the_stored_last_read(tmp_path, case, files, expect, quarantined) -> None:
    """A corrected read of the meter's stored last read never moves kWh between days: the days' kWh add
    up to the register's movement from its first read to its last accepted read, whatever the order."""
    from wattbill.ingest import ingest_file

    store = open_store(str(tmp_path / "store"))
    try:
        ingest_file(write(tmp_path / "a.csv", "户号,表号,日期,正向有功总", _reads(sorted(_JAN.items()))), "registers",
                    store, today=D(2026, 6, 1))
        reps = [ingest_file(write(tmp_path / f"f{i}.csv", "户号,表号,日期,正向有功总", _reads(f)), "registers", store,
                            today=D(2026, 6, 1)) for i, f in enumerate(files)]
        daily = store.load_daily(2025, ["0001"])
        state = store.load_register_state(["0001"])
        q = store.load_quarantine()
        found = set(store.load_findings(["0001"])["code"].to_list())
    finally:
        store.close()
    assert _days_wh(daily) == _jan_wh(expect), case
    assert daily["wh_total"].sum() == state["wh_total"][0] - 1_000_000, case  # the register's movement [Wh]
    if case == "corrected with the read before it":
        assert "late_read_conflict" in found
    assert all(r.rows == r.loaded + r.quarantined + r.duplicates for r in reps), case
    assert q["code"].to_list() == ["correction_without_previous_read"] * quarantined, case
    if quarantined:
        assert "2025-01-10" in q["reason"][0] and "reads of the day before and the day after" in q["reason"][0]


def test_resent_older_read_bill_on_both_stores(capsys, tmp_path, store_url) -> None:
    """The repro on the bill: January stays at the measured days' charge plus the two estimated days."""
    cust = customers(tmp_path, ("0001", "cn-beijing-res-tier"))
    wb(capsys, "ingest", "customers", str(cust), "--store", store_url)
    wb(capsys, "ingest", "reads", str(write(tmp_path / "a.csv", "户号,表号,日期,正向有功总", _reads(sorted(_JAN.items())))),
       "--store", store_url)
    late = [(D(2025, 1, 3), _JAN[D(2025, 1, 3)]), (D(2025, 1, 12), _JAN[D(2025, 1, 10)] + 50)]
    text = wb(capsys, "ingest", "reads", str(write(tmp_path / "b.csv", "户号,表号,日期,正向有功总", _reads(late))),
              "--store", store_url)
    assert "duplicate" in text
    out = tmp_path / "out"
    p = all_paths(capsys, store_url, out, 2025, "0001", through="2025-01-31")
    # 100 kWh measured + 50 kWh estimated, Beijing tier 1 (0.4883 yuan/kWh): 73.25 yuan (hand-worked)
    assert p.bill["kwh_total"] == pytest.approx(150.0) and p.bill["estimated_days"] == 2
    assert p.bill["charge_fen"] == 7325


@pytest.mark.parametrize("last_of", ["a file of 16 reads", "a daily file (one read)"])
def test_read_in_wh_as_the_last_read_of_a_file_is_held_back(tmp_path, last_of) -> None:
    """12 kWh a day from 5,000.00; the read of 15 January written in Wh (5,180,000.00) is the last read of
    its file. It is held back (quarantined, implausible_consumption), and the next file continues from
    14 January: 15 and 16 January estimated, 372 kWh in January, nothing lost."""
    from wattbill.ingest import ingest_file

    reads = [(D(2024, 12, 31) + dt.timedelta(days=i), 5000.0 + 12 * i) for i in range(32)]
    rows = [f"3100000005,SH-5,{d},{'5180000.00' if d == D(2025, 1, 15) else f'{v:.2f}'}" for d, v in reads]
    cut = 16  # reads through 15 January
    first = rows[:cut] if last_of.startswith("a file of") else rows[:cut - 1]
    files = [first] + ([] if last_of.startswith("a file of") else [[rows[cut - 1]]]) + [rows[cut:]]
    store = open_store(str(tmp_path / "store"))
    try:
        reps = [ingest_file(write(tmp_path / f"r{i}.csv", "户号,表号,日期,正向有功总", part), "registers", store,
                            today=D(2026, 6, 1)) for i, part in enumerate(files)]
        daily = store.load_daily(2025)
        q = store.load_quarantine()
    finally:
        store.close()
    assert all(r.rows == r.loaded + r.quarantined + r.duplicates for r in reps)
    assert q["code"].to_list() == ["implausible_consumption"]
    assert daily.height == 31 and daily["wh_total"].sum() == 372_000, last_of
    est = daily.filter(pl.col("estimated"))["day"].to_list()
    assert est == [D(2025, 1, 15), D(2025, 1, 16)], last_of


def test_rows_sent_again_in_a_later_file_are_duplicates_on_both_stores(tmp_path, store_url) -> None:
    """Customers, payments and service contacts: a row identical to a stored one, in a later file, is a
    duplicate (not loaded again); a changed row is loaded (the store upserts it); the counts add up."""
    from wattbill.ingest import ingest_file

    files = {
        "customers": ("customer_id,tariff,household_size,region,opened_on,closed_on,name,language",
                      ["1,cn-jiangsu-res-tier,3,南京,2020-01-01,,甲,zh", "2,cn-jiangsu-res-tier,2,南京,2020-01-01,,乙,zh"],
                      ["1,cn-jiangsu-res-tier,3,南京,2020-01-01,,甲,zh", "2,cn-jiangsu-res-tier,4,南京,2020-01-01,,乙,zh",
                       "3,cn-jiangsu-res-tier,1,苏州,2021-05-01,,丙,zh"]),
        "payments": ("customer_id,bill_month,issued_on,paid_on,amount,channel",
                     ["1,2025-01,2025-02-01,2025-02-03,50.00,app", "2,2025-01,2025-02-01,,61.20,counter"],
                     ["1,2025-01,2025-02-01,2025-02-03,50.00,app", "2,2025-01,2025-02-01,2025-02-20,61.20,counter",
                      "1,2025-02,2025-03-01,2025-03-02,48.10,app"]),
        "interactions": ("customer_id,occurred_at,channel,intent,resolved,escalated_to,handle_seconds,satisfaction",
                         ["1,2025-03-01T09:00:00+08:00,app,bill_query,true,,60,5",
                          "2,2025-03-02T10:00:00,phone,outage,false,hall,300,3"],
                         ["1,2025-03-01T09:00:00+08:00,app,bill_query,true,,60,5",
                          "2,2025-03-02T10:00:00,phone,outage,true,,300,4", "1,2025-04-01T08:00:00,robot,payment,true,,30,"]),
    }
    store = open_store(store_url)
    try:
        for kind, (header, first, second) in files.items():
            ingest_file(write(tmp_path / f"{kind}-1.csv", header, first), kind, store)
            rep = ingest_file(write(tmp_path / f"{kind}-2.csv", header, second), kind, store)
            assert (rep.rows, rep.loaded, rep.duplicates, rep.quarantined) == (3, 2, 1, 0), kind
        assert store.load_customers().height == 3 and store.load_payments().height == 3
        assert store.load_interactions(2025).height == 3
        assert store.load_customers(["2"])["household_size"][0] == 4  # the correction is stored
    finally:
        store.close()
