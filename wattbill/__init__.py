"""wattbill: smart-meter usage and annual-bill insight engine (the application layer).

Importing the package sets one process-wide default before polars is loaded: polars' allocator
(jemalloc) returns freed pages to the kernel at once for large blocks, so every 2M-row step pays page
faults again (measured: 1.0 s of the 2.0 s of CPU of ``ingest_file`` of 2.2M reads was kernel time).
Keeping freed pages 5 s cuts that to ~0.4 s. ``_RJEM_MALLOC_CONF`` set by the user wins.
"""

import os

os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:5000")
