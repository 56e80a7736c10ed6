"""Hypothesis strategies shared by the test suite (one place, as the project asks).

Sections: tariffs and usage (tariff engine), messy files (ingest).
"""

from __future__ import annotations

# --- tariffs and usage -----------------------------------------------------------------------

# --- messy files -----------------------------------------------------------------------------
