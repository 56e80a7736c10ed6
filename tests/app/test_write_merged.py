"""``pipeline.write_merged``: a run's table written chunk by chunk gives the rows and the order of
``keep_others`` over the whole run (the one merge rule), whatever the file held before."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from wattbill.pipeline import keep_others, write_merged

YEAR = 2025


def _bills(ids: list[str], year: int, version: int, kwh: float) -> pl.DataFrame:
    return pl.DataFrame({
        "customer_id": ids, "year": pl.Series([year] * len(ids), dtype=pl.Int32),
        "kwh_total": [kwh + i for i in range(len(ids))], "version": pl.Series([version] * len(ids), dtype=pl.Int32),
        "labels": pl.Series([["a"]] * len(ids), dtype=pl.List(pl.Utf8)),
    })


def _chunks(ids: list[str], size: int) -> list[list[str]]:
    return [ids[lo:lo + size] for lo in range(0, len(ids), size)]


@pytest.mark.parametrize("old_ids", [
    [],  # a new folder
    ["c000", "c004", "c005", "c010", "c019"],  # the run's households, billed before: replaced (c004 left out: kept)
    ["a000", "c003", "c0075", "c012", "z999"],  # others before, between and after the run's chunks: kept
])
@pytest.mark.parametrize("size", [1, 3, 7, 40])
def test_chunk_by_chunk_equals_the_merge_of_the_whole_run(tmp_path: Path, old_ids: list[str], size: int) -> None:
    run_ids = [f"c{i:03d}" for i in range(20)]
    path = tmp_path / "bills.parquet"
    old = pl.concat([_bills(old_ids, YEAR, 1, 100.0), _bills(old_ids, YEAR - 1, 3, 50.0)])
    if old.height:
        old.sort("customer_id", "year").write_parquet(path)
    chunks = _chunks(run_ids, size)
    billed = [[c for c in chunk if c != "c004"] for chunk in chunks]  # one household left out: keeps its old bill
    new = {k: _bills(ids, YEAR, 2, 10.0) if ids else pl.DataFrame() for k, ids in enumerate(billed)}
    whole = pl.concat([f for f in new.values() if f.height])
    want = (keep_others(path, whole, YEAR, whole["customer_id"].to_list()).sort("customer_id", "year")
            if old.height else whole.sort("customer_id", "year"))
    write_merged(path, YEAR, ["customer_id", "year"], [c[0] for c in chunks], lambda k: new[k],
                 dict(whole.schema))
    got = pl.read_parquet(path)
    assert got.equals(want.select(got.columns)), (got, want)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_file_that_is_not_ours_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "bills.parquet"
    path.write_text("not parquet")
    new = _bills(["c1", "c2"], YEAR, 1, 1.0)
    write_merged(path, YEAR, ["customer_id", "year"], ["c1"], lambda k: new, dict(new.schema))
    assert pl.read_parquet(path).equals(new)


def test_temporaries_of_a_killed_run_are_removed_features_included(tmp_path: Path) -> None:
    """A run killed while it wrote its output files leaves ``.<name>.<pid>.tmp`` files; the next run
    removes those of processes that are gone (the features' folder too: a new user's report), and
    keeps those of a live process (another run writing now)."""
    import os
    import subprocess
    import sys

    from wattbill.pipeline import clean_stale_temporaries

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (tmp_path / "features").mkdir()
    stale = [tmp_path / f".bills.parquet.{gone}.tmp", tmp_path / "features" / f".2025.parquet.{gone}.tmp"]
    live = tmp_path / "features" / f".2024.parquet.{os.getppid()}.tmp"
    for p in [*stale, live]:
        p.write_bytes(b"x")
    assert clean_stale_temporaries(tmp_path) == 2
    assert not any(p.exists() for p in stale) and live.exists()
