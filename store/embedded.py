"""The embedded store: Delta Lake tables under a folder, one state file naming their committed versions.

Layout (``root`` = the store folder)::

    store.json                  {"kind": "wattbill-embedded", "format": "delta-1", "n_buckets": 32}
    state.json                  {"format": "delta-1", "tables": {table: committed Delta version}}
    daily/                      a Delta table, partitioned by year (of day) and bucket
    customers/ register_state/ register_heads/           partitioned by bucket
    payments/ interactions/     partitioned by year (of bill_month, of occurred_at)
    quarantine/ findings/       partitioned by load_sha256 (the SHA-256 of the file whose load wrote them)
    ledger/                     not partitioned
    bills/ bill_months/ labels/ partitioned by year and bucket (every version of every bill)
    not_billed/                 partitioned by year

``bucket`` is a stable hash bucket of the customer id (``ingest.schemas.customer_bucket``), so that a bill
run for a range of customers, or one customer's page, opens only its partitions. Partition columns are
in the Delta tables' schemas (DuckDB, Spark, Dask and polars see them as columns); wattbill drops the
ones that are not columns of its frames (``bucket``, ``load_sha256``, daily's ``year``).

**Commits across tables** (issue #14). Delta commits one table at a time; a load writes several
(daily rows, register state, quarantine, findings, ledger). A write takes the store's ``flock``
(``.lock``), leaves a marker (``.writing``), commits each table it changes (each a Delta commit: an
append, or a delete and append of the rows it replaces, pruned to their partitions and day range), then
replaces ``state.json`` with the tables' new versions (``os.replace``, the commit point) and removes the
marker. wattbill's readers read each table **at the version ``state.json`` names**, so they see the
previous state or the new one, never a part. A write that died (kill -9: the marker is there) is undone
by the next writer (or the next open) under the lock: each table whose latest version is past the one
named is restored to it (``DeltaTable.restore``), a table the state does not name is removed, and data
files no commit names are deleted. A reader that bypasses wattbill and reads a table's latest version
may, between a killed write and that recovery, see that table's part of the killed load; never a row
twice, since every table commit is itself an upsert (see docs/store.md).

**Daily appends**: a file of new days is an append (it reads and rewrites nothing stored); a re-sent or
corrected day replaces the stored rows of its days, customers and partitions in one Delta commit. Small
appended files are merged by a size-tiered step within a budget per load (``_compact_step``); the rest
by ``EmbeddedStore.compact()`` (maintenance: sorted partitions, ``optimize.compact`` of the other tables,
``vacuum`` keeping ``settings.store_history_days`` of history for time travel).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

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
    customer_buckets,
    is_sorted_by,
)
from wattbill.store.base import (
    BILL_KEYS_SCHEMA,
    LABEL_KEYS_SCHEMA,
    MONTH_KEYS_SCHEMA,
    NOT_BILLED_SCHEMA,
    daily_columns_schema,
    labels_with_versions,
    latest_only,
    plan_versions,
)
from wattbill.store.errors import StoreCorrupt, StoreError, StoreUnavailable

FORMAT = "delta-1"
N_BUCKETS = 32
#: each table's partition columns
TABLES: dict[str, tuple[str, ...]] = {
    "daily": ("year", "bucket"),
    "customers": ("bucket",),
    "register_state": ("bucket",),
    "register_heads": ("bucket",),
    "payments": ("year",),
    "interactions": ("year",),
    "quarantine": ("load_sha256",),
    "findings": ("load_sha256",),
    "ledger": (),
    "bills": ("year", "bucket"),
    "bill_months": ("year", "bucket"),
    "labels": ("year", "bucket"),
    "not_billed": ("year",),
}
#: partition columns that are columns of wattbill's frames (given back on reading)
DATA_PARTITIONS = {"bills": ("year",), "bill_months": ("year",), "labels": ("year",), "not_billed": ("year",)}
#: the bill run's tables, written with ``_results_writer``: zstd, and a dictionary for text columns only
RESULT_TABLES = ("bills", "bill_months", "labels")
KEYS = {
    "daily": ["customer_id", "meter_id", "day"],
    "customers": ["customer_id"],
    "register_state": ["customer_id", "meter_id"],
    "register_heads": ["customer_id", "meter_id", "day"],
    "payments": ["customer_id", "bill_month"],
    "interactions": list(INTERACTION_KEYS),
    "ledger": ["sha256"],
}
KEYS_DAILY = KEYS["daily"]
#: daily runs (files of one day range) merged at once by the compaction of appended days
FANIN = 8
#: a compaction on a load merges at most this many times the rows the load adds, so that a daily load
#: stays proportional to its file; larger merges wait for ``EmbeddedStore.compact``
COMPACT_BUDGET = 2 * FANIN
#: day runs of a year beyond which a load compacts whatever its budget
MAX_SEGMENTS = 96
#: rows of a daily partition file written by ``compact`` (larger partitions: several sorted files)
SEGMENT_ROWS = 4_000_000


def _tier(rows: int) -> int:
    """Size tier of a run: 0 below 1,024 rows a partition, then one tier per factor ``FANIN``."""
    t = 0
    while rows >= 1024 * FANIN ** (t + 1) and t < 16:
        t += 1
    return t


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
    """``df`` with the columns of ``schema`` in its order and types (absent columns null). A frame that
    has them already is returned as it is (a cast of a column to its own type still copied the year's
    rows of a bill run's chunk: 3 of 30 CPU-s of a run of 100,000 households, 2026-12-02)."""
    if list(df.schema.items()) == list(schema.items()):
        return df
    if all(df.schema.get(k) == v for k, v in schema.items()):
        return df.select(list(schema))
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
    return _keep_runs(df, _runs_of(df, "customer_id"), ids)[0]


def _runs_of(df: pl.DataFrame, key: str) -> tuple[np.ndarray, pl.Series]:
    """The runs of equal values of ``key`` in ``df``: (the length of each, int64[r]; the value of each).
    A text key's runs are read from its Arrow views (``wattbill._arrow.string_runs``), any other's by
    polars' run-length encoding."""
    s = df.get_column(key)
    if s.dtype == pl.Utf8:
        from wattbill._arrow import string_runs

        bounds, values = string_runs(s)
        return np.diff(bounds), values
    rle = s.rle().struct.unnest()
    return rle.get_column("len").to_numpy().astype(np.int64), rle.get_column("value")


def _keep_runs(df: pl.DataFrame, runs: tuple[np.ndarray, pl.Series], ids: pl.Series,
               ) -> tuple[pl.DataFrame, tuple[np.ndarray, pl.Series]]:
    """The rows of ``df`` in the runs (:func:`_runs_of`) whose value is in ``ids``, and their runs."""
    lens, values = runs
    keep = values.is_in(ids.implode())
    if keep.all():
        return df, runs
    mask = keep.to_numpy()
    return df.filter(pl.Series(np.repeat(mask, lens))), (lens[mask], values.filter(keep))


def _files_of_customers(files: pl.DataFrame, customer_ids: Sequence[str] | None) -> pl.DataFrame:
    """The add actions of ``files`` whose ``customer_id`` statistics (Delta's per-file min and max) overlap
    the range of ``customer_ids`` (None: all); files without statistics are kept.

    A bill run saves its bills chunk by chunk, each chunk a range of customers: the versions a chunk's save
    compares with are then read from the files of that range only, not from every chunk saved before."""
    if customer_ids is None or files.height == 0 or "min.customer_id" not in files.columns:
        return files
    ids = pl.Series("customer_id", list(customer_ids), dtype=pl.Utf8)
    if ids.len() == 0:
        return files.head(0)
    lo, hi = ids.min(), ids.max()
    return files.filter((pl.col("max.customer_id").is_null() | (pl.col("max.customer_id") >= lo))
                        & (pl.col("min.customer_id").is_null() | (pl.col("min.customer_id") <= hi)))


def _only_customers(df: pl.DataFrame, customer_ids: Sequence[str] | None) -> pl.DataFrame:
    """The rows of ``df`` of ``customer_ids`` (None: all)."""
    if customer_ids is None or df.height == 0:
        return df
    ids = pl.Series("customer_id", list(customer_ids), dtype=pl.Utf8)
    if ids.len() > SCAN_IS_IN_MAX:
        return _rows_of_customers(df, ids)
    return df.filter(pl.col("customer_id").is_in(ids.implode()))


def _last_per_key(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The last row for each key (upsert order), sorted by ``keys``; a stable sort, no hashing."""
    if df.height < 2:
        return df
    if is_sorted_by(df, keys, strict=True):
        return df  # (VEE's rows: sorted, one per key; one pass instead of two)
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


def _group_customer_runs(df: pl.DataFrame, key: str, in_order: bool = True,
                         runs: tuple[np.ndarray, pl.Series] | None = None) -> pl.DataFrame:
    """The rows of ``df`` with each value of ``key`` together and in order of ``key``, each value's rows
    in their order in ``df`` (a stable sort of the runs of equal values, one gather).

    ``in_order=False``: only together; a frame whose values are each one run already (files that
    hold disjoint customers, as a streamed load writes them) is returned as it is, without the gather
    (18 of 122 CPU-s of a bill run of 100,000 households, 2026-12-01). ``runs``: ``df``'s runs of ``key``
    (:func:`_runs_of`) when the caller has them."""
    if df.height < 2:
        return df
    lens, values = runs if runs is not None else _runs_of(df, key)
    if not in_order and not values.is_duplicated().any():
        return df
    order = pl.DataFrame({"value": values}).select(pl.arg_sort_by("value", maintain_order=True)).to_series().to_numpy()
    if not (order[1:] > order[:-1]).all():  # (runs already in order: nothing to gather)
        starts = np.zeros(lens.size, np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        take = lens[order]
        ends = np.cumsum(take)
        df = df[np.arange(ends[-1], dtype=np.int64) + np.repeat(starts[order] - (ends - take), take)]
    return df


def _sql(value: object) -> str:
    """A literal of a Delta predicate (DataFusion SQL)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


def _partition_predicate(cols: tuple[str, ...], values: Iterable[tuple]) -> str:
    """``(a = x AND b = y) OR ...`` over the partitions ``values`` (one tuple of ``cols`` values each)."""
    vals = sorted(set(values))
    if len(cols) == 1:
        return f"{cols[0]} IN ({', '.join(_sql(v[0]) for v in vals)})"
    if len(cols) == 2:  # grouped by the first column: (a = x AND b IN (...)) OR ...
        by: dict = {}
        for v in vals:
            by.setdefault(v[0], []).append(v[1])
        return " OR ".join(
            f"({cols[0]} = {_sql(a)} AND {cols[1]} IN ({', '.join(_sql(b) for b in bs)}))" for a, bs in by.items()
        )
    raise ValueError(cols)  # pragma: no cover


def _to_arrow(df: pl.DataFrame):
    """A frame for ``write_deltalake``: columns of no type (all null, ``pl.Null``) become text, which
    Delta can store."""
    nulls = [c for c, t in df.schema.items() if t == pl.Null]
    if nulls:
        df = df.with_columns([pl.col(c).cast(pl.Utf8) for c in nulls])
    return df.to_arrow()


def _results_writer(schema: Any) -> Any:
    """Delta's Parquet settings for a bill run's tables (``RESULT_TABLES``) of Arrow ``schema``: zstd (level 1)
    and dictionary encoding for the text columns only (``wattbill._arrow.text_columns``: customer, tariff,
    reason: few values, repeated). A month's kWh
    and charges are nearly all distinct; a dictionary for them was the costliest part of the write: a
    chunk's 600,000 months took 0.61 CPU-s and 25.2 MB written with deltalake's defaults (snappy, a
    dictionary for every column), 0.43 CPU-s and 14.6 MB with these, read back in 0.10 s instead of 0.08
    (2026-12-02). The daily table keeps the defaults: its registers repeat, and its read is the bill run's
    largest stage."""
    from deltalake import ColumnProperties, WriterProperties

    from wattbill._arrow import text_columns

    text = {c: ColumnProperties(dictionary_enabled=True) for c in text_columns(schema)}
    return WriterProperties(compression="ZSTD", compression_level=1,
                            default_column_properties=ColumnProperties(dictionary_enabled=False),
                            column_properties=text or None)


def _fsync_dir(p: Path) -> None:
    try:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def history_hours() -> float:
    """Hours of table history ``compact`` keeps for time travel (``settings.store_history_days``)."""
    from wattbill.settings import get_settings

    return float(get_settings().store_history_days) * 24.0


class _Txn:
    """One write: the tables it committed and their new versions; the store's state names them at
    ``commit``."""

    def __init__(self, store: EmbeddedStore, versions: dict[str, int]) -> None:
        self.store = store
        self.versions = dict(versions)
        self.touched: set[str] = set()

    def actions(self, table: str) -> pl.DataFrame | None:
        return self.store._actions(table, self.versions.get(table))

    def read(self, table: str, parts: dict[str, set] | None = None, files: pl.DataFrame | None = None,
             schema: dict | None = None) -> pl.DataFrame:
        return self.store._read(table, self.versions.get(table), parts, files=files, schema=schema)

    def write(self, table: str, df: pl.DataFrame, *, predicate: str | None = None,
              whole: bool = False) -> None:
        """Commit ``df`` to ``table``: an append; with ``predicate``, the rows matching it are replaced by
        ``df`` (which must match it) in one Delta commit; ``whole``: ``df`` replaces the table."""
        from deltalake import write_deltalake

        path = self.store.root / table
        exists = self.versions.get(table) is not None
        if df.height == 0 and not whole:
            if predicate is not None and exists:
                self.store._delta(table).delete(predicate)
                self._committed(table)
            return
        if not exists:
            predicate, whole = None, False
        try:
            cols = list(TABLES[table]) or None
            data = _to_arrow(df)
            props: dict[str, Any] = {"writer_properties": _results_writer(data.schema)} if table in RESULT_TABLES else {}
            if predicate or whole:
                write_deltalake(str(path), data, mode="overwrite", predicate=predicate, partition_by=cols,
                                schema_mode="merge", **props)
            else:
                write_deltalake(str(path), data, mode="append", partition_by=cols, schema_mode="merge", **props)
        except Exception as e:  # deltalake's errors: one line, the store named
            if isinstance(e, StoreError):
                raise
            raise StoreCorrupt(f"{path}: the Delta table could not be written: {str(e).splitlines()[0]}") from None
        self._committed(table)

    def _committed(self, table: str) -> None:
        self.versions[table] = self.store._delta(table).version()
        self.touched.add(table)
        self.store._after_table_commit(table)

    def commit(self) -> None:
        self.store._write_state(self.versions)


class EmbeddedStore:
    """Delta Lake tables under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path, n_buckets: int = N_BUCKETS) -> None:
        self.root = Path(root)
        self.url = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / ".lock").touch(exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"store folder {self.root} is not writable: {e}") from None
        if (self.root / "manifest.json").exists():
            raise StoreError(
                f"{self.root}: a store in the old embedded format (manifest.json); convert it once with: "
                f"wattbill store migrate --store {self.root}"
            )
        self._cache: dict[str, tuple[int, pl.DataFrame]] = {}
        meta = self.root / "store.json"
        if meta.exists():
            self.n_buckets = int(json.loads(meta.read_text())["n_buckets"])
        else:
            self.n_buckets = n_buckets
            tmp = meta.with_name(f".store.json.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")  # concurrent first opens
            tmp.write_text(json.dumps({"kind": "wattbill-embedded", "format": FORMAT, "n_buckets": n_buckets}))
            os.replace(tmp, meta)
        if (self.root / ".writing").exists():  # a write died: undo it now if no writer is at work
            with open(self.root / ".lock", "a+") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
                try:
                    if (self.root / ".writing").exists():
                        self._recover(self._read_state())
                        (self.root / ".writing").unlink(missing_ok=True)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    # --- state, tables and transactions ------------------------------------------------------

    def _read_state(self) -> dict[str, int]:
        p = self.root / "state.json"
        if not p.exists():
            return {}
        try:
            state = json.loads(p.read_text(encoding="utf-8"))
            return {k: int(v) for k, v in state["tables"].items()}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StoreCorrupt(f"{p}: unreadable state: {e}") from None

    def _write_state(self, versions: dict[str, int]) -> None:
        tmp = self.root / f"state.json.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"format": FORMAT, "tables": dict(sorted(versions.items()))}, f, indent=0)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / "state.json")  # the commit point
        _fsync_dir(self.root)

    def _delta(self, table: str, version: int | None = None):
        from deltalake import DeltaTable

        try:
            return DeltaTable(str(self.root / table), version=version)
        except Exception as e:
            raise StoreCorrupt(f"{self.root / table}: unreadable Delta table: {str(e).splitlines()[0]}") from None

    def _after_table_commit(self, table: str) -> None:
        """Called after each table's commit within a write (tests kill the process here)."""

    def _actions(self, table: str, version: int | None) -> pl.DataFrame | None:
        """The data files of ``table`` at ``version`` (``None``: no such table yet): ``path`` (absolute),
        ``num_records``, ``partition.<col>`` and the Delta statistics ``min.<col>`` / ``max.<col>``."""
        if version is None:
            return None
        hit = self._cache.get(table)
        if hit is not None and hit[0] == version:
            return hit[1]
        t = self._delta(table, version)
        acts = pl.DataFrame(t.get_add_actions(flatten=True))
        base = str(self.root / table) + "/"
        acts = acts.with_columns((pl.lit(base) + pl.col("path").map_elements(
            urllib.parse.unquote, return_dtype=pl.Utf8)).alias("path"))
        self._cache[table] = (version, acts)
        return acts

    def _read(self, table: str, version: int | None, parts: dict[str, set] | None = None, *,
              files: pl.DataFrame | None = None, schema: dict | None = None,
              customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """The rows of ``table`` at ``version`` in the partitions whose columns take the values ``parts``
        (``None``: all); ``files``: these add actions instead. Partition columns in ``DATA_PARTITIONS`` are
        given back as columns; a ``schema`` casts the result (and gives an empty one its columns).
        ``customer_ids``: the scan is narrowed to their range (``_customers_filter``: row groups outside
        it are skipped by their statistics; a file of payments of every customer holds a bill run's
        chunk in 1-2 of its 12 row groups); the caller keeps only theirs (``_only_customers``)."""
        acts = files if files is not None else self._actions(table, version)
        if acts is not None and parts:
            for col, vals in parts.items():
                acts = acts.filter(pl.col(f"partition.{col}").is_in(list(vals)))
        if acts is None or acts.height == 0:
            return pl.DataFrame(schema=schema) if schema else pl.DataFrame()
        acts = acts.sort([c for c in acts.columns if c.startswith("partition.")] + ["path"])
        paths = acts["path"].to_list()
        keep = DATA_PARTITIONS.get(table, ())
        ids = None if customer_ids is None else pl.Series("customer_id", list(customer_ids), dtype=pl.Utf8)

        def one(path: str) -> pl.DataFrame:  # (a file whose columns the scan cannot narrow is read whole)
            if ids is None:
                return pl.read_parquet(path)
            try:
                return _customers_filter(pl.scan_parquet(path), ids).collect()
            except pl.exceptions.PolarsError:
                return pl.read_parquet(path)

        try:
            if not keep:
                try:
                    if not schema:
                        raise pl.exceptions.SchemaError("generic rows: each file as it is")
                    df = _customers_filter(pl.scan_parquet(paths, missing_columns="insert"), ids).collect()
                except pl.exceptions.PolarsError:  # files of an older table schema (columns added since)
                    df = pl.concat([one(p) for p in paths], how="diagonal_relaxed")
            else:
                frames = []
                for row in acts.select("path", *[f"partition.{c}" for c in keep]).iter_rows():
                    f = one(row[0])
                    frames.append(f.with_columns([pl.lit(v, pl.Int32 if c == "year" else pl.Utf8).alias(c)
                                                  for c, v in zip(keep, row[1:], strict=True)]))
                df = pl.concat(frames, how="diagonal_relaxed")
        except (OSError, pl.exceptions.PolarsError) as e:
            raise StoreCorrupt(f"{self.root / table}: unreadable data file: {str(e).splitlines()[0]}") from None
        return _cast(df, schema) if schema else df

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

    def _recover(self, versions: dict[str, int]) -> None:
        """Undo a write that died (under the lock): restore each table whose latest version is past the one
        the state names, remove tables the state does not name and data files no commit names."""
        from deltalake import DeltaTable

        changed = False
        for table in TABLES:
            path = self.root / table
            if not path.exists():
                continue
            want = versions.get(table)
            try:
                latest = DeltaTable(str(path)).version() if want is not None else None
            except Exception:  # (no commit of this table was finished)
                latest = None
            if want is None:
                shutil.rmtree(path, ignore_errors=True)
                continue
            if latest is not None and latest > want:
                DeltaTable(str(path)).restore(want)
                versions[table] = DeltaTable(str(path)).version()
                changed = True
            self._sweep_table(path)
        for p in self.root.glob("state.json.*.tmp"):
            p.unlink(missing_ok=True)
        if changed:
            self._write_state(versions)
        self._cache.clear()

    @staticmethod
    def _sweep_table(path: Path) -> int:
        """Delete data files of ``path`` that no commit in its log names (written by a write that died
        before its commit) and temporary commit files. Returns the files removed."""
        log = path / "_delta_log"
        named: set[str] = set()
        removed = 0
        for f in log.glob("*"):
            if f.suffix == ".json" and f.stem.isdigit():
                for line in f.read_text(encoding="utf-8").splitlines():
                    try:
                        action = json.loads(line)
                    except ValueError:
                        continue
                    for kind in ("add", "remove"):
                        if kind in action:
                            named.add(urllib.parse.unquote(action[kind]["path"]))
            elif not f.name.endswith((".parquet", ".json", ".crc")) or f.name.startswith("_commit_"):
                f.unlink(missing_ok=True)
                removed += 1
        if any(log.glob("*.checkpoint*.parquet")):  # files named only by a checkpoint
            from deltalake import DeltaTable

            paths = pl.DataFrame(DeltaTable(str(path)).get_add_actions(flatten=True))["path"].to_list()
            named.update(urllib.parse.unquote(p) for p in paths)
        for f in path.rglob("*"):
            rel = f.relative_to(path).as_posix()
            if rel.startswith("_delta_log/") or not f.is_file():
                continue
            if rel not in named:  # (and a half-written file's staging copy, "<name>.parquet#1")
                f.unlink(missing_ok=True)
                removed += 1
        return removed

    @contextmanager
    def _write(self) -> Iterator[_Txn]:
        with open(self.root / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            marker = self.root / ".writing"
            try:
                versions = self._read_state()
                if marker.exists():  # the previous writer died before it finished: undo its commits
                    self._recover(versions)
                marker.write_text(str(os.getpid()))
                txn = _Txn(self, versions)
                try:
                    yield txn
                except BaseException:
                    if txn.touched:
                        self._recover(self._read_state())
                    marker.unlink(missing_ok=True)
                    raise
                if txn.touched:
                    txn.commit()
                marker.unlink(missing_ok=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _bucket_parts(self, customer_ids: Sequence[str] | None, year: int | None,
                      table: str) -> dict[str, set] | None:
        parts: dict[str, set] = {}
        if year is not None and "year" in TABLES[table]:
            parts["year"] = {year}
        if customer_ids is not None and "bucket" in TABLES[table]:
            parts["bucket"] = _bucket_of(customer_ids, self.n_buckets)
        return parts or None

    def _with_bucket(self, df: pl.DataFrame) -> pl.DataFrame:
        # (the hash once per run of a customer's rows: ~0.27 CPU-s per million rows otherwise)
        return df.with_columns(customer_buckets(df["customer_id"], self.n_buckets).alias("bucket"))

    def _upsert(self, txn: _Txn, table: str, new: pl.DataFrame, keys: list[str], sort: list[str] | None,
                last_per_key: bool = True) -> None:
        """Upsert ``new`` (with its partition columns) into ``table`` on ``keys``: the newest row wins. Rows
        with new keys only: an append; else the touched partitions are read and replaced (one commit)."""
        if new.height == 0:
            return
        cols = TABLES[table]
        if last_per_key:
            new = _last_per_key(new, keys)
        parts = {c: set(new[c].unique().to_list()) for c in cols}
        old = txn.read(table, parts) if txn.versions.get(table) is not None else pl.DataFrame()
        if old.height == 0:
            txn.write(table, new.sort(sort) if sort else new)
            return
        for c in cols:
            if c not in old.columns:  # (a partition column not kept as a column: from the partition)
                old = self._partition_columns(table, old, c)
        hit = old.join(new.select(keys).unique(), on=keys, how="semi")
        if hit.height == 0:
            txn.write(table, new.sort(sort) if sort else new)
            return
        merged = pl.concat([old.join(new.select(keys).unique(), on=keys, how="anti"), new], how="diagonal_relaxed")
        if sort:
            merged = merged.sort(sort)
        if cols:
            values = merged.select(cols).unique().rows()
            txn.write(table, merged, predicate=_partition_predicate(cols, values))
        else:
            txn.write(table, merged, whole=True)

    def _partition_columns(self, table: str, df: pl.DataFrame, col: str) -> pl.DataFrame:
        if col == "bucket":
            return self._with_bucket(df)
        if col == "year" and table == "payments":
            return df.with_columns(pl.col("bill_month").str.slice(0, 4).cast(pl.Int32).alias("year"))
        if col == "year" and table == "interactions":
            return df.with_columns(pl.col("occurred_at").dt.year().cast(pl.Int32).alias("year"))
        raise StoreCorrupt(f"{table}: no way to compute the partition column {col}")  # pragma: no cover

    # --- ingest -------------------------------------------------------------------------------

    def ledger_get(self, sha256: str) -> dict | None:
        led = self.load_ledger()
        hit = led.filter(pl.col("sha256") == sha256)
        return hit.row(0, named=True) if hit.height else None

    def load_ledger(self) -> pl.DataFrame:
        return self._read("ledger", self._read_state().get("ledger"), schema=LEDGER_SCHEMA)

    def save_ingest(self, batch: IngestBatch) -> None:
        sha = batch.ledger["sha256"]
        with self._write() as txn:
            led = txn.read("ledger", schema=LEDGER_SCHEMA)
            if led.filter(pl.col("sha256") == sha).height:
                return  # loaded meanwhile by another process: nothing changes
            if batch.daily is not None:
                self._save_daily(txn, batch.daily, disjoint=batch.daily_disjoint)
            for table, frame, schema in (
                ("register_state", batch.register_state, REGISTER_STATE_SCHEMA),
                ("register_heads", batch.register_heads, REGISTER_STATE_SCHEMA),
                ("customers", batch.customers, CUSTOMER_SCHEMA),
            ):
                if frame is not None and frame.height:
                    self._upsert(txn, table, self._with_bucket(_cast(frame, schema)), KEYS[table], KEYS[table])
            if batch.payments is not None and batch.payments.height:
                pay = self._partition_columns("payments", _cast(batch.payments, PAYMENT_SCHEMA), "year")
                self._upsert(txn, "payments", pay, KEYS["payments"], KEYS["payments"])
            if batch.interactions is not None and batch.interactions.height:
                inter = self._partition_columns("interactions", _cast(batch.interactions, INTERACTION_SCHEMA), "year")
                self._upsert(txn, "interactions", inter, KEYS["interactions"], KEYS["interactions"])
            for table, frame, schema in (("quarantine", batch.quarantine, QUARANTINE_SCHEMA),
                                         ("findings", batch.findings, FINDING_SCHEMA)):
                if frame is not None and frame.height:  # the load's rows, replaced whole
                    rows = _cast(frame, schema).with_columns(pl.lit(sha, pl.Utf8).alias("load_sha256"))
                    txn.write(table, rows, predicate=_partition_predicate(("load_sha256",), [(sha,)]))
            # the ledger last: its row says the load is whole (the state's replacement commits it)
            self._upsert(txn, "ledger", pl.DataFrame([batch.ledger], schema=LEDGER_SCHEMA), ["sha256"], None)

    def _save_daily(self, txn: _Txn, daily: pl.DataFrame | Iterable[pl.DataFrame], *,
                    disjoint: bool = False) -> None:
        """Upsert daily rows: a frame, or the chunks of a streamed load (each chunk one Delta commit, so
        that memory stays bounded by a chunk). Then one size-tiered compaction step per year touched.

        ``disjoint``: the chunks hold disjoint sets of customers (a large file's buckets), so a chunk's
        rows never meet an earlier chunk's files, and only the files from before the load are looked
        at for it (every earlier chunk's files read again for each chunk made a large load quadratic)."""
        chunks = [daily] if isinstance(daily, pl.DataFrame) else daily
        added: dict[int, int] = {}

        def count(per_year: dict[int, int]) -> None:
            for year, rows in per_year.items():
                added[year] = added.get(year, 0) + rows

        if disjoint and not isinstance(daily, pl.DataFrame):
            before = txn.actions("daily")  # (None: no table yet)
            # the next chunk is made ready (keyed, bucketed: polars, off the GIL) on a thread while this
            # one is written (delta-rs); the writes and commits stay in order, on this thread
            with ThreadPoolExecutor(max_workers=1) as pool:
                ready: Future[pl.DataFrame] | None = None
                for chunk in chunks:
                    if chunk.height == 0:
                        continue
                    nxt = pool.submit(self._daily_rows, chunk)
                    if ready is not None:
                        count(self._upsert_daily_rows(txn, ready.result(), before, True))
                    ready = nxt
                if ready is not None:
                    count(self._upsert_daily_rows(txn, ready.result(), before, True))
        else:
            for chunk in chunks:
                if chunk.height:
                    count(self._upsert_daily(txn, chunk))
        for year, rows in sorted(added.items()):
            self._compact_step(txn, year, budget=COMPACT_BUDGET * rows)

    def _upsert_daily(self, txn: _Txn, new: pl.DataFrame) -> dict[int, int]:
        """Upsert daily rows at a cost of the rows' days and customers, not of the year stored: the stored
        files whose partition and day and customer ranges (Delta statistics) meet the new rows' are read;
        if none of their rows has a new key, the rows are appended; else the stored rows of those days,
        customers and partitions are replaced (one Delta commit). Returns rows per year."""
        return self._upsert_daily_rows(txn, self._daily_rows(new), txn.actions("daily"), False)

    def _daily_rows(self, new: pl.DataFrame) -> pl.DataFrame:
        """Daily rows as ``_upsert_daily_rows`` takes them: ``DAILY_SCHEMA``, the last row per key,
        sorted by key, with their ``bucket`` and ``year`` (partition columns)."""
        new = _last_per_key(_cast(new, DAILY_SCHEMA), KEYS_DAILY)
        return self._with_bucket(new).with_columns(pl.Series("year", _years_of_days(new["day"]), dtype=pl.Int32))

    def _upsert_daily_rows(self, txn: _Txn, new: pl.DataFrame, acts: pl.DataFrame | None,
                           partial: bool) -> dict[int, int]:
        """``_upsert_daily`` of ``new`` (``_daily_rows``) against the files ``acts``.

        With ``partial``, ``acts`` are the table's files before the load whose chunk ``new`` is
        (``_save_daily``; ``None``: no table then), whose earlier chunks hold other customers: only these
        files are looked at for an append; a replace (a stored key met) looks at every file, since its
        predicate also covers the earlier chunks'."""
        clauses: list[str] = []
        olds: list[pl.DataFrame] = []
        rows: dict[int, int] = {}
        # each year's ranges in one pass (the rows are not split by year: they are written whole)
        years = new.group_by("year").agg(
            pl.len().alias("n"), pl.col("day").min().alias("lo"), pl.col("day").max().alias("hi"),
            pl.col("customer_id").min().alias("cmin"), pl.col("customer_id").max().alias("cmax"),
            pl.col("bucket").unique().sort().alias("buckets"),
        ).sort("year")
        for year, n, lo, hi, cmin, cmax, buckets in years.iter_rows():
            rows[int(year)] = int(n)
            clauses.append(f"(year = {int(year)} AND bucket IN ({', '.join(map(str, buckets))}) AND "
                           f"day >= {_sql(lo)} AND day <= {_sql(hi)} AND "
                           f"customer_id >= {_sql(cmin)} AND customer_id <= {_sql(cmax)})")
            if acts is None:
                continue
            hit = acts.filter(
                (pl.col("partition.year") == year) & pl.col("partition.bucket").is_in(buckets)
                & ~(pl.col("max.day") < lo).fill_null(False) & ~(pl.col("min.day") > hi).fill_null(False)
                # (text statistics may be cut to a prefix: trusted only when shorter than any cut)
                & ~((pl.col("max.customer_id") < cmin) & (pl.col("max.customer_id").str.len_bytes() < 16)).fill_null(False)
                & ~((pl.col("min.customer_id") > cmax) & (pl.col("min.customer_id").str.len_bytes() < 16)).fill_null(False)
            )
            if hit.height:
                old = self._read("daily", None, files=hit, schema=DAILY_SCHEMA).filter(
                    pl.col("day").is_between(pl.lit(lo), pl.lit(hi)) & pl.col("customer_id").is_between(pl.lit(cmin), pl.lit(cmax)))
                if old.height:
                    olds.append(self._with_bucket(old).with_columns(pl.lit(year, pl.Int32).alias("year")))
        if olds:
            old = pl.concat(olds, how="vertical_relaxed")
            if old.join(new.select(KEYS_DAILY), on=KEYS_DAILY, how="semi").height:
                if partial:  # a replace: its predicate covers the earlier chunks' files too
                    return self._upsert_daily_rows(txn, new, txn.actions("daily"), False)
                merged = pl.concat([old.join(new.select(KEYS_DAILY), on=KEYS_DAILY, how="anti"), new],
                                   how="vertical_relaxed").sort(KEYS_DAILY)
                txn.write("daily", merged, predicate=" OR ".join(clauses))
                return rows
        txn.write("daily", new)
        return rows

    def _compact_step(self, txn: _Txn, year: int, budget: int | None) -> None:
        """Merge the first run of ``FANIN`` day-adjacent runs (files of one day range, across buckets) of
        the lowest size tier into one sorted file a partition, if their rows fit ``budget`` (``None``:
        any); or, with more than ``MAX_SEGMENTS`` runs, the smallest adjacent run whatever the budget.
        One Delta commit: the rows of the merged days replaced by themselves, sorted."""
        acts = txn.actions("daily")
        if acts is None:
            return
        runs = (acts.filter(pl.col("partition.year") == year)
                .group_by("min.day", "max.day").agg(pl.col("num_records").sum().alias("rows"),
                                                    pl.len().alias("files"))
                .sort("min.day", "max.day"))
        if runs.height < FANIN or runs["min.day"].null_count():
            return
        rows = runs["rows"].to_list()
        tiers = [_tier(r // max(1, f)) for r, f in zip(rows, runs["files"].to_list(), strict=True)]
        best: tuple[int, int] | None = None  # (tier, start)
        for i in range(len(rows) - FANIN + 1):
            t = tiers[i]
            if all(x == t for x in tiers[i : i + FANIN]) and (best is None or t < best[0]):
                best = (t, i)
        if best is None and len(rows) > MAX_SEGMENTS:
            sums = [sum(rows[i : i + FANIN]) for i in range(len(rows) - FANIN + 1)]
            best, budget = (0, int(np.argmin(sums))), None
        if best is None:
            return
        i = best[1]
        if budget is not None and sum(rows[i : i + FANIN]) > budget:
            return
        lo, hi = runs["min.day"][i], max(runs["max.day"][i : i + FANIN].to_list())
        hit = acts.filter((pl.col("partition.year") == year) & ~(pl.col("max.day") < lo).fill_null(False)
                          & ~(pl.col("min.day") > hi).fill_null(False))
        df = self._read("daily", None, files=hit, schema=DAILY_SCHEMA).filter(pl.col("day").is_between(pl.lit(lo), pl.lit(hi)))
        df = self._with_bucket(df.sort(KEYS_DAILY)).with_columns(pl.lit(year, pl.Int32).alias("year"))
        txn.write("daily", df, predicate=f"year = {int(year)} AND day >= {_sql(lo)} AND day <= {_sql(hi)}")

    def load_daily(
        self, year: int, customer_ids: Sequence[str] | None = None, *, sort: bool = True,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """See ``Store.load_daily``. Unsorted, each customer's rows come together, customers in bucket
        order."""
        schema = daily_columns_schema(columns)
        version = self._read_state().get("daily")
        acts = self._actions("daily", version)
        if acts is None:
            return pl.DataFrame(schema=schema)
        files = self._files_of("daily", version, customer_ids, year)  # (other customer ranges: not opened)
        if files is None or files.height == 0:
            return pl.DataFrame(schema=schema)
        files = files.sort("partition.bucket", "min.day", "path")
        ids = None if customer_ids is None else pl.Series("customer_id", list(customer_ids), dtype=pl.Utf8)
        lf = _customers_filter(pl.scan_parquet(files["path"].to_list()), ids).select(list(schema))
        try:
            df = lf.collect()
        except (OSError, pl.exceptions.PolarsError) as e:
            raise StoreCorrupt(f"{self.root / 'daily'}: unreadable data file: {str(e).splitlines()[0]}") from None
        runs = None  # (the customers' runs, read once for the filter and the grouping)
        if ids is not None and ids.len() > SCAN_IS_IN_MAX:
            df, runs = _keep_runs(df, _runs_of(df, "customer_id"), ids)
        df = _cast(df, schema)
        if sort:
            if all(k in schema for k in KEYS_DAILY):
                return _sorted_customer_runs(df, KEYS_DAILY)
            return df.sort([k for k in KEYS_DAILY if k in schema], maintain_order=True)
        one_each = files["partition.bucket"].is_unique().all()
        return df if one_each else _group_customer_runs(df, "customer_id", in_order=False, runs=runs)

    def _load(self, table: str, schema: dict | None, customer_ids: Sequence[str] | None = None,
              year: int | None = None) -> pl.DataFrame:
        version = self._read_state().get(table)
        df = self._read(table, version, files=self._files_of(table, version, customer_ids, year), schema=schema,
                        customer_ids=customer_ids)
        return _only_customers(df, customer_ids)

    def load_daily_between(
        self, first: dt.date, last: dt.date, customer_ids: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """See ``Store.load_daily_between``: only the data files whose year and bucket partitions and whose
        day statistics (Delta ``min.day``/``max.day``) meet ``first``..``last`` are opened; a file of new
        days opens none."""
        acts = self._actions("daily", self._read_state().get("daily"))
        if acts is None:
            return pl.DataFrame(schema=DAILY_SCHEMA)
        files = acts.filter(pl.col("partition.year").is_between(first.year, last.year)
                            & ~(pl.col("max.day") < first).fill_null(False)
                            & ~(pl.col("min.day") > last).fill_null(False))
        if customer_ids is not None:
            files = files.filter(pl.col("partition.bucket").is_in(list(_bucket_of(customer_ids, self.n_buckets))))
        if files.height == 0:
            return pl.DataFrame(schema=DAILY_SCHEMA)
        lf = pl.scan_parquet(files["path"].to_list()).filter(pl.col("day").is_between(first, last))
        if customer_ids is not None:
            lf = lf.filter(pl.col("customer_id").is_in(list(customer_ids)))
        try:
            return _cast(lf.collect(), DAILY_SCHEMA)
        except (OSError, pl.exceptions.PolarsError) as e:
            raise StoreCorrupt(f"{self.root / 'daily'}: unreadable data file: {str(e).splitlines()[0]}") from None

    def load_register_state(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """The last accepted register read of each meter (``REGISTER_STATE_SCHEMA``)."""
        return self._load("register_state", REGISTER_STATE_SCHEMA, customer_ids)

    def load_register_heads(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """First reads of meters that had no earlier read when loaded (``IngestBatch.register_heads``)."""
        return self._load("register_heads", REGISTER_STATE_SCHEMA, customer_ids)

    def load_customers(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        return self._load("customers", CUSTOMER_SCHEMA, customer_ids).sort("customer_id")

    def load_payments(
        self, year: int | None = None, customer_ids: Sequence[str] | None = None
    ) -> pl.DataFrame:
        df = self._load("payments", PAYMENT_SCHEMA, customer_ids, year)
        return _sorted_customer_runs(df, ["customer_id", "bill_month"])

    def load_interactions(
        self, year: int | None = None, customer_ids: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """See ``Store.load_interactions``."""
        df = self._load("interactions", INTERACTION_SCHEMA, customer_ids, year)
        return _sorted_customer_runs(df, list(INTERACTION_KEYS))

    def has_interactions(self) -> bool:
        """See ``Store.has_interactions`` (the table's files' row counts: nothing is read)."""
        acts = self._actions("interactions", self._read_state().get("interactions"))
        return acts is not None and int(acts["num_records"].fill_null(1).sum()) > 0

    def load_quarantine(self, file_sha256: str | None = None) -> pl.DataFrame:
        parts = {"load_sha256": {file_sha256}} if file_sha256 else None
        df = self._read("quarantine", self._read_state().get("quarantine"), parts, schema=QUARANTINE_SCHEMA)
        return df.sort("file", "row")

    def load_findings(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        df = self._load("findings", FINDING_SCHEMA, customer_ids)
        return df.sort("customer_id", "day", "code", nulls_last=True)

    def list_customer_ids(self) -> list[str]:
        state = self._read_state()
        ids: set[str] = set()
        for table in ("customers", "daily"):
            acts = self._actions(table, state.get(table))
            if acts is not None and acts.height:
                ids.update(pl.scan_parquet(acts["path"].to_list()).select("customer_id").unique()
                           .collect()["customer_id"].to_list())
        return sorted(ids)

    # --- bills and labels ---------------------------------------------------------------------

    def _load_table(self, table: str, year: int, customer_ids: Sequence[str] | None,
                    txn: _Txn | None = None) -> pl.DataFrame:
        version = txn.versions.get(table) if txn is not None else self._read_state().get(table)
        df = self._read(table, version, files=self._files_of(table, version, customer_ids, year),
                        customer_ids=customer_ids)
        return _only_customers(df, customer_ids)

    def _files_of(self, table: str, version: int | None, customer_ids: Sequence[str] | None,
                  year: int | None) -> pl.DataFrame | None:
        """The add actions of ``table`` at ``version`` that can hold rows of ``customer_ids`` in ``year``:
        their partitions (year, store bucket), then the Delta statistics of their customer range
        (``_files_of_customers``). None: no such table."""
        files = self._actions(table, version)
        if files is not None:
            for col, vals in (self._bucket_parts(customer_ids, year, table) or {}).items():
                files = files.filter(pl.col(f"partition.{col}").is_in(list(vals)))
            files = _files_of_customers(files, customer_ids)
        return files

    def save_bills(self, year: int, bills: pl.DataFrame, months: pl.DataFrame, reason: str,
                   hashes: pl.DataFrame | None = None) -> pl.DataFrame:
        ids = bills["customer_id"].to_list()
        with self._write() as txn:
            cur = self._load_table("bills", year, ids, txn)
            latest = (
                latest_only(cur).select("customer_id", "version", "content_hash")
                if cur.height
                else pl.DataFrame(
                    schema={"customer_id": pl.Utf8, "version": pl.Int32, "content_hash": pl.Utf8}
                )
            )
            result, new_bills, new_months = plan_versions(year, bills, months, latest, reason, hashes)
            if new_bills.height:  # new versions only: appends
                b = self._with_bucket(new_bills.with_columns(pl.lit(year, pl.Int32).alias("year")))
                txn.write("bills", b.sort("customer_id", "version"))
            if new_months.height:
                m = self._with_bucket(new_months.with_columns(pl.lit(year, pl.Int32).alias("year")))
                txn.write("bill_months", m)
        return result

    def load_bills(
        self, year: int, customer_ids: Sequence[str] | None = None, all_versions: bool = False
    ) -> pl.DataFrame:
        df = self._load_table("bills", year, customer_ids)
        if df.height == 0:
            return pl.DataFrame(schema=BILL_KEYS_SCHEMA)
        if not all_versions:
            df = latest_only(df)
        return df.sort("customer_id", "version")

    def load_bill_months(
        self, year: int, customer_ids: Sequence[str] | None = None, version: int | None = None
    ) -> pl.DataFrame:
        df = self._load_table("bill_months", year, customer_ids)
        if df.height == 0:
            return pl.DataFrame(schema=MONTH_KEYS_SCHEMA)
        df = df.filter(pl.col("version") == version) if version is not None else latest_only(df)
        sort = ["customer_id", "version"] + (["month"] if "month" in df.columns else [])
        return df.sort(sort)

    def save_labels(self, year: int, version: int | None, labels: pl.DataFrame) -> None:
        if labels.height == 0:
            return
        lab = labels_with_versions(labels, version, lambda ids: self.load_bills(year, ids))
        lab = self._with_bucket(lab.with_columns(pl.lit(year, pl.Int32).alias("year")))
        with self._write() as txn:  # a customer's labels of a version are replaced whole
            self._upsert(txn, "labels", lab, ["customer_id", "version"], None, last_per_key=False)

    def load_labels(self, year: int, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        df = self._load_table("labels", year, customer_ids)
        if df.height == 0:
            return pl.DataFrame(schema=LABEL_KEYS_SCHEMA)
        return latest_only(df).sort("customer_id", "code" if "code" in df.columns else "customer_id")

    def save_not_billed(self, year: int, customer_ids: Sequence[str], not_billed: pl.DataFrame) -> None:
        """See ``Store.save_not_billed`` (the year's rows replaced in one commit)."""
        with self._write() as txn:
            old = self._load_table("not_billed", year, None, txn)
            frame = _cast(not_billed, NOT_BILLED_SCHEMA).with_columns(pl.lit(year, pl.Int32).alias("year"))
            if old.height:
                old = _cast(old, NOT_BILLED_SCHEMA).filter(~pl.col("customer_id").is_in(list(customer_ids)))
                frame = pl.concat([old, frame], how="vertical_relaxed")
            if frame.height or old.height or txn.versions.get("not_billed") is not None:
                txn.write("not_billed", frame.sort("customer_id", "code"), predicate=f"year = {int(year)}")

    def load_not_billed(self, year: int, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        df = self._load_table("not_billed", year, None)
        df = _cast(df, NOT_BILLED_SCHEMA) if df.height else pl.DataFrame(schema=NOT_BILLED_SCHEMA)
        if customer_ids is not None:
            df = df.filter(pl.col("customer_id").is_in(list(customer_ids)))
        return df.sort("customer_id", "code")

    # --- maintenance --------------------------------------------------------------------------

    def compact(self, history_hours_: float | None = None) -> int:
        """Maintenance: rewrite each daily partition written in several files as one file sorted by
        (customer_id, meter_id, day) (a year's read, e.g. the bill run's, then opens one file a partition
        and gathers no runs), ``optimize.compact`` the other tables, then ``vacuum`` every table, keeping
        ``history_hours_`` (default ``settings.store_history_days``) of history for time travel. Returns
        the daily partitions rewritten. Same atomic commit as any write."""
        keep = history_hours() if history_hours_ is None else history_hours_
        changed = 0
        with self._write() as txn:
            acts = txn.actions("daily")
            if acts is not None:
                counts = acts.group_by("partition.year", "partition.bucket").agg(pl.len().alias("n"))
                for year, bucket, _ in counts.filter(pl.col("n") > 1).sort("partition.year", "partition.bucket").rows():
                    files = acts.filter((pl.col("partition.year") == year) & (pl.col("partition.bucket") == bucket))
                    df = self._read("daily", None, files=files, schema=DAILY_SCHEMA).sort(KEYS_DAILY)
                    df = df.with_columns(pl.lit(year, pl.Int32).alias("year"), pl.lit(bucket, pl.Int32).alias("bucket"))
                    txn.write("daily", df, predicate=f"year = {int(year)} AND bucket = {int(bucket)}")
                    changed += 1
            for table in TABLES:
                if table == "daily" or txn.versions.get(table) is None:
                    continue
                acts = txn.actions(table)
                if acts is not None and acts.height > 1:
                    delta = self._delta(table)
                    props = None
                    if table in RESULT_TABLES:
                        import pyarrow as pa

                        props = _results_writer(pa.schema(delta.schema().to_arrow()))
                    delta.optimize.compact(writer_properties=props)
                    txn._committed(table)
            for table in TABLES:
                if txn.versions.get(table) is not None:
                    self._delta(table).vacuum(retention_hours=int(keep), enforce_retention_duration=False,
                                              dry_run=False)
                    txn.versions[table] = self._delta(table).version()  # (vacuum commits too)
            txn.touched.add("daily")  # (the state is written: versions moved)
        return changed

    def generation(self) -> str:
        """A token that changes whenever a write commits (the state is replaced): cache keys."""
        try:
            st = (self.root / "state.json").stat()
        except FileNotFoundError:
            return "empty"
        return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"

    def close(self) -> None:
        pass

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the old format (Parquet files + manifest.json) ----------------------------------------------

#: old manifest prefix -> (new table, schema or None for the generic tables)
_LEGACY = {
    "daily": DAILY_SCHEMA, "customers": CUSTOMER_SCHEMA, "register_state": REGISTER_STATE_SCHEMA,
    "register_heads": REGISTER_STATE_SCHEMA, "payments": PAYMENT_SCHEMA, "interactions": INTERACTION_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA, "findings": FINDING_SCHEMA, "ledger": LEDGER_SCHEMA,
    "bills": None, "bill_months": None, "labels": None, "not_billed": NOT_BILLED_SCHEMA,
}


def _legacy_rels(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def migrate_legacy(root: str | Path) -> dict[str, int]:
    """Convert a store of the old embedded format (Parquet files named by ``manifest.json``) to Delta
    tables in place, once (``wattbill store migrate``).

    Under the store's lock: every table's current rows (those the manifest names) are written as the
    first version of its Delta table (the daily rows a year at a time) and ``state.json`` names them;
    then ``manifest.json`` is renamed ``manifest.json.migrated`` (the commit point: before it the store
    is still the old one, and a migration that died is started again from the old files); then the old
    files are deleted. A store already in the new format with the rename done: only that clean-up.

    Parameters
    ----------
    root : str or pathlib.Path
        The store folder.

    Returns
    -------
    dict of str to int
        Rows written per table (empty: the store is in Delta tables already, nothing to convert).

    Raises
    ------
    StoreError
        No store of either format at ``root``.
    StoreCorrupt
        The manifest or a file it names cannot be read.
    """
    root = Path(root)
    manifest_path = root / "manifest.json"
    done = root / "manifest.json.migrated"
    if not manifest_path.exists() and not done.exists():
        if (root / "state.json").exists():  # a Delta store already (migrated before, or made new)
            return {}
        raise StoreError(f"{root}: no store of the old embedded format (manifest.json) to migrate")
    rows: dict[str, int] = {}
    with open(root / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            source = manifest_path if manifest_path.exists() else done
            try:
                manifest = json.loads(source.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise StoreCorrupt(f"{source}: unreadable manifest: {e}") from None
            old = {r for v in manifest.get("files", {}).values() for r in _legacy_rels(v)}
            old |= {g[0] for g in manifest.get("garbage", [])}
            if manifest_path.exists():
                rows = _migrate_tables(root, manifest, old)
                os.replace(manifest_path, done)  # the commit point of the migration
                _fsync_dir(root)
            for rel in sorted(old):  # the old files, then their empty folders
                (root / rel).unlink(missing_ok=True)
            for table in _LEGACY:
                for d in sorted((root / table).rglob("*"), key=lambda p: -len(p.parts)) if (root / table).exists() else []:
                    if d.is_dir() and not any(d.iterdir()):
                        d.rmdir()
            shutil.rmtree(root / "_staging", ignore_errors=True)
            done.unlink(missing_ok=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return rows


def _migrate_tables(root: Path, manifest: dict, old: set[str]) -> dict[str, int]:
    """Write the manifest's tables as Delta tables under ``root`` (see ``migrate_legacy``)."""
    # a migration that died before its commit point: remove what it wrote (all but the old files)
    for table in TABLES:
        path = root / table
        if path.exists():
            for f in sorted(path.rglob("*"), key=lambda p: -len(p.parts)):
                rel = f.relative_to(root).as_posix()
                if f.is_file() and rel not in old:
                    f.unlink()
                elif f.is_dir() and not any(f.iterdir()):
                    f.rmdir()
    (root / "state.json").unlink(missing_ok=True)
    (root / ".writing").unlink(missing_ok=True)
    meta = root / "store.json"
    n_buckets = int(json.loads(meta.read_text())["n_buckets"]) if meta.exists() else N_BUCKETS
    meta.write_text(json.dumps({"kind": "wattbill-embedded", "format": FORMAT, "n_buckets": n_buckets}))
    st = EmbeddedStore.__new__(EmbeddedStore)
    st.root, st.url, st.n_buckets, st._cache = root, str(root), n_buckets, {}
    by_table: dict[str, list[tuple[str, list[str]]]] = {}
    for key, value in sorted(manifest.get("files", {}).items()):
        table, _, part = key.partition("/")
        by_table.setdefault(table, []).append((part, _legacy_rels(value)))
    rows: dict[str, int] = {}

    def read(rels: list[str]) -> list[pl.DataFrame]:
        try:
            return [pl.read_parquet(root / r) for r in rels]
        except (OSError, pl.exceptions.PolarsError) as e:
            raise StoreCorrupt(f"{root}: unreadable data file of the old format: {e}") from None

    txn = _Txn(st, {})  # (under migrate_legacy's lock; a migration that dies is started again)
    for table, entries in by_table.items():
        if table not in _LEGACY:
            continue
        schema = _LEGACY[table]
        groups: dict[str, list[pl.DataFrame]] = {}
        for part, rels in entries:  # daily: a year at a time; the others whole
            kv = dict(x.split("=", 1) for x in part.split("/") if "=" in x)
            group = kv.get("year", "") if table == "daily" else ""
            frames = read(rels)
            if table in ("quarantine", "findings"):
                frames = [f.with_columns(pl.lit(kv.get("sha", ""), pl.Utf8).alias("load_sha256")) for f in frames]
            groups.setdefault(group, []).extend(frames)
        for _, frames in sorted(groups.items()):
            df = pl.concat(frames, how="diagonal_relaxed")
            if schema is not None:
                extra = ["load_sha256"] if table in ("quarantine", "findings") else []
                df = _cast(df, {**schema, **{c: pl.Utf8 for c in extra}})
            if table == "daily":
                df = df.sort(KEYS_DAILY)
                df = df.with_columns(pl.Series("year", _years_of_days(df["day"]), dtype=pl.Int32))
            elif table in ("payments", "interactions"):
                df = st._partition_columns(table, df, "year")
            elif table in ("bills", "bill_months", "labels", "not_billed"):
                df = df.with_columns(pl.col("year").cast(pl.Int32))
            if "bucket" in TABLES[table]:
                df = st._with_bucket(df)
            txn.write(table, df)
            rows[table] = rows.get(table, 0) + df.height
    txn.commit()
    return rows
