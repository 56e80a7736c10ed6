"""The yearly bill run: store → dense arrays → tariff kernels → diagnosis → labels → bills → PDFs.

The run goes through customers in chunks (``chunk_size``), so memory stays bounded whatever the
population. It is idempotent and resumable:

- bills are saved with ``Store.save_bills``, which stores a new version only when the content
  changed, so a second run over the same data stores nothing new;
- each PDF is written atomically (temporary file, then rename) and recorded with the bill version
  it shows in ``pdf/<year>/manifest.json``; a run skips PDFs that are already there for the same
  version, so a run that was stopped picks up where it was.

Features are computed chunk by chunk; peer percentiles and labels are then computed over the whole
run (``diagnostics.add_peers``), so chunking changes no bill and no label.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from wattbill.diagnostics import DenseYear, densify, take_rows
from wattbill.diagnostics.dense import month_of_day
from wattbill.errors import NothingToBill, UnknownCustomer
from wattbill.ingest.limits import limit_text, max_daily_wh
from wattbill.ingest.schemas import REGISTERS
from wattbill.store.base import NOT_BILLED_SCHEMA
from wattbill.store.errors import StoreError
from wattbill.tariffs import Catalog, UnpricedRegisterError, bill_households

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
    cols = ["wh_total", *[f"wh_{r}" for r in REGISTERS]]
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


def bill_chunk(customers: pl.DataFrame, dense: DenseYear, catalog: Catalog, year: int) -> ChunkResult:
    """Bill one chunk of customers (rows of ``customers`` align with ``dense``)."""
    of, ol = dense.open_first.astype(np.int64), dense.open_last.astype(np.int64)
    sizes = customers["household_size"].fill_null(1).to_numpy().astype(np.int64)
    tariffs = customers["tariff"].to_list()
    on = dt.date(year, 1, 1)
    bill_rows: list[pl.DataFrame] = []
    month_rows: list[pl.DataFrame] = []
    failures: list[dict[str, Any]] = []
    ids_all = customers["customer_id"].to_list()
    month_index = month_of_day(year)
    if dense.regs is None:
        raise ValueError("billing needs the daily registers: densify(..., with_regs=True)")
    is_open = (of >= 0) & (of <= ol)
    has_use = dense.total.any(axis=1) | dense.regs.any(axis=(1, 2))
    billable = has_use & is_open
    for i in np.flatnonzero(~billable):
        if not is_open[i]:
            failures.append(left_out(ids_all[i], year, NOT_OPEN, f"the account is not open in {year}"))
        else:
            failures.append(left_out(ids_all[i], year, NO_CONSUMPTION, f"no consumption stored for {year}"))
    for code in sorted(set(tariffs)):
        rows = np.nonzero((np.array(tariffs) == code) & billable)[0]
        if not len(rows):
            continue
        try:
            tariff = catalog.get(code, on=on)
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
            except UnpricedRegisterError as exc:  # rule 5: an error for that household, not a zero
                bad = set(int(h) for h in (exc.households or range(len(rows))))
                failures += [left_out(ids_all[rows[h]], year, UNPRICED_REGISTER, str(exc), tariff=code) for h in bad]
                rows = np.array([r for k, r in enumerate(rows) if k not in bad], dtype=np.int64)
        if not len(rows):
            continue
        ids = [ids_all[i] for i in rows]
        est = dense.estimated[rows]
        est_days = est.sum(axis=1)
        est_month = np.stack([est[:, month_index == m].sum(axis=1) for m in range(12)], axis=1)
        bill_rows.append(_quantities_frame(ids, year, code, yb.month_wh.sum(1), yb.month_wh_reg.sum(1),
                                           yb.month_wh_tier.sum(1), yb.year_fen, est_days, None))
        n = len(rows)
        month_rows.append(
            _quantities_frame(
                np.repeat(ids, 12).tolist(), year, code, yb.month_wh.reshape(-1),
                yb.month_wh_reg.reshape(n * 12, 4), yb.month_wh_tier.reshape(n * 12, 3),
                yb.month_fen.reshape(-1), est_month.reshape(-1), np.tile(np.arange(1, 13), n),
            )
        )
    bills = pl.concat(bill_rows) if bill_rows else pl.DataFrame()
    months = pl.concat(month_rows) if month_rows else pl.DataFrame()
    return ChunkResult(bills, months, failures)


def _quantities_frame(
    ids: list[str], year: int, code: str, wh: np.ndarray, wh_reg: np.ndarray, wh_tier: np.ndarray,
    fen: np.ndarray, est: np.ndarray, month: np.ndarray | None,
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
    frame = pl.DataFrame(cols)
    return frame.with_columns(_fen_to_decimal_expr("charge_fen").alias("charge_total"))


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
    pdfs_written: int
    pdfs_skipped: int
    out_dir: Path | None
    bills_path: Path | None
    months_path: Path | None
    pdf_dir: Path | None
    not_billed: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=NOT_BILLED_SCHEMA))
    not_billed_path: Path | None = None

    @property
    def faults(self) -> int:
        """Households left out for a fault of their data (not counting accounts not open in the year)."""
        return self.not_billed.filter(~pl.col("code").is_in(sorted(NOT_A_FAULT))).height


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
    chunk_size: int = 100_000,
    progress: Progress | None = None,
) -> RunSummary:
    """Bill ``year`` for the customers of ``store`` (all, or ``customer_ids``).

    Pass 1, chunk by chunk: bills, the tariff what-if and the features. Then peers and labels over
    the whole run, and the bills saved (a new version only where the content changed). Pass 2,
    chunk by chunk: the PDFs that are not there yet for their bill version.
    """
    from wattbill import insight

    progress = progress or (lambda stage, done, total: None)
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

    # pass 1: bills and features, chunk by chunk
    chunks: list[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]] = []  # customers, bills, months
    chunk_features: list[pl.DataFrame] = []
    failures: list[dict[str, Any]] = []
    done = 0
    for lo in range(0, total_n, chunk_size):
        # within a chunk, customers by tariff: each tariff's households are one contiguous range of
        # the dense arrays, which the kernels then read in place (no copies)
        chunk = customers.slice(lo, chunk_size).sort("tariff", "customer_id")
        ids = chunk["customer_id"].to_list()
        daily = store.load_daily(year, ids, sort=False)  # (grouped by customer; the kernels take any order)
        daily, implausible = screen_daily(daily, year)
        if implausible:
            failures += implausible
            gone = pl.Series([f["customer_id"] for f in implausible], dtype=pl.Utf8).implode()
            chunk = chunk.filter(~pl.col("customer_id").is_in(gone))
        if chunk.height:
            last_year = store.load_daily(year - 1, chunk["customer_id"].to_list(), sort=False)
            payments = store.load_payments(customer_ids=chunk["customer_id"].to_list())
            for part in _bill_isolated(chunk, daily, last_year, payments, catalog, year, failures, insight):
                chunk_features.append(part[3])
                chunks.append(part[:3])
        del daily
        done += len(ids)
        progress("bill", done, total_n)
    if not chunks:
        if failures and any(f["code"] not in NOT_A_FAULT for f in failures):
            first = failures[0]
            raise NothingToBill(f"no household of {year} could be billed ({len(failures)} left out; "
                                f"first: {first['customer_id']}: {first['code']}: {first['detail']})")
        raise NothingToBill(f"no consumption for {year} for the customers asked")

    # peers and labels over the whole run; save every chunk's bills
    labelled = insight.label_run(chunk_features)
    empty_labels = pl.lit([], pl.List(pl.Utf8))
    new_versions = 0
    saved_chunks: list[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]] = []
    for chunk, bills, months in chunks:
        ids = chunk["customer_id"].to_list()
        bills = bills.join(labelled.per_customer, on="customer_id", how="left").with_columns(
            pl.col("labels").fill_null(empty_labels)
        )
        stored = store.load_bills(year, ids)
        before = (
            stored.select("customer_id", pl.col("version").alias("_before"))
            if stored.height
            else pl.DataFrame(schema={"customer_id": pl.Utf8, "_before": pl.Int32})
        )
        versions = store.save_bills(year, bills, months, reason).select("customer_id", "version")
        new_versions += versions.join(before, on="customer_id", how="left").filter(
            pl.col("_before").is_null() | (pl.col("_before") != pl.col("version"))
        ).height
        saved_chunks.append((chunk, bills.join(versions, on="customer_id", how="left"),
                             months.join(versions, on="customer_id", how="left")))
    if labelled.assigned.height:
        store.save_labels(year, None, labelled.assigned)
    label_counts = dict(labelled.assigned.group_by("code").len().iter_rows())

    bills = pl.concat([b for _, b, _ in saved_chunks], how="diagonal_relaxed")
    bills_path = months_path = pdf_dir = not_billed_path = None
    written = skipped = 0
    run_ids = customers["customer_id"].to_list()
    store.save_not_billed(year, run_ids, not_billed_frame(failures))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(out_dir)
        bills_path, months_path = out_dir / "bills.parquet", out_dir / "bill_months.parquet"
        not_billed_path = out_dir / "not_billed.parquet"
        _write_atomic(bills.sort("customer_id"), bills_path)
        _write_atomic(pl.concat([m for _, _, m in saved_chunks], how="diagonal_relaxed").sort("customer_id", "month"),
                      months_path)
        _write_atomic(not_billed_frame(failures), not_billed_path)
        if pdf:
            # pass 2: the PDFs, chunk by chunk; a document that cannot be built or rendered is left out
            pdf_dir = out_dir / "pdf" / str(year)
            renderer = PdfWriter(pdf_dir, bills, workers, progress)
            for chunk, chunk_bills, chunk_months in saved_chunks:
                todo = renderer.todo(chunk_bills)
                if todo.height:
                    payments = store.load_payments(customer_ids=todo["customer_id"].to_list())
                    docs = insight.documents(chunk, todo, chunk_months, labelled.features, labelled.assigned,
                                             payments, catalog, year, on_error=renderer.failed)
                    renderer.write(docs)
            written, skipped = renderer.written, renderer.skipped
            if renderer.failures:
                failures += [left_out(cid, year, RENDER_FAILED, err, error=err) for cid, err in renderer.failures]
                store.save_not_billed(year, run_ids, not_billed_frame(failures))
                _write_atomic(not_billed_frame(failures), not_billed_path)
    return RunSummary(
        year=year, households=total_n, billed=bills.height, kwh_total=float(bills["kwh_total"].sum()),
        charge_fen=int(bills["charge_fen"].sum()), new_versions=new_versions, labels=label_counts,
        failures=failures, pdfs_written=written, pdfs_skipped=skipped, out_dir=out_dir,
        bills_path=bills_path, months_path=months_path, pdf_dir=pdf_dir,
        not_billed=not_billed_frame(failures), not_billed_path=not_billed_path,
    )


class _StageError(Exception):
    """An error of one stage (billing or diagnosis) of a set of households, carried to the bisection."""

    def __init__(self, code: str, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.code = code


#: errors that are not a household's fault: they stop the run (one line, exit 1)
_FATAL = (StoreError, MemoryError, KeyboardInterrupt, SystemExit)


def _bill_once(
    chunk: pl.DataFrame, daily: pl.DataFrame, last_year: pl.DataFrame, payments: pl.DataFrame,
    catalog: Catalog, year: int, insight: Any,
) -> tuple[list[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]], list[dict[str, Any]]]:
    try:
        dense = densify(daily, chunk, year, with_regs=True)
        result = bill_chunk(chunk, dense, catalog, year)
    except _FATAL:
        raise
    except Exception as exc:
        raise _StageError(CALCULATION_FAILED, exc) from exc
    if not result.bills.height:
        return [], result.failures
    billed = chunk.filter(pl.col("customer_id").is_in(result.bills["customer_id"].implode()))
    try:
        features = insight.diagnose_chunk(chunk, daily, last_year, dense, payments, catalog, year)
    except _FATAL:
        raise
    except Exception as exc:
        raise _StageError(DIAGNOSIS_FAILED, exc) from exc
    features = features.filter(pl.col("customer_id").is_in(billed["customer_id"].implode()))
    return [(billed, result.bills, result.months, features)], result.failures


def _bill_isolated(
    chunk: pl.DataFrame, daily: pl.DataFrame, last_year: pl.DataFrame, payments: pl.DataFrame,
    catalog: Catalog, year: int, failures: list[dict[str, Any]], insight: Any,
) -> list[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    """Bill and diagnose ``chunk``; if that raises, bill each half on its own (bisection), down to the
    household whose data raises, which is left out with the error as its evidence. One bad household
    costs about 2 log2(chunk) extra passes over ever smaller parts; the others are billed as usual.
    Errors of the store (and memory) are not a household's: they stop the run."""
    try:
        parts, fails = _bill_once(chunk, daily, last_year, payments, catalog, year, insight)
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
        )
    return out


