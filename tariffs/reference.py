"""The exact reference: the design's calculation rules, stated in plain ``Decimal`` code.

This is the definition every fast path (``tariffs.kernels``) must equal to the fen. It is slow on
purpose: one household at a time, one readable step per rule.

Rules (``design.md``, "Tariff files"), with the details this module fixes:

1. **Monthly bills.** A bill is made for each calendar month. With an ``annual`` cycle a month's kWh
   are placed into tiers by the cumulative kWh of the year before that month (the marginal kWh
   from ``before`` to ``before + month`` fall into tier k where they lie between threshold k-1 and
   threshold k); with a ``monthly`` cycle by the month's kWh alone (``thresholds_by_month`` gives
   seasonal monthly thresholds). Tiers are placed by ``total`` (authoritative).
2. **Proportional share.** The tier kWh of a month are shared among the priced periods in
   proportion to that month's kWh in each period. A period's kWh are the kWh of the registers that
   map to it; the kWh of ``total`` not covered by the registers (per month:
   ``max(total - (sharp + peak + flat + valley), 0)``, e.g. a meter without time-of-use registers,
   or the days before a meter exchange) belong to the tariff's ``unsplit`` period. So the month's
   charge is::

       charge = sum over tiers k, periods p of  tier_kwh[k] * kwh[p] / sum(kwh) * price[p][k]

   a rational number; the division is done last, with 60 significant digits, which is exact enough
   for rounding: with prices of at most 6 decimals the charge is ``M / (10**9 * sum(Wh))`` for an
   integer ``M``, so when it is not exactly on a half-fen it is at least ``1 / (2 * 10**11 * sum(Wh))``
   yuan away from it, far more than the error of a 60-digit quotient. (The code also keeps the exact
   ``Fraction`` and asserts that both round alike.)
3. **Rounding.** Each monthly bill is rounded half-up to 0.01 yuan; the annual charge is the sum of
   the rounded monthly bills.
4. **Proration and household bonus.** Only days from ``open_first`` to ``open_last`` (day indices
   of the year, inclusive) count; kWh on other days are ignored. A threshold ``H`` [kWh per cycle]
   plus the bonus (``kwh_per_month`` for each month of the cycle, i.e. 12 x for an annual cycle,
   1 x for a monthly one, when ``household_size >= min_size``) is multiplied by the open fraction
   of the cycle:

   - ``months``: annual cycle: open months / 12, where a month is open if any of its days is;
     monthly cycle: 1 for every open month;
   - ``days``: open days / days of the cycle (the year, or the month);
   - ``none``: 1.

   The result is rounded half-up to a whole Wh (thresholds are compared with Wh).
5. **Unpriced registers.** A register that the tariff does not map to a priced period, but that has
   kWh on an open day, raises :class:`~tariffs.errors.UnpricedRegisterError`.
6. **Versions within the year.** Each day is priced by the version of the tariff in force that day
   (:class:`~tariffs.model.TariffSchedule`: a later file with the same code supersedes from its
   ``valid_from``). A month in which a version starts is split at that day into *parts*, one per
   version; a month without a change is one part, so rules 1-5 are unchanged for it. Each part is
   a line of the month's bill:

   - its kWh are placed into tiers by the thresholds of its own version (prorated and raised by
     that version's rule 4 over the account's open window) on the kWh counted before the part:
     from 1 January for an annual cycle -- **the annual tier cumulation continues across a price
     change**, it does not restart at the change -- and from the 1st of the month for a monthly
     cycle (the days of the month before the change count towards the month's tiers);
   - it is shared among its version's periods in proportion to the part's own kWh (rule 2) and
     priced at its version's prices;
   - it is rounded half-up to the fen (rule 3); the month's bill is the sum of its parts' lines.

   A day before the first version in force (a tariff first valid after 1 January) has no price:
   an open household with such days raises :class:`~tariffs.errors.TariffNotInForceError`.
   References: NDRC 《关于居民生活用电试行阶梯电价的指导意见》 (发改价格〔2011〕2617号): tiers are
   counted over the year's (or month's) cumulative consumption, which a price adjustment does not
   reset; provincial notices of later adjustments (e.g. the 2012 first-year rule "年度电量按剩余月份
   折算", and price changes applied "自调价之日起" to the kWh used from that day) price the kWh of
   each day at the price in force that day.

Day indices are ``day - 1 January`` (0..364, or 0..365 in a leap year). Energy inputs are integer Wh.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

from .errors import TariffNotInForceError, UnpricedRegisterError
from .model import REGISTERS, Tariff, TariffSchedule, as_schedule

FEN = Decimal("0.01")


@dataclass(frozen=True)
class ReferenceMonth:
    """One monthly bill.

    Attributes
    ----------
    month : int
        1..12.
    wh_total : int
        ``total`` of the open days of the month [Wh].
    wh_reg : tuple of 4 int
        Per register, in ``REGISTERS`` order [Wh].
    wh_unsplit : int
        ``max(wh_total - sum(wh_reg), 0)``: the month's ``total`` not covered by registers [Wh].
    wh_period : dict of str to int
        Per priced period (rule 2) [Wh].
    wh_tier : tuple of 3 int
        Per tier (placed by ``total``) [Wh].
    charge : Decimal
        The bill, the sum of its parts' lines each rounded half-up to 0.01 [yuan].
    exact : Fraction
        The charge before rounding [yuan] (sum of the parts' exact charges).
    parts : tuple of (first day index, version index, Decimal)
        The month's lines (rule 6): one per version in force during the month's counted days.
    """

    month: int
    wh_total: int
    wh_reg: tuple[int, int, int, int]
    wh_unsplit: int
    wh_period: dict[str, int]
    wh_tier: tuple[int, int, int]
    charge: Decimal
    exact: Fraction
    parts: tuple[tuple[int, int, Decimal], ...] = ()


@dataclass(frozen=True)
class ReferenceBill:
    """A year of monthly bills of one household.

    Attributes
    ----------
    months : tuple of 12 ReferenceMonth
    annual : Decimal
        Sum of the rounded monthly bills [yuan].
    thresholds_wh : tuple of 12 tuples of int
        Effective thresholds per month after proration and bonus [Wh per cycle] of the version in
        force at the end of the month (of the last version for a month before the first); for an
        annual cycle the same tuple twelve times when there is one version.
    tier_cross_day : tuple of 2 int
        Day index on which tier 2 / tier 3 began (the first day whose kWh go past the threshold;
        for a monthly cycle the first such day of the year), -1 if never.
    wh_so_far : int
        ``total`` of the counted days [Wh].
    tier_reached : int
        Tier (1..3) of the last counted Wh: by the year's cumulative kWh (annual cycle) or by the
        cumulative kWh of the month of the last counted day (monthly cycle).
    """

    months: tuple[ReferenceMonth, ...]
    annual: Decimal
    thresholds_wh: tuple[tuple[int, ...], ...]
    tier_cross_day: tuple[int, int]
    wh_so_far: int
    tier_reached: int

    @property
    def month_charges(self) -> list[Decimal]:
        """The twelve monthly bills [yuan]."""
        return [m.charge for m in self.months]

    @property
    def annual_fen(self) -> int:
        """The annual charge [fen]."""
        return int(self.annual * 100)


def days_in_year(year: int) -> int:
    """365 or 366."""
    return 366 if calendar.isleap(year) else 365


def month_first_days(year: int) -> list[int]:
    """Day index of the 1st of each month, plus the number of days of the year (13 entries)."""
    firsts = [0]
    for m in range(1, 13):
        firsts.append(firsts[-1] + calendar.monthrange(year, m)[1])
    return firsts


def round_half_up(x: Fraction) -> int:
    """Nearest integer to a non-negative rational, halves upwards."""
    return (2 * x.numerator + x.denominator) // (2 * x.denominator)


def effective_thresholds(
    tariff: Tariff, year: int, open_first: int, open_last: int, household_size: int
) -> tuple[tuple[int, ...], ...]:
    """Thresholds in force for each month after proration and household bonus (rule 4) [Wh].

    Returns twelve tuples; for an annual cycle they are equal (thresholds on the year's cumulative
    kWh), for a monthly cycle each is the month's own.
    """
    firsts = month_first_days(year)
    n_days = firsts[12]
    first, last = max(open_first, 0), min(open_last, n_days - 1)
    open_days_in = [max(0, min(last, firsts[m + 1] - 1) - max(first, firsts[m]) + 1) for m in range(12)]
    open_months = sum(1 for d in open_days_in if d > 0)

    bonus = tariff.household_bonus
    bonus_wh_per_month = 0
    if bonus is not None and household_size >= bonus.min_size:
        bonus_wh_per_month = int(bonus.kwh_per_month * 1000)

    if tariff.cycle == "annual":
        if tariff.proration == "months":
            fraction = Fraction(open_months, 12)
        elif tariff.proration == "days":
            fraction = Fraction(sum(open_days_in), n_days)
        else:
            fraction = Fraction(1)
        assert tariff.thresholds is not None
        year_thresholds = tuple(
            round_half_up((int(h * 1000) + 12 * bonus_wh_per_month) * fraction) for h in tariff.thresholds
        )
        return tuple(year_thresholds for _ in range(12))

    out = []
    for m in range(12):
        days_of_month = firsts[m + 1] - firsts[m]
        if tariff.proration == "days":
            fraction = Fraction(open_days_in[m], days_of_month)
        elif tariff.proration == "months":
            fraction = Fraction(1 if open_days_in[m] > 0 else 0)
        else:
            fraction = Fraction(1)
        out.append(
            tuple(
                round_half_up((int(h * 1000) + bonus_wh_per_month) * fraction)
                for h in tariff.month_thresholds_kwh(m + 1)
            )
        )
    return tuple(out)


def place_in_tiers(before: int, amount: int, thresholds: Sequence[int]) -> tuple[int, int, int]:
    """Split the Wh from ``before`` to ``before + amount`` into tiers (rule 1) [Wh].

    Tier k holds the part lying above threshold k-1 and at or below threshold k.
    """
    bounds = [0, *thresholds] + [None] * (3 - len(thresholds))
    tiers = []
    for k in range(3):
        low, high = bounds[k], bounds[k + 1] if k + 1 < len(bounds) else None
        if low is None:  # tier does not exist
            tiers.append(0)
            continue

        def clamp(x: int, low: int = low, high: int | None = high) -> int:
            x = max(x, low)
            return x if high is None else min(x, high)

        tiers.append(clamp(before + amount) - clamp(before))
    return tiers[0], tiers[1], tiers[2]


def _part_charge(tariff: Tariff, wh_tier: Sequence[int], wh_period: dict[str, int]) -> tuple[Decimal, Fraction]:
    """Rules 2 and 3 for one part: the charge shared by period, divided last, rounded half-up."""
    prices = dict(tariff.prices)
    total_period_wh = sum(wh_period.values())
    numerator = Decimal(0)  # sum of Wh * Wh * yuan/kWh
    with localcontext() as ctx:
        ctx.prec = 60
        for k in range(tariff.n_tiers):
            for p in tariff.period_names:
                numerator += Decimal(wh_tier[k]) * Decimal(wh_period[p]) * prices[p][k]
        if sum(wh_tier) == 0 or total_period_wh == 0:
            return Decimal("0.00"), Fraction(0)
        exact_dec = numerator / (Decimal(total_period_wh) * 1000)
        exact = Fraction(numerator) / (total_period_wh * 1000)
        charge = exact_dec.quantize(FEN, rounding=ROUND_HALF_UP)
    assert charge * 100 == round_half_up(exact * 100), "Decimal and Fraction disagree on rounding"
    return charge, exact


def reference_bill(
    tariff: Tariff | TariffSchedule,
    year: int,
    daily_total: Sequence[int],
    daily_regs: Sequence[Sequence[int]],
    open_first: int,
    open_last: int,
    household_size: int = 1,
    through_day: int | None = None,
) -> ReferenceBill:
    """Monthly and annual bills of one household, exactly.

    Parameters
    ----------
    tariff : Tariff or TariffSchedule
        One tariff for the whole year, or the versions in force during ``year`` (rule 6).
    year : int
    daily_total : sequence of int
        ``total`` per day of the year [Wh], length 365 or 366.
    daily_regs : sequence of (sharp, peak, flat, valley)
        Registers per day [Wh], 0 where unknown.
    open_first, open_last : int
        Day indices of the first and last open day in the year (0 and n_days-1 for a whole year).
    household_size : int
        Persons, for the household bonus.
    through_day : int, optional
        Count only days up to this index (the running charge of the year so far); proration still
        follows ``open_first``/``open_last``.

    Returns
    -------
    ReferenceBill

    Raises
    ------
    UnpricedRegisterError
        A register without a priced period has Wh on a counted day (rule 5).
    TariffNotInForceError
        A counted open day comes before the first version in force (rule 6).
    ValueError
        Wrong lengths or negative Wh.
    """
    schedule = as_schedule(tariff, year)
    firsts = month_first_days(year)
    n_days = firsts[12]
    if len(daily_total) != n_days or len(daily_regs) != n_days:
        raise ValueError(f"expected {n_days} days for {year}, got {len(daily_total)} and {len(daily_regs)}")
    last_counted = min(open_last, n_days - 1 if through_day is None else through_day)
    counted = range(max(open_first, 0), last_counted + 1)
    if len(counted) and counted[0] < schedule.first_day:
        raise TariffNotInForceError(schedule.code, schedule.start_date(0))

    versions = schedule.tariffs
    thresholds_of = [effective_thresholds(t, year, open_first, open_last, household_size) for t in versions]
    period_names = schedule.period_names

    months: list[ReferenceMonth] = []
    month_thresholds: list[tuple[int, ...]] = []
    cumulative = 0  # Wh of the year before the part (annual cycles)
    cross = [-1, -1]
    tier_reached = 1
    for m in range(12):
        end_version = schedule.index_on(firsts[m + 1] - 1)
        month_thresholds.append(thresholds_of[end_version if end_version >= 0 else -1][m])
        days = [d for d in counted if firsts[m] <= d < firsts[m + 1]]
        # rule 6: the month's counted days in runs of one version each
        runs: list[tuple[int, list[int]]] = []
        for d in days:
            k = schedule.index_on(d)
            if runs and runs[-1][0] == k:
                runs[-1][1].append(d)
            else:
                runs.append((k, [d]))
        month_cum = 0  # Wh of the month before the part (monthly cycles)
        m_total = 0
        m_reg = [0, 0, 0, 0]
        m_unsplit = 0
        m_period = dict.fromkeys(period_names, 0)
        m_tier = [0, 0, 0]
        m_charge = Decimal("0.00")
        m_exact = Fraction(0)
        parts: list[tuple[int, int, Decimal]] = []
        for k, run in runs:
            t_version = versions[k]
            h = thresholds_of[k][m]
            before = cumulative if t_version.cycle == "annual" else month_cum
            wh_total = 0
            wh_reg = [0, 0, 0, 0]
            for d in run:
                t = int(daily_total[d])
                regs = [int(x) for x in daily_regs[d]]
                if t < 0 or min(regs) < 0:
                    raise ValueError(f"negative Wh on day {d}")
                # tier crossing: the first day with kWh above the threshold in force that day
                for j, hj in enumerate(h):
                    if cross[j] == -1 and t > 0 and before + wh_total + t > hj:
                        cross[j] = d
                wh_total += t
                for r in range(4):
                    wh_reg[r] += regs[r]
            # rule 2: the part's kWh of total not covered by the registers
            wh_unsplit = max(wh_total - sum(wh_reg), 0)
            # rule 5: registers with kWh need a priced period (of this version)
            reg_period = [t_version.period_of(r) for r in REGISTERS]
            for r in range(4):
                if wh_reg[r] > 0 and reg_period[r] is None:
                    raise UnpricedRegisterError(t_version.code, REGISTERS[r])
            wh_period = dict.fromkeys(t_version.period_names, 0)
            for r in range(4):
                period = reg_period[r]
                if period is not None:
                    wh_period[period] += wh_reg[r]
            wh_period[t_version.unsplit] += wh_unsplit
            # rule 1: tiers, from the kWh before the part
            wh_tier = place_in_tiers(before, wh_total, h)
            tier_reached = 1 + sum(1 for hj in h if before + wh_total > hj)
            charge, exact = _part_charge(t_version, wh_tier, wh_period)
            parts.append((run[0], k, charge))
            # the month: sums of its parts
            m_total += wh_total
            for r in range(4):
                m_reg[r] += wh_reg[r]
            m_unsplit += wh_unsplit
            for p, w in wh_period.items():
                m_period[p] += w
            for j in range(3):
                m_tier[j] += wh_tier[j]
            m_charge += charge
            m_exact += exact
            cumulative += wh_total
            month_cum += wh_total
        months.append(
            ReferenceMonth(
                month=m + 1,
                wh_total=m_total,
                wh_reg=(m_reg[0], m_reg[1], m_reg[2], m_reg[3]),
                wh_unsplit=m_unsplit,
                wh_period=m_period,
                wh_tier=(m_tier[0], m_tier[1], m_tier[2]),
                charge=m_charge,
                exact=m_exact,
                parts=tuple(parts),
            )
        )

    annual = sum((mo.charge for mo in months), Decimal("0.00"))
    return ReferenceBill(
        months=tuple(months),
        annual=annual,
        thresholds_wh=tuple(month_thresholds),
        tier_cross_day=(cross[0], cross[1]),
        wh_so_far=cumulative,
        tier_reached=tier_reached,
    )
