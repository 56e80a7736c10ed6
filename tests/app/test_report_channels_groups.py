"""Small groups in the channel report, recounted independently (plain Python sets, not polars
group_bys) from the synthetic input files and compared with the Parquet tables and the PDFs' text:
several regions below the minimum, a region small in only one of the two years, a channel small in
one month only, and no figure that rests on fewer households, also by subtraction."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest

from tests.app.conftest import run_cli
from tests.app.test_report_channels import ingest_and_report
from wattbill import synth
from wattbill.diagnostics.channels import MERGED, OTHER_REGIONS

YEAR = 2025
N = 600
K = 10
CODES = {"app", "wechat", "alipay", "social", "robot", "phone", "hall", "other"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("groups")
    paths = synth.generate(N, YEAR, 23, root / "input", years=2)
    cust = pl.read_csv(paths.customers, infer_schema=False)
    inter = pl.read_csv(paths.interactions, infer_schema=False)
    # 绍兴 keeps 8 households (the rest move to 杭州), 5 of 温州 form 湖州; 嘉兴 has contacts last year
    # from 7 households only; 宁波's app users in July of the report year are 3 households
    sx = cust.filter(pl.col("region") == "绍兴")["customer_id"]
    wz = cust.filter(pl.col("region") == "温州")["customer_id"]
    jx = cust.filter(pl.col("region") == "嘉兴")["customer_id"]
    region = (pl.when(pl.col("customer_id").is_in(sx[8:].implode())).then(pl.lit("杭州"))
              .when(pl.col("customer_id").is_in(wz[:5].implode())).then(pl.lit("湖州"))
              .otherwise(pl.col("region")))
    cust = cust.with_columns(region.alias("region"))
    nb = cust.filter(pl.col("region") == "宁波")["customer_id"]
    july_app = inter.filter(pl.col("customer_id").is_in(nb.implode()) & (pl.col("channel") == "app")
                            & pl.col("occurred_at").str.starts_with(f"{YEAR}-07"))
    keep3 = july_app["customer_id"].unique().sort()[:3]
    drop = (pl.col("customer_id").is_in(jx[7:].implode()) & pl.col("occurred_at").str.starts_with(str(YEAR - 1))) | (
        pl.col("customer_id").is_in(nb.implode()) & (pl.col("channel") == "app")
        & pl.col("occurred_at").str.starts_with(f"{YEAR}-07") & ~pl.col("customer_id").is_in(keep3.implode()))
    inter = inter.filter(~drop.fill_null(False))
    cust.write_csv(paths.customers)
    inter.write_csv(paths.interactions)
    out, stdout = ingest_and_report(root, paths, YEAR, K)
    assert f"at least {K} households; regions merged into other regions: 嘉兴, 湖州, 绍兴" in stdout
    return paths, out


def _recount(paths) -> dict:
    """The report's groups and cells by the rules of the report, with sets and dicts."""
    region_of = dict(pl.read_csv(paths.customers, infer_schema=False).select("customer_id", "region").iter_rows())
    rows = set()
    for r in pl.read_csv(paths.interactions, infer_schema=False).iter_rows(named=True):
        if r["channel"] in CODES and r["intent"] and r["customer_id"] in region_of and \
                r["occurred_at"][:4] in (str(YEAR - 1), str(YEAR)):
            rows.add((r["customer_id"], r["occurred_at"], r["channel"], r["intent"], r["resolved"]))
    period = {row: (int(row[1][5:7]) if row[1].startswith(str(YEAR)) else 0) for row in rows}

    def plan(items, k=K, merged=MERGED):
        """items: {value: {period: set of households}}; all_periods: the group's periods."""
        periods = set().union(*[set(p) for p in items.values()]) if items else set()
        keep = {v for v, per in items.items() if all(len(per.get(p, ())) >= k for p in periods)}
        small = set(items) - keep
        hh_small = {p: set().union(*[items[v].get(p, set()) for v in small]) for p in periods}
        if small and any(0 < len(h) < k for h in hh_small.values()) and keep:
            keep.discard(min(keep, key=lambda v: (min(len(items[v].get(p, ())) for p in periods), v)))
        return {v: (v if v in keep else merged) for v in items}

    by_region: dict = defaultdict(lambda: defaultdict(set))
    for row in rows:
        by_region[region_of[row[0]]][period[row]].add(row[0])
    group = plan(by_region, merged=OTHER_REGIONS)
    cells: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(set)))
    for row in rows:
        cells[group[region_of[row[0]]]][row[2]][period[row]].add(row[0])
    shown = {g: plan(ch) for g, ch in cells.items()}
    trend: dict = defaultdict(lambda: [0, 0])
    month: dict = defaultdict(int)
    for row in rows:
        g = group[region_of[row[0]]]
        key = (g, shown[g][row[2]])
        trend[key][0 if period[row] else 1] += 1
        if period[row]:
            month[(g, period[row], shown[g][row[2]])] += 1
    return {"group": group, "cells": cells, "shown": shown, "trend": trend, "month": month, "rows": rows,
            "region_of": region_of, "period": period}


