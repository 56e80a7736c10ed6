"""The yearly bill run: store → dense arrays → tariff kernels → diagnosis → labels → bills → PDFs.

The run goes through customers in chunks (``chunk_size``), so memory stays bounded whatever the
population, on one machine (``engine="local"``) or on a Dask cluster (``engine="dask"``, see
:mod:`wattbill.engines`), with the same bytes out. It is idempotent and resumable:

- **pass 1** (bills, the tariff what-if and the features of each chunk) commits each chunk as soon as
  it is computed: a checkpoint folder per chunk under ``<out>/.checkpoints/<year>-<run>/``, written
  under a temporary name and renamed. ``<run>`` is a fingerprint of everything the results depend on
  (year, customers, chunking, the store's ingest ledger, the tariff catalogue), so a run stopped at
  any point and started again redoes only the chunks without a checkpoint, and a run over changed
  data never reuses one. The folder is removed when the run completes;
- **the global step**: peers and labels over the whole run from the chunks' features alone
  (``diagnostics.add_peers``: chunking changes no bill and no label), then each chunk's bills saved on
  their own with ``Store.save_bills``, which stores a new version only when the content changed (a second
  run over the same data, or a run stopped in the middle of its saves and started again, stores nothing
  twice), and ``bills.parquet`` / ``bill_months.parquet`` written range of customers by range
  (``write_merged``) and ``not_billed.parquet`` once, each atomically. The process holds every
  household's features and one chunk's bills and months at a time;
- **pass 2** (the PDFs): a statement per bill version at ``<out>/pdf/<year>/<shard>/<id>_v<version>.pdf``
  (:mod:`wattbill.statements`), written atomically; a run renders only the statements that are not
  there for their version, so nothing is rewritten per batch that grows with the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from wattbill.diagnostics import DenseYear, densify, take_rows
from wattbill.diagnostics.dense import missing_by_month, missing_ranges, missing_ranges_json, month_of_day
from wattbill.engines import CHUNK_HOUSEHOLDS
from wattbill.errors import NothingToBill, UnknownCustomer
from wattbill.formats import day_runs
from wattbill.ingest.limits import limit_text, max_daily_wh
from wattbill.ingest.schemas import REGISTERS
from wattbill.pids import pid_alive
from wattbill.store.base import NOT_BILLED_SCHEMA, content_hashes
from wattbill.store.errors import StoreError
from wattbill.tariffs import Catalog, TariffNotInForceError, UnpricedRegisterError, bill_households

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def _fen_to_decimal_expr(col: str) -> pl.Expr:
    fen = pl.col(col)
    text = pl.format("{}.{}", fen // 100, (fen % 100).cast(pl.Utf8).str.zfill(2))
    return text.cast(pl.Decimal(14, 2))


@dataclass
class ChunkResult:
    bills: pl.DataFrame
    months: pl.DataFrame
    failures: list[dict[str, Any]] = field(default_factory=list)


UNVERIFIED_TARIFF = "wattbill.tariff.unverified"
"""Notice code: a bill run priced households with a tariff file marked ``verified = false``."""


def unverified_notices(used: dict[str, Any]) -> list[dict[str, Any]]:
    """One notice per tariff file used by a run whose figures are not marked verified.

    Parameters
    ----------
    used : dict of str to Tariff
        Each file (``Tariff.origin``) a run priced with, and its tariff.

    Returns
    -------
    list of dict
        ``code`` (``UNVERIFIED_TARIFF``), ``file``, ``tariff`` (code), ``valid_from`` (ISO or None),
        ``message`` (one line naming the file), sorted by file.
    """
    out = []
    for origin, t in sorted(used.items()):
        if t.verified:
            continue
        out.append({
            "code": UNVERIFIED_TARIFF, "file": origin, "tariff": t.code,
            "valid_from": t.valid_from.isoformat() if t.valid_from else None,
            "message": (f"tariff file {origin} ({t.code}"
                        + (f", from {t.valid_from.isoformat()}" if t.valid_from else "")
                        + ") is marked unverified: its figures have not been checked against the notice; "
                        "replace it with the grid company's own file, or set verified = true once checked"),
        })
    return out


# --- households left out of a run: data, not prose -------------------------------------------------

#: the account is not open on any day of the year (closed before it, opened after it)
NOT_OPEN = "wattbill.bill.not_open"
#: open in the year but no consumption stored for it
NO_CONSUMPTION = "wattbill.bill.no_consumption"
#: a stored day beyond what a residential connection can draw (``ingest.limits``), or negative
IMPLAUSIBLE_DAILY = "wattbill.bill.implausible_daily"
#: the customer's tariff code is not in the catalogue (or not valid in the year)
UNKNOWN_TARIFF = "wattbill.bill.unknown_tariff"
#: a register with kWh but no price for its period (design.md, tariff rule 5)
UNPRICED_REGISTER = "wattbill.bill.unpriced_register"
#: more open days without a read than a bill may leave out (``Settings.bill_max_missing_days``): the
#: meter stopped reporting, or started late; its use on those days would be in no bill
INCOMPLETE_READS = "wattbill.bill.incomplete_reads"
#: billing the household raised an error (isolated to this household by bisection)
CALCULATION_FAILED = "wattbill.bill.calculation_failed"
#: the diagnosis (features, tariff what-if) of the household raised an error
DIAGNOSIS_FAILED = "wattbill.bill.diagnosis_failed"
#: the bill is stored but its PDF could not be built or rendered
RENDER_FAILED = "wattbill.pdf.render_failed"

#: codes that ``--strict`` does not count (nothing to bill: not a fault)
NOT_A_FAULT = frozenset({NOT_OPEN})



def left_out(customer_id: str, year: int, code: str, detail: str, **evidence: Any) -> dict[str, Any]:
    """One household left out of a run: ``NOT_BILLED_SCHEMA`` row (detail on one line, evidence JSON)."""
    text = " ".join(str(detail).split())
    return {"customer_id": customer_id, "year": year, "code": code, "detail": text[:500],
            "evidence": json.dumps(evidence, default=str, ensure_ascii=False, sort_keys=True)}


def not_billed_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """``NOT_BILLED_SCHEMA`` frame of ``left_out`` rows, sorted by customer and code."""
    if not rows:
        return pl.DataFrame(schema=NOT_BILLED_SCHEMA)
    return pl.DataFrame(rows, schema=NOT_BILLED_SCHEMA).sort("customer_id", "code")


def screen_daily(daily: pl.DataFrame, year: int) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """The rows of customers whose stored days are all physically possible, and a ``left_out`` record
    for each other customer (``IMPLAUSIBLE_DAILY``, with the worst day as evidence).

    A value beyond ``ingest.limits.max_daily_wh`` (a register written in Wh, a file loaded before the
    limit existed or with a raised limit) would stop the kernels or bill nonsense; negative values
    cannot be consumption. One comparison per value; no grouping unless a row is found.
    """
    if daily.height == 0:
        return daily, []
    limit = max_daily_wh()
    cols = [c for c in ("wh_total", *[f"wh_{r}" for r in REGISTERS]) if c in daily.columns]
    # each column's extremes first (one reduction per column, no row mask): a run's rows are almost
    # always all possible, and the row-level mask is then not needed
    ext = daily.select(*[pl.col(c).max().alias(f"hi_{c}") for c in cols],
                       *[pl.col(c).min().alias(f"lo_{c}") for c in cols]).row(0)
    if all(v is None or (0 <= v <= limit) for v in ext):
        return daily, []
    hi = pl.max_horizontal([pl.col(c) for c in cols])
    lo = pl.min_horizontal([pl.col(c) for c in cols])
    bad = daily.select(((hi > limit) | (lo < 0)).fill_null(False).alias("b"))["b"]
    if not bad.any():
        return daily, []
    worst = (
        daily.filter(bad)
        .sort("wh_total", descending=True)
        .group_by("customer_id", maintain_order=True)
        .agg(pl.col("day").first(), pl.col("meter_id").first(), pl.col("wh_total").first(), pl.len().alias("days"))
    )
    out = [
        left_out(r["customer_id"], year, IMPLAUSIBLE_DAILY,
                 f"{r['days']} day(s) beyond {limit_text(limit)} or negative, e.g. {r['wh_total'] / 1000:,.3f} kWh "
                 f"on {r['day']} (meter {r['meter_id']})",
                 day=r["day"], meter_id=r["meter_id"], wh_total=r["wh_total"], days=r["days"], limit_wh=limit)
        for r in worst.iter_rows(named=True)
    ]
    return daily.filter(~pl.col("customer_id").is_in(worst["customer_id"].implode())), out


def max_missing_days() -> int:
    """The most open days without a read that a bill may leave out (``WATTBILL_BILL_MAX_MISSING_DAYS``)."""
    from wattbill.settings import get_settings

    return int(get_settings().bill_max_missing_days)


def bill_chunk(
    customers: pl.DataFrame, dense: DenseYear, catalog: Catalog, year: int, missing_limit: int | None = None,
) -> ChunkResult:
    """Bill one chunk of customers (rows of ``customers`` align with ``dense``).

    Each household's tariff is the schedule of its code for ``year`` (``Catalog.schedule``): every
    day priced by the version in force that day (``tariffs.reference`` rule 6).

    A bill states the open days it has no read for (``missing_days``, per bill and per month, and
    ``missing_ranges``: JSON ``[[first, last], ...]`` ISO dates), computed once here
    (``diagnostics.dense.missing_by_month``). A household with more such days than ``missing_limit``
    (default ``WATTBILL_BILL_MAX_MISSING_DAYS``, 31: one month of reads) is not billed
    (``INCOMPLETE_READS``, with the runs of days as evidence): a year's statement that leaves out more
    than a month of use would understate the year's use and charge.
    """
    of, ol = dense.open_first.astype(np.int64), dense.open_last.astype(np.int64)
    sizes = customers["household_size"].fill_null(1).to_numpy().astype(np.int64)
    tariffs = customers["tariff"].to_list()
    bill_rows: list[pl.DataFrame] = []
    month_rows: list[pl.DataFrame] = []
    failures: list[dict[str, Any]] = []
    ids_all = customers["customer_id"].to_list()
    month_index = month_of_day(year)
    if dense.regs is None:
        raise ValueError("billing needs the daily registers: densify(..., with_regs=True)")
    is_open = (of >= 0) & (of <= ol)
    has_use: np.ndarray = np.asarray(dense.total.any(axis=1) | dense.regs.any(axis=(1, 2)))
    gap_month = missing_by_month(dense.present, dense.open_first, dense.open_last, year)
    gap_days = gap_month.sum(axis=1)
    limit = max_missing_days() if missing_limit is None else int(missing_limit)
    complete = gap_days <= limit
    billable = has_use & is_open & complete
    for i in np.flatnonzero(~billable):
        if not is_open[i]:
            failures.append(left_out(ids_all[i], year, NOT_OPEN, f"the account is not open in {year}"))
        elif not has_use[i]:
            failures.append(left_out(ids_all[i], year, NO_CONSUMPTION, f"no consumption stored for {year}"))
        else:
            ranges = missing_ranges(dense.present[i], int(of[i]), int(ol[i]), year)
            failures.append(left_out(
                ids_all[i], year, INCOMPLETE_READS,
                f"{int(gap_days[i])} of {int(ol[i] - of[i] + 1)} open days have no read ({day_runs(ranges)}); "
                f"a bill may leave out at most {limit}",
                missing_days=int(gap_days[i]), open_days=int(ol[i] - of[i] + 1), limit=limit,
                missing_ranges=[[a.isoformat(), b.isoformat()] for a, b in ranges],
            ))
    for code in sorted(set(tariffs)):
        rows = np.nonzero((np.array(tariffs) == code) & billable)[0]
        if not len(rows):
            continue
        try:
            tariff = catalog.schedule(code, year)
        except KeyError as exc:
            failures += [left_out(ids_all[i], year, UNKNOWN_TARIFF, f"tariff {code!r}: {exc}", tariff=code)
                         for i in rows]
            continue
        while len(rows):
            try:
                yb = bill_households(
                    tariff, year, take_rows(dense.total, rows), take_rows(dense.regs, rows), of[rows], ol[rows],
                    sizes[rows],
                )
                break
            except (UnpricedRegisterError, TariffNotInForceError) as exc:  # an error for that household, not a zero
                bad = set(int(h) for h in (exc.households or range(len(rows))))
                failures += [left_out(ids_all[rows[h]], year, UNPRICED_REGISTER, str(exc), tariff=code) for h in bad]
                rows = np.array([r for k, r in enumerate(rows) if k not in bad], dtype=np.int64)
        if not len(rows):
            continue
        ids = [ids_all[i] for i in rows]
        est = dense.estimated[rows]
        est_days = est.sum(axis=1)
        est_month = np.stack([est[:, month_index == m].sum(axis=1) for m in range(12)], axis=1)
        gaps = gap_month[rows]
        gap_json = missing_ranges_json(take_rows(dense.present, rows), of[rows], ol[rows], year)
        bill_rows.append(_quantities_frame(ids, year, code, yb.month_wh.sum(1), yb.month_wh_reg.sum(1),
                                           yb.month_wh_tier.sum(1), yb.year_fen, est_days, None,
                                           gaps.sum(axis=1), gap_json))
        n = len(rows)
        month_rows.append(
            _quantities_frame(
                np.repeat(ids, 12).tolist(), year, code, yb.month_wh.reshape(-1),
                yb.month_wh_reg.reshape(n * 12, 4), yb.month_wh_tier.reshape(n * 12, 3),
                yb.month_fen.reshape(-1), est_month.reshape(-1), np.tile(np.arange(1, 13), n),
                gaps.reshape(-1),
            )
        )
    bills = pl.concat(bill_rows) if bill_rows else pl.DataFrame()
    months = pl.concat(month_rows) if month_rows else pl.DataFrame()
    return ChunkResult(bills, months, failures)


def _quantities_frame(
    ids: list[str], year: int, code: str, wh: np.ndarray, wh_reg: np.ndarray, wh_tier: np.ndarray,
    fen: np.ndarray, est: np.ndarray, month: np.ndarray | None, missing: np.ndarray,
    ranges: list[str] | None = None,
) -> pl.DataFrame:
    cols: dict[str, Any] = {"customer_id": ids, "year": np.full(len(ids), year, dtype=np.int32)}
    if month is not None:
        cols["month"] = month.astype(np.int8)
    cols["tariff"] = [code] * len(ids)
    cols["kwh_total"] = wh / 1000
    for k, r in enumerate(REGISTERS):
        cols[f"kwh_{r}"] = wh_reg[:, k] / 1000
    for t in range(3):
        cols[f"kwh_tier{t + 1}"] = wh_tier[:, t] / 1000
    cols["charge_fen"] = fen.astype(np.int64)
    cols["estimated_days"] = est.astype(np.int32)
    cols["missing_days"] = missing.astype(np.int32)
    if ranges is not None:
        cols["missing_ranges"] = pl.Series(ranges, dtype=pl.Utf8)
    frame = pl.DataFrame(cols)
    return frame.with_columns(_fen_to_decimal_expr("charge_fen").alias("charge_total"))



log = logging.getLogger("wattbill.billrun")

CHECKPOINTS = ".checkpoints"
NOT_BILLED = "not_billed.parquet"


@dataclass
class RunSummary:
    year: int
    households: int
    billed: int
    kwh_total: float
    charge_fen: int
    new_versions: int
    labels: dict[str, int]
    failures: list[dict[str, Any]]  # left_out rows (NOT_BILLED_SCHEMA), also in ``not_billed``
    notices: list[dict[str, Any]]  # e.g. unverified tariff files (``unverified_notices``), once per file
    pdfs_written: int
    pdfs_skipped: int
    out_dir: Path | None
    bills_path: Path | None
    months_path: Path | None
    pdf_dir: Path | None
    chunks: int = 0
    chunks_computed: int = 0
    chunks_reused: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    not_billed: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=NOT_BILLED_SCHEMA))
    not_billed_path: Path | None = None
    #: households listed in ``not_billed_path`` (the run's and, kept by ``keep_others``, the other households')
    not_billed_households: int = 0

    @property
    def faults(self) -> int:
        """Households left out for a fault of their data (not counting accounts not open in the year)."""
        return self.not_billed.filter(~pl.col("code").is_in(sorted(NOT_A_FAULT))).height

@dataclass
class ChunkOutput:
    """What pass 1 computes for one chunk of customers (the unit of a checkpoint)."""

    index: int
    customers: pl.DataFrame  # the billed customers of the chunk (CUSTOMER_SCHEMA)
    bills: pl.DataFrame
    months: pl.DataFrame
    features: pl.DataFrame
    failures: pl.DataFrame  # households left out (NOT_BILLED_SCHEMA)
    seconds: dict[str, float] = field(default_factory=dict)
    #: committed by the process that computed it (``Pass1Job.checkpoint_dir``): the frames are then
    #: empty and ``counts`` gives the bills and the households left out
    committed: bool = False
    counts: tuple[int, int] = (0, 0)
    #: the computing process's CPU for this chunk [s], its peak resident memory so far [MiB] and its pid
    usage: dict[str, float] = field(default_factory=dict)

    def billed_and_failed(self) -> tuple[int, int]:
        """Bills and households left out of the chunk (also once committed elsewhere)."""
        return self.counts if self.committed else (self.bills.height, self.failures.height)


_PARTS = ("customers", "bills", "months", "features", "failures")


def commit_chunk(folder: Path, out: ChunkOutput) -> ChunkOutput:
    """Commit one chunk's results into the run's checkpoint ``folder`` (``chunk-<index>/``, one Parquet file
    per part, renamed into place whole: a chunk is committed or absent); returns what the caller needs
    of it then (``ChunkOutput.committed``). Safe from several processes at once (each writes under a
    temporary name of its own): a chunk another process has committed meanwhile (the same inputs, so
    the same results) stays as it is and this one's copy is dropped."""
    tmp = folder / f".chunk-{out.index:06d}.{os.getpid()}.tmp"
    final = folder / f"chunk-{out.index:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for part in _PARTS:
        getattr(out, part).write_parquet(tmp / f"{part}.parquet", compression="lz4")  # (read back once)
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return ChunkOutput(out.index, out.customers.clear(), out.bills.clear(), out.months.clear(), out.features.clear(),
                       out.failures.clear(), out.seconds, True, (out.bills.height, out.failures.height), out.usage)


