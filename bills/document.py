"""The bill document model: everything a page shows, already computed and formatted.

``build_document`` takes rows as other packages produce them and duck-types them (attributes or
mapping keys both work), so ``bills`` stays decoupled from ``tariffs``, ``diagnostics`` and
``labels``:

* ``customer``: mapping with ``customer_id`` and optional ``name``, ``address``, ``household_size``.
* ``bill``: a row of bills.parquet: ``customer_id, year, version, tariff, kwh_total, kwh_sharp,
  kwh_peak, kwh_flat, kwh_valley, kwh_tier1..3, charge_total (Decimal yuan)``, optional
  ``charge_fen`` (preferred when present), ``labels``, ``estimated_days``.
* ``months``: rows of bill_months.parquet (``month`` 1..12, the same quantities, ``charge_fen`` or
  ``charge_total``). Missing months count as zero.
* ``features``: a row of ``diagnostics.diagnose`` (docs/interfaces.md, "Features"); every key may be
  missing or None. ``change_pct``, ``*_excess_pct`` and ``peer_percentile`` are in percent (12.5 means
  12.5 %); ``share_*`` are 0..1.
* ``cards``: ``LabelCard``-like objects or mappings with ``code, title, evidence_text, why,
  what_to_do, saving_fen`` (texts final).
* ``payments``: PAYMENT_SCHEMA rows (``bill_month, issued_on, paid_on, amount_fen, channel``).
* ``tariff``: a ``tariffs.Tariff``, a ``tariffs.TariffSchedule`` (the versions in force during the
  year: ``versions`` = (first day index, Tariff) pairs and ``year``; the bill names the latest, lists
  each version's prices with the day it starts) or a mapping. Used, all optional: ``code``, ``name``,
  ``name_en``, ``notice`` (the public notice the tariff follows, printed beside its name; the
  file's ``source`` and ``note`` are internal and never printed), ``periods`` (register -> priced period), ``prices`` (priced period ->
  sequence of Decimal yuan/kWh, one per tier), and the tier rule either as ``tiers`` (object or
  mapping with ``cycle``, ``thresholds``, ``thresholds_by_month``) or flat attributes
  ``cycle`` / ``thresholds``.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from markupsafe import Markup

from wattbill.bills import charts, fmt
from wattbill.bills.i18n import normalise_language, translator
from wattbill.diagnostics import DEFAULT_PARAMS

REGISTERS = ("sharp", "peak", "flat", "valley")


@dataclass(frozen=True)
class Tile:
    label: str
    value: str
    unit: str = ""
    note: str = ""
    tone: str = ""  # "", "up" or "down"


@dataclass(frozen=True)
class Card:
    code: str
    title: str
    evidence: str
    why: str
    what_to_do: str
    saving: str | None  # formatted sentence, or None


@dataclass(frozen=True)
class Fact:
    label: str
    value: str
    note: str = ""


@dataclass
class BillDocument:
    """Everything a bill shows, formatted for ``language``; the template only lays it out."""

    language: str
    lang_tag: str
    year: int
    version: int
    title: str
    customer_id: str
    customer_name: str
    address: str
    tariff_code: str
    tariff_name: str
    charge_fen: int
    charge_text: str
    kwh_total_text: str
    headline: str
    highlights: list[str]
    tiles: list[Tile]
    monthly_svg: Markup
    monthly_alt: str
    monthly_caption: str
    monthly_table: list[list[str]]
    tier_svg: Markup | None
    tier_alt: str
    tier_caption: str
    tier_rows: list[list[str]]
    tou_svg: Markup | None
    tou_alt: str
    tou_caption: str
    tou_rows: list[list[str]]
    comparison: list[str]
    diagnosis: list[Fact]
    cards: list[Card]
    payment_facts: list[Fact]
    payment_rows: list[list[str]]
    payment_advice: str
    quality_text: str
    estimated_days: int
    #: open days without a read (``missing_days`` of the bill, ``pipeline.bill_chunk``): their use is in no
    #: bill, which the statement says on its first page and under data quality
    missing_days: int
    missing_text: str | None
    price_header: list[str]
    price_rows: list[list[str]]
    terms: list[str]
    notice: str  # the public notice the tariff follows (never an internal note or the file's source)
    label_codes: list[str] = field(default_factory=list)
    #: the arguments of ``charts.monthly_bars`` behind ``monthly_svg`` (other layouts, e.g. the web
    #: page, draw the same chart with the month names in it)
    monthly_chart: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- duck typing


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        value = obj.get(name, default)
    else:
        value = getattr(obj, name, default)
    return default if value is None else value


def _wh(value: Any) -> int | None:
    """kWh (float/Decimal/int/str) -> Wh int, exact for values with <= 3 decimals."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:
            return None
        value = repr(value)
    return int((Decimal(str(value)) * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _fen_of(row: Any) -> int | None:
    fen = _get(row, "charge_fen")
    if fen is not None:
        return int(fen)
    return fmt.to_fen(_get(row, "charge_total"))


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


# ----------------------------------------------------------------------------- tariff terms


@dataclass(frozen=True)
class TariffTerms:
    code: str
    name: str
    notice: str
    cycle: str  # "annual" | "monthly" | ""
    thresholds: tuple[Decimal, ...]  # kWh where tier 2, tier 3 begin (annual cycles)
    thresholds_by_month: Mapping[str, Sequence[Any]] | None
    prices: Mapping[str, tuple[Decimal, ...]]
    periods: Mapping[str, str]
    hours: Mapping[str, str] = field(default_factory=dict)
    bonus: tuple[int, Decimal] | None = None  # (min household size, kWh per month)
    # versions in force during the year, oldest first: (first date, terms of that version); empty
    # for a single version
    versions: tuple[tuple[_dt.date, TariffTerms], ...] = ()


def _pairs(value: Any) -> dict[str, Any]:
    """A mapping, or a sequence of (key, value) pairs (the frozen Tariff's shape) -> dict."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return {k: v for k, v in value}


def tariff_terms(tariff: Any, language: str) -> TariffTerms:
    """Read what the bill needs from a Tariff, a TariffSchedule or a mapping, defensively.

    A schedule of several versions gives the terms of its latest version with ``versions`` set (each
    version's terms and the date it starts in the year); a schedule of one version, that version's.
    """
    versions = _get(tariff, "versions")
    year = _get(tariff, "year")
    if versions and year is not None:
        pairs = [(_dt.date(int(year), 1, 1) + _dt.timedelta(days=int(day)), tariff_terms(t, language))
                 for day, t in versions]
        latest = pairs[-1][1]
        if len(pairs) == 1:
            return latest
        return TariffTerms(**{**latest.__dict__, "versions": tuple(pairs)})
    tiers = _get(tariff, "tiers")
    cycle = str(_get(tiers, "cycle") or _get(tariff, "cycle") or "")
    raw_thresholds = _get(tiers, "thresholds") or _get(tariff, "thresholds") or ()
    by_month = _get(tiers, "thresholds_by_month") or _get(tariff, "thresholds_by_month")
    prices = {str(k): tuple(Decimal(str(p)) for p in (v if isinstance(v, Sequence) else [v]) if p is not None)
              for k, v in _pairs(_get(tariff, "prices")).items()}
    periods = {str(k): str(v) for k, v in _pairs(_get(tariff, "periods")).items()}
    hours = {str(k): str(v) for k, v in _pairs(_get(tariff, "hours")).items()}
    hb = _get(tiers, "household_bonus") or _get(tariff, "household_bonus")
    bonus = None
    if hb:
        size, per_month = _get(hb, "min_size"), _get(hb, "kwh_per_month")
        if size is not None and per_month is not None:
            bonus = (int(size), Decimal(str(per_month)))
    name = _get(tariff, "name_en") if language == "en" else None
    return TariffTerms(
        code=str(_get(tariff, "code", "")),
        name=str(name or _get(tariff, "name", "") or _get(tariff, "code", "")),
        notice=str(_get(tariff, "notice", "") or ""),
        cycle=cycle,
        thresholds=tuple(Decimal(str(t)) for t in raw_thresholds if t is not None),
        thresholds_by_month=by_month if by_month else None,
        prices=prices,
        periods=periods,
        hours=hours,
        bonus=bonus,
    )


# ----------------------------------------------------------------------------- builder


def build_document(
    customer: Mapping[str, Any],
    bill: Mapping[str, Any],
    months: Sequence[Mapping[str, Any]],
    features: Mapping[str, Any] | None,
    cards: Iterable[Any],
    payments: Sequence[Mapping[str, Any]],
    tariff: Any,
    language: str | None = None,
) -> BillDocument:
    lang = normalise_language(language or _get(customer, "language"))
    _ = translator(lang)
    f = dict(features or {})
    year = int(_get(bill, "year") or _get(f, "year"))
    terms = tariff_terms(tariff, lang)
    unit_kwh = _("unit.kwh")

    # --- money and energy (bill rows are authoritative; features are for context)
    charge_fen = _fen_of(bill)
    if charge_fen is None:
        raise ValueError("bill has neither charge_fen nor charge_total")
    wh_total = _wh(_get(bill, "kwh_total"))
    if wh_total is None:
        wh_total = int(_get(f, "wh_year", 0))
    wh_last = _get(f, "wh_last_year")
    change = _change_pct(wh_total, wh_last, _get(f, "change_pct"))

    by_month = {int(_get(m, "month")): m for m in months}
    month_rows = [by_month.get(m, {}) for m in range(1, 13)]
    month_wh = [_wh(_get(m, "kwh_total")) or 0 for m in month_rows]
    month_fen = [_fen_of(m) for m in month_rows]
    month_labels = [fmt.month_short(m, lang) for m in range(1, 13)]

    # --- page 1: summary tiles and headline
    tiles = [
        Tile(_("summary.charge"), fmt.yuan(charge_fen), _("unit.yuan")),
        Tile(_("summary.kwh"), fmt.kwh_from_wh(wh_total), unit_kwh),
    ]
    if change is None:
        tiles.append(Tile(_("summary.change"), "–", note=_("change.none")))
    else:
        tone = "up" if change > 0 else "down" if change < 0 else ""
        key = "change.up" if change > 0 else "change.down" if change < 0 else "change.same"
        tiles.append(Tile(_("summary.change"), _(key, pct=fmt.pct(abs(change), 1)),
                          note=_("summary.change_note", kwh=fmt.kwh_from_wh(wh_last)), tone=tone))
    avg_fen_per_kwh = _avg_price(charge_fen, wh_total)
    if avg_fen_per_kwh is not None:
        tiles.append(Tile(_("summary.avg_price"), avg_fen_per_kwh, _("unit.yuan_per_kwh")))

    headline = _headline(_, lang, wh_total, charge_fen, change, f, cards_list := list(cards))

    # --- monthly chart
    reg_wh = {r: [_wh(_get(m, f"kwh_{r}")) for m in month_rows] for r in REGISTERS}
    has_tou = any(v for r in REGISTERS for v in reg_wh[r] if v)
    if has_tou:
        stacks = [(r, _(f"period.{r}"), [(v or 0) / 1000 for v in reg_wh[r]])
                  for r in ("valley", "flat", "peak", "sharp") if any(reg_wh[r])]
    else:
        stacks = [("total", _("chart.total"), [w / 1000 for w in month_wh])]
    ly_raw = _get(f, "month_wh_last_year")
    last_year = [None if v is None else v / 1000 for v in ly_raw] if ly_raw is not None else None
    if last_year is not None and len(last_year) != 12:
        last_year = None
    hi = max(range(12), key=lambda i: month_wh[i])
    # the lowest month among the months used and read on every open day: not a month before opening,
    # nor one whose low figure only says that reads are missing (``missing_days`` of the month)
    read = [i for i in range(12) if month_wh[i] > 0 and not int(_get(month_rows[i], "missing_days", 0) or 0)]
    used = read or [i for i in range(12) if month_wh[i] > 0] or list(range(12))
    lo = min(used, key=lambda i: month_wh[i])
    monthly_caption = _("monthly.caption", high=month_labels[hi], high_kwh=fmt.kwh_from_wh(month_wh[hi]),
                        low=month_labels[lo], low_kwh=fmt.kwh_from_wh(month_wh[lo]), unit=unit_kwh)
    monthly_alt = (_("monthly.chart_title", year=year) + ". " + monthly_caption + " "
                   + _monthly_desc(_, month_labels, month_wh, unit_kwh))
    monthly_chart: dict[str, Any] = dict(
        month_labels=month_labels, stacks=stacks, last_year=last_year,
        last_year_label=_("chart.last_year"), title=_("monthly.chart_title", year=year),
        desc=monthly_alt, unit=unit_kwh,
    )
    monthly_svg = charts.monthly_bars(**monthly_chart)
    monthly_table = [
        ["", *month_labels],
        [_("monthly.row_kwh"), *(fmt.kwh_from_wh(w, 0) for w in month_wh)],
        [_("monthly.row_charge"), *(fmt.yuan(v) for v in month_fen)],
    ]
    if last_year is not None and any(v is not None for v in ly_raw):
        monthly_table.append([_("monthly.row_last_year"),
                              *(fmt.kwh_from_wh(v, 0) if v is not None else "–" for v in ly_raw)])

    # --- tiers
    tier_svg, tier_caption, tier_rows = _tiers(_, lang, year, bill, f, terms, month_wh, month_labels,
                                               month_rows)

    # --- time of use and tariff comparison
    tou_svg, tou_caption, tou_rows = _tou(_, bill, wh_total, has_tou)
    comparison = _comparison(_, lang, f, charge_fen)

    # --- diagnosis, labels, payments, quality, terms
    diagnosis = _diagnosis(_, lang, f, avg_fen_per_kwh_dec=_avg_dec(charge_fen, wh_total))
    card_list = [
        Card(
            code=str(_get(c, "code", "")),
            title=str(_get(c, "title", "")),
            evidence=str(_get(c, "evidence_text", "")),
            why=str(_get(c, "why", "")),
            what_to_do=str(_get(c, "what_to_do", "")),
            saving=(_("cards.saving", amount=fmt.yuan(int(_get(c, "saving_fen"))))
                    if _get(c, "saving_fen") not in (None, 0) else None),
        )
        for c in cards_list
    ]
    payment_facts, payment_rows, payment_advice = _payments(_, lang, payments, f, year)
    est = int(_get(bill, "estimated_days", _get(f, "estimated_days", 0)) or 0)
    missing = int(_get(bill, "missing_days", 0) or 0)
    missing_text = (_("quality.missing", n=missing, days=_missing_days_text(lang, _get(bill, "missing_ranges")))
                    if missing else None)
    quality_text = " ".join(t for t in (
        missing_text, _("quality.some", n=est) if est else None, None if est or missing else _("quality.none"),
    ) if t)
    price_header, price_rows, term_lines = _terms(_, terms, lang)

    name = str(_get(customer, "name", "") or "")
    return BillDocument(
        language=lang,
        lang_tag="en" if lang == "en" else "zh-CN",
        year=year,
        version=int(_get(bill, "version", 1)),
        title=_("doc.title", year=year),
        customer_id=str(_get(customer, "customer_id", _get(bill, "customer_id", ""))),
        customer_name=name,
        address=str(_get(customer, "address", "") or ""),
        tariff_code=terms.code or str(_get(bill, "tariff", "")),
        tariff_name=terms.name or str(_get(bill, "tariff", "")),
        charge_fen=charge_fen,
        charge_text=fmt.yuan(charge_fen),
        kwh_total_text=fmt.kwh_from_wh(wh_total),
        headline=headline,
        highlights=_highlights(_, lang, f, card_list, cards_list),
        tiles=tiles,
        monthly_svg=monthly_svg,
        monthly_alt=monthly_alt,
        monthly_caption=monthly_caption,
        monthly_table=monthly_table,
        tier_svg=tier_svg,
        tier_alt=_("tiers.chart_title") + ". " + tier_caption,
        tier_caption=tier_caption,
        tier_rows=tier_rows,
        tou_svg=tou_svg,
        tou_alt=_("tou.chart_title") + ". " + tou_caption + " "
        + "; ".join(f"{r[0]} {r[2]}" for r in tou_rows),
        tou_caption=tou_caption,
        tou_rows=tou_rows,
        comparison=comparison,
        diagnosis=diagnosis,
        cards=card_list,
        payment_facts=payment_facts,
        payment_rows=payment_rows,
        payment_advice=payment_advice,
        quality_text=quality_text,
        estimated_days=est,
        missing_days=missing,
        missing_text=missing_text,
        price_header=price_header,
        price_rows=price_rows,
        terms=term_lines,
        notice=terms.notice,
        label_codes=[c.code for c in card_list],
        monthly_chart=monthly_chart,
    )


# ----------------------------------------------------------------------------- pieces


def _missing_days_text(lang: str, ranges: Any) -> str:
    """The bill's ``missing_ranges`` (JSON ``[[first, last], ...]``) as the statement says them."""
    try:
        runs = json.loads(ranges) if isinstance(ranges, str) else list(ranges or [])
    except ValueError:
        runs = []
    return fmt.day_runs(runs, "en" if lang == "en" else "zh")


def _change_pct(wh: int, wh_last: Any, change_pct: Any) -> Decimal | None:
    if wh_last not in (None, 0):
        return (Decimal(wh) - Decimal(int(wh_last))) * 100 / Decimal(int(wh_last))
    if change_pct is not None:
        return _decimal(change_pct)
    return None


def _avg_dec(charge_fen: int, wh: int) -> Decimal | None:
    if not wh:
        return None
    return Decimal(charge_fen) * 1000 / Decimal(wh)  # fen per kWh


def _avg_price(charge_fen: int, wh: int) -> str | None:
    avg = _avg_dec(charge_fen, wh)
    if avg is None:
        return None
    return f"{(avg / 100).quantize(Decimal('0.001'), rounding=ROUND_HALF_UP)}"


def _headline(_, lang, wh_total, charge_fen, change, f, cards) -> str:
    kwh, amount = fmt.kwh_from_wh(wh_total), fmt.yuan(charge_fen)
    if change is None:
        return _("headline.first", kwh=kwh, amount=amount)
    if abs(change) < Decimal("0.5"):
        return _("headline.same", kwh=kwh, amount=amount)
    key = "headline.up" if change > 0 else "headline.down"
    return _(key, kwh=kwh, amount=amount, pct=fmt.pct(abs(change), 1))


def _highlights(_, lang, f, cards: list[Card], raw_cards: list[Any]) -> list[str]:
    """Up to three things worth doing, biggest saving first (page 1's summary of pages 2+)."""
    items: list[tuple[int, str]] = []
    alt, saving = _get(f, "best_alt_tariff"), _get(f, "best_alt_saving_fen")
    if alt and saving is not None and int(saving) > 0:
        alt_name = _get(f, "best_alt_tariff_name") or _tariff_name(str(alt), lang)
        items.append((int(saving), _("highlights.tariff", alt=alt_name, amount=fmt.yuan(int(saving)))))
    shift = _get(f, "shift10_saving_fen")
    if shift is not None and int(shift) > 0:
        items.append((int(shift), _("highlights.shift10", amount=fmt.yuan(int(shift)))))
    for card, raw in zip(cards, raw_cards, strict=True):
        fen = _get(raw, "saving_fen")
        if fen:
            items.append((int(fen), _("highlights.card", title=card.title, amount=fmt.yuan(int(fen)))))
    items.sort(key=lambda t: -t[0])
    out = [text for _fen, text in items[:3]]
    for card in cards:  # labels without a saving still say something about the household
        if len(out) >= 3:
            break
        if not _get(next(r for r in raw_cards if str(_get(r, "code", "")) == card.code), "saving_fen"):
            out.append(card.title)
    return out


def _monthly_desc(_, labels, month_wh, unit) -> str:
    return _("monthly.desc", values=", ".join(f"{labels[i]} {fmt.kwh_from_wh(month_wh[i], 0)}"
                                               for i in range(12)), unit=unit)


def _month_start_days(year: int) -> list[int]:
    jan1 = _dt.date(year, 1, 1)
    return [(_dt.date(year, m, 1) - jan1).days for m in range(1, 13)]


def _tiers(_, lang, year, bill, f, terms: TariffTerms, month_wh, month_labels, month_rows=()):
    tier_wh = [_wh(_get(bill, f"kwh_tier{i}")) or 0 for i in (1, 2, 3)]
    n_tiers = max((len(v) for v in terms.prices.values()), default=1)
    if terms.thresholds:
        n_tiers = max(n_tiers, len(terms.thresholds) + 1)
    n_tiers = max(n_tiers, max((i + 1 for i in range(3) if tier_wh[i]), default=1))
    annual = terms.cycle != "monthly" and bool(terms.thresholds) and not terms.thresholds_by_month
    # effective thresholds: where a tier was reached, the bill's own tier kWh give the (prorated,
    # bonus-raised) threshold exactly; otherwise the nominal one from the tariff.
    eff: list[Decimal] = list(terms.thresholds[:2])
    # with versions of other thresholds during the year the tier kWh are not one threshold's: nominal
    same_thresholds = all(t.thresholds == terms.thresholds for _d, t in terms.versions)
    if annual and same_thresholds:
        if tier_wh[1] or tier_wh[2]:
            eff[0] = Decimal(tier_wh[0]) / 1000
        if tier_wh[2] and len(eff) > 1:
            eff[1] = Decimal(tier_wh[0] + tier_wh[1]) / 1000
    dates = [fmt.as_date(_get(f, "tier2_date")), fmt.as_date(_get(f, "tier3_date"))]
    rows = []
    for i in range(n_tiers if n_tiers > 1 else 1):
        if annual and eff:
            lo = eff[i - 1] if i >= 1 and i - 1 < len(eff) else Decimal(0)
            hi = eff[i] if i < len(eff) else None
            rng = (_("tiers.range", lo=fmt.kwh(lo, 0), hi=fmt.kwh(hi, 0)) if hi is not None
                   else _("tiers.range_open", lo=fmt.kwh(lo, 0)))
        elif terms.cycle == "monthly" or terms.thresholds_by_month:
            rng = _("tiers.monthly")
        else:
            rng = _("tiers.single")
        if i > 0 and not annual and month_rows:  # monthly cycles: the months that reached the tier
            months_in = [month_labels[m] for m, row in enumerate(month_rows)
                         if i < 3 and (_wh(_get(row, f"kwh_tier{i + 1}")) or 0) > 0]
            reached = _("list.sep").join(months_in) if months_in else _("tiers.not_reached")
        else:
            reached = ("" if i == 0 else
                       fmt.date(dates[i - 1], lang) if i - 1 < 2 and dates[i - 1] else
                       (_("tiers.reached") if i < 3 and tier_wh[i] else _("tiers.not_reached")))
        rows.append([_(f"tiers.name{i + 1}"), rng, fmt.kwh_from_wh(tier_wh[i] if i < 3 else 0), reached])
    if n_tiers <= 1:
        return None, _("tiers.none"), []
    if not annual:
        caption = _("tiers.caption_monthly", t2=fmt.kwh_from_wh(tier_wh[1]), t3=fmt.kwh_from_wh(tier_wh[2]))
        return None, caption, rows
    cumulative = [0.0]
    for w in month_wh:
        cumulative.append(cumulative[-1] + w / 1000)
    jan1 = _dt.date(year, 1, 1)
    crossings = []
    for i, d in enumerate(dates[: len(eff)]):
        crossings.append(((d - jan1).days, fmt.date(d, lang)) if d else None)
        if d is None and tier_wh[i + 1]:
            crossings[-1] = None
    t_labels = [_("tiers.threshold", n=i + 2, kwh=fmt.kwh(t, 0)) for i, t in enumerate(eff)]
    if dates[0]:
        caption = _("tiers.caption_crossed", date=fmt.date(dates[0], lang), kwh=fmt.kwh(eff[0], 0))
    elif tier_wh[1] or tier_wh[2]:
        caption = _("tiers.caption_reached", kwh=fmt.kwh(eff[0], 0))
    else:
        caption = _("tiers.caption_below", kwh=fmt.kwh(eff[0], 0),
                    left=fmt.kwh(max(eff[0] - Decimal(sum(month_wh)) / 1000, Decimal(0)), 0))
    days = 366 if calendar.isleap(year) else 365
    svg = charts.tier_progress(
        cumulative=cumulative, thresholds=[float(t) for t in eff], threshold_labels=t_labels,
        crossings=crossings, month_labels=month_labels, title=_("tiers.chart_title"),
        desc=caption, unit=_("unit.kwh"), days_in_year=days, month_start_days=_month_start_days(year),
    )
    return svg, caption, rows


def _tou(_, bill, wh_total, has_tou):
    if not has_tou:
        return None, _("tou.none"), []
    wh = {r: _wh(_get(bill, f"kwh_{r}")) or 0 for r in REGISTERS}
    total = sum(wh.values()) or 1
    rows = [[_(f"period.{r}"), fmt.kwh_from_wh(wh[r]), fmt.share(Decimal(wh[r]) / total)]
            for r in REGISTERS if wh[r]]
    order = ("sharp", "peak", "flat", "valley")
    segments = [(r, _(f"period.{r}"), wh[r] / total) for r in order if wh[r]]
    peakish = wh["sharp"] + wh["peak"]
    caption = _("tou.caption", peak=fmt.share(Decimal(peakish) / total), valley=fmt.share(Decimal(wh["valley"]) / total))
    desc = caption + " " + "; ".join(f"{r[0]} {r[2]}" for r in rows)
    svg = charts.share_bar(segments=segments, title=_("tou.chart_title"), desc=desc)
    return svg, caption, rows


@functools.cache
def _catalog() -> Any:
    try:  # the shipped catalogue, for the names of alternative tariffs (codes otherwise)
        from wattbill.tariffs import load_catalog

        return load_catalog()
    except Exception:
        return None


def _tariff_name(code: str, lang: str) -> str:
    cat = _catalog()
    try:
        t = cat.get(code)
    except Exception:
        return code
    return str((t.name_en if lang == "en" else t.name) or code)


def _comparison(_, lang, f, charge_fen) -> list[str]:
    out = [_("compare.current", amount=fmt.yuan(charge_fen))]
    alt = _get(f, "best_alt_tariff")
    saving = _get(f, "best_alt_saving_fen")
    alt_fen = _get(f, "best_alt_fen")
    alt_name = _get(f, "best_alt_tariff_name") or (_tariff_name(str(alt), lang) if alt else alt)
    if alt and saving is not None and int(saving) > 0:
        out.append(_("compare.better", alt=alt_name, amount=fmt.yuan(int(saving)),
                     alt_amount=fmt.yuan(alt_fen) if alt_fen is not None else "–"))
    elif alt and alt_fen is not None:
        out.append(_("compare.best_already", alt=alt_name, alt_amount=fmt.yuan(int(alt_fen))))
    else:
        out.append(_("compare.no_alternative"))
    shift = _get(f, "shift10_saving_fen")
    if shift is not None and int(shift) > 0:
        out.append(_("compare.shift10", amount=fmt.yuan(int(shift))))
    return out


def _diagnosis(_, lang, f, avg_fen_per_kwh_dec: Decimal | None) -> list[Fact]:
    out: list[Fact] = []
    base = _get(f, "base_load_w")
    base_d = _decimal(base)
    if base_d is not None:
        year_kwh = base_d * Decimal("8.76")
        note = _("diag.base_note", kwh=fmt.kwh(year_kwh, 0))
        if avg_fen_per_kwh_dec is not None:
            cost_fen = int((year_kwh * avg_fen_per_kwh_dec).quantize(Decimal(1), rounding=ROUND_HALF_UP))
            note = _("diag.base_note_cost", kwh=fmt.kwh(year_kwh, 0), amount=fmt.yuan(cost_fen))
        out.append(Fact(_("diag.base"), _("diag.base_value", w=fmt.kwh(base_d, 0)), note))
    for season in ("summer", "winter"):
        d = _decimal(_get(f, f"{season}_excess_pct"))
        if d is not None:
            key = f"diag.{season}_more" if d > 0 else f"diag.{season}_less"
            out.append(Fact(_(f"diag.{season}"), fmt.pct(abs(d), 0), _(key)))
    p = _get(f, "peer_percentile")
    if p is not None:
        n = _get(f, "peer_group_size")
        note = _("diag.peer_note", n=int(n)) if n else ""
        out.append(Fact(_("diag.peer"), _("diag.peer_value", pct=fmt.pct(p, 0)), note))
    run = _get(f, "longest_low_run_days")
    if run is not None:
        start = _get(f, "longest_low_run_start")
        note = _("diag.low_run_note", date=fmt.date(start, lang)) if start and int(run) > 0 else ""
        out.append(Fact(_("diag.low_run"), _("diag.days", n=int(run)), note))
    spikes = _get(f, "spike_days")
    if spikes is not None:
        out.append(Fact(_("diag.spikes"), _("diag.days", n=int(spikes)),
                        _("diag.spikes_note") if int(spikes) else _("diag.spikes_none")))
    return out


def _payment_status(payments, year: int):
    """The year's payments with delay and lateness by the diagnostics' rule (``payment_status``)."""
    import polars as pl

    from wattbill.diagnostics import payment_status

    frame = pl.DataFrame(
        [{"bill_month": str(_get(p, "bill_month", "")), "issued_on": fmt.as_date(_get(p, "issued_on")),
          "paid_on": fmt.as_date(_get(p, "paid_on")), "amount_fen": _get(p, "amount_fen"),
          "channel": _get(p, "channel")} for p in payments],
        schema={"bill_month": pl.Utf8, "issued_on": pl.Date, "paid_on": pl.Date, "amount_fen": pl.Int64,
                "channel": pl.Utf8},
    )
    return payment_status(frame, year)


def _payments(_, lang, payments, f, year: int):
    """Payment facts, table rows and advice. Every count is the diagnostics' (``pay_*`` features);
    the rows and the late months come from ``diagnostics.payment_status``, the same rule per bill."""
    late_after = DEFAULT_PARAMS.late_after_days
    status = _payment_status(payments, year)
    rows = []
    for p in status.iter_rows(named=True):
        issued, paid, d = p["issued_on"], p["paid_on"], p["delay_days"]
        delay_text = _("diag.days", n=d) if d is not None else (_("pay.unpaid") if paid is None else "–")
        rows.append([p["bill_month"], fmt.yuan(p["amount_fen"]), fmt.date(issued, lang),
                     fmt.date(paid, lang) if paid else _("pay.unpaid"), _channel(_, p["channel"]), delay_text])
    late_months = [_bill_month_label(m, lang) for m in status.filter(status["late"].fill_null(False))["bill_month"]]
    paid_rows = status.filter(status["paid_on"].is_not_null())
    late_count = _get(f, "pay_late_count")
    if late_count is None:
        late_count = int(status["late"].fill_null(False).sum())
    unpaid = _get(f, "pay_unpaid_count")
    if unpaid is None:
        unpaid = int(status["paid_on"].is_null().sum())
    mean = _get(f, "pay_delay_days_mean")
    if mean is None and status["delay_days"].drop_nulls().len():
        mean = status["delay_days"].drop_nulls().mean()
    channels: dict[str, int] = {}
    for ch in paid_rows["channel"]:  # the features count the channels of paid bills only
        channels[ch] = channels.get(ch, 0) + 1
    main = _get(f, "pay_channel_main") or (max(channels, key=lambda c: channels[c]) if channels else None)
    facts = []
    if main:
        facts.append(Fact(_("pay.channel"), _channel(_, str(main)), _mix(_, f, channels)))
    if mean is not None:
        facts.append(Fact(_("pay.delay"), _("pay.delay_value", n=fmt.kwh(_decimal(mean), 1))))
    facts.append(Fact(_("pay.late"), _("pay.late_value", n=int(late_count), days=late_after),
                      _("pay.late_months", months=_("list.sep").join(late_months)) if late_months else ""))
    if not payments and mean is None:
        advice = _("pay.advice_none")
    elif unpaid:
        advice = _("pay.advice_unpaid", n=int(unpaid))
    elif int(late_count) > 0 or (mean is not None and float(mean) > late_after):
        advice = _("pay.advice_late")
    elif main == "counter":
        advice = _("pay.advice_counter")
    elif main == "bank":
        advice = _("pay.advice_auto")
    else:
        advice = _("pay.advice_prompt")
    return facts, rows, advice


def _bill_month_label(bill_month: str, lang: str) -> str:
    try:
        return fmt.month_short(int(bill_month[5:7]), lang)
    except ValueError:
        return bill_month


def _channel(_, ch: str) -> str:
    key = f"channel.{ch}"
    try:
        return _(key)
    except KeyError:
        return ch


def _mix(_, f, channels: dict[str, int]) -> str:
    raw = _get(f, "pay_channel_mix")
    mix: dict[str, float] = {}
    if raw:
        try:
            mix = {str(k): float(v) for k, v in (json.loads(raw) if isinstance(raw, str) else raw).items()}
        except (ValueError, TypeError, AttributeError):
            mix = {}
    mix = {k: v for k, v in mix.items() if round(100 * v) > 0}
    if not mix and channels:
        n = sum(channels.values())
        mix = {k: v / n for k, v in channels.items()}
    if len(mix) <= 1:
        return ""
    return "; ".join(f"{_channel(_, k)} {round(100 * v)}%" for k, v in sorted(mix.items(), key=lambda kv: -kv[1]))


def _terms(_, terms: TariffTerms, lang: str = "zh"):
    versions: tuple[tuple[_dt.date | None, TariffTerms], ...] = terms.versions or ((None, terms),)
    n = max((len(v) for _d, t in versions for v in t.prices.values()), default=0)
    header = [_("terms.period"), *(_(f"tiers.name{i + 1}") for i in range(n))] if n else []
    rows = []
    for k, (start, t) in enumerate(versions):
        span = ""
        if start is not None:  # a price change within the year: each version's rows with its days
            following = versions[k + 1][0] if k + 1 < len(versions) else None
            end = following - _dt.timedelta(days=1) if following is not None else None
            span = " " + (_("terms.span", first=fmt.date(start, lang), last=fmt.date(end, lang)) if end
                          else _("terms.span_open", first=fmt.date(start, lang)))
        for period, values in t.prices.items():
            rows.append([_priced_period(_, period) + span,
                         *(f"{v:.4f}".rstrip("0").rstrip(".") if v is not None else "–" for v in values)])
    lines = []
    if terms.versions:
        lines.append(_("terms.change", dates=_("list.sep").join(fmt.date(d, lang) for d, _t in terms.versions[1:])))
        for j, (d, t) in enumerate(terms.versions[:-1]):
            if (t.thresholds, t.thresholds_by_month, t.cycle) != (terms.thresholds, terms.thresholds_by_month,
                                                                   terms.cycle):
                key = "terms.thresholds_monthly" if t.cycle == "monthly" else "terms.thresholds_annual"
                text = (_(key, values=" / ".join(fmt.kwh(x, 0) for x in t.thresholds)) if t.thresholds
                        and not t.thresholds_by_month else
                        _("terms.thresholds_by_month", values=_by_month_text(_, t.thresholds_by_month))
                        if t.thresholds_by_month else "")
                if text:
                    last = terms.versions[j + 1][0] - _dt.timedelta(days=1)
                    lines.append(_("terms.span", first=fmt.date(d, lang), last=fmt.date(last, lang)) + " " + text)
    if terms.periods:
        groups: dict[str, list[str]] = {}
        for reg in REGISTERS:
            if reg in terms.periods:
                groups.setdefault(terms.periods[reg], []).append(_(f"period.{reg}"))
        lines.append(_("terms.mapping", mapping="; ".join(
            f"{_priced_period(_, p)} ← {_('list.sep').join(regs)}" for p, regs in groups.items())))
    if terms.thresholds and not terms.thresholds_by_month:
        key = "terms.thresholds_monthly" if terms.cycle == "monthly" else "terms.thresholds_annual"
        lines.append(_(key, values=" / ".join(fmt.kwh(t, 0) for t in terms.thresholds)))
    elif terms.thresholds_by_month:
        lines.append(_("terms.thresholds_by_month", values=_by_month_text(_, terms.thresholds_by_month)))
    if terms.bonus:
        lines.append(_("terms.bonus", size=terms.bonus[0], kwh=fmt.kwh(terms.bonus[1], 0)))
    if terms.hours:
        lines.append(_("terms.hours", hours="; ".join(
            f"{_priced_period(_, k) if k in terms.prices else _('period.' + k) if k in REGISTERS else k} {v}"
            for k, v in terms.hours.items())))
    lines.append(_("terms.rounding"))
    return header, rows, lines


def _by_month_text(_, by_month: Any) -> str:
    """Seasonal monthly thresholds: a mapping {"5-10": [..]} as in the file, or 12 tuples (Jan..Dec)."""
    if isinstance(by_month, Mapping):
        items = [(str(k), v) for k, v in by_month.items()]
    else:
        rows = [tuple(v) for v in by_month]
        groups: dict[tuple, list[int]] = {}
        for m, v in enumerate(rows, 1):
            groups.setdefault(v, []).append(m)
        items = []
        for v, months in groups.items():
            spans: list[str] = []
            start: int | None = months[0]
            for a, b in zip(months, [*months[1:], None], strict=True):
                if b != a + 1:
                    spans.append(f"{start}" if start == a else f"{start}-{a}")
                    start = b
            items.append((",".join(spans), v))
    return "; ".join(f"{_('terms.months', months=k)}: {' / '.join(fmt.kwh(_decimal(t), 0) for t in v)}"
                     for k, v in items)


def _priced_period(_, period: str) -> str:
    try:
        return _(f"priced.{period}")
    except KeyError:
        return period
