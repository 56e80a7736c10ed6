"""The readers of polars' Arrow string views, in one place, each with a plain path it falls back to.

polars keeps text as Arrow *string views*: 16 bytes a row, the length (int32, little-endian) first,
then the string itself when it has at most 12 bytes (zero-padded), else its first 4 bytes, a buffer
index and an offset (Apache Arrow Columnar Format, "Variable-size Binary View Layout"). A numba pass
over these 16-byte words in place answers some questions about short strings (customer ids, payment
channels, bill months) without materialising a single Python or Arrow string. That layout is polars'
internal choice and a polars (or pyarrow) upgrade may change what ``Series.to_arrow`` hands out, so
every reader here goes through :func:`string_views`, which returns None unless the column is exactly
what the kernels expect:

* a little-endian machine, a polars ``String`` column, pyarrow's ``string_view`` type after combining
  the chunks (an older pyarrow, a large or plain ``string`` array, a categorical: None);
* a views buffer of 16 bytes a row; the first non-null row's view agreeing with the string polars
  returns for it (its length, and its bytes or 4-byte prefix), a probe of the layout itself.

When it returns None, each reader returns its "not decided" value and the caller takes its plain path
(polars expressions or an offsets-and-bytes array), which gives the same result; so does a string longer
than 12 bytes (not inline in its view). :func:`plain_path` forces that path (the tests compare both).

Measured gains (issue #11, CPU seconds, recorded in the benchmarks' notes): see
``benchmarks/bench_ingest.py`` and ``benchmarks/bench_diagnostics.py``.

References
----------
Apache Arrow Columnar Format, "Variable-size Binary View Layout",
https://arrow.apache.org/docs/format/Columnar.html#variable-size-binary-view-layout
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numba as nb
import numpy as np
import polars as pl
import pyarrow as pa

NO_BITMAP = np.zeros(0, np.uint8)
"""An empty Arrow validity bitmap: every row valid."""

INLINE_BYTES = 12
"""The longest string held inside its view [bytes]."""

_read_views = True  # False inside plain_path(): every reader takes its caller's plain path


@contextmanager
def plain_path() -> Iterator[None]:
    """Within the block, :func:`string_views` returns None: every reader falls back to the plain path.

    Not thread-safe (a switch of this module); meant for tests and measurements.
    """
    global _read_views
    before, _read_views = _read_views, False
    try:
        yield
    finally:
        _read_views = before


@dataclass(frozen=True)
class StringViews:
    """A string column's Arrow views, read in place.

    Attributes
    ----------
    words : ndarray of int64, (n, 2)
        Each row's 16-byte view as two little-endian words: the length in the low 32 bits of
        ``words[:, 0]``, the inline bytes (or prefix, buffer index and offset) after it.
    validity : ndarray of uint8
        The Arrow validity bitmap (:data:`NO_BITMAP`: no nulls).
    offset : int
        Bit offset of row 0 in ``validity``.
    """

    words: np.ndarray
    validity: np.ndarray
    offset: int


def string_views(s: pl.Series) -> StringViews | None:
    """The Arrow string views of ``s`` in place, or None when they are not exactly the expected layout.

    Parameters
    ----------
    s : pl.Series
        Any column, length n.

    Returns
    -------
    StringViews or None
        None on a big-endian machine, inside :func:`plain_path`, for a column that is not polars
        ``String``, when pyarrow does not hand out ``string_view`` (after combining chunks), when the
        views buffer is not 16 bytes a row, or when the first non-null view disagrees with its string
        (its length, its inline bytes or prefix). An all-null or empty column gives empty words.
    """
    if not _read_views or sys.byteorder != "little" or s.dtype != pl.Utf8:
        return None
    try:
        a = s.to_arrow(compat_level=pl.CompatLevel.newest())  # string views, no copy
        if isinstance(a, pa.ChunkedArray):
            a = a.combine_chunks()
    except (pa.ArrowException, TypeError, ValueError, NotImplementedError):
        return None
    first = int(s.is_not_null().arg_max() or 0)  # the first non-null row: its string, from polars
    return views_of(a, s[first] if s.len() and s.null_count() < s.len() else None, first)


def views_of(a: pa.Array, first_text: str | None, first: int = 0) -> StringViews | None:
    """The views of an Arrow array, checked against ``first_text``, the string of its first non-null row.

    Parameters
    ----------
    a : pyarrow.Array
        One array (not chunked), length n.
    first_text : str or None
        What the first non-null row holds, as read another way (None: every row null).
    first : int
        Index of the first non-null row.

    Returns
    -------
    StringViews or None
        None unless ``a`` is a ``string_view`` array of 16 bytes a row whose first non-null view holds
        ``first_text``'s length and its bytes (at most 12) or its 4-byte prefix.
    """
    if sys.byteorder != "little" or not pa.types.is_string_view(a.type):
        return None
    n = len(a)
    buffers = a.buffers()
    validity, data = buffers[0], buffers[1]
    bitmap = NO_BITMAP if validity is None else np.frombuffer(validity, np.uint8)
    if n == 0 or data is None or a.null_count == n:
        return StringViews(np.zeros((0, 2), np.int64), bitmap, int(a.offset))
    if data.size < 16 * (a.offset + n):
        return None
    words = np.frombuffer(data, np.int64, count=2 * (a.offset + n)).reshape(-1, 2)[a.offset:]
    if first_text is None:
        return None
    text = first_text.encode()
    view = words[first].tobytes()
    length = int.from_bytes(view[:4], "little")
    shown = text if length <= INLINE_BYTES else text[:4]
    if length != len(text) or view[4: 4 + len(shown)] != shown:
        return None
    return StringViews(words, bitmap, int(a.offset))


# --- kernels over the views (each has its plain twin, ``.py_func``, run in the tests) ------------------


@nb.njit(cache=True, inline="always")
def valid(bitmap, offset, k):  # pragma: no cover - numba
    """Arrow validity bit of row ``k`` (an empty bitmap: every row valid)."""
    if bitmap.shape[0] == 0:
        return True
    j = offset + k
    return (bitmap[j >> 3] >> (j & 7)) & 1 == 1


@nb.njit(cache=True, nogil=True)
def plain_view_bytes(views):  # pragma: no cover - numba (its twin runs in the tests)
    """Whether no string is empty or starts or ends with a byte that may be white space, from views.

    Parameters
    ----------
    views : ndarray of uint8, (n, 16)
        The 16-byte views (:class:`StringViews` ``words`` seen as bytes).

    Returns
    -------
    int
        1 plain, 0 not plain, -1 undecided (a string longer than 12 bytes: its last byte is in a data
        buffer; the caller checks another way). White space: ASCII 9-13 and 32, and any non-ASCII byte,
        conservatively.
    """
    undecided = False
    for i in range(views.shape[0]):
        ln = (
            np.int64(views[i, 0])
            | (np.int64(views[i, 1]) << 8)
            | (np.int64(views[i, 2]) << 16)
            | (np.int64(views[i, 3]) << 24)
        )
        if ln == 0:
            return 0
        first = views[i, 4]  # inline or the prefix: always in the view
        if first == 32 or (9 <= first <= 13) or first >= 128:
            return 0
        if ln > 12:
            undecided = True
            continue
        last = views[i, 3 + ln]
        if last == 32 or (9 <= last <= 13) or last >= 128:
            return 0
    return -1 if undecided else 1


_SLOTS = 256  # hash slots of view_codes (a power of two, > 127 codes: at most 127 codes fit int8)


@nb.njit(cache=True)
def view_codes(views, validity, voff, max_distinct):  # pragma: no cover - numba (its twin runs in the tests)
    """The code of every row's string (its index in the table of distinct views), from Arrow string views.

    Parameters
    ----------
    views : int64[n, 2]
        The rows' views (:class:`StringViews` ``words``).
    validity : uint8[:]
        Arrow validity bitmap (empty: no nulls).
    voff : int
        Bit offset of row 0 in ``validity``.
    max_distinct : int
        Most distinct views (at most 127, below the 256 hash slots).

    Returns
    -------
    (int8[n], int64[k, 2])
        The code of each row (-1 for a null) and the ``k`` distinct views in order of first appearance;
        both empty (``n > 0``) when a string is longer than 12 bytes (not inline) or there are more than
        ``max_distinct`` distinct views. Equal strings with unequal views (unzeroed padding) get two
        codes of the same string: still correct.
    """
    n = views.shape[0]
    mask = _SLOTS - 1
    codes = np.empty(n, np.int8)
    slot = np.full(_SLOTS, -1, np.int64)
    table = np.empty((max_distinct, 2), np.int64)
    k_n = 0
    for k in range(n):
        if not valid(validity, voff, k):
            codes[k] = -1
            continue
        w0 = views[k, 0]
        w1 = views[k, 1]
        if (w0 & 0xFFFFFFFF) > 12:
            return codes[:0], table[:0]
        x = w0 ^ w1
        x = (x ^ (x >> 32)) & 0xFFFFFFFF
        s = ((x * 0x5BD1E995) >> 16) & mask  # (< 2**63: no overflow)
        while True:
            c = slot[s]
            if c < 0:
                if k_n == max_distinct:
                    return codes[:0], table[:0]
                table[k_n, 0] = w0
                table[k_n, 1] = w1
                slot[s] = k_n
                c = k_n
                k_n += 1
                break
            if table[c, 0] == w0 and table[c, 1] == w1:
                break
            s = (s + 1) & mask
        codes[k] = c
    return codes, table[:k_n]


# --- the readers: None / -1 sends the caller to its plain path ------------------------------------------


def plain_text(s: pl.Series) -> int:
    """Whether a column without nulls needs no stripping, from its views (see :func:`plain_view_bytes`).

    Parameters
    ----------
    s : pl.Series
        A column without nulls, length n.

    Returns
    -------
    int
        1 plain, 0 not plain (an empty value, or white space or a non-ASCII byte at an end); -1 when the
        views cannot decide (a string longer than 12 bytes, or no views: :func:`string_views`).
    """
    v = string_views(s)
    if v is None or v.words.shape[0] != s.len() or s.null_count():
        return -1
    return int(plain_view_bytes(v.words.view(np.uint8).reshape(-1, 16)))


def string_codes(s: pl.Series, max_distinct: int = 64) -> tuple[np.ndarray, list[str]] | None:
    """Codes of a short string column's rows and its distinct strings, read from the views in place.

    Parameters
    ----------
    s : pl.Series
        A column, length n.
    max_distinct : int
        Most distinct strings (1 to 127).

    Returns
    -------
    (int8[n], list of str) or None
        Row codes (-1 = null) and the string of each code (the same string may have two codes); None
        when there are no views (:func:`string_views`), a string is longer than 12 bytes or there are
        more than ``max_distinct`` distinct strings: the caller then uses polars.
    """
    if not 0 < max_distinct <= 127:
        return None
    v = string_views(s)
    if v is None:
        return None
    n = s.len()
    if v.words.shape[0] < n:  # (all null)
        return np.full(n, -1, np.int8), []
    codes, table = view_codes(v.words, v.validity, v.offset, int(max_distinct))
    if n and not codes.size:
        return None
    strings = [row.tobytes()[4: 4 + int(row[0] & 0xFFFFFFFF)].decode() for row in table]
    return codes, strings


def string_runs(s: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """The runs of equal values of a string column: row bounds and the value of each run.

    Each row that differs from the row before starts a run (nulls equal to each other). Read from the
    Arrow views chunk by chunk in place: within one array, rows with the same 16-byte view hold the same
    string (the same length and bytes, or the same prefix, buffer and offset), so only the rows whose view
    differs from the row before, and each array's first row, can start a run; those few candidates' strings
    are then compared by polars, which joins candidates that hold the same string (a long string repeated
    from elsewhere in the buffers, the arrays' seams). Without views (:func:`string_views`' conditions,
    nulls) polars' run-length encoding (``rle``) of the whole column, the plain path, gives the same runs.

    On a chunk's daily rows as the store reads them (18M rows of 50,000 customers in 960 Arrow arrays), the
    run-length encoding took 0.15 s of CPU per call, three calls per year read (a sixth of a chunk's
    CPU: the store's grouping by customer, its filter to the chunk's customers and the kernels' runs)
    (2026-12-02, py-spy of ``compute_chunk``).

    Parameters
    ----------
    s : pl.Series
        Any column, length n.

    Returns
    -------
    (int64[r + 1], pl.Series)
        Run ``k`` holds rows ``bounds[k]:bounds[k + 1]`` (``bounds[0]`` 0, ``bounds[r]`` n); the ``r``
        values (``String``).
    """
    n = s.len()
    arrays = _view_arrays(s) if n and not s.null_count() else None
    if arrays is None:
        runs = s.cast(pl.Utf8).rle().struct.unnest()
        bounds = np.zeros(runs.height + 1, np.int64)
        np.cumsum(runs.get_column("len").to_numpy(), out=bounds[1:])
        return bounds, runs.get_column("value")
    starts = []
    at = 0
    for words in arrays:
        starts.append(view_changes(words) + at)
        at += words.shape[0]
    cand = np.concatenate(starts)
    values = s.cast(pl.Utf8).gather(cand)
    keep = values.ne_missing(values.shift(1)).fill_null(True).to_numpy()  # (the first candidate: row 0)
    first = cand[keep]
    bounds = np.empty(first.size + 1, np.int64)
    bounds[:-1] = first
    bounds[-1] = n
    return bounds, values.filter(pl.Series(values=keep))


@nb.njit(cache=True, nogil=True)
def view_changes(words):  # pragma: no cover - numba (its twin runs in the tests)
    """The rows whose view differs from the row before's, and row 0: the rows that may start a run.

    Parameters
    ----------
    words : int64[m, 2]
        An array's views (:class:`StringViews` ``words``).

    Returns
    -------
    int64[k]
        Ascending row indices (empty for ``m == 0``).
    """
    m = words.shape[0]
    out = np.empty(m, np.int64)
    k = 0
    for i in range(m):
        if i == 0 or words[i, 0] != words[i - 1, 0] or words[i, 1] != words[i - 1, 1]:
            out[k] = i
            k += 1
    return out[:k].copy()


def _view_arrays(s: pl.Series) -> list[np.ndarray] | None:
    """The views (int64[m, 2] each) of every polars chunk of a string column without nulls, in order, in
    place (``Series.to_arrow`` of a column of several chunks would first copy them into one); None unless
    each is a ``string_view`` array of 16 bytes a row and the first row's view holds its string (the
    probe of :func:`views_of`)."""
    if not _read_views or sys.byteorder != "little" or s.dtype != pl.Utf8:
        return None
    out: list[np.ndarray] = []
    at = 0
    for part in s.get_chunks():
        if part.len() == 0:
            continue
        try:
            c = part.to_arrow(compat_level=pl.CompatLevel.newest())  # one chunk: string views, no copy
        except (pa.ArrowException, TypeError, ValueError, NotImplementedError):
            return None
        if isinstance(c, pa.ChunkedArray):
            if c.num_chunks != 1:
                return None
            c = c.chunk(0)
        if not pa.types.is_string_view(c.type) or c.null_count:
            return None
        data = c.buffers()[1]
        if data is None or data.size < 16 * (c.offset + len(c)):
            return None
        if not out and views_of(c, s[at]) is None:
            return None
        out.append(np.frombuffer(data, np.int64, count=2 * (c.offset + len(c))).reshape(-1, 2)[c.offset:])
        at += len(c)
    return out


def text_columns(schema: pa.Schema) -> list[str]:
    """The text columns of an Arrow schema (``string``, ``large_string``, ``string_view``), in its order: the
    columns that the bill run's files and the store's bill tables encode with a dictionary (their other
    columns without one; ``store.embedded._results_writer``, where it is measured)."""
    return [f.name for f in schema
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type)]
