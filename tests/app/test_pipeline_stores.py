"""The bill run over both stores: the same households give the same bills, reruns store nothing new."""

from __future__ import annotations

import resource

import polars as pl
import pytest

from wattbill import synth
from wattbill.ingest import ingest_file
from wattbill.pipeline import run_bills
from wattbill.store import open_store
from wattbill.tariffs import load_catalog, reference_bill

YEAR = 2025


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> synth.SynthPaths:
    return synth.generate(25, YEAR, seed=21, out_dir=tmp_path_factory.mktemp("synth"))


def _bill(store_url: str, files: synth.SynthPaths, out) -> tuple[pl.DataFrame, int, int]:
    store = open_store(store_url)
    try:
        for kind, path in (("customers", files.customers), ("registers", files.reads), ("payments", files.payments)):
            ingest_file(path, kind, store)
        catalog = load_catalog()
        first = run_bills(store, catalog, YEAR, out_dir=out, pdf=False)
        second = run_bills(store, catalog, YEAR, out_dir=out, pdf=False)
        stored = store.load_bills(YEAR, all_versions=True)
    finally:
        store.close()
    return pl.read_parquet(out / "bills.parquet"), first.new_versions, second.new_versions + stored.height - 25


def _comparable(bills: pl.DataFrame) -> pl.DataFrame:
    keep = [c for c in bills.columns if c not in ("created_at", "reason", "content_hash")]
    return bills.select(keep).sort("customer_id")


@pytest.mark.db
@pytest.mark.slow
def test_embedded_and_timescale_give_the_same_bills(files, tmp_path, pg_store_url: str) -> None:
    embedded, new1, extra1 = _bill(str(tmp_path / "store"), files, tmp_path / "out-embedded")
    timescale, new2, extra2 = _bill(pg_store_url, files, tmp_path / "out-timescale")
    assert new1 == new2 == 25
    assert extra1 == extra2 == 0  # the second run stored no new version
    assert _comparable(embedded).equals(_comparable(timescale))


def test_pipeline_bills_equal_the_reference(files, tmp_path) -> None:
    """Annual charges of the bill run equal the Decimal reference, household by household."""
    import numpy as np

    from wattbill.diagnostics import densify

    store = open_store(str(tmp_path / "store"))
    try:
        for kind, path in (("customers", files.customers), ("registers", files.reads)):
            ingest_file(path, kind, store)
        catalog = load_catalog()
        run_bills(store, catalog, YEAR, out_dir=tmp_path / "out", pdf=False)
        customers = store.load_customers().sort("customer_id")
        daily = store.load_daily(YEAR)
    finally:
        store.close()
    bills = pl.read_parquet(tmp_path / "out" / "bills.parquet").sort("customer_id")
    dense = densify(daily, customers, YEAR, with_regs=True)
    checked = 0
    for i, row in enumerate(customers.iter_rows(named=True)):
        bill = bills.filter(pl.col("customer_id") == row["customer_id"])
        if bill.height == 0:
            continue
        ref = reference_bill(
            catalog.get(row["tariff"]), YEAR, dense.total[i].tolist(), dense.regs[i].tolist(),
            int(dense.open_first[i]), int(dense.open_last[i]), int(row["household_size"] or 1),
        )
        assert bill["charge_total"][0] == ref.annual, row["customer_id"]
        assert int(np.int64(bill["charge_fen"][0])) == int(ref.annual * 100)
        checked += 1
    assert checked == 25


def test_chunks_change_nothing(files, tmp_path) -> None:
    """A run in chunks of 7 gives the bills, labels and PDFs of a run in one chunk."""
    results = {}
    for chunk_size in (7, 100_000):
        store = open_store(str(tmp_path / f"store-{chunk_size}"))
        try:
            for kind, path in (("customers", files.customers), ("registers", files.reads), ("payments", files.payments)):
                ingest_file(path, kind, store)
            out = tmp_path / f"out-{chunk_size}"
            summary = run_bills(store, load_catalog(), YEAR, out_dir=out, pdf=True, chunk_size=chunk_size)
            labels = store.load_labels(YEAR).sort("customer_id", "code")
        finally:
            store.close()
        assert summary.pdfs_written == 25
        results[chunk_size] = (_comparable(pl.read_parquet(out / "bills.parquet")), labels.select("customer_id", "code", "evidence"))
    assert results[7][0].equals(results[100_000][0])
    assert results[7][1].equals(results[100_000][1])


def test_chunk_processes_change_nothing(files, tmp_path, monkeypatch, caplog) -> None:
    """Pass 1 on two processes of the local engine (the chunks spawned, the store opened by its URL)
    gives the bytes of a run in this process: bills.parquet, bill_months.parquet. The log's chunk lines
    give the CPU and memory of the process that computed the chunk (a new user's report: they gave this
    process's), the run's last line those of the ended chunk processes."""
    import logging
    import os
    import re

    from wattbill.engines import LocalEngine

    caplog.set_level(logging.INFO, logger="wattbill.billrun")

    monkeypatch.setattr(LocalEngine, "process_min_households", 0)  # (a real run uses them from 100k)
    outs = {}
    for workers in (1, 2):
        store = open_store(str(tmp_path / f"store-{workers}"))
        try:
            for kind, path in (("customers", files.customers), ("registers", files.reads), ("payments", files.payments)):
                ingest_file(path, kind, store)
            out = tmp_path / f"out-{workers}"
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
            caplog.clear()
            with LocalEngine(workers) as engine:
                run_bills(store, load_catalog(), YEAR, out_dir=out, pdf=False, chunk_size=9, engine=engine)
            pids = {int(m.group(1)) for m in re.finditer(r"its process (\d+): CPU \d", caplog.text)}
            assert pids and (os.getpid() in pids) == (workers == 1), caplog.text
            if workers == 2:
                assert "ended child processes: CPU" in caplog.messages[-1]
            child_cpu = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before
            assert (child_cpu > 0.5) == (workers == 2), child_cpu  # the chunks ran in other processes
        finally:
            store.close()
        outs[workers] = out
    for name in ("bill_months.parquet", "not_billed.parquet"):
        assert (outs[1] / name).read_bytes() == (outs[2] / name).read_bytes(), name
    assert _comparable(pl.read_parquet(outs[1] / "bills.parquet")).equals(
        _comparable(pl.read_parquet(outs[2] / "bills.parquet")))


