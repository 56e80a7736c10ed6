"""Tariff files (TOML) and their frozen, validated model; the tariff catalogue.

The file format is the one of ``design.md`` ("Tariff files")::

    code, name, name_en, currency, notice, source, note, verified, valid_from
    [periods]   register -> priced period; optional ``unsplit = "<period>"``
    [prices]    priced period -> list of yuan/kWh, one per tier
    [tiers]     cycle, thresholds | thresholds_by_month, proration, household_bonus
    [hours]     optional, period or register -> text such as "8:00-22:00" (display only)

``unsplit`` is the period that prices the kWh of ``total`` not covered by the registers (meters
without time-of-use registers); it defaults to the period that ``flat`` maps to.

Energy thresholds are kWh in files and in this model (``Decimal``); the calculation works in Wh
(``*_wh`` helpers). Every threshold must be a whole number of Wh.

This module reads tariff files and nothing else (the package is otherwise pure).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path
from typing import Any

from .errors import TariffFileError, UnknownTariffError

REGISTERS: tuple[str, ...] = ("sharp", "peak", "flat", "valley")
"""Meter registers, in the order of every register axis (docs/interfaces.md)."""

CYCLES = ("annual", "monthly")
PRORATIONS = ("months", "days", "none")
MAX_TIERS = 3
MAX_PRICE_SCALE = 6
#: the largest threshold or household bonus [kWh per cycle]: the kernels hold thresholds in int64 Wh and
#: multiply them by up to 366 days when they prorate; 1e9 kWh (1 TWh, a million times a household's year)
#: keeps every product far below 2**63 (``thresholds = [1e20, 2e20]`` would overflow)
MAX_THRESHOLD_KWH = Decimal(10**9)

CATALOG_DIR = Path(__file__).parent / "catalog"

_TOP_KEYS = {"code", "name", "name_en", "currency", "notice", "source", "note", "verified", "valid_from", "periods",
             "prices", "tiers", "hours"}
_TIER_KEYS = {"cycle", "thresholds", "thresholds_by_month", "proration", "household_bonus"}
_BONUS_KEYS = {"min_size", "kwh_per_month"}
_CODE_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Problem:
    """One problem in a tariff file.

    Attributes
    ----------
    file : str
        The file (or origin) concerned.
    key : str
        Dotted TOML key (``""`` for the whole file, e.g. a syntax error).
    message : str
        What is wrong.
    line : int or None
        Line number, where known (TOML syntax errors).
    """

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


@dataclass(frozen=True)
class HouseholdBonus:
    """Threshold bonus for large households (design rule 4).

    Attributes
    ----------
    min_size : int
        Households of at least this many people get the bonus [persons].
    kwh_per_month : Decimal
        Raise of every threshold per month of the cycle [kWh/month].
    """

    min_size: int
    kwh_per_month: Decimal


@dataclass(frozen=True)
class Tariff:
    """A validated tariff. Build it with :func:`parse_tariff` or :func:`read_tariff`.

    Attributes
    ----------
    code, name, name_en, currency : str
        As in the file.
    source : str
        Where the figures come from (a notice, a URL, a price table): for operators (``tariffs show``),
        never printed on a customer's bill.
    valid_from : date or None
        First day the tariff applies; a later file with the same code supersedes from its date.
    periods : tuple of (register, period)
        Register -> priced period, for the registers the tariff prices.
    unsplit : str
        Priced period of the kWh of ``total`` not covered by the registers.
    prices : tuple of (period, tuple of Decimal)
        Price per tier [yuan/kWh], periods in file order.
    cycle : str
        ``"annual"`` (cumulative from 1 January) or ``"monthly"``.
    thresholds : tuple of Decimal or None
        Annual or monthly thresholds where tier 2, tier 3 begin [kWh per cycle].
    thresholds_by_month : tuple of 12 tuples of Decimal, or None
        Seasonal monthly thresholds, index 0 = January [kWh per month].
    proration : str
        ``"months"``, ``"days"`` or ``"none"``.
    household_bonus : HouseholdBonus or None
    hours : tuple of (period or register, text)
        Display only.
    notice : str
        The public notice the tariff follows (issuer, title and number), as printed on the bill
        beside the tariff's name; ``""`` when the file gives none (the bill shows the name only).
    note : str
        Internal note (doubts, what is still to be confirmed): never printed on a bill.
    verified : bool
        True when the figures have been checked against the notice; a bill run over an unverified
        tariff warns the operator, once per file (``wattbill bill run``). Files say
        ``verified = true`` explicitly; without it a tariff is unverified.
    origin : str
        Where the tariff was read from.
    """

    code: str
    name: str
    name_en: str
    currency: str
    source: str
    valid_from: date | None
    periods: tuple[tuple[str, str], ...]
    unsplit: str
    prices: tuple[tuple[str, tuple[Decimal, ...]], ...]
    cycle: str
    thresholds: tuple[Decimal, ...] | None
    thresholds_by_month: tuple[tuple[Decimal, ...], ...] | None
    proration: str = "months"
    household_bonus: HouseholdBonus | None = None
    hours: tuple[tuple[str, str], ...] = ()
    notice: str = ""
    note: str = ""
    verified: bool = False
    origin: str = field(default="", compare=False)

    # ---- derived views -------------------------------------------------------------------
    @property
    def period_names(self) -> tuple[str, ...]:
        """Priced periods in file order (the ``P`` axis of the kernels' outputs)."""
        return tuple(p for p, _ in self.prices)

    @property
    def n_tiers(self) -> int:
        """Number of tiers (1..3)."""
        return len(self.prices[0][1])

    def period_of(self, register: str) -> str | None:
        """Priced period of a register, or None if the tariff does not price it."""
        return dict(self.periods).get(register)

    def price(self, period: str, tier: int) -> Decimal:
        """Price of ``period`` in ``tier`` (1-based) [yuan/kWh]."""
        return dict(self.prices)[period][tier - 1]

    @property
    def is_time_of_use(self) -> bool:
        """True when the tariff has more than one priced period."""
        return len(self.prices) > 1

    @property
    def price_scale(self) -> int:
        """Decimal places needed to write every price as an integer (kernels' price unit)."""
        scale = 0
        for _, ps in self.prices:
            for p in ps:
                exp = p.normalize().as_tuple().exponent
                assert isinstance(exp, int)
                scale = max(scale, -exp)
        return scale

    def month_thresholds_kwh(self, month: int) -> tuple[Decimal, ...]:
        """Thresholds for ``month`` (1..12) of a monthly cycle, or the annual ones [kWh]."""
        if self.thresholds_by_month is not None:
            return self.thresholds_by_month[month - 1]
        assert self.thresholds is not None
        return self.thresholds

    def hours_of(self, name: str) -> str | None:
        """Hours text for a period or register, if the file gives them."""
        return dict(self.hours).get(name)


# ---- parsing --------------------------------------------------------------------------------


def _dec(value: Any) -> Decimal | None:
    """Exact Decimal of a TOML number (floats via their shortest repr, as written in the file)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        try:
            d = Decimal(repr(value))
        except InvalidOperation:
            return None
        return d if d.is_finite() else None
    if isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            return None
        return d if d.is_finite() else None
    return None


def _parse_months(spec: str) -> list[int] | None:
    """``"1-4,11-12"`` -> [1, 2, 3, 4, 11, 12]; None if malformed (wrap-around ranges not allowed)."""
    months: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d{1,2})(?:\s*-\s*(\d{1,2}))?", part)
        if not m:
            return None
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        if not (1 <= a <= 12 and 1 <= b <= 12) or b < a:
            return None
        months.extend(range(a, b + 1))
    return months


def _toml_line(exc: tomllib.TOMLDecodeError) -> int | None:
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    m = re.search(r"line (\d+)", str(exc))
    return int(m.group(1)) if m else None


def _validate(data: Mapping[str, Any], origin: str) -> tuple[Tariff | None, list[Problem]]:
    """Validate a parsed TOML document; return the tariff (if no problem) and every problem."""
    problems: list[Problem] = []

    def bad(key: str, message: str) -> None:
        problems.append(Problem(origin, key, message))

    for k in data:
        if k not in _TOP_KEYS:
            bad(k, "unknown key")

    def text(key: str, required: bool = True, default: str = "") -> str:
        v = data.get(key)
        if v is None:
            if required:
                bad(key, "missing")
            return default
        if not isinstance(v, str) or (required and not v.strip()):
            bad(key, "must be a non-empty string")
            return default
        return v

    code = text("code")
    if code and not _CODE_RE.match(code):
        bad("code", f"{code!r}: use lowercase letters, digits and dashes (e.g. cn-zhejiang-res-tou)")
    name = text("name")
    name_en = text("name_en", required=False, default=name)
    currency = text("currency", required=False, default="CNY")
    if currency != "CNY":
        bad("currency", f"{currency!r}: only CNY is supported (prices in yuan, money in fen)")
    source = text("source")
    notice = text("notice", required=False)
    note = text("note", required=False)
    verified = data.get("verified", False)
    if not isinstance(verified, bool):
        bad("verified", f"{verified!r}: must be true or false (true only once the figures are checked against the notice)")
        verified = False

    valid_from: date | None = None
    vf = data.get("valid_from")
    if vf is not None:
        if isinstance(vf, date) and not hasattr(vf, "hour"):
            valid_from = vf
        elif isinstance(vf, str):
            try:
                valid_from = date.fromisoformat(vf)
            except ValueError:
                bad("valid_from", f"{vf!r} is not a date (YYYY-MM-DD)")
        else:
            bad("valid_from", "must be a date (YYYY-MM-DD)")

    # -- prices
    prices: list[tuple[str, tuple[Decimal, ...]]] = []
    raw_prices = data.get("prices")
    if not isinstance(raw_prices, dict) or not raw_prices:
        bad("prices", "missing: give a list of yuan/kWh per tier for each priced period")
        raw_prices = {}
    for period, plist in raw_prices.items():
        key = f"prices.{period}"
        if not isinstance(plist, list) or not plist:
            bad(key, "must be a non-empty list of prices (yuan/kWh), one per tier")
            continue
        ds: list[Decimal] = []
        ok = True
        for i, v in enumerate(plist):
            d = _dec(v)
            if d is None or d < 0:
                bad(f"{key}[{i}]", f"{v!r} is not a price (a number >= 0, yuan/kWh)")
                ok = False
                continue
            exp = d.normalize().as_tuple().exponent
            if isinstance(exp, int) and -exp > MAX_PRICE_SCALE:
                bad(f"{key}[{i}]", f"{v!r} has more than {MAX_PRICE_SCALE} decimal places")
                ok = False
            if d >= 100:
                bad(f"{key}[{i}]", f"{v!r} yuan/kWh is implausible (must be < 100)")
                ok = False
            ds.append(d)
        if ok:
            prices.append((period, tuple(ds)))
    priced = {p for p, _ in prices} | set(raw_prices)

    # -- periods
    periods: list[tuple[str, str]] = []
    unsplit: str | None = None
    raw_periods = data.get("periods")
    if not isinstance(raw_periods, dict) or not raw_periods:
        bad("periods", "missing: map each register (sharp, peak, flat, valley) to a priced period")
        raw_periods = {}
    for reg, period in raw_periods.items():
        key = f"periods.{reg}"
        if not isinstance(period, str) or not period:
            bad(key, "must be the name of a priced period (a string)")
            continue
        if reg == "unsplit":
            unsplit = period
            if period not in priced:
                bad(key, f"unknown period {period!r}: not in [prices]")
            continue
        if reg not in REGISTERS:
            bad(key, f"unknown register {reg!r}: registers are {', '.join(REGISTERS)} (or 'unsplit')")
            continue
        if period not in priced:
            bad(key, f"register {reg!r} maps to period {period!r}, which has no price in [prices]")
            continue
        periods.append((reg, period))
    periods.sort(key=lambda rp: REGISTERS.index(rp[0]))
    if unsplit is None:
        unsplit = dict(periods).get("flat")
        if unsplit is None and raw_periods and "flat" not in raw_periods:
            bad("periods.unsplit", "no period for kWh not covered by registers: map 'flat' or set 'unsplit'")
    used = {p for _, p in periods} | ({unsplit} if unsplit else set())
    for p in raw_prices:
        if p not in used:
            bad(f"prices.{p}", f"period {p!r} has prices but no register maps to it")

    # -- tiers
    raw_tiers = data.get("tiers")
    if not isinstance(raw_tiers, dict):
        bad("tiers", "missing: give cycle and thresholds (or thresholds_by_month)")
        raw_tiers = {}
    for k in raw_tiers:
        if k not in _TIER_KEYS:
            bad(f"tiers.{k}", "unknown key")
    cycle = raw_tiers.get("cycle", "annual")
    if cycle not in CYCLES:
        bad("tiers.cycle", f"{cycle!r}: must be one of {', '.join(CYCLES)}")
    proration = raw_tiers.get("proration", "months")
    if proration not in PRORATIONS:
        bad("tiers.proration", f"{proration!r}: must be one of {', '.join(PRORATIONS)}")

    def threshold_list(key: str, value: Any) -> tuple[Decimal, ...] | None:
        if not isinstance(value, list):
            bad(key, "must be a list of kWh thresholds (possibly empty for a single tier)")
            return None
        out: list[Decimal] = []
        for i, v in enumerate(value):
            d = _dec(v)
            if d is None or d <= 0:
                bad(f"{key}[{i}]", f"{v!r} is not a threshold (a number of kWh > 0)")
                return None
            if d > MAX_THRESHOLD_KWH:
                bad(f"{key}[{i}]", f"{v!r} kWh is beyond what the calculation supports (at most {MAX_THRESHOLD_KWH:,} kWh)")
                return None
            if (d * 1000) != (d * 1000).to_integral_value():
                bad(f"{key}[{i}]", f"{v!r} kWh is not a whole number of Wh")
                return None
            out.append(d)
        if any(b <= a for a, b in pairwise(out)):
            bad(key, f"thresholds not increasing: {value!r}")
            return None
        if len(out) + 1 > MAX_TIERS:
            bad(key, f"{len(out) + 1} tiers: at most {MAX_TIERS} are supported")
            return None
        return tuple(out)

    thresholds: tuple[Decimal, ...] | None = None
    by_month: tuple[tuple[Decimal, ...], ...] | None = None
    has_t = "thresholds" in raw_tiers
    has_m = "thresholds_by_month" in raw_tiers
    n_thresholds: int | None = None
    if has_t and has_m:
        bad("tiers", "give either thresholds or thresholds_by_month, not both")
    elif not has_t and not has_m and isinstance(data.get("tiers"), dict):
        bad("tiers.thresholds", "missing (use [] for a single tier)")
    if has_t and not has_m:
        thresholds = threshold_list("tiers.thresholds", raw_tiers["thresholds"])
        if thresholds is not None:
            n_thresholds = len(thresholds)
    if has_m and not has_t:
        tbm = raw_tiers["thresholds_by_month"]
        if cycle == "annual":
            bad("tiers.thresholds_by_month", "seasonal monthly thresholds need cycle = \"monthly\"")
        if not isinstance(tbm, dict) or not tbm:
            bad("tiers.thresholds_by_month", 'must be a table such as { "5-10" = [260, 600], "1-4,11-12" = [200, 400] }')
        else:
            slots: dict[int, tuple[Decimal, ...]] = {}
            owner: dict[int, str] = {}
            lengths: set[int] = set()
            ok = True
            for spec, value in tbm.items():
                key = f'tiers.thresholds_by_month."{spec}"'
                months = _parse_months(spec)
                if months is None:
                    bad(key, f"{spec!r} is not a list of months such as \"5-10\" or \"1-4,11-12\"")
                    ok = False
                    continue
                tl = threshold_list(key, value)
                if tl is None:
                    ok = False
                    continue
                lengths.add(len(tl))
                for m in months:
                    if m in slots:
                        bad(key, f"month {m} overlaps with \"{owner[m]}\"")
                        ok = False
                    else:
                        slots[m] = tl
                        owner[m] = spec
            missing = [m for m in range(1, 13) if m not in slots]
            if missing:
                bad("tiers.thresholds_by_month", f"months missing: {', '.join(map(str, missing))}")
                ok = False
            if len(lengths) > 1:
                bad("tiers.thresholds_by_month", "every season must have the same number of thresholds")
                ok = False
            if ok:
                by_month = tuple(slots[m] for m in range(1, 13))
                n_thresholds = len(by_month[0])
    if n_thresholds is not None:
        for period, plist in raw_prices.items():
            if isinstance(plist, list) and len(plist) != n_thresholds + 1:
                bad(f"prices.{period}", f"{len(plist)} prices for {n_thresholds + 1} tiers")

    bonus: HouseholdBonus | None = None
    hb = raw_tiers.get("household_bonus")
    if hb is not None:
        if not isinstance(hb, dict):
            bad("tiers.household_bonus", "must be a table { min_size = N, kwh_per_month = K }")
        else:
            for k in hb:
                if k not in _BONUS_KEYS:
                    bad(f"tiers.household_bonus.{k}", "unknown key")
            ms = hb.get("min_size")
            kw = _dec(hb.get("kwh_per_month"))
            if not isinstance(ms, int) or isinstance(ms, bool) or ms < 1:
                bad("tiers.household_bonus.min_size", f"{ms!r}: must be a whole number of persons >= 1")
            elif kw is None or kw < 0 or kw > MAX_THRESHOLD_KWH or (kw * 1000) != (kw * 1000).to_integral_value():
                bad("tiers.household_bonus.kwh_per_month", f"{hb.get('kwh_per_month')!r}: must be kWh >= 0 (whole Wh)")
            else:
                bonus = HouseholdBonus(ms, kw)

    hours: list[tuple[str, str]] = []
    raw_hours = data.get("hours", {})
    if not isinstance(raw_hours, dict):
        bad("hours", "must be a table of period or register -> hours text")
    else:
        for k, v in raw_hours.items():
            if k not in priced and k not in REGISTERS:
                bad(f"hours.{k}", f"unknown period {k!r}")
            elif not isinstance(v, str):
                bad(f"hours.{k}", "must be a text such as \"8:00-22:00\"")
            else:
                hours.append((k, v))

    if problems:
        return None, problems
    assert unsplit is not None
    tariff = Tariff(
        code=code,
        name=name,
        name_en=name_en,
        currency=currency,
        source=source,
        valid_from=valid_from,
        periods=tuple(periods),
        unsplit=unsplit,
        prices=tuple(prices),
        cycle=cycle,
        thresholds=thresholds,
        thresholds_by_month=by_month,
        proration=proration,
        household_bonus=bonus,
        hours=tuple(hours),
        notice=notice,
        note=note,
        verified=verified,
        origin=origin,
    )
    return tariff, problems


def _check_text(text: str, origin: str) -> tuple[Tariff | None, list[Problem]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        return None, [Problem(origin, "", f"TOML syntax error: {msg}", _toml_line(exc))]
    return _validate(data, origin)


def parse_tariff(text: str, origin: str = "<string>") -> Tariff:
    """Parse and validate the TOML text of one tariff.

    Parameters
    ----------
    text : str
        TOML document.
    origin : str
        Where it comes from (used in messages).

    Returns
    -------
    Tariff

    Raises
    ------
    TariffFileError
        With every problem in ``problems``; the message names the first one.
    """
    tariff, problems = _check_text(text, origin)
    if problems or tariff is None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        line = f"line {first.line}: " if first.line else ""
        raise TariffFileError(origin, first.key or None, line + first.message + more, problems)
    return tariff


def read_tariff(path: Path | str) -> Tariff:
    """Read and validate a tariff file (see :func:`parse_tariff`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TariffFileError(str(path), None, f"cannot read: {exc}") from exc
    return parse_tariff(text, str(path))


def check_tariff_file(path: Path | str) -> list[Problem]:
    """Every problem in a tariff file, each with its TOML key (empty list if the file is valid)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(str(path), "", f"cannot read: {exc}")]
    return _check_text(text, str(path))[1]


# ---- versions within a year -----------------------------------------------------------------


@dataclass(frozen=True)
class TariffSchedule:
    """The versions of one tariff code in force during one year, each from its first day.

    Build it with :meth:`Catalog.schedule` (or :meth:`TariffSchedule.single` for one version that
    prices the whole year). Every calculation (``tariffs.reference``, ``tariffs.kernels``) takes a
    schedule: each day is priced by the version in force that day (rule 6 of
    :mod:`tariffs.reference`).

    Attributes
    ----------
    code : str
    year : int
    versions : tuple of (int, Tariff)
        ``(first day index, version)``, first days strictly increasing; the first entry's day is 0
        when a version is in force on 1 January, else the day the first version starts.

    References
    ----------
    ``design.md``, "Tariff files": a later file with the same code supersedes from its date.
    """

    code: str
    year: int
    versions: tuple[tuple[int, Tariff], ...]

    @classmethod
    def single(cls, tariff: Tariff, year: int) -> TariffSchedule:
        """One version pricing every day of ``year`` (its ``valid_from`` is not consulted)."""
        return cls(tariff.code, year, ((0, tariff),))

    @property
    def tariffs(self) -> tuple[Tariff, ...]:
        """The versions, oldest first."""
        return tuple(t for _, t in self.versions)

    @property
    def starts(self) -> tuple[int, ...]:
        """First day index of each version."""
        return tuple(d for d, _ in self.versions)

    @property
    def first_day(self) -> int:
        """First day index with a version in force (0 when one is in force on 1 January)."""
        return self.versions[0][0]

    @property
    def latest(self) -> Tariff:
        """The version in force at the end of the year (its name and notice head the bill)."""
        return self.versions[-1][1]

    @property
    def period_names(self) -> tuple[str, ...]:
        """Priced periods of every version, in order of first appearance (the kernels' ``P`` axis)."""
        out: list[str] = []
        for t in self.tariffs:
            out += [p for p in t.period_names if p not in out]
        return tuple(out)

    @property
    def is_time_of_use(self) -> bool:
        """True when any version has more than one priced period."""
        return any(t.is_time_of_use for t in self.tariffs)

    def index_on(self, day: int) -> int:
        """Index in ``versions`` of the version in force on day index ``day`` (-1 before the first)."""
        k = -1
        for i, (start, _) in enumerate(self.versions):
            if start <= day:
                k = i
        return k

    def on(self, day: int) -> Tariff | None:
        """The version in force on day index ``day``, or None before the first version."""
        k = self.index_on(day)
        return self.versions[k][1] if k >= 0 else None

    def start_date(self, k: int) -> date:
        """The date version ``k`` starts in this year (1 January for one in force before)."""
        return date.fromordinal(date(self.year, 1, 1).toordinal() + self.versions[k][0])


def as_schedule(tariff: Tariff | TariffSchedule, year: int) -> TariffSchedule:
    """A schedule as is; a single :class:`Tariff` as the one version of ``year``."""
    if not hasattr(tariff, "versions"):  # a Tariff (of this module, or of a second import of it)
        return TariffSchedule.single(tariff, year)
    schedule: Any = tariff  # a TariffSchedule (or one of a second import of this module, by its shape)
    if schedule.year != year:
        raise ValueError(f"schedule of {schedule.year} used for {year}")
    return schedule


# ---- catalogue ------------------------------------------------------------------------------


def _region_prefix(code: str) -> str:
    """``cn-zhejiang-res-tou`` -> ``cn-zhejiang-res`` (country, region, customer class)."""
    return "-".join(code.split("-")[:3])


class Catalog:
    """Tariffs by code, each code with its versions by ``valid_from``.

    Build it with :func:`load_catalog`.
    """

    def __init__(self, tariffs: Iterable[Tariff] = ()) -> None:
        self._versions: dict[str, dict[date, Tariff]] = {}
        for t in tariffs:
            self.add(t)

    def add(self, tariff: Tariff) -> None:
        """Add a tariff; one with the same code and ``valid_from`` replaces the earlier one."""
        self._versions.setdefault(tariff.code, {})[tariff.valid_from or date.min] = tariff

    def codes(self) -> list[str]:
        """Every tariff code, sorted."""
        return sorted(self._versions)

    def __contains__(self, code: object) -> bool:
        return code in self._versions

    def __len__(self) -> int:
        return len(self._versions)

    def versions(self, code: str) -> list[Tariff]:
        """Every version of ``code``, oldest first."""
        if code not in self._versions:
            raise UnknownTariffError(f"unknown tariff {code!r}")
        return [t for _, t in sorted(self._versions[code].items())]

    def get(self, code: str, on: date | None = None) -> Tariff:
        """The version of ``code`` in force on ``on`` (the latest version if ``on`` is None).

        Raises
        ------
        UnknownTariffError
            If the code is unknown or no version is valid on that date.
        """
        versions = self.versions(code)
        if on is None:
            return versions[-1]
        valid = [t for t in versions if (t.valid_from or date.min) <= on]
        if not valid:
            raise UnknownTariffError(f"tariff {code!r} is not valid on {on.isoformat()}")
        return valid[-1]

    def schedule(self, code: str, year: int) -> TariffSchedule:
        """The versions of ``code`` in force during ``year``: the one in force on 1 January (if any)
        and every one whose ``valid_from`` falls within the year, each from its first day.

        Raises
        ------
        UnknownTariffError
            If the code is unknown or no version is in force on any day of ``year``.
        """
        jan1 = date(year, 1, 1)
        dec31 = date(year, 12, 31)
        out: list[tuple[int, Tariff]] = []
        for t in self.versions(code):
            start = t.valid_from or date.min
            if start > dec31:
                break
            day = max((start - jan1).days, 0) if start > jan1 else 0
            if out and out[-1][0] == day:
                out[-1] = (day, t)  # a later version from the same day (or both before 1 January)
            else:
                out.append((day, t))
        if not out:
            raise UnknownTariffError(f"tariff {code!r} is not valid in {year}")
        return TariffSchedule(code, year, tuple(out))

    def alternatives(self, code: str, on: date | None = None) -> list[Tariff]:
        """Tariffs a household on ``code`` could choose instead: other codes of the same region and
        customer class (same first three parts of the code, e.g. ``cn-zhejiang-res-*``)."""
        if code not in self._versions:
            raise UnknownTariffError(f"unknown tariff {code!r}")
        prefix = _region_prefix(code)
        out = []
        for other in self.codes():
            if other != code and _region_prefix(other) == prefix:
                try:
                    out.append(self.get(other, on))
                except UnknownTariffError:
                    continue
        return out


def load_catalog(extra_dirs: Iterable[Path | str] = ()) -> Catalog:
    """The shipped catalogue (``tariffs/catalog/*.toml``) plus every ``*.toml`` in ``extra_dirs``.

    Files of ``extra_dirs`` are read after the shipped ones: a file with the same code and
    ``valid_from`` as a shipped one replaces it. Within one source (the shipped catalogue, or one
    extra directory or file), two files with the same code and ``valid_from`` are refused: which one
    prices the days would depend on the files' names.

    Raises
    ------
    TariffFileError
        If a file is invalid, an extra directory does not exist, or two files of one source give the
        same code and ``valid_from``.
    """
    catalog = Catalog()
    sources: list[list[Path]] = [sorted(CATALOG_DIR.glob("*.toml"))]
    for d in extra_dirs:
        d = Path(d)
        if d.is_file():
            sources.append([d])
            continue
        if not d.is_dir():
            raise TariffFileError(str(d), None, "tariff directory not found")
        sources.append(sorted(d.glob("*.toml")))
    for paths in sources:
        seen: dict[tuple[str, date], Path] = {}
        for path in paths:
            tariff = read_tariff(path)
            key = (tariff.code, tariff.valid_from or date.min)
            if key in seen:
                since = f"valid_from {tariff.valid_from}" if tariff.valid_from else "no valid_from"
                raise TariffFileError(str(path), "valid_from", f"{tariff.code} with {since} is also in "
                                      f"{seen[key].name}: one version per date (merge or date them apart)")
            seen[key] = path
            catalog.add(tariff)
    return catalog
