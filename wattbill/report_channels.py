"""``wattbill report channels``: the service-channel portfolio report (HTML, PDF, Parquet, CRM lists).

The figures are computed by ``diagnostics.channels.channel_report`` (pure); this module reads the
store, assigns the channel labels (``labels``, the same rules as the bill run), draws the charts
(SVG, colours of ``bills.palette``), writes the tables behind each chart as Parquet beside it, and
renders the report in Chinese and English with jinja2 and WeasyPrint (``bills.Renderer``: its fonts
and its fetcher, which refuses anything that is not a package asset).

Output (``DIR``)::

    channels-<year>[-<region>].zh.html / .en.html / .zh.pdf / .en.pdf
    tables/<table>.parquet          one per chart (``ChannelReport.tables``)
    charts/<table>.svg              the charts
    campaign.parquet, campaign.csv  the households to guide, for the CRM (segment, suggested channel,
                                    the message in zh and en, contacts moved, handling cost saved)
    figures.json                    the headline figures and the settings used
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import polars as pl
from markupsafe import Markup, escape

from wattbill import formats
from wattbill.diagnostics.channels import (
    CHANNEL_FEATURES,
    MERGED,
    OTHER_REGIONS,
    ChannelReport,
    ReportParams,
    channel_report,
    household_features,
)
from wattbill.errors import WattbillError

TEMPLATE = Path(__file__).parent / "templates" / "channels.html.j2"

#: chart colours per channel (from ``bills.palette`` where one fits; all pass 3:1 against white)
CHANNEL_COLOURS = {
    "app": "#0b5d57", "wechat": "#4f7f2a", "alipay": "#1e3a8a", "social": "#6b21a8", "robot": "#0e7490",
    "phone": "#d9661f", "hall": "#7f1d1d", "other": "#4b5563", MERGED: "#6b7280",
}
_RANK = {c: i for i, c in enumerate(("app", "wechat", "alipay", "social", "robot", "phone", "hall", "other",
                                      MERGED))}
STAGE_COLOURS = {"self_service": "#0b5d57", "robot": "#0e7490", "phone": "#d9661f", "person": "#7f1d1d",
                 "other": "#4b5563", MERGED: "#6b7280"}

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "服务渠道分析报告", "year": "年度", "region": "区域", "all_regions": "全部区域",
        "households": "户数", "contacts": "联系次数", "contacts_last_year": "上年联系次数",
        "online_share": "线上占比", "online_share_last_year": "上年线上占比",
        "campaign_households": "待引导户数", "contacts_moved": "可转移联系次数", "cost_saved": "可节省处理成本（元）",
        "mix_month": "各月渠道构成", "mix_trend": "各区域渠道构成及同比", "intent_channel": "诉求类型 × 渠道",
        "funnel": "服务漏斗：各环节解决的诉求", "complaints": "投诉的首个接触环节", "payment_mix": "缴费渠道与缴费时长",
        "campaign_summary": "引导对象（CRM 名单）", "labels_by_region": "各区域标签", "quality_by_region": "各区域数据质量",
        "this_year": "本年", "last_year": "上年", "share": "占比", "change_pp": "变化（百分点）",
        "resolved": "已解决", "escalated": "转接", "resolved_share": "解决率", "escalated_share": "转接率",
        "share_of_needs": "占全部诉求", "complaints_n": "投诉次数", "payments": "缴费笔数",
        "delay_days_mean": "平均缴费天数", "late_share": "逾期占比", "segment": "客群", "code": "标签",
        "suggested_channel": "建议渠道", "message": "话术", "quarantined": "隔离行数",
        "missing_handle_share": "缺处理时长", "missing_satisfaction_share": "缺满意度", "other_channel_share": "其他渠道",
        "channel": "渠道", "intent": "诉求", "stage": "环节", "month": "月份", "cost_note":
        "每次联系的处理成本（元）：", "merge_note": "为保护客户隐私，每个数字至少涉及 {k} 户（最小分组 {k} 户）：不足的区域合并为一个“其他地区”组（{regions}），"
                      "各表各图及两个年度均按同一方式合并；其余不足 {k} 户的分组合并为“合并”。",
        "tables_note": "每张图背后的数据表以 Parquet 文件保存在 tables/ 目录。",
        "campaign_note": "完整名单（户号、客群、建议渠道、话术）见 campaign.parquet / campaign.csv。",
        "merged": "合并", "other regions": "其他地区", "none": "无", "unknown": "未知户号",
        "app": "App", "wechat": "微信", "alipay": "支付宝", "social": "社交媒体", "robot": "智能客服",
        "phone": "95598 电话", "hall": "营业厅", "other": "其他", "bank": "银行代扣", "counter": "柜台",
        "self_service": "自助", "person": "人工（营业厅）",
        "bill_query": "查账单", "payment": "缴费", "outage": "停电", "repair": "报修", "application": "业务办理",
        "complaint": "投诉", "consultation": "咨询",
        "channel_assisted_simple": "电话/营业厅办简单业务", "channel_hall_only": "只去营业厅",
        "channel_fully_online": "线上办理（推荐电子账单）",
    },
    "en": {
        "title": "Service-channel report", "year": "Year", "region": "Region", "all_regions": "all regions",
        "households": "Households", "contacts": "Contacts", "contacts_last_year": "Contacts last year",
        "online_share": "Online share", "online_share_last_year": "Online share last year",
        "campaign_households": "Households to guide", "contacts_moved": "Contacts that can move",
        "cost_saved": "Handling cost saved (yuan)",
        "mix_month": "Channel mix by month", "mix_trend": "Channel mix by region, against last year",
        "intent_channel": "Need x channel", "funnel": "The funnel: needs resolved at each stage",
        "complaints": "Where complaints enter", "payment_mix": "Payment channels and days to pay",
        "campaign_summary": "Households to guide (CRM lists)", "labels_by_region": "Labels by region",
        "quality_by_region": "Data quality by region",
        "this_year": "this year", "last_year": "last year", "share": "Share", "change_pp": "Change (points)",
        "resolved": "Resolved", "escalated": "Escalated", "resolved_share": "Resolved there",
        "escalated_share": "Escalated", "share_of_needs": "Of all needs", "complaints_n": "Complaints",
        "payments": "Payments", "delay_days_mean": "Mean days to pay", "late_share": "Late",
        "segment": "Segment", "code": "Label", "suggested_channel": "Suggested channel", "message": "Message",
        "quarantined": "Rows quarantined", "missing_handle_share": "No handling time",
        "missing_satisfaction_share": "No satisfaction", "other_channel_share": "Other channel",
        "channel": "Channel", "intent": "Need", "stage": "Stage", "month": "Month",
        "cost_note": "Handling cost per contact (yuan): ",
        "merge_note": "To protect customers, every figure rests on at least {k} households (minimum group size "
                      "{k}): smaller regions are merged into one \u201cother regions\u201d group ({regions}), the same "
                      "way in every table and chart and in both years; other groups of fewer than {k} households "
                      "are \u201cmerged\u201d.",
        "tables_note": "The table behind each chart is a Parquet file in tables/.",
        "campaign_note": "The full lists (account, segment, suggested channel, message) are in campaign.parquet "
                         "and campaign.csv.",
        "merged": "merged", "other regions": "other regions", "none": "none", "unknown": "unknown accounts",
        "app": "App", "wechat": "WeChat", "alipay": "Alipay", "social": "Social media", "robot": "Robot",
        "phone": "95598 phone", "hall": "Service hall", "other": "Other", "bank": "Auto-debit", "counter": "Counter",
        "self_service": "Self-service", "person": "Person (hall)",
        "bill_query": "Bill query", "payment": "Payment", "outage": "Outage", "repair": "Repair",
        "application": "Application", "complaint": "Complaint", "consultation": "Consultation",
        "channel_assisted_simple": "Phones or visits for app tasks", "channel_hall_only": "Service hall only",
        "channel_fully_online": "Fully online (offer the e-bill)",
    },
}


def pct(x: Any, digits: int = 1) -> str:
    """A share 0..1 as a percentage with ``digits`` decimals ("62.3%"); "–" when missing or NaN
    (``wattbill.formats.share``)."""
    return formats.share(x, digits)


def count(x: Any) -> str:
    """A count with thousands separators; "–" when missing (``wattbill.formats.number``)."""
    return formats.number(x, 0, grouping=True)


def yuan(fen: Any) -> str:
    """Integer fen as yuan with two decimals, exact (no float)."""
    if fen is None:
        return "–"
    from wattbill.labels import format_yuan

    return format_yuan(int(fen))


# --- charts (SVG) --------------------------------------------------------------------------------


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" font-family="sans-serif" font-size="11"><title>{escape(title)}</title>'
        + "".join(body) + "</svg>")


def stacked_rows(rows: Sequence[tuple[str, Sequence[tuple[str, float]]]], colours: dict[str, str],
                 names: dict[str, str], title: str) -> Markup:
    """One 100 % bar per row: ``rows`` = (label, [(series, value)]); a legend of every series below."""
    label_w, width, bar_h, gap = 150, 640, 16, 6
    series = []
    for _, parts in rows:
        for s, _v in parts:
            if s not in series:
                series.append(s)
    legend_rows = (len(series) + 4) // 5
    height = 8 + len(rows) * (bar_h + gap) + legend_rows * 18 + 8
    body = []
    y = 8
    for label, parts in rows:
        total = sum(max(v, 0) for _, v in parts) or 1
        body.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" fill="#1f2937">{escape(label)}</text>')
        x = float(label_w)
        for s, v in parts:
            w = (width - label_w - 10) * max(v, 0) / total
            if w <= 0:
                continue
            body.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                        f'fill="{colours.get(s, "#6b7280")}" stroke="#ffffff" stroke-width="0.5"/>')
            if w > 34:
                body.append(f'<text x="{x + w / 2:.1f}" y="{y + 12}" text-anchor="middle" fill="#ffffff">'
                            f'{100 * v / total:.0f}%</text>')
            x += w
        y += bar_h + gap
    for i, s in enumerate(series):
        lx, ly = 10 + (i % 5) * 126, y + 6 + (i // 5) * 18
        body.append(f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{colours.get(s, "#6b7280")}"/>')
        body.append(f'<text x="{lx + 14}" y="{ly + 9}" fill="#1f2937">{escape(names.get(s, s))}</text>')
    return _svg(width, height, title, body)


def bars(rows: Sequence[tuple[str, float, str, str]], title: str) -> Markup:
    """Horizontal bars: ``rows`` = (label, value >= 0, text shown after the bar, colour)."""
    label_w, width, bar_h, gap = 150, 640, 16, 6
    top = max([r[1] for r in rows] + [0]) or 1
    height = 8 + len(rows) * (bar_h + gap) + 4
    body = []
    y = 8
    for label, value, text, colour in rows:
        w = (width - label_w - 120) * max(value, 0) / top
        body.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" fill="#1f2937">{escape(label)}</text>')
        body.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
        body.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 12}" fill="#1f2937">{escape(text)}</text>')
        y += bar_h + gap
    return _svg(width, height, title, body)


def _charts(rep: ChannelReport, t: dict[str, str]) -> dict[str, Markup]:
    tb = rep.tables
    n = t.get
    out: dict[str, Markup] = {}

    def by(df: pl.DataFrame, row: str, series: str, value: str, label=None) -> list:
        rows = []
        for key in df[row].unique(maintain_order=True).to_list():
            sub = df.filter(pl.col(row) == key)
            rows.append((label(key) if label else str(n(str(key), str(key))),
                         [(s, float(v)) for s, v in zip(sub[series], sub[value], strict=True)]))
        return rows

    mm = tb["mix_month_total"].sort("month", pl.col("channel").replace_strict(_RANK, default=99))
    out["mix_month_total"] = stacked_rows(by(mm, "month", "channel", "contacts", label=lambda m: f"{int(m):02d}"),
                                          CHANNEL_COLOURS, t, t["mix_month"])
    tr = tb["mix_trend"].sort("region", pl.col("channel").replace_strict(_RANK, default=99))
    rows = []
    for r in tr["region"].unique(maintain_order=True).to_list():
        sub = tr.filter(pl.col("region") == r)
        name = n(r, r)
        rows.append((f"{name} {t['last_year']}", list(zip(sub["channel"], sub["contacts_last_year"].cast(pl.Float64),
                                                            strict=True))))
        rows.append((f"{name} {t['this_year']}", list(zip(sub["channel"], sub["contacts"].cast(pl.Float64),
                                                            strict=True))))
    out["mix_trend"] = stacked_rows(rows, CHANNEL_COLOURS, t, t["mix_trend"])
    ic = tb["intent_channel"].sort("intent", pl.col("channel").replace_strict(_RANK, default=99))
    out["intent_channel"] = stacked_rows(by(ic, "intent", "channel", "contacts"),
                                         CHANNEL_COLOURS, t, t["intent_channel"])
    out["funnel"] = bars([(n(s, s), float(v), f"{pct(v)} · {pct(rs)} {t['resolved_share']}", STAGE_COLOURS.get(s, "#6b7280"))
                          for s, v, rs in zip(tb["funnel"]["stage"], tb["funnel"]["share_of_needs"],
                                              tb["funnel"]["resolved_share"], strict=True)], t["funnel"])
    out["complaints"] = bars([(n(s, s), float(v), pct(v), STAGE_COLOURS.get(s, "#6b7280"))
                              for s, v in zip(tb["complaints"]["stage"], tb["complaints"]["share"], strict=True)],
                             t["complaints"])
    pm = tb["payment_mix"]
    out["payment_mix"] = bars([(n(c, c), float(s), f"{pct(s)} · {d:.1f} d" if d is not None else pct(s),
                                CHANNEL_COLOURS.get(c, "#0b5d57"))
                               for c, s, d in zip(pm["channel"], pm["share"], pm["delay_days_mean"], strict=True)],
                              t["payment_mix"])
    cs = tb["campaign_summary"].group_by("segment").agg(pl.col("cost_saved_fen").sum()).sort("segment")
    out["campaign_summary"] = bars([(n(s, s), float(v), yuan(v), "#0b5d57")
                                    for s, v in zip(cs["segment"], cs["cost_saved_fen"], strict=True)],
                                   t["campaign_summary"])
    lr = tb["labels_by_region"].filter(pl.col("code").str.starts_with("channel_"))
    out["labels_by_region"] = bars([(f"{n(r, r)} · {n(c, c)}", float(s), pct(s), "#1e3a8a")
                                    for r, c, s in zip(lr["region"], lr["code"], lr["share"], strict=True)],
                                   t["labels_by_region"])
    q = tb["quality_by_region"]
    out["quality_by_region"] = bars([(n(r, r), float(v or 0), pct(v), "#4b5563")
                                     for r, v in zip(q["region"], q["missing_handle_share"], strict=True)],
                                    t["quality_by_region"] + " · " + t["missing_handle_share"])
    return out


# --- the report ----------------------------------------------------------------------------------


@dataclass
class ReportPaths:
    """Where the report's files are."""

    out_dir: Path
    html: dict[str, Path] = field(default_factory=dict)
    pdf: dict[str, Path] = field(default_factory=dict)
    tables: dict[str, Path] = field(default_factory=dict)
    charts: dict[str, Path] = field(default_factory=dict)
    campaign: Path | None = None
    report: ChannelReport | None = None


