"""Reproducible benchmarks (see each module's docstring)."""

import wattbill  # noqa: F401  - the allocator settings the CLI runs with, set before polars loads
