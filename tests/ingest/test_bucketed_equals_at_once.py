"""A large file loaded in customer buckets stores exactly what the same file loaded at once stores (issue 14).

The large-file path (``ingest_file(..., n_buckets > 1)``) spreads the reads over customer buckets,
VEEs the buckets apart (two at a time) and writes the daily rows bucket by bucket. Whatever the
path, a load must give the same daily rows, register state and heads, quarantine, findings, ledger
row and counts (rows = loaded + quarantined + duplicates). The file here has every kind of row that
changes them: gaps (estimated days, ``gap_estimated`` findings), a meter exchange, a duplicate read,
a conflicting duplicate, a register that goes down and comes back (a bad read), an id written with a
space, and (in the messy variant) a value that is not a number, which sends the whole file through
the text path. The GBK variant is Chinese Excel's export (Chinese headers, no BOM); the Parquet variant
holds the same rows. A second load of
the same file is a no-op (the ledger).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from wattbill.ingest import ingest_file
from wattbill.store import open_store

HEAD = ("customer_id", "meter_id", "read_date", "total", "peak", "valley")
HEAD_ZH = ("户号", "表号", "抄表日期", "正向有功总", "峰", "谷")
DAY0 = dt.date(2025, 3, 1)


def _rows(messy: bool) -> list[tuple[str, ...]]:
    """The file's data rows (text fields), customers one after the other as exports list them."""
    out: list[tuple[str, ...]] = []
    for c in range(1, 41):
        cid = f"{c:06d}"
        meter, total = f"M{c}", 5000.0 + 37 * c
        for d in range(45):
            day = DAY0 + dt.timedelta(days=d)
            if (c + d) % 13 == 0:
                total += 6 + c % 4
                continue  # a missing day: estimated from its neighbours (gap finding)
            if c == 5 and d == 20:
                meter, total = "M5-new", 12.0  # a meter exchange
            use = 4 + (c * 7 + d * 3) % 11 + 0.25
            total += use
            shown_total = total
            if c == 9 and d == 30:
                shown_total = total - 800  # down and back the next day: a bad read
            peak = round(shown_total * 0.4, 2)
            shown_id = f" {cid}" if c == 11 and d >= 25 else cid  # the same customer, written two ways
            row = (shown_id, meter, day.isoformat(), f"{shown_total:.2f}", f"{peak:.2f}", f"{shown_total - peak:.2f}")
            out.append(row)
            if c == 14 and d == 10:
                out.append(row)  # the same read twice: a duplicate
            if c == 17 and d == 12:
                out.append((*row[:3], f"{shown_total + 3:.2f}", *row[4:]))  # a conflicting duplicate
            if messy and c == 21 and d == 7:
                out.append((*row[:3], "abc", *row[4:]))  # not a number
    return out


def _write(path: Path, messy: bool, encoding: str = "utf-8") -> Path:
    if encoding == "parquet":  # the same rows as text columns of a Parquet file
        pl.DataFrame(_rows(messy), schema=list(HEAD), orient="row").write_parquet(path)
        return path
    head = HEAD_ZH if encoding == "gbk" else HEAD
    lines = [",".join(r) for r in [head, *_rows(messy)]]
    if encoding == "utf-8-extra":  # a row with more fields than the header (a comma in a value)
        lines.insert(500, "000023,M23,2025-03-10,5,234.5,2.00,3.00")
        encoding = "utf-8"
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _stored(st) -> dict[str, pl.DataFrame]:
    """What a load leaves in the store, each in one order."""
    daily = st.load_daily(2025)
    key = ["customer_id", "meter_id", "day"]
    return {
        "daily": daily.sort(key),
        "state": st.load_register_state().sort("customer_id", "meter_id"),
        "heads": st.load_register_heads().sort("customer_id", "meter_id"),
        "quarantine": st.load_quarantine().sort("row", "code"),
        "findings": st.load_findings().sort(*key, "code", "description"),
        "ledger": st.load_ledger().drop("loaded_at"),
    }


def _counts(rep) -> tuple:
    return (rep.rows, rep.loaded, rep.estimated, rep.quarantined, rep.duplicates, rep.findings,
            rep.findings_by_code, rep.quarantine_by_code)


@pytest.mark.parametrize(("messy", "encoding"), [(False, "utf-8"), (True, "utf-8"), (True, "gbk"),
                                                       (True, "parquet"), (False, "utf-8-extra")])
def test_a_bucketed_load_equals_a_load_at_once(tmp_path: Path, messy: bool, encoding: str) -> None:
    # (a name a URI must escape: the large-file reader streams the file through its file:// URI)
    f = _write(tmp_path / ("读数 #1%.csv" if encoding == "gbk" else "reads.csv"), messy, encoding)
    at_once, in_buckets = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    r1 = ingest_file(f, "registers", at_once)
    r4 = ingest_file(f, "registers", in_buckets, n_buckets=4)
    assert r1.rows == r1.loaded + r1.quarantined + r1.duplicates
    assert r1.estimated > 0 and r1.duplicates >= 1 and r1.quarantined >= 2
    assert {"gap_estimated", "meter_exchange"} <= set(r1.findings_by_code)
    if messy:
        assert "bad_value" in r1.quarantine_by_code or "non_numeric" in r1.quarantine_by_code
    if encoding == "utf-8-extra":  # quarantined in both paths, not the whole file refused (a new user's report)
        assert r1.quarantine_by_code.get("extra_fields") == 1
    assert _counts(r4) == _counts(r1)
    a, b = _stored(at_once), _stored(in_buckets)
    for name in a:
        assert a[name].equals(b[name]), name
    # loaded before: nothing changes, whichever path
    again = ingest_file(f, "registers", in_buckets, n_buckets=4)
    assert again.already_loaded and _counts(again)[:5] == _counts(r4)[:5]
    again1 = ingest_file(f, "registers", at_once, n_buckets=3)
    assert again1.already_loaded
    assert _stored(in_buckets)["daily"].equals(b["daily"])
    at_once.close()
    in_buckets.close()
