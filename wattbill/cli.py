"""The ``wattbill`` command line.

Every command takes ``--store`` (default: the setting ``store``, ``WATTBILL_STORE``) and, where tariffs
matter, ``--tariffs`` (the setting ``tariffs``); settings are read once by ``wattbill.settings``. Errors of wattbill's hierarchy (``wattbill.errors``) end the command with a
one-line message on stderr and exit code 1; usage errors exit with 2; never a traceback for bad input.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from wattbill.commands import ingest as ingest_commands
from wattbill.commands import report as report_commands
from wattbill.engines import CHUNK_HOUSEHOLDS
from wattbill.errors import USER_ERRORS, WattbillError

app = typer.Typer(
    help="wattbill: smart-meter usage and annual-bill insight engine.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: rich.markdown would cost ~0.4 s at every start
    pretty_exceptions_enable=False,
    add_completion=False,
)
bill_app = typer.Typer(help="Bill a year: run, recalculate.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(bill_app, name="bill")
app.add_typer(ingest_commands.app, name="ingest")
app.add_typer(report_commands.app, name="report")
store_app = typer.Typer(help="Maintain the embedded store: migrate, compact.", no_args_is_help=True,
                        rich_markup_mode=None)
app.add_typer(store_app, name="store")

StoreOpt = Annotated[
    str | None, typer.Option("--store", help="Store folder or postgresql:// URL [default: setting store, WATTBILL_STORE].")
]
TariffsOpt = Annotated[
    Path | None,
    typer.Option("--tariffs", help="More tariff files (TOML), beside the catalogue [default: setting tariffs, WATTBILL_TARIFFS]."),
]
DEFAULT_OUT = Path("wattbill-out")


def _print_version(value: bool) -> None:
    if value:
        from wattbill import __version__

        typer.echo(f"wattbill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """wattbill: smart-meter usage and annual-bill insight engine."""


@app.command("warm", hidden=True)
def warm() -> None:
    """Compile every cached numba kernel once (run by scripts/setup.sh), so a first run does not."""
    from wattbill.warm import warm_kernels

    seconds, n = warm_kernels()
    typer.echo(f"warm: {n} kernels compiled or loaded from numba's cache in {seconds:.1f} s")


def _store(url: str | None):
    from wattbill.store import open_store

    return open_store(url, create=False)


@store_app.command("migrate")
def store_migrate(store: StoreOpt = None) -> None:
    """Convert an embedded store of the old format (Parquet files + manifest.json) to Delta Lake tables, once."""
    from wattbill.settings import get_settings
    from wattbill.store.embedded import migrate_legacy

    root = store or get_settings().store
    rows = migrate_legacy(root)
    if not rows:  # (the migration was done before: only its left-over old files were cleared)
        typer.echo(f"{root}: already in Delta Lake tables (migrated before); nothing to convert")
        return
    typer.echo(f"{root}: migrated to Delta Lake tables ({sum(rows.values()):,} rows in {len(rows)} tables)")


@store_app.command("compact")
def store_compact(store: StoreOpt = None) -> None:
    """Sort the daily partitions into one file each, compact the other tables, vacuum old history."""
    from wattbill.store.embedded import EmbeddedStore

    st = _store(store)
    if not isinstance(st, EmbeddedStore):
        raise WattbillError("wattbill store compact: only the embedded store is compacted (TimescaleDB compresses itself)")
    n = st.compact()
    typer.echo(f"{st.url}: compacted ({n} daily partitions rewritten)")


def _catalog(extra: Path | None):
    from wattbill.settings import get_settings
    from wattbill.tariffs import load_catalog

    if extra is None:
        extra = get_settings().tariffs
    if extra is not None and not extra.is_dir():
        raise WattbillError(f"{extra}: --tariffs must be a folder of tariff files")
    return load_catalog([extra] if extra else [])


def _yuan(fen: int) -> str:
    from wattbill.formats import format_yuan

    return format_yuan(int(fen), grouping=False)


def _run_with_progress(store, catalog, year: int, **kwargs):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from wattbill.pipeline import run_bills
    from wattbill.settings import get_settings

    quiet = not sys.stderr.isatty() and not get_settings().progress
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
        transient=False, disable=quiet,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            label, unit = {"bill": ("billing households", "households"), "pdf": ("rendering PDFs", "PDFs")}.get(
                stage, (stage, "items"))
            if stage not in tasks:
                tasks[stage] = bar.add_task(label, total=total, rate="")
            bar.update(tasks[stage], completed=done, total=total)
            speed = bar.tasks[tasks[stage]].speed
            bar.update(tasks[stage], rate=f"{speed:,.0f} {unit}/s" if speed else "")

        return run_bills(store, catalog, year, progress=progress, **kwargs)


def _configure_logging(verbose: int) -> None:
    """Log wattbill's own records (``wattbill.*``: each chunk's timings with ``-v``) on stderr; other
    libraries' loggers are left alone (a pool's connection warnings would break the one-line errors)."""
    import logging

    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logger = logging.getLogger("wattbill")
    if not any(getattr(h, "_wattbill", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        handler._wattbill = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _print_summary(summary) -> None:
    for notice in getattr(summary, "notices", ()):  # once per tariff file, naming it
        typer.echo(f"wattbill: warning: {notice['message']}", err=True)
    typer.echo(f"year {summary.year}: {summary.billed} of {summary.households} households billed, "
               f"{summary.kwh_total:,.1f} kWh, {_yuan(summary.charge_fen)} yuan in all")
    typer.echo(f"new bill versions: {summary.new_versions}")
    if summary.labels:
        top = sorted(summary.labels.items(), key=lambda kv: -kv[1])
        typer.echo("labels: " + ", ".join(f"{code} {n}" for code, n in top))
    nb = summary.not_billed
    if summary.billed == 0 and summary.households:  # every household left out: a result, kept as data
        where = f"{summary.not_billed_path} and the store" if summary.not_billed_path else "the store"
        typer.echo(f"wattbill: warning: no household of {summary.year} could be billed "
                   f"({nb.select('customer_id').n_unique()} left out; the reasons: {where})", err=True)
    if nb.height:
        codes = ", ".join(f"{c} {n}" for c, n in sorted(nb.group_by("code").len().iter_rows(), key=lambda kv: -kv[1]))
        where = f": {summary.not_billed_path}" if summary.not_billed_path else ""
        typer.echo(f"left out: {nb.select('customer_id').n_unique()} households ({codes}){where}", err=True)
        for f in nb.head(10).iter_rows(named=True):
            typer.echo(f"left out: {f['customer_id']}: {f['code']}: {f['detail']}", err=True)
        if nb.height > 10:
            typer.echo(f"left out: {nb.height - 10} more", err=True)
    if summary.bills_path:
        typer.echo(f"bills: {summary.bills_path}")
        typer.echo(f"bill months: {summary.months_path}")
    if summary.not_billed_path is not None:  # (the households the file lists: this run's and the others kept)
        typer.echo(f"not billed: {summary.not_billed_path} ({summary.not_billed_households} households)")
    if summary.chunks_reused:
        typer.echo(f"chunks: {summary.chunks_computed} computed, {summary.chunks_reused} from checkpoints")
    if summary.pdf_dir:
        typer.echo(f"PDFs: {summary.pdf_dir} ({summary.pdfs_written} written, {summary.pdfs_skipped} already there)")


#: bill years accepted (reads before 1990 are refused at ingest, ``wattbill.years.MIN_DATE``)
from wattbill.years import MAX_YEAR, MIN_YEAR  # noqa: E402

YearOpt = Annotated[int, typer.Option("--year", min=MIN_YEAR, max=MAX_YEAR, help="The bill year.")]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Exit 1 if any household is left out (listed in not_billed.parquet).")
]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, max=256, help="PDF rendering processes.")]


def _end_strict(summary, strict: bool) -> None:
    if strict and summary.faults:
        raise WattbillError(f"--strict: {summary.faults} households left out of {summary.year} "
                            f"(see {summary.not_billed_path or 'the store: not billed'})")


@bill_app.command("run")
def bill_run(
    year: YearOpt,
    customer: Annotated[list[str] | None, typer.Option("--customer", metavar="ID",
                                                       help="Only this customer (repeat for more).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Where bills.parquet and the PDFs go.")] = DEFAULT_OUT,
    no_pdf: Annotated[bool, typer.Option("--no-pdf", help="Skip the PDFs.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, max=256, help="Processes for the chunks (from 50,000 households each) and for PDFs (local), or Dask workers of the LocalCluster (dask).")] = 1,
    engine: Annotated[str, typer.Option("--engine", metavar="[local|dask]",
                                        help="local, or dask (a Dask distributed cluster).")] = "local",
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="tcp://HOST:PORT of a Dask scheduler (with --engine dask; default: a LocalCluster).")] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, max=10_000_000, help="Households per chunk (the unit of a checkpoint and of a Dask task).")] = CHUNK_HOUSEHOLDS,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="Log each chunk's timings (-v) on stderr.")] = 0,
    strict: StrictOpt = False,
    store: StoreOpt = None,
    tariffs: TariffsOpt = None,
) -> None:
    """Bill YEAR for every customer (or --customer ...), store every version, write bills and PDFs.

    A household whose data cannot be billed or rendered is left out with a reason code and its
    evidence (OUT/not_billed.parquet, and the store); every other household is billed and the run
    exits 0 (1 with --strict), also when no household could be billed. A run stopped at any point and started again with the same arguments
    redoes only the unfinished chunks (checkpoints in OUT/.checkpoints, removed when the run completes).
    """
    from wattbill.engines import ENGINES, make_engine

    if engine not in ENGINES:  # (a usage error, as every other option's: exit 2)
        raise typer.BadParameter(f"--engine must be {' or '.join(ENGINES)}", param_hint="--engine")
    _configure_logging(verbose)
    st = _store(store)
    try:
        with make_engine(engine, workers=workers, scheduler=scheduler) as eng:
            summary = _run_with_progress(st, _catalog(tariffs), year, customer_ids=customer or None,
                                         out_dir=out, pdf=not no_pdf, workers=workers, engine=eng,
                                         chunk_size=chunk_size)
    finally:
        st.close()
    _print_summary(summary)
    _end_strict(summary, strict)


@bill_app.command("recalc")
def bill_recalc(
    year: YearOpt,
    customer: Annotated[list[str], typer.Option("--customer", help="Customers to recalculate.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the new version).")],
    out: Annotated[Path, typer.Option("--out")] = DEFAULT_OUT,
    no_pdf: Annotated[bool, typer.Option("--no-pdf")] = False,
    strict: StrictOpt = False,
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
    _end_strict(summary, strict)


@app.command("demo")
def demo(
    customers: Annotated[int, typer.Option("--customers", min=1, max=10_000_000, help="Synthetic households.")] = 200,
    year: Annotated[int, typer.Option("--year", min=MIN_YEAR + 1, max=MAX_YEAR)] = 2025,
    out: Annotated[Path, typer.Option("--out")] = Path("wattbill-demo"),
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1)] = 7,
    workers: Annotated[int, typer.Option("--workers", min=1, max=256)] = max(1, min(2, os.cpu_count() or 1)),
    no_pdf: Annotated[bool, typer.Option("--no-pdf")] = False,
    store: StoreOpt = None,
) -> None:
    """Make synthetic households, ingest them, bill them, diagnose, label and render their PDFs."""
    from wattbill.demo import run_demo

    run_demo(customers, year, out, seed, workers, not no_pdf, store, _run_with_progress, _print_summary)


@app.command("token")
def token(
    customer: Annotated[str, typer.Option("--customer", metavar="ID", help="The customer (one of the store).")],
    ttl: Annotated[int, typer.Option("--ttl", min=1, max=10 * 366 * 86400, help="Seconds the token is valid.")] = 3600,
    store: StoreOpt = None,
) -> None:
    """Print a signed token for one customer of the store (signed with WATTBILL_SECRET): for the API's
    "Authorization: Bearer" header, or a portal link https://HOST/?token=TOKEN. A customer the store does
    not hold gets no token (a mistyped number would give a link that shows nothing)."""
    from wattbill.errors import UnknownCustomer
    from wattbill.tokens import make_token, secret_from_env

    secret = secret_from_env()
    with _store(store) as st:
        if st.load_customers([customer]).height == 0:
            raise UnknownCustomer(f"unknown customer {customer}: no token made")
    typer.echo(make_token(customer, secret, ttl))


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
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

    from wattbill.errors import require
    from wattbill.tokens import keys_from_env

    uvicorn = require("uvicorn", part="wattbill serve", package="uvicorn", extra="web")
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


def _one_line(text: object) -> str:
    """``text`` on one line, passwords masked (``store.errors.mask_secrets``)."""
    from wattbill.store.errors import mask_secrets

    return mask_secrets(" ".join(str(text).split()))


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; every way it can end is one line on stderr and an exit code.

    0 success; 2 a usage error (click's message on one line: an unknown option, a value out of range
    such as ``--year 0``); 1 a user error (``wattbill.errors.USER_ERRORS``), a file that cannot be
    opened, a database fault (psycopg's errors, should one escape the store's mapping), or an error
    of wattbill itself (printed as an internal error, never as a traceback: ``WATTBILL_DEBUG=1``
    shows it). Every message has its passwords masked.
    """
    from typer import _click as click  # typer vendors click (typer >= 0.2x): its exceptions

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from wattbill.engines import check_polars_threads

        check_polars_threads()  # (before polars' thread pool starts: a bad value makes it panic)
        if not args:
            args = ["--help"]
        result = app(args=args, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.NoArgsIsHelpError as exc:  # a group without its command: its help
        typer.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        return 2
    except click.exceptions.UsageError as exc:
        hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx else ""
        typer.echo(f"wattbill: usage error: {_one_line(exc.format_message())}{hint}", err=True)
        return 2
    except typer.Abort:
        typer.echo("wattbill: aborted", err=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except click.exceptions.ClickException as exc:
        typer.echo(f"wattbill: error: {_one_line(exc.format_message())}", err=True)
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except USER_ERRORS as exc:
        typer.echo(f"wattbill: error: {_one_line(exc)}", err=True)
        return 1
    except FileNotFoundError as exc:
        typer.echo(f"wattbill: error: {_one_line(exc.filename or exc)}: no such file", err=True)
        return 1
    except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        typer.echo(f"wattbill: error: {_one_line(exc.filename or exc)}: {_one_line(exc.strerror)}", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("wattbill: interrupted", err=True)
        return 1
    except Exception as exc:
        if _is_database_error(exc):
            typer.echo(f"wattbill: error: the database failed: {_one_line(exc)}", err=True)
            return 1
        from wattbill.settings import get_settings

        if get_settings().debug:
            raise
        typer.echo(f"wattbill: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} "
                   "(a bug: please report it; WATTBILL_DEBUG=1 shows where)", err=True)
        return 1


def _is_database_error(exc: BaseException) -> bool:
    mod = sys.modules.get("psycopg")
    pool = sys.modules.get("psycopg_pool")
    return bool((mod and isinstance(exc, mod.Error)) or (pool and isinstance(exc, pool.PoolTimeout)))


def _console() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _console()
