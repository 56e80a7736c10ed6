"""Synthetic households: seeded, vectorised, realistic and varied.

The generator draws each household's traits once (size, region, base load, seasonal habits,
time-of-use habits, vacancy, spikes, payment habits) and then simulates one or more years of daily
consumption per register with numpy, all households at once. It writes the design's input formats
(cumulative register reads, customers, payments), service interactions (``interactions.csv``, made
by ``wattbill.synth_channels``) and ``truth.parquet``, the behaviours it injected, so that labels can
be scored (the channel behaviours are those of ``wattbill.synth_channels.CLASSES``).

Behaviours (ground truth, one row per household and behaviour; names equal label codes):

===================  ============================================================================
peak_heavy           valley share of a time-of-use meter drawn from U(0.04, 0.12)
valley_smart         valley share drawn from U(0.46, 0.62) (ordinary households: U(0.20, 0.34))
summer_cooling       Jul–Aug cooling load of U(7, 14) kWh/day at its height (others < 0.8 kWh)
winter_heating       Dec–Feb heating load of U(6, 12) kWh/day at its height (others < 0.6 kWh)
high_baseload        always-on load of U(380, 650) W (others U(40, 140) W)
possible_vacancy     one run of 25–60 days at U(0.05, 0.45) kWh/day, in spring or autumn
usage_spike          1–3 days with 5–9 times the typical day added to the day's own level
late_payer           pays 20–45 days after the bill is issued
prompt_payer         pays 0–3 days after issue (auto-debit households too)
counter_payer        ≥ 80 % of payments at the service counter
online_payer         app, WeChat or Alipay for every payment
auto_debit           bank auto-debit for every payment
missing_days         1–4 gaps of 1–6 days with no read (data event)
meter_exchange       the meter is replaced on one day (data event)
register_rollover    the total register wraps at 6 integer digits (data event)
===================  ============================================================================

Meter exchange model: the meter is replaced at the end of the exchange day: the old meter's last read
is its register at removal (the whole day's consumption on it) and the new meter's first read, the
same day, is its installation read, 0.00 kWh, where it starts (issue #12: a new meter's first read
is never use), so the day's consumption is old last - old previous.

Energy is simulated in integer Wh, multiples of 10 Wh (0.01 kWh, the register resolution), so
that the register files carry exactly two decimals and the total equals the sum of the periods.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numba as nb
import numpy as np
import polars as pl

REGISTERS = ("sharp", "peak", "flat", "valley")
ROLLOVER_CENTI = 100_000_000  # 6 integer digits of kWh, in units of 0.01 kWh

REGIONS = ("杭州", "宁波", "温州", "绍兴", "嘉兴")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红建文辉力志兰宁海燕鹏飞云"
ROADS = ("解放路", "中山路", "人民路", "建设路", "文三路", "环城北路", "西湖大道", "延安路")
EN_NAMES = ("Alex Chen", "Maria Lopez", "John Smith", "Emma Wang", "David Miller", "Sophie Martin")

DEFAULT_TOU_TARIFF = "cn-zhejiang-res-tou"
DEFAULT_TIER_TARIFF = "cn-zhejiang-res-tier"


@dataclass
class Households:
    """Traits of ``n`` households, drawn once and shared by every simulated year."""

    customer_id: np.ndarray  # str, 10 digits with a leading zero
    household_size: np.ndarray  # int
    region: np.ndarray  # str
    has_tou: np.ndarray  # bool: the meter has time-of-use registers
    on_tou_tariff: np.ndarray  # bool: the household chose the time-of-use tariff
    base_w: np.ndarray  # always-on load [W]
    activity_wh: np.ndarray  # typical daily activity [Wh]
    cooling_wh: np.ndarray  # cooling load at the height of summer [Wh/day]
    heating_wh: np.ndarray  # heating load at the height of winter [Wh/day]
    shares: np.ndarray  # (n, 4) register shares sharp, peak, flat, valley
    vacancy_start: np.ndarray  # day of year, -1 for none
    vacancy_len: np.ndarray
    n_spikes: np.ndarray
    delay_class: np.ndarray  # 0 prompt, 1 ordinary, 2 late
    channel_class: np.ndarray  # 0 counter, 1 online, 2 auto-debit, 3 mixed
    opened_on: list[dt.date | None]
    language: np.ndarray
    name: list[str]
    address: list[str]
    rollover: np.ndarray  # bool
    exchange_day: np.ndarray  # day index over the whole simulated span, -1 for none
    missing: np.ndarray  # bool: the household has gaps in its reads
    truth: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class SynthData:
    """Simulated consumption in memory.

    Attributes
    ----------
    years : list[int]
    households : Households
    regs : dict[int, ndarray]
        Per year, daily energy per register, shape (n, days, 4), int64. [Wh]
    """

    years: list[int]
    households: Households
    regs: dict[int, np.ndarray]

    def total(self, year: int) -> np.ndarray:
        """Daily total energy, shape (n, days). [Wh]"""
        return self.regs[year].sum(axis=2, dtype=np.int64)

    def truth_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            self.households.truth, schema={"customer_id": pl.Utf8, "behaviour": pl.Utf8}, orient="row"
        )

    def customers_frame(self, tou_tariff: str = DEFAULT_TOU_TARIFF, tier_tariff: str = DEFAULT_TIER_TARIFF) -> pl.DataFrame:
        h = self.households
        return pl.DataFrame(
            {
                "customer_id": h.customer_id,
                "tariff": np.where(h.on_tou_tariff, tou_tariff, tier_tariff),
                "household_size": h.household_size.astype(np.int32),
                "region": h.region,
                "opened_on": h.opened_on,
                "closed_on": [None] * len(h.customer_id),
                "name": h.name,
                "address": h.address,
                "language": h.language,
            },
            schema_overrides={"opened_on": pl.Date, "closed_on": pl.Date},
        )

    def daily_frame(self, year: int) -> pl.DataFrame:
        """Daily consumption in the canonical ``DAILY_SCHEMA`` (one meter per household)."""
        h = self.households
        regs = self.regs[year]
        n, days, _ = regs.shape
        first = dt.date(year, 1, 1)
        frame = pl.DataFrame(
            {
                "customer_id": np.repeat(h.customer_id, days),
                "meter_id": np.repeat(np.char.add("M", h.customer_id.astype(str)), days),
                "day": np.tile(np.arange(days, dtype="timedelta64[D]") + np.datetime64(first), n),
                "wh_total": regs.sum(axis=2, dtype=np.int64).reshape(-1),
                **{f"wh_{r}": regs[:, :, i].reshape(-1).astype(np.int64) for i, r in enumerate(REGISTERS)},
                "estimated": np.zeros(n * days, dtype=bool),
            }
        ).with_columns(pl.col("day").cast(pl.Date))
        no_tou = pl.Series(np.repeat(~h.has_tou, days))
        frame = frame.with_columns(
            [pl.when(no_tou).then(None).otherwise(pl.col(f"wh_{r}")).alias(f"wh_{r}") for r in REGISTERS]
        )
        opened = [o for o in h.opened_on]
        if any(o is not None for o in opened):
            open_df = pl.DataFrame({"customer_id": h.customer_id, "opened_on": opened}, schema_overrides={"opened_on": pl.Date})
            frame = (
                frame.join(open_df, on="customer_id", how="left")
                .filter(pl.col("opened_on").is_null() | (pl.col("day") >= pl.col("opened_on")))
                .drop("opened_on")
            )
        return frame


def _days_in(year: int) -> int:
    return (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days


def draw_households(n: int, year: int, seed: int) -> Households:
    """Draw the traits of ``n`` households (vectorised)."""
    rng = np.random.default_rng(seed)
    ids = np.char.zfill(np.arange(1, n + 1).astype(str), 9)
    customer_id = np.char.add("0", ids)
    size = rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[0.12, 0.28, 0.3, 0.18, 0.08, 0.04])
    region = rng.choice(np.array(REGIONS), size=n)
    has_tou = rng.random(n) < 0.85

    high_base = rng.random(n) < 0.12
    base_w = np.where(high_base, rng.uniform(380, 650, n), rng.uniform(40, 140, n))
    activity = rng.uniform(1800, 3200, n) * (0.6 + 0.2 * size)

    cooling = rng.random(n) < 0.45
    cooling_wh = np.where(cooling, rng.uniform(7000, 14000, n), rng.uniform(0, 800, n))
    heating = rng.random(n) < 0.25
    heating_wh = np.where(heating, rng.uniform(6000, 12000, n), rng.uniform(0, 600, n))

    u = rng.random(n)
    tou_class = np.where(u < 0.12, 1, np.where(u < 0.27, 2, 0))  # 1 peak-heavy, 2 valley-smart
    tou_class = np.where(has_tou, tou_class, 0)
    valley = np.select(
        [tou_class == 1, tou_class == 2], [rng.uniform(0.04, 0.12, n), rng.uniform(0.46, 0.62, n)],
        rng.uniform(0.20, 0.34, n),
    )
    sharp = rng.uniform(0.02, 0.06, n)
    flat = (1 - valley - sharp) * rng.uniform(0.25, 0.4, n)
    peak = 1 - valley - sharp - flat
    shares = np.stack([sharp, peak, flat, valley], axis=1)

    vacancy = rng.random(n) < 0.08
    # spring (Mar-May) or autumn (Oct-Nov), away from the cooling and heating seasons
    spring = rng.random(n) < 0.5
    vac_len = rng.integers(25, 61, n)
    vac_start = np.where(spring, rng.integers(62, 150 - 25, n), rng.integers(275, 334 - 25, n))
    vac_start = np.where(vacancy, np.minimum(vac_start, 364 - vac_len), -1)

    spikes = rng.random(n) < 0.06
    n_spikes = np.where(spikes, rng.integers(1, 4, n), 0)

    cu = rng.random(n)
    channel_class = np.select([cu < 0.2, cu < 0.6, cu < 0.8], [0, 1, 2], 3)
    du = rng.random(n)
    delay_class = np.select([du < 0.3, du < 0.85], [0, 1], 2)
    delay_class = np.where(channel_class == 2, 0, delay_class)

    opened_mask = rng.random(n) < 0.04
    open_day = rng.integers(30, 300, n)
    # a household that moves in during the year shows its habits from then on: no vacancy run and no
    # spike is injected for it (they could fall before it exists, and the truth must be visible)
    vac_start = np.where(opened_mask, -1, vac_start)
    vacancy = vacancy & ~opened_mask
    n_spikes = np.where(opened_mask, 0, n_spikes)
    spikes = spikes & ~opened_mask
    first = dt.date(year, 1, 1)
    opened_on = [first + dt.timedelta(days=int(d)) if m else None for m, d in zip(opened_mask, open_day, strict=True)]

    language = np.where(rng.random(n) < 0.1, "en", "zh")
    s_idx = rng.integers(0, len(SURNAMES), n)
    g1 = rng.integers(0, len(GIVEN), n)
    g2 = rng.integers(0, len(GIVEN), n)
    two = rng.random(n) < 0.6
    en_idx = rng.integers(0, len(EN_NAMES), n)
    name = [
        EN_NAMES[e] if lang == "en" else SURNAMES[s] + GIVEN[a] + (GIVEN[b] if t else "")
        for lang, s, a, b, t, e in zip(language, s_idx, g1, g2, two, en_idx, strict=True)
    ]
    road = rng.integers(0, len(ROADS), n)
    num = rng.integers(1, 400, n)
    unit = rng.integers(101, 2600, n)
    address = [f"浙江省{r}市{ROADS[a]}{b}号{c}室" for r, a, b, c in zip(region, road, num, unit, strict=True)]

    rollover = rng.random(n) < 0.01
    exchange = rng.random(n) < 0.02
    exchange_day = np.where(exchange, rng.integers(20, 340, n), -1)
    missing = rng.random(n) < 0.05

    truth: list[tuple[str, str]] = []

    def mark(mask: np.ndarray, behaviour: str) -> None:
        truth.extend((str(c), behaviour) for c in customer_id[mask])

    # most time-of-use meters are on the time-of-use tariff; some households never switched, among
    # them valley-heavy ones that would save by switching (the tou_would_save label)
    on_tou_tariff = has_tou & (rng.random(n) >= np.where(tou_class == 2, 0.3, 0.1))

    mark(has_tou & (tou_class == 1), "peak_heavy")
    mark(has_tou & (tou_class == 2), "valley_smart")
    mark(cooling, "summer_cooling")
    mark(heating, "winter_heating")
    mark(high_base, "high_baseload")
    mark(vacancy, "possible_vacancy")
    mark(spikes, "usage_spike")
    mark(delay_class == 2, "late_payer")
    mark(delay_class == 0, "prompt_payer")
    mark(channel_class == 0, "counter_payer")
    mark(channel_class == 1, "online_payer")
    mark(channel_class == 2, "auto_debit")
    mark(missing, "missing_days")
    mark(exchange, "meter_exchange")
    mark(rollover, "register_rollover")

    return Households(
        customer_id=customer_id, household_size=size, region=region, has_tou=has_tou,
        on_tou_tariff=on_tou_tariff, base_w=base_w,
        activity_wh=activity, cooling_wh=cooling_wh, heating_wh=heating_wh, shares=shares,
        vacancy_start=vac_start, vacancy_len=vac_len, n_spikes=n_spikes, delay_class=delay_class,
        channel_class=channel_class, opened_on=opened_on, language=language, name=name, address=address,
        rollover=rollover, exchange_day=exchange_day, missing=missing, truth=truth,
    )


CHUNK = 32_768  # households simulated at once: bounds the temporaries to a few hundred MB


def _simulate_year(h: Households, year: int, rng: np.random.Generator, drift: float) -> np.ndarray:
    """Daily energy per register for one year, (n, days, 4) int32, multiples of 10. [Wh]"""
    n = len(h.customer_id)
    days = _days_in(year)
    doy = np.arange(days, dtype=np.float32)
    summer = np.exp(-0.5 * ((doy - 208.0) / 18.0) ** 2).astype(np.float32)  # height late July
    dist_winter = np.minimum(np.abs(doy - 15.0), np.abs(doy - 15.0 - days))
    winter = np.exp(-0.5 * (dist_winter / 24.0) ** 2).astype(np.float32)
    weekday = (np.arange(days) + dt.date(year, 1, 1).weekday()) % 7
    week = np.where(weekday >= 5, 1.12, 0.96).astype(np.float32)
    regs = np.empty((n, days, 4), dtype=np.int32)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        regs[lo:hi] = _simulate_chunk(h, slice(lo, hi), year, days, rng, drift, summer, winter, week)
    return regs


@nb.njit(parallel=True, cache=True)
def _daily_total(base_wh, act_wh, cool_wh, heat_wh, week, summer, winter, z, u_cool, u_heat):  # pragma: no cover
    """Daily total of each household before vacancy and spikes, float32[m, days]. [Wh]"""
    m, days = z.shape
    out = np.empty((m, days), np.float32)
    for i in nb.prange(m):
        for d in range(days):
            act = act_wh[i] * week[d] * np.exp(np.float32(0.18) * z[i, d])
            cool = cool_wh[i] * summer[d] * (np.float32(0.8) + np.float32(0.4) * u_cool[i, d])
            heat = heat_wh[i] * winter[d] * (np.float32(0.8) + np.float32(0.4) * u_heat[i, d])
            out[i, d] = base_wh[i] + act + cool + heat
    return out


@nb.njit(parallel=True, cache=True)
def _split_registers(total, shares, z_valley, z_flat):  # pragma: no cover
    """Split daily totals into sharp, peak, flat, valley, int32[m, days, 4], multiples of 10. [Wh]

    The valley and flat shares wander a little from day to day; peak takes the rest, so the
    registers add up to the total exactly.
    """
    m, days = total.shape
    out = np.empty((m, days, 4), np.int32)
    for i in nb.prange(m):
        for d in range(days):
            t10 = np.int32(max(total[i, d], np.float32(0)) / np.float32(10))  # units of 10 Wh
            tf = np.float32(t10)
            sharp = np.int32(tf * shares[i, 0])
            valley = np.int32(tf * shares[i, 3] * (np.float32(1) + np.float32(0.06) * z_valley[i, d]))
            flat = np.int32(tf * shares[i, 2] * (np.float32(1) + np.float32(0.06) * z_flat[i, d]))
            valley = valley if valley > 0 else np.int32(0)
            flat = flat if flat > 0 else np.int32(0)
            peak = t10 - sharp - valley - flat
            if peak < 0:  # only on a day of extreme noise: give it back from the valley
                valley += peak
                peak = np.int32(0)
            out[i, d, 0] = sharp * 10
            out[i, d, 1] = peak * 10
            out[i, d, 2] = flat * 10
            out[i, d, 3] = valley * 10
    return out


def _simulate_chunk(
    h: Households, sl: slice, year: int, days: int, rng: np.random.Generator, drift: float,
    summer: np.ndarray, winter: np.ndarray, week: np.ndarray,
) -> np.ndarray:
    f32 = np.float32
    m = sl.stop - sl.start
    total = _daily_total(
        (h.base_w[sl] * 24.0).astype(f32), (h.activity_wh[sl] * drift).astype(f32),
        h.cooling_wh[sl].astype(f32), h.heating_wh[sl].astype(f32), week, summer, winter,
        rng.standard_normal((m, days), dtype=f32), rng.random((m, days), dtype=f32),
        rng.random((m, days), dtype=f32),
    )
    # vacancy: one run of near-zero days
    vstart = h.vacancy_start[sl]
    idx = np.nonzero(vstart >= 0)[0]
    if len(idx):
        d = np.arange(days)[None, :]
        in_run = (d >= vstart[idx, None]) & (d < (vstart + h.vacancy_len[sl])[idx, None])
        low = f32(50) + f32(400) * rng.random((len(idx), days), dtype=f32)
        total[idx] = np.where(in_run, low, total[idx])
    # spikes: a few days with 5-9 times the typical day added on top of the day's own level
    nsp = h.n_spikes[sl]
    sp = np.nonzero(nsp > 0)[0]
    if len(sp):
        typical = np.median(total[sp], axis=1)
        for k in range(3):
            sel = nsp[sp] > k
            who = sp[sel]
            day = rng.integers(0, days, len(who))
            total[who, day] += typical[sel] * (f32(5) + f32(4) * rng.random(len(who), dtype=f32))
    regs = _split_registers(
        total, h.shares[sl].astype(f32), rng.standard_normal((m, days), dtype=f32),
        rng.standard_normal((m, days), dtype=f32),
    )
    # accounts opened during the year have nothing before their first day
    for i, opened in enumerate(h.opened_on[sl]):
        if opened is not None and opened.year == year:
            regs[i, : (opened - dt.date(year, 1, 1)).days] = 0
    return regs


def simulate(n_customers: int, year: int, seed: int = 7, years: int = 1) -> SynthData:
    """Simulate ``years`` years ending with ``year`` for ``n_customers`` households, in memory."""
    households = draw_households(n_customers, year, seed)
    rng = np.random.default_rng(seed + 1)
    span = list(range(year - years + 1, year + 1))
    regs = {}
    for k, y in enumerate(span):
        regs[y] = _simulate_year(households, y, rng, drift=1.0 + 0.04 * (k - len(span) + 1))
    return SynthData(years=span, households=households, regs=regs)


def register_reads(data: SynthData, seed: int = 7) -> pl.DataFrame:
    """Cumulative register reads in the design's format, with the data events applied.

    One row per meter per day from 31 December of the year before the first simulated year (the
    anchor) to the last day; kWh with two decimals.
    """
    h = data.households
    rng = np.random.default_rng(seed + 2)
    n = len(h.customer_id)
    regs = np.concatenate([data.regs[y] for y in data.years], axis=1).astype(np.int64) // 10  # 0.01 kWh
    days = regs.shape[1]
    start = rng.integers(100_000, 5_000_000, size=(n, 4))  # 1,000-50,000 kWh per register
    cum = np.concatenate([start[:, None, :], start[:, None, :] + np.cumsum(regs, axis=1)], axis=1)
    total = cum.sum(axis=2)
    total_start_shift = np.where(h.rollover, ROLLOVER_CENTI - rng.integers(1_000, 60_000, n) - total[:, 0], 0)
    total = (total + total_start_shift[:, None]) % ROLLOVER_CENTI
    first = dt.date(data.years[0], 1, 1) - dt.timedelta(days=1)
    dates = np.arange(days + 1, dtype="timedelta64[D]") + np.datetime64(first)

    keep = np.ones((n, days + 1), dtype=bool)
    for i in np.nonzero(h.missing)[0]:
        for _ in range(rng.integers(1, 5)):
            gap = int(rng.integers(5, days - 10))
            keep[i, gap : gap + int(rng.integers(1, 7))] = False
    for k, opened in enumerate(h.opened_on):
        if opened is not None:
            keep[k, : (opened - first).days - 1] = False  # anchor read on the day before opening

    meter = np.repeat(np.char.add("M", h.customer_id.astype(str))[:, None], days + 1, axis=1).astype(object)
    rows = {
        "customer_id": np.repeat(h.customer_id, days + 1),
        "meter_id": meter.reshape(-1),
        "read_date": np.tile(dates, n),
        "total": total.reshape(-1),
        **{r: cum[:, :, i].reshape(-1) for i, r in enumerate(REGISTERS)},
    }
    # meter exchange: the new meter's first read (0.00, the exchange day) is its installation read
    extra = []
    for i in np.nonzero(h.exchange_day >= 0)[0]:
        d = int(h.exchange_day[i])
        rng.uniform(0.2, 0.8)  # (drawn as before, so that the other households stay as they were)
        day_regs = regs[i, d - 1]  # consumption on the exchange day (day index d of the cumulative)
        before = day_regs  # the whole day on the old meter: replaced at the end of the day
        after = day_regs - before  # 0: the new meter's installation read
        new_id = "N" + str(h.customer_id[i])
        sl = slice(i * (days + 1), (i + 1) * (days + 1))
        old_cum = cum[i].copy()
        old_cum[d] = old_cum[d - 1] + before
        new_cum = np.cumsum(np.concatenate([after[None, :], regs[i, d:]], axis=0), axis=0)
        for r, c in enumerate(REGISTERS):
            col = rows[c][sl]
            col[d] = old_cum[d, r]
        rows["total"][sl][d] = (old_cum[d].sum() + total_start_shift[i]) % ROLLOVER_CENTI
        extra.append(
            pl.DataFrame(
                {
                    "customer_id": [str(h.customer_id[i])] * (days + 1 - d),
                    "meter_id": [new_id] * (days + 1 - d),
                    "read_date": dates[d:],
                    "total": new_cum.sum(axis=1),
                    **{c: new_cum[:, r] for r, c in enumerate(REGISTERS)},
                }
            )
        )
        keep[i, d + 1 :] = False
    frame = pl.DataFrame(rows).filter(pl.Series(keep.reshape(-1)))
    if extra:
        frame = pl.concat([frame, *[e.with_columns(pl.col(c).cast(frame.schema[c]) for c in e.columns) for e in extra]])
    frame = frame.with_columns(pl.col("read_date").cast(pl.Date))
    no_tou = set(h.customer_id[~h.has_tou].tolist())
    frame = frame.with_columns(
        [(pl.col(c) / 100).alias(c) for c in ("total", *REGISTERS)]
    ).with_columns(
        [pl.when(pl.col("customer_id").is_in(list(no_tou))).then(None).otherwise(pl.col(c)).alias(c) for c in REGISTERS]
    )
    return frame.sort(["customer_id", "meter_id", "read_date"])


def payments(data: SynthData, seed: int = 7) -> pl.DataFrame:
    """Monthly payments in the design's format (amount in yuan, two decimals, as text)."""
    h = data.households
    rng = np.random.default_rng(seed + 3)
    out = []
    chan_online = np.array(["app", "wechat", "alipay"])
    for y in data.years:
        regs = data.regs[y]
        month_of_day = np.array([(dt.date(y, 1, 1) + dt.timedelta(days=int(d))).month for d in range(regs.shape[1])])
        month_wh = np.stack([regs[:, month_of_day == m].sum(axis=(1, 2), dtype=np.int64) for m in range(1, 13)], axis=1)
        for m in range(1, 13):
            n = len(h.customer_id)
            issue = dt.date(y + (m == 12), m % 12 + 1, 1)
            issued = np.datetime64(issue) + rng.integers(0, 5, n).astype("timedelta64[D]")
            delay = np.select(
                [h.delay_class == 0, h.delay_class == 1],
                [rng.integers(0, 4, n), rng.integers(4, 15, n)],
                rng.integers(20, 46, n),
            )
            paid = issued + delay.astype("timedelta64[D]")
            channel = np.select(
                [h.channel_class == 0, h.channel_class == 1, h.channel_class == 2],
                [
                    np.where(rng.random(n) < 0.9, "counter", "other"),
                    chan_online[rng.integers(0, 3, n)],
                    np.full(n, "bank"),
                ],
                np.array(["app", "wechat", "alipay", "bank", "counter", "other"])[rng.integers(0, 6, n)],
            )
            fen = month_wh[:, m - 1] * 55 // 1000  # about 0.55 yuan/kWh, integer fen
            amount = [f"{f // 100}.{f % 100:02d}" for f in fen]
            out.append(
                pl.DataFrame(
                    {
                        "customer_id": h.customer_id,
                        "bill_month": [f"{y}-{m:02d}"] * n,
                        "issued_on": issued,
                        "paid_on": paid,
                        "amount": amount,
                        "channel": channel,
                    }
                )
            )
    frame = pl.concat(out).with_columns(pl.col("issued_on").cast(pl.Date), pl.col("paid_on").cast(pl.Date))
    # no bill, so no payment, for the months before an account was opened
    opened = pl.DataFrame({"customer_id": h.customer_id, "_opened": h.opened_on}, schema_overrides={"_opened": pl.Date})
    frame = (
        frame.join(opened, on="customer_id", how="left")
        .filter(pl.col("_opened").is_null() | (pl.col("bill_month") >= pl.col("_opened").dt.strftime("%Y-%m")))
        .drop("_opened")
    )
    # a few bills still unpaid at the end of the data
    last = f"{data.years[-1]}-12"
    unpaid = (pl.col("bill_month") == last) & (pl.col("paid_on") > pl.date(data.years[-1] + 1, 1, 20))
    return frame.with_columns(pl.when(unpaid).then(None).otherwise(pl.col("paid_on")).alias("paid_on"))


