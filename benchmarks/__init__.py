"""Reproducible benchmarks (see each module's docstring)."""

from wattbill._runtime import apply_process_defaults

apply_process_defaults()  # the allocator settings the CLI runs with, set before polars loads
