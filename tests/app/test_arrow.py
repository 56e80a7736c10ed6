"""``wattbill._arrow``, the one module that reads polars' Arrow string views: its kernels (compiled and as
their plain twins, ``py_func``) against rules written here row by row, its layout check, and every reader
against the plain path it falls back to (:func:`wattbill._arrow.plain_path`), which must give the same
results: ingest's "needs no stripping" (``ingest.vee._plain_text_columns``), the payment channels and
bill months (``diagnostics.features``), the runs of a string column (``string_runs``: the kernels' runs of
customer ids, ``diagnostics.dense._run_bounds``, and the store's, ``store.embedded._runs_of``).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import text_series
from wattbill import _arrow as A
from wattbill.diagnostics import DEFAULT_PARAMS
from wattbill.diagnostics import features as F
from wattbill.diagnostics.dense import _run_bounds
from wattbill.ingest import vee

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WHITE = " \t\n\v\f\r"


def kernel(name: str, use_py: bool):
    fn = getattr(A, name)
    return fn.py_func if use_py else fn


# --- the rules, row by row ------------------------------------------------------------------------


def bad_end(ch: str) -> bool:
    """A character that may be white space at an end (ASCII white space, or any non-ASCII)."""
    return ch in WHITE or not ch.isascii()


def rule_plain(values: list[str]) -> int:
    """1: no value is empty or has white space (or a non-ASCII character) at an end; 0: one has; -1: the
    only doubt is the last byte of a string of more than 12 bytes (outside its view)."""
    if any(v == "" or bad_end(v[0]) or (len(v.encode()) <= 12 and bad_end(v[-1])) for v in values):
        return 0
    return -1 if any(len(v.encode()) > 12 for v in values) else 1


def rule_run_starts(values: list[str]) -> list[int]:
    return [k for k in range(len(values)) if k == 0 or values[k] != values[k - 1]] + [len(values)]


def inline(values) -> bool:
    return all(v is None or len(v.encode()) <= A.INLINE_BYTES for v in values)


# --- kernels and readers against the rules --------------------------------------------------------


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
@SETTINGS
@given(s=text_series(nulls=False))
def test_plain_view_bytes_follows_the_rule(use_py, s):
    views = A.string_views(s)
    assert views is not None
    got = kernel("plain_view_bytes", use_py)(views.words.view(np.uint8).reshape(-1, 16))
    assert got == rule_plain(s.to_list())


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
@SETTINGS
@given(s=text_series(), max_distinct=st.sampled_from([1, 3, 64, 127]))
def test_view_codes_name_every_row(use_py, s, max_distinct):
    values = s.to_list()
    views = A.string_views(s)
    assert views is not None
    if not values or all(v is None for v in values):
        return
    codes, table = kernel("view_codes", use_py)(views.words, views.validity, views.offset, max_distinct)
    distinct = {v for v in values if v is not None}
    if not inline(values) or len(distinct) > max_distinct:
        assert codes.size == 0 and table.shape[0] == 0
        return
    strings = [row.tobytes()[4: 4 + int(row[0] & 0xFFFFFFFF)].decode() for row in table]
    assert [None if c < 0 else strings[c] for c in codes] == values
    assert set(strings) == distinct


def test_validity_bits_by_hand():
    bits = np.array([0b10100101, 0b00000001], np.uint8)  # rows 0, 2, 5, 7, 8 valid
    for use_py in (False, True):
        fn = kernel("valid", use_py)
        assert [fn(bits, 0, k) for k in range(9)] == [k in (0, 2, 5, 7, 8) for k in range(9)]
        assert [fn(bits, 3, k) for k in range(3)] == [False, False, True]  # rows 3, 4, 5
        assert fn(A.NO_BITMAP, 0, 12345)


# --- the fallback: the same results without the views ---------------------------------------------


@SETTINGS
@given(s=text_series(nulls=False))
def test_plain_text_columns_same_without_views(s):
    df = s.alias("customer_id").to_frame()
    got = vee._plain_text_columns(df, ["customer_id"])
    with A.plain_path():
        assert A.string_views(s) is None and A.plain_text(s) == -1
        plain = vee._plain_text_columns(df, ["customer_id"])
    want = s.len() > 0 and all(v and not bad_end(v[0]) and not bad_end(v[-1]) for v in s.to_list())
    assert got == plain == ({"customer_id"} if want else set())


@SETTINGS
@given(s=text_series())
def test_string_codes_and_channel_index_same_without_views(s):
    channel = s.alias("channel")
    coded = A.string_codes(channel)
    values = channel.to_list()
    if coded is not None:
        codes, strings = coded
        assert [None if c < 0 else strings[c] for c in codes] == values
    else:
        assert not inline(values) or len({v for v in values if v is not None}) > 64
    got = F._channel_index(channel)
    with A.plain_path():
        assert A.string_codes(channel) is None
        plain = F._channel_index(channel)
    want = [F.CHANNELS.index("other") if v is None else
            (F.CHANNELS.index(v.lower()) if v.lower() in F.CHANNELS else -1) for v in values]
    assert got.tolist() == plain.tolist() == want


@SETTINGS
@given(s=text_series(), more_chunks=st.integers(0, 3))
def test_runs_follow_the_rule(s, more_chunks):
    """The runs of a string column, from the views (chunk by chunk: a run may cross a chunk's seam) and from
    polars' run-length encoding, against the rule; and the kernels' and the store's runs are these."""
    from wattbill.store.embedded import _runs_of

    for cut in range(more_chunks):  # (more seams, at drawn places)
        k = (cut + 1) * s.len() // (more_chunks + 1)
        s = pl.concat([s.head(k), s.tail(s.len() - k)], rechunk=False)
    values = s.to_list()
    want = rule_run_starts(values) if values else [0]
    views = A._view_arrays(s) if s.len() and not s.null_count() else None
    if views is not None:
        assert sum(w.shape[0] for w in views) == s.len()
    for plain in (False, True):
        if plain:
            with A.plain_path():
                assert A._view_arrays(s) is None
                bounds, firsts = A.string_runs(s)
        else:
            bounds, firsts = A.string_runs(s)
        assert bounds.tolist() == want
        assert firsts.to_list() == [values[k] for k in want[:-1]]
    bounds, firsts = _run_bounds(s)
    assert bounds.tolist() == want and firsts.to_list() == [values[k] for k in want[:-1]]
    lens, firsts = _runs_of(pl.DataFrame({"customer_id": s}), "customer_id")
    assert lens.tolist() == np.diff(want).tolist() and firsts.to_list() == [values[k] for k in want[:-1]]


@pytest.mark.parametrize("use_py", [False, True])
def test_view_changes_rule(use_py):
    """Row 0 and every row whose 16-byte view differs from the row before's (hand-worked)."""
    words = np.array([[5, 1], [5, 1], [5, 2], [6, 2], [6, 2], [6, 2], [5, 1]], np.int64)
    assert kernel("view_changes", use_py)(words).tolist() == [0, 2, 3, 6]
    assert kernel("view_changes", use_py)(words[:0]).tolist() == []
    assert kernel("view_changes", use_py)(words[:1]).tolist() == [0]


def test_runs_of_long_strings_in_other_buffers():
    """Equal strings of more than 12 bytes whose views differ (each in its own buffer, in several chunks)
    are one run; equal views in one chunk are equal strings."""
    long = "customer-0000000000000001"
    parts = [pl.Series("c", [long, long]), pl.Series("c", [long, "customer-0000000000000002"]),
             pl.Series("c", ["customer-0000000000000002", long])]
    s = pl.concat(parts, rechunk=False)
    assert s.n_chunks() == 3 and A._view_arrays(s) is not None  # (the views are read on this polars)
    bounds, firsts = A.string_runs(s)
    assert bounds.tolist() == [0, 3, 5, 6]
    assert firsts.to_list() == [long, "customer-0000000000000002", long]


def test_payment_features_same_without_views():
    """The payment features of diagnose, from views and from polars, on short and long channels."""
    ids = pl.DataFrame({"customer_id": ["c1", "c2", "c3"]})
    for channels in (["app", "Bank", None, "wechat", "现金"], ["app", "a channel of many bytes", None, "bank", "x"]):
        pay = pl.DataFrame({
            "customer_id": ["c1", "c1", "c2", "c2", "c3"],
            "bill_month": ["2025-01", "2025-02", "2025-01", "2024-12", "2025-03"],
            "issued_on": [dt.date(2025, 2, 1), dt.date(2025, 3, 1), dt.date(2025, 2, 1), dt.date(2025, 1, 1),
                          dt.date(2025, 4, 1)],
            "paid_on": [dt.date(2025, 2, 3), dt.date(2025, 4, 20), None, dt.date(2025, 1, 2), dt.date(2025, 4, 2)],
            "amount_fen": [100, 200, 300, 400, 500],
            "channel": channels,
        })
        got = F._payments(pay, ids, 2025, DEFAULT_PARAMS)
        with A.plain_path():
            plain = F._payments(pay, ids, 2025, DEFAULT_PARAMS)
        assert got.equals(plain)
        assert got.height == 3


# --- the layout check -------------------------------------------------------------------------------


def _views(lengths_and_bytes: list[tuple[int, bytes]]) -> pa.Array:
    """A hand-made ``string_view`` array: each view's length and inline bytes as given."""
    raw = b"".join(n.to_bytes(4, "little") + b.ljust(12, b"\0") for n, b in lengths_and_bytes)
    return pa.Array.from_buffers(pa.string_view(), len(lengths_and_bytes), [None, pa.py_buffer(raw)])


def test_views_of_checks_the_layout():
    good = _views([(3, b"abc"), (2, b"xy")])
    assert A.views_of(good, "abc") is not None
    assert A.views_of(good, "abd") is None  # the bytes disagree with the string read another way
    assert A.views_of(_views([(4, b"abc")]), "abc") is None  # the length disagrees
    assert A.views_of(pa.array(["abc"], pa.large_string()), "abc") is None  # not a view type
    assert A.views_of(pa.array(["abc"], pa.string()), "abc") is None
    assert A.views_of(pa.array([b"abc"], pa.binary_view()), "abc") is None


@pytest.mark.parametrize("s", [
    pl.Series(["app"]).cast(pl.Categorical), pl.Series([1, 2]), pl.Series([True]),
    pl.Series([b"app"], dtype=pl.Binary),
], ids=["categorical", "int", "bool", "binary"])
def test_no_views_of_other_types(s):
    assert A.string_views(s) is None and A.string_codes(s) is None
    assert A.plain_text(s) == -1


def test_plain_path_is_restored():
    s = pl.Series(["a", "b"])
    with A.plain_path():
        assert A.string_views(s) is None
    assert A.string_views(s) is not None
    with pytest.raises(RuntimeError), A.plain_path():
        raise RuntimeError
    assert A.string_views(s) is not None


def test_no_other_module_reads_string_views():
    """The views are read in this one module: no other product module asks polars for them."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("wattbill", "ingest", "store", "tariffs", "diagnostics", "labels", "bills"):
        for path in (repo / folder).rglob("*.py"):
            text = path.read_text("utf-8")
            if path.name != "_arrow.py" and any(k in text for k in ("CompatLevel", "string_view", "StringView")):
                offenders.append(str(path.relative_to(repo)))
    assert offenders == []
