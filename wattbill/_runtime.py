"""Process-wide defaults that the command line and the benchmarks set before polars is loaded.

polars' allocator (jemalloc) returns freed pages to the kernel at once for large blocks, so every
2M-row step pays page faults again (measured: 1.0 s of the 2.0 s of CPU of ``ingest_file`` of 2.2M
reads was kernel time); keeping freed pages 5 s cuts that to ~0.4 s. Importing the library never sets
them (no side effects at import); ``_RJEM_MALLOC_CONF`` set by the user wins.
"""

import os

PROCESS_DEFAULTS = {"_RJEM_MALLOC_CONF": "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:5000"}


def apply_process_defaults() -> None:
    """Set the process defaults that are not set yet (call before polars is imported)."""
    for key, value in PROCESS_DEFAULTS.items():
        os.environ.setdefault(key, value)
