"""``ingest_file``: one file -> VEE -> one atomic ``Store.save_ingest`` call, recorded in the ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from wattbill.ingest import vee
from wattbill.ingest.errors import BadFileError, IngestError, UnknownKindError
from wattbill.ingest.interactions import interactions_frame
from wattbill.ingest.limits import DATE_ORDERS
from wattbill.ingest.readers import (
    EXTRA_FIELDS_COLUMN,
    bucketed,
    detect_format,
    n_buckets_for,
    raw_text,
    read_raw,
    scan_text,
    sha256_of,
    sweep_temporaries,
    utf8_source,
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

_T = TypeVar("_T")

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
    date_order: str | None = None,
    known_tariffs: Collection[str] | None = None,
) -> IngestReport:
    """Load one file into ``store`` (or only validate it when ``store`` is None).

    A file whose SHA-256 is already in the store's ledger is not loaded again (``already_loaded``).
    ``date_order`` (``"dmy"`` or ``"mdy"``) states how the file writes dates that do not start with
    the year (``01/02/2025``); without it such dates are quarantined (``ambiguous_date``, see
    ``ingest.limits``). ``known_tariffs``: the tariff codes a customer may have (customers files;
    others are quarantined ``unknown_tariff``).
    Raises ``IngestError`` subclasses for files that cannot be loaded; then nothing is stored.
    """
    path = Path(path)
    if kind not in KINDS:
        raise UnknownKindError(path, None, None, f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if date_order not in (None, *DATE_ORDERS):
        raise BadFileError(path, None, None, f"date order {date_order!r}: use one of {', '.join(DATE_ORDERS)}")
    opts = _Options(date_order if date_order != "ymd" else None, known_tariffs)
    if not path.is_file():
        raise BadFileError(path, None, None, "no such file")
    sweep_temporaries()
    lock = getattr(store, "ingest_lock", None) if kind == "registers" else None
    try:
        with utf8_source(path) as src:  # a GB18030/GBK export is read through a UTF-8 copy
            if lock is not None:
                # a register load computes consumption from each meter's last stored read: the read of the
                # state, VEE and the save must not interleave with another register load (or the later
                # file's first day is lost)
                with lock():
                    return _ingest_source(path, src, kind, store, today, n_buckets, opts)
            return _ingest_source(path, src, kind, store, today, n_buckets, opts)
    except IngestError as exc:
        exc.file = str(path)  # (never the temporary copy's name)
        raise


def _ingest_source(
    path: Path, src: Path, kind: str, store: Any, today: dt.date | None, n_buckets: int | None, opts: _Options
) -> IngestReport:
    """``ingest_file`` of ``path``, read from ``src`` (``path`` or its UTF-8 copy)."""
    buckets = n_buckets or n_buckets_for(src)
    if buckets > 1:
        # a large file: its hash is computed on a thread while the file is read into customer buckets
        # (hashlib releases the GIL; ~0.65 CPU-s per GB), and the ledger is asked before the first
        # bucket's VEE: a file loaded before costs one read of it, not a load
        with ThreadPoolExecutor(max_workers=1) as pool:
            fut = pool.submit(sha256_of, path)
            return _ingest(path, kind, store, fut.result, today, buckets, src=src, opts=opts)
    # a file read at once: its hash is computed while it goes through VEE (hashlib releases the GIL;
    # VEE leaves a core idle now and then, the CSV reader does not); a file loaded before is found
    # after VEE then, and nothing is stored
    raw = read_raw(src, kind)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(sha256_of, path)
        return _ingest(path, kind, store, fut.result, today, 1, raw, src=src, opts=opts)


def _ingest(
    path: Path,
    kind: str,
    store: Any,
    sha_of: str | Callable[[], str],
    today: dt.date | None,
    n_buckets: int,
    raw: pl.DataFrame | None = None,
    *,
    src: Path,
    opts: _Options | None = None,
) -> IngestReport:
    """``ingest_file`` given the file's hash (or a function that waits for it) and, for a file read at
    once, its ``raw`` frame; ``src`` is the file read (``path``, or its UTF-8 copy)."""
    opts = opts or _Options()
    fn = _VEE[kind]
    if kind == "customers" and opts.known_tariffs is not None:
        known = opts.known_tariffs
        fn = lambda raw, today=None: vee.customers_frame(raw, today=today, known_tariffs=known)  # noqa: E731
    rows = loaded = est = dups = 0
    qs: list[pl.DataFrame] = []
    fs: list[pl.DataFrame] = []
    frames: list[pl.DataFrame] = []
    tmp: Path | None = None
    daily_files: list[Path] = []
    asks_state = store is not None and kind == "registers"
    gaps = (lambda ids: known_gaps(store, ids)) if asks_state else None
    days = (lambda ids, first, last: stored_days(store, ids, first, last)) if asks_state else None
    stored: list[pl.DataFrame] = []  # the stored last reads of the file's meters, part by part
    states: list[pl.DataFrame] = []
    heads: list[pl.DataFrame] = []
    held: list[pl.DataFrame] = []  # a large file's quarantine rows, without their values as written yet
    bad_rows: list[pl.DataFrame] = []  # and the rows as read (typed on the fast path)
    try:
        def vee_part(raw: pl.DataFrame) -> tuple[pl.DataFrame, vee.VeeResult, pl.DataFrame | None,
                                                 pl.DataFrame | None]:
            """VEE of one part (whole customers): ``(raw, result, stored state, extra-fields rows)``."""
            extra = None
            if opts.date_order:
                raw = _dates_in_order(raw, opts.date_order)
            if EXTRA_FIELDS_COLUMN in raw.columns:
                marked = pl.col(EXTRA_FIELDS_COLUMN).is_not_null()
                extra = raw.filter(marked)
                raw = raw.filter(~marked).drop(EXTRA_FIELDS_COLUMN)
            state = None
            if kind != "registers":
                res = fn(raw, today=today)
                if kind == "consumption" and store is not None:
                    res = _without_stored_days(store, res)
            else:
                # the stored reads of this part's customers only: a daily file costs its meters,
                # not every meter stored
                ids = _customers_of(raw) if asks_state else []
                state = store.load_register_state(ids) if asks_state else None
                anchors = _anchors(store, state, _may_have_later_heads(state, raw)) if state is not None else None
                if n_buckets == 1:  # the file at once: VEE on two threads
                    res = _registers_in_halves(raw, today, anchors, gaps, days)
                else:  # a bucket of a large file: on one thread (two buckets run at once)
                    res = vee.registers_to_daily(raw, today=today, anchors=anchors, known_gaps=gaps,
                                                 stored_days=days)
            return raw, res, state, extra

        with bucketed(src, kind, n_buckets, raw) as parts:
            if n_buckets > 1 and not isinstance(sha_of, str):
                sha_of = sha_of()  # (the file is in its buckets: the hash is done or nearly)
                if store is not None and (rec := store.ledger_get(sha_of)) is not None:
                    return _report_from_ledger(rec, path)
            done = _two_at_a_time(parts, vee_part) if n_buckets > 1 else map(vee_part, parts)
            for i, (raw, res, state, extra) in enumerate(done):
                if extra is not None and extra.height:
                    rows += extra.height
                    qs.append(_extra_fields_quarantine(extra))
                if state is not None and state.height:
                    stored.append(state)
                if res.state is not None and res.state.height:
                    states.append(res.state)
                if res.heads is not None and res.heads.height:
                    heads.append(res.heads)
                rows += res.rows
                loaded += res.loaded
                est += res.estimated
                dups += res.duplicates
                if res.quarantine.height:
                    rows_q = res.quarantine.select("row").unique()
                    if n_buckets == 1:
                        bad = _as_read(src, kind, raw, rows_q)
                        qs.append(res.quarantine.join(bad.select("row", raw_text(bad).alias("raw")), on="row",
                                                      how="left"))
                    else:  # the values as written: read once for every bucket's rows (below)
                        bad_rows.append(raw.join(rows_q, on="row", how="semi"))
                        held.append(res.quarantine)
                if res.findings.height:
                    fs.append(res.findings)
                if (kind in ("registers", "consumption") and i > 0) or daily_files:
                    # several buckets: park each bucket's rows on disk so memory stays flat
                    if tmp is None:
                        tmp = Path(tempfile.mkdtemp(prefix=f"wattbill-daily-{os.getpid()}-"))
                        for j, fr in enumerate(frames):
                            fp = tmp / f"{j}.arrow"
                            fr.write_ipc(fp, compression="uncompressed")
                            daily_files.append(fp)
                        frames = []
                    # (Arrow IPC, memory-mapped when read back: Parquet's encoding and decoding cost
                    # ~0.1 CPU-s more per million rows, for a file that lives seconds)
                    fp = tmp / f"{i}.arrow"
                    res.frame.write_ipc(fp, compression="uncompressed")
                    daily_files.append(fp)
                else:
                    frames.append(res.frame)
        sha = sha_of if isinstance(sha_of, str) else sha_of()
        if store is not None and (rec := store.ledger_get(sha)) is not None:
            return _report_from_ledger(rec, path)  # loaded before: nothing changes
        if held:
            typed_bad = pl.concat(bad_rows, how="vertical_relaxed")
            bad = _as_read(src, kind, typed_bad, typed_bad.select("row"))
            qs.append(pl.concat(held, how="vertical_relaxed").join(
                bad.select("row", raw_text(bad).alias("raw")), on="row", how="left"))
        if store is not None and kind in ("customers", "payments", "interactions") and frames:
            frames, again = _without_stored(store, kind, pl.concat(frames, how="vertical_relaxed"))
            dups += again
            loaded -= again
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
        if store is not None and findings.height:
            findings = _without_stored_findings(store, findings)
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
            batch.register_state = _newest_reads(states, pl.concat(stored, how="vertical_relaxed") if stored else None)
        if heads:
            batch.register_heads = pl.concat(heads, how="vertical_relaxed")
        if kind in ("registers", "consumption"):
            if daily_files:
                batch.daily = _read_files(daily_files)
                batch.daily_disjoint = True  # (customer buckets)
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


@dataclass(frozen=True)
class _Options:
    """How to read a file beyond its kind: the date order it states, the tariff codes customers may have."""

    date_order: str | None = None
    known_tariffs: Collection[str] | None = None


_DATE_COLUMNS = ("read_date", "opened_on", "closed_on", "issued_on", "paid_on")


def _dates_in_order(raw: pl.DataFrame, order: str) -> pl.DataFrame:
    """Dates written day-first (``dmy``) or month-first (``mdy``) as ISO text; other values unchanged
    (VEE then reads or refuses them as usual)."""
    fmts = {"dmy": ("%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y"), "mdy": ("%m/%d/%Y", "%m.%d.%Y", "%m-%d-%Y")}[order]
    out = []
    for c in _DATE_COLUMNS:
        if c in raw.columns and raw.schema[c] == pl.Utf8:
            t = pl.col(c).str.strip_chars()
            iso = pl.coalesce([t.str.to_date(f, strict=False) for f in fmts]).dt.to_string("%Y-%m-%d")
            out.append(pl.when(t.str.contains(vee.AMBIGUOUS_DATE_RE)).then(iso).otherwise(pl.col(c)).alias(c))
    return raw.with_columns(out) if out else raw


def _extra_fields_quarantine(extra: pl.DataFrame) -> pl.DataFrame:
    """Quarantine rows for data rows with more fields than the header (``readers.read_raw``), each kept
    whole: every field as written, the ones beyond the header too."""
    return extra.select(
        "row",
        pl.lit(None, pl.Utf8).alias("column"),
        pl.lit("extra_fields").alias("code"),
        pl.lit("the row has more fields than the header (a comma inside an unquoted value?)").alias("reason"),
        pl.col(EXTRA_FIELDS_COLUMN).alias("raw"),
    )


def _as_read(path: Path, kind: str, raw: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """The raw rows numbered ``rows``, with their values as written in the file.

    A clean CSV is read typed (the fast path), which would show ``-5.00`` as ``-5.0``: for its
    quarantined rows the file is read again as text (only files with quarantined rows pay this).
    """
    typed = [c for c, t in raw.schema.items() if c != "row" and t != pl.Utf8]
    if typed and detect_format(path) == "csv":
        try:
            # (streamed: a large file's text is not held, only the rows asked)
            text = scan_text(path, kind).join(rows.lazy(), on="row", how="semi").collect(engine="streaming")
            if text.height == rows.height:
                return text
        except pl.exceptions.PolarsError:
            pass  # keep the typed values rather than lose the quarantine
    return raw.join(rows, on="row", how="semi")


def _two_at_a_time(parts: Iterator[pl.DataFrame], fn: Callable[[pl.DataFrame], _T]) -> Iterator[_T]:
    """``fn`` of each part, two parts at once on two threads, the results in the parts' order.

    The buckets of a large file hold disjoint customers, so their VEE is independent; polars and the
    numba kernels release the GIL. At most two parts are in VEE and one result waits for the caller
    (who parks it on disk), so memory stays bounded by a few buckets, whatever the file's size."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: deque[Future[_T]] = deque()
        for part in parts:
            pending.append(pool.submit(fn, part))
            if len(pending) == 2:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