@dataclass(frozen=True)
class StoreRef:
    """How a task reaches the store: the live store in this process (local engine) or its URL (workers
    of a Dask cluster open it once per process)."""

    url: str
    live: Any = None

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # another process reaches the store by its URL, never by this process's live object
        return (StoreRef, (self.url,))

    def open(self) -> Any:
        if self.live is not None:
            return self.live
        return _worker_store(self.url)


_WORKER_STORES: dict[str, Any] = {}


def _worker_store(url: str) -> Any:
    from wattbill.store import open_store

    if url not in _WORKER_STORES:
        _WORKER_STORES[url] = open_store(url)
    return _WORKER_STORES[url]


#: what the diagnosis reads of last year's rows (``diagnostics.features._last_year``: months and the
#: year's total): a third of the memory and of the reading of the whole rows
LAST_YEAR_COLUMNS = ("customer_id", "day", "wh_total")


@dataclass(frozen=True)
class Pass1Job:
    store: StoreRef
    catalog: Catalog
    year: int
    index: int
    customers: pl.DataFrame  # the chunk, sorted by (tariff, customer_id)
    missing_limit: int | None = None  # ``bill_chunk``'s (the run's setting, sent to every worker)
    interactions_known: bool = True  # the store holds service contacts (``Store.has_interactions``)
    #: the run's checkpoint folder when the chunk's process can write it (the local engine's processes):
    #: the chunk is committed there and not sent back whole (``commit_chunk``)
    checkpoint_dir: str | None = None


