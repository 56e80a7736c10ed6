#!/usr/bin/env bash
# Build the API documentation site from the numpydoc docstrings (pdoc) into build/docs (not committed).
# Every warning pdoc raises (a module that fails to import, a docstring it cannot parse) fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf build/docs
.venv/bin/python - "$@" <<'PY'
import sys
import warnings
from pathlib import Path

import pdoc
import pdoc.render

MODULES = [
    "wattbill", "wattbill.api", "wattbill.settings", "wattbill.errors", "wattbill.formats",
    "wattbill.ingest", "wattbill.store", "wattbill.tariffs", "wattbill.diagnostics", "wattbill.labels",
    "wattbill.bills", "wattbill.bills.render", "wattbill.pipeline", "wattbill.warm",
]
# names that the packages resolve lazily (PEP 562) are bound first, so pdoc finds them
import importlib

for name in MODULES:
    module = importlib.import_module(name)
    if hasattr(module, "__getattr__"):
        for attr in getattr(module, "__all__", ()):
            setattr(module, attr, getattr(module, attr))
pdoc.render.configure(docformat="numpy", show_source=False, footer_text="wattbill")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pdoc.pdoc(*MODULES, output_directory=Path("build/docs"))
ours = [w for w in caught if "pdoc" in (w.filename or "") or "wattbill" in str(w.message)]
for w in ours:
    print(f"docs: warning: {w.message}", file=sys.stderr)
pages = sorted(p.name for p in Path("build/docs").rglob("*.html"))
print(f"docs: {len(pages)} pages in build/docs ({len(ours)} warnings)")
sys.exit(1 if ours else 0)
PY