#: frames with at least this many reads are split in two halves of whole customers for VEE
PARALLEL_MIN_ROWS = 200_000


def _registers_in_halves(
    raw: pl.DataFrame, today: dt.date | None, anchors: pl.DataFrame | None,
    gaps: Callable[[list[str]], pl.DataFrame] | None = None,
    days: Callable[[list[str], dt.date, dt.date], pl.DataFrame] | None = None,
) -> vee.VeeResult:
    """``vee.registers_to_daily`` of ``raw``, on two threads when the file lists its customers in
    order (as exports do): each half holds whole customers, so the halves are independent (VEE works
    per meter and per customer). polars and the numba kernels release the GIL."""
    parts = halves_of_customers(raw, PARALLEL_MIN_ROWS)
    if len(parts) == 1 or "customer_id" not in vee._plain_text_columns(raw, ["customer_id"]):
        # (ids with spaces around them: " 7" and "7" are one customer, but may sort apart)
        return vee.registers_to_daily(raw, today=today, anchors=anchors, known_gaps=gaps, stored_days=days)
    with ThreadPoolExecutor(max_workers=2) as pool:
        halves = list(pool.map(
            lambda part: vee.registers_to_daily(part, today=today, anchors=anchors, known_gaps=gaps,
                                                stored_days=days), parts))
    return _merge_results(halves)


