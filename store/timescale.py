"""The TimescaleDB store (psycopg 3).

* ``daily``: a hypertable partitioned by ``day`` (1-month chunks), primary key
  ``(customer_id, meter_id, day)`` (ids ``COLLATE "C"``: byte order, as polars sorts). A file's rows are
  loaded by **binary COPY** (``store.pgcopy``, vectorised) into a temporary
  staging table, then upserted with ``INSERT ... ON CONFLICT DO UPDATE`` (a plain ``INSERT ... SELECT``
  when none of the file's customers has rows in its date range). Fast path: when a file overlaps
  nothing stored (checked in the transaction by index probes), its rows are binary-COPYed straight into
  the hypertable, skipping the staging round (TimescaleDB batches COPY per chunk, which beats
  ``INSERT ... SELECT``); a unique violation from a concurrent load rolls back to a savepoint and takes
  the staging + upsert path. Everything of one file (daily, customers/payments, quarantine, findings,
  ledger) is one transaction.
* ``customers``, ``payments``, ``interactions`` (service contacts), ``quarantine``, ``findings``, ``ingest_ledger``: ordinary tables.
* Bills: ``bills`` / ``bill_months`` / ``labels`` hold key columns (customer, year, version, hash,
  reason, time) and point into ``payloads``: Arrow IPC blobs holding the pipeline's frames with all
  their columns and types, so the store does not hard-code the bill's columns.

The extension is required: if ``CREATE EXTENSION timescaledb`` fails or the library is not preloaded,
``StoreUnavailable`` is raised with the server's reason; the store never falls back to plain tables.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.ipc as ipc
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

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
from wattbill.store.errors import StoreError, StoreUnavailable, mask_secrets
from wattbill.store.pgcopy import encode_parts

PAYLOAD_CUSTOMERS = 5000  # customers per bills payload blob
#: a month's chunk of ``daily`` is compressed by the policy once its last day is this old (a month closes,
#: then the late reads and corrections of its first weeks arrive while it is still plain)
COMPRESS_AFTER = "45 days"

DDL = [
    """CREATE TABLE IF NOT EXISTS daily (
        customer_id text COLLATE "C" NOT NULL, meter_id text COLLATE "C" NOT NULL, day date NOT NULL,
        wh_total bigint NOT NULL, wh_sharp bigint, wh_peak bigint, wh_flat bigint, wh_valley bigint,
        estimated boolean NOT NULL DEFAULT false,
        PRIMARY KEY (customer_id, meter_id, day))""",
    # no default (b-tree) index on day: chunks (months) already select by day, and the primary key serves
    # the rest; one index less to maintain on every insert
    "SELECT create_hypertable('daily', by_range('day', INTERVAL '1 month'), create_default_indexes => FALSE,"
    " if_not_exists => TRUE)",
    # a BRIN index on day (a few pages per chunk, nearly free to keep: days arrive in order): a load asks
    # first whether anything is stored in its days (``_overlaps``), answered without reading the chunk
    "CREATE INDEX IF NOT EXISTS daily_day_brin ON daily USING brin (day) WITH (autosummarize = on)",
    """CREATE TABLE IF NOT EXISTS customers (
        customer_id text PRIMARY KEY, tariff text NOT NULL, household_size integer NOT NULL DEFAULT 1,
        region text, opened_on date, closed_on date, name text, address text, language text)""",
    """CREATE TABLE IF NOT EXISTS register_state (
        customer_id text COLLATE "C" NOT NULL, meter_id text COLLATE "C" NOT NULL, day date NOT NULL,
        wh_total bigint NOT NULL, wh_sharp bigint, wh_peak bigint, wh_flat bigint, wh_valley bigint,
        multiplier double precision, digits bigint, PRIMARY KEY (customer_id, meter_id))""",
    """CREATE TABLE IF NOT EXISTS register_heads (
        customer_id text COLLATE "C" NOT NULL, meter_id text COLLATE "C" NOT NULL, day date NOT NULL,
        wh_total bigint NOT NULL, wh_sharp bigint, wh_peak bigint, wh_flat bigint, wh_valley bigint,
        multiplier double precision, digits bigint, PRIMARY KEY (customer_id, meter_id, day))""",
    """CREATE TABLE IF NOT EXISTS payments (
        customer_id text NOT NULL, bill_month text NOT NULL, issued_on date, paid_on date,
        amount_fen bigint NOT NULL, channel text, PRIMARY KEY (customer_id, bill_month))""",
    """CREATE TABLE IF NOT EXISTS interactions (
        customer_id text COLLATE "C" NOT NULL, occurred_at timestamp NOT NULL, channel text COLLATE "C" NOT NULL,
        intent text NOT NULL, resolved boolean NOT NULL, escalated_to text, handle_seconds integer,
        satisfaction integer, PRIMARY KEY (customer_id, occurred_at, channel))""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        file_sha256 text NOT NULL, file text, "row" bigint NOT NULL, "column" text, code text NOT NULL,
        reason text, raw text, PRIMARY KEY (file_sha256, "row"))""",
    """CREATE TABLE IF NOT EXISTS findings (
        id bigserial PRIMARY KEY, file_sha256 text NOT NULL, customer_id text, meter_id text, day date,
        code text NOT NULL, description text, evidence jsonb)""",
    "CREATE INDEX IF NOT EXISTS findings_customer ON findings (customer_id)",
    """CREATE TABLE IF NOT EXISTS ingest_ledger (
        sha256 text PRIMARY KEY, file text, kind text, rows bigint, loaded bigint, estimated bigint,
        quarantined bigint, duplicates bigint, findings bigint, loaded_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS payloads (
        id bigserial PRIMARY KEY, kind text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
        ipc bytea NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS bills (
        customer_id text NOT NULL, year integer NOT NULL, version integer NOT NULL,
        content_hash text NOT NULL, reason text, created_at timestamp NOT NULL,
        charge_fen bigint, payload_id bigint NOT NULL REFERENCES payloads(id),
        PRIMARY KEY (customer_id, year, version))""",
    """CREATE TABLE IF NOT EXISTS bill_months (
        customer_id text NOT NULL, year integer NOT NULL, version integer NOT NULL,
        payload_id bigint NOT NULL REFERENCES payloads(id), PRIMARY KEY (customer_id, year, version))""",
    """CREATE TABLE IF NOT EXISTS not_billed (
        customer_id text NOT NULL, year integer NOT NULL, code text NOT NULL, detail text, evidence text,
        PRIMARY KEY (customer_id, year, code))""",
    """CREATE TABLE IF NOT EXISTS labels (
        customer_id text NOT NULL, year integer NOT NULL, version integer NOT NULL,
        payload_id bigint NOT NULL REFERENCES payloads(id), PRIMARY KEY (customer_id, year, version))""",
]

_DAILY_COLS = list(DAILY_SCHEMA)
_PG_TYPES = {
    pl.Utf8: "text",
    pl.Int64: "bigint",
    pl.Int32: "integer",
    pl.Date: "date",
    pl.Boolean: "boolean",
}


def _cast(df: pl.DataFrame, schema: dict) -> pl.DataFrame:
    return df.select(
        [pl.col(k).cast(v) if k in df.columns else pl.lit(None, v).alias(k) for k, v in schema.items()]
    )


def _to_ipc(df: pl.DataFrame) -> bytes:
    sink = io.BytesIO()
    tbl = df.to_arrow()
    with ipc.new_stream(sink, tbl.schema, options=ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_table(tbl)
    return sink.getvalue()


def _from_ipc(data: bytes) -> pl.DataFrame:
    tbl = ipc.open_stream(pa.BufferReader(data)).read_all()
    return pl.from_arrow(tbl)  # type: ignore[return-value]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return mask_secrets(" ".join(text.splitlines()[0].split()) if text else type(e).__name__)


class _MaskSecrets(logging.Filter):
    """Masks passwords in the records of psycopg's loggers (the pool logs its connection errors)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_secrets(record.getMessage())
        record.args = ()
        return True


def _quiet_pool_logs() -> None:
    """psycopg_pool logs each failed reconnection as a warning; with no handler configured Python prints
    those on stderr (the command line's one-line error would then have company). A null handler keeps
    them for an application that configures logging, and every record has its passwords masked."""
    log = logging.getLogger("psycopg")
    if not any(isinstance(f, _MaskSecrets) for f in log.filters):
        log.addFilter(_MaskSecrets())
        pool_log = logging.getLogger("psycopg.pool")
        pool_log.addFilter(_MaskSecrets())
        pool_log.addHandler(logging.NullHandler())


#: seconds to wait before each retry of an idempotent read after a connection fault (then give up)
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)
#: seconds to wait for a connection from the pool (a server that is down fails each try this fast)
CONNECT_WAIT = 2.0
#: connections kept by the pool (a bill run reads on one; ``ingest_lock`` holds one more)
POOL_MAX = 4


class TimescaleStore:
    """Store on PostgreSQL + TimescaleDB (see the module docstring).

    Connections come from a ``psycopg_pool.ConnectionPool`` (each checked when taken, so one broken by
    a server restart is replaced). Every method maps psycopg's errors to the store's (``_mapped``):
    a lost or refused connection is ``StoreUnavailable``, anything else ``StoreError``, each one line
    with passwords masked. Reads are idempotent and retried with backoff (``RETRY_DELAYS``) on a
    connection fault; writes are one transaction each and are not retried (the rerun completes them).
    """

    def __init__(self, url: str, *, direct_copy_new: bool = True, setup: bool = True) -> None:
        """Connect to ``url``; with ``setup`` (default) create the extension and the tables if missing.

        ``setup=False`` (a long-running reader such as the statement service) runs no schema
        statement: it only checks that TimescaleDB is loaded and that the tables exist.

        Raises
        ------
        StoreUnavailable
            When the server cannot be reached, TimescaleDB is not loaded, or (``setup=False``) the
            tables were never created.
        """
        self.url = url
        self.shown_url = mask_secrets(url)
        #: a file whose rows overlap nothing stored is COPYed straight into the hypertable (one COPY,
        #: TimescaleDB's batched per-chunk insert); otherwise it goes through staging + upsert
        self.direct_copy_new = direct_copy_new
        #: sort rows by month, then key before COPY (fewer open chunks on the server, a sort on the
        #: client); measured a wash on 2 cores, so off: rows go in the order given (customer, meter, day)
        self.chunk_order = False
        self._direct: psycopg.Connection | None = None
        self._saved_days: tuple[Any, Any] | None = None  # the days of the daily rows of the last save
        #: the server's TimescaleDB has native compression (set when the store is opened with ``setup``)
        self.compression_supported = False
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise StoreUnavailable(f"cannot connect to {self.shown_url}: {_first_line(e)}") from None
        except Exception as e:  # a malformed URL (psycopg.ProgrammingError is an Error; others are not)
            raise StoreUnavailable(f"cannot connect to {self.shown_url}: {_first_line(e)}") from None
        try:
            conn.execute("SET client_min_messages = warning")
            if setup:
                with conn.transaction():  # two processes opening a fresh database at once: one creates it
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('wattbill-ddl'))")
                    conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
            if row is None:
                raise StoreUnavailable(f"{self.shown_url}: the TimescaleDB extension is not installed in this database")
            self.timescaledb_version = row[0]
            # the extension must actually be loaded (preloaded), not merely catalogued
            conn.execute("SELECT count(*) FROM timescaledb_information.hypertables")
            if setup:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('wattbill-ddl'))")
                    for stmt in DDL:
                        conn.execute(stmt)
                    self._compression_policy(conn)
            elif conn.execute("SELECT to_regclass('bills') IS NULL").fetchone() != (False,):
                raise StoreUnavailable(f"{self.shown_url}: the store's tables do not exist: run an ingest or a bill run first")
        except StoreUnavailable:
            conn.close()
            raise
        except psycopg.Error as e:
            conn.close()
            raise StoreUnavailable(
                f"{self.shown_url}: TimescaleDB cannot be used ({_first_line(e)}); the server needs the extension "
                "installed and shared_preload_libraries=timescaledb (scripts/pg.sh start does this)"
            ) from None
        conn.close()
        _quiet_pool_logs()
        self.pool = ConnectionPool(
            url, min_size=1, max_size=POOL_MAX, open=False, configure=self._configure,
            check=ConnectionPool.check_connection, kwargs={"autocommit": True, "connect_timeout": 10},
            reconnect_timeout=30, timeout=30,
        )
        try:
            self.pool.open(wait=True, timeout=15)
        except Exception as e:
            self.pool.close()
            raise StoreUnavailable(f"cannot connect to {self.shown_url}: {_first_line(e)}") from None

    @staticmethod
    def _compression_supported(conn: psycopg.Connection) -> bool:
        """Does the server's TimescaleDB have native compression? (the ``timescale`` licence; an Apache-only
        build, such as Debian's source package built by ``scripts/build_timescaledb.sh``, has not)."""
        row = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
        return bool(row and row[0] == "timescale")

    def _compression_policy(self, conn: psycopg.Connection) -> None:
        """Closed months compressed by TimescaleDB's own policy, where the server has compression.

        ``daily`` is compressed segment by customer (a bill run reads whole customers) and ordered by
        meter and day inside a segment; the policy job compresses each month's chunk once its last day is
        ``COMPRESS_AFTER`` old. Late reads and corrections still land in a compressed month: TimescaleDB
        >= 2.11 inserts, upserts (``ON CONFLICT``) and updates into compressed chunks, checking the primary
        key against the compressed rows. Without compression (Apache-only build) nothing is done and
        ``compression()`` says so.
        """
        self.compression_supported = self._compression_supported(conn)
        if not self.compression_supported:
            return
        row = conn.execute(
            "SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = 'daily'"
        ).fetchone()
        if not (row and row[0]):
            conn.execute(
                "ALTER TABLE daily SET (timescaledb.compress, timescaledb.compress_segmentby = 'customer_id',"
                " timescaledb.compress_orderby = 'meter_id, day')"
            )
        conn.execute(
            "SELECT add_compression_policy('daily', compress_after => %s::interval, if_not_exists => TRUE)",
            [COMPRESS_AFTER],
        )

    def compression(self) -> dict:
        """The state of ``daily``'s compression.

        Returns
        -------
        dict
            ``supported`` (the server's TimescaleDB has native compression), ``enabled`` (``daily`` is
            set to compress), ``policy`` (the policy's ``compress_after``, text, or None), ``chunks`` and
            ``compressed_chunks`` (month chunks of ``daily``, all and compressed).
        """
        def run(conn: psycopg.Connection) -> dict:
            supported = self._compression_supported(conn)
            row = conn.execute(
                "SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = 'daily'"
            ).fetchone()
            chunks = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks"
                " WHERE hypertable_name = 'daily'"
            ).fetchone()
            policy = None
            if supported:
                p = conn.execute(
                    "SELECT config->>'compress_after' FROM timescaledb_information.jobs"
                    " WHERE hypertable_name = 'daily' AND proc_name = 'policy_compression'"
                ).fetchone()
                policy = p[0] if p else None
            return {
                "supported": supported,
                "enabled": bool(row and row[0]),
                "policy": policy,
                "chunks": int(chunks[0]) if chunks else 0,
                "compressed_chunks": int(chunks[1]) if chunks else 0,
            }

        return self._read("compression", run)

    def compress_closed_months(self, before: dt.date) -> int:
        """Compress now every chunk of ``daily`` that ends on or before ``before`` (what the policy job does
        in the background; for a backfill, tests and benchmarks). Returns the chunks compressed.

        Raises
        ------
        StoreError
            When the server's TimescaleDB has no compression (Apache-only build).
        """
        with self._connection("compress") as conn:
            if not self._compression_supported(conn):
                raise StoreError(
                    f"{self.shown_url}: this TimescaleDB has no compression (Apache-only build):"
                    " the months stay uncompressed"
                )
            rows = conn.execute(
                "SELECT compress_chunk(c, if_not_compressed => TRUE) FROM show_chunks('daily', older_than => %s) c",
                [before],
            ).fetchall()
        return len(rows)

    @staticmethod
    def _configure(conn: psycopg.Connection) -> None:
        conn.execute("SET client_min_messages = warning")
        conn.execute("SET temp_buffers = '256MB'")  # staging tables stay in memory

    @property
    def conn(self) -> psycopg.Connection:
        """A connection of its own (tests and benchmarks run SQL on it); the store's methods use the pool."""
        if self._direct is None or self._direct.closed:
            with self._mapped("connect"):
                self._direct = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        return self._direct

    @contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        """psycopg's (and the pool's) errors as the store's: one line, passwords masked."""
        try:
            yield
        except StoreError:
            raise
        except (psycopg.OperationalError, PoolTimeout, PoolClosed) as e:
            raise StoreUnavailable(f"{self.shown_url}: {what}: the database is unreachable ({_first_line(e)})") from None
        except psycopg.Error as e:
            raise StoreError(f"{self.shown_url}: {what}: {_first_line(e)}") from None

    @contextmanager
    def _connection(self, what: str) -> Iterator[psycopg.Connection]:
        """A pooled connection, errors mapped (for writes: no retry)."""
        with self._mapped(what), self.pool.connection(timeout=CONNECT_WAIT) as conn:
            yield conn

    def _read(self, what: str, fn: Callable[[psycopg.Connection], Any]) -> Any:
        """``fn(connection)`` for an idempotent read, retried with backoff after a connection fault."""
        for delay in (*RETRY_DELAYS, None):
            try:
                with self._connection(what) as conn:
                    return fn(conn)
            except StoreUnavailable:
                if delay is None:
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def ingest_lock(self) -> Iterator[None]:
        """Serialise register loads across processes: a load reads each meter's last read, computes its
        file's consumption from it and saves; two loads at once must not both start from the same last
        read. A session advisory lock on a connection of its own, released at the end (or when the
        process dies and its session ends)."""
        with self._connection("ingest lock") as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext('wattbill-register-ingest'))")
            try:
                yield
            finally:
                with self._mapped("ingest unlock"):
                    if not conn.closed and not conn.broken:
                        conn.execute("SELECT pg_advisory_unlock(hashtext('wattbill-register-ingest'))")

    # --- helpers --------------------------------------------------------------------------------

    #: rows encoded at a time during a COPY: the server inserts one piece while the next is encoded
    COPY_PIECE_ROWS = 100_000

    def _copy_in(self, cur: psycopg.Cursor, table: str, df: pl.DataFrame) -> None:
        cols = ", ".join(f'"{c}"' for c in df.columns)
        step = self.COPY_PIECE_ROWS
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as cp:
            for off in range(0, max(df.height, 1), step):
                last = off + step >= df.height
                for buf in encode_parts(df.slice(off, step), header=off == 0, trailer=last):
                    cp.write(buf)

    def _query(self, sql: str, params: Sequence | None, schema: dict) -> pl.DataFrame:
        def run(conn: psycopg.Connection) -> list:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()

        rows = self._read(sql.split(" WHERE")[0][:60], run)
        return pl.DataFrame(rows, schema=schema, orient="row")

    def _copy_out(self, sql: str, params: Sequence | None, schema: dict) -> pl.DataFrame:
        """Fast read: COPY (query) TO STDOUT as CSV, parsed by polars with the schema."""

        def run(conn: psycopg.Connection) -> io.BytesIO:
            buf = io.BytesIO()
            with psycopg.ClientCursor(conn) as cur:
                inner = cur.mogrify(sql, params) if params else sql
                with cur.copy(f"COPY ({inner}) TO STDOUT (FORMAT CSV)") as cp:
                    for data in cp:
                        buf.write(data)
            return buf

        buf = self._read("read daily rows", run)
        if buf.tell() == 0:
            return pl.DataFrame(schema=schema)
        buf.seek(0)
        read_schema = {k: (pl.Utf8 if v == pl.Boolean else v) for k, v in schema.items()}
        df = pl.read_csv(buf, has_header=False, schema=read_schema)
        return df.with_columns([(pl.col(k) == "t").alias(k) for k, v in schema.items() if v == pl.Boolean])

    # --- ingest ---------------------------------------------------------------------------------

    def ledger_get(self, sha256: str) -> dict | None:
        df = self._query("SELECT * FROM ingest_ledger WHERE sha256 = %s", [sha256], LEDGER_SCHEMA)
        return df.row(0, named=True) if df.height else None

    def load_ledger(self) -> pl.DataFrame:
        return self._query(
            f"SELECT {', '.join(LEDGER_SCHEMA)} FROM ingest_ledger ORDER BY loaded_at", None, LEDGER_SCHEMA
        )

    def save_ingest(self, batch: IngestBatch) -> None:
        self._saved_days = None
        self._save_ingest(batch)
        if self._saved_days is not None:
            self._summarize_days(*self._saved_days)

    def _summarize_days(self, lo: dt.date, hi: dt.date) -> None:
        """Summarize the new page ranges of the BRIN index on ``day`` in the chunks of ``lo``..``hi`` (the
        pages the load just wrote), after the commit: the next load's "anything stored in my days?" then
        reads summaries instead of every page not yet summarized (autovacuum's autosummarize comes later).
        Only an optimisation: a failure here (the server gone) changes nothing stored and is not raised."""
        try:
            with self._connection("summarize") as conn:
                conn.execute(
                    "SELECT brin_summarize_new_values(i.indexrelid) FROM timescaledb_information.chunks ch"
                    " JOIN pg_class t ON t.relname = ch.chunk_name"
                    " JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = ch.chunk_schema"
                    " JOIN pg_index i ON i.indrelid = t.oid JOIN pg_class ic ON ic.oid = i.indexrelid"
                    " JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'brin'"
                    " WHERE ch.hypertable_name = 'daily' AND ch.range_start_integer IS NULL"
                    " AND ch.range_start::date <= %s AND ch.range_end::date > %s ORDER BY ch.range_start",
                    [hi, lo],
                )
        except StoreError:
            pass

    def _save_ingest(self, batch: IngestBatch) -> None:
        led = batch.ledger
        with self._connection("save ingest") as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [led["sha256"]])
            cur.execute("SELECT 1 FROM ingest_ledger WHERE sha256 = %s", [led["sha256"]])
            if cur.fetchone():
                return  # loaded meanwhile: nothing changes
            if batch.daily is not None:
                self._save_daily(cur, batch.daily)
            if batch.customers is not None and batch.customers.height:
                self._upsert(cur, "customers", _cast(batch.customers, CUSTOMER_SCHEMA), ["customer_id"])
            if batch.register_state is not None and batch.register_state.height:
                self._upsert(cur, "register_state", _cast(batch.register_state, REGISTER_STATE_SCHEMA),
                             ["customer_id", "meter_id"])
            if batch.register_heads is not None and batch.register_heads.height:
                self._upsert(cur, "register_heads", _cast(batch.register_heads, REGISTER_STATE_SCHEMA),
                             ["customer_id", "meter_id", "day"])
            if batch.payments is not None and batch.payments.height:
                self._upsert(
                    cur, "payments", _cast(batch.payments, PAYMENT_SCHEMA), ["customer_id", "bill_month"]
                )
            if batch.interactions is not None and batch.interactions.height:
                self._upsert(
                    cur, "interactions", _cast(batch.interactions, INTERACTION_SCHEMA), list(INTERACTION_KEYS)
                )
            if batch.quarantine is not None and batch.quarantine.height:
                self._copy_in(cur, "quarantine", _cast(batch.quarantine, QUARANTINE_SCHEMA))
            if batch.findings is not None and batch.findings.height:
                f = _cast(batch.findings, FINDING_SCHEMA)
                cur.execute(
                    "CREATE TEMP TABLE findings_stage (file_sha256 text, customer_id text, meter_id text,"
                    " day date, code text, description text, evidence text) ON COMMIT DROP"
                )
                self._copy_in(cur, "findings_stage", f)
                cur.execute(
                    "INSERT INTO findings (file_sha256, customer_id, meter_id, day, code, description, evidence)"
                    " SELECT file_sha256, customer_id, meter_id, day, code, description, evidence::jsonb"
                    " FROM findings_stage"
                )
            cur.execute(
                "INSERT INTO ingest_ledger (sha256, file, kind, rows, loaded, estimated, quarantined,"
                " duplicates, findings, loaded_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                [
                    led["sha256"],
                    led["file"],
                    led["kind"],
                    led["rows"],
                    led["loaded"],
                    led["estimated"],
                    led["quarantined"],
                    led["duplicates"],
                    led.get("findings", 0),
                    led.get("loaded_at") or dt.datetime.now(dt.UTC),
                ],
            )

    def _save_daily(self, cur: psycopg.Cursor, daily: pl.DataFrame | Iterable[pl.DataFrame]) -> None:
        """Save a file's daily rows, part by part (a large file comes as customer buckets, each a disjoint
        set of customers, so each part is checked and saved on its own and memory stays one part).

        Per part: when none of its customers has rows in its date range (index probes on the chunks in
        range), its rows are binary-COPYed straight into the hypertable inside a savepoint; otherwise,
        or when a concurrent load added conflicting rows meanwhile (unique violation: back to the
        savepoint), they are COPYed into a staging table and upserted with ``INSERT ... ON CONFLICT DO
        UPDATE``, which rewrites only rows whose values differ (an identical re-sent row is left as it
        is). Every step is index work on the rows of the part: nothing reads or rewrites stored rows
        beyond those keys, so a daily file costs its own rows whatever the store holds.
        """
        parts = [daily] if isinstance(daily, pl.DataFrame) else daily
        for part in parts:
            if part.height:
                d = self._order(_cast(part, DAILY_SCHEMA))
                self._save_daily_part(cur, d)
                lo: Any = d["day"].min()
                hi: Any = d["day"].max()
                if self._saved_days is not None:
                    lo, hi = min(lo, self._saved_days[0]), max(hi, self._saved_days[1])
                self._saved_days = (lo, hi)

    def _save_daily_part(self, cur: psycopg.Cursor, d: pl.DataFrame) -> None:
        lo: Any = d["day"].min()
        hi: Any = d["day"].max()
        new = not self._overlaps(cur, lo, hi, d["customer_id"].unique().to_list())
        if new and self.direct_copy_new:
            try:
                with cur.connection.transaction():  # savepoint
                    for off in range(0, d.height, 1_000_000):
                        self._copy_in(cur, "daily", d.slice(off, 1_000_000))
                return
            except psycopg.errors.UniqueViolation:
                pass  # a concurrent load added overlapping rows: stage and upsert
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS daily_stage (LIKE daily INCLUDING DEFAULTS) ON COMMIT DROP")
        cur.execute("TRUNCATE daily_stage")
        for off in range(0, d.height, 1_000_000):
            self._copy_in(cur, "daily_stage", d.slice(off, 1_000_000))
        cols = ", ".join(_DAILY_COLS)
        if new:
            try:
                with cur.connection.transaction():  # savepoint
                    cur.execute(f"INSERT INTO daily ({cols}) SELECT {cols} FROM daily_stage")
                return
            except psycopg.errors.UniqueViolation:
                pass  # a concurrent load added overlapping rows: upsert instead
        values = _DAILY_COLS[3:]
        upd = ", ".join(f"{c} = EXCLUDED.{c}" for c in values)
        old = ", ".join(f"daily.{c}" for c in values)
        exc = ", ".join(f"EXCLUDED.{c}" for c in values)
        cur.execute(
            f"INSERT INTO daily ({cols}) SELECT {cols} FROM daily_stage"
            f" ON CONFLICT (customer_id, meter_id, day) DO UPDATE SET {upd}"
            f" WHERE ({old}) IS DISTINCT FROM ({exc})"
        )

    def _order(self, df: pl.DataFrame) -> pl.DataFrame:
        if not self.chunk_order:
            return df
        return df.sort(pl.col("day").dt.truncate("1mo"), "customer_id", "meter_id", "day")

    def _overlaps(self, cur: psycopg.Cursor, lo, hi, ids: list[str]) -> bool:
        """Has any of ``ids`` rows between ``lo`` and ``hi``?

        First whether any row at all lies in the range (the BRIN index on ``day``: a new day is answered
        from a few index pages, whatever the chunk holds); only then one primary-key probe per customer
        (index-only scans of the chunks in range; also when the rows in range are the earlier customer
        buckets of the same file): the cost follows the file, never the stored rows.
        """
        cur.execute("SELECT EXISTS (SELECT 1 FROM daily WHERE day BETWEEN %s AND %s)", [lo, hi])
        row = cur.fetchone()
        if not (row and row[0]):
            return False
        # LATERAL ... LIMIT 1: a nested loop of index probes whatever the planner thinks of the chunks' sizes
        # (the chunks a load is filling have no statistics yet: a hash join would scan them)
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM unnest(%s::text[]) AS k(id), LATERAL (SELECT 1 FROM daily d"
            " WHERE d.customer_id = k.id AND d.day BETWEEN %s AND %s LIMIT 1) AS hit)",
            [ids, lo, hi],
        )
        row = cur.fetchone()
        return bool(row and row[0])

    def _upsert(self, cur: psycopg.Cursor, table: str, df: pl.DataFrame, keys: list[str]) -> None:
        stage = f"{table}_stage"
        cur.execute(f"CREATE TEMP TABLE {stage} (LIKE {table}) ON COMMIT DROP")
        self._copy_in(cur, stage, df)
        cols = ", ".join(df.columns)
        upd = ", ".join(f"{c} = EXCLUDED.{c}" for c in df.columns if c not in keys)
        cur.execute(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage}"
            f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {upd}"
        )

    def load_daily(
        self, year: int, customer_ids: Sequence[str] | None = None, *, sort: bool = True,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        # always ordered: a customer's rows are spread over the month chunks, and ORDER BY gathers them
        schema = daily_columns_schema(columns)
        cols = _DAILY_COLS if columns is None else [c for c in _DAILY_COLS if c in schema]
        sql = f"SELECT {', '.join(cols)} FROM daily WHERE day >= %s AND day < %s"
        params: list = [dt.date(year, 1, 1), dt.date(year + 1, 1, 1)]
        if customer_ids is not None:
            sql += " AND customer_id = ANY(%s)"
            params.append(list(customer_ids))
        sql += " ORDER BY customer_id, meter_id, day"
        return self._copy_out(sql, params, {c: schema[c] for c in cols})

    def load_daily_between(
        self, first: dt.date, last: dt.date, customer_ids: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """See ``Store.load_daily_between``: first whether anything is stored in the days (the BRIN
        index on ``day``: a new day answers from a few index pages), then one primary-key probe per
        customer (``LATERAL``: index scans of the chunks in range, never a scan of a chunk)."""
        cols = ", ".join(f"d.{c}" for c in _DAILY_COLS)

        def run(conn: psycopg.Connection) -> bool:
            with conn.cursor() as cur:
                cur.execute("SELECT EXISTS (SELECT 1 FROM daily WHERE day BETWEEN %s AND %s)", [first, last])
                row = cur.fetchone()
                return bool(row and row[0])

        if not self._read("read daily rows", run):
            return pl.DataFrame(schema=DAILY_SCHEMA)
        if customer_ids is None:
            sql = f"SELECT {cols} FROM daily d WHERE d.day BETWEEN %s AND %s"
            return self._copy_out(sql, [first, last], DAILY_SCHEMA)
        sql = (f"SELECT {cols} FROM unnest(%s::text[]) AS k(id), LATERAL (SELECT * FROM daily x"
               " WHERE x.customer_id = k.id AND x.day BETWEEN %s AND %s) AS d")
        return self._copy_out(sql, [list(customer_ids), first, last], DAILY_SCHEMA)

    def _select_customers(
        self, table: str, schema: dict, customer_ids: Sequence[str] | None, order: str
    ) -> pl.DataFrame:
        """Every column of ``schema`` from ``table``, for ``customer_ids`` (all when None)."""
        sql = f"SELECT {', '.join(schema)} FROM {table}"
        params: list = []
        if customer_ids is not None:
            sql += " WHERE customer_id = ANY(%s)"
            params.append(list(customer_ids))
        return self._query(f"{sql} ORDER BY {order}", params, schema)

    def _select_reads(self, table: str, customer_ids: Sequence[str] | None, order: str) -> pl.DataFrame:
        """``REGISTER_STATE_SCHEMA`` rows of ``table`` for ``customer_ids`` (all when None), read with COPY
        (a daily file asks for every meter of the file: tens of thousands of rows, not Python tuples); the
        ids as one array joined by ``unnest`` (a large ``= ANY(...)`` costs the planner per element)."""
        cols = ", ".join(f"s.{c}" for c in REGISTER_STATE_SCHEMA)
        if customer_ids is None:
            return self._copy_out(f"SELECT {cols} FROM {table} s ORDER BY {order}", None, REGISTER_STATE_SCHEMA)
        if not customer_ids:
            return pl.DataFrame(schema=REGISTER_STATE_SCHEMA)
        sql = (f"SELECT {cols} FROM unnest(%s::text[]) AS k(id) JOIN {table} s ON s.customer_id = k.id"
               f" ORDER BY {order}")
        return self._copy_out(sql, [list(customer_ids)], REGISTER_STATE_SCHEMA)

    def load_register_state(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """The last accepted register read of each meter (``REGISTER_STATE_SCHEMA``)."""
        return self._select_reads("register_state", customer_ids, "s.customer_id, s.meter_id")

    def load_register_heads(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """First reads of meters that had no earlier read when loaded (``IngestBatch.register_heads``)."""
        return self._select_reads("register_heads", customer_ids, "s.customer_id, s.meter_id, s.day")

    def load_customers(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        return self._select_customers("customers", CUSTOMER_SCHEMA, customer_ids, "customer_id")

    def load_payments(
        self, year: int | None = None, customer_ids: Sequence[str] | None = None
    ) -> pl.DataFrame:
        sql = f"SELECT {', '.join(PAYMENT_SCHEMA)} FROM payments WHERE true"
        params: list = []
        if year is not None:
            sql += " AND bill_month LIKE %s"
            params.append(f"{year:04d}-%")
        if customer_ids is not None:
            sql += " AND customer_id = ANY(%s)"
            params.append(list(customer_ids))
        return self._query(sql + " ORDER BY customer_id, bill_month", params, PAYMENT_SCHEMA)

    def load_interactions(
        self, year: int | None = None, customer_ids: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """See ``Store.load_interactions``."""
        sql = f"SELECT {', '.join(INTERACTION_SCHEMA)} FROM interactions WHERE true"
        params: list = []
        if year is not None:
            sql += " AND occurred_at >= %s AND occurred_at < %s"
            params += [dt.datetime(year, 1, 1), dt.datetime(year + 1, 1, 1)]
        if customer_ids is not None:
            sql += " AND customer_id = ANY(%s)"
            params.append(list(customer_ids))
        return self._copy_out(sql + " ORDER BY " + ", ".join(INTERACTION_KEYS), params, INTERACTION_SCHEMA)

    def has_interactions(self) -> bool:
        """See ``Store.has_interactions``."""
        with self._connection("has_interactions") as conn:
            row = conn.execute("SELECT EXISTS (SELECT 1 FROM interactions)").fetchone()
        return bool(row and row[0])

    def load_quarantine(self, file_sha256: str | None = None) -> pl.DataFrame:
        cols = ", ".join(f'"{c}"' for c in QUARANTINE_SCHEMA)
        sql = f"SELECT {cols} FROM quarantine"
        params: list = []
        if file_sha256:
            sql += " WHERE file_sha256 = %s"
            params.append(file_sha256)
        return self._query(sql + ' ORDER BY file, "row"', params, QUARANTINE_SCHEMA)

    def load_findings(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        sql = (
            "SELECT file_sha256, customer_id, meter_id, day, code, description, evidence::text FROM findings"
        )
        params: list = []
        if customer_ids is not None:
            sql += " WHERE customer_id = ANY(%s)"
            params.append(list(customer_ids))
        return self._query(sql + " ORDER BY customer_id, day NULLS LAST, code", params, FINDING_SCHEMA)

    def list_customer_ids(self) -> list[str]:
        df = self._query(
            "SELECT customer_id FROM customers UNION SELECT DISTINCT customer_id FROM daily ORDER BY 1",
            None, {"customer_id": pl.Utf8},
        )
        return df["customer_id"].to_list()

    # --- bills and labels -----------------------------------------------------------------------

    def _payload_rows(
        self, table: str, year: int, customer_ids, version_sql: str, params: list
    ) -> pl.DataFrame:
        sql = f"SELECT customer_id, version, payload_id FROM {table} t WHERE year = %s"
        p: list = [year]
        if customer_ids is not None:
            sql += " AND customer_id = ANY(%s)"
            p.append(list(customer_ids))
        sql += version_sql
        p += params
        keys = self._query(sql, p, {"customer_id": pl.Utf8, "version": pl.Int32, "payload_id": pl.Int64})
        if keys.height == 0:
            return pl.DataFrame()
        ids = keys["payload_id"].unique().to_list()

        def run(conn: psycopg.Connection) -> list:
            with conn.cursor() as cur:
                cur.execute("SELECT id, ipc FROM payloads WHERE id = ANY(%s) ORDER BY id", [ids])
                return cur.fetchall()

        frames = [
            _from_ipc(bytes(b)).with_columns(pl.lit(pid, pl.Int64).alias("payload_id"))
            for pid, b in self._read(f"read {table}", run)
        ]
        data = pl.concat(frames, how="diagonal_relaxed")
        on = ["customer_id", "version", "payload_id"]
        data = data.with_columns(pl.col("version").cast(pl.Int32))
        return data.join(keys.select(on), on=on, how="semi").drop("payload_id")

    _LATEST = " AND version = (SELECT max(version) FROM {t} m WHERE m.customer_id = t.customer_id AND m.year = t.year)"

    def save_bills(self, year: int, bills: pl.DataFrame, months: pl.DataFrame, reason: str,
                   hashes: pl.DataFrame | None = None) -> pl.DataFrame:
        ids = bills["customer_id"].to_list()
        with self._connection("save bills") as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('wattbill-bills'), %s)", [year])
            cur.execute(
                "SELECT DISTINCT ON (customer_id) customer_id, version, content_hash FROM bills"
                " WHERE year = %s AND customer_id = ANY(%s) ORDER BY customer_id, version DESC",
                [year, ids],
            )
            latest = pl.DataFrame(
                cur.fetchall(),
                schema={"customer_id": pl.Utf8, "version": pl.Int32, "content_hash": pl.Utf8},
                orient="row",
            )
            result, new_bills, new_months = plan_versions(year, bills, months, latest, reason, hashes)
            if new_bills.height:
                new_bills = new_bills.with_columns(pl.lit(year, pl.Int32).alias("year"))
                # each payload's rows split once (a filter per payload was quadratic in a run's bills)
                payload_of = new_bills.select("customer_id", (pl.int_range(pl.len()) // PAYLOAD_CUSTOMERS).alias("_p"))
                bill_parts = new_bills.join(payload_of, on="customer_id", how="left", maintain_order="left"
                                            ).partition_by("_p", as_dict=True, maintain_order=True, include_key=False)
                month_parts = (
                    new_months.join(payload_of, on="customer_id", how="left", maintain_order="left")
                    .partition_by("_p", as_dict=True, maintain_order=True, include_key=False)
                    if new_months.height else {}
                )
                for (p,), b in sorted(bill_parts.items()):
                    pid = self._put_payload(cur, "bills", b)
                    keys = b.select(
                        "customer_id",
                        pl.col("year").cast(pl.Int32),
                        pl.col("version").cast(pl.Int32),
                        "content_hash",
                        "reason",
                        pl.col("created_at").cast(pl.Datetime("us")),
                        (
                            pl.col("charge_fen").cast(pl.Int64)
                            if "charge_fen" in b.columns
                            else pl.lit(None, pl.Int64)
                        ).alias("charge_fen"),
                        pl.lit(pid, pl.Int64).alias("payload_id"),
                    )
                    self._insert_keys(cur, "bills", keys)
                    if (p,) in month_parts:
                        m = month_parts[(p,)].with_columns(pl.lit(year, pl.Int32).alias("year"))
                        if m.height:
                            mid = self._put_payload(cur, "bill_months", m)
                            mk = (
                                m.select("customer_id", "version")
                                .unique()
                                .with_columns(
                                    pl.lit(year, pl.Int32).alias("year"),
                                    pl.lit(mid, pl.Int64).alias("payload_id"),
                                )
                            )
                            self._insert_keys(
                                cur, "bill_months", mk.select("customer_id", "year", "version", "payload_id")
                            )
        return result

    def _put_payload(self, cur: psycopg.Cursor, kind: str, df: pl.DataFrame) -> int:
        cur.execute("INSERT INTO payloads (kind, ipc) VALUES (%s, %s) RETURNING id", [kind, _to_ipc(df)])
        row = cur.fetchone()
        assert row is not None
        return int(row[0])

    def _insert_keys(self, cur: psycopg.Cursor, table: str, keys: pl.DataFrame, upsert: bool = False) -> None:
        cols = ", ".join(keys.columns)
        stage = f"{table}_keys_stage"
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DROP")
        cur.execute(f"TRUNCATE {stage}")
        self._copy_keys(cur, stage, keys)
        conflict = (
            " ON CONFLICT (customer_id, year, version) DO UPDATE SET payload_id = EXCLUDED.payload_id"
            if upsert
            else ""
        )
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage}{conflict}")

    def _copy_keys(self, cur: psycopg.Cursor, table: str, df: pl.DataFrame) -> None:
        cols = ", ".join(df.columns)
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as cp:
            for row in df.iter_rows():
                cp.write_row(row)

    def load_bills(
        self, year: int, customer_ids: Sequence[str] | None = None, all_versions: bool = False
    ) -> pl.DataFrame:
        vs = "" if all_versions else self._LATEST.format(t="bills")
        df = self._payload_rows("bills", year, customer_ids, vs, [])
        if df.height == 0:
            return pl.DataFrame(schema=BILL_KEYS_SCHEMA)
        return df.sort("customer_id", "version")

    def load_bill_months(
        self, year: int, customer_ids: Sequence[str] | None = None, version: int | None = None
    ) -> pl.DataFrame:
        if version is None:
            vs, params = self._LATEST.format(t="bill_months"), []
        else:
            vs, params = " AND version = %s", [version]
        df = self._payload_rows("bill_months", year, customer_ids, vs, params)
        if df.height == 0:
            return pl.DataFrame(schema=MONTH_KEYS_SCHEMA)
        return df.sort(["customer_id", "version"] + (["month"] if "month" in df.columns else []))

    def save_labels(self, year: int, version: int | None, labels: pl.DataFrame) -> None:
        if labels.height == 0:
            return
        lab = labels_with_versions(labels, version, lambda ids: self.load_bills(year, ids))
        lab = lab.with_columns(pl.lit(year, pl.Int32).alias("year"))
        with self._connection("save labels") as conn, conn.transaction(), conn.cursor() as cur:
            pid = self._put_payload(cur, "labels", lab)
            keys = (
                lab.select("customer_id", "year", "version")
                .unique()
                .with_columns(pl.lit(pid, pl.Int64).alias("payload_id"))
            )
            self._insert_keys(cur, "labels", keys, upsert=True)

    def load_labels(self, year: int, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        df = self._payload_rows("labels", year, customer_ids, self._LATEST.format(t="labels"), [])
        if df.height == 0:
            return pl.DataFrame(schema=LABEL_KEYS_SCHEMA)
        df = latest_only(df)
        return df.sort("customer_id", "code" if "code" in df.columns else "customer_id")

    def save_not_billed(self, year: int, customer_ids: Sequence[str], not_billed: pl.DataFrame) -> None:
        """See ``Store.save_not_billed``."""
        frame = _cast(not_billed, NOT_BILLED_SCHEMA)
        with self._connection("save not billed") as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "DELETE FROM not_billed WHERE year = %s AND customer_id = ANY(%s)", [year, list(customer_ids)]
            )
            if frame.height:
                self._copy_in(cur, "not_billed", frame)

    def load_not_billed(self, year: int, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        sql = f"SELECT {', '.join(NOT_BILLED_SCHEMA)} FROM not_billed WHERE year = %s"
        params: list = [year]
        if customer_ids is not None:
            sql += " AND customer_id = ANY(%s)"
            params.append(list(customer_ids))
        return self._query(sql + " ORDER BY customer_id, code", params, NOT_BILLED_SCHEMA)

    def generation(self) -> str:
        """A token that changes whenever bills, labels or an ingest were stored (cache keys)."""
        with self._connection("generation") as conn:
            row = conn.execute(
                "SELECT (SELECT max(id) FROM payloads), (SELECT max(loaded_at) FROM ingest_ledger)"
            ).fetchone()
        return f"{row[0] if row else None}/{row[1] if row else None}"

    def close(self) -> None:
        try:
            if self._direct is not None:
                self._direct.close()
            self.pool.close()
        except Exception:  # pragma: no cover - closing a pool of a server gone
            pass

    def __enter__(self) -> TimescaleStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def drop_all(self) -> None:
        """Remove every table of the store (tests)."""
        for t in (
            "not_billed",
            "labels",
            "bill_months",
            "bills",
            "payloads",
            "ingest_ledger",
            "findings",
            "quarantine",
            "payments",
            "interactions",
            "customers",
            "daily",
            "register_state",
            "register_heads",
        ):
            self.conn.execute(f"DROP TABLE IF EXISTS {t} CASCADE")


__all__ = ["StoreError", "TimescaleStore"]