def compute_chunk(job: Pass1Job) -> ChunkOutput:
    """Pass 1 for one chunk: its rows from the store, bills, the tariff what-if and the features.

    A pure function of the store's rows and the catalogue, run in this process or on a Dask worker.
    A household whose days are beyond what a connection can draw (``screen_daily``), or whose billing
    or diagnosis raises (isolated by bisection, ``_bill_isolated``), is left out with its reason code and
    evidence (``failures``, ``NOT_BILLED_SCHEMA``); the other households of the chunk are billed.
    """
    from wattbill import insight

    cpu_start, system_start, _ = _usage()
    store = job.store.open()
    chunk, year = job.customers, job.year
    ids = chunk["customer_id"].to_list()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    daily = store.load_daily(year, ids, sort=False)  # (grouped by customer; the kernels take any order)
    seconds["read"] = time.perf_counter() - t0
    daily, failures = screen_daily(daily, year)
    if failures:
        gone = pl.Series([f["customer_id"] for f in failures], dtype=pl.Utf8).implode()
        chunk = chunk.filter(~pl.col("customer_id").is_in(gone))
    parts: list[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]] = []
    if chunk.height:
        t0 = time.perf_counter()
        kept = chunk["customer_id"].to_list()
        last_year = store.load_daily(year - 1, kept, sort=False, columns=LAST_YEAR_COLUMNS)
        payments = store.load_payments(customer_ids=kept)
        interactions = _interactions(store, year, kept, job.interactions_known)
        t1 = time.perf_counter()
        seconds["read"] += t1 - t0
        parts = _bill_isolated(chunk, daily, last_year, payments, job.catalog, year, failures, insight, interactions,
                               job.missing_limit)
        seconds["bill and diagnose"] = time.perf_counter() - t1
    if parts:
        billed, bills, months, features = (pl.concat([p[k] for p in parts], how="diagonal_relaxed") for k in range(4))
    else:
        billed, bills, months, features = chunk.clear(), pl.DataFrame(), pl.DataFrame(), pl.DataFrame()
    out = ChunkOutput(job.index, billed, bills, months, features, not_billed_frame(failures), seconds)
    out = commit_chunk(Path(job.checkpoint_dir), out) if job.checkpoint_dir else out
    cpu, system, peak = _usage()
    out.usage = {"cpu_s": cpu - cpu_start, "system_s": system - system_start, "peak_mib": peak,
                 "pid": float(os.getpid())}
    return out


class Checkpoints:
    """Pass 1's results, one folder per committed chunk, under ``<out>/.checkpoints/<year>-<run>/``."""

    def __init__(self, out_dir: Path, year: int, fingerprint: str) -> None:
        root = out_dir / CHECKPOINTS
        self.dir = root / f"{year}-{fingerprint[:16]}"
        if root.is_dir():  # checkpoints of other inputs can never be reused: the data or the catalogue changed
            for other in root.glob(f"{year}-*"):
                if other != self.dir:
                    shutil.rmtree(other, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        for stray in self.dir.glob(".*.tmp"):  # a chunk killed mid-commit (not one a live process writes now)
            pid = stray.name.split(".")[-2]
            if not (pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid))):
                shutil.rmtree(stray, ignore_errors=True)

    def _chunk_dir(self, index: int) -> Path:
        return self.dir / f"chunk-{index:06d}"

    def done(self) -> set[int]:
        return {int(p.name.split("-")[1]) for p in self.dir.glob("chunk-*")}

    def commit(self, out: ChunkOutput) -> None:
        """Commit a chunk computed here or sent back whole (``commit_chunk``); one its own process
        committed is already there."""
        if not out.committed:
            commit_chunk(self.dir, out)

    def part_path(self, index: int, part: str) -> Path:
        """The file of one part (``_PARTS``) of a committed chunk."""
        return self._chunk_dir(index) / f"{part}.parquet"

    def load_part(self, index: int, part: str) -> pl.DataFrame:
        """One part (``_PARTS``) of a committed chunk."""
        return pl.read_parquet(self.part_path(index, part))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        root = self.dir.parent
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()


