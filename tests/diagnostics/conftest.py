"""Hand-made households for the diagnostics and labels tests (fixture ``household``)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("_wattbill_households", Path(__file__).with_name("households.py"))
households = sys.modules.setdefault("_wattbill_households", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(households)


@pytest.fixture
def hh():
    """The ``households`` helper module."""
    return households


@pytest.fixture
def year() -> int:
    return 2025


@pytest.fixture
def jan1(year) -> dt.date:
    return dt.date(year, 1, 1)
