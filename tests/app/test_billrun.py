"""The bill run at scale: checkpoints that survive ``kill -9``, sharded statements, not-billed households
as data, and the Dask engine giving the same bytes as the local one.

Every test runs the real ``wattbill`` command in a subprocess on a real embedded store made by
``wattbill demo``; the kills are real ``SIGKILL``s sent from outside while the run works.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.app.conftest import REPO, WATTBILL, run_cli
from wattbill.statements import all_statements, shard_of, statement_path

YEAR = "2025"


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of 600 synthetic households (no bill run output kept)."""
    out = tmp_path_factory.mktemp("pop")
    proc = run_cli("demo", "--customers", "600", "--year", YEAR, "--out", str(out), "--no-pdf", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    return out / "store"


def _store_copy(store: Path, dest: Path) -> Path:
    shutil.copytree(store, dest)
    return dest


def _digest(folder: Path, names: list[str]) -> dict[str, str]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


def _pdf_digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in all_statements(out, int(YEAR))}


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*WATTBILL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={k: v for k, v in os.environ.items() if k != "WATTBILL_STORE"})


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("the run never reached the point to kill it at")


def _no_stray_files(out: Path) -> None:
    stray = [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".partial" in p.parts or ".checkpoints" in p.parts
             or p.name.startswith(".")]
    assert stray == [], stray


@pytest.mark.slow
def test_kill_in_pass_1_redoes_only_the_unfinished_chunks(population: Path, tmp_path: Path) -> None:
    ref_store, ref_out = _store_copy(population, tmp_path / "ref-store"), tmp_path / "ref"
    args = ("bill", "run", "--year", YEAR, "--no-pdf", "--chunk-size", "40")
    proc = run_cli(*args, "--store", str(ref_store), "--out", str(ref_out))
    assert proc.returncode == 0, proc.stderr

    store, out = _store_copy(population, tmp_path / "store"), tmp_path / "out"
    run = _start(*args, "--store", str(store), "--out", str(out))

    def chunks_done() -> list[Path]:
        return list((out / ".checkpoints").glob(f"{YEAR}-*/chunk-*"))

    _kill_when(run, lambda: len(chunks_done()) >= 4)
    finished = {p.name: p.stat().st_mtime_ns for p in chunks_done()}
    assert 4 <= len(finished) < 15  # 600 households in chunks of 40: killed in the middle of pass 1
    assert not (out / "bills.parquet").exists()

    again = run_cli(*args, "--store", str(store), "--out", str(out))
    assert again.returncode == 0, again.stderr
    computed, reused = 15 - len(finished), len(finished)
    assert f"chunks: {computed} computed, {reused} from checkpoints" in again.stdout
    names = ["bills.parquet", "bill_months.parquet", "not_billed.parquet", "labels_withheld.parquet"]
    assert _digest(out, names) == _digest(ref_out, names)
    _no_stray_files(out)