def _merge_results(parts: list[vee.VeeResult]) -> vee.VeeResult:
    """One ``VeeResult`` of results of disjoint sets of customers."""
    states = [p.state for p in parts if p.state is not None]
    heads = [p.heads for p in parts if p.heads is not None]
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
        heads=pl.concat(heads, how="vertical_relaxed") if heads else None,
    )


def _without_stored(store: Any, kind: str, frame: pl.DataFrame) -> tuple[list[pl.DataFrame], int]:
    """``frame`` (customers, payments or interactions of one file) without the rows identical in every
    column to a stored row: a row sent again in a later file is a duplicate, not a loaded row (one that
    differs is a correction and stays: the store upserts it). Returns ``([rows], duplicates)``."""
    if frame.height == 0:
        return [frame], 0
    ids = frame["customer_id"].unique().to_list()
    if kind == "customers":
        stored = store.load_customers(ids)
    elif kind == "payments":
        stored = store.load_payments(customer_ids=ids)
    else:
        years = frame["occurred_at"].dt.year().unique().to_list()
        stored = pl.concat([store.load_interactions(int(y), ids) for y in years if y is not None],
                           how="vertical_relaxed") if years else frame.clear()
    if stored.height == 0:
        return [frame], 0
    cols = [c for c in frame.columns if c in stored.columns]
    stored = stored.select([pl.col(c).cast(frame.schema[c]) for c in cols])
    same = frame.join(stored, on=cols, how="semi", nulls_equal=True)
    if same.height == 0:
        return [frame], 0
    return [frame.join(stored, on=cols, how="anti", nulls_equal=True)], same.height