class _ChunkParts:
    """Pass 1's results of each chunk, read one part at a time when the global step needs it (from the
    checkpoints; from memory for a run without an output folder), and each chunk's bills and months as
    saved (``final``: with the run's labels and the versions the store gave them). The global step then
    holds every household's features (peers and labels are over the whole run) and versions, but only
    one chunk's bills and months."""

    def __init__(self, checkpoints: Checkpoints | None, outputs: dict[int, ChunkOutput]) -> None:
        self.checkpoints, self.outputs = checkpoints, outputs
        self.per_customer: pl.DataFrame | None = None  # the run's labels (``Labelled.per_customer``)
        self.versions: pl.DataFrame | None = None  # customer_id, version of every saved bill

    def get(self, index: int, part: str) -> pl.DataFrame:
        if self.checkpoints is not None:
            return self.checkpoints.load_part(index, part)
        frame: pl.DataFrame = getattr(self.outputs[index], part)
        return frame

    def all_features(self, indexes: Sequence[int]) -> pl.DataFrame:
        """The features of the chunks ``indexes``, in that order, read in one scan (not a frame per chunk
        and their concatenation: half the peak memory of the global step)."""
        if self.checkpoints is None:
            return pl.concat([self.outputs[k].features for k in indexes], how="diagonal_relaxed")
        files = [self.checkpoints.part_path(k, "features") for k in indexes]
        try:
            return pl.scan_parquet(files).collect()
        except pl.exceptions.PolarsError:  # (chunks whose columns differ: one frame each)
            return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")

    def labelled(self, bills: pl.DataFrame) -> pl.DataFrame:
        """A chunk's bills with the run's labels (an empty list for a household without one); the run's
        labels narrowed to the chunk's range of customers first (a join with every household's labels
        cost 0.6 s per chunk of 50,000)."""
        assert self.per_customer is not None
        labels = self.per_customer
        if bills.height:
            ids = bills.get_column("customer_id")
            labels = labels.filter(pl.col("customer_id").is_between(pl.lit(ids.min(), pl.Utf8),
                                                                    pl.lit(ids.max(), pl.Utf8)))
        return bills.join(labels, on="customer_id", how="left").with_columns(
            pl.col("labels").fill_null(pl.lit([], pl.List(pl.Utf8))))

    def to_save(self, index: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """A chunk's bills (with the run's labels), months and their ``content_hashes``, as
        ``Store.save_bills`` takes them."""
        bills, months = self.labelled(self.get(index, "bills")), self.get(index, "months")
        return bills, months, content_hashes(bills, months)

    def final(self, index: int, part: str, versions: pl.DataFrame | None = None,
              labelled: pl.DataFrame | None = None) -> pl.DataFrame:
        """The chunk's ``bills`` or ``months`` as saved, sorted (an empty frame for a chunk with none
        billed), with ``versions`` (customer_id, version; by default those of the whole run);
        ``labelled``: the chunk's bills with their labels, when the caller has them."""
        versions = self.versions if versions is None else versions
        assert versions is not None
        frame = labelled if labelled is not None and part == "bills" else self.get(index, part)
        if not frame.height:
            return pl.DataFrame()
        if part == "bills":
            if labelled is None:
                frame = self.labelled(frame)
            return frame.join(versions, on="customer_id", how="left").sort("customer_id", "year")
        return frame.join(versions, on="customer_id", how="left").sort("customer_id", "year", "month")


def _write_outputs(pool: ThreadPoolExecutor, parts: _ChunkParts,
                   saved: dict[int, Future[list[pl.DataFrame]]], stored: Future[None],
                   features: pl.DataFrame, out_dir: Path, year: int, firsts: Sequence[str],
                   paths: tuple[Path, Path]) -> list[Future[Any]]:
    """Start writing ``bills.parquet``, ``bill_months.parquet`` and the features on ``pool``, range by range
    (``write_merged``: the run's chunks are ranges of customers in order, the rows other runs left in a
    file merged in by ``keep_others``' rule); range ``k`` waits for ``saved[k]``, the versions the store
    gave chunk ``k``, after its bills with their labels (``[labelled, versions]``: the bills' writer takes
    them out once written; a chunk not in ``saved`` has no bills); the last range waits for ``stored`` (the
    store holds the run's bills, labels and households not billed), so that no file is renamed into place
    before. ``firsts``: the first customer of each chunk (``write_merged``). Call it once the first chunk
    is saved."""
    first = min(saved)

    def versions_of(k: int) -> pl.DataFrame | None:
        if k == len(firsts) - 1:
            stored.result()
        return saved[k].result()[-1] if k in saved else None

    def final_of(name: str, k: int, keep: bool = False) -> pl.DataFrame:
        if k == len(firsts) - 1 and not keep:
            stored.result()
        if k not in saved:
            return pl.DataFrame()
        box = saved[k].result()
        labelled = box[0] if keep or name != "bills" else box.pop(0)  # (let go once written)
        return parts.final(k, name, box[-1], labelled)

    writes: list[Future[Any]] = [
        pool.submit(write_merged, path, year, keys, firsts, functools.partial(final_of, name),
                    dict(final_of(name, first, keep=True).schema))
        for path, name, keys in ((paths[0], "bills", ["customer_id", "year"]),
                                 (paths[1], "months", ["customer_id", "year", "month"]))
    ]
    writes.append(pool.submit(save_features, out_dir, year, features, versions_of, firsts))
    return writes


def run_fingerprint(store: Any, catalog: Catalog, year: int, customers: pl.DataFrame, chunk_size: int) -> str:
    """SHA-256 of what pass 1's results depend on: the year, the customers and their chunking, every file
    the store has ingested (its ledger) and the tariff catalogue."""
    from wattbill import __version__

    h = hashlib.sha256()
    h.update(f"{__version__}|{year}|{chunk_size}|{max_missing_days()}|".encode())
    h.update(customers.hash_rows(seed=0, seed_1=1, seed_2=2, seed_3=3).to_numpy().tobytes())
    ledger = store.load_ledger()
    for sha in sorted(ledger["sha256"].to_list()) if ledger.height else []:
        h.update(sha.encode())
    for code in catalog.codes():
        for version in catalog.versions(code):
            h.update(repr(version).encode())
    return h.hexdigest()


def run_bills(
    store: Any,
    catalog: Catalog,
    year: int,
    *,
    customer_ids: Sequence[str] | None = None,
    out_dir: Path | None = None,
    pdf: bool = True,
    workers: int = 1,
    reason: str = "bill run",
    chunk_size: int = CHUNK_HOUSEHOLDS,
    progress: Progress | None = None,
    engine: Any = None,
) -> RunSummary:
    """Bill ``year`` for the customers of ``store`` (all, or ``customer_ids``).

    Pass 1, chunk by chunk, each chunk committed as it is computed (with ``out_dir``): bills, the tariff
    what-if and the features. Then peers and labels over the whole run, and the bills saved (a new
    version only where the content changed). Pass 2, chunk by chunk: the statements that are not there
    yet for their bill version. ``engine``: where the chunks run (:class:`wattbill.engines.LocalEngine`
    by default, or a :class:`wattbill.engines.DaskEngine`); every engine gives the same bytes.

    Every household of the run that is not billed is kept with its reason (``save_not_billed``), also
    when none is billed: the summary then has ``billed == 0`` and no bills file is written or changed.

    Raises
    ------
    UnknownCustomer
        A customer of ``customer_ids`` is not in the store.
    NothingToBill
        No customers in the store.
    """
    from wattbill import insight
    from wattbill.engines import LocalEngine

    engine = engine or LocalEngine(workers)
    progress = progress or (lambda stage, done, total: None)
    stage_seconds: dict[str, float] = {}
    t_start = time.perf_counter()
    customers = store.load_customers(list(customer_ids) if customer_ids else None)
    if customer_ids:
        missing = sorted(set(customer_ids) - set(customers["customer_id"].to_list()))
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise UnknownCustomer(f"unknown customer {missing[0]}{more}")
    if customers.height == 0:
        raise NothingToBill("no customers in the store: ingest a customers file first")
    customers = customers.sort("customer_id")
    total_n = customers.height

    # pass 1: bills and features, chunk by chunk, each committed as soon as it is computed
    # (within a chunk, customers by tariff: each tariff's households are one contiguous range of the
    # dense arrays, which the kernels then read in place, without copies)
    known = bool(store.has_interactions())
    checkpoints = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(out_dir)
        checkpoints = Checkpoints(out_dir, year, run_fingerprint(store, catalog, year, customers, chunk_size))
    # the local engine's chunk processes commit their chunks themselves (a chunk's frames are not sent back
    # and written here, beside the chunk processes, on the same cores); Dask's workers send them back, since
    # they may not reach the output folder
    commit_where = str(checkpoints.dir) if checkpoints and getattr(engine, "shares_output", False) else None
    jobs = [
        Pass1Job(engine.store_ref(store), catalog, year, k, customers.slice(lo, chunk_size).sort("tariff", "customer_id"),
                 max_missing_days(), known, commit_where)
        for k, lo in enumerate(range(0, total_n, chunk_size))
    ]
    reused = checkpoints.done() if checkpoints else set()
    outputs: dict[int, ChunkOutput] = {}
    done = sum(jobs[k].customers.height for k in reused if k < len(jobs))
    progress("bill", done, total_n)
    if reused:
        log.info("pass 1: %d of %d chunks from checkpoints", len(reused), len(jobs))
    for out in engine.map_unordered(compute_chunk, [j for j in jobs if j.index not in reused], processes=True):
        if checkpoints:
            checkpoints.commit(out)
        else:
            outputs[out.index] = out
        for stage, s in out.seconds.items():
            stage_seconds[stage] = stage_seconds.get(stage, 0.0) + s
        done += jobs[out.index].customers.height
        log.info("chunk %d/%d: %d households, %d billed, %d not billed; %s; its process %d: CPU %.1f s "
                 "(system %.1f s), peak %s MiB; this process: memory %s", out.index + 1, len(jobs),
                 jobs[out.index].customers.height, *out.billed_and_failed(),
                 ", ".join(f"{k} {v:.2f} s" for k, v in out.seconds.items()), int(out.usage.get("pid", 0)),
                 out.usage.get("cpu_s", 0.0), out.usage.get("system_s", 0.0),
                 f"{out.usage.get('peak_mib', 0.0):,.0f}", _memory())
        progress("bill", done, total_n)
    computed = len(jobs) - len(reused)

    parts = _ChunkParts(checkpoints, outputs)

    # the global step: peers and labels over the whole run, from the chunks' features alone; then each
    # chunk's bills saved, written out and let go (memory: one chunk's bills and months at a time)
    t = time.perf_counter()
    failures = [f for k in range(len(jobs)) for f in parts.get(k, "failures").iter_rows(named=True)]
    billed_idx = [k for k in range(len(jobs)) if parts.get(k, "customers").height]
    run_ids = customers["customer_id"].to_list()
    if not billed_idx:  # every household left out: their reasons are the run's result, kept as any run's
        not_billed_path, not_billed_kept = save_not_billed(store, year, run_ids, failures, out_dir)
        if checkpoints:
            checkpoints.remove()
        stage_seconds["total"] = time.perf_counter() - t_start
        return RunSummary(
            year=year, households=total_n, billed=0, kwh_total=0.0, charge_fen=0, new_versions=0, labels={},
            failures=failures, notices=[], pdfs_written=0, pdfs_skipped=0, out_dir=out_dir, bills_path=None,
            months_path=None, pdf_dir=None, chunks=len(jobs), chunks_computed=computed,
            chunks_reused=len(jobs) - computed, stage_seconds=stage_seconds,
            not_billed=not_billed_frame(failures), not_billed_path=not_billed_path,
            not_billed_households=not_billed_kept["customer_id"].n_unique(),
        )
    # a run over some customers (a recalculation) compares them with the year's other households, as
    # the full run stored them, not only with each other
    others = None
    if customer_ids and out_dir is not None and features_path(out_dir, year).exists():
        others = pl.read_parquet(features_path(out_dir, year))
    labelled = insight.label_run([parts.all_features(billed_idx)], others)
    del others
    # the labels the run could not decide (with their reason) go to ``labels_withheld.parquet`` first, on
    # the writers' pool, and are let go once written (280 MB at 1M)
    withheld = labelled.withheld
    labelled = dataclasses.replace(labelled, withheld=labelled.withheld.clear())
    parts.per_customer = labelled.per_customer
    log.info("peers and labels: %.2f s; memory %s", time.perf_counter() - t, _memory())
    # each chunk's bills saved on their own (``Store.save_bills``: a new version only where the content
    # changed; an append to the store): a run stopped here and started again stores nothing twice. The
    # output files are written range by range on threads while the next chunks are saved (the saves hash
    # in Python, the writes compress in pyarrow without the GIL): a writer waits for the versions of the
    # chunk whose range it writes.
    new_versions = billed = charge_fen = 0
    kwh_total = 0.0
    codes: set[str] = set()
    versions_of: list[pl.DataFrame] = []
    saved: dict[int, Future[list[pl.DataFrame]]] = {k: Future() for k in billed_idx}
    # the writers rename their files into place only once the store holds everything (their last range
    # waits for it): a run whose store refuses a save leaves the files as they were
    stored: Future[None] = Future()
    bills_path = months_path = pdf_dir = None
    writes: list[Future[Any]] = []
    firsts = [str(j.customers["customer_id"].min()) for j in jobs]  # (each chunk's range, for the writers)
    # (the files' writers: withheld labels, bills, months, features; and the next chunk's bills read, labelled
    # and hashed while this one's are stored)
    with ThreadPoolExecutor(max_workers=4) as pool, ThreadPoolExecutor(max_workers=1) as ahead:
        if out_dir is not None:
            writes.append(pool.submit(save_withheld, out_dir, year, withheld, labelled.features, firsts,
                                      stored.result))
        del withheld
        try:
            upcoming = ahead.submit(parts.to_save, billed_idx[0])
            for i, k in enumerate(billed_idx):
                chunk_bills, chunk_months, hashes = upcoming.result()
                if i + 1 < len(billed_idx):
                    upcoming = ahead.submit(parts.to_save, billed_idx[i + 1])
                result = store.save_bills(year, chunk_bills, chunk_months, reason, hashes)
                del chunk_months, hashes
                new_versions += int(result["new_version"].sum())
                versions = result.select("customer_id", "version")
                saved[k].set_result([chunk_bills, versions])
                versions_of.append(versions)
                billed += chunk_bills.height
                kwh_total += float(chunk_bills["kwh_total"].sum())
                charge_fen += int(chunk_bills["charge_fen"].sum())
                codes.update(chunk_bills["tariff"].unique().to_list())
                del chunk_bills, result  # (the writers hold the chunk's bills until they have written them)
                if out_dir is not None and bills_path is None:
                    bills_path, months_path = out_dir / "bills.parquet", out_dir / "bill_months.parquet"
                    writes += _write_outputs(pool, parts, saved, stored, labelled.features, out_dir, year, firsts,
                                             (bills_path, months_path))
            parts.versions = versions = pl.concat(versions_of)
            del versions_of
            log.info("bills saved: %.2f s; memory %s", time.perf_counter() - t, _memory())
            # the store takes the labels (with the versions just saved) and the households not billed while
            # the writers write
            if labelled.assigned.height:
                store.save_labels(year, None, labelled.assigned.join(versions, on="customer_id", how="left"))
            not_billed_path, not_billed_kept = save_not_billed(store, year, run_ids, failures, out_dir)
            stored.set_result(None)
        except BaseException as exc:  # the writers waiting for a save end (their files are not renamed)
            waited: list[Future[Any]] = [*saved.values(), stored]
            for f in waited:
                if not f.done():
                    f.set_exception(exc)
            raise
        for w in writes:
            w.result()
    label_counts = dict(labelled.assigned.group_by("code").len().iter_rows())
    # every tariff file whose version priced a day of the year for a billed household
    tariff_files = {t.origin: t for code in sorted(codes) for _, t in catalog.schedule(code, year).versions}
    stage_seconds["labels and save"] = time.perf_counter() - t
    log.info("labels and save: %.2f s; memory %s", stage_seconds["labels and save"], _memory())

    # pass 2: the statements, chunk by chunk
    written = skipped = 0
    if out_dir is not None and pdf:
        from wattbill import statements

        t = time.perf_counter()
        pdf_dir = statements.year_dir(out_dir, year)
        statements.clear_partial(out_dir, year)
        todo_jobs: list[PdfJob] = []
        for k in billed_idx:
            chunk, chunk_bills = parts.get(k, "customers"), parts.final(k, "bills")
            todo = chunk_bills.filter(pl.Series([
                not statements.statement_path(out_dir, year, cid, v).exists()
                for cid, v in zip(chunk_bills["customer_id"].to_list(), chunk_bills["version"].to_list(), strict=True)
            ], dtype=pl.Boolean))
            skipped += chunk_bills.height - todo.height
            if not todo.height:
                continue
            chunk_months = parts.final(k, "months")
            for lo in range(0, todo.height, engine.pdf_batch):
                batch = todo.slice(lo, engine.pdf_batch)
                pids = batch["customer_id"].implode()
                todo_jobs.append(PdfJob(
                    engine.store_ref(store), catalog, year, chunk.filter(pl.col("customer_id").is_in(pids)), batch,
                    chunk_months.filter(pl.col("customer_id").is_in(pids)),
                    labelled.features.filter(pl.col("customer_id").is_in(pids)),
                    labelled.assigned.filter(pl.col("customer_id").is_in(pids)), engine.render_workers,
                ))
        total_pdf = sum(j.bills.height for j in todo_jobs)
        progress("pdf", 0, total_pdf)
        render_failures: list[dict[str, Any]] = []
        for rendered, failed in engine.map_unordered(render_statements, todo_jobs):
            for cid, version, data in rendered:
                statements.write_statement(out_dir, year, cid, version, data)
            render_failures += failed
            written += len(rendered)
            progress("pdf", written + len(render_failures), total_pdf)
        statements.clear_partial(out_dir, year)
        if render_failures:  # the bill is stored; its statement is left out with the reason
            failures += sorted(render_failures, key=lambda f: f["customer_id"])
            not_billed_path, not_billed_kept = save_not_billed(store, year, run_ids, failures, out_dir)
        stage_seconds["pdf"] = time.perf_counter() - t
    if checkpoints:
        checkpoints.remove()
    stage_seconds["total"] = time.perf_counter() - t_start
    log.info("run of %d households: %s; memory %s", total_n,
             ", ".join(f"{k} {v:.2f} s" for k, v in stage_seconds.items()), _memory())
    return RunSummary(
        year=year, households=total_n, billed=billed, kwh_total=kwh_total,
        charge_fen=charge_fen, new_versions=new_versions, labels=label_counts,
        failures=failures, notices=unverified_notices(tariff_files), pdfs_written=written, pdfs_skipped=skipped,
        out_dir=out_dir,
        bills_path=bills_path, months_path=months_path, pdf_dir=pdf_dir, chunks=len(jobs),
        chunks_computed=computed, chunks_reused=len(jobs) - computed, stage_seconds=stage_seconds,
        not_billed=not_billed_frame(failures), not_billed_path=not_billed_path,
        not_billed_households=not_billed_kept["customer_id"].n_unique(),
    )


def _usage() -> tuple[float, float, float]:
    """This process's CPU time so far and the kernel's share of it, all its threads [s], and its peak
    resident memory (``ru_maxrss``) [MiB]."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime, usage.ru_maxrss / 1024  # (Linux: KiB)


def _memory() -> str:
    """This process's resident memory now and at its peak (``ru_maxrss``) and its CPU time so far (all its
    threads; the system's share of it), then those of the child processes that have ended
    (``RUSAGE_CHILDREN``: the chunk processes count once the pass that used them is over), for the run's
    log lines."""
    import resource

    total, system, peak = _usage()
    # (the system's share: memory given back and faulted in again is CPU time in the kernel)
    cpu = f"CPU {total:,.1f} s (system {system:,.1f} s)"
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    ended = (f"; ended child processes: CPU {kids.ru_utime + kids.ru_stime:,.1f} s (system {kids.ru_stime:,.1f} s), "
             f"largest peak {kids.ru_maxrss / 1024:,.0f} MiB" if kids.ru_maxrss else "")
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            now = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        return f"{now:,.0f} MiB (peak {peak:,.0f} MiB), {cpu}{ended}"
    except (OSError, ValueError, IndexError):  # not Linux
        return f"peak {peak:,.0f} MiB, {cpu}{ended}"


def features_path(out_dir: Path, year: int) -> Path:
    """Where a run keeps the features its documents show: ``<out>/features/<year>.parquet``."""
    return out_dir / "features" / f"{year}.parquet"


def save_features(out_dir: Path, year: int, features: pl.DataFrame,
                  versions: pl.DataFrame | Callable[[int], pl.DataFrame | None] | None = None,
                  firsts: Sequence[str] | None = None) -> Path:
    """Keep the features (``diagnostics.FEATURES`` and the bill ``version`` they belong to) of a run.

    Rows of other customers already in the file are kept (``keep_others``: a recalculation of some
    customers replaces only theirs), so that the statement service shows a statement's figures as the run
    computed them and never computes them again.

    Parameters
    ----------
    out_dir : Path
        The run's output folder (the file is ``features_path(out_dir, year)``).
    year : int
        The run's year.
    features : pl.DataFrame
        ``FEATURES`` rows of the run's billed households (with ``version``, or see ``versions``).
    versions : pl.DataFrame, callable or None
        ``customer_id``, ``version`` of each household's bill, joined range by range (the run's features
        are not copied whole); or ``versions(k)``, those of chunk ``k``'s range (None: none billed), called
        as the range is written (the bill run's writers wait there for the chunk's save).
    firsts : sequence of str or None
        The first customer of each of the run's chunks (``write_merged``): the file is written one
        chunk's range at a time. None: one range.

    Returns
    -------
    Path
        The file written.
    """
    path = features_path(out_dir, year)
    path.parent.mkdir(parents=True, exist_ok=True)
    firsts = list(firsts) if firsts else [str(features["customer_id"].min() or "")]
    schema = dict(features.schema)
    if versions is not None:
        schema["version"] = versions.schema["version"] if isinstance(versions, pl.DataFrame) else pl.Int32()

    def frame_of(k: int) -> pl.DataFrame:
        part = features.filter(in_range(firsts, k))
        v = versions(k) if callable(versions) else versions
        if v is not None:
            part = part.join(v, on="customer_id", how="left")
        return part.sort("customer_id")

    try:
        write_merged(path, year, ["customer_id", "year"], firsts, frame_of, schema)
    except BaseException:  # (a run that fails before the file is in place leaves no empty folder behind)
        with contextlib.suppress(OSError):
            path.parent.rmdir()
        raise
    return path


WITHHELD = "labels_withheld.parquet"


def save_withheld(out_dir: Path, year: int, withheld: pl.DataFrame, features: pl.DataFrame,
                  firsts: Sequence[str], before_last: Callable[[], Any] | None = None) -> Path:
    """Keep the labels a run could not decide, with their reason, in ``<out>/labels_withheld.parquet``
    (``customer_id, year, code, reason``; ``labels.WITHHELD_SCHEMA``), sorted by customer and code.

    The run's households (``features``: every billed household) replace their rows of ``year``, also a
    household that has no withheld label now; every other household's rows are kept (``keep_others``'
    rule), so a recalculation of some customers leaves the others' as the full run wrote them. Written
    one chunk's range of customers at a time (``write_merged``).

    Parameters
    ----------
    out_dir : Path
        The run's output folder.
    year : int
        The run's year.
    withheld : pl.DataFrame
        ``customer_id, code, reason`` of the run's households (``insight.Labelled.withheld``).
    features : pl.DataFrame
        The run's billed households' features (their ``customer_id``).
    firsts : sequence of str
        The first customer of each of the run's chunks.
    before_last : callable or None
        Called before the last range is written (the bill run waits there for its bills' saves, so that
        a run whose saves fail leaves the file as it was, as it does the bills).

    Returns
    -------
    Path
        The file written.
    """
    path = out_dir / WITHHELD
    schema = {"customer_id": pl.Utf8(), "year": pl.Int32(), "code": pl.Utf8(), "reason": pl.Utf8()}
    rows = withheld.select("customer_id", pl.lit(year, pl.Int32).alias("year"), "code", "reason")

    def frame_of(k: int) -> pl.DataFrame:
        if k == len(firsts) - 1 and before_last is not None:
            before_last()
        return rows.filter(in_range(firsts, k)).sort("customer_id", "code")

    def ids_of(k: int) -> list[str]:
        return features.filter(in_range(firsts, k))["customer_id"].to_list()

    write_merged(path, year, ["customer_id", "year", "code"], firsts, frame_of, schema, ids_of)
    return path


def in_range(firsts: Sequence[str], k: int) -> pl.Expr:
    """The rows of chunk ``k``'s range of customers: from ``firsts[k]`` (the first chunk: from any) up to
    ``firsts[k + 1]`` (the last chunk: to any)."""
    col, cond = pl.col("customer_id"), pl.lit(True)
    if k > 0:
        cond = cond & (col >= firsts[k])
    if k + 1 < len(firsts):
        cond = cond & (col < firsts[k + 1])
    return cond


@dataclass(frozen=True)
class PdfJob:
    store: StoreRef
    catalog: Catalog
    year: int
    customers: pl.DataFrame
    bills: pl.DataFrame  # with version and labels
    months: pl.DataFrame
    features: pl.DataFrame
    assigned: pl.DataFrame
    render_workers: int = 1


def render_statements(job: PdfJob) -> tuple[list[tuple[str, int, bytes]], list[dict[str, Any]]]:
    """Pass 2 for a batch of bills: (customer_id, version, PDF bytes) of each, in the order of
    ``job.bills``, and a ``left_out`` row (``RENDER_FAILED``) for each document that could not be built
    or rendered (the batch is then rendered one document at a time; the others are kept)."""
    from wattbill import insight
    from wattbill.bills import render_many

    store = job.store.open()
    failed: list[dict[str, Any]] = []

    def on_error(cid: str, exc: BaseException) -> None:
        if isinstance(exc, _FATAL):
            raise exc
        err = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        failed.append(left_out(cid, job.year, RENDER_FAILED, err, error=err))

    payments = store.load_payments(customer_ids=job.bills["customer_id"].to_list())
    docs = insight.documents(job.customers, job.bills, job.months, job.features, job.assigned, payments,
                             job.catalog, job.year, on_error=on_error)
    try:
        datas = list(render_many(docs, workers=job.render_workers))
    except _FATAL:
        raise
    except Exception:
        pairs = []
        for doc in docs:
            try:
                pairs.append((doc, next(iter(render_many([doc], workers=1)))))
            except Exception as exc:
                on_error(doc.customer_id, exc)
        docs, datas = [d for d, _ in pairs], [b for _, b in pairs]
    return [(d.customer_id, int(d.version), data) for d, data in zip(docs, datas, strict=True)], failed


class _StageError(Exception):
    """An error of one stage (billing or diagnosis) of a set of households, carried to the bisection."""

    def __init__(self, code: str, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.code = code


#: errors that are not a household's fault: they stop the run (one line, exit 1)
_FATAL = (StoreError, MemoryError, KeyboardInterrupt, SystemExit)


def _bill_once(
    chunk: pl.DataFrame, daily: pl.DataFrame, last_year: pl.DataFrame, payments: pl.DataFrame,
    catalog: Catalog, year: int, insight: Any, interactions: pl.DataFrame | None = None,
    missing_limit: int | None = None,
) -> tuple[list[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]], list[dict[str, Any]]]:
    try:
        dense = densify(daily, chunk, year, with_regs=True)
        result = bill_chunk(chunk, dense, catalog, year, missing_limit)
    except _FATAL:
        raise
    except Exception as exc:
        raise _StageError(CALCULATION_FAILED, exc) from exc
    if not result.bills.height:
        return [], result.failures
    billed = chunk.filter(pl.col("customer_id").is_in(result.bills["customer_id"].implode()))
    try:
        features = insight.diagnose_chunk(chunk, daily, last_year, dense, payments, catalog, year, interactions)
    except _FATAL:
        raise
    except Exception as exc:
        raise _StageError(DIAGNOSIS_FAILED, exc) from exc
    features = features.filter(pl.col("customer_id").is_in(billed["customer_id"].implode()))
    return [(billed, result.bills, result.months, features)], result.failures


def _bill_isolated(
    chunk: pl.DataFrame, daily: pl.DataFrame, last_year: pl.DataFrame, payments: pl.DataFrame,
    catalog: Catalog, year: int, failures: list[dict[str, Any]], insight: Any,
    interactions: pl.DataFrame | None = None, missing_limit: int | None = None,
) -> list[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    """Bill and diagnose ``chunk``; if that raises, bill each half on its own (bisection), down to the
    household whose data raises, which is left out with the error as its evidence. One bad household
    costs about 2 log2(chunk) extra passes over ever smaller parts; the others are billed as usual.
    Errors of the store (and memory) are not a household's: they stop the run."""
    try:
        parts, fails = _bill_once(chunk, daily, last_year, payments, catalog, year, insight, interactions,
                                  missing_limit)
        failures += fails
        return parts
    except _StageError as exc:
        if chunk.height == 1:
            cid = chunk["customer_id"][0]
            failures.append(left_out(cid, year, exc.code, str(exc), error=str(exc),
                                     tariff=chunk["tariff"][0]))
            return []
    half = chunk.height // 2
    out = []
    for part in (chunk.slice(0, half), chunk.slice(half)):
        ids = part["customer_id"].implode()
        out += _bill_isolated(
            part, daily.filter(pl.col("customer_id").is_in(ids)), last_year.filter(pl.col("customer_id").is_in(ids)),
            payments.filter(pl.col("customer_id").is_in(ids)), catalog, year, failures, insight,
            interactions.filter(pl.col("customer_id").is_in(ids)) if interactions is not None else None,
            missing_limit,
        )
    return out


