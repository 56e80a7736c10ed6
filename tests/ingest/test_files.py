"""Files as a whole: bad files, formats, encodings, streaming in buckets, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from wattbill.ingest import ingest_file
from wattbill.ingest.errors import (
    BadFileError,
    DuplicateColumnsError,
    EmptyFileError,
    IngestError,
    MissingColumnsError,
    TruncatedFileError,
    UnknownKindError,
    UnsupportedFormatError,
)
from wattbill.store import open_store

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"
REPO = Path(__file__).resolve().parents[2]


def _one_line(e: IngestError) -> str:
    text = str(e)
    assert "\n" not in text
    return text


def test_wrong_columns(tmp_path: Path) -> None:
    with pytest.raises(MissingColumnsError) as ei:
        ingest_file(FIX / "wrong_columns.csv", "registers", open_store(tmp_path / "s"))
    e = ei.value
    assert e.file.endswith("wrong_columns.csv") and e.column == "customer_id"
    assert "wrong_columns.csv" in _one_line(e) and "column customer_id" in str(e)


def test_truncated_csv_names_row_and_column(tmp_path: Path) -> None:
    st = open_store(tmp_path / "s")
    with pytest.raises(TruncatedFileError) as ei:
        ingest_file(FIX / "truncated.csv", "registers", st)
    e = ei.value
    assert (e.row, e.column) == (3, "read_date")
    assert "truncated.csv, row 3, column read_date" in _one_line(e)
    # nothing half-loaded
    assert st.load_ledger().height == 0 and st.load_daily(2024).height == 0


def test_empty_and_header_only(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(EmptyFileError):
        ingest_file(empty, "registers", None)
    header = tmp_path / "header.csv"
    header.write_text("customer_id,meter_id,read_date,total\n")
    with pytest.raises(EmptyFileError, match="no data rows"):
        ingest_file(header, "registers", None)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"PK\x03\x04\x14\x00\x00\x00binary excel", "ZIP/Excel"),
        (b"\x00\x01\x02\x03customer_id", "binary"),
        # valid in no supported encoding (UTF-8, GB18030): refused, naming the row
        (b"customer_id,meter_id,read_date,total\n1,2,2024-01-01,3\n1,2,2024-01-02,4\xff\n", "row 2.*GB18030"),
    ],
)
def test_not_csv(tmp_path: Path, content: bytes, match: str) -> None:
    f = tmp_path / "reads.csv"
    f.write_bytes(content)
    with pytest.raises(UnsupportedFormatError, match=match) as ei:
        ingest_file(f, "registers", None)
    assert isinstance(ei.value, BadFileError)
    _one_line(ei.value)


def test_gbk_export_with_chinese_headers_loads(tmp_path: Path) -> None:
    """Chinese Excel's "CSV" is GBK without a BOM (issue #12 item 6): headers and values decoded."""
    f = tmp_path / "reads.csv"
    f.write_bytes("户号,表号,日期,正向有功总\n1,表A,2024/1/1,3\n1,表A,2024/1/2,5\n".encode("gbk"))
    rep = ingest_file(f, "registers", None)
    assert (rep.rows, rep.loaded, rep.quarantined) == (2, 2, 0)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_export_with_a_bom_loads(tmp_path: Path, encoding: str) -> None:
    """Excel's "CSV UTF-16" is UTF-16 with a byte-order mark (either byte order): read through a UTF-8 copy,
    headers and values decoded as from UTF-8; UTF-16 text cut inside a character is refused with the
    encoding named, and tab-separated columns (Excel's "Unicode Text") with a hint."""
    text = "户号,表号,日期,正向有功总\r\n1,表A,2024/1/1,3\r\n1,表A,2024/1/2,5\r\n"
    f = tmp_path / "reads.csv"
    f.write_bytes("\ufeff".encode(encoding) + text.encode(encoding))
    st = open_store(tmp_path / "s")
    rep = ingest_file(f, "registers", st)
    assert (rep.rows, rep.loaded, rep.quarantined) == (2, 2, 0)
    assert st.load_daily(2024)["meter_id"].to_list() == ["表A"]
    f.write_bytes("\ufeff".encode(encoding) + text.encode(encoding) + b"\x00")  # (half a character at the end)
    with pytest.raises(UnsupportedFormatError, match="UTF-16") as ei:
        ingest_file(f, "registers", None)
    _one_line(ei.value)
    f.write_bytes(("\ufeff" + text.replace(",", "\t")).encode(encoding))
    with pytest.raises(MissingColumnsError, match="separated by tabs"):
        ingest_file(f, "registers", None)


