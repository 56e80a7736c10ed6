"""Readers: detect the format (CSV or Parquet), map headers to canonical names, read values as text.

CSV: UTF-8 with or without BOM, GB18030/GBK (Chinese Excel's export, no BOM) or UTF-16 with a BOM (Excel's
"CSV UTF-16"), the last two read through a temporary UTF-8 copy (:func:`utf8_source`), comma-separated, CRLF, LF or
CR alone (Excel for Mac; through the copy too), every value read as text (ids keep their leading zeros,
numbers are parsed by VEE so that a bad value is quarantined, never read as zero). Parquet: columns as
stored. Large files are streamed by polars into customer buckets (temporary Arrow IPC files) so that
memory stays flat: VEE then runs per bucket, each holding whole meters.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from wattbill.ingest.errors import (
    BadFileError,
    DuplicateColumnsError,
    EmptyFileError,
    MissingColumnsError,
    TruncatedFileError,
    UnknownKindError,
    UnsupportedFormatError,
)
from wattbill.ingest.schemas import ALIASES, INPUT_COLUMNS

#: files larger than this are processed in customer buckets (bytes; setting ingest_bucket_mb)
BUCKET_THRESHOLD = 256 * 1024 * 1024
#: target bytes of file per bucket (setting ingest_bucket_mb)
BUCKET_BYTES = 128 * 1024 * 1024

_UNIT = re.compile(r"[\(（\[【].*?[\)）\]】]\s*$")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def normalise_header(name: str) -> str:
    n = name.replace("\ufeff", "").strip()
    n = _UNIT.sub("", n).strip()
    return n.lower().replace(" ", "_")


_LOOKUP: dict[str, str] = {}
for _canon, _aliases in ALIASES.items():
    for _a in _aliases:
        _LOOKUP.setdefault(normalise_header(_a), _canon)
for _canon in ALIASES:
    _LOOKUP[_canon] = _canon
for _kind, (_req, _opt) in INPUT_COLUMNS.items():
    for _c in (*_req, *_opt):
        _LOOKUP[_c] = _c


def map_columns(header: list[str], kind: str, file: Path) -> dict[str, str]:
    """file column -> canonical name, for the columns this kind uses; errors for missing/duplicates."""
    if kind not in INPUT_COLUMNS:
        raise UnknownKindError(
            file, None, None, f"unknown kind {kind!r}; use one of {', '.join(INPUT_COLUMNS)}"
        )
    required, optional = INPUT_COLUMNS[kind]
    wanted = set(required) | set(optional)
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for col in header:
        canon = _LOOKUP.get(normalise_header(col))
        if canon is None or canon not in wanted:
            continue
        if canon in seen:
            raise DuplicateColumnsError(
                file, None, col, f"columns {seen[canon]!r} and {col!r} both mean {canon!r}"
            )
        seen[canon] = col
        mapping[col] = canon
    missing = [c for c in required if c not in seen]
    if missing:
        hint = ", ".join(
            f"{c} ({'/'.join(ALIASES.get(c, ())[:2])})" if ALIASES.get(c) else c for c in missing
        )
        what = {"registers": "register-read", "consumption": "consumption", "customers": "customers",
                "payments": "payments", "interactions": "service-contacts"}.get(kind, kind)
        tip = ""
        daily_kwh = {"kwh_total", *ALIASES.get("kwh_total", ())}
        if kind == "registers" and any(str(h).strip().lower() in daily_kwh or str(h).strip() in daily_kwh
                                       for h in header):
            tip = " (a file of daily kWh: wattbill ingest reads FILE --kind consumption)"
        elif any("\t" in str(h) for h in header):  # (Excel's "Unicode Text" / "Text" exports)
            tip = " (the columns are separated by tabs: save the file from Excel as CSV UTF-8, comma-separated)"
        raise MissingColumnsError(
            file,
            None,
            missing[0],
            f"not a {what} file: missing column(s) {hint}; found {', '.join(header) or 'no header'}{tip}",
        )
    return mapping


def detect_format(path: Path) -> str:
    """'parquet' or 'csv'; UnsupportedFormatError otherwise; EmptyFileError for an empty file."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyFileError(path, None, None, "the file is empty")
    with open(path, "rb") as f:
        head = f.read(65536)
        if head[:4] == b"PAR1":
            f.seek(max(0, size - 4))
            if f.read(4) != b"PAR1":
                raise TruncatedFileError(path, None, None, "the Parquet file is truncated (no footer)")
            return "parquet"
    if head[:2] == b"PK":
        raise UnsupportedFormatError(
            path, None, None, "not CSV or Parquet (a ZIP/Excel file?); export as CSV UTF-8"
        )
    if head[:2] in _UTF16_BOMS:  # (UTF-16 text has a zero byte in every ASCII character)
        return "csv"
    if b"\x00" in head:
        raise UnsupportedFormatError(path, None, None, "not CSV or Parquet (binary content)")
    return "csv"


