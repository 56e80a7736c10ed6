"""``wattbill ingest``: load reads, customers, payments and service interactions; list and export the quarantine.

Mounted by ``wattbill/cli.py`` as ``app.add_typer(ingest.app, name="ingest")``. Bad input raises
``ingest.errors.IngestError`` (one-line ``str``), which ``wattbill.cli.main`` turns into exit code 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Load meter reads, customers, payments and service interactions into the store.", no_args_is_help=True, rich_markup_mode=None)
quarantine_app = typer.Typer(help="Rows refused by ingest, with their reasons.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(quarantine_app, name="quarantine")

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store folder or postgresql:// URL [default: setting store, WATTBILL_STORE]."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per file.")]
Files = Annotated[list[Path], typer.Argument(help="CSV or Parquet files.", show_default=False, metavar="FILE")]


def _store_url(store: str | None) -> str:
    from wattbill.settings import get_settings

    return store or get_settings().store


DateOrderOpt = Annotated[
    str | None,
    typer.Option(
        "--date-order",
        help="How the files write dates that do not start with the year (01/02/2025): dmy or mdy. "
        "Without it such dates are quarantined (ambiguous_date).",
    ),
]
TariffsOpt = Annotated[
    Path | None,
    typer.Option("--tariffs", help="More tariff files (TOML), beside the catalogue [default: setting tariffs, WATTBILL_TARIFFS]."),
]


def _known_tariffs(extra: Path | None) -> list[str]:
    from wattbill.commands.tariffs import catalog_from_env

    return list(catalog_from_env(extra).codes())


def run_ingest(
    files: list[Path], kind: str, store: str | None = None, as_json: bool = False, *,
    date_order: str | None = None, known_tariffs: list[str] | None = None,
) -> list:
    """Ingest ``files`` of ``kind`` into the store; print one line (or JSON object) per file.

    A file that cannot be loaded (``IngestError``: its format, encoding, columns) is reported with its
    reason (one line on stderr; with ``--json`` also ``{"file", "error", "error_type", "row", "column"}``)
    and the next files are loaded; the command then ends with exit code 1 and how many files were not loaded. An
    error of the store stops it (the next files would meet the same)."""
    from wattbill.ingest import ingest_file
    from wattbill.ingest.errors import IngestError
    from wattbill.store import open_store

    url = _store_url(store)
    if date_order is not None and date_order not in ("ymd", "dmy", "mdy"):
        raise typer.BadParameter("must be ymd, dmy or mdy", param_hint="--date-order")
    st = open_store(url)
    reports = []
    failed = 0
    try:
        for f in files:
            try:
                rep = ingest_file(f, kind, st, date_order=date_order, known_tariffs=known_tariffs)
            except IngestError as exc:  # (this file's fault: the others are loaded all the same)
                failed += 1
                typer.echo(f"wattbill: error: {exc}", err=True)
                if as_json:
                    typer.echo(json.dumps({"file": str(f), "error": str(exc), "error_type": type(exc).__name__,
                                           "row": exc.row, "column": exc.column}, ensure_ascii=False))
                continue
            reports.append(rep)
            if as_json:
                typer.echo(json.dumps(rep.as_json(), ensure_ascii=False))
            else:
                # (a file already loaded loads nothing now: its first load's counts, said to be those)
                head = f"{f}: already loaded, nothing changed; its first load: " if rep.already_loaded else f"{f}: "
                typer.echo(
                    f"{head}rows {rep.rows}, loaded {rep.loaded}, estimated {rep.estimated}, "
                    f"quarantined {rep.quarantined}, duplicates {rep.duplicates}, findings {rep.findings}"
                )
        if not as_json and any(r.quarantined for r in reports):
            from wattbill.store.errors import mask_secrets

            typer.echo(f"quarantine: wattbill ingest quarantine list --store {mask_secrets(url)}")
    finally:
        st.close()
    if failed:
        if len(files) > 1:
            typer.echo(f"wattbill: {failed} of {len(files)} files not loaded (their errors above); the other "
                       f"{len(files) - failed} were", err=True)
        raise typer.Exit(1)
    return reports


@app.command("reads")
def reads(
    files: Files,
    kind: Annotated[
        str, typer.Option("--kind", metavar="[registers|consumption]",
                          help="registers (cumulative, default) or consumption (daily kWh).")
    ] = "registers",
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    date_order: DateOrderOpt = None,
) -> None:
    """Load meter reads (registers or daily consumption)."""
    if kind not in ("registers", "consumption"):
        raise typer.BadParameter("--kind must be registers or consumption")
    run_ingest(files, kind, store, as_json, date_order=date_order)


@app.command("customers")
def customers(
    files: Files, store: StoreOpt = None, as_json: JsonOpt = False, date_order: DateOrderOpt = None,
    tariffs: TariffsOpt = None,
) -> None:
    """Load customers (a tariff code not in the catalogue, or closed_on before opened_on: quarantined)."""
    run_ingest(files, "customers", store, as_json, date_order=date_order, known_tariffs=_known_tariffs(tariffs))


@app.command("payments")
def payments(files: Files, store: StoreOpt = None, as_json: JsonOpt = False, date_order: DateOrderOpt = None) -> None:
    """Load payments."""
    run_ingest(files, "payments", store, as_json, date_order=date_order)


@app.command("interactions")
def interactions(files: Files, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Load service interactions (contacts by phone, hall, app, WeChat, Alipay, robot, social)."""
    run_ingest(files, "interactions", store, as_json)


@quarantine_app.command("list")
def quarantine_list(
    store: StoreOpt = None,
    file_sha256: Annotated[str | None, typer.Option("--sha256", help="Only this file's rows.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows (0: all).")] = 50,
) -> None:
    """List quarantined rows: file, row, column, code, reason."""
    from wattbill.store import open_store

    st = open_store(_store_url(store))
    q = st.load_quarantine(file_sha256)
    st.close()
    typer.echo(f"{q.height} quarantined rows")
    for r in q.head(limit).iter_rows(named=True) if limit else q.iter_rows(named=True):
        typer.echo(f"{r['file']}:{r['row']} [{r['column'] or '-'}] {r['code']}: {r['reason']} | {r['raw']}")


@quarantine_app.command("export")
def quarantine_export(
    out: Annotated[Path, typer.Argument(help="CSV (or .parquet) file to write.")],
    store: StoreOpt = None,
    file_sha256: Annotated[str | None, typer.Option("--sha256", help="Only this file's rows.")] = None,
) -> None:
    """Export quarantined rows to CSV or Parquet."""
    from wattbill.store import open_store

    st = open_store(_store_url(store))
    q = st.load_quarantine(file_sha256)
    st.close()
    if out.suffix == ".parquet":
        q.write_parquet(out)
    else:
        q.write_csv(out)
    typer.echo(f"{q.height} quarantined rows written to {out}")