#: what makes two findings the same finding, whichever load recorded it
FINDING_IDENTITY = ["customer_id", "meter_id", "day", "code", "description"]


#: findings whose identity is the event, not the words: a meter exchange is found in one file (both meters'
#: reads) or across loads (one meter's reads stored), and told from either meter's side in other words;
#: it is the same exchange when the customer, the two meters and the new meter's first day are
_SAME_EVENT = {"meter_exchange": ("old_meter", "new_meter")}


def _finding_identity(findings: pl.DataFrame) -> pl.DataFrame:
    """``FINDING_IDENTITY`` of each finding, with ``_SAME_EVENT``'s codes identified by their evidence."""
    meter, words = pl.col("meter_id"), pl.col("description")
    for code, fields in _SAME_EVENT.items():
        event = pl.concat_str([pl.col("evidence").str.json_path_match(f"$.{k}") for k in fields], separator="\x1f")
        meter = pl.when(pl.col("code") == code).then(event).otherwise(meter)
        words = pl.when(pl.col("code") == code).then(pl.lit("")).otherwise(words)
    return findings.select("customer_id", meter.alias("meter_id"), "day", "code", words.alias("description"))


def _without_stored_findings(store: Any, findings: pl.DataFrame) -> pl.DataFrame:
    """``findings`` without those the store already holds from an earlier load (the same customer,
    meter, day, code and description; a meter exchange: the same customer, meters and day, whichever
    load found it and in whatever words): a file sent again with other bytes (CRLF line ends, another
    export) finds the same exchanges, rollovers and gaps, and they are recorded once."""
    stored = store.load_findings(findings["customer_id"].unique().to_list())
    if stored.height == 0:
        return findings
    known = _finding_identity(stored).unique()
    mine = _finding_identity(findings).with_row_index("_r")
    keep = mine.join(known, on=FINDING_IDENTITY, how="anti", nulls_equal=True)["_r"]
    return findings.with_row_index("_r").filter(pl.col("_r").is_in(keep.implode())).drop("_r")


