"""numba kernels: tiered and time-of-use charges for many households at once.

The rules are those of :mod:`tariffs.reference` (read it first); this module computes the same
numbers with integer arithmetic so that every monthly bill equals the reference to the fen.

Money in the kernel
-------------------
Prices are integers ``q`` in units of ``10**-s`` yuan/kWh (``s = tariff.price_scale``). For a month
with tier Wh ``t[k]``, period Wh ``P[p]`` and ``S = sum(P)``, the exact charge in fen is::

    N / D  with  N = sum_p P[p] * sum_k t[k] * q[p, k],   D = S * 10**(s + 1)

(Wh -> kWh is /1000, yuan -> fen is *100), rounded half-up as ``f = N // D``, ``+1 if 2*(N - f*D) >= D``.

Overflow
--------
Inputs are checked inside the kernel (no extra pass over memory): every counted daily value must
be ``0 <= x < 2**31`` (an OR of all values in the input dtype); otherwise the household is flagged and the wrapper
raises ``ValueError``. Then a month has ``T <= 31 * 2**31`` and ``S <= 5 * 31 * 2**31`` Wh, prices
are ``q <= 10**8`` (``< 100`` yuan with at most 6 decimals, checked by the model), so ``T * q_max``
cannot overflow; ``N <= S * T * q_max``. The kernel checks, without a division, that
``T < 2**31``, ``S < 2**31`` (so ``T * S < 2**62`` and ``D < 2**55``) and ``T * S <= (2**63 - 1) // q_max``;
otherwise (a month of some 100 MWh and more, never a household's) it flags the household
(``FLAG_OVERFLOW``) and the wrapper computes its money with the exact reference
(``reference_bill``); Wh outputs are exact in any case.

Every kernel has a pure-Python twin: ``kernel.py_func``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from .errors import TariffNotInForceError, UnpricedRegisterError
from .model import REGISTERS, Tariff, TariffSchedule, as_schedule
from .reference import days_in_year, month_first_days, reference_bill

FLAG_OVERFLOW = 1
FLAG_UNPRICED = 2
FLAG_BAD_VALUE = 4

INF_WH = np.int64(1) << np.int64(62)
"""Threshold value meaning 'no such tier'."""

INT64_MAX = np.int64(2**63 - 1)
MAX_DAILY_WH = 2**31 - 1
SAFE_WH = np.int64(2**31)
"""Monthly Wh (total, or sum over periods) at or above which the money is left to the reference."""

PRORATION_CODES = {"none": 0, "months": 1, "days": 2}


@dataclass(frozen=True)
class KernelTariff:
    """A tariff as arrays for the kernels.

    Attributes
    ----------
    monthly : bool
        Monthly tier cycle (else annual).
    base_thr : int64[12, 2]
        Thresholds per month [Wh per cycle] (annual: the same row twelve times); ``INF_WH`` pads
        missing tiers.
    proration : int
        0 none, 1 months, 2 days.
    bonus_min, bonus_wh : int
        Household bonus: minimum size [persons] and [Wh per month] (0 if none).
    reg_period : int64[4]
        Priced period index of each register, -1 if unpriced.
    unsplit : int
        Period index of kWh not covered by registers.
    q : int64[P, 3]
        Prices [10**-scale yuan/kWh]; 0 for missing tiers.
    scale_div : int
        ``10**(scale + 1)``.
    q_max : int
        Largest price.
    safe_product : int
        ``(2**63 - 1) // q_max``: months with ``T * S`` above it go to the exact reference.
    """

    monthly: bool
    base_thr: np.ndarray
    proration: int
    bonus_min: int
    bonus_wh: int
    reg_period: np.ndarray
    unsplit: int
    q: np.ndarray
    scale_div: int
    q_max: int
    safe_product: int

    @classmethod
    def of(cls, tariff: Tariff, periods: tuple[str, ...] | None = None) -> KernelTariff:
        """The arrays of one tariff; ``periods`` is the ``P`` axis (default: the tariff's own)."""
        periods = tariff.period_names if periods is None else periods
        base = np.full((12, 2), INF_WH, dtype=np.int64)
        for m in range(12):
            for k, h in enumerate(tariff.month_thresholds_kwh(m + 1)):
                base[m, k] = int(h * 1000)
        scale = tariff.price_scale
        q = np.zeros((len(periods), 3), dtype=np.int64)
        for name, plist in tariff.prices:
            for k, p in enumerate(plist):
                q[periods.index(name), k] = int(p.scaleb(scale))
        reg_period = np.array(
            [periods.index(tariff.period_of(r)) if tariff.period_of(r) else -1 for r in REGISTERS], dtype=np.int64
        )
        bonus = tariff.household_bonus
        return cls(
            monthly=tariff.cycle == "monthly",
            base_thr=base,
            proration=PRORATION_CODES[tariff.proration],
            bonus_min=bonus.min_size if bonus else 1 << 30,
            bonus_wh=int(bonus.kwh_per_month * 1000) if bonus else 0,
            reg_period=reg_period,
            unsplit=periods.index(tariff.unsplit),
            q=q,
            scale_div=10 ** (scale + 1),
            q_max=max(1, int(q.max())),
            safe_product=(2**63 - 1) // max(1, int(q.max())),
        )


@dataclass(frozen=True)
class KernelSchedule:
    """A :class:`~tariffs.model.TariffSchedule` as arrays for the kernels: the parts of the year
    (months split at the days a version starts) and each version's ``KernelTariff`` arrays stacked
    on a leading version axis ``V``, periods on the union axis ``P`` of every version."""

    part_first: np.ndarray
    part_month: np.ndarray
    part_version: np.ndarray
    monthly: np.ndarray
    base_thr: np.ndarray
    proration: np.ndarray
    bonus_min: np.ndarray
    bonus_wh: np.ndarray
    reg_period: np.ndarray
    unsplit: np.ndarray
    q: np.ndarray
    scale_div: np.ndarray
    safe_product: np.ndarray

    @classmethod
    def of(cls, schedule: TariffSchedule) -> KernelSchedule:
        periods = schedule.period_names
        kts = [KernelTariff.of(t, periods) for t in schedule.tariffs]
        firsts = month_first_days(schedule.year)
        cuts = sorted(set(firsts[:12]) | {d for d in schedule.starts if d > 0})
        part_month = [max(m for m in range(12) if firsts[m] <= c) for c in cuts]
        part_version = [max(schedule.index_on(c), 0) for c in cuts]
        return cls(
            part_first=np.asarray([*cuts, firsts[12]], dtype=np.int64),
            part_month=np.asarray(part_month, dtype=np.int64),
            part_version=np.asarray(part_version, dtype=np.int64),
            monthly=np.asarray([k.monthly for k in kts], dtype=np.bool_),
            base_thr=np.stack([k.base_thr for k in kts]),
            proration=np.asarray([k.proration for k in kts], dtype=np.int64),
            bonus_min=np.asarray([k.bonus_min for k in kts], dtype=np.int64),
            bonus_wh=np.asarray([k.bonus_wh for k in kts], dtype=np.int64),
            reg_period=np.stack([k.reg_period for k in kts]),
            unsplit=np.asarray([k.unsplit for k in kts], dtype=np.int64),
            q=np.stack([k.q for k in kts]),
            scale_div=np.asarray([k.scale_div for k in kts], dtype=np.int64),
            safe_product=np.asarray([k.safe_product for k in kts], dtype=np.int64),
        )


@nb.njit(cache=True, inline="always")
def prorate(h, num, den):  # pragma: no cover - inlined into kernels
    """round_half_up(h * num / den) for h >= 0, keeping INF_WH."""
    if h >= INF_WH or num == den:
        return h
    return (2 * h * num + den) // (2 * den)


@nb.njit(cache=True, nogil=True, inline="always")
def range_sums(tr, rf, a, b):  # pragma: no cover - numba
    """Sums of one household's days ``a..b-1``: (total, sharp, peak, flat, valley, OR of the values).

    ``rf`` is the household's registers as one flat C-contiguous run (4 per day). The loops index
    slices from 0 (no negative-index checks) and read the registers with four accumulators, which the
    compiler turns into fast straight-line code. For non-negative values the OR of all values is >=
    their max, and < 2**31 exactly when all are; a negative value makes the OR negative."""
    orv = tr[0] & 0  # in the input dtype
    tw = tr[a:b]
    t_sum = np.int64(0)
    for j in range(tw.shape[0]):
        t_sum += tw[j]
        orv |= tw[j]
    rw = rf[4 * a : 4 * b]
    r0 = np.int64(0)
    r1 = np.int64(0)
    r2 = np.int64(0)
    r3 = np.int64(0)
    for j in range(0, rw.shape[0], 4):
        r0 += rw[j]
        r1 += rw[j + 1]
        r2 += rw[j + 2]
        r3 += rw[j + 3]
        orv |= rw[j] | rw[j + 1] | rw[j + 2] | rw[j + 3]
    return t_sum, r0, r1, r2, r3, orv


@nb.njit(cache=True, parallel=True, nogil=True)
def bill_kernel(
    total,
    regs,
    open_first,
    open_last,
    data_last,
    household_size,
    month_first,
    part_first,
    part_month,
    part_version,
    monthly,
    base_thr,
    proration,
    bonus_min,
    bonus_wh,
    reg_period,
    unsplit,
    q,
    scale_div,
    safe_product,
    month_wh,
    month_wh_reg,
    month_wh_tier,
    month_wh_period,
    month_fen,
    year_fen,
    tier_cross_day,
    wh_so_far,
    tier_reached,
    flags,
):
    """Bills of ``n`` households (outputs written in place).

    Parameters
    ----------
    total : int32|int64[n, n_days]
        Daily ``total`` [Wh].
    regs : int32|int64[n, n_days, 4]
        Daily registers, sharp, peak, flat, valley [Wh].
    open_first, open_last : int[n]
        First and last open day [day index]; proration follows these.
    data_last : int[n]
        Last counted day [day index] (``open_last`` for bills, the 'through' day for running charges).
    household_size : int[n]
        [persons].
    month_first : int64[13]
        Day index of each month's first day, then n_days.
    part_first : int64[n_parts + 1]
        First day index of each part (rule 6 of ``tariffs.reference``: the months, each split at the
        days a version starts), then n_days. With one version the parts are the twelve months.
    part_month, part_version : int64[n_parts]
        Month (0..11) and version (index of the per-version arrays below) of each part.
    monthly[V], base_thr[V, 12, 2], proration[V], bonus_min[V], bonus_wh[V], reg_period[V, 4],
    unsplit[V], q[V, P, 3], scale_div[V], safe_product[V]
        Each version of the tariff (see ``KernelTariff``; periods indexed on the union ``P`` axis).
    month_wh[n, 12], month_wh_reg[n, 12, 4], month_wh_tier[n, 12, 3], month_wh_period[n, 12, P]
        Outputs [Wh].
    month_fen[n, 12], year_fen[n]
        Outputs [fen]: each part rounded half-up, a month the sum of its parts.
    tier_cross_day[n, 2], wh_so_far[n], tier_reached[n], flags[n]
        Outputs: crossing day index (-1 never), [Wh] counted, tier 1..3 of the last counted Wh,
        ``FLAG_*`` bits.
    """
    n = total.shape[0]
    n_days = total.shape[1]
    n_periods = q.shape[1]
    n_parts = part_month.shape[0]
    for i in nb.prange(n):
        tr = total[i]
        rf = regs[i].reshape(-1)
        mwh = month_wh[i]
        mreg = month_wh_reg[i]
        mtier = month_wh_tier[i]
        mper = month_wh_period[i]
        mfen = month_fen[i]
        of = max(np.int64(open_first[i]), np.int64(0))
        ol = min(np.int64(open_last[i]), np.int64(n_days - 1))
        lo = of
        hi = min(ol, np.int64(data_last[i]))
        flag = 0
        hs = household_size[i]
        for m in range(12):
            mwh[m] = 0
            mfen[m] = 0
            for k in range(4):
                mreg[m, k] = 0
            for k in range(3):
                mtier[m, k] = 0
            for p in range(n_periods):
                mper[m, p] = 0
        # open days per month, open months (proration follows the open window, not data_last)
        open_months = 0
        open_days = 0
        for m in range(12):
            a = max(of, month_first[m])
            b = min(ol, month_first[m + 1] - 1)
            if b >= a:
                open_months += 1
                open_days += b - a + 1
        cumulative = np.int64(0)  # Wh of the year before the part
        mcum = np.int64(0)  # Wh of the month before the part
        cross1 = -1
        cross2 = -1
        reached = 1
        year_total_fen = np.int64(0)
        cur_v = -1
        cur_m = -1
        h1 = INF_WH
        h2 = INF_WH
        for pi in range(n_parts):
            m = part_month[pi]
            v = part_version[pi]
            if pi == 0 or part_month[pi - 1] != m:
                mcum = np.int64(0)
            a = max(lo, part_first[pi])
            b = min(hi, part_first[pi + 1] - 1)
            if b < a:
                continue
            # thresholds of version v for month m (rule 4): computed when the version changes, or
            # the month for a monthly cycle (an annual version's are the same all year)
            if v != cur_v or (monthly[v] and m != cur_m):
                cur_v = v
                cur_m = m
                bonus = bonus_wh[v] if hs >= bonus_min[v] else 0
                h1 = base_thr[v, m, 0]
                h2 = base_thr[v, m, 1]
                if not monthly[v]:
                    if h1 < INF_WH:
                        h1 = h1 + 12 * bonus
                    if h2 < INF_WH:
                        h2 = h2 + 12 * bonus
                    if proration[v] == 1:
                        num, den = open_months, 12
                    elif proration[v] == 2:
                        num, den = open_days, n_days
                    else:
                        num, den = 1, 1
                else:
                    if h1 < INF_WH:
                        h1 = h1 + bonus
                    if h2 < INF_WH:
                        h2 = h2 + bonus
                    oa = max(of, month_first[m])
                    ob = min(ol, month_first[m + 1] - 1)
                    od = ob - oa + 1 if ob >= oa else 0
                    if proration[v] == 1:
                        num, den = (1 if od > 0 else 0), 1
                    elif proration[v] == 2:
                        num, den = od, month_first[m + 1] - month_first[m]
                    else:
                        num, den = 1, 1
                h1 = prorate(h1, num, den)
                h2 = prorate(h2, num, den)
            t_sum, r0, r1, r2, r3, orv = range_sums(tr, rf, a, b + 1)
            if orv < 0 or orv > MAX_DAILY_WH:
                flag |= FLAG_BAD_VALUE
            uns = max(t_sum - (r0 + r1 + r2 + r3), np.int64(0))  # total not covered by registers
            before = cumulative if not monthly[v] else mcum
            after = before + t_sum
            # tier crossing days: rescan the part only when a threshold not yet crossed lies below its end
            if (cross1 == -1 and after > h1) or (cross2 == -1 and after > h2):
                c = before
                for d in range(a, b + 1):
                    t = np.int64(tr[d])
                    if t > 0:
                        if cross1 == -1 and c + t > h1:
                            cross1 = d
                        if cross2 == -1 and c + t > h2:
                            cross2 = d
                    c += t
            reached = 1 + (1 if after > h1 else 0) + (1 if after > h2 else 0)
            # tiers: clamp(after) - clamp(before) within each tier's bounds
            t1 = min(after, h1) - min(before, h1)
            t2 = max(min(after, h2), h1) - max(min(before, h2), h1) if h1 < INF_WH else np.int64(0)
            t3 = max(after, h2) - max(before, h2) if h2 < INF_WH else np.int64(0)
            mtier[m, 0] += t1
            mtier[m, 1] += t2
            mtier[m, 2] += t3
            mwh[m] += t_sum
            mreg[m, 0] += r0
            mreg[m, 1] += r1
            mreg[m, 2] += r2
            mreg[m, 3] += r3
            # rule 5: unpriced registers with kWh
            p0 = reg_period[v, 0]
            p1 = reg_period[v, 1]
            p2 = reg_period[v, 2]
            p3 = reg_period[v, 3]
            pu = unsplit[v]
            if (r0 > 0 and p0 < 0) or (r1 > 0 and p1 < 0) or (r2 > 0 and p2 < 0) or (r3 > 0 and p3 < 0):
                flag |= FLAG_UNPRICED
            sp = uns
            if p0 >= 0:
                mper[m, p0] += r0
                sp += r0
            if p1 >= 0:
                mper[m, p1] += r1
                sp += r1
            if p2 >= 0:
                mper[m, p2] += r2
                sp += r2
            if p3 >= 0:
                mper[m, p3] += r3
                sp += r3
            mper[m, pu] += uns
            # money: N / D rounded half-up, integers only (rule 2 is linear in the period Wh, so N is
            # summed register by register: sum_p P[p] * row(p) = sum_r R[r] * row(period of r))
            fen = np.int64(0)
            if t_sum > 0 and (flag & FLAG_BAD_VALUE) == 0:
                if sp == 0:  # only unpriced registers have kWh: FLAG_UNPRICED is set
                    pass
                elif t_sum >= SAFE_WH or sp >= SAFE_WH or t_sum * sp > safe_product[v]:
                    flag |= FLAG_OVERFLOW
                else:
                    num_ = uns * (t1 * q[v, pu, 0] + t2 * q[v, pu, 1] + t3 * q[v, pu, 2])
                    if p0 >= 0 and r0 > 0:
                        num_ += r0 * (t1 * q[v, p0, 0] + t2 * q[v, p0, 1] + t3 * q[v, p0, 2])
                    if p1 >= 0 and r1 > 0:
                        num_ += r1 * (t1 * q[v, p1, 0] + t2 * q[v, p1, 1] + t3 * q[v, p1, 2])
                    if p2 >= 0 and r2 > 0:
                        num_ += r2 * (t1 * q[v, p2, 0] + t2 * q[v, p2, 1] + t3 * q[v, p2, 2])
                    if p3 >= 0 and r3 > 0:
                        num_ += r3 * (t1 * q[v, p3, 0] + t2 * q[v, p3, 1] + t3 * q[v, p3, 2])
                    den_ = sp * scale_div[v]
                    fen = num_ // den_
                    if 2 * (num_ - fen * den_) >= den_:
                        fen += 1
            mfen[m] += fen
            year_total_fen += fen
            cumulative += t_sum
            mcum += t_sum
        year_fen[i] = year_total_fen
        tier_cross_day[i, 0] = cross1
        tier_cross_day[i, 1] = cross2
        wh_so_far[i] = cumulative
        tier_reached[i] = reached
        flags[i] = flag


@dataclass
class YearBills:
    """Bills of ``n`` households for one year (numpy arrays, row i = household i).

    Attributes
    ----------
    month_wh : int64[n, 12]
        ``total`` per month [Wh].
    month_wh_reg : int64[n, 12, 4]
        Per register, ``REGISTERS`` order [Wh].
    month_wh_tier : int64[n, 12, 3]
        Per tier [Wh].
    month_fen : int64[n, 12]
        Monthly bills, each rounded half-up [fen].
    year_fen : int64[n]
        Sum of ``month_fen`` [fen].
    tier_cross_day : int64[n, 2]
        Day index on which tier 2 / tier 3 began, -1 if never.
    period_names : tuple of str
        Priced periods (axis P).
    month_wh_period : int64[n, 12, P]
        Per priced period, incl. the unsplit kWh [Wh].
    fallback : int64[k]
        Rows whose money was computed by the exact reference (overflow risk).
    """

    month_wh: np.ndarray
    month_wh_reg: np.ndarray
    month_wh_tier: np.ndarray
    month_fen: np.ndarray
    year_fen: np.ndarray
    tier_cross_day: np.ndarray
    period_names: tuple[str, ...]
    month_wh_period: np.ndarray
    fallback: np.ndarray


@dataclass
class RunningCharge:
    """The charge of the year so far (``wattbill estimate``; "每日电费实时测算").

    Attributes
    ----------
    fen : int64[n]
        Sum of the monthly bills of the counted days (the current month billed as if it ended on
        the ``through`` day) [fen].
    wh : int64[n]
        ``total`` so far [Wh].
    tier : int64[n]
        Tier (1..3) reached by the last counted Wh.
    month_fen : int64[n, 12]
        The monthly bills so far [fen].
    through_day : int64[n]
        Last counted day [day index].
    """

    fen: np.ndarray
    wh: np.ndarray
    tier: np.ndarray
    month_fen: np.ndarray
    through_day: np.ndarray


def _as_index(x, n: int, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 0:
        arr = np.full(n, int(arr), dtype=np.int64)
    arr = arr.astype(np.int64, copy=False)  # one compiled signature per dtype of total/regs only
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {arr.shape}")
    return arr


def _run(tariff, year, total, regs, open_first, open_last, household_size, data_last, *, use_py=False):
    schedule = as_schedule(tariff, year)
    total = np.ascontiguousarray(total)  # no copy when already C-contiguous
    regs = np.ascontiguousarray(regs)
    n_days = days_in_year(year)
    if total.ndim != 2 or total.shape[1] != n_days:
        raise ValueError(f"total: expected shape (n, {n_days}) for {year}, got {total.shape}")
    n = total.shape[0]
    if regs.shape != (n, n_days, 4):
        raise ValueError(f"regs: expected shape ({n}, {n_days}, 4), got {regs.shape}")
    if total.dtype not in (np.int32, np.int64) or regs.dtype not in (np.int32, np.int64):
        raise ValueError("total and regs must be int32 or int64 arrays of Wh")
    open_first = _as_index(open_first, n, "open_first")
    open_last = _as_index(open_last, n, "open_last")
    household_size = _as_index(household_size, n, "household_size")
    data_last = _as_index(data_last, n, "through_day")
    if schedule.first_day > 0:  # rule 6: counted open days before the first version in force
        first_counted = np.maximum(open_first, 0)
        early = np.flatnonzero((first_counted < schedule.first_day)
                               & (first_counted <= np.minimum(open_last, data_last)))
        if early.size:
            raise TariffNotInForceError(schedule.code, schedule.start_date(0), early.tolist())
    ks = KernelSchedule.of(schedule)
    n_periods = ks.q.shape[1]
    # every element is written by the kernel: no need to zero
    out = dict(
        month_wh=np.empty((n, 12), np.int64),
        month_wh_reg=np.empty((n, 12, 4), np.int64),
        month_wh_tier=np.empty((n, 12, 3), np.int64),
        month_wh_period=np.empty((n, 12, n_periods), np.int64),
        month_fen=np.empty((n, 12), np.int64),
        year_fen=np.empty(n, np.int64),
        tier_cross_day=np.empty((n, 2), np.int64),
        wh_so_far=np.empty(n, np.int64),
        tier_reached=np.empty(n, np.int64),
        flags=np.empty(n, np.int64),
    )
    kernel = bill_kernel.py_func if use_py else bill_kernel
    kernel(
        total,
        regs,
        open_first,
        open_last,
        data_last,
        household_size,
        np.asarray(month_first_days(year), dtype=np.int64),
        ks.part_first,
        ks.part_month,
        ks.part_version,
        ks.monthly,
        ks.base_thr,
        ks.proration,
        ks.bonus_min,
        ks.bonus_wh,
        ks.reg_period,
        ks.unsplit,
        ks.q,
        ks.scale_div,
        ks.safe_product,
        out["month_wh"],
        out["month_wh_reg"],
        out["month_wh_tier"],
        out["month_wh_period"],
        out["month_fen"],
        out["year_fen"],
        out["tier_cross_day"],
        out["wh_so_far"],
        out["tier_reached"],
        out["flags"],
    )
    flags = out["flags"]
    if np.any(flags & FLAG_BAD_VALUE):
        rows = np.flatnonzero(flags & FLAG_BAD_VALUE)
        raise ValueError(f"daily Wh must be 0 <= x < 2**31 (households at rows {rows[:10].tolist()})")
    if np.any(flags & FLAG_UNPRICED):
        rows = np.flatnonzero(flags & FLAG_UNPRICED)
        unpriced = ks.reg_period.min(axis=0) < 0  # registers some version leaves unpriced
        regs_bad = [r for k, r in enumerate(REGISTERS) if unpriced[k] and np.any(out["month_wh_reg"][rows, :, k] > 0)]
        raise UnpricedRegisterError(schedule.code, regs_bad[0] if regs_bad else "?", rows.tolist())
    fallback = np.flatnonzero(flags & FLAG_OVERFLOW)
    for i in fallback:
        ref = reference_bill(
            schedule,
            year,
            total[i].tolist(),
            regs[i].tolist(),
            int(open_first[i]),
            int(open_last[i]),
            int(household_size[i]),
            through_day=int(data_last[i]),
        )
        out["month_fen"][i] = [int(c * 100) for c in ref.month_charges]
        out["year_fen"][i] = out["month_fen"][i].sum()
    out["fallback"] = fallback
    return out, schedule.period_names


def bill_households(tariff: Tariff | TariffSchedule, year: int, total, regs, open_first, open_last, household_size, *, use_py: bool = False) -> YearBills:
    """Monthly and annual bills of many households (rules of :mod:`tariffs.reference`).

    Parameters
    ----------
    tariff : Tariff or TariffSchedule
        One tariff for the whole year, or the versions in force during ``year``
        (``Catalog.schedule``): each day priced by the version in force that day (rule 6).
    year : int
    total : int32|int64[n, n_days]
        Daily ``total`` [Wh], ``n_days`` = days of ``year``.
    regs : int32|int64[n, n_days, 4]
        Daily Wh per register (sharp, peak, flat, valley), 0 where unknown.
    open_first, open_last : int[n] or int
        First and last open day in the year [day index]; 0 and n_days-1 for a whole year.
    household_size : int[n] or int
        [persons].
    use_py : bool
        Run the kernel's pure-Python twin (tests).

    Returns
    -------
    YearBills
        Every ``month_fen`` entry equals ``reference_bill`` to the fen.

    Raises
    ------
    UnpricedRegisterError
        A register with kWh maps to no priced period (``households`` lists the rows).
    TariffNotInForceError
        Households open on counted days before the first version in force (``households``).
    ValueError
        Wrong shapes or dtypes, or a daily value outside 0 <= x < 2**31.
    """
    out, period_names = _run(tariff, year, total, regs, open_first, open_last, household_size, open_last,
                             use_py=use_py)
    return YearBills(
        month_wh=out["month_wh"],
        month_wh_reg=out["month_wh_reg"],
        month_wh_tier=out["month_wh_tier"],
        month_fen=out["month_fen"],
        year_fen=out["year_fen"],
        tier_cross_day=out["tier_cross_day"],
        period_names=period_names,
        month_wh_period=out["month_wh_period"],
        fallback=out["fallback"],
    )


def running_charge(
    tariff: Tariff | TariffSchedule, year: int, total, regs, open_first, open_last, household_size, through_day, *,
    use_py: bool = False
) -> RunningCharge:
    """The charge of the year up to and including ``through_day`` (day index, scalar or int[n]).

    Days after ``through_day`` are not counted; thresholds are prorated by the open window
    (``open_first``..``open_last``), as the year's bills will be. The month of ``through_day`` is
    billed as if it ended that day. Parameters and errors as :func:`bill_households`.
    """
    n = np.asarray(total).shape[0]
    through = _as_index(through_day, n, "through_day")
    data_last = np.minimum(np.asarray(_as_index(open_last, n, "open_last"), dtype=np.int64), through)
    out, _periods = _run(tariff, year, total, regs, open_first, open_last, household_size, data_last, use_py=use_py)
    return RunningCharge(
        fen=out["year_fen"],
        wh=out["wh_so_far"],
        tier=out["tier_reached"],
        month_fen=out["month_fen"],
        through_day=through.astype(np.int64),
    )
