"""The embedded store: Parquet files under a folder, one manifest naming the current files.

Layout (``root`` = the store folder)::

    manifest.json                          {"format": 1, "seq": N, "files": {partition key: relative path
                                           or a list of them (a partition in segments, see below)}}
    daily/year=2024/bucket=07/<seq>-<id>.parquet
    customers/bucket=07/...
    payments/year=2024/...                 (year of bill_month)
    interactions/year=2024/...             (year of occurred_at)
    quarantine/sha=<file sha256>/...       findings/sha=<file sha256>/...
    ledger/all/...
    bills/year=2024/bucket=07/...          bill_months/... labels/...  (same partitioning)

``daily``, ``customers``, bills and labels are partitioned by a stable hash bucket of the customer id
(``ingest.schemas.customer_bucket``), and by year where there is one, so that a bill run for a year and
a range of customers opens only the files it needs.

Writes are atomic: every write creates new files (never rewrites one), then replaces ``manifest.json``
with ``os.replace`` (the commit point). A crash before the rename leaves the previous manifest, hence the
previous state; stray files are never named and so never read. Files a commit replaced are deleted
``GC_DELAY_S`` later (by a later commit), so a reader that opened the previous manifest can finish.
Writers take an exclusive ``flock`` on ``.lock``; readers take no lock.

A ``daily`` partition loaded from a large file streamed in chunks is written in **segments** of at
most ``SEGMENT_ROWS`` rows (each sorted, no key twice, no key in two segments), so that memory stays
bounded by a segment whatever the file's size.

Daily partitions grow by **day segments** (issue #14): each segment's file name carries its first and
last day and its rows (``_segment_tag``); a load writes one new segment per partition and merges only the
segments whose days meet its own (``_merge_daily``), so a daily file costs a day, not the year stored.
Size-tiered compaction within a budget per load (``_compact_step``), the rest by ``compact()``.
See docs/store.md.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from wattbill.ingest.schemas import (
    CUSTOMER_SCHEMA,
    DAILY_SCHEMA,
    FINDING_SCHEMA,
    INTERACTION_KEYS,
    INTERACTION_SCHEMA,
    LEDGER_SCHEMA,
    PAYMENT_SCHEMA,
    QUARANTINE_SCHEMA,
    REGISTER_STATE_SCHEMA,
    IngestBatch,
    customer_bucket,
    halves_of_customers,
    is_sorted_by,
)
from wattbill.store.base import NOT_BILLED_SCHEMA, daily_columns_schema, latest_only, plan_versions
from wattbill.store.errors import StoreCorrupt, StoreUnavailable

N_BUCKETS = 32
#: partitions merged and written at once (polars releases the GIL; more threads than cores also hide
#: each file's fixed costs: measured 0.150 s with 2, 0.124 s with 4 for 64 partitions of 2.2M rows)
WRITE_THREADS = 4
GC_DELAY_S = 300  # a replaced file is deleted this long after the commit that replaced it
KEYS = {
    "daily": ["customer_id", "meter_id", "day"],
    "customers": ["customer_id"],
    "register_state": ["customer_id", "meter_id"],
    "register_heads": ["customer_id", "meter_id", "day"],
    "payments": ["customer_id", "bill_month"],
    "interactions": list(INTERACTION_KEYS),
    "bills": ["customer_id", "year", "version"],
    "bill_months": None,  # rows of a new version are only ever added
    "labels": None,
}


KEYS_DAILY = ["customer_id", "meter_id", "day"]
#: rows of a daily segment written from a streamed load (memory of a merge is about 300 B per row)
SEGMENT_ROWS = 250_000
#: writer threads of a streamed load (each holds a segment in memory)
STREAM_WRITE_THREADS = 2


def _write_segments(
    txn: _Txn, key: str, staged: list[Path], keys: list[str], schema: dict | None, segment_rows: int
) -> list[Path] | None:
    """Write the staged pieces of a new partition as segments of at most ``segment_rows`` rows each
    (a piece larger than that is a segment by itself), each sorted with no key twice.

    Pieces of a streamed ingest come from chunks of different customers, so no key is in two
    segments; if a customer does turn up in two segments, the segments are removed and ``None`` is
    returned (the caller merges the pieces into one file). A key repeated within a segment keeps its
    last row (``_last_per_key``), as any upsert does.
    """
    groups: list[list[Path]] = [[]]
    rows = 0
    for f in staged:
        n = pq.ParquetFile(f).metadata.num_rows
        if groups[-1] and rows + n > segment_rows:
            groups.append([])
            rows = 0
        groups[-1].append(f)
        rows += n
    out: list[Path] = []
    seen = pl.Series("customer_id", [], dtype=pl.Utf8)
    for group in groups:
        seg = pl.concat([pl.read_parquet(f) for f in group], how="diagonal_relaxed")
        seg = _last_per_key(seg, keys) if keys else seg
        ids = seg["customer_id"].unique()
        if len(out) and ids.is_in(seen.implode()).any():  # not customer-disjoint: merge instead
            txn.discard(out)
            return None
        seen = pl.concat([seen, ids])
        seg = _cast(seg, schema) if schema else seg
        out.append(txn.write(key, seg, _segment_tag(seg)))
        del seg
    return out
#: daily segments merged at once by the compaction of appended segments (see ``_merge_daily``)
FANIN = 8
#: a compaction on a load merges at most this many times the rows the load adds to the partition, so
#: that a daily load stays proportional to its file; larger merges wait for ``EmbeddedStore.compact``
COMPACT_BUDGET = 2 * FANIN
#: segments of a daily partition beyond which a load compacts whatever its budget
MAX_SEGMENTS = 96
_TAG = re.compile(r"\.d(-?\d+)_(-?\d+)_n(\d+)\.parquet$")


def _segment_tag(df: pl.DataFrame) -> str:
    """The name tag of a daily segment: its first and last day (days since 1970-01-01) and its rows,
    so that a load knows which segments its days touch without opening any file."""
    if df.height == 0:
        return ""
    d = df.get_column("day").to_physical().to_numpy()
    return f".d{int(d.min())}_{int(d.max())}_n{df.height}"


def _segment_meta(path: Path) -> tuple[int, int, int] | None:
    """(first day, last day, rows) of a daily segment from its name; ``None`` for a file written
    before segments were tagged (treated as spanning every day)."""
    m = _TAG.search(path.name)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def _tier(rows: int) -> int:
    """Size tier of a segment: 0 below 1,024 rows, then one tier per factor ``FANIN``."""
    t = 0
    while rows >= 1024 * FANIN ** (t + 1) and t < 16:
        t += 1
    return t


def _merge_daily(txn: _Txn, key: str, cur: list[Path], new: pl.DataFrame, keys: list[str]) -> list[Path]:
    """Upsert ``new`` (sorted by ``keys``, no key twice) into the daily partition ``key`` whose
    segments are ``cur``, at a cost proportional to ``new``, not to the partition.

    Segments are day ranges (``_segment_tag``) with no key in two segments. Only the segments whose
    day range meets ``new``'s days are read and merged with it (a re-sent or corrected day, or a late
    file); a file of new days is written as one more segment and nothing stored is read. Then, at
    most one size-tiered compaction (``_compact_step``). Returns the partition's segments in day order.
    """
    if new.height == 0:
        return list(cur)
    d = new.get_column("day").to_physical().to_numpy()
    lo, hi = int(d.min()), int(d.max())
    hit: list[Path] = []
    keep: list[Path] = []
    for p in cur:
        m = _segment_meta(p)
        (hit if m is None or not (m[1] < lo or m[0] > hi) else keep).append(p)
    if hit:
        old = pl.concat([pl.read_parquet(p) for p in hit], how="diagonal_relaxed")
        old = _cast(old, dict(new.schema)).join(new.select(keys), on=keys, how="anti")
        new = pl.concat([old, new], how="vertical_relaxed").sort(keys)
    segs = [*keep, txn.write(key, new, _segment_tag(new))]
    return _compact_step(txn, key, _by_day(segs), keys, budget=COMPACT_BUDGET * new.height)


def _by_day(segs: list[Path]) -> list[Path]:
    """Segments in order of their first and last day (untagged ones first)."""

    def order(p: Path) -> tuple[int, int]:
        m = _segment_meta(p)
        return (m[0], m[1]) if m is not None else (-(2**40), 0)

    return sorted(segs, key=order)


def _compact_step(txn: _Txn, key: str, segs: list[Path], keys: list[str], budget: int | None) -> list[Path]:
    """Merge the first run of ``FANIN`` day-adjacent segments of the lowest size tier into one, if
    their rows fit ``budget`` (``None``: any) and ``SEGMENT_ROWS``; or, with more than
    ``MAX_SEGMENTS`` segments, the smallest adjacent run whatever the budget. Segments hold disjoint
    keys, so a merge is a concatenation in day order and a sort."""
    metas = [_segment_meta(p) for p in segs]
    if len(segs) < FANIN or any(m is None for m in metas):
        return segs
    rows = [m[2] for m in metas if m is not None]
    tiers = [_tier(r) for r in rows]
    best: tuple[int, int] | None = None  # (tier, start)
    for i in range(len(segs) - FANIN + 1):
        t = tiers[i]
        if all(x == t for x in tiers[i : i + FANIN]) and (best is None or t < best[0]):
            best = (t, i)
    if best is None and len(segs) > MAX_SEGMENTS:
        sums = [sum(rows[i : i + FANIN]) for i in range(len(segs) - FANIN + 1)]
        best = (0, int(np.argmin(sums)))
        budget = None
    if best is None:
        return segs
    i = best[1]
    total = sum(rows[i : i + FANIN])
    if (budget is not None and total > budget) or (total > SEGMENT_ROWS and len(segs) <= MAX_SEGMENTS):
        return segs
    group = segs[i : i + FANIN]
    merged = pl.concat([pl.read_parquet(p) for p in group], how="vertical_relaxed")
    if not is_sorted_by(merged, keys):
        merged = merged.sort(keys)
    txn.discard([p for p in group if p in txn.written])  # (written by this write: never named)
    return _by_day([*segs[:i], txn.write(key, merged, _segment_tag(merged)), *segs[i + FANIN :]])


#: daily batches with at least this many rows are checked and partitioned in two halves at once
SPLIT_MIN_ROWS = 400_000


def _years_of_days(day: pl.Series) -> np.ndarray:
    """The calendar year of each date, by a lookup table over the dates' span (a tenth of the cost of
    ``dt.year()``, which works the calendar out for every row)."""
    d = day.to_physical().to_numpy()
    if len(d) == 0 or day.null_count():
        return day.dt.year().to_numpy()
    lo, hi = int(d.min()), int(d.max())
    span = np.arange(lo, hi + 1).astype("datetime64[D]")
    table = span.astype("datetime64[Y]").astype(np.int32) + 1970
    return table[d - lo]


def _bucket_of(ids: Sequence[str], n: int = N_BUCKETS) -> set[int]:
    s = pl.DataFrame({"c": list(ids)}, schema={"c": pl.Utf8})
    return set(s.select(customer_bucket("c", n))["c"].to_list())


def _cast(df: pl.DataFrame, schema: dict) -> pl.DataFrame:
    return df.select(
        [pl.col(k).cast(v) if k in df.columns else pl.lit(None, v).alias(k) for k, v in schema.items()]
    )


#: id lists up to this long are looked up row by row while a file is scanned; a longer list (a bill
#: run's chunk: a range of consecutive ids) is scanned by its range of ids, so that row groups outside
#: it are skipped by their statistics, and then looked up once per run of equal ids
#: (``_rows_of_customers``): 0.98 instead of 4.11 CPU-s for 20,000 of 100,000 households' year of
#: rows (2026-12-01)
SCAN_IS_IN_MAX = 1_000


def _customers_filter(lf: pl.LazyFrame, ids: pl.Series | None) -> pl.LazyFrame:
    """``lf`` narrowed to the range of ``ids`` (pushed into the scan), and to ``ids`` themselves when
    there are at most ``SCAN_IS_IN_MAX`` (else ``_rows_of_customers`` after the scan)."""
    if ids is None:
        return lf
    if ids.len() == 0:
        return lf.head(0)
    col = pl.col("customer_id")
    lf = lf.filter(col.is_between(pl.lit(ids.min(), pl.Utf8), pl.lit(ids.max(), pl.Utf8)))
    return lf.filter(col.is_in(ids.implode())) if ids.len() <= SCAN_IS_IN_MAX else lf


def _rows_of_customers(df: pl.DataFrame, ids: pl.Series) -> pl.DataFrame:
    """The rows of ``df`` whose customer is in ``ids``: one lookup per run of equal ids (rows are
    stored grouped by customer), not one per row; any order of rows gives the same rows."""
    if df.height == 0:
        return df
    runs = df.get_column("customer_id").rle().struct.unnest()
    keep = runs.get_column("value").is_in(ids.implode())
    if keep.all():
        return df
    lens = runs.get_column("len").to_numpy()
    return df.filter(pl.Series(np.repeat(keep.to_numpy(), lens)))


def _last_per_key(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The last row for each key (upsert order), sorted by ``keys``; a stable sort, no hashing."""
    if df.height < 2:
        return df
    if not is_sorted_by(df, keys):
        df = df.sort(keys, maintain_order=True)
    same_next = pl.all_horizontal([pl.col(k) == pl.col(k).shift(-1) for k in keys]).fill_null(False)
    flags = df.select(same_next.alias("_s"))["_s"]
    return df.filter(~flags) if flags.any() else df


