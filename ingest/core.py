"""``ingest_file``: one file -> VEE -> one atomic ``Store.save_ingest`` call, recorded in the ledger."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl

from wattbill.ingest import vee
from wattbill.ingest.errors import BadFileError, UnknownKindError
from wattbill.ingest.interactions import interactions_frame
from wattbill.ingest.readers import (
    bucketed,
    detect_format,
    n_buckets_for,
    raw_text,
    read_raw,
    scan_text,
    sha256_of,
)
from wattbill.ingest.schemas import (
    DAILY_SCHEMA,
    FINDING_SCHEMA,
    KINDS,
    QUARANTINE_SCHEMA,
    IngestBatch,
    IngestReport,
    halves_of_customers,
)

_VEE = {
    "registers": vee.registers_to_daily,
    "consumption": vee.consumption_to_daily,
    "customers": vee.customers_frame,
    "payments": vee.payments_frame,
    "interactions": interactions_frame,
}


def _report_from_ledger(rec: dict[str, Any], file: Path) -> IngestReport:
    return IngestReport(
        file=str(file),
        sha256=rec["sha256"],
        rows=int(rec["rows"]),
        loaded=int(rec["loaded"]),
        estimated=int(rec["estimated"]),
        quarantined=int(rec["quarantined"]),
        duplicates=int(rec["duplicates"]),
        already_loaded=True,
        kind=rec.get("kind") or "",
        findings=int(rec.get("findings") or 0),
    )


def ingest_file(
    path: str | Path,
    kind: str = "registers",
    store: Any = None,
    *,
    today: dt.date | None = None,
    n_buckets: int | None = None,
) -> IngestReport:
    """Load one file into ``store`` (or only validate it when ``store`` is None).

    A file whose SHA-256 is already in the store's ledger is not loaded again (``already_loaded``).
    Raises ``IngestError`` subclasses for files that cannot be loaded; then nothing is stored.
    """
    path = Path(path)
    if kind not in KINDS:
        raise UnknownKindError(path, None, None, f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if not path.is_file():
        raise BadFileError(path, None, None, "no such file")
    buckets = n_buckets or n_buckets_for(path)
    if buckets > 1:  # a large file: know first whether it was loaded already
        sha = sha256_of(path)
        if store is not None and (rec := store.ledger_get(sha)) is not None:
            return _report_from_ledger(rec, path)
        return _ingest(path, kind, store, sha, today, buckets)
    # a file read at once: its hash is computed while it goes through VEE (hashlib releases the GIL;
    # VEE leaves a core idle now and then, the CSV reader does not); a file loaded before is found
    # after VEE then, and nothing is stored
    raw = read_raw(path, kind)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(sha256_of, path)
        return _ingest(path, kind, store, fut.result, today, 1, raw)


def _ingest(
    path: Path,
    kind: str,
    store: Any,
    sha_of: str | Callable[[], str],
    today: dt.date | None,
    n_buckets: int,
    raw: pl.DataFrame | None = None,
) -> IngestReport:
    """``ingest_file`` given the file's hash (or a function that waits for it) and, for a file read at
    once, its ``raw`` frame."""
    fn = _VEE[kind]
    rows = loaded = est = dups = 0
    qs: list[pl.DataFrame] = []
    fs: list[pl.DataFrame] = []
    frames: list[pl.DataFrame] = []
    tmp: Path | None = None
    daily_files: list[Path] = []
    anchors = store.load_register_state() if store is not None and kind == "registers" else None
    states: list[pl.DataFrame] = []
    try:
        with bucketed(path, kind, n_buckets, raw) as parts:
            for i, raw in enumerate(parts):
                if kind != "registers":
                    res = fn(raw, today=today)
                elif n_buckets == 1:  # the file at once: VEE on two threads
                    res = _registers_in_halves(raw, today, anchors)
                else:  # customer buckets of a large file: one at a time, memory bounded by a bucket
                    res = vee.registers_to_daily(raw, today=today, anchors=anchors)
                if res.state is not None and res.state.height:
                    states.append(res.state)
                rows += res.rows
                loaded += res.loaded
                est += res.estimated
                dups += res.duplicates
                if res.quarantine.height:
                    rows_q = res.quarantine.select("row")
                    bad = (
                        _as_read(path, kind, raw, rows_q)
                        if n_buckets == 1  # a large file is not read again for this: typed values shown
                        else raw.join(rows_q, on="row", how="semi")
                    )
                    q = res.quarantine.join(bad.select("row", raw_text(bad).alias("raw")), on="row", how="left")
                    qs.append(q)
                if res.findings.height:
                    fs.append(res.findings)
                if (kind in ("registers", "consumption") and i > 0) or daily_files:
                    # several buckets: park each bucket's rows on disk so memory stays flat
                    if tmp is None:
                        tmp = Path(tempfile.mkdtemp(prefix="wattbill-daily-"))
                        for j, fr in enumerate(frames):
                            fp = tmp / f"{j}.parquet"
                            fr.write_parquet(fp, compression="lz4")
                            daily_files.append(fp)
                        frames = []
                    fp = tmp / f"{i}.parquet"
                    res.frame.write_parquet(fp, compression="lz4")
                    daily_files.append(fp)
                else:
                    frames.append(res.frame)
        sha = sha_of if isinstance(sha_of, str) else sha_of()
        if store is not None and (rec := store.ledger_get(sha)) is not None:
            return _report_from_ledger(rec, path)  # loaded before: nothing changes
        if rows != loaded + sum(q.height for q in qs) + dups:  # pragma: no cover - an internal bug
            raise RuntimeError(f"{path}: rows not accounted for: {rows} != {loaded} + quarantined + {dups}")
        quarantine = (
            pl.concat(qs, how="vertical_relaxed")
            .with_columns(pl.lit(sha).alias("file_sha256"), pl.lit(str(path)).alias("file"))
            .select([pl.col(k).cast(v) for k, v in QUARANTINE_SCHEMA.items()])
            .sort("row")
            if qs
            else pl.DataFrame(schema=QUARANTINE_SCHEMA)
        )
        findings = (
            pl.concat(fs, how="vertical_relaxed")
            .with_columns(pl.lit(sha).alias("file_sha256"))
            .select([pl.col(k).cast(v) for k, v in FINDING_SCHEMA.items()])
            if fs
            else pl.DataFrame(schema=FINDING_SCHEMA)
        )
        report = IngestReport(
            file=str(path),
            sha256=sha,
            rows=rows,
            loaded=loaded,
            estimated=est,
            quarantined=quarantine.height,
            duplicates=dups,
            kind=kind,
            findings=findings.height,
            findings_by_code=dict(Counter(findings["code"].to_list())),
            quarantine_by_code=dict(Counter(quarantine["code"].to_list())),
        )
        if store is None:
            return report
        ledger = {
            "sha256": sha,
            "file": str(path),
            "kind": kind,
            "rows": rows,
            "loaded": loaded,
            "estimated": est,
            "quarantined": quarantine.height,
            "duplicates": dups,
            "findings": findings.height,
            "loaded_at": dt.datetime.now(dt.UTC),
        }
        batch = IngestBatch(ledger=ledger, kind=kind, quarantine=quarantine, findings=findings)
        if states:
            batch.register_state = _newest_reads(states, anchors)
        if kind in ("registers", "consumption"):
            if daily_files:
                batch.daily = _read_files(daily_files)
            else:
                batch.daily = (
                    pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame(schema=DAILY_SCHEMA)
                )
        elif kind == "customers":
            batch.customers = pl.concat(frames, how="vertical_relaxed")
        elif kind == "interactions":
            batch.interactions = pl.concat(frames, how="vertical_relaxed")
        else:
            batch.payments = pl.concat(frames, how="vertical_relaxed")
        store.save_ingest(batch)
        return report
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _as_read(path: Path, kind: str, raw: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """The raw rows numbered ``rows``, with their values as written in the file.

    A clean CSV is read typed (the fast path), which would show ``-5.00`` as ``-5.0``: for its
    quarantined rows the file is read again as text (only files with quarantined rows pay this).
    """
    typed = [c for c, t in raw.schema.items() if c != "row" and t != pl.Utf8]
    if typed and detect_format(path) == "csv":
        try:
            text = scan_text(path, kind).join(rows.lazy(), on="row", how="semi").collect()
            if text.height == rows.height:
                return text
        except pl.exceptions.PolarsError:
            pass  # keep the typed values rather than lose the quarantine
    return raw.join(rows, on="row", how="semi")


#: frames with at least this many reads are split in two halves of whole customers for VEE
PARALLEL_MIN_ROWS = 200_000


def _registers_in_halves(raw: pl.DataFrame, today: dt.date | None, anchors: pl.DataFrame | None) -> vee.VeeResult:
    """``vee.registers_to_daily`` of ``raw``, on two threads when the file lists its customers in
    order (as exports do): each half holds whole customers, so the halves are independent (VEE works
    per meter and per customer). polars and the numba kernels release the GIL."""
    parts = halves_of_customers(raw, PARALLEL_MIN_ROWS)
    if len(parts) == 1 or "customer_id" not in vee._plain_text_columns(raw, ["customer_id"]):
        # (ids with spaces around them: " 7" and "7" are one customer, but may sort apart)
        return vee.registers_to_daily(raw, today=today, anchors=anchors)
    with ThreadPoolExecutor(max_workers=2) as pool:
        halves = list(pool.map(lambda part: vee.registers_to_daily(part, today=today, anchors=anchors), parts))
    return _merge_results(halves)


def _merge_results(parts: list[vee.VeeResult]) -> vee.VeeResult:
    """One ``VeeResult`` of results of disjoint sets of customers."""
    states = [p.state for p in parts if p.state is not None]
    extra: dict[str, int] = {}
    for p in parts:
        for k, v in p.extra.items():
            extra[k] = extra.get(k, 0) + v
    return vee.VeeResult(
        rows=sum(p.rows for p in parts),
        frame=pl.concat([p.frame for p in parts], how="vertical_relaxed"),
        quarantine=pl.concat([p.quarantine for p in parts], how="vertical_relaxed"),
        findings=pl.concat([p.findings for p in parts], how="vertical_relaxed"),
        duplicates=sum(p.duplicates for p in parts),
        loaded=sum(p.loaded for p in parts),
        estimated=sum(p.estimated for p in parts),
        extra=extra,
        state=pl.concat(states, how="vertical_relaxed") if states else None,
    )


def _newest_reads(states: list[pl.DataFrame], anchors: pl.DataFrame | None) -> pl.DataFrame:
    """Per meter, the newest of the file's last reads and the stored one (an older file loaded after
    a newer one does not move a meter's state back)."""
    new = pl.concat(states, how="vertical_relaxed")
    if anchors is not None and anchors.height:
        old = anchors.join(new.select("customer_id", "meter_id"), on=["customer_id", "meter_id"], how="semi")
        new = pl.concat([old, new], how="vertical_relaxed")
    return new.sort("day").group_by("customer_id", "meter_id", maintain_order=True).last()


def _read_files(files: list[Path]) -> Iterator[pl.DataFrame]:
    for f in files:
        yield pl.read_parquet(f)
