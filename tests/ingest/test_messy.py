"""Property: on random messy files every row is accounted for, and nothing is read as zero."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings

from ingest import ingest_file
from store import open_store
from tests.strategies import messy_register_files

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