def clean_stale_temporaries(out_dir: Path) -> int:
    """Remove temporary files that a run killed before its rename left in ``out_dir``: the output files'
    ``.<name>.<pid>.tmp`` of a process that is gone (``bills.parquet``, ``bill_months.parquet``,
    ``not_billed.parquet``, ``labels_withheld.parquet``, ``features/<year>.parquet``) and older runs' ``pdf/<year>/.*.tmp`` (the
    statements' own partial files are cleared by ``statements.clear_partial``). Returns how many were
    removed."""
    removed = 0
    if not out_dir.is_dir():
        return 0
    candidates = [*out_dir.glob(".*.tmp"), *out_dir.glob("features/.*.tmp"), *out_dir.glob("pdf/*/.*.tmp")]
    for p in candidates:
        parts = p.name.split(".")
        pid = parts[-2] if len(parts) >= 3 and parts[-2].isdigit() else None
        if pid is not None and int(pid) != os.getpid() and pid_alive(int(pid)):
            continue  # another run writing now
        try:
            p.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def keep_others(path: Path, new: pl.DataFrame, year: int, customer_ids: Sequence[str]) -> pl.DataFrame:
    """The one merge rule of every table a run writes into its output folder (``bills.parquet``,
    ``bill_months.parquet``, ``not_billed.parquet`` and the features of ``save_features``).

    A run over some customers (``bill recalc --out`` into the year's own folder) replaces the rows of
    the households it speaks for and keeps every other household's (and every other year's), as the
    runs before wrote them.

    Parameters
    ----------
    path : Path
        The file as the runs before left it; absent, or not a table of ours (unreadable, without
        ``customer_id`` and ``year``): ``new`` replaces it.
    new : pl.DataFrame
        This run's rows.
    year : int
        The run's year: rows of other years are kept.
    customer_ids : sequence of str
        The households whose rows of ``year`` this run replaces: for ``not_billed.parquet`` every
        household of the run (a household billed now loses its earlier record, as in
        ``Store.save_not_billed``); for the bills, months and features the households it billed (a
        household left out now keeps its latest bill, as the store does).

    Returns
    -------
    pl.DataFrame
        The kept rows (the newest ``version`` of each household, should the file hold several), then
        ``new``; unsorted.
    """
    scan = _scan_ours(path)
    if scan is None:
        return new
    try:
        old = scan.collect()
    except (OSError, pl.exceptions.PolarsError):
        return new  # not a table of ours: replaced, as before
    return _keep(old, new, year, customer_ids)


