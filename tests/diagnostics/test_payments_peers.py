"""The payment columns and peer percentiles read through ``diagnostics.paykernels`` against the polars
formulations they replace (kept here as the references), on random data, fallbacks included.

Every numba kernel of ``paykernels`` has its plain-Python twin (``kernel.py_func``) run here too.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import daily_cases
from wattbill import _arrow as A
from wattbill.diagnostics import DEFAULT_PARAMS, Params, add_peers
from wattbill.diagnostics import features as F
from wattbill.diagnostics import paykernels as K

SETTINGS = settings(max_examples=60, deadline=None,  # (the fixtures hold for every example)
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
KERNELS = ("take_codes", "mix_codes", "order_keys", "radix_sort", "rank_pct")


@pytest.fixture(params=["njit", "py_func"])
def use_py(request, monkeypatch):
    """Run the kernels of ``paykernels`` compiled, or as their plain-Python twins."""
    if request.param == "py_func":
        for name in KERNELS:
            fn = getattr(K, name).py_func
            monkeypatch.setattr(K, name, fn)
            if hasattr(F, name):
                monkeypatch.setattr(F, name, fn)
        monkeypatch.setattr(A, "view_codes", A.view_codes.py_func)
    return request.param == "py_func"


# --- the references: the polars formulations as first written ----------------------------------


def old_date_days(s: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    return (s.to_physical().cast(pl.Int64).fill_null(0).to_numpy(), s.is_not_null().to_numpy())


def old_channel_index(channel: pl.Series) -> np.ndarray:
    seen = channel.unique().drop_nulls().to_list()
    index = [F.CHANNELS.index(c.lower()) if c.lower() in F.CHANNELS else -1 for c in seen]
    return channel.replace_strict(seen, index, default=F.CHANNELS.index("other"), return_dtype=pl.Int64).to_numpy()


def old_in_year(bill_month: pl.Series, year: int) -> np.ndarray:
    return bill_month.str.starts_with(f"{year}-").fill_null(False).to_numpy()


def old_channel_mix_json(by_channel: np.ndarray, n_paid: np.ndarray, paid_any: np.ndarray) -> pl.Series:
    n = by_channel.shape[0]
    counts = np.column_stack([by_channel, n_paid])[paid_any]
    if counts.size and counts.min() >= 0 and counts.max() < 512:
        keys = (counts << (9 * np.arange(counts.shape[1], dtype=np.int64))).sum(axis=1)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        combos = counts[first]
    else:
        combos, inverse = np.unique(counts.reshape(-1, by_channel.shape[1] + 1), axis=0, return_inverse=True)
    frame = pl.DataFrame({**{f"__n_{c}": combos[:, k] for k, c in enumerate(F.CHANNELS)},
                          "__n_paid": combos[:, -1]}, schema={f"__n_{c}": pl.Int64 for c in [*F.CHANNELS, "paid"]})
    np_ = pl.col("__n_paid")
    mix = frame.select(pl.concat_str(
        [pl.lit("{"),
         pl.concat_str([pl.format('"{}": {}', pl.lit(c), (pl.col(f"__n_{c}") / np_).round(4)) for c in F.CHANNELS],
                       separator=", "),
         pl.lit("}")])).to_series()
    idx = np.zeros(n, np.int64)
    idx[paid_any] = inverse.reshape(-1)
    take = pl.select(pl.when(pl.Series(values=paid_any)).then(pl.Series(values=idx))).to_series()
    return mix.gather(take).alias("pay_channel_mix")


def old_with_peers(out: pl.DataFrame, p: Params) -> pl.DataFrame:
    group = ["region", "household_size"]
    enough = pl.col("days_present") >= pl.col("days_open").clip(lower_bound=1) * 0.5
    per_day = pl.col("wh_year") / pl.col("days_present")

    def pct_of(expr, valid):
        v = pl.when(valid).then(expr)
        size = v.count().over(group)
        rank = v.rank("average").over(group)
        return pl.when(valid & (size >= p.peer_min_size)).then(100.0 * (rank - 0.5) / size), size

    pct, size = pct_of(per_day, enough & per_day.is_not_null())
    pv, _ = pct_of(pl.col("share_valley"), enough & pl.col("share_valley").is_not_null())
    pp, _ = pct_of(pl.col("share_sharp_peak"), enough & pl.col("share_sharp_peak").is_not_null())
    pb, _ = pct_of(pl.col("base_load_w"), enough & pl.col("base_load_w").is_not_null())
    return out.with_columns(
        pct.alias("peer_percentile"), size.cast(pl.Int32).alias("peer_group_size"),
        pv.alias("peer_share_valley_pct"), pp.alias("peer_share_sharp_peak_pct"),
        pb.alias("peer_base_load_pct"),
    )


def old_payments(monkeypatch, payments, ids, year, p):
    """``_payments`` with every new path replaced by the formulation it replaced."""
    with monkeypatch.context() as m:
        m.setattr(F, "_date_days", old_date_days)
        m.setattr(F, "_channel_index", old_channel_index)
        m.setattr(F, "_channel_mix_json", old_channel_mix_json)
        m.setattr(F, "string_codes", lambda s, max_distinct=64: None)
        return F._payments(payments, ids, year, p)


def assert_frames_identical(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """Same columns, types, nulls and values; floats bit for bit."""
    assert got.columns == want.columns and got.dtypes == want.dtypes
    assert got.equals(want), (got, want)
    for c in got.columns:
        if got.schema[c] == pl.Float64:
            a, b = got.get_column(c), want.get_column(c)
            assert (a.is_null() == b.is_null()).all()
            ok = a.is_not_null().to_numpy()
            assert (a.to_numpy()[ok].view(np.int64) == b.to_numpy()[ok].view(np.int64)).all(), c


# --- strings ------------------------------------------------------------------------------------

ODD = ["app", "wechat", "alipay", "bank", "counter", "other", "APP", "Bank", "cash", "", "现金",
       "twelve bytes", "thirteen byte", "a channel of many bytes", "支付宝钱包"]


def string_series(draw, pool: list[str | None], max_rows: int = 60) -> pl.Series:
    values = draw(st.lists(st.sampled_from(pool), min_size=0, max_size=max_rows))
    s = pl.Series("channel", values, dtype=pl.Utf8)
    how = draw(st.sampled_from(["plain", "sliced", "chunks"]))
    if how == "sliced" and s.len() > 2:
        s = s.slice(1, s.len() - 2)  # the Arrow array has an offset (views and validity bits)
    elif how == "chunks":
        s = pl.concat([s, s.head(5)], rechunk=False)
    return s


@st.composite
def channels(draw) -> pl.Series:
    short = draw(st.booleans())
    pool = [c for c in ODD if len(c.encode()) <= 12] if short else ODD
    return string_series(draw, [*pool, None])


@SETTINGS
@given(s=channels())
def test_channel_index_equals_replace_strict(use_py, s):
    got = F._channel_index(s)
    assert got.tolist() == old_channel_index(s).tolist()
    long = any(v is not None and len(v.encode()) > 12 for v in s.to_list())
    assert (A.string_codes(s) is None) == long


@SETTINGS
@given(s=channels(), year=st.sampled_from([2024, 2025]))
def test_codes_of_bill_months_equal_starts_with(use_py, s, year):
    months = s.to_frame().select(
        pl.when(pl.col("channel").str.len_bytes() % 3 == 0).then(pl.lit(f"{year}-"))
        .when(pl.col("channel").str.len_bytes() % 3 == 1).then(pl.lit(f"{year - 1}-"))
        .otherwise(pl.lit(f"{year}")) + pl.col("channel")).to_series()
    coded = A.string_codes(months)
    if coded is not None:
        codes, strings = coded
        got = K.take_codes(codes, np.array([m.startswith(f"{year}-") for m in strings], np.bool_), False)
        assert got.tolist() == old_in_year(months, year).tolist()


@pytest.mark.parametrize("max_distinct", [1, 5, 64, 127])
def test_many_distinct_strings_fall_back(use_py, max_distinct):
    s = pl.Series([f"c{i}" for i in range(max_distinct + 1)] + [None, "c0"])
    assert A.string_codes(s, max_distinct) is None
    codes, strings = A.string_codes(s.head(max_distinct), max_distinct)
    assert [strings[c] for c in codes] == s.head(max_distinct).to_list()
    many = pl.Series([f"c{i % 90}" for i in range(300)] + ["APP", None])
    assert F._channel_index(many).tolist() == old_channel_index(many).tolist()


def test_string_codes_of_other_columns():
    assert A.string_codes(pl.Series(["app"]).cast(pl.Categorical)) is None
    assert A.string_codes(pl.Series([1, 2])) is None
    assert A.string_codes(pl.Series(["app"]), 128) is None
    codes, strings = A.string_codes(pl.Series([None, None], dtype=pl.Utf8))
    assert codes.tolist() == [-1, -1] and strings == []
    codes, strings = A.string_codes(pl.Series([], dtype=pl.Utf8))
    assert codes.size == 0 and strings == []
    cat = pl.Series(["Bank", None, "x"]).cast(pl.Categorical)
    assert F._channel_index(cat).tolist() == old_channel_index(cat).tolist() == [3, 5, -1]


# --- payments -----------------------------------------------------------------------------------


@SETTINGS
@given(case=daily_cases(max_households=10), how=st.sampled_from(["plain", "sliced", "long", "null_dates"]))
def test_payments_equal_the_polars_formulation(monkeypatch, use_py, case, how):
    pays = case.payments
    if how == "sliced" and pays.height > 2:
        pays = pays.slice(1, pays.height - 2)
    elif how == "long":  # a channel longer than 12 bytes: replace_strict
        pays = pays.with_columns(pl.when(pl.int_range(pl.len()) % 5 == 0).then(pl.lit("a-long-channel-name"))
                                 .otherwise(pl.col("channel")).alias("channel"),
                                 pl.col("bill_month") + pl.lit("-01"))
    elif how == "null_dates":
        pays = pays.with_columns(pl.when(pl.int_range(pl.len()) % 4 == 1).then(pl.col("issued_on"))
                                 .alias("issued_on"),
                                 pl.when(pl.int_range(pl.len()) % 3 == 0).then(None).otherwise(pl.col("bill_month"))
                                 .alias("bill_month"))
    ids = case.customers.select("customer_id")
    got = F._payments(pays, ids, case.year, DEFAULT_PARAMS)
    assert_frames_identical(got, old_payments(monkeypatch, pays, ids, case.year, DEFAULT_PARAMS))


@st.composite
def channel_counts(draw):
    n = draw(st.integers(0, 40))
    big = draw(st.booleans())
    hi = 600 if big else 4
    by = np.array(draw(st.lists(st.lists(st.integers(0, hi), min_size=6, max_size=6), min_size=n, max_size=n)),
                  np.int64).reshape(n, 6)
    extra = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.int64)
    paid_any = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.bool_)
    n_paid = by.sum(axis=1) + extra
    paid_any &= n_paid > 0
    return by, n_paid, paid_any


@SETTINGS
@given(counts=channel_counts())
def test_channel_mix_equals_the_unique(use_py, counts):
    by, n_paid, paid_any = counts
    got = F._channel_mix_json(by, n_paid, paid_any)
    assert got.equals(old_channel_mix_json(by, n_paid, paid_any))
    combo, first = K.mix_codes(by, n_paid, paid_any)
    fits = (by[paid_any].max(initial=0) < 512) and (n_paid[paid_any].max(initial=0) < 512)
    assert (combo.size == by.shape[0]) == fits
    if fits:
        key = np.column_stack([by, n_paid])
        assert (combo[~paid_any] == -1).all() and (combo[first] == np.arange(first.size)).all()
        for i in np.flatnonzero(paid_any):  # same combination: same number
            assert (key[first[combo[i]]] == key[i]).all()
        assert len({tuple(r) for r in key[paid_any]}) == first.size


def test_mix_codes_grow_their_table(use_py):
    rng = np.random.default_rng(5)
    by = rng.integers(0, 12, (3000, 6))
    n_paid = by.sum(axis=1)
    paid_any = n_paid > 0
    combo, first = K.mix_codes(by, n_paid, paid_any)
    assert first.size == len({tuple(r) for r in by[paid_any]}) > 600  # more than half of the first table
    assert (by[first[combo[paid_any]]] == by[paid_any]).all()
    assert F._channel_mix_json(by, n_paid, paid_any).equals(old_channel_mix_json(by, n_paid, paid_any))
    for edge in (511, 512):  # the last count that fits its 9 bits, and the first that does not
        one_channel = np.array([[edge, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], np.int64)
        for by, n_paid in ((one_channel, np.ones(3, np.int64)), (np.zeros((3, 6), np.int64), np.array([edge, 1, edge]))):
            combo, _ = K.mix_codes(by, n_paid, np.ones(3, np.bool_))
            assert (combo.size == 3) == (edge == 511)
            got = F._channel_mix_json(by, n_paid, np.ones(3, np.bool_))
            assert got.equals(old_channel_mix_json(by, n_paid, np.ones(3, np.bool_)))
    wide = np.zeros((2, 7), np.int64)
    assert K.mix_codes(wide, np.ones(2, np.int64), np.ones(2, np.bool_))[0].size == 0  # > 6 channels


# --- peers --------------------------------------------------------------------------------------

NAN_PAYLOADS = [float(np.array([b], np.uint64).view(np.float64)[0]) for b in (0xFFF8000000000000, 0x7FF0000000000001,
                                                                            0xFFF0000000000003)]
FLOATS = [0.0, -0.0, 0.1, 0.25, 1.0, 1.0 + 2**-52, -1.5, 1e300, -1e-300, 5e-324, float("inf"), float("-inf"),
          float("nan"), *NAN_PAYLOADS, None]


@st.composite
def peer_frames(draw) -> pl.DataFrame:
    n = draw(st.integers(0, 80))

    def col(strategy):
        return draw(st.lists(strategy, min_size=n, max_size=n))

    tied = draw(st.booleans())
    floats = st.sampled_from(FLOATS) if tied else st.one_of(st.none(), st.floats(allow_nan=True, width=64))
    df = pl.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "region": col(st.sampled_from(["杭州", "宁波", "a region name longer than twelve bytes", None])),
        "household_size": col(st.one_of(st.none(), st.integers(1, 3))),
        "days_open": col(st.one_of(st.none(), st.integers(0, 366))),
        "days_present": col(st.one_of(st.none(), st.integers(0, 366))),
        "wh_year": col(st.one_of(st.none(), st.integers(0, 5) if tied else st.integers(-10, 10**12))),
        "share_valley": col(floats),
        "share_sharp_peak": col(floats),
        "base_load_w": col(floats),
    }, schema={"customer_id": pl.Utf8, "region": pl.Utf8, "household_size": pl.Int32, "days_open": pl.Int32,
               "days_present": pl.Int32, "wh_year": pl.Int64, "share_valley": pl.Float64,
               "share_sharp_peak": pl.Float64, "base_load_w": pl.Float64})
    if n > 3 and draw(st.booleans()):
        df = df.slice(2)
    return df


@SETTINGS
@given(df=peer_frames(), min_size=st.integers(0, 6))
def test_peers_equal_the_polars_windows(use_py, df, min_size):
    p = Params(peer_min_size=min_size)
    got = F._with_peers(df, p)
    assert_frames_identical(got, old_with_peers(df, p))
    again = F._with_peers(got, p)  # the peer columns replaced in place, as add_peers does
    assert again.columns == got.columns and again.equals(got)


@SETTINGS
@given(df=peer_frames())
def test_peers_of_other_value_types_use_the_windows(df):
    df = df.with_columns(pl.col("base_load_w").cast(pl.Float32))  # not Float64: the polars windows
    p = Params(peer_min_size=2)
    assert_frames_identical(F._with_peers(df, p), old_with_peers(df, p))


def test_add_peers_equals_the_windows(use_py):
    rng = np.random.default_rng(11)
    n = 500
    df = pl.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "region": rng.choice(["a", "b", "c"], n),
        "household_size": rng.integers(1, 4, n).astype(np.int32),
        "days_open": np.full(n, 365, np.int32), "days_present": rng.integers(100, 366, n).astype(np.int32),
        "wh_year": rng.integers(0, 10**7, n), "share_valley": rng.random(n).round(2),
        "share_sharp_peak": rng.random(n), "base_load_w": rng.integers(0, 50, n) * 10.0,
        **{c: np.zeros(n) for c in F.PEER_COLUMNS}})
    p = Params(peer_min_size=20)
    got = add_peers(df, p)
    assert_frames_identical(got, old_with_peers(df, p).select(df.columns))


@pytest.mark.parametrize("seed", range(4))
def test_radix_sort_and_keys_order_as_numpy(use_py, seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(0, 10.0 ** rng.integers(-300, 300), 200), np.array(FLOATS[:-1]),
                             -rng.random(50), rng.integers(-3, 3, 50).astype(np.float64)])
    rng.shuffle(values)
    rows = np.flatnonzero(rng.random(values.size) < 0.9).astype(np.int64)
    keys = K.order_keys(values, rows)
    skeys, srows = K.radix_sort(keys, rows)
    assert (np.diff(skeys) >= 0).all() and sorted(srows.tolist()) == rows.tolist()
    assert (skeys == np.sort(keys)).all()
    v = values[srows]
    nan = np.isnan(v)
    assert not nan[: nan.size - nan.sum()].any()  # NaN last
    finite = v[~nan]
    assert (np.diff(finite) >= 0).all()
    same = skeys[1:] == skeys[:-1]
    assert (same == ((v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1])))).all()  # -0.0 ties 0.0
    assert K.radix_sort(keys[:0], rows[:0])[0].size == 0


def test_rank_pct_small(use_py):
    values = np.array([3.0, 1.0, 3.0, np.nan, 2.0, 7.0, -0.0, 0.0])
    group = np.array([0, 0, 0, 0, 1, 1, 0, 0])
    valid = np.array([True, True, True, True, True, True, False, True])
    pct, size = K.peer_pct(values, valid, group, 2, 2)
    # group 0: 0.0 < 1.0 < 3.0 = 3.0 < NaN (5 valid rows); group 1: 2.0 < 7.0
    want = np.array([100 * (3.5 - 0.5) / 5, 100 * 1.5 / 5, 100 * 3.0 / 5, 100 * 4.5 / 5, 25.0, 75.0, np.nan,
                     100 * 0.5 / 5])
    assert np.array_equal(pct, want, equal_nan=True)
    assert size.tolist() == [5, 5, 5, 5, 2, 2, 5, 5]
    pct, _ = K.peer_pct(values, valid, group, 2, 3)
    assert np.isnan(pct[4:6]).all()