def known_gaps(store: Any, customer_ids: list[str]) -> pl.DataFrame:
    """The stored gaps of ``customer_ids`` (``gap_estimated`` findings with their two reads) whose
    days are all still estimated in the store (``vee.GAP_SCHEMA``): a late file of those days
    continues from them (``vee.registers_to_daily``). Asked only for meters of a late file."""
    f = store.load_findings(customer_ids)
    f = f.filter(pl.col("code") == "gap_estimated") if f.height else f
    if f.height == 0:
        return pl.DataFrame(schema=vee.GAP_SCHEMA)
    ev_schema = pl.Struct({k: (pl.Utf8 if k in ("from", "to") else v) for k, v in vee.GAP_SCHEMA.items()
                           if k not in ("customer_id", "meter_id")})
    g = f.select("customer_id", "meter_id", pl.col("evidence").str.json_decode(ev_schema).alias("e")).unnest("e")
    g = g.filter(pl.col("to_total_wh").is_not_null() & pl.col("from_total_wh").is_not_null()).with_columns(
        pl.col("from").str.to_date(), pl.col("to").str.to_date()
    ).unique(["customer_id", "meter_id", "from", "to"])
    if g.height == 0:
        return pl.DataFrame(schema=vee.GAP_SCHEMA)
    years = range(g["from"].min().year, g["to"].max().year + 1)
    daily = pl.concat([store.load_daily(y, customer_ids).select("customer_id", "meter_id", "day", "estimated")
                       for y in years], how="vertical_relaxed")
    days = g.with_columns(pl.int_ranges(1, (pl.col("to") - pl.col("from")).dt.total_days() + 1).alias("_i")).explode(
        "_i").with_columns((pl.col("from") + pl.duration(days=pl.col("_i"))).alias("day"))
    still = days.join(daily, on=["customer_id", "meter_id", "day"], how="left").group_by(
        "customer_id", "meter_id", "from", "to").agg(pl.col("estimated").fill_null(False).all().alias("_open"))
    g = g.join(still.filter(pl.col("_open")), on=["customer_id", "meter_id", "from", "to"], how="semi")
    return g.select([pl.col(k).cast(v) for k, v in vee.GAP_SCHEMA.items()])


