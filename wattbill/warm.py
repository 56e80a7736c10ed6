"""Warm numba's on-disk cache: run every stage once on a few synthetic households.

``python -m wattbill.warm`` (or the hidden ``wattbill warm``), run by ``scripts/setup.sh``, so that the
first real run (``wattbill demo``, a bill run) loads its kernels from numba's cache instead of
compiling them (about a minute of CPU on this machine's kind). The stages run with the same argument
types as a real run, so the cached signatures are the ones a real run asks for: generate, ingest
(customers, registers, payments), bill, diagnose, label, then an estimate. Nothing is kept but the
cache (the store is a temporary folder).
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
import tempfile
import time
from pathlib import Path

#: the modules whose ``cache=True`` kernels are counted
KERNEL_MODULES = (
    "wattbill._arrow", "wattbill.ingest.kernels", "wattbill.tariffs.kernels", "wattbill.diagnostics.dense",
    "wattbill.diagnostics.kernels", "wattbill.diagnostics.paykernels", "wattbill.diagnostics.whatif",
    "wattbill.synth",
)


def cached_kernels() -> dict[str, object]:
    """Every numba dispatcher with ``cache=True`` in :data:`KERNEL_MODULES`, by qualified name."""
    from numba.core.registry import CPUDispatcher

    found: dict[str, object] = {}
    for name in KERNEL_MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            cache = type(getattr(value, "_cache", None)).__name__
            if isinstance(value, CPUDispatcher) and cache != "NullCache" and value.__module__ == name:
                found[f"{name}.{attr}"] = value
    return found


def warm_kernels(customers: int = 40, year: int = 2025) -> tuple[float, int]:
    """Run every stage on ``customers`` synthetic households so numba caches their kernels.

    Parameters
    ----------
    customers : int
        Synthetic households (a few dozen exercise every branch that selects a kernel).
    year : int
        The bill year (the year before is generated too, for the last-year comparisons).

    Returns
    -------
    seconds : float
        Wall time of the run [s].
    compiled : int
        ``cache=True`` kernels that hold at least one compiled signature afterwards.
    """
    from wattbill import synth
    from wattbill.ingest import ingest_file
    from wattbill.pipeline import run_bills
    from wattbill.store import open_store
    from wattbill.tariffs import load_catalog

    start = time.perf_counter()
    catalog = load_catalog()
    with tempfile.TemporaryDirectory(prefix="wattbill-warm-") as tmp:
        root = Path(tmp)
        paths = synth.generate(customers, year, 11, root / "input", years=2)
        store = open_store(root / "store")
        try:
            for kind, path in (("customers", paths.customers), ("registers", paths.reads),
                               ("payments", paths.payments)):
                ingest_file(path, kind, store)
            run_bills(store, catalog, year, out_dir=root / "out", pdf=False)
            _warm_estimate(store, catalog, year)
        finally:
            store.close()
    compiled = sum(1 for d in cached_kernels().values() if getattr(d, "signatures", None))
    return time.perf_counter() - start, compiled


def _warm_estimate(store, catalog, year: int) -> None:
    """The estimate's kernels (``wattbill estimate``), for one customer to mid-year."""
    from wattbill.commands.tariffs import estimate_for

    ids = store.list_customer_ids()
    if ids:
        estimate_for(store, catalog, str(ids[0]), dt.date(year, 6, 30))


def main() -> int:
    """``python -m wattbill.warm``: warm the cache and print one line."""
    seconds, compiled = warm_kernels()
    total = len(cached_kernels())
    print(f"warm: {compiled} of {total} cached numba kernels compiled or loaded in {seconds:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