def _scan_ours(path: Path) -> pl.LazyFrame | None:
    """``path`` as a lazy table when it is a table of ours (a Parquet file with ``customer_id`` and
    ``year``); None when it is absent or anything else (it is then replaced)."""
    if not path.exists():
        return None
    try:
        schema = pl.read_parquet_schema(path)
    except (OSError, pl.exceptions.PolarsError):
        return None
    if "customer_id" not in schema or "year" not in schema:
        return None
    return pl.scan_parquet(path)


def _keep(old: pl.DataFrame, new: pl.DataFrame, year: int, customer_ids: Sequence[str]) -> pl.DataFrame:
    """``keep_others``' rule on rows already read: ``old``'s rows that ``new`` does not replace, then ``new``."""
    ids = pl.Series(list(customer_ids), dtype=pl.Utf8).implode()
    keep = old.filter(~(pl.col("customer_id").is_in(ids) & (pl.col("year") == year)))
    if keep.height == 0:
        return new
    if "version" in keep.columns:  # (the newest version of each household, should a file hold several)
        keys = ["customer_id", "year", "month"] if "month" in keep.columns else ["customer_id", "year"]
        keep = keep.filter(pl.col("version") == pl.col("version").max().over(keys[:2]))
        keep = keep.unique(keys, keep="last", maintain_order=True)
    return pl.concat([keep, new], how="diagonal_relaxed")


