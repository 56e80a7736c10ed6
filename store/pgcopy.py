"""PostgreSQL binary COPY encoding of a polars frame, vectorised (numpy + Arrow kernels).

psycopg's ``copy.write_row`` (binary, with ``set_types``) costs a Python tuple per row; for millions
of daily rows we build the COPY BINARY stream directly: the header, then per row an int16 field count
and per field an int32 length (-1 for NULL) and the value in network byte order, then the trailer.
Each field becomes an Arrow binary array (length prefix + value bytes); Arrow's
``binary_join_element_wise`` glues the fields of each row, and the joined array's data buffer *is* the
COPY body. The result is fed to ``cursor.copy("COPY ... FROM STDIN (FORMAT BINARY)")``.
Supported column types: text (Utf8), int8 (Int64), int4 (Int32), int2 (Int16), date (Date),
bool (Boolean), float8 (Float64), timestamp (Datetime without a time zone).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_PG_EPOCH_DAYS = 10957  # 2000-01-01 - 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400_000_000
_SEP = pa.scalar(b"", pa.large_binary())

_FIXED = {
    pl.Int64: (8, ">i8"),
    pl.Int32: (4, ">i4"),
    pl.Int16: (2, ">i2"),
    pl.Date: (4, ">i4"),
    pl.Boolean: (1, "u1"),
    pl.Float64: (8, ">f8"),
    pl.Datetime: (8, ">i8"),
}


def _fixed_binary(raw: np.ndarray, width: int) -> pa.Array:
    """(n, width) uint8 -> Arrow large_binary array of n values of ``width`` bytes (no copy of values)."""
    n = raw.shape[0]
    data = np.ascontiguousarray(raw)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _prefix(valid: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
    return np.where(valid, nbytes, -1).astype(">i4").view(np.uint8).reshape(-1, 4)


def _values(s: pl.Series, dtype: pl.DataType) -> tuple[np.ndarray, int]:
    """(n, width) big-endian bytes of a fixed-width column (nulls as zeros)."""
    key = next((k for k in _FIXED if dtype == k), None)
    if key is None:
        raise TypeError(f"no binary COPY encoding for {s.name}: {dtype}")
    width, np_dtype = _FIXED[key]
    if dtype == pl.Date:
        vals = s.cast(pl.Int32).fill_null(0).to_numpy().astype(np.int32) - _PG_EPOCH_DAYS
    elif isinstance(dtype, pl.Datetime):  # timestamp: microseconds since 2000-01-01
        vals = s.cast(pl.Datetime("us")).cast(pl.Int64).fill_null(0).to_numpy() - _PG_EPOCH_US
    elif dtype == pl.Boolean:
        vals = s.fill_null(False).cast(pl.UInt8).to_numpy()
    else:
        vals = s.fill_null(0).to_numpy()
    raw = np.ascontiguousarray(vals.astype(np_dtype)).view(np.uint8).reshape(len(s), width)
    return raw, width


def encode_body(df: pl.DataFrame) -> pa.Array:
    """One Arrow large_binary value per row: the row's COPY BINARY tuple.

    Consecutive fixed-width columns without NULLs (and the length prefixes of text columns) are packed
    into one numpy block, so that Arrow joins only a handful of operands per row.
    """
    n = df.height
    operands: list[pa.Array] = []
    pending: list[np.ndarray] = [np.broadcast_to(np.array([df.width], dtype=">i2").view(np.uint8), (n, 2))]

    def flush() -> None:
        if pending:
            block = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
            operands.append(_fixed_binary(block, block.shape[1]))
            pending.clear()

    names = list(df.columns)
    i = 0
    while i < len(names):
        name = names[i]
        dtype = df.schema[name]
        s = df[name]
        nulls = s.null_count()
        if dtype == pl.Utf8:
            arr = s.fill_null("").to_arrow().cast(pa.large_binary())
            nbytes = pc.binary_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
            valid = ~s.is_null().to_numpy() if nulls else np.ones(n, bool)
            pending.append(_prefix(valid, nbytes))
            flush()
            operands.append(arr)
            i += 1
            continue
        if nulls == 0:
            raw, width = _values(s, dtype)
            pending.append(_prefix(np.ones(n, bool), np.full(n, width)))
            pending.append(raw)
            i += 1
            continue
        # a group of consecutive fixed columns sharing this null mask: present block or NULL prefixes
        mask = s.is_null()
        group = [name]
        j = i + 1
        while j < len(names) and df.schema[names[j]] != pl.Utf8 and df[names[j]].is_null().equals(mask):
            group.append(names[j])
            j += 1
        flush()
        present = []
        for g in group:
            raw, width = _values(df[g], df.schema[g])
            present.append(_prefix(np.ones(n, bool), np.full(n, width)))
            present.append(raw)
        block = np.concatenate(present, axis=1)
        absent = np.broadcast_to(
            np.frombuffer(b"\xff\xff\xff\xff" * len(group), np.uint8), (n, 4 * len(group))
        )
        operands.append(
            pc.if_else(
                pa.array(~mask.to_numpy()),
                _fixed_binary(block, block.shape[1]),
                _fixed_binary(absent, absent.shape[1]),
            )
        )
        i = j
    flush()
    if len(operands) == 1:
        return operands[0]
    return pc.binary_join_element_wise(*operands, _SEP)


def encode_parts(df: pl.DataFrame, *, header: bool = True, trailer: bool = True) -> list:
    """The frame as a COPY BINARY stream, as a list of buffers to write in order."""
    out: list = [HEADER] if header else []
    if df.height:
        body = encode_body(df)
        if isinstance(body, pa.ChunkedArray):
            body = body.combine_chunks()
        offs = np.frombuffer(body.buffers()[1], dtype=np.int64)
        start, end = int(offs[body.offset]), int(offs[body.offset + len(body)])
        out.append(memoryview(body.buffers()[2])[start:end])
    if trailer:
        out.append(TRAILER)
    return out


def encode(df: pl.DataFrame, *, header: bool = True, trailer: bool = True) -> bytes:
    """The frame as one COPY BINARY ``bytes`` (columns in the frame's order)."""
    return b"".join(encode_parts(df, header=header, trailer=trailer))