@pytest.mark.parametrize("rows", [3, 20_000])
def test_a_utf16_mark_that_does_not_match_its_text_is_refused(tmp_path: Path, rows: int) -> None:
    """A little-endian mark on big-endian text (and the reverse) decodes without an error into one long
    line of other characters: refused by the mark's check, with one line (a large file had reached the
    csv module's field limit as an internal error; a new user's trial)."""
    text = "户号,表号,日期,正向有功总\r\n" + "".join(f"{i},表A,2024/1/{1 + i % 28},3\r\n" for i in range(rows))
    f = tmp_path / "reads.csv"
    for mark, enc in ((b"\xff\xfe", "utf-16-be"), (b"\xfe\xff", "utf-16-le")):
        f.write_bytes(mark + text.encode(enc))
        with pytest.raises(UnsupportedFormatError, match=r"byte-order mark .* does not match") as ei:
            ingest_file(f, "registers", None)
        _one_line(ei.value)


def test_a_first_line_too_long_for_a_header_and_a_huge_field(tmp_path: Path) -> None:
    """A first line of 200,000 characters is not a header (refused in one line, not the csv module's
    field-limit error); a row with extra fields and a 200,000-character value is quarantined as
    ``extra_fields`` and the file's other rows load."""
    f = tmp_path / "reads.csv"
    f.write_text("customer_id,meter_id,read_date,total" + "x" * 200_000 + "\n1,m,2024-01-01,1\n", encoding="utf-8")
    with pytest.raises(UnsupportedFormatError, match="longer than 65,536 characters") as ei:
        ingest_file(f, "registers", None)
    _one_line(ei.value)
    f.write_text('customer_id,meter_id,read_date,total\n1,m,2024-01-01,1,"' + "9" * 200_000 + '"\n1,m,2024-01-02,1\n',
                 encoding="utf-8")
    st = open_store(tmp_path / "s")
    rep = ingest_file(f, "registers", st)
    assert (rep.rows, rep.loaded, rep.quarantined) == (2, 1, 1)
    assert st.load_quarantine()["code"].to_list() == ["extra_fields"]


def test_truncated_parquet(tmp_path: Path) -> None:
    f = tmp_path / "reads.parquet"
    pl.DataFrame(
        {"customer_id": ["1"], "meter_id": ["m"], "read_date": ["2024-01-01"], "total": [1.0]}
    ).write_parquet(f)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedFileError):
        ingest_file(f, "registers", None)


def test_duplicate_columns_and_unknown_kind(tmp_path: Path) -> None:
    f = tmp_path / "dup.csv"
    f.write_text("户号,customer_id,meter_id,read_date,total\n1,1,m,2024-01-01,1\n", encoding="utf-8")
    with pytest.raises(DuplicateColumnsError, match="customer_id"):
        ingest_file(f, "registers", None)
    with pytest.raises(UnknownKindError):
        ingest_file(f, "bananas", None)
    with pytest.raises(BadFileError, match="no such file"):
        ingest_file(tmp_path / "missing.csv", "registers", None)


def test_parquet_input_with_chinese_headers(tmp_path: Path) -> None:
    f = tmp_path / "reads.parquet"
    import datetime as dt

    pl.DataFrame(
        {
            "户号": ["007", "007", "007"],
            "表号": ["m", "m", "m"],
            "日期": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
            "正向有功总": [1.0, 2.5, None],
        }
    ).write_parquet(f)
    st = open_store(tmp_path / "s")
    rep = ingest_file(f, "registers", st)
    assert (rep.rows, rep.loaded, rep.quarantined) == (3, 2, 1)
    d = st.load_daily(2024)
    assert d["customer_id"].to_list() == ["007"] and d["wh_total"].to_list() == [1500]
    assert st.load_quarantine()["code"].to_list() == ["missing_value"]


@pytest.mark.parametrize("clean", [False, True], ids=["text-path", "typed-path"])
def test_bucketed_streaming_equals_single_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean: bool) -> None:
    """Large files are streamed into customer buckets and processed bucket by bucket; same result as one
    pass (CRLF line ends, a quoted field with a line break in it).

    A clean file is parsed typed; one value that does not parse sends the file through the text path."""
    import datetime as dt

    from wattbill.ingest import readers


    rows = ["customer_id,meter_id,read_date,total,sharp,peak,flat,valley"]
    for c in range(40):
        v = 1000.0 + c
        for d in range(30):
            if (c + d) % 11 == 0:
                continue  # gaps
            day = dt.date(2024, 1, 1) + dt.timedelta(days=d)
            rows.append(
                f"{c:05d},M{c},{day},{v:.2f},{v / 10:.2f},{v / 10 * 3:.2f},{v / 10 * 4:.2f},{v / 10 * 2:.2f}"
            )
            v += 3.0 + (c % 5)
    if not clean:
        rows.append("00001,M1,2024-01-05,abc,1,1,1,1")
        rows.append('00002,"M2\r\nwith a line break, and a comma",2024-01-05,1,1,1,1,1')
    f = tmp_path / "reads.csv"
    f.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    one = open_store(tmp_path / "one")
    many = open_store(tmp_path / "many")
    r1 = ingest_file(f, "registers", one)
    r2 = ingest_file(f, "registers", many, n_buckets=4)
    assert (r1.rows, r1.loaded, r1.estimated, r1.quarantined) == (
        r2.rows,
        r2.loaded,
        r2.estimated,
        r2.quarantined,
    )
    assert one.load_daily(2024).equals(many.load_daily(2024))
    assert one.load_quarantine().drop("file").equals(many.load_quarantine().drop("file"))
    assert r1.quarantined == (0 if clean else 1)
    calls = []
    real = readers._sink_buckets

    def spy(path, fmt, kind, typed, n, out):
        calls.append(typed)
        return real(path, fmt, kind, typed, n, out)

    monkeypatch.setattr(readers, "_sink_buckets", spy)
    ingest_file(f, "registers", None, n_buckets=4)
    assert calls == ([True] if clean else [True, False])


