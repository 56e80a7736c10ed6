"""Synthetic service interactions: seeded, vectorised, with known channel preferences and a trend.

Each household gets a channel preference (its own random stream, ``seed + 17``, so the usage and
payment traits of ``wattbill.synth`` do not change). In the bill year ``year``:

=========================  =========  ===================================================================
class (ground truth)       share      contacts
=========================  =========  ===================================================================
``channel_hall_only``      8 %        4-12 contacts, every one at the service hall, any need
``channel_assisted_simple`` 15 %      4-12; 60-80 % (at least 3) are simple needs (bill query,
                                      payment, application) by phone (70 %) or at the hall, the rest
                                      outage/repair/consultation by phone or robot
``channel_fully_online``   22 %       4-12, every one in the app, WeChat, Alipay, the robot or social
                                      accounts, never a complaint
mixed (no label)           45 %       4-12; 30-50 % (at least 2) phone or hall for outages, repairs,
                                      complaints and consultations, simple needs online
quiet (no label)           10 %       0-2 contacts, any channel
=========================  =========  ===================================================================

The year before, households move the other way (the trend the report shows): 40 % of this year's
fully-online households were mixed, 30 % of the mixed ones phoned for simple needs, and every
household had one contact more. Outcomes: resolved in the channel with probability 0.85 (app,
WeChat, Alipay, social), 0.6 (robot), 0.85 (phone), 0.95 (hall); an unresolved contact is escalated
to the next stage of the funnel (self-service -> robot -> phone -> hall) with probability 0.7;
complaints by phone are escalated to the hall with probability 0.3. ``handle_seconds`` is missing on
5 % of contacts and ``satisfaction`` on 40 %.

``dirty=True`` adds rows that ingest must refuse or count: 0.2 % with a channel that does not exist,
0.1 % without an intent, 0.3 % exact duplicates.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

#: class index -> ground-truth behaviour (None: no channel label)
CLASSES: tuple[str | None, ...] = (
    "channel_hall_only", "channel_assisted_simple", "channel_fully_online", None, None,
)
_P_CLASS = (0.08, 0.15, 0.22, 0.45, 0.10)
#: code tables: channels and needs are drawn as small integers and named at the end
CH = ("app", "wechat", "alipay", "social", "robot", "phone", "hall", "other")
NEED = ("bill_query", "payment", "outage", "repair", "application", "complaint", "consultation", "other")
_C = {c: i for i, c in enumerate(CH)}
_N = {c: i for i, c in enumerate(NEED)}
_SIMPLE = np.array([_N["bill_query"], _N["payment"], _N["application"]], np.int8)
_OTHER_NEEDS = np.array([_N["outage"], _N["repair"], _N["complaint"], _N["consultation"]], np.int8)
_NO_COMPLAINT = np.array([_N[n] for n in NEED if n not in ("complaint", "other")], np.int8)
_ONLINE = np.array([_C[c] for c in ("app", "wechat", "alipay", "robot", "social")], np.int8)
_RESOLVE_P = np.array([0.85, 0.85, 0.85, 0.85, 0.6, 0.85, 0.95, 0.8])  # by channel code
_NEXT = np.array([_C["robot"]] * 4 + [_C["phone"], _C["hall"], -1, _C["phone"]], np.int8)  # -1: none
_SECONDS = np.array([(60, 300), (60, 300), (60, 300), (60, 600), (60, 240), (180, 900), (600, 2400),
                     (120, 900)])


def draw_classes(n: int, seed: int) -> np.ndarray:
    """The channel class (index into ``CLASSES``) of each of ``n`` households."""
    rng = np.random.default_rng(seed + 17)
    return rng.choice(len(_P_CLASS), size=n, p=_P_CLASS)


def _contacts(cls: np.ndarray, year: int, rng: np.random.Generator, extra: int = 0) -> dict[str, np.ndarray]:
    """One year of contacts of households of class ``cls``: index of the household, channel and
    intent codes (``CH``, ``NEED``), day of the year and second of the day."""
    n = len(cls)
    count = np.where(cls == 4, rng.integers(0, 3, n), rng.integers(4, 13, n) + extra)
    hh = np.repeat(np.arange(n), count)
    start = np.concatenate([[0], np.cumsum(count)[:-1]]) if n else np.zeros(0, np.int64)
    j = np.arange(hh.size) - np.repeat(start, count)  # position of the contact within its household
    m = hh.size
    c = cls[hh]
    nn = count[hh]
    u = rng.random(m)
    phone, hall, robot = _C["phone"], _C["hall"], _C["robot"]
    channel = np.zeros(m, np.int8)
    intent = np.zeros(m, np.int8)
    # hall only
    sel = c == 0
    channel[sel] = hall
    intent[sel] = rng.integers(0, len(NEED), m)[sel]
    # assisted for simple needs: the first k contacts are simple needs by phone or hall
    k_simple = np.maximum(3, np.round(nn * rng.uniform(0.6, 0.8, n)[hh])).astype(np.int64)
    sel1 = (c == 1) & (j < k_simple)
    channel[sel1] = np.where(u < 0.7, phone, hall)[sel1]
    intent[sel1] = _SIMPLE[rng.integers(0, 3, m)][sel1]
    sel2 = (c == 1) & (j >= k_simple)
    channel[sel2] = np.where(u < 0.7, phone, robot)[sel2]
    intent[sel2] = np.array([_N["outage"], _N["repair"], _N["consultation"]], np.int8)[rng.integers(0, 3, m)][sel2]
    # fully online
    sel = c == 2
    channel[sel] = _ONLINE[rng.choice(5, size=m, p=[0.4, 0.25, 0.15, 0.15, 0.05])][sel]
    intent[sel] = _NO_COMPLAINT[rng.integers(0, len(_NO_COMPLAINT), m)][sel]
    # mixed: the first k contacts are other needs by phone or hall, the rest simple needs online
    k_assist = np.maximum(2, np.round(nn * rng.uniform(0.3, 0.5, n)[hh])).astype(np.int64)
    sel1 = (c == 3) & (j < k_assist)
    channel[sel1] = np.where(u < 0.7, phone, hall)[sel1]
    intent[sel1] = _OTHER_NEEDS[rng.integers(0, 4, m)][sel1]
    sel2 = (c == 3) & (j >= k_assist)
    channel[sel2] = rng.integers(0, 3, m)[sel2]  # app, wechat, alipay
    intent[sel2] = _SIMPLE[rng.integers(0, 3, m)][sel2]
    # quiet
    sel = c == 4
    channel[sel] = rng.integers(0, len(CH), m)[sel]
    intent[sel] = rng.integers(0, len(NEED), m)[sel]
    # when: distinct seconds of the year within a household (08:00-20:00)
    days = 365 + (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0))
    day = rng.integers(0, days, m)
    sec = 8 * 3600 + rng.integers(0, 12 * 3600 - 60, m) + j  # + j: no two contacts of a household alike
    return {"hh": hh, "channel": channel, "intent": intent, "day": day, "sec": sec}


def _outcomes(ch: np.ndarray, intent: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    m = ch.size
    resolved = rng.random(m) < _RESOLVE_P[ch]
    escalate = ~resolved & (rng.random(m) < 0.7)
    complaint = (intent == _N["complaint"]) & (ch == _C["phone"]) & (rng.random(m) < 0.3)
    resolved = resolved & ~complaint
    escalated = np.where(escalate, _NEXT[ch], -1)
    escalated = np.where(complaint, _C["hall"], escalated)
    lo, hi = _SECONDS[ch, 0], _SECONDS[ch, 1]
    seconds = (lo + rng.random(m) * (hi - lo)).astype(np.int64)
    sat = rng.integers(1, 6, m)
    return {
        "resolved": resolved,
        "escalated_to": escalated,
        "handle_seconds": np.where(rng.random(m) < 0.05, -1, seconds),
        "satisfaction": np.where(rng.random(m) < 0.4, -1, sat),
    }


def typed_interactions(customer_ids: np.ndarray, year: int, seed: int, years: int = 2) -> pl.DataFrame:
    """The contacts of :func:`interactions` (without the dirty rows) as ``INTERACTION_SCHEMA`` frames,
    for benchmarks and tests that skip the file."""
    ids = np.asarray(customer_ids).astype(str)
    cls = draw_classes(len(ids), seed)
    rng = np.random.default_rng(seed + 18)
    frames = []
    for y in range(year - years + 1, year + 1):
        c = cls
        extra = 0
        if y < year:
            u = rng.random(len(ids))
            c = np.where((cls == 2) & (u < 0.4), 3, np.where((cls == 3) & (u < 0.3), 1, cls))
            extra = 1
        k = _contacts(c, y, rng, extra)
        out = _outcomes(k["channel"], k["intent"], rng)
        at = (np.datetime64(dt.date(y, 1, 1), "us") + k["day"].astype("timedelta64[D]")
              + k["sec"].astype("timedelta64[s]"))
        esc = out["escalated_to"]
        frames.append(pl.DataFrame({
            "customer_id": pl.Series(ids).gather(pl.Series(k["hh"])),
            "occurred_at": at,
            "channel": pl.Series(k["channel"]).replace_strict(list(range(len(CH))), list(CH), return_dtype=pl.Utf8),
            "intent": pl.Series(k["intent"]).replace_strict(list(range(len(NEED))), list(NEED),
                                                            return_dtype=pl.Utf8),
            "resolved": out["resolved"],
            "escalated_to": pl.Series(esc).replace_strict(list(range(-1, len(CH))), [None, *CH],
                                                          return_dtype=pl.Utf8),
            "handle_seconds": pl.Series(out["handle_seconds"]).cast(pl.Int32),
            "satisfaction": pl.Series(out["satisfaction"]).cast(pl.Int32),
        }).with_columns(
            pl.when(pl.col("handle_seconds") >= 0).then(pl.col("handle_seconds")),
            pl.when(pl.col("satisfaction") >= 0).then(pl.col("satisfaction")),
        ))
    return pl.concat(frames)  # each household's contacts together, year by year (not sorted by time)


def truth(customer_ids: np.ndarray, seed: int) -> pl.DataFrame:
    """``customer_id, behaviour`` of the households with a labelled channel class."""
    ids = np.asarray(customer_ids).astype(str)
    cls = draw_classes(len(ids), seed)
    keep = np.array([CLASSES[c] is not None for c in range(len(CLASSES))])[cls] if len(ids) else np.zeros(0, bool)
    return pl.DataFrame({"customer_id": ids[keep], "behaviour": [CLASSES[c] for c in cls[keep]]},
                        schema={"customer_id": pl.Utf8, "behaviour": pl.Utf8})


def interactions(customer_ids: np.ndarray, year: int, seed: int, years: int = 2,
                 dirty: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Contacts of ``years`` years ending with ``year`` in the design's format, and the ground truth.

    Parameters
    ----------
    customer_ids : ndarray of str, shape (n,)
    year : int
        The bill year (the classes hold in it; the year before shows the trend).
    seed : int
        The same seed gives the same rows.
    years : {1, 2}
    dirty : bool
        Add rows that ingest quarantines or counts as duplicates (see the module docstring).

    Returns
    -------
    (rows, truth) : (pl.DataFrame, pl.DataFrame)
        ``rows``: ``customer_id, occurred_at`` (ISO text ``YYYY-MM-DDTHH:MM:SS``), ``channel, intent,
        resolved`` (``true``/``false``), ``escalated_to`` (empty or a channel), ``handle_seconds,
        satisfaction`` (empty when missing), as text, sorted by customer and time.
        ``truth``: ``customer_id, behaviour`` for the bill year's labelled classes.
    """
    df = typed_interactions(customer_ids, year, seed, years).sort("customer_id", "occurred_at")
    text = df.select(
        "customer_id",
        pl.col("occurred_at").dt.strftime("%Y-%m-%dT%H:%M:%S"),
        "channel",
        "intent",
        pl.when(pl.col("resolved")).then(pl.lit("true")).otherwise(pl.lit("false")).alias("resolved"),
        pl.col("escalated_to").fill_null(""),
        pl.col("handle_seconds").cast(pl.Utf8),
        pl.col("satisfaction").cast(pl.Utf8),
    )
    if dirty and text.height:
        r = np.random.default_rng(seed + 19)
        n = text.height
        bad_channel = text.sample(max(1, n // 500), seed=int(r.integers(1 << 30))).with_columns(
            pl.lit("fax").alias("channel"))
        no_intent = text.sample(max(1, n // 1000), seed=int(r.integers(1 << 30))).with_columns(
            pl.lit(None, pl.Utf8).alias("intent"), (pl.col("occurred_at").str.slice(0, 17) + "59"))
        dups = text.sample(max(1, n // 300), seed=int(r.integers(1 << 30)))
        text = pl.concat([text, bad_channel, no_intent, dups]).sort("customer_id", "occurred_at")
    return text, truth(customer_ids, seed)
