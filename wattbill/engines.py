"""Where the bill run's chunks run: this process (``local``) or a Dask distributed cluster (``dask``).

An engine maps a task over jobs and yields each result as it completes; the bill run commits each
result (pass 1's checkpoint, pass 2's statements) in the calling process, so only the store must be
reachable from the workers: a TimescaleDB URL, or an embedded store's folder on a filesystem every
worker mounts at the same path. The output folder is written by the calling process alone.

Both engines run the same task functions (:func:`wattbill.pipeline.compute_chunk`,
:func:`wattbill.pipeline.render_statements`) on the same jobs, and the global step (peers, labels,
saving the bills) runs in the calling process, so they give the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from wattbill.errors import WattbillError

J = TypeVar("J")
R = TypeVar("R")
log = logging.getLogger("wattbill.billrun")


#: households per chunk of a bill run by default (``pipeline.run_bills``, ``wattbill bill run --chunk-size``): 1M
#: households on 2 cores with two chunk processes took 94.4 s and 178.2 CPU-s with chunks of 50,000 (each
#: process at 3.9 GB), 104.0 s and 189.7 CPU-s with 25,000 (2.4 GB; 40 chunks to save), 133.5 s and 247.0
#: CPU-s with 100,000 (7.0 GB, half of its CPU in the kernel) (2026-12-02, ``bench_billrun``, back to back)
CHUNK_HOUSEHOLDS = 50_000


#: glibc's malloc in the chunk processes (its environment variables, ``mallopt(3)``): large blocks from the heap,
#: not from a mapping of their own (``M_MMAP_MAX`` 0), and the heap never trimmed, so the next chunk reuses the
#: memory the one before freed (numpy's dense arrays, numba's and the store reader's buffers) instead of the
#: kernel zeroing fresh pages for it again; the heap stays at the largest chunk's need. One process, chunks of
#: 50,000 households, two A/B pairs: 3.84 and 4.11 CPU-s per chunk instead of 4.50 and 4.35, of which system
#: 0.43 and 0.55 instead of 1.10 and 0.87 s, peak 4.1 instead of 4.0 GB (2026-12-02). On this VM the kernel's
#: cost of a fresh page is high (the balloon's free page reporting hands freed memory back to the host).
#: Dask's nannies set ``MALLOC_TRIM_THRESHOLD_`` to 65,536 by default (to give memory back); ours take its
#: place for a ``LocalCluster`` (:class:`DaskEngine`). An operator's own values (or ``GLIBC_TUNABLES``) stand.
CHUNK_PROCESS_MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


def check_polars_threads() -> None:
    """Refuse an operator's ``POLARS_MAX_THREADS`` that polars cannot take (0 makes its thread pool panic
    at the first parallel step, after a long Rust backtrace; text or a negative number is ignored with
    a warning).

    Raises
    ------
    WattbillError
        ``POLARS_MAX_THREADS`` is set and is not a whole number of threads, 1 or more.
    """
    value = os.environ.get("POLARS_MAX_THREADS")
    if value is not None and not (value.strip().isdigit() and int(value) >= 1):
        raise WattbillError(f"POLARS_MAX_THREADS={value!r}: a whole number of threads, 1 or more (or unset: every "
                            "core, shared among the chunk processes)")


def child_environment(processes: int) -> dict[str, str]:
    """The environment of ``processes`` worker processes on this machine (they inherit it): each one's
    share of the cores for polars' thread pool (``POLARS_MAX_THREADS``) and numba's parallel kernels
    (``NUMBA_NUM_THREADS``), and glibc's allocator settings (``CHUNK_PROCESS_MALLOC``); a variable the operator
    has set is left as it is.

    Two chunk processes each with a pool of every core spin for work the other holds: on this 2-core
    machine a 50,000-household chunk took 6 s of wall (and CPU) with both processes at two threads, and
    3.8-4 s with one thread each (2026-12-02, ``benchmarks/bench_billrun.py``); numba's OpenMP threads
    spin-wait the same way between the parallel tariff kernel's calls (2 % of a chunk's samples).

    polars' allocator is left at the command line's default (``wattbill._runtime``): keeping every page a
    chunk frees (jemalloc's ``dirty_decay_ms:-1``) saved system time in one process alone, but in the bill
    run of 1M households the two chunk processes grew to 5.9 GB each instead of 3.9, reading the store's
    rows took 57 s of the chunks' time instead of 34 (the page cache of its files crowded out, we think),
    and the run took 187 CPU-s and 101 s instead of 164 CPU-s and 88 s
    (2026-12-02, ``benchmarks/bench_billrun.py``, one run each, back to back)."""
    env: dict[str, str] = {}
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # (not Linux)
        cores = os.cpu_count() or 1
    share = str(max(1, cores // max(1, processes)))
    if "POLARS_MAX_THREADS" in os.environ:
        check_polars_threads()
    else:
        env["POLARS_MAX_THREADS"] = share
    if "NUMBA_NUM_THREADS" not in os.environ:
        env["NUMBA_NUM_THREADS"] = share
    env.update({k: v for k, v in CHUNK_PROCESS_MALLOC.items() if k not in os.environ})
    return env


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """``env`` in this process's environment while processes are started (they inherit it), then undone."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _die_with_parent(parent: int) -> None:
    """Initializer of the local engine's chunk processes: the kernel ends them when the process that
    started them ends (Linux ``PR_SET_PDEATHSIG``), so a run killed with ``kill -9`` leaves no chunk
    process working on (and committing into the checkpoints of the run started again). Elsewhere, or
    when the parent is already gone, nothing is set or the process ends now."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
            pass
    if os.getppid() != parent:  # (the parent ended before the signal was asked for)
        os._exit(1)


class LocalEngine:
    """Runs the jobs on this machine: pass 1's chunks on ``workers`` processes when there are several
    chunks and enough households (``process_min_households`` per process; else in this process),
    statements rendered by ``workers`` processes.

    Parameters
    ----------
    workers : int
        Processes for pass 1's chunks and for PDF rendering (``bills.render_many``). With one worker, or
        one chunk, everything runs in this process.

    Notes
    -----
    The chunk processes are started with ``spawn`` (polars' thread pool does not survive a fork), open
    the store by its URL once each (``pipeline.StoreRef``) and are stopped when the pass ends, so their
    CPU time is counted in this process's ``RUSAGE_CHILDREN``. Results are the same bytes as in one
    process: each chunk is a pure function of its job.
    """

    #: households per chunk process below which pass 1 stays in this process: a started process costs
    #: ~5 CPU-s (imports, numba's cache) [households]
    process_min_households = 50_000
    #: the jobs' processes can write the run's output folder (pass 1's chunks commit their own checkpoints)
    shares_output = True

    def __init__(self, workers: int = 1) -> None:
        self.render_workers = max(1, int(workers))
        self.pdf_batch = max(50, 10 * self.render_workers)

    def store_ref(self, store: Any) -> Any:
        from wattbill.pipeline import StoreRef

        return StoreRef(store.url, live=store)  # (the live store stays here: a pickled ref is the URL)

    def _size(self, job: Any) -> int:
        customers = getattr(job, "customers", None)
        return customers.height if customers is not None else 0

    def map_unordered(self, fn: Callable[[J], R], jobs: Iterable[J], *, processes: bool = False) -> Iterator[R]:
        """``fn`` of each job, in any order; ``processes``: on ``workers`` processes when there are
        several jobs (CPU-bound jobs such as pass 1's chunks)."""
        jobs = list(jobs)
        n = min(self.render_workers, len(jobs))
        if not processes or n < 2 or sum(self._size(j) for j in jobs) < n * self.process_min_households:
            for job in jobs:
                yield fn(job)
            return
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        with _environ(child_environment(n)), ProcessPoolExecutor(
                max_workers=n, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent,
                initargs=(os.getpid(),)) as pool:
            pending = [pool.submit(fn, job) for job in jobs]
            try:
                while pending:
                    done, rest = wait(pending, return_when=FIRST_COMPLETED)
                    pending = list(rest)
                    for future in done:
                        yield future.result()
            finally:
                for future in pending:
                    future.cancel()

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskEngine:
    """Runs jobs on a Dask distributed cluster: a ``LocalCluster`` of ``workers`` processes (one thread
    each) by default, or the scheduler at ``scheduler`` (``tcp://HOST:PORT``).

    Workers open the store by its URL once per process; an embedded store's folder must be on a
    filesystem every worker mounts at the same absolute path. Results come back to this process, which
    writes the output folder.

    Raises
    ------
    WattbillError
        Dask is not installed (the ``[dask]`` extra), or the scheduler cannot be reached.
    """

    def __init__(self, scheduler: str | None = None, workers: int = 2, *, pdf_batch: int = 100) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - depends on the install
            raise WattbillError("--engine dask needs Dask: pip install 'wattbill[dask]'") from None
        self.cluster = None
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="20s")
            else:
                import dask

                env = child_environment(max(1, workers))
                # glibc reads its malloc settings when a process starts: a nanny's ``env`` is set after
                # (its "pre-spawn" variables before, where Dask's own trim threshold is replaced by ours)
                before = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}),
                          **{k: env.pop(k) for k in CHUNK_PROCESS_MALLOC if k in env}}
                with dask.config.set({"distributed.nanny.pre-spawn-environ": before}):
                    self.cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                                dashboard_address=None, host="127.0.0.1", env=env)
                self.client = Client(self.cluster)
        except (OSError, TimeoutError) as exc:
            raise WattbillError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        self.render_workers = 1  # each Dask worker renders its own batches
        self.shares_output = False  # (workers on other machines need not reach the output folder)
        self.pdf_batch = pdf_batch
        log.info("dask engine: %s", self.client)

    def store_ref(self, store: Any) -> Any:
        from wattbill.pipeline import StoreRef

        url = store.url
        if not url.startswith(("postgresql://", "postgres://")):
            url = str(Path(url).resolve())
        return StoreRef(url)

    def map_unordered(self, fn: Callable[[J], R], jobs: Iterable[J], *, processes: bool = True) -> Iterator[R]:
        """``fn`` of each job on the cluster's workers, in the order they finish (``processes``: always)."""
        from dask.distributed import as_completed

        futures = self.client.map(fn, list(jobs), pure=False)
        for future in as_completed(futures):
            yield future.result()
            future.release()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: the engines ``make_engine`` knows (the CLI's ``--engine`` choices)
ENGINES = ("local", "dask")


def make_engine(name: str, *, workers: int = 1, scheduler: str | None = None) -> LocalEngine | DaskEngine:
    """The engine called ``name`` (``local`` or ``dask``).

    Raises
    ------
    WattbillError
        An unknown engine name.
    """
    if name == "local":
        if scheduler:
            raise WattbillError("--scheduler goes with --engine dask")
        return LocalEngine(workers)
    if name == "dask":
        return DaskEngine(scheduler, workers=max(2, workers) if not scheduler else workers)
    raise WattbillError(f"unknown engine {name!r}: use {' or '.join(ENGINES)}")
