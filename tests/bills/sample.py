"""A realistic sample input for ``bills.build_document`` (reusable by other tests and demos).

    from tests.bills.sample import sample_inputs, sample_document
    kwargs = sample_inputs(language="en", labels="all")
    doc = bills.build_document(**kwargs)

The charges are computed here exactly (Decimal) by the design's rules for an annual-tier
time-of-use tariff (tier kWh of a month shared among priced periods in proportion to their kWh, each
month rounded half-up to the fen, the year = sum of the months), so the numbers are consistent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace
from typing import Any

REGISTERS = ("sharp", "peak", "flat", "valley")


@dataclass
class TariffStub:
    code: str = "cn-zhejiang-res-tou"
    name: str = "浙江 居民生活用电 峰谷分时 年阶梯"
    name_en: str = "Zhejiang residential, time-of-use, annual tiers"
    currency: str = "CNY"
    notice: str = "浙江省发展改革委 浙发改价格〔2021〕号 居民阶梯电价通知（示例）"
    source: str = "internal: figures copied from the price table (INTERNAL-SOURCE)"
    note: str = "internal: NOT confirmed (INTERNAL-NOTE)"
    periods: dict[str, str] = field(default_factory=lambda: {
        "sharp": "peak", "peak": "peak", "flat": "peak", "valley": "valley"})
    prices: dict[str, tuple[Decimal, ...]] = field(default_factory=lambda: {
        "peak": (Decimal("0.568"), Decimal("0.618"), Decimal("0.868")),
        "valley": (Decimal("0.288"), Decimal("0.338"), Decimal("0.588")),
    })
    tiers: Any = field(default_factory=lambda: SimpleNamespace(
        cycle="annual", thresholds=(2760, 4800), thresholds_by_month=None, proration="months"))


@dataclass
class CardStub:
    code: str
    title: str
    evidence_text: str
    why: str
    what_to_do: str
    saving_fen: int | None


LABEL_CODES = ("peak_heavy", "valley_smart", "summer_cooling", "winter_heating", "high_baseload",
               "possible_vacancy", "usage_spike", "late_payer", "prompt_payer", "counter_payer",
               "online_payer", "auto_debit")

_CARD_TEXT = {
    "zh": ("用电画像：{code}", "依据：高峰用电占 41%，高于同类家庭的 28%。",
           "高峰电价比低谷高出约一倍，同样的电量放在高峰用更贵。",
           "把洗衣机、热水器、电动车充电预约到 22:00 以后。"),
    "en": ("Profile: {code}", "Peak hours took 41% of your usage, against 28% for similar homes.",
           "Peak electricity costs about twice the off-peak price.",
           "Time the washing machine, water heater and EV charging for after 22:00."),
}

MONTH_KWH = (420.123, 365.5, 301.25, 262.0, 281.75, 425.5, 622.875, 681.0, 452.25, 301.5, 322.0, 412.125)


def _split(wh: int) -> dict[str, int]:
    shares = {"sharp": Decimal("0.06"), "peak": Decimal("0.35"), "flat": Decimal("0.19")}
    out = {r: int(wh * s) for r, s in shares.items()}
    out["valley"] = wh - sum(out.values())
    return out


def compute_bill(month_wh: list[int], tariff: TariffStub, year: int):
    """Exact monthly charges (fen), tier Wh and the days tier 2/3 began (by linear interpolation)."""
    thresholds = [int(t) * 1000 for t in tariff.tiers.thresholds]
    cum = 0
    months = []
    crossings: list[dt.date | None] = [None, None]
    for m, wh in enumerate(month_wh, start=1):
        regs = _split(wh)
        tier = [0, 0, 0]
        lo = cum
        for i in range(3):
            t_lo = 0 if i == 0 else thresholds[i - 1]
            t_hi = thresholds[i] if i < 2 else None
            a = max(lo, t_lo)
            b = cum + wh if t_hi is None else min(cum + wh, t_hi)
            tier[i] = max(0, b - a)
        for k, t in enumerate(thresholds):
            if cum < t <= cum + wh and crossings[k] is None:
                first = dt.date(year, m, 1)
                ndays = ((dt.date(year + (m == 12), m % 12 + 1, 1)) - first).days
                crossings[k] = first + dt.timedelta(days=(t - cum) * ndays // wh)
        charge = Decimal(0)
        for p in tariff.prices:
            p_wh = sum(regs[r] for r in REGISTERS if tariff.periods[r] == p)
            for i in range(3):
                charge += Decimal(tier[i]) * Decimal(p_wh) / Decimal(wh) * tariff.prices[p][i] / 1000
        fen = int((charge * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        months.append({"month": m, "wh": wh, "regs": regs, "tier": tier, "fen": fen})
        cum += wh
    return months, crossings


def sample_inputs(*, language: str = "zh", labels: str | Sequence[str] = "all", year: int = 2024,
                  customer_id: str = "0033012345678", name: str | None = None,
                  address: str | None = None, scale: float = 1.0) -> dict[str, Any]:
    """labels: "all" (every label code, with every feature), "none", or a list of label codes."""
    codes = list(LABEL_CODES) if labels == "all" else [] if labels == "none" else list(labels)
    tariff = TariffStub()
    month_wh = [round(k * 1000 * scale) for k in MONTH_KWH]
    months_calc, crossings = compute_bill(month_wh, tariff, year)
    total_fen = sum(m["fen"] for m in months_calc)
    total_wh = sum(month_wh)

    def kwh(wh: int) -> float:
        return wh / 1000

    bill = {
        "customer_id": customer_id, "year": year, "version": 1, "tariff": tariff.code,
        "kwh_total": kwh(total_wh),
        **{f"kwh_{r}": kwh(sum(m["regs"][r] for m in months_calc)) for r in REGISTERS},
        **{f"kwh_tier{i + 1}": kwh(sum(m["tier"][i] for m in months_calc)) for i in range(3)},
        "charge_total": (Decimal(total_fen) / 100).quantize(Decimal("0.01")),
        "charge_fen": total_fen,
        "labels": codes,
        "estimated_days": 3 if labels == "all" else 0,
    }
    months = [
        {"customer_id": customer_id, "year": year, "version": 1, "month": m["month"],
         "kwh_total": kwh(m["wh"]), **{f"kwh_{r}": kwh(m["regs"][r]) for r in REGISTERS},
         **{f"kwh_tier{i + 1}": kwh(m["tier"][i]) for i in range(3)},
         "charge_total": (Decimal(m["fen"]) / 100).quantize(Decimal("0.01")), "charge_fen": m["fen"]}
        for m in months_calc
    ]
    last_year = [round(w * 0.91) for w in month_wh]
    features = {
        "customer_id": customer_id, "year": year, "wh_year": total_wh, "wh_last_year": sum(last_year),
        "change_pct": None, "month_wh": month_wh, "month_wh_last_year": last_year,
        "month_fen": [m["fen"] for m in months_calc],
        "share_sharp": 0.06, "share_peak": 0.35, "share_flat": 0.19, "share_valley": 0.40,
        "base_load_w": 86.4, "summer_excess_pct": 92.5, "winter_excess_pct": 31.0,
        "longest_low_run_days": 12, "longest_low_run_start": dt.date(year, 2, 3), "spike_days": 2,
        "tier2_date": crossings[0], "tier3_date": crossings[1],
        "avg_price_fen_per_kwh": total_fen * 1000 / total_wh,
        "peer_percentile": 73.0, "peer_group_size": 1284,
        "best_alt_tariff": "cn-zhejiang-res-tier", "best_alt_fen": total_fen - 6120,
        "best_alt_saving_fen": 6120, "shift10_saving_fen": 4385,
        "pay_delay_days_mean": 9.4, "pay_late_count": 2, "pay_channel_main": "wechat",
        "pay_channel_mix": '{"wechat": 0.75, "counter": 0.25}', "estimated_days": bill["estimated_days"],
    }
    if labels != "all":
        features.update(best_alt_saving_fen=-2310, best_alt_fen=total_fen + 2310, spike_days=0,
                        pay_late_count=0, pay_delay_days_mean=3.0, pay_channel_main="bank",
                        pay_channel_mix='{"bank": 1.0}', month_wh_last_year=None, wh_last_year=None)
    texts = _CARD_TEXT["en" if language == "en" else "zh"]
    cards = []
    if codes:
        for i, code in enumerate(codes):
            cards.append(CardStub(code=code, title=texts[0].format(code=code), evidence_text=texts[1],
                                  why=texts[2], what_to_do=texts[3],
                                  saving_fen=None if i % 3 == 2 else 1000 + 537 * i))
    payments = []
    for m in months_calc:
        issued = dt.date(year, m["month"], 8)
        late = labels == "all" and m["month"] in (3, 9)
        ch = "bank" if labels != "all" else ("counter" if m["month"] % 4 == 0 else "wechat")
        paid = issued + dt.timedelta(days=21 if late else 3)
        payments.append({"customer_id": customer_id, "bill_month": f"{year}-{m['month']:02d}",
                         "issued_on": issued, "paid_on": paid, "amount_fen": m["fen"], "channel": ch})
    customer = {
        "customer_id": customer_id, "tariff": tariff.code, "household_size": 3, "region": "zj-hz",
        "name": name if name is not None else ("Li Wei" if language == "en" else "李伟"),
        "address": address if address is not None else "浙江省杭州市西湖区文三路 128 号 3 幢 2 单元 501 室",
        "language": language,
    }
    return {"customer": customer, "bill": bill, "months": months, "features": features, "cards": cards,
            "payments": payments, "tariff": tariff, "language": language}


def sample_document(**kwargs):
    from wattbill import bills
    return bills.build_document(**sample_inputs(**kwargs))
