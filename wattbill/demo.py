"""``wattbill demo``: every stage of the engine on synthetic households, on the embedded store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from wattbill import synth


def run_demo(
    customers: int,
    year: int,
    out: Path,
    seed: int,
    workers: int,
    pdf: bool,
    store_url: str | None,
    runner: Callable[..., Any],
    printer: Callable[[Any], None],
) -> Any:
    """Generate, ingest, bill, diagnose, label and render; the service-channel report; print where
    everything is."""
    from wattbill.commands.report import print_paths
    from wattbill.ingest import ingest_file
    from wattbill.report_channels import write_report
    from wattbill.store import open_store
    from wattbill.tariffs import load_catalog

    out.mkdir(parents=True, exist_ok=True)
    catalog = load_catalog()
    typer.echo(f"generating {customers} households, {year - 1}-{year} (seed {seed}) ...")
    paths = synth.generate(customers, year, seed, out / "input", years=2)
    store_location = store_url or str(out / "store")
    store = open_store(store_location)
    try:
        inputs = [("customers", paths.customers), ("registers", paths.reads), ("payments", paths.payments)]
        if paths.interactions is not None:
            inputs.append(("interactions", paths.interactions))
        for kind, path in inputs:
            rep = ingest_file(path, kind, store)
            note = " (already loaded)" if rep.already_loaded else ""
            typer.echo(
                f"ingest {path.name}: rows {rep.rows}, loaded {rep.loaded}, estimated {rep.estimated}, "
                f"quarantined {rep.quarantined}, duplicates {rep.duplicates}{note}"
            )
        summary = runner(store, catalog, year, out_dir=out, pdf=pdf, workers=workers)
        report = write_report(store, year, out / "report", pdf=pdf)
    finally:
        store.close()
    printer(summary)
    print_paths(report)
    typer.echo(f"store: {store_location}")
    typer.echo(f"input files and ground truth: {paths.reads.parent}")
    if summary.pdf_dir:
        from wattbill.statements import all_statements

        first = all_statements(out, year)[:1]
        if first:
            typer.echo(f"an example bill: {first[0]}")
    return summary