#: the byte-order marks of UTF-16 text (little- and big-endian): Excel's "Unicode Text" and "CSV UTF-16" save
#: with one; UTF-16 text without it is not told from binary content
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


#: text encodings a CSV may have, tried in this order over the whole file: UTF-8 (with or without a
#: BOM), then GB18030, the superset of GBK/GB2312 that Chinese Excel's "CSV" export writes (no BOM); a
#: file that starts with a UTF-16 byte-order mark is UTF-16 (``_UTF16_BOMS``)
TEXT_ENCODINGS = ("utf-8", "gb18030")


def text_encoding(path: Path) -> str:
    """The encoding of a CSV file, checked over the whole file: ``"utf-8"``, ``"gb18030"`` or ``"utf-16"``
    (a file that starts with a UTF-16 byte-order mark).

    Chinese Excel writes GBK without a BOM, and often only a few rows have Chinese text (an address far
    down the file), so the first bytes say nothing: every byte is checked (ASCII blocks at memory
    speed). Raises ``UnsupportedFormatError`` naming the first row (1-based data row) that is valid
    in no supported encoding.

    References
    ----------
    .. [1] GB 18030-2022, *Information technology - Chinese coded character set*: a superset of GBK
       (and so of GB 2312) that maps every Unicode code point.
    """
    with open(path, "rb") as f:
        head = f.read(65536)
    utf16 = head[:2] in _UTF16_BOMS
    if utf16 and not _bom_matches(head):
        order = "little" if head[:2] == b"\xff\xfe" else "big"
        raise UnsupportedFormatError(
            path, None, None, f"UTF-16 text whose byte-order mark ({order}-endian) does not match its bytes; "
            "save the CSV as UTF-8")
    first_bad = None
    for enc in ("utf-16",) if utf16 else TEXT_ENCODINGS:
        bad = _first_undecodable(path, enc)
        if bad is None:
            return enc
        first_bad = bad if first_bad is None else max(first_bad, bad)
    assert first_bad is not None
    with open(path, "rb") as f:
        head = f.read(first_bad)
    line = head.decode("utf-16", errors="replace").count("\n") if utf16 else head.count(b"\n")
    raise UnsupportedFormatError(
        path, line if line > 0 else None, None,
        "UTF-16 text with bytes that are not UTF-16; save the CSV as UTF-8" if utf16 else
        "not UTF-8 or GB18030/GBK text (a byte no supported encoding reads); save the CSV as UTF-8",
    )


def _bom_matches(head: bytes) -> bool:
    """Does the UTF-16 byte-order mark at the start of ``head`` match the text after it? A CSV's commas,
    digits and line ends are ASCII: in UTF-16 each has a zero high byte, the second byte of a pair in
    little-endian text and the first in big-endian, so the mark's side holds more zero bytes."""
    body = head[2:len(head) - len(head) % 2]
    first, second = body[0::2].count(0), body[1::2].count(0)
    return second >= first if head[:2] == b"\xff\xfe" else first >= second


def _first_undecodable(path: Path, encoding: str) -> int | None:
    """Byte offset of the first byte ``encoding`` cannot decode in ``path``, or None."""
    dec = codecs.getincrementaldecoder(encoding)()
    pos = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            if chunk.isascii() and not dec.getstate()[0]:
                pos += len(chunk)
                continue
            pending = len(dec.getstate()[0])
            try:
                dec.decode(chunk)
            except UnicodeDecodeError as e:  # (e.start counts in the pending bytes + chunk)
                return pos - pending + max(e.start, 0)
            pos += len(chunk)
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError as e:
            return max(0, pos - len(e.object) + e.start)
    return None


