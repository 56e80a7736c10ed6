"""A large file read in customer buckets loads what the same file read at once loads (issue #14).

The streamed path (``ingest.readers.bucketed``) spreads a file's rows over customer buckets; VEE then
sees one bucket at a time, so every read of a customer must be in one bucket. VEE reads ids stripped
(``" 7"`` and ``"7"`` are one customer): the bucket must be of the stripped id too, or the customer's
reads in the second bucket are taken as a new file's and the days between are estimated again over
the measured ones (a silently wrong bill).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from wattbill.ingest import ingest_file
from wattbill.ingest.schemas import customer_bucket
from wattbill.store import open_store

HEAD = "customer_id,meter_id,read_date,total,peak,valley\n"


def _file(path: Path) -> Path:
    lines = []
    for c in range(1, 13):
        cid = f"{c}"
        for d in range(1, 21):
            total = 1000 + c * 3 + d * (c % 5 + 1)
            peak = 400 + d * (c % 2)  # (never more than the total adds: valley = total - peak rises)
            # customer 7's export writes its id with a space in the second half of its reads
            shown = f" {cid}" if c == 7 and d > 10 else cid
            lines.append(f"{shown},M{cid},{dt.date(2025, 4, d)},{total:.2f},{peak:.2f},{total - peak:.2f}\n")
    path.write_text(HEAD + "".join(lines), encoding="utf-8")
    return path


def test_a_customer_whose_id_is_written_two_ways_stays_in_one_bucket(tmp_path: Path) -> None:
    n = 4
    assert pl.select(customer_bucket(pl.lit("7"), n)).item() != pl.select(customer_bucket(pl.lit(" 7"), n)).item()
    f = _file(tmp_path / "reads.csv")
    at_once = open_store(tmp_path / "a")
    in_buckets = open_store(tmp_path / "b")
    r1 = ingest_file(f, "registers", at_once)
    r2 = ingest_file(f, "registers", in_buckets, n_buckets=n)
    counts = (r1.rows, r1.loaded, r1.estimated, r1.quarantined, r1.duplicates)
    assert counts == (240, 240, 0, 0, 0)
    assert (r2.rows, r2.loaded, r2.estimated, r2.quarantined, r2.duplicates) == counts
    a, b = at_once.load_daily(2025), in_buckets.load_daily(2025)
    assert a.height == 12 * 19
    assert not a["estimated"].any()
    assert a.equals(b)
    assert at_once.load_register_state().equals(in_buckets.load_register_state())