def _pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def test_small_regions_form_one_other_regions_group(report) -> None:
    paths, out = report
    rc = _recount(paths)
    group = rc["group"]
    # the input is as intended: 绍兴 8 and 湖州 5 households, 嘉兴 small last year only
    assert group["绍兴"] == group["湖州"] == group["嘉兴"] == OTHER_REGIONS
    assert {group[r] for r in ("杭州", "宁波", "温州")} == {"杭州", "宁波", "温州"}
    figures = json.loads((out / "figures.json").read_text("utf-8"))
    assert figures["merged_regions"] == sorted(["绍兴", "湖州", "嘉兴"]) and figures["min_group"] == K
    named = {"杭州", "宁波", "温州", OTHER_REGIONS}
    for name in ("mix_month", "mix_trend", "campaign_summary", "labels_by_region"):
        got = set(pl.read_parquet(out / "tables" / f"{name}.parquet")["region"])
        assert got <= named and OTHER_REGIONS in got, name
        assert not got & {"绍兴", "湖州", "嘉兴"}, name
    quality = set(pl.read_parquet(out / "tables" / "quality_by_region.parquet")["region"])
    assert quality <= named | {"unknown"} and OTHER_REGIONS in quality
    # the CRM list: the households of small regions are counted in other regions, not in 宁波 or 杭州
    camp = pl.read_parquet(out / "campaign.parquet")
    small_ids = [c for c, r in rc["region_of"].items() if r in ("绍兴", "湖州", "嘉兴")]
    assert set(camp.filter(pl.col("customer_id").is_in(small_ids))["region"]) <= {OTHER_REGIONS}
    zh, en = _pdf_text(out / f"channels-{YEAR}.zh.pdf"), _pdf_text(out / f"channels-{YEAR}.en.pdf")
    assert "其他地区" in zh and "最小分组10户" in "".join(zh.split())
    flat = " ".join(en.split())
    assert "at least 10 households" in flat and "other regions" in flat
    assert "嘉兴, 湖州, 绍兴" in flat or all(r in flat for r in ("绍兴", "湖州", "嘉兴"))