def _parquet_options(schema: Any) -> dict[str, Any]:
    """pyarrow's Parquet settings for the run's output files: zstd, and a dictionary for the text columns
    only, the rule of the store's bill tables (``store.embedded._results_writer``, where it is measured):
    a month's kWh and charges are nearly all distinct: a chunk's 600,000 months were written in 0.37 CPU-s
    (12.3 MB) with a dictionary for every column, 0.22 CPU-s (14.5 MB) with these (2026-12-02)."""
    from wattbill._arrow import text_columns

    return {"compression": "zstd", "use_dictionary": text_columns(schema)}


def write_merged(
    path: Path, year: int, keys: list[str], firsts: Sequence[str], frame_of: Callable[[int], pl.DataFrame],
    schema: dict[str, pl.DataType], ids_of: Callable[[int], list[str]] | None = None,
) -> None:
    """Write a run's table (``bills.parquet``, ``bill_months.parquet``) one chunk at a time, merged by
    ``keep_others``' rule with what the file held, and sorted by ``keys``, without holding the run.

    The run's chunks are ranges of customers in order: chunk ``k`` holds the customers from
    ``firsts[k]`` up to ``firsts[k + 1]``, and the rows the file held for customers in that range (other
    years, households the run did not bill) are merged with that chunk's rows, so the file is written
    range by range in ``keys`` order, each range a Parquet row group (pyarrow's ``ParquetWriter``,
    zstd, ``_parquet_options``), under a temporary name and renamed. Memory: one chunk's rows and the file's rows of its range.

    Parameters
    ----------
    path : Path
        The file to write (what it holds is merged in; a file that is not a table of ours is replaced).
    year : int
        The run's year.
    keys : list of str
        The sort keys, ``customer_id`` first.
    firsts : sequence of str
        The first customer id of each chunk, ascending.
    frame_of : callable
        ``frame_of(k)``: chunk ``k``'s rows, sorted by ``keys`` (an empty frame for none).
    schema : dict
        The run's rows' columns and types (the file's own columns are added to them).
    ids_of : callable or None
        ``ids_of(k)``: the households of chunk ``k`` whose rows of ``year`` the run replaces; None: those
        with rows in ``frame_of(k)`` (a table with a row for every household the run speaks for).
    """
    import pyarrow.parquet as pq

    scan = _scan_ours(path)
    target = pl.DataFrame(schema=schema)
    if scan is not None:
        target = pl.concat([scan.head(0).collect(), target], how="diagonal_relaxed")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = None
    try:
        for k in range(len(firsts)):
            new = frame_of(k)
            rows = pl.concat([target, new], how="diagonal_relaxed") if new.height else target
            if scan is not None:
                try:
                    old = scan.filter(in_range(firsts, k)).collect()
                except (OSError, pl.exceptions.PolarsError):  # not a table of ours after all: replaced
                    scan, old = None, None
                if old is not None and old.height:
                    ids = ids_of(k) if ids_of is not None else new["customer_id"].to_list() if new.height else []
                    rows = pl.concat([target, _keep(old, new if new.height else target, year, ids)],
                                     how="diagonal_relaxed").sort(keys)
            table = rows.select(target.columns).cast(target.schema).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, **_parquet_options(table.schema))
            if table.num_rows:
                writer.write_table(table.cast(writer.schema))
        if writer is None:
            empty = target.to_arrow().schema
            writer = pq.ParquetWriter(tmp, empty, **_parquet_options(empty))
        writer.close()
        writer = None
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)