def _sorted_customer_runs(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """``df.sort(keys)`` (``keys[0]`` the customer id) for a frame read from partition files that are each
    sorted by ``keys``: each customer's rows are then already in order, only the runs of equal ids
    (the buckets interleave customers) need ordering. The runs are ordered by id (a stable sort of one
    id per run) and the rows gathered once; the result is checked, and a full sort is the fallback.

    About ten times cheaper than the sort for the daily rows (0.56 s against 6.9 s of CPU for 18M
    rows of 50,000 customers, measured 2026-11-23), which was most of the bill run's time.
    """
    if df.height < 2:
        return df
    df = _group_customer_runs(df, keys[0])
    return df if is_sorted_by(df, keys) else df.sort(keys)


def _group_customer_runs(df: pl.DataFrame, key: str, in_order: bool = True) -> pl.DataFrame:
    """The rows of ``df`` with each value of ``key`` together and in order of ``key``, each value's rows
    in their order in ``df`` (a stable sort of the runs of equal values, one gather).

    ``in_order=False``: only together; a frame whose values are each one run already (segments that
    hold disjoint customers, as a streamed load writes them) is returned as it is, without the gather
    (18 of 122 CPU-s of a bill run of 100,000 households, 2026-12-01)."""
    if df.height < 2:
        return df
    rle = df.get_column(key).rle().struct.unnest()
    if not in_order and not rle.get_column("value").is_duplicated().any():
        return df
    lens = rle.get_column("len").to_numpy().astype(np.int64)
    order = rle.select(pl.arg_sort_by("value", maintain_order=True)).to_series().to_numpy()
    if not (order[1:] > order[:-1]).all():  # (runs already in order: nothing to gather)
        starts = np.zeros(lens.size, np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        take = lens[order]
        ends = np.cumsum(take)
        df = df[np.arange(ends[-1], dtype=np.int64) + np.repeat(starts[order] - (ends - take), take)]
    return df


def _rels(value: str | list[str] | None) -> list[str]:
    """The relative paths of a manifest entry (one file, or a partition's segments)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _all_rels(files: dict) -> set[str]:
    return {r for v in files.values() for r in _rels(v)}


class _Txn:
    """Files written by one write; committed by replacing the manifest."""

    def __init__(self, store: EmbeddedStore, manifest: dict) -> None:
        self.store = store
        self.files: dict[str, str | list[str]] = dict(manifest["files"])
        self.garbage: list[list] = [list(g) for g in manifest.get("garbage", [])]
        self.seq = int(manifest["seq"]) + 1
        self.old: set[str] = _all_rels(manifest["files"])
        self.written: list[Path] = []
        self._lock = threading.Lock()

    def current(self, key: str) -> Path | None:
        """The file of a single-file partition (``None``: none yet)."""
        rels = _rels(self.files.get(key))
        if len(rels) > 1:  # pragma: no cover - only daily partitions have segments
            raise StoreCorrupt(f"{key}: {len(rels)} segments where one file is expected")
        return self.store.root / rels[0] if rels else None

    def segments(self, key: str) -> list[Path]:
        """All files of partition ``key`` (one, or its segments)."""
        return [self.store.root / r for r in _rels(self.files.get(key))]

    def put(self, key: str, df: pl.DataFrame) -> None:
        self.record(key, self.write(key, df))

    def write(self, key: str, df: pl.DataFrame, tag: str = "") -> Path:
        """Write ``df`` as a new file for ``key`` (not yet named in the manifest; thread-safe);
        ``tag`` is added to the file's name (a daily segment's day range and rows, ``_segment_tag``)."""
        rel = f"{key}/{self.seq:08d}-{uuid.uuid4().hex[:8]}{tag}.parquet"
        path = self.store.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        try:
            # no column statistics: a partition file is one row group, read whole (20 % faster writes)
            df.write_parquet(tmp, compression="zstd", compression_level=1, statistics=False)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with self._lock:
            self.written.append(path)
        return path

    def discard(self, paths: list[Path]) -> None:
        """Remove files this transaction wrote and will not name."""
        with self._lock:
            for p in paths:
                p.unlink(missing_ok=True)
                self.written.remove(p)

    def record(self, key: str, path: Path | list[Path]) -> None:
        """Name ``path`` (from ``write``) as the file of ``key`` in this transaction (a list: segments)."""
        if isinstance(path, list):
            rels = [p.relative_to(self.store.root).as_posix() for p in path]
            self.files[key] = rels[0] if len(rels) == 1 else rels
        else:
            self.files[key] = path.relative_to(self.store.root).as_posix()

    def commit(self) -> None:
        root = self.store.root
        for p in self.written:  # durability of the data before the manifest names it
            _fsync(p)
        now = time.time()
        # files no longer named are removed later (GC_DELAY_S), so that readers that opened the previous
        # manifest can still read them
        self.garbage += [[rel, now] for rel in sorted(self.old - _all_rels(self.files))]
        expired = [g for g in self.garbage if now - g[1] > GC_DELAY_S]
        self.garbage = [g for g in self.garbage if now - g[1] <= GC_DELAY_S]
        manifest = {"format": 1, "seq": self.seq, "files": self.files, "garbage": self.garbage}
        tmp = root / f"manifest.json.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=0, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, root / "manifest.json")
        _fsync_dir(root)
        self.store._manifest = manifest
        for rel, _ in expired:
            try:
                (root / rel).unlink()
            except FileNotFoundError:
                pass

    def abort(self) -> None:
        for p in self.written:
            p.unlink(missing_ok=True)


def _fsync(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(p: Path) -> None:
    try:
        _fsync(p)
    except OSError:
        pass


class EmbeddedStore:
    """Parquet store under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path, n_buckets: int = N_BUCKETS) -> None:
        self.root = Path(root)
        self.url = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / ".lock").touch(exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"store folder {self.root} is not writable: {e}") from None
        self._manifest: dict | None = None
        meta = self.root / "store.json"
        if meta.exists():
            self.n_buckets = int(json.loads(meta.read_text())["n_buckets"])
        else:
            self.n_buckets = n_buckets
            tmp = meta.with_name(f".store.json.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")  # concurrent first opens
            tmp.write_text(json.dumps({"kind": "wattbill-embedded", "n_buckets": n_buckets}))
            os.replace(tmp, meta)

    # --- manifest and transactions ----------------------------------------------------------

    def _read_manifest(self) -> dict:
        p = self.root / "manifest.json"
        if not p.exists():
            return {"format": 1, "seq": 0, "files": {}}
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise StoreCorrupt(f"{p}: unreadable manifest: {e}") from None

    @contextmanager
    def ingest_lock(self) -> Iterator[None]:
        """Serialise register loads across processes (see ``Store.ingest_lock``): an exclusive ``flock``
        on ``.ingest.lock``, released when the load ends or its process dies."""
        with open(self.root / ".ingest.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _sweep_orphans(self, manifest: dict) -> int:
        """Remove files of writes that died before their commit (kill -9): data files the manifest does not
        name and its garbage list does not hold, ``*.tmp`` files and ``_staging`` folders. Called by a
        writer holding the lock, only when the previous writer left its marker (``.writing``), so a
        clean store pays nothing. Returns the files removed."""
        named = _all_rels(manifest.get("files", {})) | {g[0] for g in manifest.get("garbage", [])}
        removed = 0
        for p in self.root.rglob("*"):
            if not p.is_file():
                continue
            rel = p.relative_to(self.root).as_posix()
            top = rel.split("/", 1)[0]
            if top.startswith(".") or rel in ("manifest.json", "store.json"):
                continue
            stale_tmp = p.suffix == ".tmp"
            orphan = "/" in rel and p.suffix == ".parquet" and rel not in named
            if stale_tmp or orphan or top == "_staging":
                p.unlink(missing_ok=True)
                removed += 1
        shutil.rmtree(self.root / "_staging", ignore_errors=True)
        return removed

    @contextmanager
    def _write(self) -> Iterator[_Txn]:
        with open(self.root / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            marker = self.root / ".writing"
            try:
                manifest = self._read_manifest()
                if marker.exists():  # the previous writer died before it finished: its files are orphans
                    self._sweep_orphans(manifest)
                marker.write_text(str(os.getpid()))
                txn = _Txn(self, manifest)
                try:
                    yield txn
                except BaseException:
                    txn.abort()
                    raise
                txn.commit()
                marker.unlink(missing_ok=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _files(self, prefix: str, pred=None) -> list[Path]:
        files = self._read_manifest()["files"]
        out: list[Path] = []
        for key, value in sorted(files.items()):
            if not key.startswith(prefix + "/"):
                continue
            if pred is not None and not pred(key[len(prefix) + 1 :]):
                continue
            out.extend(self.root / rel for rel in _rels(value))
        return out

    def _scan(self, files: list[Path], schema: dict | None) -> pl.DataFrame:
        if not files:
            return pl.DataFrame(schema=schema) if schema else pl.DataFrame()
        try:
            frames = [pl.read_parquet(f) for f in files]
        except (OSError, pl.exceptions.PolarsError) as e:
            raise StoreCorrupt(f"{self.root}: unreadable data file: {e}") from None
        df = pl.concat(frames, how="diagonal_relaxed")
        return _cast(df, schema) if schema else df

    def _scan_customers(
        self, files: list[Path], schema: dict | None, customer_ids: Sequence[str] | None
    ) -> pl.DataFrame:
        """The rows of ``files`` (each read on its own, concatenated as ``_scan``) of ``customer_ids``
        (None: all), cast to ``schema``. See ``_customers_filter``."""
        if not files:
            return pl.DataFrame(schema=schema) if schema else pl.DataFrame()
        ids = None if customer_ids is None else pl.Series("customer_id", list(customer_ids), dtype=pl.Utf8)
        try:
            frames = [_customers_filter(pl.scan_parquet(f), ids).collect() for f in files]
        except (OSError, pl.exceptions.PolarsError) as e:
            raise StoreCorrupt(f"{self.root}: unreadable data file: {e}") from None
        df = pl.concat(frames, how="diagonal_relaxed")
        if ids is not None and ids.len() > SCAN_IS_IN_MAX:
            df = _rows_of_customers(df, ids)
        return _cast(df, schema) if schema else df

    def _bucket_pred(self, customer_ids: Sequence[str] | None, year: int | None):
        buckets = _bucket_of(customer_ids, self.n_buckets) if customer_ids is not None else None

        def pred(part: str) -> bool:
            kv = dict(x.split("=", 1) for x in part.split("/") if "=" in x)
            if year is not None and "year" in kv and int(kv["year"]) != year:
                return False
            if buckets is not None and "bucket" in kv and int(kv["bucket"]) not in buckets:
                return False
            return True

        return pred

    def _upsert(
        self,
        txn: _Txn,
        table: str,
        pieces: dict[str, list[pl.DataFrame | Path]],
        keys: list[str] | None,
        sort: list[str] | None,
        schema: dict | None = None,
        clean: bool = False,
        defer: list | None = None,
        segment_rows: int = 0,
    ) -> None:
        """Merge ``pieces`` (partition -> new frames) into ``table``: per key the newest row wins.

        ``clean``: each piece's frames, concatenated in order, are already sorted by ``keys`` with no key
        twice (checked by the caller), so they are written as they are. ``defer``: append the work of
        each partition to this list (run later by ``_run``, with other tables' work) instead of now.
        ``segment_rows``: a new partition whose pieces are all staged files (a streamed load) is written
        in segments of at most this many rows (``_write_segments``).
        """
        def load(f: pl.DataFrame | Path) -> pl.DataFrame:
            return pl.read_parquet(f) if isinstance(f, Path) else f

        def one(part: str, frames: list[pl.DataFrame | Path]) -> tuple[str, Path | list[Path]]:
            key = f"{table}/{part}"
            cur = txn.segments(key)
            if segment_rows and not cur and all(isinstance(f, Path) for f in frames):
                staged = [f for f in frames if isinstance(f, Path)]
                segs = _write_segments(txn, key, staged, keys or [], schema, segment_rows)
                if segs is not None:
                    return key, segs
            loaded = [load(f) for f in frames]
            new = pl.concat(loaded, how="diagonal_relaxed") if len(loaded) > 1 else loaded[0]
            if keys and not clean:
                new = _last_per_key(new, keys)
            if table == "daily" and keys:
                return key, _merge_daily(txn, key, cur, _cast(new, schema) if schema else new, keys)
            if cur:
                old = pl.concat([pl.read_parquet(f) for f in cur], how="diagonal_relaxed")
                if keys:
                    old = old.join(new.select(keys), on=keys, how="anti")
                new = pl.concat([old, new], how="diagonal_relaxed")
            if schema:
                new = _cast(new, schema)
            if sort and (cur or sort != keys):
                new = new.sort(sort)
            return key, txn.write(key, new)

        tasks = [functools.partial(one, part, frames) for part, frames in pieces.items()]
        if defer is not None:
            defer.extend(tasks)
        else:
            self._run(txn, tasks)

    @staticmethod
    def _run(txn: _Txn, tasks: list, threads: int = WRITE_THREADS) -> None:
        """Run partition merges/writes (from ``_upsert``), on ``threads`` threads when there are
        several (polars releases the GIL while it merges and writes), and name their files."""
        if len(tasks) < 4 or threads <= 1:
            done = [t() for t in tasks]
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                done = list(pool.map(lambda t: t(), tasks))
        for key, path in done:
            txn.record(key, path)

    def _partition(self, df: pl.DataFrame, by_year: str | None) -> dict[str, pl.DataFrame]:
        # the bucket of each run of equal ids (frames are mostly sorted by customer: few runs)
        run = df.select(pl.col("customer_id").rle_id().alias("r"))["r"]
        first = df.select("customer_id").filter(run.is_first_distinct())
        per_run = first.select(customer_bucket("customer_id", self.n_buckets))["customer_id"].to_numpy()
        exprs: list[pl.Series | pl.Expr] = [pl.Series("_bucket", per_run[run.to_numpy()], dtype=pl.Int32)]
        if by_year == "day":
            exprs.append(pl.Series("_year", _years_of_days(df["day"])))
        elif by_year == "bill_month":
            exprs.append(pl.col("bill_month").str.slice(0, 4).cast(pl.Int32).alias("_year"))
        elif by_year == "year":
            exprs.append(pl.col("year").cast(pl.Int32).alias("_year"))
        d = df.with_columns(exprs)
        by = ["_year", "_bucket"] if by_year else ["_bucket"]
        out = {}
        for k, part in d.partition_by(by, as_dict=True, maintain_order=True).items():
            name = f"year={k[0]}/bucket={k[1]:02d}" if by_year else f"bucket={k[0]:02d}"
            out[name] = part.drop(by)
        return out

    # --- ingest -------------------------------------------------------------------------------

    def ledger_get(self, sha256: str) -> dict | None:
        led = self.load_ledger()
        hit = led.filter(pl.col("sha256") == sha256)
        return hit.row(0, named=True) if hit.height else None

    def load_ledger(self) -> pl.DataFrame:
        return self._scan(self._files("ledger"), LEDGER_SCHEMA)

    def save_ingest(self, batch: IngestBatch) -> None:
        sha = batch.ledger["sha256"]
        staging = self.root / "_staging" / uuid.uuid4().hex
        try:
            with self._write() as txn:
                led_file = txn.current("ledger/all")
                if led_file is not None:
                    if pl.read_parquet(led_file).filter(pl.col("sha256") == sha).height:
                        return  # loaded meanwhile by another process: nothing changes
                tasks: list = []  # daily and register state partitions, written together
                if batch.daily is not None:
                    self._save_daily(txn, batch.daily, staging, tasks)
                if batch.customers is not None and batch.customers.height:
                    parts = self._partition(_cast(batch.customers, CUSTOMER_SCHEMA), None)
                    self._upsert(
                        txn,
                        "customers",
                        {k: [v] for k, v in parts.items()},
                        KEYS["customers"],
                        ["customer_id"],
                        CUSTOMER_SCHEMA,
                    )
                if batch.register_state is not None and batch.register_state.height:
                    parts = self._partition(_cast(batch.register_state, REGISTER_STATE_SCHEMA), None)
                    self._upsert(
                        txn,
                        "register_state",
                        {k: [v] for k, v in parts.items()},
                        KEYS["register_state"],
                        ["customer_id", "meter_id"],
                        REGISTER_STATE_SCHEMA,
                        defer=tasks,
                    )
                if batch.register_heads is not None and batch.register_heads.height:
                    parts = self._partition(_cast(batch.register_heads, REGISTER_STATE_SCHEMA), None)
                    self._upsert(
                        txn,
                        "register_heads",
                        {k: [v] for k, v in parts.items()},
                        KEYS["register_heads"],
                        KEYS["register_heads"],
                        REGISTER_STATE_SCHEMA,
                        defer=tasks,
                    )
                self._run(txn, tasks)
                if batch.payments is not None and batch.payments.height:
                    pay = _cast(batch.payments, PAYMENT_SCHEMA)
                    years = pay.with_columns(pl.col("bill_month").str.slice(0, 4).alias("_y"))
                    pieces: dict[str, list[pl.DataFrame | Path]] = {
                        f"year={y}": [p.drop("_y")]
                        for (y,), p in years.partition_by("_y", as_dict=True).items()
                    }
                    self._upsert(
                        txn,
                        "payments",
                        pieces,
                        KEYS["payments"],
                        ["customer_id", "bill_month"],
                        PAYMENT_SCHEMA,
                    )
                if batch.interactions is not None and batch.interactions.height:
                    self._save_interactions(txn, batch.interactions)
                if batch.quarantine is not None and batch.quarantine.height:
                    txn.put(f"quarantine/sha={sha}", _cast(batch.quarantine, QUARANTINE_SCHEMA))
                if batch.findings is not None and batch.findings.height:
                    txn.put(f"findings/sha={sha}", _cast(batch.findings, FINDING_SCHEMA))
                led = pl.DataFrame([batch.ledger], schema=LEDGER_SCHEMA)
                self._upsert(txn, "ledger", {"all": [led]}, ["sha256"], None, LEDGER_SCHEMA)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _save_interactions(self, txn: _Txn, interactions: pl.DataFrame) -> None:
        """Upsert service interactions, one partition per year of ``occurred_at``."""
        df = _cast(interactions, INTERACTION_SCHEMA)
        years = df.with_columns(pl.col("occurred_at").dt.year().alias("_y"))
        pieces: dict[str, list[pl.DataFrame | Path]] = {
            f"year={y}": [p.drop("_y")] for (y,), p in years.partition_by("_y", as_dict=True).items()
        }
        keys = KEYS["interactions"]
        self._upsert(txn, "interactions", pieces, keys, keys, INTERACTION_SCHEMA)

    def _save_daily(
        self, txn: _Txn, daily: pl.DataFrame | Iterable[pl.DataFrame], staging: Path, defer: list | None = None
    ) -> None:
        pieces: dict[str, list[pl.DataFrame | Path]] = {}
        clean = False
        if isinstance(daily, pl.DataFrame):
            if daily.height:
                parts = halves_of_customers(_cast(daily, DAILY_SCHEMA), SPLIT_MIN_ROWS)

                def check_and_split(part: pl.DataFrame) -> tuple[bool, dict[str, pl.DataFrame]]:
                    # sorted with no key twice => so is each partition
                    return is_sorted_by(part, KEYS_DAILY, strict=True), self._partition(part, "day")

                with ThreadPoolExecutor(max_workers=len(parts)) as pool:
                    done = list(pool.map(check_and_split, parts))
                # the parts hold consecutive customers: in order, a partition's pieces stay sorted
                clean = all(ok for ok, _ in done)
                for _, split in done:
                    for k, v in split.items():
                        pieces.setdefault(k, []).append(v)
        else:
            # streamed: park each chunk's partitions on disk, merge partition by partition
            for i, chunk in enumerate(daily):
                if chunk.height == 0:
                    continue
                for k, v in self._partition(_cast(chunk, DAILY_SCHEMA), "day").items():
                    p = staging / k / f"{i}.parquet"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    v.write_parquet(p, compression="lz4")
                    pieces.setdefault(k, []).append(p)
            # streamed: memory bounded by a segment per writer thread, not by the file
            tasks: list = []
            self._upsert(
                txn, "daily", pieces, KEYS_DAILY, KEYS_DAILY, DAILY_SCHEMA, defer=tasks, segment_rows=SEGMENT_ROWS
            )
            self._run(txn, tasks, threads=STREAM_WRITE_THREADS)
            return
        self._upsert(txn, "daily", pieces, KEYS_DAILY, KEYS_DAILY, DAILY_SCHEMA, clean=clean, defer=defer)

    def load_daily(
        self, year: int, customer_ids: Sequence[str] | None = None, *, sort: bool = True,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """See ``Store.load_daily``. Unsorted, the rows come partition by partition as stored: each
        customer's rows together, in (meter_id, day) order, the customers in bucket order."""
        schema = daily_columns_schema(columns)
        pred = self._bucket_pred(customer_ids, year)
        files = self._files("daily", pred)
        if not files:
            return pl.DataFrame(schema=schema)
        ids = None if customer_ids is None else pl.Series("customer_id", list(customer_ids), dtype=pl.Utf8)
        df = _customers_filter(pl.scan_parquet(files), ids).select(list(schema)).collect()
        if ids is not None and ids.len() > SCAN_IS_IN_MAX:
            df = _rows_of_customers(df, ids)
        df = _cast(df, schema)
        if sort:
            if all(k in schema for k in KEYS_DAILY):
                return _sorted_customer_runs(df, KEYS_DAILY)
            return df.sort([k for k in KEYS_DAILY if k in schema], maintain_order=True)
        # a partition in day segments (daily appends) has each customer in several segments
        segmented = any(
            isinstance(v, list) and k.startswith("daily/") and pred(k[len("daily/") :])
            for k, v in self._read_manifest()["files"].items()
        )
        return _group_customer_runs(df, "customer_id", in_order=False) if segmented else df

    def load_register_state(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """The last accepted register read of each meter (``REGISTER_STATE_SCHEMA``)."""
        files = self._files("register_state", self._bucket_pred(customer_ids, None))
        df = self._scan(files, REGISTER_STATE_SCHEMA)
        if customer_ids is not None:
            df = df.filter(pl.col("customer_id").is_in(list(customer_ids)))
        return _cast(df, REGISTER_STATE_SCHEMA)

    def load_register_heads(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """First reads of meters that had no earlier read when loaded (``IngestBatch.register_heads``)."""
        files = self._files("register_heads", self._bucket_pred(customer_ids, None))
        df = self._scan(files, REGISTER_STATE_SCHEMA)
        if customer_ids is not None:
            df = df.filter(pl.col("customer_id").is_in(list(customer_ids)))
        return _cast(df, REGISTER_STATE_SCHEMA)

    def load_customers(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        df = self._scan(self._files("customers", self._bucket_pred(customer_ids, None)), CUSTOMER_SCHEMA)
        if customer_ids is not None:
            df = df.filter(pl.col("customer_id").is_in(list(customer_ids)))
        return df.sort("customer_id")

    def load_payments(
        self, year: int | None = None, customer_ids: Sequence[str] | None = None
    ) -> pl.DataFrame:
        df = self._scan_customers(self._files("payments", self._bucket_pred(None, year)), PAYMENT_SCHEMA,
                                  customer_ids)
        return _sorted_customer_runs(df, ["customer_id", "bill_month"])

    def load_interactions(
        self, year: int | None = None, customer_ids: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """See ``Store.load_interactions``."""
        files = self._files("interactions", self._bucket_pred(None, year))
        if not files:
            return pl.DataFrame(schema=INTERACTION_SCHEMA)
        ids = None if customer_ids is None else pl.Series("customer_id", list(customer_ids), dtype=pl.Utf8)
        df = _customers_filter(pl.scan_parquet(files), ids).collect()
        if ids is not None and ids.len() > SCAN_IS_IN_MAX:
            df = _rows_of_customers(df, ids)
        df = _cast(df, INTERACTION_SCHEMA)
        return _sorted_customer_runs(df, list(INTERACTION_KEYS))

    def load_quarantine(self, file_sha256: str | None = None) -> pl.DataFrame:
        pred = (lambda k: k == f"sha={file_sha256}") if file_sha256 else None
        return self._scan(self._files("quarantine", pred), QUARANTINE_SCHEMA).sort("file", "row")

    def load_findings(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        df = self._scan(self._files("findings"), FINDING_SCHEMA)
        if customer_ids is not None:
            df = df.filter(pl.col("customer_id").is_in(list(customer_ids)))
        return df.sort("customer_id", "day", "code", nulls_last=True)

    def list_customer_ids(self) -> list[str]:
        ids: set[str] = set()
        for prefix in ("customers", "daily"):
            files = self._files(prefix)
            if files:
                ids.update(
                    pl.scan_parquet(files).select("customer_id").unique().collect()["customer_id"].to_list()
                )
        return sorted(ids)

    # --- bills and labels ---------------------------------------------------------------------

    def _load_table(self, table: str, year: int, customer_ids: Sequence[str] | None) -> pl.DataFrame:
        return self._scan_customers(self._files(table, self._bucket_pred(customer_ids, year)), None, customer_ids)

    def save_bills(self, year: int, bills: pl.DataFrame, months: pl.DataFrame, reason: str) -> pl.DataFrame:
        ids = bills["customer_id"].to_list()
        with self._write() as txn:
            cur = self._load_table("bills", year, ids)
            latest = (
                latest_only(cur).select("customer_id", "version", "content_hash")
                if cur.height
                else pl.DataFrame(
                    schema={"customer_id": pl.Utf8, "version": pl.Int32, "content_hash": pl.Utf8}
                )
            )
            result, new_bills, new_months = plan_versions(year, bills, months, latest, reason)
            if new_bills.height:
                parts = self._partition(new_bills.with_columns(pl.lit(year, pl.Int32).alias("year")), "year")
                self._upsert(
                    txn,
                    "bills",
                    {k: [v] for k, v in parts.items()},
                    KEYS["bills"],
                    ["customer_id", "version"],
                )
            if new_months.height:
                parts = self._partition(new_months.with_columns(pl.lit(year, pl.Int32).alias("year")), "year")
                self._upsert(txn, "bill_months", {k: [v] for k, v in parts.items()}, None, None)
        return result

    def load_bills(
        self, year: int, customer_ids: Sequence[str] | None = None, all_versions: bool = False
    ) -> pl.DataFrame:
        df = self._load_table("bills", year, customer_ids)
        if df.height == 0:
            return df
        if not all_versions:
            df = latest_only(df)
        return df.sort("customer_id", "version")

    def load_bill_months(
        self, year: int, customer_ids: Sequence[str] | None = None, version: int | None = None
    ) -> pl.DataFrame:
        df = self._load_table("bill_months", year, customer_ids)
        if df.height == 0:
            return df
        df = df.filter(pl.col("version") == version) if version is not None else latest_only(df)
        sort = ["customer_id", "version"] + (["month"] if "month" in df.columns else [])
        return df.sort(sort)

    def save_labels(self, year: int, version: int | None, labels: pl.DataFrame) -> None:
        if labels.height == 0:
            return
        lab = labels.drop([c for c in ("year", "version") if c in labels.columns])
        if version is None:
            v = self.load_bills(year, lab["customer_id"].unique().to_list())
            lab = lab.join(v.select("customer_id", "version"), on="customer_id", how="left").with_columns(
                pl.col("version").fill_null(0).cast(pl.Int32)
            )
        else:
            lab = lab.with_columns(pl.lit(version, pl.Int32).alias("version"))
        lab = lab.with_columns(pl.lit(year, pl.Int32).alias("year"))
        with self._write() as txn:
            parts = self._partition(lab, "year")
            for part, frame in parts.items():
                key = f"labels/{part}"
                cur = txn.current(key)
                if cur is not None:
                    old = pl.read_parquet(cur)
                    old = old.join(
                        frame.select("customer_id", "version").unique(),
                        on=["customer_id", "version"],
                        how="anti",
                    )
                    frame = pl.concat([old, frame], how="diagonal_relaxed")
                txn.put(key, frame)

    def load_labels(self, year: int, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        df = self._load_table("labels", year, customer_ids)
        if df.height == 0:
            return df
        return latest_only(df).sort("customer_id", "code" if "code" in df.columns else "customer_id")

    def save_not_billed(self, year: int, customer_ids: Sequence[str], not_billed: pl.DataFrame) -> None:
        """See ``Store.save_not_billed`` (one file per year)."""
        with self._write() as txn:
            key = f"not_billed/year={year}"
            cur = txn.current(key)
            frame = _cast(not_billed, NOT_BILLED_SCHEMA)
            if cur is not None:
                old = pl.read_parquet(cur).filter(~pl.col("customer_id").is_in(list(customer_ids)))
                frame = pl.concat([_cast(old, NOT_BILLED_SCHEMA), frame], how="vertical_relaxed")
            if frame.height or cur is not None:
                txn.put(key, frame.sort("customer_id", "code"))

    def load_not_billed(self, year: int, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        df = self._scan(self._files("not_billed", lambda k: k == f"year={year}"), NOT_BILLED_SCHEMA)
        if customer_ids is not None:
            df = df.filter(pl.col("customer_id").is_in(list(customer_ids)))
        return df.sort("customer_id", "code")

    def compact(self) -> int:
        """Merge the day segments of every daily partition (written by daily appends) into runs of
        day-adjacent segments of up to ``SEGMENT_ROWS`` rows (maintenance: a year's read, e.g. the bill
        run's, then opens few files and gathers no runs). Returns the number of partitions changed.
        Same atomic commit as any write."""
        changed = 0
        with self._write() as txn:
            for key in sorted(k for k, v in txn.files.items() if k.startswith("daily/") and isinstance(v, list)):
                segs = _by_day(txn.segments(key))
                metas = [_segment_meta(p) for p in segs]
                # greedy runs of day-adjacent segments of at most SEGMENT_ROWS rows (an untagged one: alone)
                groups: list[list[Path]] = [[]]
                rows = 0
                for p, m in zip(segs, metas, strict=True):
                    n = m[2] if m is not None else SEGMENT_ROWS
                    if groups[-1] and (rows + n > SEGMENT_ROWS or m is None):
                        groups.append([])
                        rows = 0
                    groups[-1].append(p)
                    rows += n
                if len(groups) == len(segs):
                    continue
                out: list[Path] = []
                for g in groups:
                    if len(g) == 1:
                        out.append(g[0])
                        continue
                    merged = pl.concat([pl.read_parquet(p) for p in g], how="vertical_relaxed").sort(KEYS_DAILY)
                    out.append(txn.write(key, merged, _segment_tag(merged)))
                txn.record(key, out)
                changed += 1
        return changed

    def generation(self) -> str:
        """A token that changes whenever a write commits (the manifest is replaced): cache keys."""
        try:
            st = (self.root / "manifest.json").stat()
        except FileNotFoundError:
            return "empty"
        return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"

    def close(self) -> None:
        pass

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