def test_trend_and_months_match_the_recount(report) -> None:
    paths, out = report
    rc = _recount(paths)
    trend = pl.read_parquet(out / "tables" / "mix_trend.parquet")
    got = {(r["region"], r["channel"]): [r["contacts"], r["contacts_last_year"]] for r in trend.iter_rows(named=True)}
    assert got == {k: v for k, v in rc["trend"].items()}
    mm = pl.read_parquet(out / "tables" / "mix_month.parquet")
    assert {(r["region"], r["month"], r["channel"]): r["contacts"] for r in mm.iter_rows(named=True)} == rc["month"]
    # 宁波's app: 3 households in July, many in every other month: merged in every month and both years
    app_nb = rc["cells"]["宁波"]["app"]
    assert len(app_nb[7]) == 3 and min(len(app_nb[m]) for m in range(1, 13) if m != 7) >= K and len(app_nb[0]) >= K
    assert rc["shown"]["宁波"]["app"] == MERGED
    assert not mm.filter((pl.col("region") == "宁波") & (pl.col("channel") == "app")).height
    assert not trend.filter((pl.col("region") == "宁波") & (pl.col("channel") == "app")).height
    assert trend.filter((pl.col("region") == "杭州") & (pl.col("channel") == "app")).height == 1
    # the same cells in both years: a change is never between differently merged cells
    for g, ch in rc["trend"]:
        assert ch == MERGED or (ch in rc["cells"][g] and rc["shown"][g][ch] == ch)
    # the PDF's trend table: each row of other regions with its contacts
    en = _pdf_text(out / f"channels-{YEAR}.en.pdf")
    names = {"app": "App", "wechat": "WeChat", "alipay": "Alipay", "social": "Social media", "robot": "Robot",
             "phone": "95598 phone", "hall": "Service hall", "other": "Other", MERGED: "merged"}
    lines = [" ".join(line.split()) for line in en.splitlines()]
    for (g, ch), (now, _) in rc["trend"].items():
        if g == OTHER_REGIONS:
            want = f"other regions {names[ch]} {now:,}"
            assert any(line.startswith(want) for line in lines), want


def test_no_figure_rests_on_fewer_households_even_by_subtraction(report) -> None:
    paths, out = report
    rc = _recount(paths)
    for f in (out / "tables").glob("*.parquet"):
        df = pl.read_parquet(f)
        if "households" in df.columns and f.stem != "quality_by_region":
            assert df.height == 0 or df["households"].min() >= K, f.stem
    # every contact of a group is in a shown cell: a group's total minus its cells leaves nothing
    totals: dict = defaultdict(lambda: [0, 0])
    for row in rc["rows"]:
        totals[rc["group"][rc["region_of"][row[0]]]][0 if rc["period"][row] else 1] += 1
    trend = pl.read_parquet(out / "tables" / "mix_trend.parquet").group_by("region").agg(
        pl.col("contacts").sum(), pl.col("contacts_last_year").sum())
    assert {r: [a, b] for r, a, b in trend.iter_rows()} == dict(totals)
    quality = pl.read_parquet(out / "tables" / "quality_by_region.parquet")
    for r, contacts in quality.select("region", "contacts").iter_rows():
        if r != "unknown":
            assert contacts == totals[r][0], r
    # the months of all regions are the sums of the regions' cells
    mm = pl.read_parquet(out / "tables" / "mix_month.parquet")
    mt = pl.read_parquet(out / "tables" / "mix_month_total.parquet")
    summed = mm.group_by("month", "channel").agg(pl.col("contacts").sum())
    assert summed.sort("month", "channel").equals(mt.select("month", "channel", "contacts").sort("month", "channel"))
    # intent x channel, the funnel: every contact of the year is in a shown cell
    n = sum(1 for row in rc["rows"] if rc["period"][row])
    for name in ("intent_channel", "funnel"):
        assert pl.read_parquet(out / "tables" / f"{name}.parquet")["contacts"].sum() == n, name
    assert not json.loads((out / "figures.json").read_text("utf-8"))["suppressed"]


def test_a_report_of_one_small_region_is_refused(report, tmp_path) -> None:
    """--region of a region merged into the other regions publishes nothing of it (one line, exit 1);
    a named region's own report is made."""
    _paths, out = report
    store = str(out.parent / "store")
    for name in ("绍兴", "湖州"):
        proc = run_cli("report", "channels", "--year", str(YEAR), "--out", str(tmp_path / name), "--store", store,
                       "--min-group", str(K), "--region", name, "--no-pdf")
        assert proc.returncode == 1 and "not published" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / name).exists()
    proc = run_cli("report", "channels", "--year", str(YEAR), "--out", str(tmp_path / "hz"), "--store", store,
                   "--min-group", str(K), "--region", "杭州", "--no-pdf")
    assert proc.returncode == 0, proc.stderr
