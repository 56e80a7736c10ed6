"""The ``wattbill`` command line.

Every command takes ``--store`` (``WATTBILL_STORE``) and, where tariffs matter, ``--tariffs``
(``WATTBILL_TARIFFS``). Errors of wattbill's hierarchy (``wattbill.errors``) end the command with a
one-line message on stderr and exit code 1; usage errors exit with 2; never a traceback for bad input.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from wattbill.commands import ingest as ingest_commands
from wattbill.errors import USER_ERRORS, WattbillError

app = typer.Typer(
    help="wattbill: smart-meter usage and annual-bill insight engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bill_app = typer.Typer(help="Bill a year: run, recalculate.", no_args_is_help=True)
app.add_typer(bill_app, name="bill")
app.add_typer(ingest_commands.app, name="ingest")

StoreOpt = Annotated[str | None, typer.Option("--store", envvar="WATTBILL_STORE", help="Store folder or postgresql:// URL.")]
TariffsOpt = Annotated[
    Path | None, typer.Option("--tariffs", envvar="WATTBILL_TARIFFS", help="More tariff files (TOML), beside the catalogue.")
]
DEFAULT_OUT = Path("wattbill-out")


def _store(url: str | None):
    from wattbill.store import open_store

    return open_store(url)


def _catalog(extra: Path | None):
    from wattbill.tariffs import load_catalog

    if extra is not None and not extra.is_dir():
        raise WattbillError(f"{extra}: --tariffs must be a folder of tariff files")
    return load_catalog([extra] if extra else [])


def _yuan(fen: int) -> str:
    from wattbill.labels import format_yuan

    return format_yuan(int(fen), grouping=False)


def _run_with_progress(store, catalog, year: int, **kwargs):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from wattbill.pipeline import run_bills

    quiet = not sys.stderr.isatty() and os.environ.get("WATTBILL_PROGRESS") != "1"
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        transient=False, disable=quiet,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            label = {"bill": "billing households", "pdf": "rendering PDFs"}.get(stage, stage)
            if stage not in tasks:
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return run_bills(store, catalog, year, progress=progress, **kwargs)


def _print_summary(summary) -> None:
    typer.echo(f"year {summary.year}: {summary.billed} of {summary.households} households billed, "
               f"{summary.kwh_total:,.1f} kWh, {_yuan(summary.charge_fen)} yuan in all")
    typer.echo(f"new bill versions: {summary.new_versions}")
    if summary.labels:
        top = sorted(summary.labels.items(), key=lambda kv: -kv[1])
        typer.echo("labels: " + ", ".join(f"{code} {n}" for code, n in top))
    for f in summary.failures[:10]:
        typer.echo(f"not billed: {f['customer_id']}: {f['reason']}", err=True)
    if len(summary.failures) > 10:
        typer.echo(f"not billed: {len(summary.failures) - 10} more", err=True)
    if summary.bills_path:
        typer.echo(f"bills: {summary.bills_path}")
        typer.echo(f"bill months: {summary.months_path}")
    if summary.pdf_dir:
        typer.echo(f"PDFs: {summary.pdf_dir} ({summary.pdfs_written} written, {summary.pdfs_skipped} already there)")


@bill_app.command("run")
def bill_run(
    year: Annotated[int, typer.Option("--year", help="The bill year.")],
    customer: Annotated[list[str] | None, typer.Option("--customer", help="Only these customers.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Where bills.parquet and the PDFs go.")] = DEFAULT_OUT,
    no_pdf: Annotated[bool, typer.Option("--no-pdf", help="Skip the PDFs.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="PDF rendering processes.")] = 1,
    engine: Annotated[str, typer.Option("--engine", help="local (dask is not available in this build).")] = "local",
    store: StoreOpt = None,
    tariffs: TariffsOpt = None,
) -> None:
    """Bill YEAR for every customer (or --customer ...), store every version, write bills and PDFs."""
    if engine != "local":
        raise WattbillError(f"engine {engine!r} is not available in this build: use --engine local")
    st = _store(store)
    try:
        summary = _run_with_progress(st, _catalog(tariffs), year, customer_ids=customer or None,
                                     out_dir=out, pdf=not no_pdf, workers=workers)
    finally:
        st.close()
    _print_summary(summary)


@bill_app.command("recalc")
def bill_recalc(
    year: Annotated[int, typer.Option("--year")],
    customer: Annotated[list[str], typer.Option("--customer", help="Customers to recalculate.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the new version).")],
    out: Annotated[Path, typer.Option("--out")] = DEFAULT_OUT,
    no_pdf: Annotated[bool, typer.Option("--no-pdf")] = False,
    store: StoreOpt = None,
    tariffs: TariffsOpt = None,
) -> None:
    """Recalculate bills after a correction: a new version per changed bill, and the diff."""
    from wattbill.recalc import diff_versions

    if not reason.strip():
        raise WattbillError("--reason must say why the bills are recalculated")
    st = _store(store)
    try:
        before = st.load_bills(year, customer)
        summary = _run_with_progress(st, _catalog(tariffs), year, customer_ids=customer, out_dir=out,
                                     pdf=not no_pdf, reason=reason)
        after = st.load_bills(year, customer)
    finally:
        st.close()
    for line in diff_versions(before, after):
        typer.echo(line)
    _print_summary(summary)


@app.command("demo")
def demo(
    customers: Annotated[int, typer.Option("--customers", min=1, help="Synthetic households.")] = 200,
    year: Annotated[int, typer.Option("--year")] = 2025,
    out: Annotated[Path, typer.Option("--out")] = Path("wattbill-demo"),
    seed: Annotated[int, typer.Option("--seed")] = 7,
    workers: Annotated[int, typer.Option("--workers", min=1)] = max(1, min(2, os.cpu_count() or 1)),
    no_pdf: Annotated[bool, typer.Option("--no-pdf")] = False,
    store: StoreOpt = None,
) -> None:
    """Make synthetic households, ingest them, bill them, diagnose, label and render their PDFs."""
    from wattbill.demo import run_demo

    run_demo(customers, year, out, seed, workers, not no_pdf, store, _run_with_progress, _print_summary)


@app.command("token")
def token(
    customer: Annotated[str, typer.Option("--customer")],
    ttl: Annotated[int, typer.Option("--ttl", help="Seconds the token is valid.")] = 3600,
) -> None:
    """Print a signed token for one customer (signed with WATTBILL_SECRET): for the API's
    ``Authorization: Bearer`` header, or a portal link ``https://<host>/?token=<token>``."""
    from wattbill.tokens import make_token, secret_from_env

    typer.echo(make_token(customer, secret_from_env(), ttl))


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    out: Annotated[Path, typer.Option("--out", help="The bill run's output folder (PDFs, features).")] = DEFAULT_OUT,
    session_ttl: Annotated[int, typer.Option("--session-ttl", min=60, help="Life of the page's session [s].")] = 900,
    store: StoreOpt = None,
    tariffs: TariffsOpt = None,
) -> None:
    """Serve the statement page, the JSON API (/openapi.json) and the statements.

    Tokens are signed with WATTBILL_SECRET; WATTBILL_SECRET_PREVIOUS (optional) is still accepted
    (key rotation). One process, one store; tokens in portal links are kept out of the access log.
    """
    import logging

    import uvicorn

    from wattbill.tokens import keys_from_env
    from wattbill.web import WebSettings, create_app

    application = create_app(store, out, keys_from_env(), WebSettings(session_ttl=session_ttl),
                             catalog=_catalog(tariffs))
    logging.getLogger("uvicorn.access").addFilter(_RedactTokens())
    uvicorn.run(application, host=host, port=port, log_level="info")


class _RedactTokens:
    """Logging filter: ``token=...`` in a logged request line becomes ``token=[redacted]``."""

    def filter(self, record) -> bool:
        import re

        if isinstance(record.args, tuple):
            record.args = tuple(re.sub(r"token=[^&\s]*", "token=[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def _mount_optional() -> None:
    """Mount the command modules of the tariff engine (``wattbill tariffs``, ``wattbill estimate``)."""
    try:
        from wattbill.commands import tariffs as tariff_commands
    except ImportError:  # the tariff commands module is being written alongside
        return
    app.add_typer(tariff_commands.app, name="tariffs")
    app.command("estimate")(tariff_commands.estimate)


_mount_optional()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning wattbill's errors into one line and exit code 1.

    Typer's standalone mode prints usage errors and exits with 2; every other exception reaches
    this function, where the user errors of ``wattbill.errors.USER_ERRORS`` become one line.
    """
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except USER_ERRORS as exc:
        typer.echo(f"wattbill: error: {exc}", err=True)
        return 1
    except FileNotFoundError as exc:
        typer.echo(f"wattbill: error: {exc.filename or exc}: no such file", err=True)
        return 1
    return 0


def _console() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _console()
