"""``wattbill tariffs list | show CODE | check FILE`` and ``wattbill estimate``.

Mounted by ``wattbill/cli.py``: ``app.add_typer(tariffs.app, name="tariffs")`` and
``app.command("estimate")(tariffs.estimate)``. Errors are ``tariffs.errors.TariffError`` or
``wattbill.errors.WattbillError`` (one-line ``str``), which ``wattbill.cli.main`` turns into exit 1.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Tariffs: list the catalogue, show one tariff, check a tariff file.", no_args_is_help=True, rich_markup_mode=None
)

TariffsOpt = Annotated[
    Path | None,
    typer.Option("--tariffs", help="More tariff files (TOML), beside the catalogue [default: setting tariffs, WATTBILL_TARIFFS]."),
]
StoreOpt = Annotated[
    str | None, typer.Option("--store", help="Store folder or postgresql:// URL [default: setting store, WATTBILL_STORE].")
]


def catalog_from_env(extra: Path | None = None):
    """The shipped catalogue plus ``extra`` (a folder or file), else the setting ``tariffs`` if set."""
    from wattbill.settings import get_settings
    from wattbill.tariffs import load_catalog

    if extra is None:
        extra = get_settings().tariffs
    return load_catalog([extra] if extra else [])


def _yuan(fen: int) -> str:
    from wattbill.formats import format_yuan

    return format_yuan(int(fen), grouping=False)


def _kwh(wh: int) -> str:
    from wattbill.formats import kwh_exact

    return kwh_exact(wh)


def _console():
    from rich.console import Console

    return Console(soft_wrap=True)


@app.command("list")
def list_tariffs(tariffs: TariffsOpt = None) -> None:
    """List the tariffs of the catalogue (and of --tariffs)."""
    from rich.table import Table

    catalog = catalog_from_env(tariffs)
    table = Table(title="Tariffs")
    table.add_column("code", no_wrap=True)
    for col in ("name", "cycle", "periods", "tiers", "valid from"):
        table.add_column(col)
    for code in catalog.codes():
        t = catalog.get(code)
        table.add_row(
            code,
            t.name,
            t.cycle + (" (seasonal)" if t.thresholds_by_month and len(set(t.thresholds_by_month)) > 1 else ""),
            ", ".join(t.period_names),
            str(t.n_tiers),
            t.valid_from.isoformat() if t.valid_from else "-",
        )
    _console().print(table)


def _threshold_text(t) -> list[tuple[str, str]]:
    """(months, thresholds) rows: one row for plain thresholds, one per season otherwise."""
    unit = "kWh/year" if t.cycle == "annual" else "kWh/month"
    if t.thresholds_by_month is None:
        return [("all", " / ".join(str(h) for h in t.thresholds) + f" {unit}" if t.thresholds else "single tier")]
    seasons: dict[tuple, list[int]] = {}
    for m, ths in enumerate(t.thresholds_by_month, start=1):
        seasons.setdefault(ths, []).append(m)
    rows = []
    for ths, months in seasons.items():
        rows.append((",".join(map(str, months)), " / ".join(str(h) for h in ths) + f" {unit}"))
    return rows


@app.command("show")
def show(
    code: Annotated[str, typer.Argument(help="Tariff code, e.g. cn-shanghai-res-tou.")],
    on: Annotated[str | None, typer.Option("--on", help="Version in force on this date (YYYY-MM-DD).")] = None,
    tariffs: TariffsOpt = None,
) -> None:
    """Show one tariff: periods and their hours, tiers, prices, source."""
    from rich.table import Table

    catalog = catalog_from_env(tariffs)
    when = None
    if on:
        try:
            when = date.fromisoformat(on)
        except ValueError as exc:
            raise typer.BadParameter(f"{on!r} is not a date (YYYY-MM-DD)", param_hint="--on") from exc
    t = catalog.get(code, on=when)
    console = _console()
    console.print(f"[bold]{t.code}[/bold]  {t.name}")
    if t.name_en and t.name_en != t.name:
        console.print(t.name_en)
    console.print(
        f"valid from {t.valid_from.isoformat() if t.valid_from else '-'} · {t.cycle} tiers · proration: {t.proration}"
        + (
            f" · household bonus: {t.household_bonus.kwh_per_month} kWh/month from {t.household_bonus.min_size} persons"
            if t.household_bonus
            else ""
        )
    )

    periods = Table(title="Periods")
    periods.add_column("period")
    periods.add_column("registers")
    periods.add_column("hours")
    for p in t.period_names:
        regs = [r for r, q in t.periods if q == p]
        if p == t.unsplit:
            regs.append("(total not in registers)")
        hours = t.hours_of(p) or " / ".join(h for r in regs if (h := t.hours_of(r))) or "-"
        periods.add_row(p, ", ".join(regs) or "-", hours)
    console.print(periods)

    tiers = Table(title="Tiers")
    tiers.add_column("months")
    tiers.add_column("thresholds")
    for months, text in _threshold_text(t):
        tiers.add_row(months, text)
    console.print(tiers)

    prices = Table(title="Prices (yuan/kWh)")
    prices.add_column("period")
    for k in range(1, t.n_tiers + 1):
        prices.add_column(f"tier {k}", justify="right")
    for p, plist in t.prices:
        prices.add_row(p, *(str(x) for x in plist))
    console.print(prices)
    console.print(f"notice (printed on bills): {t.notice or '-'}")
    console.print(f"source: {t.source}")
    if t.note:
        console.print(f"note (internal): {t.note}")
    console.print("verified: yes" if t.verified else
                  "verified: NO - the figures are not checked against the notice; bill run warns")


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="A tariff file (TOML).")]) -> None:
    """Check a tariff file: print every problem with its key; exit 1 if there is any."""
    from wattbill.tariffs import TariffFileError, check_tariff_file

    problems = check_tariff_file(file)
    for p in problems:
        typer.echo(str(p))
    if problems:
        # a TariffError: wattbill.cli.main prints it on one line and exits with 1
        raise TariffFileError(str(file), None, f"{len(problems)} problem{'s' if len(problems) > 1 else ''}", problems)
    typer.echo(f"{file}: ok")


def estimate_for(store, catalog, customer: str, day: date):
    """The running charge of ``customer``'s year from 1 January through ``day``.

    The daily rows are made dense by :func:`wattbill.diagnostics.densify` (the bill run's own path:
    meters summed per day, the account's open window from ``opened_on``/``closed_on``), so an
    estimate through 31 December equals the year's bill.

    Parameters
    ----------
    store : wattbill.store.Store
    catalog : wattbill.tariffs.Catalog
    customer : str
        The customer id (户号).
    day : datetime.date
        The last day counted.

    Returns
    -------
    row : dict
        The customer's ``CUSTOMER_SCHEMA`` row.
    tariff : wattbill.tariffs.Tariff
        The tariff version in force on ``day`` (each day is priced by the version in force that day).
    charge : wattbill.tariffs.RunningCharge
        For one household (arrays of length 1) [fen, Wh].
    missing : list of (date, date)
        Runs of open days through ``day`` without a read (not counted).

    Raises
    ------
    wattbill.errors.UnknownCustomer
        The store does not hold ``customer``.
    wattbill.errors.NothingToBill
        The account is not open in ``day``'s year.
    """
    from wattbill.errors import UnknownCustomer
    from wattbill.estimate import running_charge_for

    customers = store.load_customers([customer])
    if customers.height == 0:
        raise UnknownCustomer(f"customer {customer!r} not found in the store")
    schedule, charge, missing = running_charge_for(catalog, customers, store.load_daily(day.year, [customer]), day)
    through_day = (day - date(day.year, 1, 1)).days
    row = customers.row(0, named=True)
    return row, schedule.on(through_day) or schedule.latest, charge, missing


def estimate(
    customer: Annotated[str, typer.Option("--customer", help="Customer id (户号).")],
    through: Annotated[str, typer.Option("--through", help="Last day counted (YYYY-MM-DD).")],
    store: StoreOpt = None,
    tariffs: TariffsOpt = None,
) -> None:
    """The running charge of the year so far: what a household has spent from 1 January to --through,
    and the tier it has reached ("每日电费实时测算")."""
    from wattbill.formats import day_runs
    from wattbill.store import open_store

    if isinstance(through, datetime):
        day = through.date()
    elif isinstance(through, date):
        day = through
    else:
        try:
            day = date.fromisoformat(str(through))
        except ValueError as exc:
            raise typer.BadParameter(f"{through!r} is not a date (YYYY-MM-DD)", param_hint="--through") from exc
    year, jan1 = day.year, date(day.year, 1, 1)
    catalog = catalog_from_env(tariffs)
    st = open_store(store, create=False)
    try:
        _row, tariff, rc, missing = estimate_for(st, catalog, customer, day)
    finally:
        st.close()
    typer.echo(f"customer {customer} · tariff {tariff.code} ({tariff.name})")
    typer.echo(f"from {jan1.isoformat()} through {day.isoformat()}: {_kwh(rc.wh[0])} kWh, {_yuan(rc.fen[0])} yuan, tier {rc.tier[0]}")
    if missing:
        n = sum((b - a).days + 1 for a, b in missing)
        typer.echo(f"no read on {n} day(s) ({day_runs(missing)}): their use is not counted")
    months = [(m + 1, int(f)) for m, f in enumerate(rc.month_fen[0]) if m < day.month]
    typer.echo("by month: " + ", ".join(f"{year}-{m:02d} {_yuan(f)}" for m, f in months))
    schedule, through_day = catalog.schedule(tariff.code, year), (day - jan1).days
    changes = [schedule.start_date(k) for k in range(1, len(schedule.versions)) if schedule.starts[k] <= through_day]
    if changes:
        typer.echo("price changes: " + ", ".join(
            f"from {d.isoformat()} (each day at the version in force; annual tiers continue across the change)"
            for d in changes))
