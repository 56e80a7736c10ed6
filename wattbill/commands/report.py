"""``wattbill report channels``: the service-channel portfolio report.

Mounted by ``wattbill/cli.py`` as ``app.add_typer(report.app, name="report")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wattbill.errors import WattbillError
from wattbill.years import MAX_YEAR, MIN_YEAR

app = typer.Typer(help="Portfolio reports.", no_args_is_help=True, rich_markup_mode=None)

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store folder or postgresql:// URL [default: setting store, WATTBILL_STORE]."),
]


def parse_costs(items: list[str] | None) -> dict[str, int]:
    """``channel=fen`` settings over ``DEFAULT_COST_FEN``; a bad item is a user error (one line)."""
    from wattbill.diagnostics.channels import DEFAULT_COST_FEN

    costs = dict(DEFAULT_COST_FEN)
    for item in items or []:
        channel, sep, value = item.partition("=")
        channel = channel.strip().lower()
        if not sep or channel not in costs or not value.strip().isdigit():
            raise WattbillError(
                f"--cost {item!r}: use CHANNEL=FEN with CHANNEL one of {', '.join(costs)} and FEN a whole number"
            )
        costs[channel] = int(value)
    return costs


@app.command("channels")
def channels(
    year: Annotated[int, typer.Option("--year", min=MIN_YEAR + 1, max=MAX_YEAR,
                                      help="The report year (compared with the year before).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the HTML, PDF, Parquet tables and CRM lists.")],
    region: Annotated[str | None, typer.Option("--region", help="Only this region's customers.")] = None,
    min_group: Annotated[
        int, typer.Option("--min-group", min=1, help="Households a figure must rest on; smaller groups are merged.")
    ] = 10,
    cost: Annotated[
        list[str] | None,
        typer.Option("--cost", help="Handling cost of one contact, CHANNEL=FEN (repeatable); defaults in the report."),
    ] = None,
    no_pdf: Annotated[bool, typer.Option("--no-pdf", help="HTML and tables only.")] = False,
    store: StoreOpt = None,
) -> None:
    """How customers reach the grid company, and whom to guide to self-service (HTML + PDF, zh and en)."""
    from wattbill.diagnostics.channels import ReportParams
    from wattbill.report_channels import write_report
    from wattbill.store import open_store

    params = ReportParams(min_group=min_group, cost_fen=parse_costs(cost))
    st = open_store(store, create=False)
    try:
        paths = write_report(st, year, out, region, params, pdf=not no_pdf)
    finally:
        st.close()
    print_paths(paths)


def print_paths(paths) -> None:
    """Where the report's files are, and its headline figures."""
    h = paths.report.headline if paths.report else {}
    from wattbill.report_channels import count, pct

    guide = h.get("campaign_households")
    guide_text = count(guide) if guide is not None else "– (fewer than the minimum group)"
    typer.echo(f"contacts {count(h.get('contacts'))}, online share {pct(h.get('online_share'))}, "
               f"households to guide {guide_text}")
    if paths.report is not None:
        merged = ", ".join(paths.report.merged_regions) or "none"
        typer.echo(f"small groups: every figure rests on at least {paths.report.min_group} households; "
                   f"regions merged into other regions: {merged}")
    for lang, f in paths.html.items():
        typer.echo(f"report ({lang}): {f}" + (f" and {paths.pdf[lang]}" if lang in paths.pdf else ""))
    typer.echo(f"tables: {paths.out_dir / 'tables'} ({len(paths.tables)} Parquet files)")
    typer.echo(f"CRM lists: {paths.campaign}")