@dataclass
class SynthPaths:
    reads: Path
    customers: Path
    payments: Path
    truth: Path
    interactions: Path | None = None  # service contacts (wattbill.synth_channels)


def generate(
    n_customers: int,
    year: int,
    seed: int,
    out_dir: Path | str,
    years: int = 2,
    fmt: str = "csv",
    tou_tariff: str = DEFAULT_TOU_TARIFF,
    tier_tariff: str = DEFAULT_TIER_TARIFF,
) -> SynthPaths:
    """Write reads, customers, payments and the ground truth for ``n_customers`` households.

    Parameters
    ----------
    n_customers : int
    year : int
        The last simulated year (the bill year); ``years`` years end with it.
    seed : int
        The same seed gives the same files.
    out_dir : path
    fmt : {"csv", "parquet"}
        Format of the reads file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = simulate(n_customers, year, seed, years)
    reads = register_reads(data, seed)
    paths = SynthPaths(
        reads=out / f"reads.{fmt}", customers=out / "customers.csv", payments=out / "payments.csv",
        truth=out / "truth.parquet",
    )
    if fmt == "parquet":
        reads.write_parquet(paths.reads)
    else:
        reads.with_columns(
            [pl.col(c).round(2).cast(pl.Utf8) for c in ("total", *REGISTERS)]
        ).write_csv(paths.reads)
    data.customers_frame(tou_tariff, tier_tariff).write_csv(paths.customers)
    payments(data, seed).write_csv(paths.payments)
    from wattbill.synth_channels import interactions

    contacts, channel_truth = interactions(data.households.customer_id, year, seed, years=years, dirty=True)
    paths.interactions = out / "interactions.csv"
    contacts.write_csv(paths.interactions)
    pl.concat([data.truth_frame(), channel_truth]).write_parquet(paths.truth)
    return paths