def clean_stale_temporaries(out_dir: Path) -> int:
    """Remove temporary files that a run killed before its rename left in ``out_dir`` (``.bills.parquet.
    <pid>.tmp`` of a process that is gone, ``.<customer>.pdf.tmp``, ``.manifest.json.tmp``). Returns
    how many were removed."""
    removed = 0
    if not out_dir.is_dir():
        return 0
    candidates = list(out_dir.glob(".*.tmp")) + list(out_dir.glob("pdf/*/.*.tmp"))
    for p in candidates:
        parts = p.name.split(".")
        pid = parts[-2] if len(parts) >= 3 and parts[-2].isdigit() else None
        if pid is not None and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another run writing now
        try:
            p.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_atomic(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


class PdfWriter:
    """Writes PDFs atomically and records, per customer, the bill version its PDF shows.

    The record (``manifest.json`` beside the PDFs) is what makes runs resumable: a PDF is rendered
    again only when its file is missing or its bill has a newer version.
    """

    def __init__(self, pdf_dir: Path, bills: pl.DataFrame, workers: int, progress: Progress) -> None:
        self.pdf_dir = pdf_dir
        pdf_dir.mkdir(parents=True, exist_ok=True)
        self.manifest_path = pdf_dir / "manifest.json"
        self.manifest: dict[str, int] = (
            json.loads(self.manifest_path.read_text()) if self.manifest_path.exists() else {}
        )
        self.workers = workers
        self.progress = progress
        self.total = self.todo(bills).height
        self.skipped = bills.height - self.total
        self.written = 0
        self.failures: list[tuple[str, str]] = []  # (customer_id, error) of documents left out
        progress("pdf", 0, self.total)

    def todo(self, bills: pl.DataFrame) -> pl.DataFrame:
        """The rows of ``bills`` whose PDF is missing or shows another version."""
        keep = [
            self.manifest.get(cid) != version or not (self.pdf_dir / f"{cid}.pdf").exists()
            for cid, version in zip(bills["customer_id"].to_list(), bills["version"].to_list(), strict=True)
        ]
        return bills.filter(pl.Series(keep, dtype=pl.Boolean))

    def failed(self, customer_id: str, exc: BaseException) -> None:
        """Record a document that could not be built or rendered (the run goes on)."""
        if isinstance(exc, _FATAL):
            raise exc
        self.failures.append((customer_id, " ".join(f"{type(exc).__name__}: {exc}".split())[:500]))

    def _render(self, part: list[Any]) -> list[tuple[Any, bytes]]:
        """PDFs of ``part``; if the batch fails, each document alone, and those that fail are left out."""
        from wattbill.bills import render_many

        try:
            return list(zip(part, render_many(part, workers=self.workers), strict=True))
        except _FATAL:
            raise
        except Exception:
            pass
        done = []
        for doc in part:
            try:
                done.append((doc, next(iter(render_many([doc], workers=1)))))
            except Exception as exc:
                self.failed(doc.customer_id, exc)
        return done

    def write(self, docs: list[Any]) -> None:
        batch = max(50, 10 * self.workers)
        for lo in range(0, len(docs), batch):
            part = docs[lo : lo + batch]
            for doc, data in self._render(part):
                target = self.pdf_dir / f"{doc.customer_id}.pdf"
                tmp = target.with_name(f".{target.name}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
                self.manifest[doc.customer_id] = doc.version
            tmp_manifest = self.manifest_path.with_name(".manifest.json.tmp")
            tmp_manifest.write_text(json.dumps(self.manifest))
            os.replace(tmp_manifest, self.manifest_path)
            self.written += len(part)
            self.progress("pdf", self.written, self.total)
