"""Property: on random messy files every row is accounted for, and nothing is read as zero."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal

from tests.strategies import messy_register_files
from wattbill.ingest import core, ingest_file
from wattbill.ingest.errors import IngestError
from wattbill.ingest.readers import read_raw
from wattbill.ingest.vee import registers_to_daily
from wattbill.store import open_store

TODAY = dt.date(2025, 6, 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy_register_files())
def test_rows_are_accounted_for(case: tuple[bytes, int]) -> None:
    data, n_rows = case
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "reads.csv"
        f.write_bytes(data)
        st = open_store(Path(tmp) / "store")
        rep = ingest_file(f, "registers", st, today=TODAY)
        assert rep.rows == n_rows
        assert rep.rows == rep.loaded + rep.quarantined + rep.duplicates
        q = st.load_quarantine()
        assert q.height == rep.quarantined
        assert q["row"].is_unique().all() and q["row"].is_between(1, n_rows).all()
        assert q["reason"].null_count() == 0 and q["code"].null_count() == 0
        daily = pl.concat([st.load_daily(y) for y in range(2024, 2027)])
        assert (daily["wh_total"] >= 0).all()
        assert daily.select("customer_id", "meter_id", "day").is_unique().all()
        assert int(daily["estimated"].sum()) == rep.estimated
        tou = daily.filter(pl.col("wh_sharp").is_not_null())
        assert tou.select(
            (pl.sum_horizontal("wh_sharp", "wh_peak", "wh_flat", "wh_valley") == pl.col("wh_total")).all()
        ).item()
        again = ingest_file(f, "registers", st, today=TODAY)
        assert again.already_loaded and again.rows == rep.rows


def _same_result(a, b) -> None:
    def norm(df: pl.DataFrame) -> pl.DataFrame:
        return df.sort(df.columns, nulls_last=True)

    assert (a.rows, a.loaded, a.duplicates, a.estimated) == (b.rows, b.loaded, b.duplicates, b.estimated)
    assert_frame_equal(norm(a.frame), norm(b.frame))
    assert_frame_equal(norm(a.quarantine), norm(b.quarantine))
    assert_frame_equal(norm(a.findings), norm(b.findings))
    assert_frame_equal(norm(a.state), norm(b.state))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=messy_register_files())
def test_two_halves_give_the_same_result(case: tuple[bytes, int], tmp_path_factory) -> None:
    """VEE on two threads (halves of whole customers) equals VEE of the whole file."""
    data, _ = case
    path = tmp_path_factory.mktemp("halves") / "reads.csv"
    path.write_bytes(data)
    try:
        raw = read_raw(path, "registers")
    except IngestError:
        return
    whole = registers_to_daily(raw, today=TODAY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "PARALLEL_MIN_ROWS", 1)
        _same_result(core._registers_in_halves(raw, TODAY, None), whole)


def test_halves_split_between_customers(tmp_path, monkeypatch) -> None:
    lines = ["customer_id,meter_id,read_date,total"]
    for c in ("001", "002", "003"):
        for d in range(1, 21):
            lines.append(f"{c},M{c},2024-01-{d:02d},{100 + d * (5 if d != 10 else 60):.2f}")
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n")
    raw = read_raw(path, "registers")
    monkeypatch.setattr(core, "PARALLEL_MIN_ROWS", 1)
    calls = []
    real = registers_to_daily

    def spy(part, **kw):
        calls.append(part["customer_id"].unique().sort().to_list())
        return real(part, **kw)

    monkeypatch.setattr(core.vee, "registers_to_daily", spy)
    res = core._registers_in_halves(raw, TODAY, None)
    assert sorted(calls) == [["001"], ["002", "003"]]  # whole customers on each side
    _same_result(res, real(raw, today=TODAY))


def test_halves_keep_ids_that_differ_only_by_spaces_together(tmp_path, monkeypatch) -> None:
    lines = ["customer_id,meter_id,read_date,total"]
    for c in (" 7", "7", "8"):  # " 7" sorts before "7"; both are customer 7
        for d in range(1, 6):
            lines.append(f'"{c}",M7,2024-01-{d:02d},{100 + d + (0 if c == " 7" else 10):.2f}')
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n")
    raw = read_raw(path, "registers")
    monkeypatch.setattr(core, "PARALLEL_MIN_ROWS", 1)
    _same_result(core._registers_in_halves(raw, TODAY, None), registers_to_daily(raw, today=TODAY))