def test_chunk_processes_share_the_cores(monkeypatch) -> None:
    """Each of n chunk processes gets cores / n threads for polars and numba (two processes each with a pool
    of every core spun for each other's work); polars' allocator settings are not touched (the processes
    inherit the command line's default or the operator's); an operator's own values stand; the parent's
    environment is given back after the pool."""
    import os

    from wattbill._runtime import PROCESS_DEFAULTS
    from wattbill.engines import CHUNK_PROCESS_MALLOC, _environ, child_environment

    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    allocator = f"dirty_decay_ms:500,muzzy_decay_ms:1000,{PROCESS_DEFAULTS['_RJEM_MALLOC_CONF']}"  # (as under the CLI)
    monkeypatch.setenv("_RJEM_MALLOC_CONF", allocator)
    cores = len(os.sched_getaffinity(0))

    for name in CHUNK_PROCESS_MALLOC:
        monkeypatch.delenv(name, raising=False)

    def shares(n: str) -> dict[str, str]:
        return {"POLARS_MAX_THREADS": n, "NUMBA_NUM_THREADS": n, **CHUNK_PROCESS_MALLOC}

    assert child_environment(1) == shares(str(cores))
    assert child_environment(2) == shares(str(max(1, cores // 2)))
    assert child_environment(cores * 4) == shares("1")
    with _environ(child_environment(2)):
        assert os.environ["POLARS_MAX_THREADS"] == str(max(1, cores // 2))
        assert os.environ["_RJEM_MALLOC_CONF"] == allocator
    assert "POLARS_MAX_THREADS" not in os.environ
    assert "MALLOC_MMAP_MAX_" not in os.environ
    monkeypatch.setenv("POLARS_MAX_THREADS", "3")  # the operator's own: theirs stand
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert child_environment(2) == {}


def _malloc_of_worker(_: object) -> tuple[int, int, int]:
    """(bytes glibc mapped apart, heap bytes with a 100 MB array, heap bytes after it is freed) in this process."""
    import ctypes

    import numpy as np

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    a = np.ones(12_500_000)  # 100 MB
    held = libc.mallinfo2()
    del a
    return int(held.hblkhd), int(held.arena), int(libc.mallinfo2().arena)


def _assert_heap_kept(got: tuple[int, int, int]) -> None:
    mapped, heap, after = got
    assert mapped < 50_000_000 and heap >= 100_000_000 and after >= 100_000_000, got


def test_chunk_processes_keep_the_memory_a_chunk_freed(monkeypatch) -> None:
    """In a chunk process (a real one, started by the local engine), glibc gives a 100 MB array from its heap
    and keeps it there once freed (``CHUNK_PROCESS_MALLOC``), where the next chunk's arrays reuse it; this
    process (the command line's) keeps glibc's defaults: the array is a mapping of its own."""
    from wattbill.engines import CHUNK_PROCESS_MALLOC, LocalEngine

    for name in CHUNK_PROCESS_MALLOC:
        monkeypatch.delenv(name, raising=False)
    engine = LocalEngine(2)
    engine.process_min_households = 0
    for got in engine.map_unordered(_malloc_of_worker, [0, 1], processes=True):
        _assert_heap_kept(got)
    mapped, _, _ = _malloc_of_worker(None)
    assert mapped >= 100_000_000


@pytest.mark.slow
def test_dask_workers_keep_the_memory_a_chunk_freed(monkeypatch) -> None:
    """The same in a Dask ``LocalCluster``'s worker (``DaskEngine``): glibc reads these settings when the process
    starts, so they go before the nanny spawns it, in place of Dask's own trim threshold."""
    from wattbill.engines import CHUNK_PROCESS_MALLOC, DaskEngine

    for name in CHUNK_PROCESS_MALLOC:
        monkeypatch.delenv(name, raising=False)
    engine = DaskEngine(workers=1)
    try:
        got = engine.client.run(_malloc_of_worker, None)
    finally:
        engine.close()
    assert len(got) == 1
    _assert_heap_kept(next(iter(got.values())))


def _environment_of_worker(name: str) -> str | None:
    import os

    return os.environ.get(name)


def test_the_chunk_processes_have_their_environment(monkeypatch) -> None:
    """The local engine's chunk processes start with ``child_environment`` (read in a real process): their
    share of the cores, and the allocator settings of the process that started them (polars puts its own
    decay times first when it is imported; the last of an option wins)."""
    import os

    from wattbill.engines import LocalEngine

    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    mine = os.environ.get("_RJEM_MALLOC_CONF", "")
    engine = LocalEngine(2)
    engine.process_min_households = 0  # (two small jobs: on processes all the same)
    got = sorted(engine.map_unordered(_environment_of_worker, ["_RJEM_MALLOC_CONF", "POLARS_MAX_THREADS"],
                                      processes=True), key=str)
    threads = [v for v in got if v is not None and v.isdigit()]
    allocator = [v for v in got if v is not None and not v.isdigit()]
    assert threads == [str(max(1, len(os.sched_getaffinity(0)) // 2))], got
    assert len(allocator) == 1 and allocator[0].endswith(mine) and "dirty_decay_ms:-1" not in allocator[0], got