def channel_labels(features: pl.DataFrame) -> pl.DataFrame:
    """The channel labels (catalogue group ``channel``) of ``features`` (``customer_id`` + channel
    features): the same rules as the bill run, applied to the channel features alone."""
    from wattbill.diagnostics import FEATURES
    from wattbill.labels import assign_labels, load_catalogue

    cat = [d for d in load_catalogue() if d.group == "channel"]
    full = features.with_columns([pl.lit(None, t).alias(c) for c, t in FEATURES.items() if c not in features.columns])
    assigned, _ = assign_labels(full, cat)
    return assigned


def _messages(campaign: pl.DataFrame, assigned: pl.DataFrame) -> pl.DataFrame:
    """The CRM message of each segment in zh and en: the label's advice (what to do)."""
    from wattbill.labels import advice

    rows = []
    for seg in campaign["segment"].unique().to_list():
        ev = assigned.filter(pl.col("code") == seg)["evidence"]
        evidence = ev[0] if ev.len() else "{}"
        rows.append({"segment": seg, "message_zh": advice(seg, evidence, "zh")[2],
                     "message_en": advice(seg, evidence, "en")[2]})
    schema = {"segment": pl.Utf8, "message_zh": pl.Utf8, "message_en": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def compute(store: Any, year: int, region: str | None, params: ReportParams) -> tuple[ChannelReport, pl.DataFrame]:
    """Read the store and compute the report's figures; also returns the CRM campaign list with messages."""
    customers = store.load_customers()
    if customers.height == 0:
        raise WattbillError("no customers in the store: ingest a customers file first")
    if region is not None and customers.filter(pl.col("region") == region).height == 0:
        known = ", ".join(sorted(str(r) for r in customers["region"].drop_nulls().unique().to_list())[:10])
        raise WattbillError(f"no customers in region {region!r}; regions: {known}")
    inter = pl.concat([store.load_interactions(year - 1), store.load_interactions(year)], how="vertical_relaxed")
    if inter.height == 0:
        raise WattbillError(f"no service interactions for {year - 1}-{year}: run wattbill ingest interactions FILE")
    payments = store.load_payments(year)
    ids = customers["customer_id"] if region is None else customers.filter(pl.col("region") == region)["customer_id"]
    feats = household_features(inter, ids, year)
    assigned = channel_labels(feats)
    stored = store.load_labels(year)
    labels = stored.select("customer_id", "code") if stored.height and "code" in stored.columns else None
    if labels is not None:  # the bill run's labels, with today's channel labels (the same rules)
        labels = pl.concat([labels.filter(~pl.col("code").str.starts_with("channel_")),
                            assigned.select("customer_id", "code")])
    else:
        labels = assigned.select("customer_id", "code")
    ledger = store.load_ledger()
    shas = ledger.filter(pl.col("kind") == "interactions")["sha256"].to_list()
    quarantine = store.load_quarantine()
    quarantine = quarantine.filter(pl.col("file_sha256").is_in(shas))
    rep = channel_report(inter, customers, payments, feats, labels, quarantine, year, region, params)
    if region is not None and region in rep.merged_regions:
        # a region too small to be named in the province's report is too small for a report of its own
        raise WattbillError(f"region {region!r} has fewer than {params.min_group} households with service "
                            f"contacts in {year - 1} or in a month of {year}: its figures are not published "
                            "(--min-group); see it within the other regions of the whole report")
    # the campaign list: only this run's channel labels decide who is on it
    rep_campaign = rep.campaign.join(_messages(rep.campaign, assigned), on="segment", how="left")
    return rep, rep_campaign


def write_report(store: Any, year: int, out_dir: Path, region: str | None = None,
                 params: ReportParams | None = None, languages: Sequence[str] = ("zh", "en"),
                 pdf: bool = True) -> ReportPaths:
    """Compute and write the report (see the module docstring for the files).

    Raises
    ------
    WattbillError
        No customers, no interactions, or an unknown region.
    """
    p = params or ReportParams()
    rep, campaign = compute(store, year, region, p)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(out_dir=out_dir, report=rep)
    (out_dir / "tables").mkdir(exist_ok=True)
    (out_dir / "charts").mkdir(exist_ok=True)
    for name, df in rep.tables.items():
        f = out_dir / "tables" / f"{name}.parquet"
        df.write_parquet(f)
        paths.tables[name] = f
    paths.campaign = out_dir / "campaign.parquet"
    campaign.write_parquet(paths.campaign)
    campaign.write_csv(out_dir / "campaign.csv")
    (out_dir / "figures.json").write_text(json.dumps(
        {"year": year, "region": region, "min_group": p.min_group, "cost_fen": p.cost_fen,
         "headline": rep.headline, "suppressed": rep.suppressed,
         "merged_regions": rep.merged_regions}, ensure_ascii=False, indent=1), "utf-8")
    stem = f"channels-{year}" + (f"-{region}" if region else "")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = env.get_template(TEMPLATE.name)
    renderer = None
    for lang in languages:
        t = TEXTS[lang]
        charts = _charts(rep, t)
        if lang == languages[0]:
            for name, svg in charts.items():
                f = out_dir / "charts" / f"{name}.svg"
                f.write_text(str(svg), "utf-8")
                paths.charts[name] = f
        merge_note = t["merge_note"].replace("{k}", str(rep.min_group)).replace(
            "{regions}", "、".join(rep.merged_regions) if lang == "zh" and rep.merged_regions
            else ", ".join(rep.merged_regions) or t["none"])
        html = template.render(rep=rep, t=t, merge_note=merge_note, lang=lang, charts=charts, pct=pct, count=count, yuan=yuan, points=formats.points,
                               region=region, params=p, tables=rep.tables, campaign_rows=campaign.height,
                               name=lambda v, t=t: t.get(str(v), str(v)))
        f = out_dir / f"{stem}.{lang}.html"
        f.write_text(html, "utf-8")
        paths.html[lang] = f
        if pdf:
            if renderer is None:
                from wattbill.bills.render import Renderer

                renderer = Renderer()
            f = out_dir / f"{stem}.{lang}.pdf"
            f.write_bytes(renderer.render_html_string(html))
            paths.pdf[lang] = f
    return paths


__all__ = ["CHANNEL_FEATURES", "MERGED", "OTHER_REGIONS", "ReportPaths", "compute", "write_report"]