@pytest.mark.slow
def test_kill_while_the_bills_are_saved_chunk_by_chunk_stores_each_bill_once(population: Path, tmp_path: Path) -> None:
    """The global step saves the bills one chunk at a time: killed after some chunks' bills are in the
    store, the run started again saves the rest, stores no bill twice (the saved ones are unchanged:
    no new version) and writes the same bytes as an uninterrupted run. (A price change on 1 July makes
    every bill of the demo's store a new version.)"""
    import polars as pl

    from benchmarks.bench_billrun import versioned_tariffs
    from wattbill.store import open_store

    st = open_store(str(population))
    try:
        codes = sorted(set(st.load_customers()["tariff"].to_list()))
    finally:
        st.close()
    change = versioned_tariffs(tmp_path / "tariffs", codes, f"{YEAR}-07-01")
    ref_store, ref_out = _store_copy(population, tmp_path / "ref-store"), tmp_path / "ref"
    args = ("bill", "run", "--year", YEAR, "--no-pdf", "--chunk-size", "40", "--tariffs", str(change))
    proc = run_cli(*args, "--store", str(ref_store), "--out", str(ref_out))
    assert proc.returncode == 0, proc.stderr

    store, out = _store_copy(population, tmp_path / "store"), tmp_path / "out"
    log = store / "bills" / "_delta_log"
    commits = len(list(log.glob("*.json")))
    run = _start(*args, "--store", str(store), "--out", str(out))

    def saved() -> int:  # the chunks' saves so far: one commit of the bills table each
        return len(list(log.glob("*.json"))) - commits

    _kill_when(run, lambda: saved() >= 3)
    assert 3 <= saved() < 15 and not (out / "bills.parquet").exists()

    again = run_cli(*args, "--store", str(store), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "chunks: 0 computed, 15 from checkpoints" in again.stdout
    names = ["bills.parquet", "bill_months.parquet", "not_billed.parquet", "labels_withheld.parquet"]
    assert _digest(out, names) == _digest(ref_out, names)
    st = open_store(str(store))
    try:
        versions = st.load_bills(int(YEAR), all_versions=True)
    finally:
        st.close()
    newest = versions.filter(pl.col("version") == pl.col("version").max().over("customer_id"))
    assert newest.height == versions["customer_id"].n_unique()  # one newest version of each household
    assert set(newest["version"].to_list()) == {2} and newest["reason"].n_unique() == 1  # saved once each
    _no_stray_files(out)


@pytest.mark.slow
def test_kill_in_the_pdf_pass_renders_only_the_missing_statements(population: Path, tmp_path: Path) -> None:
    args = ("bill", "run", "--year", YEAR, "--chunk-size", "10", "--workers", "1")
    few = [a for cid in _first_customers(population, 24) for a in ("--customer", cid)]
    ref_store, ref_out = _store_copy(population, tmp_path / "ref-store"), tmp_path / "ref"
    proc = run_cli(*args, *few, "--store", str(ref_store), "--out", str(ref_out))
    assert proc.returncode == 0, proc.stderr

    store, out = _store_copy(population, tmp_path / "store"), tmp_path / "out"
    run = _start(*args, *few, "--store", str(store), "--out", str(out))
    _kill_when(run, lambda: len(all_statements(out, int(YEAR))) >= 6)
    before = {p: p.stat().st_ino for p in all_statements(out, int(YEAR))}
    assert 6 <= len(before) < 24

    again = run_cli(*args, *few, "--store", str(store), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert f"({24 - len(before)} written, {len(before)} already there)" in again.stdout
    assert all(p.stat().st_ino == ino for p, ino in before.items())  # finished statements were not rendered again
    names = ["bills.parquet", "bill_months.parquet"]
    assert _digest(out, names) == _digest(ref_out, names)
    assert _pdf_digests(out) == _pdf_digests(ref_out) and len(_pdf_digests(out)) == 24
    _no_stray_files(out)


def _first_customers(store: Path, n: int) -> list[str]:
    from wattbill.store import open_store

    st = open_store(str(store))
    try:
        return sorted(st.list_customer_ids())[:n]
    finally:
        st.close()


@pytest.mark.slow
def test_dask_engine_gives_the_same_bytes_as_the_local_engine(population: Path, tmp_path: Path) -> None:
    few = [a for cid in _first_customers(population, 30) for a in ("--customer", cid)]
    outs = {}
    for engine in ("local", "dask"):
        store, out = _store_copy(population, tmp_path / f"{engine}-store"), tmp_path / engine
        proc = run_cli("bill", "run", "--year", YEAR, "--chunk-size", "8", "--engine", engine, "--workers", "2",
                       *few, "--store", str(store), "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        assert "30 of 30 households billed" in proc.stdout
        outs[engine] = out
    names = ["bills.parquet", "bill_months.parquet", "not_billed.parquet", "labels_withheld.parquet"]
    assert _digest(outs["dask"], names) == _digest(outs["local"], names)
    assert _pdf_digests(outs["dask"]) == _pdf_digests(outs["local"]) and len(_pdf_digests(outs["local"])) == 30
    _no_stray_files(outs["dask"])


def test_dask_scheduler_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("bill", "run", "--year", YEAR, "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9",
                   "--store", str(tmp_path / "none"), "--out", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_statements_are_sharded_by_customer(tmp_path: Path) -> None:
    path = statement_path(tmp_path, 2025, "0000000042", 3)
    assert path == tmp_path / "pdf" / "2025" / shard_of("0000000042") / "0000000042_v3.pdf"
    assert len({shard_of(f"{i:010d}") for i in range(100_000)}) == 4096
    with pytest.raises(ValueError):
        statement_path(tmp_path, 2025, "../etc", 1)


def test_recalc_compares_a_household_with_the_years_peers_not_with_itself(population: Path, tmp_path: Path) -> None:
    """A run over some customers (``bill recalc``) takes their peers from the year's stored features
    (``features/<year>.parquet`` of the full run): with nothing changed, a recalculated household keeps
    its peer group, percentiles and labels; peers among the recalculated customers alone would be a
    group of 1 (no percentile)."""
    import polars as pl

    from wattbill.pipeline import features_path, run_bills
    from wattbill.store import open_store
    from wattbill.tariffs import load_catalog

    st = open_store(str(_store_copy(population, tmp_path / "store")))
    out, catalog = tmp_path / "out", load_catalog()
    try:
        run_bills(st, catalog, int(YEAR), out_dir=out, pdf=False)
        full = pl.read_parquet(features_path(out, int(YEAR)))
        bills_full = pl.read_parquet(out / "bills.parquet")
        # one household of each of two large peer groups: alone, each would be its own group
        groups = full.filter(pl.col("peer_percentile").is_not_null()).group_by("region", "household_size").agg(
            pl.col("customer_id").first(), pl.len()).sort("len", "customer_id", descending=True)
        few = groups["customer_id"].head(2).to_list()
        assert len(few) == 2 and groups["len"][1] >= 5
        summary = run_bills(st, catalog, int(YEAR), customer_ids=few, out_dir=out, pdf=False, reason="recalc")
        assert summary.new_versions == 0
        after = pl.read_parquet(features_path(out, int(YEAR)))
        bills_after = pl.read_parquet(out / "bills.parquet")
    finally:
        st.close()
    cols = ["customer_id", "peer_group_size", "peer_percentile", "peer_share_valley_pct", "peer_base_load_pct"]
    want = full.filter(pl.col("customer_id").is_in(few)).select(cols).sort("customer_id")
    got = after.filter(pl.col("customer_id").is_in(few)).select(cols).sort("customer_id")
    assert got.equals(want), (got, want)
    assert (got["peer_group_size"] >= 5).all()
    assert after.height == full.height  # the other households' rows are kept as the full run stored them
    assert bills_after.sort("customer_id").equals(bills_full.sort("customer_id"))  # the same labels, too


def test_features_do_not_depend_on_the_chunking(population: Path, tmp_path: Path) -> None:
    """A household's features are the same whichever households share its chunk: channel counts are 0
    (not unknown) for a household without contacts in a store that has contacts, and last year's months
    are 12 nulls without last year's rows, also in a chunk where no household has any (a new user's
    report: chunks of 1 against 1,000 differed for 25 of 300 households)."""
    import polars as pl

    from wattbill.pipeline import features_path, run_bills
    from wattbill.store import open_store
    from wattbill.tariffs import load_catalog

    few = _first_customers(population, 60)
    got = {}
    for size in (1, 60):
        st = open_store(str(_store_copy(population, tmp_path / f"store-{size}")))
        try:
            run_bills(st, load_catalog(), int(YEAR), customer_ids=few, out_dir=tmp_path / f"out-{size}", pdf=False,
                      chunk_size=size)
        finally:
            st.close()
        got[size] = pl.read_parquet(features_path(tmp_path / f"out-{size}", int(YEAR)))
    assert got[1].height == 60
    assert got[1].equals(got[60])
    assert (got[1]["ch_contacts"] == 0).sum() >= 1  # (the case at stake: a household without contacts)


class _FailsAt:
    """A store whose method ``method`` fails at its ``n``-th call (a disk that fills up in the global step)."""

    def __init__(self, store, method: str, n: int) -> None:
        self._store, self._method, self._n, self.calls = store, method, n, 0

    def __getattr__(self, name: str):
        if name != self._method:
            return getattr(self._store, name)

        def call(*args, **kwargs):
            from wattbill.store import StoreUnavailable

            self.calls += 1
            if self.calls == self._n:
                raise StoreUnavailable("the store's disk is full")
            return getattr(self._store, name)(*args, **kwargs)

        return call


@pytest.mark.parametrize(("method", "n", "stored_before"), [("save_bills", 3, 60), ("save_labels", 1, 120)])
def test_a_save_that_fails_in_the_global_step_writes_no_output_file(population: Path, tmp_path: Path, method: str,
                                                                    n: int, stored_before: int) -> None:
    """The output files are written range by range on threads while the chunks' bills are saved: a save
    (of a chunk's bills, or of the labels after them) that fails stops the writers waiting for it, the
    error is the run's, no file is renamed into place and no temporary file stays; the run started again
    gives the bytes of an uninterrupted run."""
    import polars as pl

    from benchmarks.bench_billrun import versioned_tariffs
    from wattbill.pipeline import features_path, run_bills
    from wattbill.store import StoreUnavailable, open_store
    from wattbill.tariffs import load_catalog

    few = _first_customers(population, 120)
    ref = open_store(str(_store_copy(population, tmp_path / "ref-store")))
    try:  # (a price change on 1 July: every bill of the demo's store gets a new version)
        codes = sorted(set(ref.load_customers(few)["tariff"].to_list()))
        catalog = load_catalog(extra_dirs=[versioned_tariffs(tmp_path / "tariffs", codes, f"{YEAR}-07-01")])
        ref_sum = run_bills(ref, catalog, int(YEAR), customer_ids=few, out_dir=tmp_path / "ref", pdf=False,
                            chunk_size=30)
    finally:
        ref.close()
    st = open_store(str(_store_copy(population, tmp_path / "store")))
    out = tmp_path / "out"
    try:
        failing = _FailsAt(st, method, n)
        with pytest.raises(StoreUnavailable, match="disk is full"):
            run_bills(failing, catalog, int(YEAR), customer_ids=few, out_dir=out, pdf=False, chunk_size=30)
        assert failing.calls == n
        written = [p.name for p in out.iterdir() if p.suffix == ".parquet"]
        assert written == [] and not features_path(out, int(YEAR)).parent.exists()
        assert [p for p in out.rglob("*.tmp")] == []
        again = run_bills(st, catalog, int(YEAR), customer_ids=few, out_dir=out, pdf=False, chunk_size=30)
    finally:
        st.close()
    assert (again.billed, again.charge_fen) == (ref_sum.billed, ref_sum.charge_fen)
    assert ref_sum.new_versions == 120
    assert again.new_versions == 120 - stored_before  # (the bills the failed run stored are not stored again)
    names = ["bills.parquet", "bill_months.parquet", "not_billed.parquet", "labels_withheld.parquet"]
    assert _digest(out, names) == _digest(tmp_path / "ref", names)
    assert pl.read_parquet(features_path(out, int(YEAR))).equals(pl.read_parquet(features_path(tmp_path / "ref",
                                                                                                 int(YEAR))))
    _no_stray_files(out)


def test_withheld_labels_are_kept_as_data(population: Path, tmp_path: Path) -> None:
    """The labels a run could not decide are in ``labels_withheld.parquet`` with their reason: the same
    rows as labelling the run's features (``wattbill.label``); a recalculation of some households
    replaces theirs (also when they have none now) and keeps every other household's."""
    import polars as pl

    from wattbill import api
    from wattbill.pipeline import WITHHELD, features_path, run_bills
    from wattbill.store import open_store
    from wattbill.tariffs import load_catalog

    few = _first_customers(population, 90)
    st = open_store(str(_store_copy(population, tmp_path / "store")))
    out = tmp_path / "out"
    try:
        run_bills(st, load_catalog(), int(YEAR), customer_ids=few, out_dir=out, pdf=False, chunk_size=40)
        kept = pl.read_parquet(out / WITHHELD)
        features = pl.read_parquet(features_path(out, int(YEAR)))
        expected = api.label(features.drop("version")).withheld.select(
            "customer_id", pl.lit(int(YEAR), pl.Int32).alias("year"), "code", "reason").sort("customer_id", "code")
        assert kept.height > 0 and kept.equals(expected)
        assert kept["reason"].null_count() == 0
        # a recalculation of two households, one of them with withheld labels, replaces only theirs
        with_some = kept["customer_id"][0]
        again = [with_some, next(c for c in few if c not in set(kept["customer_id"].to_list()))]
        stale = pl.DataFrame({"customer_id": [again[1]], "year": [int(YEAR)], "code": ["stale_label"],
                              "reason": ["left by an earlier run"]}, schema=dict(kept.schema))
        pl.concat([kept, stale]).sort("customer_id", "code").write_parquet(out / WITHHELD)
        run_bills(st, load_catalog(), int(YEAR), customer_ids=again, out_dir=out, pdf=False)
    finally:
        st.close()
    after = pl.read_parquet(out / WITHHELD)
    assert after.filter(pl.col("code") == "stale_label").height == 0  # the recalculated household's row went
    others = ~pl.col("customer_id").is_in(again)
    assert after.filter(others).equals(kept.filter(others))
    assert set(after.filter(pl.col("customer_id") == with_some)["code"]) == set(
        kept.filter(pl.col("customer_id") == with_some)["code"])


def _alive(pid: int) -> bool:
    """The process runs (a zombie left unreaped by this sandbox's init counts as ended)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in fh)
    except FileNotFoundError:
        return False


def test_chunk_processes_end_with_a_killed_run(tmp_path: Path) -> None:
    """A run killed with ``kill -9`` in pass 1 leaves no chunk process working on (a new user's report:
    they finished their chunk and committed it into the checkpoints of the run started again)."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import time\n"
        "from wattbill.engines import LocalEngine\n"
        "if __name__ == '__main__':\n"
        "    LocalEngine.process_min_households = 0\n"
        "    for _ in LocalEngine(2).map_unordered(time.sleep, [120, 120], processes=True):\n"
        "        pass\n", encoding="utf-8")
    parent = subprocess.Popen([str(REPO / ".venv" / "bin" / "python"), str(script)], cwd=REPO)
    try:
        deadline, children = time.monotonic() + 60, []
        while time.monotonic() < deadline and len(children) < 2:
            time.sleep(0.2)
            found = subprocess.run(["pgrep", "-P", str(parent.pid), "-f", "spawn_main"], capture_output=True,
                                   text=True, check=False).stdout.split()
            children = [int(p) for p in found]
        assert len(children) == 2, "the chunk processes did not start"
        time.sleep(2)  # (their initializer has run)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.2)
        assert not any(_alive(p) for p in children)
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in children:  # (should the test fail: no process left sleeping)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_chunk_committed_twice_stays_as_first_committed(tmp_path: Path) -> None:
    """Two processes committing the same chunk (the same inputs, the same results): the second keeps the
    first's and drops its copy; a run's start leaves the temporary folder of a live process alone."""
    import polars as pl

    from wattbill.pipeline import Checkpoints, ChunkOutput, commit_chunk

    frame = pl.DataFrame({"customer_id": ["a"]})
    out = ChunkOutput(0, frame, frame, frame, frame, frame)
    cp = Checkpoints(tmp_path, 2025, "f" * 64)
    commit_chunk(cp.dir, out)
    done = commit_chunk(cp.dir, out)
    assert done.committed and done.counts == (1, 1) and cp.done() == {0}
    assert [p.name for p in cp.dir.iterdir()] == ["chunk-000000"]
    live = cp.dir / f".chunk-000001.{os.getppid()}.tmp"  # (a live process's: this test's parent)
    dead = cp.dir / ".chunk-000002.999999999.tmp"
    live.mkdir()
    dead.mkdir()
    Checkpoints(tmp_path, 2025, "f" * 64)
    assert live.is_dir() and not dead.exists()


@pytest.mark.parametrize("value", ["0", "abc", "-1", ""])
def test_a_thread_setting_polars_cannot_take_is_one_line(tmp_path: Path, value: str) -> None:
    """``POLARS_MAX_THREADS=0`` made polars' thread pool panic (a Rust backtrace and a traceback, a new
    user's report); any value that is not 1 or more is refused in one line before anything runs."""
    proc = run_cli("bill", "run", "--year", YEAR, "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"),
                   env={"POLARS_MAX_THREADS": value})
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("wattbill:")]
    assert errors == [f"wattbill: error: POLARS_MAX_THREADS={value!r}: a whole number of threads, 1 or more "
                      "(or unset: every core, shared among the chunk processes)"]
    assert "Traceback" not in proc.stderr and "panicked" not in proc.stderr
    assert not (tmp_path / "out").exists()
