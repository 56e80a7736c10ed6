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
from wattbill.ingest.schemas import REGISTERS
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
    billable = (dense.total.any(axis=1) | dense.regs.any(axis=(1, 2))) & (of >= 0) & (of <= ol)
    for code in sorted(set(tariffs)):
        rows = np.nonzero((np.array(tariffs) == code) & billable)[0]
        if not len(rows):
            continue
        try:
            tariff = catalog.get(code, on=on)
        except KeyError as exc:
            failures += [{"customer_id": ids_all[i], "reason": str(exc)} for i in rows]
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
                failures += [{"customer_id": ids_all[rows[h]], "reason": str(exc)} for h in bad]
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
    failures: list[dict[str, Any]]
    pdfs_written: int
    pdfs_skipped: int
    out_dir: Path | None
    bills_path: Path | None
    months_path: Path | None
    pdf_dir: Path | None


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
        dense = densify(daily, chunk, year, with_regs=True)
        result = bill_chunk(chunk, dense, catalog, year)
        failures += result.failures
        if result.bills.height:
            billed = chunk.filter(pl.col("customer_id").is_in(result.bills["customer_id"].implode()))
            payments = store.load_payments(customer_ids=ids)
            features = insight.diagnose_chunk(chunk, daily, store.load_daily(year - 1, ids, sort=False), dense, payments,
                                              catalog, year)
            chunk_features.append(features.filter(pl.col("customer_id").is_in(billed["customer_id"].implode())))
            chunks.append((billed, result.bills, result.months))
        del daily, dense
        done += chunk.height
        progress("bill", done, total_n)
    if not chunks:
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
    bills_path = months_path = pdf_dir = None
    written = skipped = 0
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        bills_path, months_path = out_dir / "bills.parquet", out_dir / "bill_months.parquet"
        _write_atomic(bills.sort("customer_id"), bills_path)
        _write_atomic(pl.concat([m for _, _, m in saved_chunks], how="diagonal_relaxed").sort("customer_id", "month"),
                      months_path)
        save_features(out_dir, year, labelled.features.join(bills.select("customer_id", "version"), on="customer_id"))
        if pdf:
            # pass 2: the PDFs, chunk by chunk
            pdf_dir = out_dir / "pdf" / str(year)
            renderer = PdfWriter(pdf_dir, bills, workers, progress)
            for chunk, chunk_bills, chunk_months in saved_chunks:
                todo = renderer.todo(chunk_bills)
                if todo.height:
                    payments = store.load_payments(customer_ids=todo["customer_id"].to_list())
                    renderer.write(insight.documents(chunk, todo, chunk_months, labelled.features,
                                                     labelled.assigned, payments, catalog, year))
            written, skipped = renderer.written, renderer.skipped
    return RunSummary(
        year=year, households=total_n, billed=bills.height, kwh_total=float(bills["kwh_total"].sum()),
        charge_fen=int(bills["charge_fen"].sum()), new_versions=new_versions, labels=label_counts,
        failures=failures, pdfs_written=written, pdfs_skipped=skipped, out_dir=out_dir,
        bills_path=bills_path, months_path=months_path, pdf_dir=pdf_dir,
    )


def features_path(out_dir: Path, year: int) -> Path:
    """Where a run keeps the features its documents show: ``<out>/features/<year>.parquet``."""
    return out_dir / "features" / f"{year}.parquet"


def save_features(out_dir: Path, year: int, features: pl.DataFrame) -> Path:
    """Keep the features (``diagnostics.FEATURES`` and the bill ``version`` they belong to) of a run.

    Rows of other customers already in the file are kept (a recalculation of some customers
    replaces only theirs), so that the statement service shows a statement's figures as the run
    computed them and never computes them again.
    """
    path = features_path(out_dir, year)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        old = pl.read_parquet(path)
        old = old.filter(~pl.col("customer_id").is_in(features["customer_id"].implode()))
        features = pl.concat([old, features], how="diagonal_relaxed")
    _write_atomic(features.sort("customer_id"), path)
    return path


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
        progress("pdf", 0, self.total)

    def todo(self, bills: pl.DataFrame) -> pl.DataFrame:
        """The rows of ``bills`` whose PDF is missing or shows another version."""
        keep = [
            self.manifest.get(cid) != version or not (self.pdf_dir / f"{cid}.pdf").exists()
            for cid, version in zip(bills["customer_id"].to_list(), bills["version"].to_list(), strict=True)
        ]
        return bills.filter(pl.Series(keep, dtype=pl.Boolean))

    def write(self, docs: list[Any]) -> None:
        from wattbill.bills import render_many

        batch = max(50, 10 * self.workers)
        for lo in range(0, len(docs), batch):
            part = docs[lo : lo + batch]
            for doc, data in zip(part, render_many(part, workers=self.workers), strict=True):
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
