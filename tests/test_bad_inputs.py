"""The bad inputs of issue #13, reconstructed as a table: each through the command line (in process,
``wattbill.cli.main``) on the embedded store, with the outcome it must have.

Outcomes: ``error`` (exit 1, one line), ``usage`` (exit 2, one line), ``quarantined`` (exit 0, the row
counted in the quarantine with the code given), ``accepted`` (exit 0, loaded, and the stored value
checked against the file's). Never a traceback or an internal error; never silently wrong (each
accepted case checks what was stored). ``test_tally`` prints the counts for the notes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wattbill.cli import main
from wattbill.settings import reload_settings
from wattbill.store import open_store

READS = "customer_id,meter_id,read_date,total\n"
CONS = "customer_id,meter_id,read_date,kwh_total\n"
PAY = "customer_id,bill_month,issued_on,paid_on,amount,channel\n"
CUST = "customer_id,tariff,household_size,region,opened_on,closed_on,name,language\n"
TARIFF = """code = "x-test"
name = "t"
name_en = "t"
currency = "CNY"
source = "test"
[periods]
sharp = "all"
peak = "all"
flat = "all"
valley = "all"
[prices]
all = [0.5, 0.6, 0.8]
[tiers]
cycle = "annual"
thresholds = THRESHOLDS
"""


def _reads(*rows: str) -> str:
    return READS + "".join(r + "\n" for r in rows)


def _daily_reads(values: list[str], start: int = 1) -> str:
    return READS + "".join(f"1,M1,2025-03-{start + i:02d},{v}\n" for i, v in enumerate(values))


@dataclass
class Case:
    name: str
    category: str  # encodings, ragged rows, values, dates, duplicate headers, truncated, money, ...
    expect: str  # error | usage | quarantined | accepted
    args: list[str]  # {f} the input file, {store} the store, {out} an output folder, {dir} the case folder
    content: bytes | str | None = None
    code: str | None = None  # the quarantine code expected
    check: Callable[[Any], Any] | None = None  # on the store, for accepted cases
    setup: list[list[str]] = field(default_factory=list)  # commands run before


def _kwh(store, expected_wh: list[int]) -> None:
    assert store.load_daily(2025).sort("day")["wh_total"].to_list() == expected_wh


def _fen(store, expected: list[int]) -> None:
    assert store.load_payments()["amount_fen"].to_list() == expected


def _ids(store, expected: list[str]) -> None:
    assert store.load_customers()["customer_id"].to_list() == expected


ING_REG = ["ingest", "reads", "{f}", "--json"]
ING_CONS = ["ingest", "reads", "{f}", "--kind", "consumption", "--json"]
ING_PAY = ["ingest", "payments", "{f}", "--json"]
ING_CUST = ["ingest", "customers", "{f}", "--json"]
CUSTOMERS_1 = ["ingest", "customers", "{dir}/c.csv"]

CASES = [
    # --- encodings ---------------------------------------------------------------------------------
    Case("utf8 with BOM", "encodings", "accepted", ING_CONS, ("\ufeff" + CONS + "1,M1,2025-03-01,2.5\n").encode(),
         check=lambda s: _kwh(s, [2500])),
    Case("utf16 with BOM (Excel's CSV UTF-16)", "encodings", "accepted", ING_CONS,
         (CONS + "1,M1,2025-03-01,2.5\n").encode("utf-16"), check=lambda s: _kwh(s, [2500])),
    Case("utf16 without BOM", "encodings", "error", ING_CONS, (CONS + "1,M1,2025-03-01,2.5\n").encode("utf-16-le")),
    Case("utf16 little-endian mark on big-endian text", "encodings", "error", ING_CONS,
         b"\xff\xfe" + (CONS + "1,M1,2025-03-01,2.5\n" * 5000).encode("utf-16-be")),
    Case("a first line of 200,000 characters", "encodings", "error", ING_CONS,
         (CONS.rstrip("\n") + "x" * 200_000 + "\n1,M1,2025-03-01,2.5\n").encode()),
    Case("tab-separated (Excel's Unicode Text)", "encodings", "error", ING_CONS,
         (CONS + "1,M1,2025-03-01,2.5\n").replace(",", "\t").encode("utf-16")),
    Case("latin-1 byte", "encodings", "error", ING_CUST, (CUST + "1,cn-shanghai-res-tier,1,r,,,Caf\xe9,zh\n").encode("latin-1")),
    Case("binary junk", "encodings", "error", ING_REG, bytes(range(256)) * 4),
    Case("xlsx (zip)", "encodings", "error", ING_REG, b"PK\x03\x04" + b"\x00" * 100),
    Case("empty file", "encodings", "error", ING_REG, b""),
    Case("header only", "encodings", "error", ING_REG, READS),
    Case("CRLF line ends", "encodings", "accepted", ING_CONS, CONS.replace("\n", "\r\n") + "1,M1,2025-03-01,2.5\r\n",
         check=lambda s: _kwh(s, [2500])),
    Case("CR line ends alone (Excel for Mac)", "encodings", "accepted", ING_CONS,
         CONS.replace("\n", "\r") + "1,M1,2025-03-01,2.5\r1,M1,2025-03-02,1.5\r", check=lambda s: _kwh(s, [2500, 1500])),
    Case("utf16 with CR line ends alone", "encodings", "accepted", ING_CONS,
         (CONS.replace("\n", "\r") + "1,上,2025-03-01,2.5\r").encode("utf-16"), check=lambda s: _kwh(s, [2500])),
    Case("Chinese headers", "encodings", "accepted", ING_CONS, "户号,表号,日期,kwh_total\n1,M1,2025-03-01,2.5\n",
         check=lambda s: _kwh(s, [2500])),
    # --- ragged rows -------------------------------------------------------------------------------
    Case("too many fields (unquoted 1,234.5)", "ragged rows", "quarantined", ING_CONS,
         CONS + "1,M1,2025-03-01,1,234.5\n1,M1,2025-03-02,3\n", code="extra_fields"),
    Case("too few fields", "ragged rows", "quarantined", ING_CONS, CONS + "1,M1,2025-03-01\n1,M1,2025-03-02,3\n",
         code="missing_value"),
    Case("payment with unquoted thousands", "ragged rows", "quarantined", ING_PAY,
         PAY + "7,2025-01,2025-02-01,,1,234.50,app\n", code="extra_fields"),
    Case("blank lines", "ragged rows", "quarantined", ING_CONS, CONS + "1,M1,2025-03-01,2.5\n\n1,M1,2025-03-02,3\n",
         code="missing_value"),  # a blank line is a row of the file: counted, with its reason
    Case("quoted field with newline", "ragged rows", "accepted", ING_CUST,
         CUST + '1,cn-shanghai-res-tier,1,r,,,"two\nlines",zh\n', check=lambda s: _ids(s, ["1"])),
    # --- huge and non-finite values ----------------------------------------------------------------
    Case("register 1e308", "values", "quarantined", ING_REG, _daily_reads(["100", "110", "1e308", "130"]),
         code="implausible_value"),
    Case("register NaN", "values", "quarantined", ING_REG, _daily_reads(["100", "110", "NaN", "130"]), code="non_numeric"),
    Case("register inf", "values", "quarantined", ING_REG, _daily_reads(["100", "110", "inf", "130"]), code="non_numeric"),
    Case("register -inf", "values", "quarantined", ING_REG, _daily_reads(["100", "110", "-inf", "130"]), code="non_numeric"),
    Case("register in Wh (glitch)", "values", "quarantined", ING_REG,
         _daily_reads(["77605.9", "77611.5", "77617814", "77623.1"]), code="out_of_line_read"),
    Case("consumption 77,617,814 kWh", "values", "quarantined", ING_CONS, CONS + "1,M1,2025-03-01,77617814\n",
         code="implausible_value"),
    Case("consumption 317 kWh", "values", "quarantined", ING_CONS, CONS + "1,M1,2025-03-01,317\n", code="implausible_value"),
    Case("consumption 316.8 kWh (the limit)", "values", "accepted", ING_CONS, CONS + "1,M1,2025-03-01,316.8\n",
         check=lambda s: _kwh(s, [316800])),
    Case("negative consumption", "values", "quarantined", ING_CONS, CONS + "1,M1,2025-03-01,-2\n", code="negative_value"),
    Case("empty value", "values", "quarantined", ING_CONS, CONS + "1,M1,2025-03-01,\n", code="missing_value"),
    Case("text value", "values", "quarantined", ING_CONS, CONS + "1,M1,2025-03-01,abc\n", code="non_numeric"),
    Case("decimal comma in a read", "values", "quarantined", ING_CONS, CONS + '1,M1,2025-03-01,"2,5"\n',
         code="non_numeric"),
    Case("spaces around a value", "values", "accepted", ING_CONS, CONS + "1,M1,2025-03-01, 2.5 \n",
         check=lambda s: _kwh(s, [2500])),
    Case("leading zeros in ids", "values", "accepted", ING_CONS, CONS + "007,M1,2025-03-01,2.5\n",
         check=lambda s: s.load_daily(2025)["customer_id"].to_list() == ["007"] or pytest.fail("id")),
    Case("register going down and back", "values", "quarantined", ING_REG, _daily_reads(["100", "110", "0", "130"]),
         code="negative_consumption"),
    Case("multiplier 0", "values", "quarantined", ING_CONS,
         "customer_id,meter_id,read_date,kwh_total,multiplier\n1,M1,2025-03-01,2,0\n", code="bad_multiplier"),
    # --- bad dates ---------------------------------------------------------------------------------
    Case("2025-02-30", "dates", "quarantined", ING_CONS, CONS + "1,M1,2025-02-30,2\n", code="impossible_date"),
    Case("01/02/2025", "dates", "quarantined", ING_CONS, CONS + "1,M1,01/02/2025,2\n", code="ambiguous_date"),
    Case("01/02/2025 with --date-order dmy", "dates", "accepted", [*ING_CONS, "--date-order", "dmy"],
         CONS + "1,M1,01/02/2025,2\n",
         check=lambda s: str(s.load_daily(2025)["day"][0]) == "2025-02-01" or pytest.fail("dmy")),
    Case("01/02/2025 with --date-order mdy", "dates", "accepted", [*ING_CONS, "--date-order", "mdy"],
         CONS + "1,M1,01/02/2025,2\n",
         check=lambda s: str(s.load_daily(2025)["day"][0]) == "2025-01-02" or pytest.fail("mdy")),
    Case("2025/1/2", "dates", "accepted", ING_CONS, CONS + "1,M1,2025/1/2,2\n",
         check=lambda s: str(s.load_daily(2025)["day"][0]) == "2025-01-02" or pytest.fail("ymd")),
    Case("20250102", "dates", "accepted", ING_CONS, CONS + "1,M1,20250102,2\n",
         check=lambda s: str(s.load_daily(2025)["day"][0]) == "2025-01-02" or pytest.fail("compact")),
    Case("1899-12-31", "dates", "quarantined", ING_CONS, CONS + "1,M1,1899-12-31,2\n", code="implausible_date"),
    Case("a future day", "dates", "quarantined", ING_CONS, CONS + "1,M1,2999-01-01,2\n", code="implausible_date"),
    Case("Excel serial date", "dates", "quarantined", ING_CONS, CONS + "1,M1,45659,2\n", code="impossible_date"),
    Case("date-time", "dates", "quarantined", ING_CONS, CONS + "1,M1,2025-01-02T10:00:00,2\n", code="impossible_date"),
    Case("payment day-first", "dates", "quarantined", ING_PAY, PAY + "7,2025-01,05/02/2025,,10.00,app\n",
         code="ambiguous_date"),
    Case("payment channels named in Chinese", "values", "accepted", ING_PAY,
         PAY + "7,2025-01,2025-02-01,,10.00,支付宝\n7,2025-02,2025-03-01,,11.00, 微信 \n"
         "7,2025-03,2025-04-01,,12.00,银行代扣\n7,2025-04,2025-05-01,,13.00,网上国网\n",
         check=lambda s: s.load_payments().sort("bill_month")["channel"].to_list() == ["alipay", "wechat", "bank", "app"]
         or pytest.fail(str(s.load_payments()["channel"].to_list()))),
    Case("a payment channel not known", "values", "quarantined", ING_PAY, PAY + "7,2025-01,2025-02-01,,10.00,现金券\n",
         code="bad_value"),
    Case("--date-order xyz", "dates", "usage", [*ING_CONS, "--date-order", "xyz"], CONS + "1,M1,2025-01-02,2\n"),
    # --- duplicate headers and missing columns ------------------------------------------------------
    Case("same header twice", "duplicate headers", "error", ING_CONS,
         "customer_id,meter_id,read_date,kwh_total,kwh_total\n1,M1,2025-03-01,2,3\n"),
    Case("alias and canonical", "duplicate headers", "error", ING_CONS,
         "customer_id,户号,meter_id,read_date,kwh_total\n1,1,M1,2025-03-01,2\n"),
    Case("missing column", "duplicate headers", "error", ING_CONS, "customer_id,read_date,kwh_total\n1,2025-03-01,2\n"),
    Case("reads given as payments", "duplicate headers", "error", ING_PAY, CONS + "1,M1,2025-03-01,2\n"),
    # --- duplicates ----------------------------------------------------------------------------------
    Case("identical duplicate", "duplicates", "accepted", ING_CONS, CONS + "1,M1,2025-03-01,2\n1,M1,2025-03-01,2\n",
         check=lambda s: _kwh(s, [2000])),
    Case("conflicting duplicate", "duplicates", "quarantined", ING_CONS,
         CONS + "1,M1,2025-03-01,2\n1,M1,2025-03-01,3\n", code="conflicting_duplicate"),
    # --- truncated files -----------------------------------------------------------------------------
    Case("cut in the middle of a row", "truncated", "error", ING_CONS, CONS + "1,M1,2025-03-01,2\n1,M1,2025-0"),
    Case("unclosed quote at the end", "truncated", "error", ING_CUST, CUST + '1,cn-shanghai-res-tier,1,r,,,"abc'),
    Case("truncated parquet", "truncated", "error", ING_CONS, b"PAR1" + b"\x00" * 64),
    Case("last row without newline", "truncated", "accepted", ING_CONS, CONS + "1,M1,2025-03-01,2",
         check=lambda s: _kwh(s, [2000])),
    # --- money -----------------------------------------------------------------------------------------
    Case('payment "269,55"', "money", "quarantined", ING_PAY, PAY + '7,2025-01,2025-02-01,,"269,55",app\n',
         code="non_numeric"),
    Case("payment 100000000000000000.00", "money", "quarantined", ING_PAY,
         PAY + "7,2025-01,2025-02-01,,100000000000000000.00,app\n", code="implausible_value"),
    Case("payment 99999999999999999999.99", "money", "quarantined", ING_PAY,
         PAY + "7,2025-01,2025-02-01,,99999999999999999999.99,app\n", code="implausible_value"),
    Case('payment "1,234.50"', "money", "accepted", ING_PAY, PAY + '7,2025-01,2025-02-01,,"1,234.50",app\n',
         check=lambda s: _fen(s, [123450])),
    Case("payment 3 decimals", "money", "quarantined", ING_PAY, PAY + "7,2025-01,2025-02-01,,1.005,app\n",
         code="non_numeric"),
    Case("payment with a currency sign", "money", "quarantined", ING_PAY, PAY + "7,2025-01,2025-02-01,,¥12.00,app\n",
         code="non_numeric"),
    Case("payment channel unknown", "money", "quarantined", ING_PAY, PAY + "7,2025-01,2025-02-01,,12.00,cash\n",
         code="bad_value"),
    Case("bill month 2025-13", "money", "quarantined", ING_PAY, PAY + "7,2025-13,2025-02-01,,12.00,app\n",
         code="bad_value"),
    Case("payment 0.29", "money", "accepted", ING_PAY, PAY + "7,2025-01,2025-02-01,,0.29,app\n",
         check=lambda s: _fen(s, [29])),
    # --- customers ------------------------------------------------------------------------------------
    Case("unknown tariff", "customers", "quarantined", ING_CUST, CUST + "1,cn-nowhere,1,r,,,,zh\n", code="unknown_tariff"),
    Case("closed before opened", "customers", "quarantined", ING_CUST,
         CUST + "1,cn-shanghai-res-tier,1,r,2024-05-01,2024-04-01,,zh\n", code="closed_before_opened"),
    Case("household size 0", "customers", "quarantined", ING_CUST, CUST + "1,cn-shanghai-res-tier,0,r,,,,zh\n",
         code="bad_value"),
    Case("language fr", "customers", "quarantined", ING_CUST, CUST + "1,cn-shanghai-res-tier,1,r,,,,fr\n",
         code="bad_value"),
    Case("markup in a name", "customers", "accepted", ING_CUST,
         CUST + '1,cn-shanghai-res-tier,1,r,,,"<script>alert(1)</script>",zh\n',
         check=lambda s: s.load_customers()["name"][0] == "<script>alert(1)</script>" or pytest.fail("name")),
    # --- bad tariffs (tariffs check) ----------------------------------------------------------------------
    Case("thresholds [1e20, 2e20]", "tariffs", "error", ["tariffs", "check", "{f}"],
         TARIFF.replace("THRESHOLDS", "[1e20, 2e20]")),
    Case("thresholds decreasing", "tariffs", "error", ["tariffs", "check", "{f}"], TARIFF.replace("THRESHOLDS", "[200, 100]")),
    Case("threshold nan", "tariffs", "error", ["tariffs", "check", "{f}"], TARIFF.replace("THRESHOLDS", "[nan, 100]")),
    Case("price 1e9", "tariffs", "error", ["tariffs", "check", "{f}"],
         TARIFF.replace("THRESHOLDS", "[100, 200]").replace("[0.5, 0.6, 0.8]", "[1e9, 0.6, 0.8]")),
    Case("TOML syntax error", "tariffs", "error", ["tariffs", "check", "{f}"], "code = \n"),
    Case("a valid tariff", "tariffs", "accepted", ["tariffs", "check", "{f}"], TARIFF.replace("THRESHOLDS", "[2760, 4800]")),
    # --- command-line arguments ---------------------------------------------------------------------------
    Case("bill run --year 0", "arguments", "usage", ["bill", "run", "--year", "0"]),
    Case("bill run --year 99999", "arguments", "usage", ["bill", "run", "--year", "99999"]),
    Case("bill run --engine foo", "arguments", "usage", ["bill", "run", "--year", "2025", "--engine", "foo"]),
    Case("report channels --year 0", "arguments", "usage", ["report", "channels", "--year", "0"]),
    Case("bill run --year abc", "arguments", "usage", ["bill", "run", "--year", "abc"]),
    Case("bill run --workers 0", "arguments", "usage", ["bill", "run", "--year", "2025", "--workers", "0"]),
    Case("bill recalc --year -1", "arguments", "usage", ["bill", "recalc", "--year", "-1", "--customer", "1", "--reason", "r"]),
    Case("estimate --through 2025-02-30", "arguments", "usage", ["estimate", "--customer", "1", "--through", "2025-02-30"]),
    Case("token --ttl 0", "arguments", "usage", ["token", "--customer", "1", "--ttl", "0"]),
    Case("unknown command", "arguments", "usage", ["frobnicate"]),
    Case("ingest --kind bogus", "arguments", "usage", ["ingest", "reads", "{f}", "--kind", "bogus"], CONS),
    Case("ingest a missing file", "arguments", "error", ["ingest", "reads", "{dir}/nope.csv"]),
    Case("ingest a folder", "arguments", "error", ["ingest", "reads", "{dir}"]),
    Case("--tariffs not a folder", "arguments", "error", ["bill", "run", "--year", "2025", "--tariffs", "{f}"], "x"),
    Case("--store is a file", "arguments", "error", ["ingest", "reads", "{f}", "--store", "{f}"], CONS + "1,M1,2025-03-01,2\n"),
    Case("recalc with an empty reason", "arguments", "error",
         ["bill", "recalc", "--year", "2025", "--customer", "1", "--reason", " "]),
    Case("bill run on an empty store", "arguments", "error", ["bill", "run", "--year", "2025", "--out", "{out}"]),
    Case("bill run of an unknown customer", "arguments", "error",
         ["bill", "run", "--year", "2025", "--customer", "404", "--out", "{out}"], setup=[CUSTOMERS_1]),
    Case("daily kWh given as register reads", "arguments", "error", ING_REG, CONS + "1,M1,2025-03-01,2\n"),
    Case("--store mistyped (bill run)", "arguments", "error",
         ["bill", "run", "--year", "2025", "--out", "{out}", "--store", "{dir}/no-such-store"], setup=[CUSTOMERS_1]),
    Case("--store mistyped (estimate)", "arguments", "error",
         ["estimate", "--customer", "1", "--through", "2025-03-01", "--store", "{dir}/no-such-store"]),
    Case("--store mistyped (report)", "arguments", "error",
         ["report", "channels", "--year", "2025", "--out", "{out}", "--store", "{dir}/no-such-store"]),
    Case("database address without its scheme", "arguments", "error",
         ["ingest", "reads", "{f}", "--store", "u:Pw-Secret-1@127.0.0.1:5432/db"], CONS + "1,M1,2025-03-01,2\n"),
    Case("libpq keyword connection string", "arguments", "error",
         ["ingest", "reads", "{f}", "--store", "host=127.0.0.1 port=1 password=Pw-Secret-1"], CONS + "1,M1,2025-03-01,2\n"),
    Case("unknown address scheme", "arguments", "error",
         ["ingest", "reads", "{f}", "--store", "mysql://u:Pw-Secret-1@127.0.0.1/db"], CONS + "1,M1,2025-03-01,2\n"),
    # --- server outages (the database is unreachable; see tests/store/test_db_faults.py for stops mid-run) ---
    Case("unreachable server", "server outages", "error",
         ["ingest", "reads", "{f}", "--store", "postgresql://u:Pw-Secret-1@127.0.0.1:1/db"], CONS + "1,M1,2025-03-01,2\n"),
    Case("no such socket", "server outages", "error",
         ["bill", "run", "--year", "2025", "--store", "postgresql://u@/db?host=/nonexistent&password=Pw-Secret-1"]),
]

RESULTS: dict[str, str] = {}


def _fmt(args: list[str], case_dir: Path, f: Path) -> list[str]:
    return [a.format(f=f, store=case_dir / "store", out=case_dir / "out", dir=case_dir) for a in args]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTBILL_STORE", str(tmp_path / "store"))
    reload_settings()  # settings are read once
    (tmp_path / "c.csv").write_text(CUST + "1,cn-shanghai-res-tier,1,r,,,,zh\n")
    ext = ".toml" if case.args[:1] == ["tariffs"] else (".parquet" if case.name == "truncated parquet" else ".csv")
    f = tmp_path / f"input{ext}"
    if case.content is not None:
        f.write_bytes(case.content if isinstance(case.content, bytes) else case.content.encode("utf-8"))
    for cmd in case.setup:
        assert main(_fmt(cmd, tmp_path, f)) == 0
    capsys.readouterr()
    rc = main(_fmt(case.args, tmp_path, f))
    out, err = capsys.readouterr()
    text = out + err
    outcome = {0: "ok", 1: "error", 2: "usage"}.get(rc, f"exit {rc}")
    if "Traceback" in text or "internal error" in text:
        outcome = "traceback"
    elif rc == 0 and "--json" in case.args:
        rep = json.loads(out.strip().splitlines()[-1])
        assert rep["rows"] == rep["loaded"] + rep["quarantined"] + rep["duplicates"]
        outcome = "quarantined" if rep["quarantined"] else "accepted"
    elif rc == 0:
        outcome = "accepted"
    RESULTS[case.name] = outcome
    assert "Pw-Secret-1" not in text
    assert not any("Secret" in p.name or p.name == "no-such-store" for p in tmp_path.rglob("*"))  # no folder made
    assert outcome == case.expect, f"{case.name}: {outcome}: {text[-600:]}"
    if outcome in ("error", "usage"):
        assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    if case.name == "daily kWh given as register reads":
        assert "--kind consumption" in err, err
    if outcome == "quarantined" and case.code:
        q = open_store(tmp_path / "store").load_quarantine()
        assert case.code in q["code"].to_list(), q
    if outcome == "accepted" and case.check is not None:
        case.check(open_store(tmp_path / "store"))


def test_tally(capsys: pytest.CaptureFixture) -> None:
    """The counts for the notes (run after the table): clear errors, quarantined, accepted correctly,
    tracebacks, silently wrong (an accepted case whose stored value differs fails its check)."""
    if len(RESULTS) < len(CASES):
        pytest.skip("the table did not run in this session")
    tally = Counter("clear error" if v in ("error", "usage") else v for v in RESULTS.values())
    by_cat = Counter(c.category for c in CASES)
    with capsys.disabled():
        print(f"\nbad inputs: {len(CASES)} kinds in {len(by_cat)} categories: "
              + ", ".join(f"{k} {n}" for k, n in sorted(tally.items())))
    assert tally["traceback"] == 0