def stored_days(store: Any, customer_ids: list[str], first: dt.date, last: dt.date) -> pl.DataFrame:
    """The stored daily rows (``DAILY_SCHEMA``) of ``customer_ids`` from ``first`` through ``last``: a
    late file's pairs of reads keep the days measured there (``vee.registers_to_daily``), and a daily
    consumption file's rows identical to them are duplicates (:func:`_without_stored_days`).
    ``Store.load_daily_between``: the cost follows the days asked, not the days stored."""
    return store.load_daily_between(first, last, customer_ids)


def _without_stored_days(store: Any, res: vee.VeeResult) -> vee.VeeResult:
    """``res`` (VEE of daily consumption reads) without the days identical in every column to a stored
    day (``DAILY_SCHEMA``, nulls equal): a day sent again in a later file is a duplicate, not a loaded
    row, as it is for register reads (``vee._respect_stored_days``), customers and payments
    (:func:`_without_stored`). A day that differs is a correction and stays (the store upserts it).
    Only the stored rows of the file's customers and days are read (:func:`stored_days`)."""
    frame = res.frame
    if frame.height == 0:
        return res
    first, last = frame["day"].min(), frame["day"].max()
    stored = stored_days(store, frame["customer_id"].unique().to_list(), first, last)  # type: ignore[arg-type]
    if stored.height == 0:
        return res
    cols = list(DAILY_SCHEMA)
    stored = stored.select([pl.col(c).cast(DAILY_SCHEMA[c]) for c in cols])
    same = frame.join(stored, on=cols, how="semi", nulls_equal=True)
    if same.height == 0:
        return res
    kept = frame.join(stored, on=cols, how="anti", nulls_equal=True, maintain_order="left")
    again_est = int(same["estimated"].sum())
    return dataclasses.replace(
        res, frame=kept, duplicates=res.duplicates + same.height, loaded=res.loaded - same.height,
        estimated=res.estimated - again_est,
    )


def _customers_of(raw: pl.DataFrame) -> list[str]:
    """The customer ids of a raw frame as VEE reads them (stripped text, blanks left out)."""
    if "customer_id" not in raw.columns:
        return []
    return raw.select(vee._text(raw, "customer_id").alias("c")).drop_nulls().unique()["c"].to_list()


def _may_have_later_heads(state: pl.DataFrame, raw: pl.DataFrame) -> list[str] | None:
    """The customers of ``raw`` whose stored heads VEE may use: those whose stored last read is not
    before the file's first day (``None``: all of them, when no date of the file reads).

    VEE continues a meter's reads to a stored head only when the head is after the meter's last read
    in the file (``vee._with_anchors``); a head is a stored read, so it is never after the meter's
    stored last read (``state``). A file after every stored read (a daily file) needs no head."""
    if state.height == 0:
        return []
    if "read_date" not in raw.columns:
        return None
    first = raw.select(vee._date(raw, "read_date").min()).item()
    if first is None:
        return None
    return state.filter(pl.col("day") >= first)["customer_id"].unique().to_list()


def _anchors(store: Any, state: pl.DataFrame, customer_ids: list[str] | None) -> pl.DataFrame:
    """The stored reads VEE may continue from: each meter's last read (``state``, the file's customers
    only; ``head`` false) and the first reads of later files that had no read before them (``head`` true,
    ``IngestBatch.register_heads``) of ``customer_ids`` (``None``: of every customer of ``state``; see
    :func:`_may_have_later_heads`). A daily file asks for its own customers, not every meter stored."""
    load_heads = getattr(store, "load_register_heads", None)
    if customer_ids is None:
        customer_ids = state["customer_id"].unique().to_list()
    heads = load_heads(customer_ids) if load_heads is not None and customer_ids else None
    parts = [state.with_columns(pl.lit(False).alias("head"))]
    if heads is not None and heads.height:
        parts.append(heads.with_columns(pl.lit(True).alias("head")))
    return pl.concat(parts, how="vertical_relaxed")


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
        yield pl.read_ipc(f, memory_map=True)  # (removed after the save: the mapping keeps the pages)
