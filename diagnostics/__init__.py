"""Per-household features of a year: monthly series, year-over-year, time-of-use shares, base load,
seasonality, near-zero runs, spikes, tier dates, peer percentiles, tariff what-if, payment habits, service channels (``diagnostics.channels``: per-household
channel features and the portfolio report's figures).

Pure: frames in, a frame out. See ``docs/interfaces.md`` ("diagnostics", "Features").
"""

from wattbill.diagnostics.channels import (
    CHANNEL_FEATURES,
    ChannelReport,
    ReportParams,
    channel_report,
    household_features,
)
from wattbill.diagnostics.dense import DenseYear, days_in_year, densify, take_rows
from wattbill.diagnostics.features import (
    ALTERNATIVES_SCHEMA,
    BILLS_SCHEMA,
    DEFAULT_PARAMS,
    FEATURE_DOCS,
    FEATURES,
    PEER_COLUMNS,
    Params,
    add_peers,
    bills_frame,
    channel_mix,
    diagnose,
    payment_status,
)
from wattbill.diagnostics.whatif import shift_peak_to_valley, tariff_what_if

__all__ = [
    "ALTERNATIVES_SCHEMA",
    "BILLS_SCHEMA",
    "CHANNEL_FEATURES",
    "DEFAULT_PARAMS",
    "FEATURES",
    "FEATURE_DOCS",
    "PEER_COLUMNS",
    "ChannelReport",
    "DenseYear",
    "Params",
    "ReportParams",
    "add_peers",
    "bills_frame",
    "channel_mix",
    "channel_report",
    "days_in_year",
    "densify",
    "diagnose",
    "household_features",
    "payment_status",
    "shift_peak_to_valley",
    "take_rows",
    "tariff_what_if",
]