def test_cli_json_and_quarantine(tmp_path: Path) -> None:
    from wattbill.commands.ingest import app

    store = str(tmp_path / "s")
    res = CliRunner().invoke(
        app, ["reads", str(FIX / "bad_values.csv"), str(FIX / "gap.csv"), "--store", store, "--json"]
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.strip().splitlines()]
    assert [Path(x["file"]).name for x in lines] == ["bad_values.csv", "gap.csv"]
    for x in lines:
        assert {"file", "rows", "loaded", "estimated", "quarantined", "duplicates"} <= set(x)
        assert x["rows"] == x["loaded"] + x["quarantined"] + x["duplicates"]
        assert x["already_loaded"] is False
        assert x["findings"] == sum(x["findings_by_code"].values())
        assert x["quarantined"] == sum(x["quarantine_by_code"].values())
    res = CliRunner().invoke(app, ["reads", str(FIX / "gap.csv"), "--store", store])
    assert "already loaded, nothing changed; its first load: rows" in res.output
    res = CliRunner().invoke(app, ["reads", str(FIX / "gap.csv"), "--store", store, "--json"])
    again = json.loads(res.output)
    assert again["already_loaded"] is True and again["rows"] == lines[1]["rows"]  # (its first load's counts)
    assert again["findings"] == lines[1]["findings"] and "findings_by_code" not in again
    res = CliRunner().invoke(app, ["quarantine", "list", "--store", store])
    assert res.exit_code == 0 and "8 quarantined rows" in res.output and "impossible_date" in res.output
    out = tmp_path / "q.csv"
    res = CliRunner().invoke(app, ["quarantine", "export", str(out), "--store", store])
    assert res.exit_code == 0 and pl.read_csv(out).height == 8


def test_cli_bad_file_is_reported_and_the_others_load(tmp_path: Path) -> None:
    """A file that cannot be loaded is reported with its reason (one line; with ``--json`` also an object
    with ``error``) and the next files are loaded; the command ends with exit code 1 and the count (a new
    user's trial: the files after a bad one were not read, and nothing said so)."""
    from wattbill.commands.ingest import app

    good = [tmp_path / "a.csv", tmp_path / "b.csv"]
    for k, f in enumerate(good):
        f.write_text(f"customer_id,meter_id,read_date,total\n{k},m,2024-01-01,1\n", encoding="utf-8")
    files = [good[0], FIX / "truncated.csv", tmp_path / "missing.csv", good[1]]
    res = CliRunner().invoke(app, ["reads", *map(str, files), "--store", str(tmp_path / "s")])
    assert res.exit_code == 1 and not isinstance(res.exception, IngestError)
    assert "truncated.csv, row" in res.stderr and "missing.csv: no such file" in res.stderr
    assert "2 of 4 files not loaded" in res.stderr
    assert "a.csv: rows 1, loaded 1" in res.stdout and "b.csv: rows 1, loaded 1" in res.stdout
    assert open_store(tmp_path / "s").load_ledger().height == 2
    res = CliRunner().invoke(app, ["reads", str(FIX / "truncated.csv"), "--store", str(tmp_path / "t"), "--json"])
    assert res.exit_code == 1
    assert json.loads(res.stdout)["error_type"] == "TruncatedFileError"
    assert len(res.stderr.strip().splitlines()) == 1  # (one file: its error, no count)


@pytest.mark.slow
def test_wattbill_main_exit_code_and_one_line(tmp_path: Path) -> None:
    """Through the real entry point: exit code 1, one line naming file, row and column, no traceback."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from wattbill.cli import main; sys.exit(main())",
            "ingest",
            "reads",
            str(FIX / "truncated.csv"),
            "--store",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err
    assert "truncated.csv" in err and "row 3" in err and "column read_date" in err


def test_quarantine_keeps_the_text_as_written(tmp_path: Path) -> None:
    """A clean CSV is read typed; its quarantined rows still show the values as written."""
    f = tmp_path / "r.csv"
    f.write_text(
        "customer_id,meter_id,read_date,total\n"
        "001,M1,2024-01-01,100.00\n"
        "001,M1,2024-01-02,-5.00\n"
        "001,M1,2024-01-03,110.10\n"
    )
    st = open_store(tmp_path / "s")
    rep = ingest_file(f, "registers", st)
    assert rep.quarantined == 1
    q = st.load_quarantine()
    assert q.select("row", "code", "raw").rows() == [(2, "negative_value", "001,M1,2024-01-02,-5.00")]