def save_not_billed(
    store: Any, year: int, customer_ids: Sequence[str], failures: list[dict[str, Any]], out_dir: Path | None,
) -> tuple[Path | None, pl.DataFrame]:
    """Keep the households a run left out: in the store (``Store.save_not_billed``) and, with
    ``out_dir``, in ``<out>/not_billed.parquet``, both by the same rule (``keep_others``): the run's
    households' records replaced, every other household's kept, so the file and the store agree.

    Parameters
    ----------
    store : Store
        Where the records are kept.
    year : int
        The run's year.
    customer_ids : sequence of str
        Every household of the run (billed or not).
    failures : list of dict
        The run's ``left_out`` rows.
    out_dir : Path or None
        The run's output folder.

    Returns
    -------
    tuple of (Path or None, pl.DataFrame)
        The file written (None without ``out_dir``) and what it now holds (``NOT_BILLED_SCHEMA``; without
        ``out_dir``, the run's rows).
    """
    frame = not_billed_frame(failures)
    store.save_not_billed(year, customer_ids, frame)
    if out_dir is None:
        return None, frame
    path = out_dir / NOT_BILLED
    merged = keep_others(path, frame, year, customer_ids).select(
        [pl.col(c).cast(t) for c, t in NOT_BILLED_SCHEMA.items()]).sort("customer_id", "year", "code")
    _write_atomic(merged, path)
    return path, merged


def _interactions(store: Any, year: int, ids: list[str], known: bool) -> pl.DataFrame | None:
    """Service contacts of ``ids`` in ``year`` and the year before; None when the store has none at all
    (``known`` False: channel features unknown, not 0). Decided for the store, not the chunk: a chunk
    whose households made no contact has 0 contacts, as it would in another chunking."""
    if not known:
        return None
    frames = [store.load_interactions(y, ids) for y in (year - 1, year)]
    return pl.concat(frames, how="vertical_relaxed")


def _write_atomic(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


