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

Day indices are ``day - 1 January`` (0..364, or 0..365 in a leap year). Energy inputs are integer Wh.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

from .errors import UnpricedRegisterError
from .model import REGISTERS, Tariff

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
        The bill, rounded half-up to 0.01 [yuan].
    exact : Fraction
        The charge before rounding [yuan].
    """

    month: int
    wh_total: int
    wh_reg: tuple[int, int, int, int]
    wh_unsplit: int
    wh_period: dict[str, int]
    wh_tier: tuple[int, int, int]
    charge: Decimal
    exact: Fraction


@dataclass(frozen=True)
class ReferenceBill:
    """A year of monthly bills of one household.

    Attributes
    ----------
    months : tuple of 12 ReferenceMonth
    annual : Decimal
        Sum of the rounded monthly bills [yuan].
    thresholds_wh : tuple of 12 tuples of int
        Effective thresholds per month after proration and bonus [Wh per cycle]; for an annual
        cycle the same tuple twelve times.
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


def reference_bill(
    tariff: Tariff,
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
    tariff : Tariff
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
    ValueError
        Wrong lengths or negative Wh.
    """
    firsts = month_first_days(year)
    n_days = firsts[12]
    if len(daily_total) != n_days or len(daily_regs) != n_days:
        raise ValueError(f"expected {n_days} days for {year}, got {len(daily_total)} and {len(daily_regs)}")
    last_counted = min(open_last, n_days - 1 if through_day is None else through_day)
    counted = range(max(open_first, 0), last_counted + 1)

    thresholds = effective_thresholds(tariff, year, open_first, open_last, household_size)
    reg_period = [tariff.period_of(r) for r in REGISTERS]
    prices = dict(tariff.prices)
    periods = tariff.period_names

    months: list[ReferenceMonth] = []
    cumulative = 0  # Wh of the year before the month (annual cycle)
    cross = [-1, -1]
    tier_reached = 1
    for m in range(12):
        days = [d for d in counted if firsts[m] <= d < firsts[m + 1]]
        # monthly sums (open, counted days only)
        wh_total = 0
        wh_reg = [0, 0, 0, 0]
        month_cum = 0
        for d in days:
            t = int(daily_total[d])
            regs = [int(x) for x in daily_regs[d]]
            if t < 0 or min(regs) < 0:
                raise ValueError(f"negative Wh on day {d}")
            wh_total += t
            for r in range(4):
                wh_reg[r] += regs[r]
            # tier crossing days
            before = cumulative + month_cum if tariff.cycle == "annual" else month_cum
            for k, h in enumerate(thresholds[m]):
                if cross[k] == -1 and before <= h < before + t:
                    cross[k] = d
            month_cum += t

        # rule 2: the month's kWh of total not covered by the registers
        wh_unsplit = max(wh_total - sum(wh_reg), 0)

        # rule 5: registers with kWh need a priced period
        for r in range(4):
            if wh_reg[r] > 0 and reg_period[r] is None:
                raise UnpricedRegisterError(tariff.code, REGISTERS[r])

        # rule 2: kWh per priced period
        wh_period = dict.fromkeys(periods, 0)
        for r in range(4):
            period = reg_period[r]
            if period is not None:
                wh_period[period] += wh_reg[r]
        wh_period[tariff.unsplit] += wh_unsplit

        # rule 1: tiers
        before = cumulative if tariff.cycle == "annual" else 0
        wh_tier = place_in_tiers(before, wh_total, thresholds[m])
        if days:
            reached_at = before + wh_total
            tier_reached = 1 + sum(1 for h in thresholds[m] if reached_at > h)

        # rules 2 and 3: the charge, shared by period, divided last, rounded half-up to the fen
        total_period_wh = sum(wh_period.values())
        numerator = Decimal(0)  # sum of Wh * Wh * yuan/kWh
        with localcontext() as ctx:
            ctx.prec = 60
            for k in range(tariff.n_tiers):
                for p in periods:
                    numerator += Decimal(wh_tier[k]) * Decimal(wh_period[p]) * prices[p][k]
            if wh_total == 0:
                exact_dec = Decimal(0)
                exact = Fraction(0)
            else:
                exact_dec = numerator / (Decimal(total_period_wh) * 1000)
                exact = Fraction(numerator) / (total_period_wh * 1000)
            charge = exact_dec.quantize(FEN, rounding=ROUND_HALF_UP)
        assert charge * 100 == round_half_up(exact * 100), "Decimal and Fraction disagree on rounding"
        months.append(
            ReferenceMonth(
                month=m + 1,
                wh_total=wh_total,
                wh_reg=(wh_reg[0], wh_reg[1], wh_reg[2], wh_reg[3]),
                wh_unsplit=wh_unsplit,
                wh_period=wh_period,
                wh_tier=wh_tier,
                charge=charge,
                exact=exact,
            )
        )
        cumulative += wh_total

    annual = sum((mo.charge for mo in months), Decimal("0.00"))
    return ReferenceBill(
        months=tuple(months),
        annual=annual,
        thresholds_wh=thresholds,
        tier_cross_day=(cross[0], cross[1]),
        wh_so_far=cumulative,
        tier_reached=tier_reached,
    )