@contextmanager
def utf8_source(path: Path) -> Iterator[Path]:
    """``path`` itself when it is Parquet or UTF-8 text with line feeds, else a temporary UTF-8 copy of the
    GB18030 or UTF-16 text (removed afterwards; a UTF-16 byte-order mark dropped), with line feeds where
    the file ends its lines with carriage returns alone (Excel for Mac's "CSV (Macintosh)"), so that the
    readers see UTF-8 lines. Errors of :func:`text_encoding`."""
    if detect_format(path) != "csv":
        yield path
        return
    encoding = text_encoding(path)
    cr_only = _cr_line_ends(path, encoding)
    if encoding == "utf-8" and not cr_only:
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="wattbill-utf8-"))
    try:
        out = tmp / (path.stem + ".utf8.csv")
        with (open(path, encoding=encoding, newline=None if cr_only else "") as src,  # (None: CR read as LF)
              open(out, "w", encoding="utf-8", newline="") as dst):
            shutil.copyfileobj(src, dst, 1 << 22)
        yield out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: the longest header line read [characters]: a longer first line is not a CSV header (a file without
#: line ends, or text in another encoding read as one line); below Python's csv field limit (131,072)
MAX_HEADER_CHARS = 65_536


def _cr_line_ends(path: Path, encoding: str) -> bool:
    """Does the text end its lines with a carriage return alone (a CR and no line feed in its first 64 KiB,
    decoded: in UTF-16 a character such as 上, U+4E0A, holds the byte of a line feed)?"""
    with open(path, "rb") as f:
        head = f.read(65536).decode(encoding, errors="ignore")
    return "\r" in head and "\n" not in head


def csv_header(path: Path) -> list[str]:
    """The header's column names (stripped). Raises ``EmptyFileError`` (no header line) or
    ``UnsupportedFormatError`` (a first line longer than ``MAX_HEADER_CHARS``, or one the csv module
    cannot read)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = f.readline(MAX_HEADER_CHARS + 1)
    if not first.strip():
        raise EmptyFileError(path, None, None, "the file has no header line")
    if len(first) > MAX_HEADER_CHARS:
        raise UnsupportedFormatError(
            path, None, None, f"the first line is longer than {MAX_HEADER_CHARS:,} characters: not a CSV header "
            "(a file without line ends, or text in another encoding?); save the file as CSV UTF-8")
    try:
        return [h.strip() for h in next(csv.reader(io.StringIO(first)))]
    except csv.Error as e:
        raise UnsupportedFormatError(path, None, None, f"the header line cannot be read as CSV: {e}") from None


def check_csv_tail(path: Path, header: list[str]) -> None:
    """A CSV that does not end with a newline and whose last line is short was cut off."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - 65536))
        tail = f.read()
    if tail.endswith(b"\n") or tail.endswith(b"\r"):
        return
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    if size <= len(tail) and b"\n" not in tail:
        return  # header only, no newline: the empty check reports it
    try:
        fields = next(csv.reader(io.StringIO(last)))
    except (csv.Error, StopIteration):
        fields = []
    if len(fields) < len(header) or last.count('"') % 2 == 1:
        rows = count_data_rows(path)
        col = header[len(fields) - 1] if 0 < len(fields) <= len(header) else None
        raise TruncatedFileError(
            path, rows, col, f"the file ends in the middle of a row ({len(fields)} of {len(header)} fields)"
        )


def count_data_rows(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            n += chunk.count(b"\n")
    with open(path, "rb") as f:
        f.seek(-1, 2)
        if f.read(1) != b"\n":
            n += 1
    return max(0, n - 1)


def _scan(
    path: Path, fmt: str, kind: str, typed: dict[str, pl.DataType] | None = None, ragged: bool = True, *,
    typed_columns: bool = False, uri: bool = False,
) -> tuple[pl.LazyFrame, dict[str, str], list[str]]:
    """``path`` as a lazy frame of ``row`` and the canonical columns, the column mapping, the header.

    A CSV: text columns, or ``typed`` (header name -> type), or with ``typed_columns`` the canonical
    numeric and date columns typed; ``uri``: scanned through a ``file://`` URI (read in blocks, not
    memory-mapped whole)."""
    if fmt == "csv":
        header = csv_header(path)
        mapping = map_columns(header, kind, path)
        if typed_columns:
            typed = {h: _TYPED[c] for h, c in mapping.items() if c in _TYPED}
        if typed is None or typed_columns:
            check_csv_tail(path, header)
        lf = pl.scan_csv(
            path.resolve().as_uri() if uri else path,
            infer_schema=False,
            schema_overrides=typed or None,
            truncate_ragged_lines=ragged,
            encoding="utf8",
            row_index_name="row",
            row_index_offset=1,
        )
        ren = _canonical_names(lf.collect_schema().names(), mapping)
        lf = lf.select(["row", *ren]).rename(ren)
        return lf, mapping, header
    try:
        schema = pq.read_schema(path)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise TruncatedFileError(path, None, None, f"unreadable Parquet file: {e}") from None
    header = list(schema.names)
    mapping = map_columns(header, kind, path)
    lf = pl.scan_parquet(path).select(list(mapping)).rename(mapping).with_row_index("row", offset=1)
    # a column with no value at all is typed Null in Parquet: text, as a CSV's empty column
    nulls = [c for c, t in lf.collect_schema().items() if t == pl.Null]
    return lf.with_columns(pl.col("row").cast(pl.Int64), *[pl.col(c).cast(pl.Utf8) for c in nulls]), mapping, header


def _canonical_names(names: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """Column names as polars read them -> canonical names, for the columns this kind uses (the CSV
    reader drops a BOM from the first header; match by position-independent names)."""
    ren = {}
    for n in names:
        if n == "row":
            continue
        canon = mapping.get(n) or mapping.get(n.replace("\ufeff", "").strip())
        if canon:
            ren[n] = canon
    return ren


def scan_text(path: Path, kind: str) -> pl.LazyFrame:
    """A CSV file as a lazy raw frame, every value as text (``row`` + canonical columns)."""
    lf, _mapping, _header = _scan(path, "csv", kind)
    return lf.with_columns(pl.col("row").cast(pl.Int64))


#: canonical columns read typed on the fast path (a clean CSV); any unparsable value -> text path
_TYPED = {
    # (dates are read as text: the CSV reader's date inference reads 01/02/2025 day-first without a word;
    # VEE reads ISO forms and refuses ambiguous ones, ingest.limits)
    **{c: pl.Float64() for c in ("total", "sharp", "peak", "flat", "valley", "multiplier", "digits")},
    **{f"kwh_{c}": pl.Float64() for c in ("total", "sharp", "peak", "flat", "valley")},
}


def read_raw(path: Path, kind: str) -> pl.DataFrame:
    """The whole file as a raw frame (``row`` + canonical columns).

    Reads of a clean CSV are parsed typed by the CSV reader (fast path); if any value does not parse,
    the file is read again with every value as text and VEE sorts good from bad row by row.
    """
    fmt = detect_format(path)
    lf, mapping, _header = _scan(path, fmt, kind)
    if fmt == "csv" and kind in ("registers", "consumption"):
        typed = {col: _TYPED[canon] for col, canon in mapping.items() if canon in _TYPED}
        try:
            # the eager reader: a third faster than scan_csv(...).collect() on a whole file
            df = pl.read_csv(
                path,
                infer_schema=False,
                schema_overrides=typed,
                truncate_ragged_lines=False,  # a row with more fields than the header: the text path
                encoding="utf8",
                row_index_name="row",
                row_index_offset=1,
            )
            ren = _canonical_names(df.columns, mapping)
            df = df.select(["row", *ren]).rename(ren)
            if df.height:
                # one chunk per column: frames mixing chunked and whole columns copy on every step
                return df.with_columns(pl.col("row").cast(pl.Int64)).rechunk()
        except pl.exceptions.PolarsError:
            pass  # a value the fast path cannot read: the text path finds and quarantines it
    try:
        if fmt == "csv":
            try:
                df = _scan(path, fmt, kind, ragged=False)[0].collect()
            except pl.exceptions.ComputeError as e:
                if "more fields" not in str(e):
                    raise
                # rows with more fields than the header (a comma in an unquoted value: "1,234.5"):
                # never cut to size silently; marked, and quarantined by ingest (extra_fields)
                df = lf.collect()
                extra = _rows_with_extra_fields(path, len(_header))
                lines = pl.DataFrame({"row": list(extra), EXTRA_FIELDS_COLUMN: list(extra.values())},
                                     schema={"row": df.schema["row"], EXTRA_FIELDS_COLUMN: pl.Utf8})
                df = df.join(lines, on="row", how="left", maintain_order="left")
        else:
            df = lf.collect()
    except pl.exceptions.PolarsError as e:
        raise _polars_error(path, e) from None
    if df.height == 0:
        raise EmptyFileError(path, None, None, "the file has a header but no data rows")
    return df.with_columns(pl.col("row").cast(pl.Int64)).rechunk()


#: column of a raw frame holding, for rows with more fields than the header, every field of the row
#: (joined by commas: the quarantine keeps the row whole); null on the other rows (``read_raw``)
EXTRA_FIELDS_COLUMN = "_extra_fields"
#: the longest field the rows with extra fields are read with [characters]
FIELD_LIMIT = 1 << 26


def _rows_with_extra_fields(path: Path, n_fields: int) -> dict[int, str]:
    """Data rows (1-based) of a CSV with more fields than its header, each with all its fields joined by
    commas (Python's csv reader: quotes as the CSV reader reads them). Only for files whose strict
    parse failed."""
    out: dict[int, str] = {}
    i = 0
    # (a field as long as polars reads one: the csv module's default limit is 131,072 characters)
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            next(reader, None)
            for i, fields in enumerate(reader, start=1):
                if len(fields) > n_fields:
                    out[i] = ",".join(fields)
        except csv.Error as e:  # (a field longer than the csv module's limit: the row named)
            raise BadFileError(path, i + 1, None, f"cannot parse the file: {e}") from None
    return out


def _polars_error(path: Path, e: Exception):
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    m = re.search(r"line (\d+)", str(e))
    return BadFileError(path, int(m.group(1)) if m else None, None, f"cannot parse the file: {msg}")


def sweep_temporaries() -> int:
    """Remove the temporary folders of ingests whose process is gone (killed before its cleanup):
    ``wattbill-ingest-<pid>-*`` and ``wattbill-daily-<pid>-*`` in the temporary directory. Returns
    how many were removed."""
    removed = 0
    base = Path(tempfile.gettempdir())
    for d in [*base.glob("wattbill-ingest-*-*"), *base.glob("wattbill-daily-*-*")]:
        pid = d.name.split("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed += 1
    return removed


def n_buckets_for(path: Path) -> int:
    size = path.stat().st_size
    threshold, per_bucket = BUCKET_THRESHOLD, BUCKET_BYTES
    from wattbill.settings import get_settings

    bucket_mb = get_settings().ingest_bucket_mb
    if bucket_mb:
        per_bucket = int(bucket_mb * 1024 * 1024)
        threshold = per_bucket
    if size <= threshold:
        return 1
    return max(2, -(-size // per_bucket))


@contextmanager
def bucketed(
    path: Path, kind: str, n_buckets: int | None = None, raw: pl.DataFrame | None = None
) -> Iterator[Iterator[pl.DataFrame]]:
    """Yield an iterator of raw frames, each holding whole customers, memory bounded by a bucket.

    Small files: one frame (``raw`` when the caller has read it already). Large files: streamed by
    polars (``scan_csv``/``scan_parquet`` into a partitioned ``sink_ipc``: the file is never held)
    into one temporary Arrow IPC file per customer bucket, rows in file order; then the buckets are
    read one by one (memory-mapped). The sink is done when the context is entered.
    """
    n = n_buckets or n_buckets_for(path)
    if n <= 1:
        yield iter([raw if raw is not None else read_raw(path, kind)])
        return
    fmt = detect_format(path)
    tmp = Path(tempfile.mkdtemp(prefix=f"wattbill-ingest-{os.getpid()}-"))
    try:
        # a clean CSV of reads is parsed typed (the fast path); a value that does not parse sends the
        # whole file through again as text, where VEE sorts good from bad row by row
        typed_first = fmt == "csv" and kind in ("registers", "consumption")
        extra: pl.DataFrame | None = None
        for typed in (True, False) if typed_first else (False,):
            out = tmp / ("typed" if typed else "text")
            try:
                total = _sink_buckets(path, fmt, kind, typed, n, out)
                break
            except pl.exceptions.PolarsError as e:
                shutil.rmtree(out, ignore_errors=True)
                if typed:
                    continue
                if fmt != "csv" or "more fields" not in str(e):
                    raise _polars_error(path, e) from None
                # rows with more fields than the header: as ``read_raw`` does, never cut to size silently;
                # each marked with all its fields and quarantined by ingest (extra_fields)
                try:
                    total = _sink_buckets(path, fmt, kind, False, n, out, ragged=True)
                except pl.exceptions.PolarsError as e2:
                    raise _polars_error(path, e2) from None
                rows = _rows_with_extra_fields(path, len(csv_header(path)))
                extra = pl.DataFrame({"row": list(rows), EXTRA_FIELDS_COLUMN: list(rows.values())},
                                     schema={"row": pl.Int64, EXTRA_FIELDS_COLUMN: pl.Utf8})
        if total == 0:
            raise EmptyFileError(path, None, None, "the file has a header but no data rows")

        def frames() -> Iterator[pl.DataFrame]:
            for b in range(n):
                files = sorted((out / f"{_BUCKET_COLUMN}={b}").glob("*.ipc"))
                if not files:
                    continue
                frame = pl.concat([pl.read_ipc(f, memory_map=True) for f in files], how="vertical")
                if extra is not None:
                    frame = frame.join(extra, on="row", how="left", maintain_order="left")
                # one chunk per column (VEE's frames mixing chunked and whole columns copy on every step)
                yield frame.rechunk()

        yield frames()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: the column of the bucket of each row while a large file is split (not in the bucket files)
_BUCKET_COLUMN = "_b"


def _sink_buckets(path: Path, fmt: str, kind: str, typed: bool, n: int, out: Path, ragged: bool = False) -> int:
    """Stream ``path`` into ``out/_b=<bucket>/*.ipc``, the rows of each of ``n`` customer buckets in
    file order (``row`` + canonical columns, as :func:`read_raw` gives them); returns the rows.

    The bucket is a hash of the customer id as VEE reads it (stripped: ``" 7"`` and ``"7"`` are one
    customer, and must be in one bucket); any stable function of the id would do, since the buckets
    live for one load, so polars' own hash (one pass, no string slicing) is used rather than the
    store's ``customer_bucket``. A CSV is scanned through a ``file://`` URI: polars then reads it in
    blocks instead of memory-mapping it whole (a 5 GB file's mapping counted in the RSS). Raises
    ``PolarsError`` for a value that does not parse with ``typed``, or a row with more fields than
    the header unless ``ragged`` (such a row is then cut to the header's fields: ``bucketed`` marks it
    with all its fields from the file's text, ``_rows_with_extra_fields``, and ingest quarantines it).
    """
    lf = _scan(path, fmt, kind, ragged=ragged, typed_columns=typed, uri=True)[0]
    cid = pl.col("customer_id").cast(pl.Utf8).fill_null("").str.strip_chars()
    lf = lf.with_columns(pl.col("row").cast(pl.Int64), (cid.hash(seed=14) % n).cast(pl.Int32).alias(_BUCKET_COLUMN))
    lf.sink_ipc(pl.PartitionBy(out, key=_BUCKET_COLUMN, include_key=False, approximate_bytes_per_file=None),
                maintain_order=True, mkdir=True)
    files = sorted(out.glob("*/*.ipc"))
    return int(pl.scan_ipc(files).select(pl.len()).collect().item()) if files else 0


def raw_text(raw: pl.DataFrame) -> pl.Expr:
    """The row as read, for the quarantine (values joined by commas, empty for missing)."""
    cols = [c for c in raw.columns if c != "row" and not c.startswith("_")]
    return pl.concat_str([pl.col(c).cast(pl.Utf8).fill_null("") for c in cols], separator=",")
