"""Reuses the hand-made households of tests/diagnostics."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_path = Path(__file__).parents[1] / "diagnostics" / "households.py"
_spec = importlib.util.spec_from_file_location("_wattbill_households", _path)
households = sys.modules.setdefault("_wattbill_households", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(households)


@pytest.fixture
def hh():
    """The ``households`` helper module."""
    return households
